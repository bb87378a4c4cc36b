package storage

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// openFile opens name with open(2) and wraps the descriptor with
// os.NewFile. os.OpenFile would also try to register the file with the
// runtime's poller (four fcntl calls and an epoll_ctl that fails for a
// regular file): at a start that opens thousands of segment files, on a
// virtual machine where a system call costs microseconds, that was most
// of the time spent opening logs. The *os.File works as os.OpenFile's
// would (blocking reads and writes, which is what regular files get);
// only the permission bits of perm are used (Gregor sets no others).
func openFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	for {
		fd, err := unix.Open(name, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}
