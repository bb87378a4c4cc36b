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
