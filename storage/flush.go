package storage

// fsync policy and group commit.
//
// Appends never fsync under the append lock (the first change after a
// clean start removes the clean-shutdown marker, with a directory fsync,
// before taking it: marker_guard.go). An append that the flush
// policy (flush.messages, flush.ms) says must be durable releases the lock
// and calls waitSynced with the end of its batch. The first such caller
// to find no sync pass running runs one: it loads the log end offset,
// fsyncs every .log with unsynced bytes, and records that everything below
// that offset is durable. Callers arriving meanwhile wait on a condition
// variable; when the pass ends, those it covered return and one of the rest
// runs the next pass, which covers all of them. N concurrent appenders thus
// cost about two fsyncs, not N.
//
// flush.ms is checked on every append (by Options.Now) and, for a log that
// stops receiving appends, by a timer (time.AfterFunc, wall time) armed
// when an append leaves data unflushed and flush.ms is set. The timer is
// owned by the Log: Close stops it and waits for a firing in progress.

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregorbroker/gregor/internal/safe"
)

// flushState is the fsync side of a Log.
type flushState struct {
	mu   sync.Mutex
	cond sync.Cond // on mu; broadcast at the end of each sync pass

	// Protected by mu.
	syncing     bool        // a sync pass is running; its goroutine owns the segments' sync fields
	synced      int64       // every offset below is fsynced
	err         error       // sticky failure (fsync, or cutting back a failed write); no appends after it
	oldest      time.Time   // when the oldest unflushed append happened; zero when everything is synced
	dirDirty    bool        // a segment file was created since the directory was last fsynced
	syncedBelow int64       // segments with a lower base offset are inactive and fully synced
	timer       *time.Timer // armed flush.ms timer, or nil
	stopped     bool        // Close began: arm no timer
	filesClosed bool        // the files are closed: run no pass

	passes atomic.Int64 // sync passes that fsynced a .log (tests, metrics)
}

// failure returns the sticky failure, if any.
func (l *Log) failure() error {
	l.fl.mu.Lock()
	defer l.fl.mu.Unlock()
	return l.fl.err
}

// Failed returns the sticky failure (errors.Is ErrStorage), or nil while
// the log works. The broker polls it to hand off leadership.
func (l *Log) Failed() error {
	if !l.failed.Load() {
		return nil
	}
	return l.failure()
}

// setFailed records a sticky failure and returns the log's failure.
func (l *Log) setFailed(err error) error {
	l.fl.mu.Lock()
	defer l.fl.mu.Unlock()
	l.setFailedLocked(err)
	return l.fl.err
}

// setFailedLocked records a sticky failure, wrapped in ErrStorage; the
// first one stays. fl.mu held.
func (l *Log) setFailedLocked(err error) {
	if l.fl.err != nil {
		return
	}
	l.fl.err = fmt.Errorf("%w: %s: %w", ErrStorage, l.dir, err)
	l.failed.Store(true)
	l.fl.cond.Broadcast()
	l.log.Error().Err(err).Str("dir", l.dir).Int64("log_end_offset", l.leo.Load()).
		Msg("log failed; it refuses appends and reads until reopened")
}

// noteAppendLocked records an append, made at now, whose batch ends below
// end, and reports whether the flush policy makes the appender wait for
// an fsync covering it. Called by the append path (l.mu held).
func (l *Log) noteAppendLocked(cfg *Config, end int64, now time.Time) bool {
	f := &l.fl
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.oldest.IsZero() {
		f.oldest = now
	}
	wait := cfg.flushMessages() && end-f.synced >= cfg.FlushMessages
	if d := cfg.flushInterval(); d > 0 {
		if now.Sub(f.oldest) >= d {
			wait = true
		} else {
			l.armTimerLocked(d, now)
		}
	}
	return wait
}

// waitSynced returns once every offset below target is fsynced, running
// sync passes as needed (see the file comment).
func (l *Log) waitSynced(target int64) error {
	f := &l.fl
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		switch {
		case f.err != nil:
			return f.err
		case f.synced >= target:
			return nil
		case f.syncing:
			f.cond.Wait()
		case f.filesClosed:
			return ErrClosed
		case target > l.leo.Load():
			return nil // TruncateTo removed what was waited for
		default:
			l.passLocked(false)
		}
	}
}

// syncFinal waits for a running pass, then runs one that also fsyncs the
// active segment's indexes. For Close.
func (l *Log) syncFinal() error {
	f := &l.fl
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.syncing {
		f.cond.Wait()
	}
	if f.err == nil {
		l.passLocked(true)
	}
	return f.err
}

// passLocked runs one sync pass, releasing fl.mu during the I/O. fl.mu is
// held and no pass is running.
func (l *Log) passLocked(final bool) {
	f := &l.fl
	f.syncing = true
	dirDirty := f.dirDirty
	f.dirDirty = false
	below := f.syncedBelow
	start := l.now()
	f.mu.Unlock()

	end, newBelow, err := l.syncPass(below, dirDirty, final)

	f.mu.Lock()
	f.syncing = false
	f.syncedBelow = newBelow
	if err != nil {
		f.dirDirty = f.dirDirty || dirDirty
		l.setFailedLocked(err)
	} else if end > f.synced {
		f.synced = end
	}
	if f.synced >= l.leo.Load() {
		f.oldest = time.Time{}
	} else if f.err == nil {
		// What is left was appended after the pass began.
		f.oldest = start
		if d := l.cfg.Load().flushInterval(); d > 0 {
			l.armTimerLocked(d, start)
		}
	}
	f.cond.Broadcast()
}

// syncPass fsyncs every .log with unsynced bytes, the index files of
// segments that stopped being active (and of the active one when final),
// and the directory when files were created in it. It returns the log
// end offset loaded before any fsync: everything below it is durable when
// err is nil. Run only by the goroutine that set fl.syncing.
func (l *Log) syncPass(below int64, dirDirty, final bool) (end, newBelow int64, err error) {
	end = l.leo.Load()
	segs := *l.segs.Load()
	newBelow = below
	synced := false
	defer func() {
		if synced {
			l.fl.passes.Add(1)
		}
	}()
	for i := sort.Search(len(segs), func(i int) bool { return segs[i].base >= below }); i < len(segs); i++ {
		s := segs[i]
		active := i == len(segs)-1
		if size := s.size.Load(); size > s.syncedSize {
			if err := s.log.Sync(); err != nil {
				return end, newBelow, fmt.Errorf("fsync %s: %w", segmentPath(l.dir, s.base, logSuffix), err)
			}
			s.syncedSize = size
			synced = true
		}
		if (!active || final) && !s.indexSynced {
			if err := errors.Join(s.idx.Sync(), s.tidx.Sync()); err != nil {
				return end, newBelow, fmt.Errorf("fsync indexes of segment %d: %w", s.base, err)
			}
			s.indexSynced = !active
		}
		if !active {
			newBelow = segs[i+1].base
		}
	}
	if dirDirty {
		if err := syncDir(l.fs, l.dir); err != nil {
			return end, newBelow, err
		}
	}
	return end, newBelow, nil
}

// armTimerLocked arms the flush.ms timer if data is unflushed and no
// timer is armed. fl.mu held.
func (l *Log) armTimerLocked(d time.Duration, now time.Time) {
	f := &l.fl
	if f.timer != nil || f.stopped || f.oldest.IsZero() {
		return
	}
	delay := max(d-now.Sub(f.oldest), time.Millisecond)
	l.bg.Add(1) // before Close's bg.Wait: Close sets stopped under fl.mu first
	f.timer = time.AfterFunc(delay, func() { safe.Run(l.log, "flush timer", l.flushTimerFired) })
}

// flushTimerFired fsyncs what is unflushed and re-arms if appends kept
// coming. It runs on the timer's goroutine, counted in l.bg.
func (l *Log) flushTimerFired() {
	defer l.bg.Done()
	f := &l.fl
	f.mu.Lock()
	f.timer = nil
	f.mu.Unlock()
	// An error is sticky and logged by the pass; appends will report it.
	_ = l.waitSynced(l.leo.Load())
	f.mu.Lock()
	if d := l.cfg.Load().flushInterval(); d > 0 {
		l.armTimerLocked(d, l.now())
	}
	f.mu.Unlock()
}

// stopFlusher stops the flush.ms timer for good. A firing already under
// way finishes on its own; Close waits for it through l.bg.
func (l *Log) stopFlusher() {
	f := &l.fl
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	if f.timer != nil && f.timer.Stop() {
		f.timer = nil
		l.bg.Done()
	}
}

// closeFiles marks the files closed once no pass is running; after it no
// pass starts.
func (l *Log) closeFilesFlusher() {
	f := &l.fl
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.syncing {
		f.cond.Wait()
	}
	f.filesClosed = true
	f.cond.Broadcast()
}
