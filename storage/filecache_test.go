package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/storage"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// cachedEnv is an env whose logs share a descriptor cache of max files.
func cachedEnv(t *testing.T, max int) *env {
	e := newEnv(t, recoveryConfig(200))
	e.files = storage.NewFileCache(max, zerolog.Nop())
	t.Cleanup(e.files.Close)
	return e
}

// TestFileCacheBoundsDescriptors: a log of many segments keeps no more
// descriptors than the cache allows, writing, reading every segment, and
// reopening after a crash; a log without a cache keeps three a segment.
func TestFileCacheBoundsDescriptors(t *testing.T) {
	const max = 4
	e := cachedEnv(t, max)
	l := e.open()
	want := fill(t, l, 80)
	bases := l.SegmentBases()
	if len(bases) < 8 {
		t.Fatalf("%d segments, the test needs 8", len(bases))
	}
	checkLog(t, l, want)
	// Evicted descriptors are closed by the cache's closer after their
	// fsync, and background work (a rolled segment's fsync) opens files
	// for a moment: the count settles at max, and at any moment stays
	// within the cache's hard bound, 2*max plus one a running operation
	// (filecache.go). Only the log directory's descriptors are counted:
	// the Go runtime opens others (cgroup files, pipes) on its own.
	hard := 2*max + 2
	waitFor(t, "evicted descriptors closed", func() bool { return e.files.Open() <= max && dirFDs(t, e.dir) <= max })
	if n := dirFDs(t, e.dir); n > hard {
		t.Fatalf("%d descriptors of the log open with %d segments, want at most %d: %v", n, len(bases), hard, listFDs(t))
	}
	l.Crash()
	e.rp = 0
	l = e.open() // recovery reads every segment through the cache
	checkLog(t, l, want)
	waitFor(t, "evicted descriptors closed", func() bool { return e.files.Open() <= max && dirFDs(t, e.dir) <= max })
	if n := dirFDs(t, e.dir); n > hard {
		t.Fatalf("%d descriptors of the log open after recovery, want at most %d", n, hard)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := e.files.Open(); n != 0 {
		t.Fatalf("%d descriptors open after Close", n)
	}

	// Without a cache: three a segment.
	plain := newEnv(t, recoveryConfig(200))
	plain.files = nil
	at := openFDs(t)
	pl := plain.open()
	fill(t, pl, 80)
	if n := openFDs(t) - at; n < 3*len(pl.SegmentBases()) {
		t.Fatalf("without a cache %d descriptors for %d segments: is the count right?", n, len(pl.SegmentBases()))
	}
}

// TestFileCacheRangeAfterEviction: a range handed out by Read stays
// readable after its descriptor was closed (it reopens), also once its
// segment was deleted and renamed .deleted; not after the log closed.
func TestFileCacheRangeAfterEviction(t *testing.T) {
	e := cachedEnv(t, 2)
	e.cfg.FileDeleteDelayMs = 1 << 40
	l := e.open()
	want := fill(t, l, 60)
	bases := l.SegmentBases()
	rr, err := l.Read(0, 1<<20, true, bases[1])
	if err != nil || len(rr.Ranges) != 1 {
		t.Fatalf("read of the first segment: %v, %+v", err, rr)
	}
	// Reading every other segment pushes the first one's descriptor out,
	// once it is clean: the fsync of a rolled segment runs in the
	// background, and a descriptor with unsynced writes goes last. Until
	// then the range is read from the open descriptor; read again, bounded.
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		checkLog(t, l, want)
		opened := e.files.Opened()
		if b, err = rr.Ranges[0].AppendTo(nil); err != nil {
			t.Fatal(err)
		}
		if e.files.Opened() != opened {
			break // it reopened
		}
		if time.Now().After(deadline) {
			t.Fatal("the range was read without reopening: the test evicted nothing")
		}
	}
	var first []byte
	for _, s := range want {
		if s.base < bases[1] {
			first = append(first, s.bytes...)
		}
	}
	if !bytes.Equal(b, first) {
		t.Fatal("range read after eviction differs")
	}
	if n, err := l.DeleteSegmentsBelow(bases[2]); err != nil || n != 2 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, segName(0, ".log.deleted"))); err != nil {
		t.Fatal(err)
	}
	checkLog(t, l, below(want, 1<<40)[len(below(want, bases[2])):])
	if b, err := rr.Ranges[0].AppendTo(nil); err != nil || !bytes.Equal(b, first) {
		t.Fatalf("range of a deleted segment after eviction: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rr.Ranges[0].AppendTo(nil); err == nil {
		t.Fatal("range readable after Close")
	}
}

// TestFileCacheEvictedSyncFails: a descriptor with unsynced writes is
// fsynced before the cache closes it; when that fsync fails, the log's
// next fsync reports it and the log fails, as with any failed fsync.
func TestFileCacheEvictedSyncFails(t *testing.T) {
	fsys := &faultFS{}
	e := cachedEnv(t, 1)
	e.fs = fsys
	e.cfg.SegmentBytes = 1 << 20
	l := e.open()
	appendAll(t, l, simple(t, 3, 1))
	var fired atomic.Bool
	fsys.set(func(f *faultFS) {
		f.inject = func(op, name string) error {
			if op == faultSync && strings.HasSuffix(name, segName(0, ".log")) && strings.HasPrefix(name, e.dir) && fired.CompareAndSwap(false, true) {
				return errInjected
			}
			return nil
		}
	})
	// Another log's appends push the dirty .log out of the one-descriptor
	// cache: idle descriptors without unsynced writes go first, then,
	// one at a time, the least recently used dirty ones, which the closer
	// fsyncs, and fails for this .log. The other log never rolls, so each
	// append leaves only dirty descriptors idle.
	other := newEnv(t, storage.DefaultConfig())
	other.files = e.files
	ol := other.open()
	deadline := time.Now().Add(10 * time.Second)
	for !fired.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the dirty .log was not evicted and fsynced by the closer; %d descriptors open", e.files.Open())
		}
		appendAll(t, ol, simple(t, 1, 1))
	}
	if err := l.Flush(); !errors.Is(err, storage.ErrStorage) || !errors.Is(err, errInjected) {
		t.Fatalf("flush after a failed fsync at eviction: %v, want the injected error", err)
	}
}

// dirFDs counts the process's descriptors of files in dir.
func dirFDs(t *testing.T, dir string) int {
	n := 0
	for _, l := range listFDs(t) {
		if strings.HasPrefix(l, dir+"/") {
			n++
		}
	}
	return n
}

func listFDs(t *testing.T) []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, l)
	}
	return out
}

// TestFileCacheBoundUnderConcurrentWriters: many logs written at once on
// a disk whose fsyncs are slower than the writers, so the closer cannot
// keep up: the cache never holds more than 2*max descriptors beyond one
// per writer (the bound in filecache.go), and every append lands and is
// fsynced without error.
func TestFileCacheBoundUnderConcurrentWriters(t *testing.T) {
	const (
		max      = 8
		logs     = 64
		writers  = 8
		appends  = 150
		maxBound = 2*max + writers
	)
	files := storage.NewFileCache(max, zerolog.Nop())
	t.Cleanup(files.Close)
	ffs := &faultFS{}
	ffs.set(func(f *faultFS) { f.onLogSync = func() { time.Sleep(time.Millisecond) } })
	dir := t.TempDir()
	cfg := storage.DefaultConfig()
	ls := make([]*storage.Log, logs)
	for i := range ls {
		l, err := storage.Open(filepath.Join(dir, fmt.Sprintf("t-%d", i)), cfg, storage.Options{FS: ffs, Files: files})
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
	}
	t.Cleanup(func() {
		for _, l := range ls {
			_ = l.Close()
		}
	})

	var peak atomic.Int64
	note := func() {
		n := int64(files.Open())
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
	}
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
				note()
				runtime.Gosched()
			}
		}
	}()
	batch := simple(t, 1, 1)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appends {
				l := ls[(w*logs/writers+i*7)%logs]
				if _, err := l.Append(append([]byte(nil), batch...), 0); err != nil {
					errs <- err
					return
				}
				note()
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p := peak.Load(); p > maxBound {
		t.Fatalf("%d descriptors open at the peak with a bound of %d and %d writers, want at most %d", p, max, writers, maxBound)
	}
	var total int64
	for _, l := range ls {
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		total += l.LogEndOffset()
	}
	if total != writers*appends {
		t.Fatalf("%d records in the logs, want %d", total, writers*appends)
	}
	t.Logf("peak %d descriptors open (bound %d, %d writers, %d logs), %d opened in all", peak.Load(), max, writers, logs, files.Opened())
}
