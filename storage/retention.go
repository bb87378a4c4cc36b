package storage

// Retention: moving the log start offset forward and deleting whole old
// segments, as Kafka's UnifiedLog.deleteOldSegments does.
//
// The log start offset is its own value (Log.start). It moves forward
// only: through AdvanceLogStart (DeleteRecords on a leader, the leader's
// log start on a follower) and when old segments are deleted (to the
// first segment left). A segment goes when every offset in it is below
// the log start offset, or, for a topic whose cleanup.policy includes
// delete, when it is older than retention.ms (by its largest timestamp)
// or the log would still hold retention.bytes without it. Only closed
// segments go, only a prefix of the log, and only segments that end at or
// below the high watermark (a follower that has not fetched them yet
// still can). The active segment is rolled once it is segment.ms (minus
// its jitter) old and not empty, so that old data in a quiet partition
// does go.

import (
	"fmt"
	"time"
)

// RetentionResult says what one EnforceRetention pass did.
type RetentionResult struct {
	Segments int   // segments deleted
	Bytes    int64 // their .log bytes
	Rolled   bool  // the active segment was rolled on segment.ms
	// LogStartOffset is the log start offset after the pass.
	LogStartOffset int64
}

// rollJitterMs is the segment's share of segment.jitter.ms, drawn once
// per segment as Kafka draws it: in [0, min(jitter, segment.ms)).
func (s *segment) rollJitterMs(c *Config) int64 {
	j := min(c.SegmentJitterMs, c.SegmentMs)
	if j <= 0 {
		return 0
	}
	return int64(s.jitterSeed % uint64(j))
}

// compactionLagPassed reports whether a compacted log's active segment is
// older than max.compaction.lag.ms (Config.CompactionRollMs), counted, as
// segment.ms is, from when the segment was made.
func (s *segment) compactionLagPassed(c *Config, now time.Time) bool {
	return c.CompactionRollMs > 0 && now.Sub(s.created).Milliseconds() > c.CompactionRollMs
}

// timeToRoll reports whether segment.ms (less the segment's jitter) has
// passed since the segment was created.
func (s *segment) timeToRoll(c *Config, now time.Time) bool {
	return c.SegmentMs > 0 && now.Sub(s.created).Milliseconds() > c.SegmentMs-s.rollJitterMs(c)
}

// largestTimestamp is what retention.ms measures a segment by: its
// largest batch max timestamp or, when no batch has one, the .log's
// modification time (as Kafka does).
func (s *segment) largestTimestamp() int64 {
	s.mu.RLock()
	ts := s.maxTs
	s.mu.RUnlock()
	if ts >= 0 {
		return ts
	}
	if s.log == nil {
		return -1
	}
	fi, err := s.log.Stat()
	if err != nil {
		return -1
	}
	return fi.ModTime().UnixMilli()
}

// startFromCheckpoint sets the log start offset Open found in the
// broker's checkpoint, when it lies above the first segment's base;
// clamped to the log end offset. Called by Open before anyone else sees
// the log.
func (l *Log) startFromCheckpoint(off int64) {
	if off <= l.start.Load() {
		return
	}
	off = min(off, l.leo.Load())
	l.start.Store(off)
	if l.hw.Load() < off {
		l.hw.Store(off)
	}
}

// AdvanceLogStart moves the log start offset up to offset (clamped to the
// log end offset; an offset at or below the current start leaves it)
// and deletes the segments that are wholly below it. Reads below the
// new start fail with ErrOffsetOutOfRange at once; the batches of the
// segment holding it stay on disk until the whole segment goes. It
// reports whether the start moved. The caller bounds offset by what the
// partition allows (the high watermark on a leader).
func (l *Log) AdvanceLogStart(offset int64) (moved bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return false, ErrClosed
	}
	if err := l.failure(); err != nil {
		return false, err
	}
	offset = min(offset, l.leo.Load())
	if moved = offset > l.start.Load(); moved {
		l.start.Store(offset)
		if l.hw.Load() < offset {
			l.hwMu.Lock()
			if l.hw.Load() < offset {
				l.hw.Store(offset)
			}
			l.hwMu.Unlock()
		}
	}
	offset = l.start.Load() // segments below a start Open set go too
	segs := l.segments()
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= offset {
		n++
	}
	if _, _, err := l.deleteOldestLocked(n, "log start offset"); err != nil {
		return moved, fmt.Errorf("storage: advance log start of %s to %d: %w", l.dir, offset, err)
	}
	return moved, nil
}

// EnforceRetention runs one retention pass at now: it rolls the active
// segment when segment.ms says so, then deletes the oldest closed
// segments that are below the log start offset or, with deletePolicy
// (cleanup.policy includes delete), older than retention.ms or beyond
// retention.bytes. See the top of this file.
func (l *Log) EnforceRetention(now time.Time, deletePolicy bool) (RetentionResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var res RetentionResult
	if l.mu.closed {
		return res, ErrClosed
	}
	if err := l.failure(); err != nil {
		return res, err
	}
	cfg := l.cfg.Load()
	segs := l.segments()
	if active := segs[len(segs)-1]; active.size.Load() > 0 && (active.timeToRoll(cfg, now) || active.compactionLagPassed(cfg, now)) {
		reason := "segment.ms"
		if !active.timeToRoll(cfg, now) {
			reason = "max.compaction.lag.ms"
		}
		if _, err := l.rollLocked(l.leo.Load(), now, reason); err != nil {
			return res, fmt.Errorf("storage: retention of %s: %w", l.dir, err)
		}
		res.Rolled = true
		segs = l.segments()
	}
	hw, start := l.hw.Load(), l.start.Load()
	nowMs := now.UnixMilli()
	total := l.bytes.Load()
	n := 0
scan:
	for ; n < len(segs)-1; n++ {
		s, next := segs[n], segs[n+1]
		if next.base > hw {
			break // not every replica may have it yet
		}
		size := s.size.Load()
		switch {
		case next.base <= start:
		case deletePolicy && cfg.RetentionMs >= 0 && nowMs-s.largestTimestamp() > cfg.RetentionMs:
		case deletePolicy && cfg.RetentionBytes >= 0 && total-size >= cfg.RetentionBytes:
		default:
			break scan
		}
		total -= size
	}
	var err error
	res.Segments, res.Bytes, err = l.deleteOldestLocked(n, "retention")
	res.LogStartOffset = l.start.Load()
	if err != nil {
		return res, fmt.Errorf("storage: retention of %s: %w", l.dir, err)
	}
	return res, nil
}
