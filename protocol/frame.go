// Framing and request/response headers of the Kafka protocol.
//
// Every message on a connection is a frame: a 4-byte big-endian size
// followed by that many bytes. A request frame holds:
//
//	request header v1 (non-flexible requests)   v2 (flexible requests, KIP-482)
//	  api key          int16                       same
//	  api version      int16                       same
//	  correlation id   int32                       same
//	  client id        nullable string (int16 len) same (not compact, for compatibility)
//	                                               tagged fields (uvarint count + tags)
//	  body             kmsg request at that version
//
// A response frame holds the correlation id, then (response header v1, for
// flexible responses other than ApiVersions) an empty tagged-field section,
// then the kmsg response body.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxRequestSize is Kafka's socket.request.max.bytes default (100 MiB).
const DefaultMaxRequestSize = 100 * 1024 * 1024

// Errors from frame and header decoding.
var (
	// ErrFrameTooLarge means a frame's declared size is negative or over the limit.
	ErrFrameTooLarge = errors.New("protocol: frame size out of bounds")
	// ErrMalformedHeader means the request header does not parse.
	ErrMalformedHeader = errors.New("protocol: malformed request header")
	// ErrUnknownKey means the api key names no request kmsg knows.
	ErrUnknownKey = errors.New("protocol: unknown api key")
	// ErrUnknownVersion means the version is beyond what kmsg can decode.
	ErrUnknownVersion = errors.New("protocol: unsupported api version")
	// ErrMalformedBody means the request body does not parse at its version.
	ErrMalformedBody = errors.New("protocol: malformed request body")
)

// ReadFrame reads one size-prefixed frame. The size is checked against
// maxSize before any buffer is allocated. The returned slice is freshly
// allocated and owned by the caller (decoded requests alias it).
func ReadFrame(r io.Reader, maxSize int32) ([]byte, error) {
	size, err := ReadFrameSize(r, maxSize)
	if err != nil {
		return nil, err
	}
	return ReadFrameBody(r, size)
}

// ReadFrameSize reads a frame's 4-byte size and checks it against maxSize.
func ReadFrameSize(r io.Reader, maxSize int32) (int32, error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
		return 0, err
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	if size < 0 || size > maxSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, maxSize)
	}
	return size, nil
}

// frameChunk is how much of a frame's body is allocated before its bytes
// arrive: the buffer grows with what is read, so a peer that declares a
// large frame and sends little of it costs little memory.
const frameChunk = 64 << 10

// ReadFrameBody reads the size bytes of a frame's body (after
// ReadFrameSize). The buffer grows as bytes arrive, at most doubling, so
// memory follows what the peer actually sent, never only what it declared.
func ReadFrameBody(r io.Reader, size int32) ([]byte, error) {
	frame := make([]byte, 0, min(int(size), frameChunk))
	for len(frame) < int(size) {
		if len(frame) == cap(frame) {
			grown := make([]byte, len(frame), min(int(size), 2*cap(frame)))
			copy(grown, frame)
			frame = grown
		}
		n, err := io.ReadFull(r, frame[len(frame):cap(frame)])
		frame = frame[:len(frame)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read %d-byte frame: %w", size, err)
		}
	}
	return frame, nil
}

// RequestHeader is the decoded header of a request frame.
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string
}

// ParseRequest decodes a request frame into its header and kmsg body.
//
// When the header's fixed fields parse but the key or version is unknown,
// the header is returned with ErrUnknownKey or ErrUnknownVersion so the
// caller can answer (ApiVersions must answer an unknown version with v0).
func ParseRequest(frame []byte) (RequestHeader, kmsg.Request, error) {
	var h RequestHeader
	r := kbin.Reader{Src: frame}
	h.Key = r.Int16()
	h.Version = r.Int16()
	h.CorrelationID = r.Int32()
	h.ClientID = r.NullableString()
	if err := r.Complete(); err != nil || len(frame) < 8 {
		return h, nil, fmt.Errorf("%w: %d bytes", ErrMalformedHeader, len(frame))
	}
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return h, nil, fmt.Errorf("%w: %d", ErrUnknownKey, h.Key)
	}
	if h.Version < 0 || h.Version > req.MaxVersion() {
		return h, nil, fmt.Errorf("%w: %s v%d (known up to v%d)", ErrUnknownVersion, kmsg.NameForKey(h.Key), h.Version, req.MaxVersion())
	}
	req.SetVersion(h.Version)
	if req.IsFlexible() {
		skipTags(&r)
		if err := r.Complete(); err != nil {
			return h, nil, fmt.Errorf("%w: tagged fields: %v", ErrMalformedHeader, err)
		}
	}
	if err := req.ReadFrom(r.Src); err != nil {
		return h, nil, fmt.Errorf("%w: %s v%d: %v", ErrMalformedBody, kmsg.NameForKey(h.Key), h.Version, err)
	}
	return h, req, nil
}

// skipTags skips a tagged-field section. Unlike kmsg.SkipTags, it stops as
// soon as the bytes run out: kmsg loops for the declared count even after
// its reader has failed, so a 5-byte count of 2^32-1 costs about a minute
// of CPU there (kmsg v1.15.0 reads the tags of request bodies the same way;
// see the package's fuzz notes).
func skipTags(r *kbin.Reader) {
	n := r.Uvarint()
	if uint64(n) > uint64(len(r.Src))/2 { // each tag takes at least 2 bytes
		r.Span(len(r.Src) + 1) // marks the reader failed
		return
	}
	for ; n > 0 && r.Ok(); n-- {
		r.Uvarint() // tag
		r.Span(int(r.Uvarint()))
	}
}

// AppendResponse appends one response frame (size, header, body) to dst.
// ApiVersions responses always use header v0, as Kafka requires so that a
// client can parse them before it knows the broker's versions.
func AppendResponse(dst []byte, correlationID int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != 18 {
		dst = append(dst, 0) // empty tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// ResponseSizeHint estimates the encoded size of a response, so that the
// frame buffer is allocated once: for Fetch, whose record batches are
// nearly all of it, their total plus room for the fields around them
// (growing the buffer by doubling copied every batch several times over
// and made garbage of the same size). Other responses are small: 0 lets
// the buffer grow.
func ResponseSizeHint(resp kmsg.Response) int {
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 256
	for i := range fr.Topics {
		t := &fr.Topics[i]
		n += 64 + len(t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			n += 96 + len(p.RecordBatches) + 24*len(p.AbortedTransactions)
		}
	}
	return n
}

// AppendRequest appends one request frame to dst; used by tests and tools
// that speak to a broker without a client library.
func AppendRequest(dst []byte, correlationID int32, clientID *string, req kmsg.Request) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.Key()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.GetVersion()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	dst = kbin.AppendNullableString(dst, clientID)
	if req.IsFlexible() {
		dst = append(dst, 0)
	}
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
