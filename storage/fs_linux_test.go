package storage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// openFile behaves as os.OpenFile: the same errors, close-on-exec
// descriptors, files that read and write.
func TestOpenFileAsOS(t *testing.T) {
	dir := t.TempDir()
	if _, err := openFile(filepath.Join(dir, "missing"), os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("opening a missing file: %v, want fs.ErrNotExist", err)
	}
	name := filepath.Join(dir, "f")
	f, err := openFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := openFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("O_EXCL on an existing file: %v, want fs.ErrExist", err)
	}
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("descriptor flags %#x (%v), want FD_CLOEXEC", flags, err)
	}
	if _, err := f.WriteAt([]byte("gregor"), 3); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	if _, err := f.ReadAt(b, 3); err != nil || string(b) != "gregor" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 9 || fi.Mode().Perm() != 0o644&^umask(t) {
		t.Fatalf("stat: %v, %v", fi, err)
	}
	if d, err := openFile(dir, os.O_RDONLY, 0); err != nil {
		t.Fatal(err)
	} else if err := errors.Join(d.Sync(), d.Close()); err != nil {
		t.Fatalf("fsync of a directory: %v", err)
	}
}

func umask(t *testing.T) fs.FileMode {
	t.Helper()
	m := unix.Umask(0)
	unix.Umask(m)
	return fs.FileMode(m)
}
