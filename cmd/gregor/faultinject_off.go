//go:build !faultinject

package main

import "github.com/gregorbroker/gregor/storage"

// logFS is the filesystem the partition logs use: the operating
// system's (nil). The faultinject build tag swaps in one whose disks can
// be failed by the tests (faultinject.go).
func logFS() storage.FS { return nil }
