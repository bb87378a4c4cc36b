package storage

// What a follower replica needs of its log: appending the leader's batches
// as they are (offsets and leader epochs included), cutting off a tail
// that diverged from the leader's log, and starting over at the leader's
// log start offset.
//
// TruncateTo removes a suffix of the log: whole later segments first
// (newest first, renamed to their deleted names, so that a crash leaves a
// prefix of the log), then the tail of the segment holding the cut, whose
// indexes are rebuilt from its batch headers as recovery does. A crash in
// between leaves a log that is a prefix of the one before, which is what
// the next Open recovers anyway. Any fsync pass is waited for and none
// runs during the cut, so the flusher's notion of what is durable is cut
// back with the bytes.

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gregorbroker/gregor/protocol"
)

// ErrNotContiguous means AppendReplica got a batch that starts below the
// log end offset.
var ErrNotContiguous = errors.New("storage: batch starts below the log end offset")

// AppendReplica appends a batch copied from the partition's leader, as it
// is: its base offset must be at least the log end offset
// (ErrNotContiguous otherwise; above it when the leader's log was
// compacted there, as in Kafka), and its partition leader epoch goes into
// the leader epoch cache. Like Append, it may wait for an fsync as the flush policy says.
func (l *Log) AppendReplica(batch []byte) (AppendResult, error) {
	l.settleMarker() // its fsync before the append lock, not under it
	h, err := checkAppendBatch(batch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: replica append to %s: %w", l.dir, err)
	}
	hdr, _ := protocol.ParseBatchHeader(batch) // checked just above
	l.mu.Lock()
	if leo := l.leo.Load(); hdr.FirstOffset < leo && hdr.FirstOffset+int64(hdr.LastOffsetDelta) >= leo && leo == l.start.Load() && l.bytes.Load() == 0 &&
		!l.mu.closed && l.failure() == nil {
		// An empty log that starts inside the leader's batch (the
		// leader's log start was moved there by DeleteRecords, and this
		// follower started over at it): start over at the batch's base
		// instead, as Kafka's follower does, and take the batch whole.
		// The leader's log start, which fetch responses carry, moves
		// this log's start up again.
		if err := l.startAtLocked(hdr.FirstOffset); err != nil {
			l.mu.Unlock()
			return AppendResult{}, fmt.Errorf("storage: replica append to %s: %w", l.dir, err)
		}
	}
	if leo := l.leo.Load(); hdr.FirstOffset < leo {
		l.mu.Unlock()
		return AppendResult{}, fmt.Errorf("%w: batch at %d, log %s ends at %d", ErrNotContiguous, hdr.FirstOffset, l.dir, leo)
	} else if hdr.FirstOffset > leo && !l.mu.closed && l.failure() == nil {
		// A gap the leader's cleaner left: the log end moves over it
		// (appendLocked puts the batch at the log end offset), into a
		// new segment, so that the active segment stays contiguous from
		// its base (what recovery checks). The cleaner merges the small
		// segments this makes.
		l.leo.Store(hdr.FirstOffset)
		if _, err := l.rollLocked(hdr.FirstOffset, l.now(), "gap in the leader's log"); err != nil {
			l.mu.Unlock()
			return AppendResult{}, fmt.Errorf("storage: replica append to %s: %w", l.dir, err)
		}
	}
	res, wait, err := l.appendLocked(batch, hdr.PartitionLeaderEpoch, &h)
	l.mu.Unlock()
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: replica append to %s: %w", l.dir, err)
	}
	if wait {
		if err := l.waitSynced(res.LastOffset + 1); err != nil {
			return res, fmt.Errorf("storage: replica append to %s: fsync: %w", l.dir, err)
		}
	}
	return res, nil
}

// TruncateTo removes every batch that holds an offset at or above offset
// (a batch that straddles it goes whole), so that the log ends at or
// below offset; it returns the new log end offset. The high watermark and
// the leader epoch cache are cut back with it. An offset at or below the
// log start offset empties the log; the log then starts at offset
// (Kafka's truncateFullyAndStartAt), or at the first segment's base when
// offset is below that. Options.OnTruncate is called before it returns,
// under the append lock.
func (l *Log) TruncateTo(offset int64) (int64, error) {
	if offset < l.leo.Load() {
		l.settleMarker() // its fsync before the append lock, not under it
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	if err := l.failure(); err != nil {
		return 0, err
	}
	leo := l.leo.Load()
	if offset >= leo {
		return leo, nil
	}
	newLEO, gappy, err := l.truncateLocked(offset)
	if err != nil {
		return 0, err
	}
	if gappy {
		// A cut inside a segment the cleaner wrote leaves an active
		// segment with gaps; it is closed so that the active segment
		// stays contiguous, as recovery expects.
		if _, err := l.rollLocked(newLEO, l.now(), "truncated into a cleaned segment"); err != nil {
			l.log.Warn().Err(err).Msg("cannot roll after truncating into a cleaned segment")
		}
	}
	l.log.Warn().Int64("offset", offset).Int64("old_log_end_offset", leo).Int64("log_end_offset", newLEO).
		Msg("truncated the log to follow the leader")
	if err := l.noteTruncatedLocked(); err != nil {
		return 0, err
	}
	return newLEO, nil
}

// truncateLocked is TruncateTo's cut, for an offset below the log end
// offset. It waits for a running sync pass and holds fl.mu throughout,
// so that the flusher's notion of what is durable is cut back with the
// bytes. gappy says the segment left active has gaps. l.mu held.
func (l *Log) truncateLocked(offset int64) (newLEO int64, gappy bool, err error) {
	f := &l.fl
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.syncing {
		f.cond.Wait()
	}
	segs := l.segments()
	if offset <= segs[0].base || offset < l.start.Load() {
		// Nothing at or above the log start would be left: start over
		// at offset (Kafka's truncateFullyAndStartAt).
		newLEO, err = l.resetLocked(max(offset, segs[0].base))
	} else {
		newLEO, gappy, err = l.cutLocked(offset)
	}
	if err != nil {
		l.setFailedLocked(fmt.Errorf("truncate to %d: %w", offset, err))
		return 0, false, f.err
	}
	f.synced = min(f.synced, newLEO)
	if segs := l.segments(); f.syncedBelow > segs[len(segs)-1].base {
		f.syncedBelow = segs[len(segs)-1].base
	}
	if err := l.truncateEpochsFrom(newLEO); err != nil {
		l.setFailedLocked(fmt.Errorf("truncate to %d: %w", offset, err))
		return 0, false, f.err
	}
	if err := l.resetProducersLocked(newLEO); err != nil {
		l.setFailedLocked(fmt.Errorf("truncate to %d: %w", offset, err))
		return 0, false, f.err
	}
	l.hwMu.Lock()
	if l.hw.Load() > newLEO {
		l.hw.Store(newLEO)
	}
	l.hwMu.Unlock()
	return newLEO, gappy, nil
}

// noteTruncatedLocked hands the recovery point after a truncation to
// Options.OnTruncate, before anything is appended past the cut: the
// broker lowers its checkpoint there (doc.go, Recovery point). An error
// fails the log. l.mu held, fl.mu not.
func (l *Log) noteTruncatedLocked() error {
	if l.onTruncate == nil {
		return nil
	}
	if err := l.onTruncate(l.RecoveryPoint()); err != nil {
		return l.setFailed(fmt.Errorf("record the recovery point after a truncation: %w", err))
	}
	return nil
}

// cutLocked cuts the log inside it (offset above the first segment's base
// and below the log end offset). l.mu and fl.mu held, no pass running.
// gappy reports that the segment left active has gaps between batches.
func (l *Log) cutLocked(offset int64) (end int64, gappy bool, err error) {
	l.mu.truncations++ // before anything changes: a failed cut counts too
	segs := l.segments()
	i := segmentFor(segs, offset)
	s := segs[i]
	pos := s.size.Load() // where segment i is cut
	if offset > s.base {
		_, h, found, err := l.locate(s, offset, pos, nil)
		if err != nil {
			return 0, false, fmt.Errorf("find batch of offset %d: %w", offset, err)
		}
		if found {
			pos = h.pos
		}
	} else {
		pos = 0
	}
	if pos == 0 && i > 0 {
		// The cut is at the start of segment i: it goes whole, and the
		// previous segment, kept whole, is the active one again.
		i--
		s = segs[i]
		pos = s.size.Load()
	}
	if err := l.dropSegmentsAfterLocked(i); err != nil {
		return 0, false, err
	}
	if err := s.log.Truncate(pos); err != nil {
		return 0, false, fmt.Errorf("cut segment %d at %d: %w", s.base, pos, err)
	}
	// The cut is made durable now: the recovery point may cover s (it
	// is the cut's offset when what was below was synced), and a segment
	// made at the cut (a gappy roll) would leave no later append to
	// fsync s, so a power loss could bring the diverged tail back into a
	// segment Open trusts.
	if err := s.log.Sync(); err != nil {
		return 0, false, fmt.Errorf("fsync segment %d cut at %d: %w", s.base, pos, err)
	}
	b := l.newIndexBuilder(s)
	end, good, reason, err := l.scanValid(s, 0, pos, b, true) // s may be a cleaned segment
	if err != nil {
		return 0, false, err
	}
	if good != pos {
		return 0, false, fmt.Errorf("%w: segment %d: %s at %d", ErrCorrupt, s.base, reason, good)
	}
	if _, strict, _, err := l.scanValid(s, 0, pos, l.newIndexBuilder(s), false); err != nil {
		return 0, false, err
	} else if strict != pos {
		gappy = true
	}
	if err := b.write(s); err != nil {
		return 0, false, err
	}
	freed := s.size.Load() - pos
	s.mu.Lock()
	s.offsets, s.times = b.offs, b.times
	s.maxTs, s.maxTsBase, s.maxTsLast = b.maxTs, b.maxBase, b.maxLast
	s.mu.Unlock()
	s.bytesSinceIndex = b.bytesSince
	s.size.Store(pos)
	s.syncedSize = min(s.syncedSize, pos)
	s.indexSynced = false
	l.bytes.Add(-freed)
	l.leo.Store(end)
	return end, gappy, nil
}

// resetLocked empties the log and starts it at start: a fresh segment at
// start replaces every segment. l.mu and fl.mu held, no pass running.
// start may lie below a deletion intent left behind (delete.go): the
// retired segments' directory fsyncs, before the new segment is made,
// make the intent's removal durable first.
func (l *Log) resetLocked(start int64) (int64, error) {
	l.mu.truncations++
	if err := l.dropSegmentsAfterLocked(-1); err != nil {
		return 0, err
	}
	s, err := createSegment(l.fs, l.dir, start, l.now())
	if err != nil {
		return 0, err
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return 0, err
	}
	next := []*segment{s}
	l.segs.Store(&next)
	l.start.Store(start)
	l.leo.Store(start)
	l.fl.syncedBelow = start
	return start, nil
}

// dropSegmentsAfterLocked retires every segment after index keep (all of
// them for -1), newest first, and unpublishes them.
func (l *Log) dropSegmentsAfterLocked(keep int) error {
	segs := l.segments()
	var retired []*segment
	var err error
	for j := len(segs) - 1; j > keep; j-- {
		var gone bool
		if gone, err = l.retireFilesLocked(segs[j]); gone {
			retired = append(retired, segs[j]) // not in the log on disk any more
		}
		if err != nil {
			break
		}
	}
	if len(retired) == 0 {
		return err
	}
	if n := len(segs) - len(retired); n > 0 {
		next := slices.Clone(segs[:n])
		l.segs.Store(&next)
	}
	var freed int64
	for _, s := range retired {
		freed += s.size.Load()
	}
	l.bytes.Add(-freed)
	l.removeLater(retired, time.Duration(l.cfg.Load().FileDeleteDelayMs)*time.Millisecond)
	return err
}

// StartAt empties the log and starts it at offset, which must be above
// the log end offset: for a follower that fell behind the leader's log
// start offset (Kafka's truncateFullyAndStartAt).
func (l *Log) StartAt(offset int64) error {
	l.settleMarker() // its fsync before the append lock, not under it
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if err := l.failure(); err != nil {
		return err
	}
	if leo := l.leo.Load(); offset <= leo {
		return fmt.Errorf("storage: start %s at %d: not above the log end offset %d", l.dir, offset, leo)
	}
	return l.startAtLocked(offset)
}

// startAtLocked empties the log and starts it at offset, then calls
// Options.OnTruncate. l.mu must be held.
func (l *Log) startAtLocked(offset int64) error {
	if err := l.resetToLocked(offset); err != nil {
		return err
	}
	return l.noteTruncatedLocked()
}

// resetToLocked is startAtLocked's reset, under fl.mu with no sync pass
// running. l.mu must be held.
func (l *Log) resetToLocked(offset int64) error {
	f := &l.fl
	f.mu.Lock()
	for f.syncing {
		f.cond.Wait()
	}
	defer f.mu.Unlock()
	if _, err := l.resetLocked(offset); err != nil {
		l.setFailedLocked(fmt.Errorf("start at %d: %w", offset, err))
		return f.err
	}
	f.synced = offset
	if err := l.truncateEpochsFrom(-1); err != nil {
		l.setFailedLocked(fmt.Errorf("start at %d: %w", offset, err))
		return f.err
	}
	if err := l.resetProducersLocked(offset); err != nil {
		l.setFailedLocked(fmt.Errorf("start at %d: %w", offset, err))
		return f.err
	}
	l.hwMu.Lock()
	l.hw.Store(offset)
	l.hwMu.Unlock()
	return nil
}
