package storage_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gregorbroker/gregor/storage"
)

// After a clean shutdown, Open leaves the marker, fsyncing nothing; the
// first change of any kind removes it durably first, so that a crash
// afterwards is recovered as one; a crash before any change is rightly
// taken for the clean shutdown it still is, and a clean Close with no
// change leaves the marker as it was, again without an fsync.
func TestMarkerKeptUntilFirstChange(t *testing.T) {
	changes := []struct {
		name   string
		change func(t *testing.T, l *storage.Log)
	}{
		{"append", func(t *testing.T, l *storage.Log) { appendAll(t, l, simple(t, 2, 9000)) }},
		{"truncate", func(t *testing.T, l *storage.Log) {
			if _, err := l.TruncateTo(l.LogEndOffset() - 2); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete segments", func(t *testing.T, l *storage.Log) {
			bases := l.SegmentBases()
			if _, err := l.DeleteSegmentsBelow(bases[1]); err != nil {
				t.Fatal(err)
			}
		}},
		{"assign epoch", func(t *testing.T, l *storage.Log) {
			if err := l.AssignEpoch(8); err != nil { // fill appends at epoch 7
				t.Fatal(err)
			}
		}},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, recoveryConfig(200))
			fsys := &dirSyncCounter{FS: storage.OSFS{}}
			e.fs = fsys
			l := e.open()
			want := fill(t, l, 30)
			l.SetHighWatermark(l.LogEndOffset())
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			marker := readFile(t, e.path(storage.MarkerName))

			// Open, do what a broker does at start to a quiet log it leads
			// or follows (assign the epoch it already has, truncate to its
			// end), crash: clean, and no fsync at all.
			before := fsys.count()
			l = e.open()
			if err := l.AssignEpoch(7); err != nil { // fill appends at epoch 7
				t.Fatal(err)
			}
			if _, err := l.TruncateTo(l.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
			l.Crash()
			if n := fsys.count() - before; n != 0 {
				t.Fatalf("%d fsyncs opening a cleanly shut down log and leaving it, want 0", n)
			}
			l = e.open()
			if l.CrashRecovered() {
				t.Fatal("a crash with nothing changed since a clean start was recovered as a crash")
			}
			checkLog(t, l, want)
			// A clean close with nothing changed: the same marker, no fsync.
			before = fsys.count()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if n := fsys.count() - before; n != 0 {
				t.Fatalf("%d fsyncs closing an unchanged log, want 0", n)
			}
			if got := readFile(t, e.path(storage.MarkerName)); string(got) != string(marker) {
				t.Fatalf("marker %q after an unchanged clean close, want %q", got, marker)
			}

			l = e.open()
			c.change(t, l)
			if _, err := os.Stat(e.path(storage.MarkerName)); !os.IsNotExist(err) {
				t.Fatalf("marker still there after the change: %v", err)
			}
			if fsys.dirSyncsOf(e.dir) == 0 {
				t.Fatal("the marker's removal was not made durable (no fsync of the directory)")
			}
			l.Crash()
			l = e.open()
			if !l.CrashRecovered() {
				t.Fatal("a crash after a change was taken for a clean shutdown")
			}
		})
	}
}

// A marker that cannot be removed fails the change that needed it, and
// every later one, and is left in place: the files stay as it describes.
func TestMarkerRemovalFailureRefusesChanges(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	fsys := &faultFS{}
	e.fs = fsys
	l := e.open()
	fill(t, l, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	leo := l.LogEndOffset()
	boom := errors.New("injected: read-only filesystem")
	fsys.set(func(f *faultFS) {
		f.inject = func(op, name string) error {
			if op == faultRemove && filepath.Base(name) == storage.MarkerName {
				return boom
			}
			return nil
		}
	})
	for i := range 2 {
		if _, err := l.Append(simple(t, 2, 1), 0); err == nil {
			t.Fatalf("append %d succeeded without removing the marker", i)
		}
	}
	if l.LogEndOffset() != leo {
		t.Fatalf("log end %d after refused appends, want %d", l.LogEndOffset(), leo)
	}
	if _, err := os.Stat(e.path(storage.MarkerName)); err != nil {
		t.Fatalf("marker: %v, want it left in place", err)
	}
	l.Crash()
	fsys.set(func(f *faultFS) { f.inject = nil })
	l = e.open()
	if l.LogEndOffset() != leo {
		t.Fatalf("log end %d after reopening, want %d", l.LogEndOffset(), leo)
	}
}

// dirSyncCounter counts fsyncs, by directory for directories.
type dirSyncCounter struct {
	storage.FS
	mu    sync.Mutex
	total int
	dirs  map[string]int
}

func (c *dirSyncCounter) OpenFile(name string, flag int, perm os.FileMode) (storage.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &countedFile{File: f, c: c, name: name}, nil
}

func (c *dirSyncCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

func (c *dirSyncCounter) dirSyncsOf(dir string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirs[dir]
}

type countedFile struct {
	storage.File
	c    *dirSyncCounter
	name string
}

func (f *countedFile) Sync() error {
	f.c.mu.Lock()
	f.c.total++
	if fi, err := os.Stat(f.name); err == nil && fi.IsDir() {
		if f.c.dirs == nil {
			f.c.dirs = map[string]int{}
		}
		f.c.dirs[strings.TrimSuffix(f.name, "/")]++
	}
	f.c.mu.Unlock()
	return f.File.Sync()
}
