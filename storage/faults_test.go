package storage_test

// Disk faults on every file operation the log makes: each is injected
// once, the log must report ErrStorage (never panic), and a reopen must
// find every acknowledged batch.

import (
	"bytes"
	"cmp"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gregorbroker/gregor/storage"
)

// faultOnce fails the first operation op on a file whose name ends with
// suffix (an empty suffix: the partition directory itself) with err.
func faultOnce(fsys *faultFS, dir, op, suffix string, err error) {
	faultN(fsys, dir, op, suffix, err, 1)
}

// faultN is faultOnce for the first n such operations (n < 0: all).
func faultN(fsys *faultFS, dir, op, suffix string, err error, n int) {
	fired := 0
	fsys.set(func(f *faultFS) {
		f.inject = func(gotOp, name string) error {
			match := strings.HasSuffix(name, suffix)
			if suffix == "" {
				match = filepath.Clean(name) == filepath.Clean(dir)
			}
			if (n >= 0 && fired >= n) || gotOp != op || !match {
				return nil
			}
			fired++
			return err
		}
	})
}

// reopenHas crashes l, reopens the log without faults and checks that it
// holds want from its start offset on (a segment deletion that went
// through may have moved the start). It may hold more: the batch whose
// append failed on an fsync after its write was not acknowledged, and may
// or may not be there.
func reopenHas(t *testing.T, e *env, fsys *faultFS, l *storage.Log, want []stored) *storage.Log {
	t.Helper()
	fsys.set(func(f *faultFS) { f.inject = nil })
	l.Crash()
	l = e.open()
	l.SetHighWatermark(l.LogEndOffset())
	start := l.LogStartOffset()
	var kept []stored
	for _, s := range want {
		if s.base >= start {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		t.Fatalf("after reopen the log starts at %d, past every acknowledged batch", start)
	}
	end := kept[len(kept)-1].last + 1
	if l.LogEndOffset() < end {
		t.Fatalf("after reopen the log ends at %d, below the acknowledged %d", l.LogEndOffset(), end)
	}
	b, _ := readBytes(t, l, kept[0].base, 1<<40, false, end)
	got := splitBatches(t, b)
	if len(got) != len(kept) {
		t.Fatalf("read %d acknowledged batches after reopen, want %d", len(got), len(kept))
	}
	for i := range got {
		if !bytes.Equal(got[i], kept[i].bytes) {
			t.Fatalf("batch at %d differs after reopen", kept[i].base)
		}
	}
	return l
}

func TestDiskFaults(t *testing.T) {
	for _, c := range []struct {
		name   string
		op     string
		suffix string
		err    error
		times  int // how many operations fail; 0 is one
		cfg    func(*storage.Config)
		// act makes the log do the faulty operation and returns its error.
		act func(t *testing.T, l *storage.Log) error
	}{
		{
			name: "offset index write (ENOSPC)", op: faultWrite, suffix: ".index", err: syscall.ENOSPC,
			act: func(t *testing.T, l *storage.Log) error { _, err := l.Append(simple(t, 1, 9), 7); return err },
		},
		{
			name: "time index write (EIO)", op: faultWrite, suffix: ".timeindex", err: syscall.EIO,
			act: func(t *testing.T, l *storage.Log) error { _, err := l.Append(simple(t, 1, 99), 7); return err },
		},
		{
			name: "log write and its cut-back truncation (EIO)", op: faultTruncate, suffix: ".log", err: syscall.EIO,
			act: func(t *testing.T, l *storage.Log) error {
				// The write fails too (failWrite below): the cut-back
				// truncation is what this case injects into.
				_, err := l.Append(simple(t, 1, 9), 7)
				return err
			},
		},
		{
			name: "segment creation at a roll (EMFILE)", op: faultOpen, suffix: ".log", err: syscall.EMFILE,
			cfg: func(c *storage.Config) { c.SegmentBytes = 1 },
			act: func(t *testing.T, l *storage.Log) error { _, err := l.Append(simple(t, 1, 9), 7); return err },
		},
		{
			// Every directory fsync fails: the producer snapshot written at
			// the roll fsyncs the directory first (and only warns).
			name: "directory fsync after a roll (EIO)", op: faultSync, suffix: "", err: syscall.EIO, times: -1,
			cfg: func(c *storage.Config) { c.SegmentBytes = 1; c.FlushMessages = 1 },
			act: func(t *testing.T, l *storage.Log) error { _, err := l.Append(simple(t, 1, 9), 7); return err },
		},
		{
			name: "index fsync at a roll (EIO)", op: faultSync, suffix: ".index", err: syscall.EIO,
			cfg: func(c *storage.Config) { c.SegmentBytes = 1; c.FlushMessages = 1 },
			act: func(t *testing.T, l *storage.Log) error { _, err := l.Append(simple(t, 1, 9), 7); return err },
		},
		{
			name: "segment rename at retention (EIO)", op: faultRename, suffix: ".log", err: syscall.EIO,
			cfg: func(c *storage.Config) { c.SegmentBytes = 1 },
			act: func(t *testing.T, l *storage.Log) error {
				_, err := l.DeleteSegmentsBelow(l.LogEndOffset())
				return err
			},
		},
		{
			name: "index rename at retention, after the .log's (EIO)", op: faultRename, suffix: ".timeindex", err: syscall.EIO,
			cfg: func(c *storage.Config) { c.SegmentBytes = 1 },
			act: func(t *testing.T, l *storage.Log) error {
				_, err := l.DeleteSegmentsBelow(l.LogEndOffset())
				return err
			},
		},
		{
			name: "truncation to follow a leader (EIO)", op: faultTruncate, suffix: ".log", err: syscall.EIO,
			act: func(t *testing.T, l *storage.Log) error { _, err := l.TruncateTo(l.LogEndOffset() - 1); return err },
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := storage.DefaultConfig()
			cfg.IndexIntervalBytes = 0 // an index entry with every batch
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			e := newEnv(t, cfg)
			fsys := &faultFS{}
			e.fs = fsys
			l := e.open()
			want := appendAll(t, l, simple(t, 2, 1), simple(t, 3, 2), simple(t, 1, 3))
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			if c.name == "log write and its cut-back truncation (EIO)" {
				fsys.set(func(f *faultFS) { f.failWrite = syscall.EIO })
			}
			faultN(fsys, e.dir, c.op, c.suffix, c.err, cmp.Or(c.times, 1))
			err := c.act(t, l)
			fsys.set(func(f *faultFS) { f.failWrite = nil })
			if !errors.Is(err, storage.ErrStorage) || !errors.Is(err, c.err) {
				t.Fatalf("error %v, want ErrStorage wrapping %v", err, c.err)
			}
			if _, err := l.Append(simple(t, 1, 4), 7); !errors.Is(err, storage.ErrStorage) {
				t.Fatalf("append after the fault: %v, want the sticky ErrStorage", err)
			}
			if _, err := l.Read(l.LogStartOffset(), 1<<20, true, l.LogEndOffset()); !errors.Is(err, storage.ErrStorage) {
				t.Fatalf("read after the fault: %v, want ErrStorage", err)
			}
			if c.op == faultTruncate && c.name == "truncation to follow a leader (EIO)" {
				// Truncation may or may not have happened: what is below
				// the truncation point stays.
				want = want[:len(want)-1]
				fsys.set(func(f *faultFS) { f.inject = nil })
				l.Crash()
				l = e.open()
				if l.LogEndOffset() < want[len(want)-1].last+1 {
					t.Fatalf("after reopen the log ends at %d, below the truncation point %d", l.LogEndOffset(), want[len(want)-1].last+1)
				}
				if _, err := l.TruncateTo(want[len(want)-1].last + 1); err != nil {
					t.Fatal(err)
				}
				l.SetHighWatermark(l.LogEndOffset())
				checkLog(t, l, want)
			} else {
				l = reopenHas(t, e, fsys, l, want)
			}
			more := appendAll(t, l, simple(t, 1, 5))
			if more[0].last != l.LogEndOffset()-1 {
				t.Fatalf("append after the reopen at %d", more[0].base)
			}
		})
	}
}

// TestOpenEMFILE: running out of file descriptors while opening a log is
// an error from Open, not a panic, and the next Open works.
func TestOpenEMFILE(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	fsys := &faultFS{}
	e.fs = fsys
	l := e.open()
	want := appendAll(t, l, simple(t, 2, 1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{".log", ".index", ".timeindex"} {
		faultOnce(fsys, e.dir, faultOpen, suffix, syscall.EMFILE)
		if l, err := e.tryOpen(); !errors.Is(err, syscall.EMFILE) {
			if l != nil {
				l.Close()
			}
			t.Fatalf("open with EMFILE on %s: %v", suffix, err)
		}
	}
	fsys.set(func(f *faultFS) { f.inject = nil })
	l = e.open()
	l.SetHighWatermark(l.LogEndOffset())
	checkLog(t, l, want)
}
