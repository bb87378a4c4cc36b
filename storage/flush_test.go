package storage_test

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gregorbroker/gregor/storage"
)

// TestGroupCommit holds the first fsync until every other appender has
// written its batch: they must then share one more fsync.
func TestGroupCommit(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.FlushMessages = 1
	e := newEnv(t, cfg)
	fsys := &faultFS{}
	e.fs = fsys
	l := e.open()
	const appenders = 32
	var once sync.Once
	fsys.set(func(f *faultFS) {
		f.onLogSync = func() {
			once.Do(func() {
				waitFor(t, "every appender to write", func() bool { return l.LogEndOffset() == appenders })
			})
		}
	})
	var wg sync.WaitGroup
	for i := range appenders {
		wg.Go(func() {
			res, err := l.Append(simple(t, 1, int64(i)), 0)
			if err != nil {
				t.Error(err)
				return
			}
			if l.SyncedOffset() <= res.LastOffset {
				t.Errorf("append of %d returned before an fsync covered it", res.LastOffset)
			}
		})
	}
	wg.Wait()
	if p := l.SyncPasses(); p < 1 || p > 2 {
		t.Fatalf("%d fsync passes for %d concurrent appends, want 1 or 2", p, appenders)
	}
	if fsys.syncs() != int(l.SyncPasses()) {
		t.Fatalf("%d .log fsyncs, %d passes", fsys.syncs(), l.SyncPasses())
	}
}

// TestGroupCommitUnderLoad: many rounds of concurrent appends, each
// durable when it returns, cost fewer fsyncs than appends.
func TestGroupCommitUnderLoad(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.FlushMessages = 1
	cfg.SegmentBytes = 16 << 10 // rolls too
	e := newEnv(t, cfg)
	l := e.open()
	const appenders, each = 16, 20
	var wg sync.WaitGroup
	for i := range appenders {
		wg.Go(func() {
			for j := range each {
				res, err := l.Append(simple(t, 1+j%2, int64(i)), 0)
				if err != nil {
					t.Error(err)
					return
				}
				if l.SyncedOffset() <= res.LastOffset {
					t.Errorf("append of %d returned before an fsync covered it", res.LastOffset)
				}
			}
		})
	}
	wg.Wait()
	if p := l.SyncPasses(); p >= appenders*each || p < 1 {
		t.Fatalf("%d fsync passes for %d appends", p, appenders*each)
	}
	t.Logf("%d appends, %d fsync passes, %d segments", appenders*each, l.SyncPasses(), len(l.SegmentBases()))
}

func TestFlushMessagesThreshold(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.FlushMessages = 5
	l := newEnv(t, cfg).open()
	for i := 1; i <= 12; i++ {
		appendAll(t, l, simple(t, 1, 1))
		if want := int64(i / 5); l.SyncPasses() != want {
			t.Fatalf("after %d appends %d fsync passes, want %d", i, l.SyncPasses(), want)
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if l.SyncPasses() != 3 || l.SyncedOffset() != 12 {
		t.Fatalf("after Flush: %d passes, synced to %d", l.SyncPasses(), l.SyncedOffset())
	}
	if err := l.Flush(); err != nil || l.SyncPasses() != 3 {
		t.Fatalf("Flush with nothing new: %v, %d passes", err, l.SyncPasses())
	}
}

func TestFlushLeftToOS(t *testing.T) {
	l := newEnv(t, storage.DefaultConfig()).open()
	for range 50 {
		appendAll(t, l, simple(t, 1, 1))
	}
	if l.SyncPasses() != 0 {
		t.Fatalf("%d fsyncs with flushing left to the OS", l.SyncPasses())
	}
}

func TestFlushMsOnAppend(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.FlushMs = 60_000 // the wall-clock timer will not fire during the test
	e := newEnv(t, cfg)
	l := e.open()
	appendAll(t, l, simple(t, 1, 1))
	e.clock.Advance(59 * time.Second)
	appendAll(t, l, simple(t, 1, 1))
	if l.SyncPasses() != 0 {
		t.Fatalf("fsync before flush.ms passed")
	}
	e.clock.Advance(time.Second)
	appendAll(t, l, simple(t, 1, 1))
	if l.SyncPasses() != 1 || l.SyncedOffset() != 3 {
		t.Fatalf("%d passes, synced to %d; want 1, 3", l.SyncPasses(), l.SyncedOffset())
	}
	// The clock restarts at the next unflushed append.
	e.clock.Advance(time.Hour)
	appendAll(t, l, simple(t, 1, 1))
	e.clock.Advance(59 * time.Second)
	appendAll(t, l, simple(t, 1, 1))
	if l.SyncPasses() != 1 {
		t.Fatalf("%d passes, want 1", l.SyncPasses())
	}
}

func TestFlushMsTimer(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.FlushMs = 5
	l := newEnv(t, cfg).open()
	appendAll(t, l, simple(t, 3, 1))
	waitFor(t, "the flush.ms timer", func() bool { return l.SyncedOffset() == 3 })
	appendAll(t, l, simple(t, 1, 1))
	waitFor(t, "the re-armed timer", func() bool { return l.SyncedOffset() == 4 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFsyncFailureIsSticky(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.FlushMessages = 1
	e := newEnv(t, cfg)
	fsys := &faultFS{}
	e.fs = fsys
	l := e.open()
	ok := appendAll(t, l, simple(t, 1, 1))
	fsys.set(func(f *faultFS) { f.failSync = errInjected })
	if _, err := l.Append(simple(t, 1, 1), 0); !errors.Is(err, errInjected) {
		t.Fatalf("append with failing fsync: %v", err)
	}
	fsys.set(func(f *faultFS) { f.failSync = nil })
	// After a failed fsync the page cache may have dropped the data: no
	// more appends, and no clean shutdown.
	if _, err := l.Append(simple(t, 1, 1), 0); !errors.Is(err, errInjected) {
		t.Fatalf("append after a failed fsync: %v", err)
	}
	if err := l.Flush(); !errors.Is(err, errInjected) {
		t.Fatalf("flush after a failed fsync: %v", err)
	}
	if lines := e.logs.lines(t, "log failed"); len(lines) != 1 || lines[0]["level"] != "error" {
		t.Fatalf("log lines %v", lines)
	}
	if err := l.Close(); !errors.Is(err, errInjected) {
		t.Fatalf("close after a failed fsync: %v", err)
	}
	if _, err := os.Stat(e.path(storage.MarkerName)); !os.IsNotExist(err) {
		t.Fatal("clean-shutdown marker after a failed fsync")
	}
	l = e.open()
	if l.LogEndOffset() < ok[0].last+1 {
		t.Fatalf("leo %d after reopen", l.LogEndOffset())
	}
}

// TestWriteFailureCutsBack: a write that fails (EIO, ENOSPC) is cut back
// from the files and fails the log: later appends and reads get
// ErrStorage until the log is reopened, and the reopened log holds exactly
// the batches acknowledged before, with no damage to recover.
func TestWriteFailureCutsBack(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.IndexIntervalBytes = 0
	e := newEnv(t, cfg)
	fsys := &faultFS{}
	e.fs = fsys
	l := e.open()
	want := appendAll(t, l, simple(t, 2, 1), simple(t, 2, 2))
	size := l.Size()
	fsys.set(func(f *faultFS) { f.failWrite = syscall.ENOSPC })
	_, err := l.Append(simple(t, 1, 3), 0)
	if !errors.Is(err, storage.ErrStorage) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append with failing write: %v, want ErrStorage wrapping ENOSPC", err)
	}
	if l.LogEndOffset() != 4 || l.Size() != size {
		t.Fatalf("leo %d size %d after a failed write; want 4, %d", l.LogEndOffset(), l.Size(), size)
	}
	if fi, err := os.Stat(e.path(segName(0, ".log"))); err != nil || fi.Size() != size {
		t.Fatalf("half-written batch left in the file: %v", fi.Size())
	}
	fsys.set(func(f *faultFS) { f.failWrite = nil })
	if _, err := l.Append(simple(t, 1, 3), 0); !errors.Is(err, storage.ErrStorage) {
		t.Fatalf("append after a failed write: %v, want the sticky ErrStorage", err)
	}
	if _, err := l.Read(0, 1<<20, true, l.LogEndOffset()); !errors.Is(err, storage.ErrStorage) {
		t.Fatalf("read after a failed write: %v, want ErrStorage", err)
	}
	if err := l.Failed(); !errors.Is(err, storage.ErrStorage) {
		t.Fatalf("Failed: %v", err)
	}
	l.Crash()
	e.logs = &logLines{}
	l = e.open()
	l.SetHighWatermark(l.LogEndOffset())
	checkLog(t, l, want)
	if warns := e.logs.atLevel(t, "warn"); len(warns) != 0 {
		t.Fatalf("recovery found damage: %v", warns)
	}
	want = append(want, appendAll(t, l, simple(t, 1, 3))...)
	if want[2].base != 4 {
		t.Fatalf("append after the reopen at %d, want 4", want[2].base)
	}
}

// TestRollFsyncsPreviousSegment: with flushing left to the OS, a segment
// is still fsynced once it stops being active.
func TestRollFsyncsPreviousSegment(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 300
	e := newEnv(t, cfg)
	fsys := &faultFS{}
	e.fs = fsys
	l := e.open()
	for l.SegmentBases()[len(l.SegmentBases())-1] == 0 {
		appendAll(t, l, simple(t, 1, 1))
	}
	waitFor(t, "the roll's fsync", func() bool { return fsys.syncs() >= 1 })
}

// TestCloseDuringAppends: appends racing Close either land (and survive
// the reopen) or fail with ErrClosed.
func TestCloseDuringAppends(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.FlushMessages = 1
	cfg.SegmentBytes = 2 << 10
	e := newEnv(t, cfg)
	l := e.open()
	var mu sync.Mutex
	var landed int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for {
				res, err := l.Append(simple(t, 1, int64(i)), 0)
				if errors.Is(err, storage.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				landed = max(landed, res.LastOffset+1)
				mu.Unlock()
			}
		})
	}
	waitFor(t, "some appends", func() bool { return l.LogEndOffset() > 50 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	l = e.open()
	if l.LogEndOffset() < landed {
		t.Fatalf("leo %d after reopen, appends acknowledged up to %d", l.LogEndOffset(), landed)
	}
	if warns := e.logs.atLevel(t, "warn"); len(warns) != 0 {
		t.Fatalf("clean close, yet: %v", warns)
	}
}
