//go:build faultinject

package main

// Built only with the faultinject tag, for the integration tests of disk
// failures: a partition's disk fails while its directory holds a file
// named FAIL-DISK, every write to the partition's files then returning
// EIO. Release builds have no such switch (faultinject_off.go).

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gregorbroker/gregor/storage"
)

// failDiskName is the file that fails its directory's disk.
const failDiskName = "FAIL-DISK"

// logFS is the filesystem the partition logs use.
func logFS() storage.FS { return failDiskFS{} }

// failDiskFS is the OS filesystem whose writes fail in a directory
// holding failDiskName.
type failDiskFS struct{ storage.OSFS }

// OpenFile opens name; its writes fail while its directory holds
// failDiskName.
func (f failDiskFS) OpenFile(name string, flag int, perm fs.FileMode) (storage.File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return failDiskFile{File: file, trigger: filepath.Join(filepath.Dir(name), failDiskName)}, nil
}

type failDiskFile struct {
	storage.File
	trigger string
}

// WriteAt fails with EIO while the trigger file exists.
func (f failDiskFile) WriteAt(b []byte, off int64) (int, error) {
	if _, err := os.Stat(f.trigger); err == nil {
		return 0, syscall.EIO
	}
	return f.File.WriteAt(b, off)
}

// crashCleanName is the file that kills the process in the middle of a
// log cleaner swap: while a partition's directory holds it, renaming a
// file of that directory to a name ending in the file's content (say
// ".deleted" or ".index.swap") sends SIGKILL to the process first, so the
// kill lands at that exact step of the swap (storage/cleaner_swap.go).
const crashCleanName = "CRASH-CLEAN"

// Rename renames oldpath, unless the crash trigger says to die first.
func (f failDiskFS) Rename(oldpath, newpath string) error {
	trigger := filepath.Join(filepath.Dir(oldpath), crashCleanName)
	if b, err := os.ReadFile(trigger); err == nil {
		if suffix := strings.TrimSpace(string(b)); suffix != "" && strings.HasSuffix(newpath, suffix) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
	return f.OSFS.Rename(oldpath, newpath)
}
