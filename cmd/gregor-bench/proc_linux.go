//go:build linux

package main

import (
	"os/exec"
	"syscall"
)

// bindToParent makes the kernel SIGKILL the child if this process dies
// without running its cleanup (kill -9, a panic in a callback goroutine), so
// a benchmark run never leaves a broker listening behind it.
func bindToParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// fsNote describes the filesystem under dir when it is not a disk, so the
// reader knows whether "Gregor writes to disk" was true for this run.
func fsNote(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return ""
	}
	const tmpfsMagic = 0x01021994
	const ramfsMagic = 0x858458f6
	switch uint64(st.Type) {
	case tmpfsMagic:
		return "tmpfs (memory, not disk): pass -data-dir on a disk-backed filesystem to measure disk writes"
	case ramfsMagic:
		return "ramfs (memory, not disk): pass -data-dir on a disk-backed filesystem to measure disk writes"
	}
	return ""
}
