package storage

// Reading batch headers out of a .log without reading whole batches.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gregorbroker/gregor/protocol"
)

const batchHeaderSize = protocol.BatchHeaderSize

// scanChunk is how many bytes a headerScanner reads at once: several small
// batches' headers per read, one header for large batches.
const scanChunk = 16 << 10

// batchHeader is what the log needs from a batch's 61-byte header.
type batchHeader struct {
	pos       int64 // where the batch starts in its .log
	base      int64 // base offset
	size      int64 // whole batch: length field + 12
	lastDelta int32
	epoch     int32 // partition leader epoch
	maxTs     int64
	magic     int8
	crc       uint32
	attrs     int16
	// The producer fields (idempotent and transactional batches).
	producerID    int64 // -1: none
	producerEpoch int16
	baseSeq       int32 // -1: none
}

func (h *batchHeader) last() int64 { return h.base + int64(h.lastDelta) }
func (h *batchHeader) end() int64  { return h.pos + h.size }

// decodeHeader decodes the header at the start of b (len(b) >= 61).
func decodeHeader(b []byte, pos int64) batchHeader {
	return batchHeader{
		pos:       pos,
		base:      int64(binary.BigEndian.Uint64(b[0:])),
		size:      int64(int32(binary.BigEndian.Uint32(b[8:]))) + 12,
		epoch:     int32(binary.BigEndian.Uint32(b[12:])),
		magic:     int8(b[16]),
		crc:       binary.BigEndian.Uint32(b[17:]),
		lastDelta: int32(binary.BigEndian.Uint32(b[23:])),
		maxTs:     int64(binary.BigEndian.Uint64(b[35:])),
		attrs:     int16(binary.BigEndian.Uint16(b[21:])),

		producerID:    int64(binary.BigEndian.Uint64(b[43:])),
		producerEpoch: int16(binary.BigEndian.Uint16(b[51:])),
		baseSeq:       int32(binary.BigEndian.Uint32(b[53:])),
	}
}

// corruptError says where and why the bytes of a .log stop being batches.
// It wraps ErrCorrupt.
type corruptError struct {
	pos    int64
	reason string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("%v at position %d: %s", ErrCorrupt, e.pos, e.reason)
}

func (e *corruptError) Unwrap() error { return ErrCorrupt }

// reasonOf is the reason of a corruptError, or the error text.
func reasonOf(err error) string {
	var ce *corruptError
	if errors.As(err, &ce) {
		return ce.reason
	}
	return err.Error()
}

// checkHeader checks the parts of a header that do not need the batch's
// body: sizes fit before end, magic 2, a last offset delta that is not
// negative.
func checkHeader(h *batchHeader, end int64) error {
	switch {
	case h.size < batchHeaderSize:
		return &corruptError{h.pos, fmt.Sprintf("batch length %d is shorter than a header", h.size-12)}
	case h.size > end-h.pos:
		return &corruptError{h.pos, fmt.Sprintf("batch of %d bytes with %d bytes left", h.size, end-h.pos)}
	case h.magic != 2:
		return &corruptError{h.pos, fmt.Sprintf("magic %d", h.magic)}
	case h.lastDelta < 0:
		return &corruptError{h.pos, fmt.Sprintf("last offset delta %d", h.lastDelta)}
	case h.base < 0:
		return &corruptError{h.pos, fmt.Sprintf("base offset %d", h.base)}
	}
	return nil
}

// headerScanner walks the batch headers of a .log from pos to end. It
// reads in chunks, so walking many small batches costs few reads.
type headerScanner struct {
	r     io.ReaderAt
	chunk int64 // bytes to read at once, at least a header
	pos   int64 // where the next batch starts
	end   int64 // the readable end; batches must end at or before it
	buf   []byte
	bufAt int64 // file position of buf[0]
}

func newHeaderScanner(r io.ReaderAt, pos, end int64) *headerScanner {
	return &headerScanner{r: r, chunk: scanChunk, pos: pos, end: end}
}

// next returns the header of the batch at s.pos and moves past the batch.
// At s.end it returns io.EOF; a header that is cut short or does not
// check out is a *corruptError; other errors are I/O errors.
func (s *headerScanner) next() (batchHeader, error) {
	if s.pos >= s.end {
		return batchHeader{}, io.EOF
	}
	if s.end-s.pos < batchHeaderSize {
		return batchHeader{}, &corruptError{s.pos, fmt.Sprintf("%d bytes left, too few for a batch header", s.end-s.pos)}
	}
	if s.pos < s.bufAt || s.pos+batchHeaderSize > s.bufAt+int64(len(s.buf)) {
		n := min(s.chunk, s.end-s.pos)
		if int64(cap(s.buf)) < n {
			s.buf = make([]byte, n)
		}
		s.buf = s.buf[:n]
		if err := readFull(s.r, s.buf, s.pos); err != nil {
			s.buf = s.buf[:0]
			return batchHeader{}, fmt.Errorf("read batch header at %d: %w", s.pos, err)
		}
		s.bufAt = s.pos
	}
	h := decodeHeader(s.buf[s.pos-s.bufAt:], s.pos)
	if err := checkHeader(&h, s.end); err != nil {
		return h, err
	}
	s.pos = h.end()
	return h, nil
}

// readHeaderAt reads and checks the header of the batch at pos.
func readHeaderAt(r io.ReaderAt, pos, end int64) (batchHeader, error) {
	s := headerScanner{r: r, chunk: batchHeaderSize, pos: pos, end: end}
	return s.next()
}
