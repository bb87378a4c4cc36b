package storage

// Removing old segments: the primitive under retention and
// DeleteRecords (see DeleteSegmentsBelow).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gregorbroker/gregor/internal/safe"
)

// deletedSuffix marks a segment file that was removed from its log but may
// still be read through ranges handed out before; it is removed for good
// after file.delete.delay.ms, and at the next Open if the process stopped
// first (Kafka names such files the same way).
const deletedSuffix = ".deleted"

// Roll closes the active segment to appends and starts a new one at the log
// end offset, unless the active segment is empty. It returns the base
// offset of the active segment afterwards: every offset below it is in an
// older segment.
func (l *Log) Roll() (int64, error) {
	l.settleMarker() // its fsync before the append lock, not under it
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	if err := l.failure(); err != nil {
		return 0, err
	}
	segs := l.segments()
	active := segs[len(segs)-1]
	if active.size.Load() == 0 {
		return active.base, nil
	}
	seg, err := l.rollLocked(l.leo.Load(), l.now(), "requested")
	if err != nil {
		return 0, fmt.Errorf("storage: roll %s: %w", l.dir, err)
	}
	return seg.base, nil
}

// DeleteSegmentsBelow removes, oldest first, the segments every offset of
// which is below offset; the active segment always stays. The log start
// offset moves to the base offset of the first segment left, if that is
// above it. It returns how many segments went.
//
// Only ever a prefix of the log goes, durably, with one or two directory
// fsyncs however many segments go (deleteOldestLocked; the protocol is in
// doc.go), so a crash at any point leaves a log that is a suffix of the
// one before. Ranges that readers got from Read before stay readable for
// the configured FileDeleteDelay; the files are then closed and removed.
func (l *Log) DeleteSegmentsBelow(offset int64) (int, error) {
	l.settleMarker() // its fsync before the append lock, not under it
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	segs := l.segments()
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= offset {
		n++
	}
	deleted, _, err := l.deleteOldestLocked(n, "below offset")
	if err != nil {
		err = fmt.Errorf("delete segments below %d: %w", offset, err)
	}
	return deleted, err
}

// deleteOldestLocked removes the n oldest segments (never the active
// one: n < len(segments)), as DeleteSegmentsBelow describes, and moves
// the log start offset up to the first segment left. It returns how many
// went and their bytes; an error fails the log (ErrStorage). l.mu held.
//
// One segment: its files are renamed to their deleted names and the
// directory fsynced. More: the deletion intent <deleteIntentPrefix><base
// of the first segment kept> is created and the directory fsynced, then
// every segment's files are renamed, the oldest first, then the directory
// is fsynced once and the intent removed (not fsynced: the next fsync of
// the directory, at the latest the one before any segment is created
// below the intent's offset, see resetLocked, takes the removal along).
// The filesystem may make the renames durable in any order; an intent
// found by Open finishes the deletion, so a crash never leaves a hole.
func (l *Log) deleteOldestLocked(n int, reason string) (int, int64, error) {
	if err := l.failure(); err != nil {
		// A failed log's files may be mid-change (a swap decided but
		// not finished): only the next Open may touch them.
		return 0, 0, err
	}
	segs := l.segments()
	n = max(min(n, len(segs)-1), 0)
	var retired []*segment
	var err error
	intent := ""
	if n > 1 {
		intent = deleteIntentPath(l.dir, segs[n].base)
		err = l.createIntentLocked(intent)
	}
	if err == nil {
		for _, s := range segs[:n] {
			var gone bool
			if gone, err = l.renameDeletedLocked(s); gone {
				// Its .log is renamed: a reopen would not find the
				// segment (or, with an intent, would remove it), so
				// neither does anyone from now on.
				retired = append(retired, s)
			}
			if err != nil {
				break
			}
		}
	}
	if err == nil && n > 0 {
		if err = syncDir(l.fs, l.dir); err == nil && intent != "" {
			if rerr := l.fs.Remove(intent); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				// Left behind, it would make the next Open remove a
				// segment a follower's start over creates below it:
				// the log fails, and Open removes the intent.
				err = fmt.Errorf("remove segment deletion intent: %w", rerr)
			}
		}
	}
	var freed int64
	if len(retired) > 0 {
		next := slices.Clone(segs[len(retired):])
		l.segs.Store(&next)
		if next[0].base > l.start.Load() {
			l.start.Store(next[0].base)
		}
		for _, s := range retired {
			freed += s.size.Load()
		}
		l.bytes.Add(-freed)
		l.truncateEpochsBelow(l.start.Load())
		l.log.Info().Int("segments", len(retired)).Int64("bytes", freed).Str("reason", reason).
			Int64("log_start_offset", l.start.Load()).Msg("deleted old segments")
		l.removeLater(retired, time.Duration(l.cfg.Load().FileDeleteDelayMs)*time.Millisecond)
	}
	if err != nil {
		err = l.setFailed(err)
	}
	return len(retired), freed, err
}

// deleteIntentPrefix starts the name of a deletion intent; the rest of
// the name is the base offset of the first segment kept, as segment file
// names are written (doc.go, Files).
const deleteIntentPrefix = ".gregor-delete-below-v1-"

// deleteIntentPath is the deletion intent for the segments below base.
func deleteIntentPath(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%020d", deleteIntentPrefix, base))
}

// parseDeleteIntent returns the offset a deletion intent's name holds.
func parseDeleteIntent(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, deleteIntentPrefix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	return base, err == nil && base >= 0
}

// createIntentLocked creates an (empty) deletion intent file and makes
// it durable before any rename it covers.
func (l *Log) createIntentLocked(path string) error {
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("create segment deletion intent: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create segment deletion intent: %w", err)
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return fmt.Errorf("create segment deletion intent: %w", err)
	}
	return nil
}

// retireFilesLocked renames a segment's files to their deleted names, the
// .log first, and makes the renames durable (a directory fsync). gone
// reports that the .log was renamed (the segment is no longer part of the
// log on disk), even when a later step failed.
func (l *Log) retireFilesLocked(s *segment) (gone bool, err error) {
	if gone, err = l.renameDeletedLocked(s); err != nil {
		return gone, err
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return true, fmt.Errorf("segment %d: %w", s.base, err)
	}
	return true, nil
}

// renameDeletedLocked renames a segment's files to their deleted names,
// the .log first, without fsyncing the directory: the caller does, once
// for all the segments it retires (the cleaner's swap). gone is as for
// retireFilesLocked.
func (l *Log) renameDeletedLocked(s *segment) (gone bool, err error) {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		p := segmentPath(l.dir, s.base, suffix)
		if err := l.fs.Rename(p, p+deletedSuffix); err != nil && !(suffix != logSuffix && errors.Is(err, os.ErrNotExist)) {
			return gone, fmt.Errorf("segment %d: %w", s.base, err)
		}
		gone = true
	}
	return true, nil
}

// removeLater closes and removes retired segments after delay, or when
// the log closes if that is sooner. Called with l.mu held, so Close's
// l.bg.Wait sees the goroutine.
func (l *Log) removeLater(retired []*segment, delay time.Duration) {
	safe.Go(&l.bg, l.log, "segment removal", func() {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
		}
		// A flush pass may still hold the old segment list: let it end
		// before the files close under it.
		f := &l.fl
		f.mu.Lock()
		for f.syncing {
			f.cond.Wait()
		}
		for _, s := range retired {
			if err := s.close(); err != nil {
				l.log.Warn().Err(err).Int64("segment", s.base).Msg("closing a deleted segment")
			}
		}
		f.mu.Unlock()
		for _, s := range retired {
			for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
				p := segmentPath(l.dir, s.base, suffix) + deletedSuffix
				if err := l.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
					l.log.Warn().Err(err).Str("file", p).Msg("removing a deleted segment file")
				}
			}
		}
	})
}
