package broker

import "sync"

// Buffers for the Fetch path: the record batches read for a partition and
// the encoded response frame. Both are as large as the data served, and
// allocating them anew for every fetch made most of the garbage (and the
// GC work) of a busy consumer. They are reused through bufferPool.
//
// Ownership: a buffer from get belongs to its caller until put. A Fetch
// handler's record batch buffers are put back by the connection once the
// response frame is encoded (they are copied into it); a frame is put back
// by the connection's writer once written.

// Pooled buffers are between these sizes: smaller ones are cheap to
// allocate, larger ones not worth holding on to.
const (
	minPooledBuffer = 64 << 10
	maxPooledBuffer = 16 << 20
)

// bufferPool reuses large byte slices. Safe for concurrent use.
type bufferPool struct{ p sync.Pool }

// get returns an empty slice with room for at least n bytes.
func (bp *bufferPool) get(n int) []byte {
	if n >= minPooledBuffer {
		if b, ok := bp.p.Get().(*[]byte); ok {
			if cap(*b) >= n {
				return (*b)[:0]
			}
			bp.p.Put(b) // too small for this one; keep it for another
		}
	}
	return make([]byte, 0, n)
}

// put hands a slice back; the caller must not touch it afterwards.
func (bp *bufferPool) put(b []byte) {
	if cap(b) < minPooledBuffer || cap(b) > maxPooledBuffer {
		return
	}
	b = b[:0]
	bp.p.Put(&b)
}

// byteBudget bounds memory held across the broker: a caller takes bytes
// before it holds that much memory and gives them back once it no longer
// does. queued.max.request.bytes (request frames read and not yet
// handled) and queued.max.response.bytes (fetched record data not yet
// written to its socket) are each one. Safe for concurrent use.
type byteBudget struct {
	// limit is immutable; 0 means unbounded.
	limit int64

	mu struct {
		sync.Mutex
		used int64 // bytes taken and not given back
		// freed is closed (and replaced) when bytes are given back, to
		// wake callers of take.
		freed chan struct{}
	}
}

func newByteBudget(limit int64) *byteBudget {
	bb := &byteBudget{limit: max(limit, 0)}
	bb.mu.freed = make(chan struct{})
	return bb
}

// tryTake takes n bytes if they fit, or if nothing is taken now (so that
// one claim larger than the whole budget waits until it is alone instead
// of forever), and reports whether it took them.
func (bb *byteBudget) tryTake(n int64) bool {
	n = max(n, 0)
	bb.mu.Lock()
	defer bb.mu.Unlock()
	if bb.limit > 0 && bb.mu.used > 0 && bb.mu.used+n > bb.limit {
		return false
	}
	bb.mu.used += n
	return true
}

// take waits until n bytes can be taken (tryTake) and takes them; false
// if done closed first.
func (bb *byteBudget) take(done <-chan struct{}, n int64) bool {
	for {
		bb.mu.Lock()
		freed := bb.mu.freed
		bb.mu.Unlock()
		if bb.tryTake(n) {
			return true
		}
		select {
		case <-freed:
		case <-done:
			return false
		}
	}
}

// give returns n bytes taken earlier.
func (bb *byteBudget) give(n int64) {
	if n <= 0 {
		return
	}
	bb.mu.Lock()
	defer bb.mu.Unlock()
	bb.mu.used -= n
	bb.mu.used = max(bb.mu.used, 0) // more given than taken would be a bug; never go negative
	close(bb.mu.freed)
	bb.mu.freed = make(chan struct{})
}

// inUse reports the bytes taken now (for tests and logs).
func (bb *byteBudget) inUse() int64 {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	return bb.mu.used
}
