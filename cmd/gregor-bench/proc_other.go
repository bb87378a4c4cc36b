//go:build !linux

package main

import "os/exec"

// bindToParent is a no-op off Linux: there is no parent-death signal, so
// children rely on the stdin-closed check (kfake) and on our cleanup paths.
func bindToParent(*exec.Cmd) {}

// fsNote reports nothing off Linux.
func fsNote(string) string { return "" }
