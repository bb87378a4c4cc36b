package storage

// Test-only access to internals.

// SyncPasses returns how many sync passes fsynced a .log.
func (l *Log) SyncPasses() int64 { return l.fl.passes.Load() }

// SyncedOffset returns the offset below which everything is fsynced.
func (l *Log) SyncedOffset() int64 {
	l.fl.mu.Lock()
	defer l.fl.mu.Unlock()
	return l.fl.synced
}

// Crash closes the files as a killed process would: no fsync, no final
// time index entry, no marker.
func (l *Log) Crash() { _ = l.close(false) }

// SegmentBases returns the base offsets of the segments.
func (l *Log) SegmentBases() []int64 {
	var out []int64
	for _, s := range l.segments() {
		out = append(out, s.base)
	}
	return out
}

// MarkerName is the clean-shutdown marker's file name.
const MarkerName = markerName

// ParseMarker exposes the marker parser.
var ParseMarker = parseMarker

// ActiveRollJitterMs is the active segment's share of segment.jitter.ms.
func (l *Log) ActiveRollJitterMs() int64 {
	segs := l.segments()
	return segs[len(segs)-1].rollJitterMs(l.cfg.Load())
}

// SetBeforeSwapHook makes every Clean pass call fn between writing a
// cleaned image aside and swapping it in. Set before any Clean.
func (l *Log) SetBeforeSwapHook(fn func()) { l.testBeforeSwap = fn }

// Truncations is the log's truncation count.
func (l *Log) Truncations() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.truncations
}

// AppendLockHeld reports whether someone holds the append lock (a probe
// for tests that check what runs under it; never blocks).
func (l *Log) AppendLockHeld() bool {
	if l.mu.TryLock() {
		l.mu.Unlock()
		return false
	}
	return true
}
