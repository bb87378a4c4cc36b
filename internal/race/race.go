//go:build race

// Package race reports whether the binary was built with the race detector.
// Allocation-count tests consult it: under -race, sync.Pool drops items on
// purpose, so pooled code allocates and the counts mean nothing.
package race

// Enabled is true when the race detector is on.
const Enabled = true
