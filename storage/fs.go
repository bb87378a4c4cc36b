package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// FS is the filesystem a Log works on. OSFS is the real one; tests wrap it
// to count fsyncs and inject faults.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Remove(name string) error
	RemoveAll(path string) error
	Rename(oldpath, newpath string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	MkdirAll(path string, perm fs.FileMode) error
}

// File is an open file of an FS. The Log reads and writes at explicit
// positions only, so a File needs no seek offset and may be shared by
// concurrent readers.
type File interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Close() error
}

// OSFS is the operating system's filesystem. Its files are *os.File, which
// FileRange exposes so that a later Fetch path can sendfile them.
type OSFS struct{}

// OpenFile opens name as os.OpenFile does (openFile: fs_linux.go).
func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := openFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return f, nil
}

// Remove removes one file.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// RemoveAll removes path and everything under it.
func (OSFS) RemoveAll(path string) error { return os.RemoveAll(path) }

// Rename renames oldpath to newpath, replacing newpath.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// ReadDir lists a directory, sorted by name.
func (OSFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// MkdirAll creates path and its missing parents.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// syncDir fsyncs a directory so that files created, renamed or removed in
// it survive a machine crash.
func syncDir(fsys FS, dir string) error {
	d, err := fsys.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// readFull reads exactly len(b) bytes at off. A short read is
// io.ErrUnexpectedEOF: callers only read ranges they know to exist.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil // ReadAt may report io.EOF with a full read at the end
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readSmallFile reads a whole file of at most max bytes.
func readSmallFile(fsys FS, name string, max int64) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", name, fi.Size(), max)
	}
	b := make([]byte, fi.Size())
	if err := readFull(f, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// writeFileAtomic replaces name with data durably: write name.tmp, fsync
// it, rename it over name, fsync the directory.
func writeFileAtomic(fsys FS, dir, name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err != nil {
		_ = fsys.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(fsys, dir)
}
