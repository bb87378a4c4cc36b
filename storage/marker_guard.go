package storage

// The clean-shutdown marker after a clean start.
//
// A marker left in the directory makes the next Open trust the files, so
// it must be gone, durably, before the files change. Removing it at Open
// costs a directory fsync a log, which at a start with thousands of logs
// was most of the time before the broker served. A log opened after a
// clean shutdown therefore keeps its marker until the first change to its
// directory: every write, truncation, creation, rename or removal made
// through the log's FS (but creating directories, which the marker says
// nothing about) first removes the marker and fsyncs the directory
// (markerGuard). Until then the files are exactly what the marker
// describes, so a crash meanwhile is rightly taken for a clean shutdown;
// and a clean Close with nothing changed leaves the marker as it is.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Marker states of a markerGuard.
const (
	markerLoading int32 = iota // Open is reading the directory: changes pass, and are noted
	markerPending              // the marker is on disk and describes the files
	markerSettled              // no marker (or it is gone for good)
	markerFailed               // its removal failed: every change fails
)

// markerGuard is the FS of a log: it passes everything to the FS below,
// after making sure, for anything that changes the directory, that the
// clean-shutdown marker is durably gone.
type markerGuard struct {
	FS
	m *pendingMarker
}

// pendingMarker is one log's marker state, shared by its markerGuard and
// the files it opened.
type pendingMarker struct {
	dir   string
	below FS
	state atomic.Int32 // a marker* state; changed under mu, or by loaded before anything else can run
	// changed is set when something changed the directory while loading;
	// read once loading ends.
	changed atomic.Bool
	mu      sync.Mutex // serializes settle
	err     error      // protected by mu: why the removal failed
}

// newMarkerGuard wraps fsys for the log in dir, in the loading state.
func newMarkerGuard(fsys FS, dir string) markerGuard {
	return markerGuard{FS: fsys, m: &pendingMarker{dir: dir, below: fsys}}
}

// loaded ends the loading state: the marker present, and nothing changed
// while loading, leaves it pending; otherwise the caller has removed it
// (or there was none) and the guard passes everything from now on.
func (m *pendingMarker) loaded(markerKept bool) {
	if markerKept {
		m.state.Store(markerPending)
	} else {
		m.state.Store(markerSettled)
	}
}

// settleMarker removes a pending marker now: the entry points that change
// the log under the append lock call it first, so that the directory
// fsync never runs under that lock (the guard would do it at the first
// write, there). An error is left to the write, which meets it again.
func (l *Log) settleMarker() {
	if l.marker.pending() {
		_ = l.marker.settle()
	}
}

// SettleMarker removes now, durably, a clean-shutdown marker Open kept
// (the log's first change would, otherwise): for a caller about to change
// many logs one after another, who can settle them all at once first.
func (l *Log) SettleMarker() error {
	if !l.marker.pending() {
		return nil
	}
	return l.marker.settle()
}

// pending reports whether the marker is still on disk, unchanged.
func (m *pendingMarker) pending() bool { return m.state.Load() == markerPending }

// change is called before anything changes the directory.
func (m *pendingMarker) change() error {
	switch m.state.Load() {
	case markerSettled:
		return nil
	case markerLoading:
		m.changed.Store(true)
		return nil
	}
	return m.settle()
}

// settle removes a pending marker and fsyncs the directory.
func (m *pendingMarker) settle() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state.Load() {
	case markerSettled:
		return nil
	case markerFailed:
		return m.err
	}
	err := m.below.Remove(filepath.Join(m.dir, markerName))
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		err = syncDir(m.below, m.dir)
	}
	if err != nil {
		m.err = fmt.Errorf("remove clean-shutdown marker before changing %s: %w", m.dir, err)
		m.state.Store(markerFailed)
		return m.err
	}
	m.state.Store(markerSettled)
	return nil
}

// writeFlags are the open flags that change a file or the directory.
const writeFlags = os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_TRUNC | os.O_APPEND

// OpenFile opens name; opening to create or truncate is a change, and a
// file opened for writing is guarded for its writes.
func (g markerGuard) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&(os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		if err := g.m.change(); err != nil {
			return nil, err
		}
	}
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil || flag&writeFlags == 0 {
		return f, err
	}
	return guardedFile{File: f, m: g.m}, nil
}

// Remove removes name after settling the marker.
func (g markerGuard) Remove(name string) error {
	if err := g.m.change(); err != nil {
		return err
	}
	return g.FS.Remove(name)
}

// RemoveAll removes path after settling the marker.
func (g markerGuard) RemoveAll(path string) error {
	if err := g.m.change(); err != nil {
		return err
	}
	return g.FS.RemoveAll(path)
}

// Rename renames after settling the marker.
func (g markerGuard) Rename(oldpath, newpath string) error {
	if err := g.m.change(); err != nil {
		return err
	}
	return g.FS.Rename(oldpath, newpath)
}

// guardedFile is a file opened for writing through a markerGuard.
type guardedFile struct {
	File
	m *pendingMarker
}

// WriteAt writes after settling the marker.
func (f guardedFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.m.change(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

// Truncate truncates after settling the marker.
func (f guardedFile) Truncate(size int64) error {
	if err := f.m.change(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// osFile returns the *os.File below f, if that is what it is, for a
// FileRange.
func osFile(f File) *os.File {
	if g, ok := f.(guardedFile); ok {
		f = g.File
	}
	of, _ := f.(*os.File)
	return of
}
