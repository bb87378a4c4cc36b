// Compression of record batches.
//
// A compressed batch (attributes bits 0-2 != 0) compresses its records
// section, bytes 61..end, as one unit. The codecs and their framings:
//
//	codec  name    framing
//	1      gzip    RFC 1952 members, possibly concatenated
//	2      snappy  either one raw snappy block (librdkafka, franz-go, sarama)
//	               or the xerial stream the Java client writes:
//	                 magic   8 bytes  0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00
//	                 version 4 bytes  big endian (1)
//	                 compat  4 bytes  big endian (1)
//	                 then repeated: length 4 bytes big endian | raw snappy block
//	3      lz4     LZ4 frame format (magic 0x184D2204), possibly concatenated
//	4      zstd    zstd frames, possibly concatenated
//
// Decompression is bounded: output past a limit (MaxDecompressedSize unless
// given) stops with ErrDecompressedTooLarge. Where a format declares its
// decoded size up front (snappy, a zstd frame's content size) the
// declaration is checked against both the limit and the most the input
// could expand to before any buffer is allocated, so a few hostile bytes
// cannot make Gregor allocate the whole limit; streamed formats (gzip, lz4,
// zstd frames without a size) grow their output as it arrives, never past
// limit+1 bytes. What a decoder needs beside its output is bounded too:
// lz4 at most a 4 MiB block, zstd at most a 128 MiB window (zstdWindowMax,
// as in the Java broker; default compression levels use 8 MiB or less).
package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressedSize is the default bound on the decompressed size of one
// batch's records (256 MiB). Kafka's own limit on a batch is
// message.max.bytes compressed; this bounds what those bytes may expand to.
const MaxDecompressedSize = 256 << 20

// maxLimit keeps limit+1 from overflowing an int on any platform; no
// batch comes near it.
const maxLimit = math.MaxInt32 - 1

// ErrDecompressedTooLarge means decompressed output would pass the limit.
var ErrDecompressedTooLarge = errors.New("protocol: decompressed size over limit")

// Corrupt compressed data is reported wrapping ErrCorruptBatch, which the
// broker maps to CORRUPT_MESSAGE, as Kafka does.

// Expansion bounds used to reject a declared size before allocating it.
const (
	// snappyMaxExpansion: the densest snappy element is a 3-byte copy of
	// 64 bytes (the strict decoder rejects s2's repeat extension), so a
	// block's payload can decode to at most 64/3 times its length.
	snappyMaxExpansion = 22
	// zstdMaxBlockOut: every zstd block, including an RLE block of 4
	// bytes (3 header + 1), decodes to at most 128 KiB.
	zstdMaxBlockOut = 128 << 10
	// zstdWindowMax is the largest zstd window accepted, as in the Java
	// broker (zstd-jni's default window log limit of 27): levels up to 19
	// use at most 8 MiB, the --ultra levels 20-22 up to 128 MiB. A
	// streamed frame costs its window in memory whatever its output.
	zstdWindowMax = 128 << 20
	// zstdPoolWindow is the largest window of a streamed frame after
	// which the decoder goes back to the pool: a decoder keeps a buffer
	// the size of its last window. Levels up to 19 use at most 8 MiB.
	zstdPoolWindow = 8 << 20
	// zstdOverAlloc is the slack the zstd decoder wants past the output.
	zstdOverAlloc = 16
)

// xerialMagic opens a snappy stream written by the Java client's
// SnappyOutputStream (xerial snappy-java).
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// xerialHeaderSize is the magic plus the version and compatible version.
const xerialHeaderSize = 16

// Codecs holds reusable compression state: pooled gzip and lz4 readers and
// writers, pooled zstd decoders and a shared zstd encoder. Create one per
// process (or per component) with NewCodecs and share it; all methods are
// safe for concurrent use. The zero value is not usable.
type Codecs struct {
	// limit bounds decompressed output for Decompress and Records; set at
	// construction, read-only after.
	limit int

	// Pools of reusable codec state; sync.Pool handles its own locking.
	gzipReaders sync.Pool // *gzipReader
	gzipWriters sync.Pool // *gzip.Writer
	lz4Readers  sync.Pool // *lz4Reader
	lz4Writers  sync.Pool // *lz4.Writer
	zstdDecs    sync.Pool // *zstdDecoder
	windows     sync.Pool // *[validateWindow]byte, for ValidateProduceBatch
	scratch     sync.Pool // *[]byte of at most maxPooledScratch bytes: decoded snappy

	// zstdEnc is created on first use; EncodeAll is safe for concurrent use.
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdErr  error
}

// gzipReader pairs a reusable gzip reader with the bytes.Reader it reads,
// so that neither is allocated per call.
type gzipReader struct {
	src bytes.Reader
	zr  gzip.Reader
}

type lz4Reader struct {
	src bytes.Reader
	zr  *lz4.Reader
}

// zstdDecoder pairs a reusable zstd decoder with the bytes.Reader it streams from.
type zstdDecoder struct {
	src bytes.Reader
	d   *zstd.Decoder
}

// NewCodecs returns codec state whose Decompress and Records bound
// decompressed output to MaxDecompressedSize.
func NewCodecs() *Codecs { return NewCodecsLimit(MaxDecompressedSize) }

// NewCodecsLimit returns codec state whose Decompress and Records bound
// decompressed output to limit bytes (MaxDecompressedSize when limit <= 0).
func NewCodecsLimit(limit int) *Codecs {
	if limit <= 0 {
		limit = MaxDecompressedSize
	}
	return &Codecs{limit: limit}
}

// Limit returns the decompressed-size bound of c.
func (c *Codecs) Limit() int { return c.limit }

// Decompress decompresses src (a compressed batch's records section) with
// a fresh codec state and the MaxDecompressedSize bound. Use a Codecs for
// repeated work; this allocates decoders on every call.
func Decompress(codec Codec, src []byte) ([]byte, error) {
	return NewCodecs().DecompressLimit(codec, src, MaxDecompressedSize)
}

// DecompressLimit is Decompress with an explicit bound on the output size.
func DecompressLimit(codec Codec, src []byte, limit int) ([]byte, error) {
	return NewCodecs().DecompressLimit(codec, src, limit)
}

// Compress compresses src with a fresh codec state. Use a Codecs for
// repeated work; this allocates encoders on every call.
func Compress(codec Codec, src []byte) ([]byte, error) {
	return NewCodecs().AppendCompress(nil, codec, src)
}

// Decompress decompresses src with c's limit. For CodecNone it returns src
// itself. The result is freshly allocated otherwise and owned by the caller.
func (c *Codecs) Decompress(codec Codec, src []byte) ([]byte, error) {
	return c.DecompressLimit(codec, src, c.limit)
}

// DecompressLimit decompresses src, failing with ErrDecompressedTooLarge
// once the output would exceed limit bytes. Malformed input fails with an
// error wrapping ErrCorruptBatch; an unknown codec with ErrUnsupportedCodec.
func (c *Codecs) DecompressLimit(codec Codec, src []byte, limit int) ([]byte, error) {
	limit = min(max(limit, 0), maxLimit)
	var (
		out []byte
		err error
	)
	switch codec {
	case CodecNone:
		return src, nil
	case CodecGzip, CodecSnappy, CodecLz4, CodecZstd:
		if len(src) == 0 {
			return nil, fmt.Errorf("%w: %s: no compressed bytes", ErrCorruptBatch, codec)
		}
	default:
		return nil, fmt.Errorf("%w: codec %d", ErrUnsupportedCodec, codec)
	}
	switch codec {
	case CodecGzip:
		out, err = c.gunzip(src, limit)
	case CodecSnappy:
		out, err = unsnappy(src, limit)
	case CodecLz4:
		out, err = c.unlz4(src, limit)
	case CodecZstd:
		out, err = c.unzstd(src, limit)
	}
	if err != nil {
		if errors.Is(err, ErrDecompressedTooLarge) {
			return nil, fmt.Errorf("%w: %s output passes %d bytes", ErrDecompressedTooLarge, codec, limit)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptBatch, codec, err)
	}
	return out, nil
}

// Compress compresses src with codec into a new slice.
func (c *Codecs) Compress(codec Codec, src []byte) ([]byte, error) {
	return c.AppendCompress(nil, codec, src)
}

// AppendCompress appends src compressed with codec to dst. Snappy is
// written as one raw block, which every Kafka client reads (the Java client
// reads raw blocks as well as its own xerial framing). CodecNone appends src
// unchanged.
func (c *Codecs) AppendCompress(dst []byte, codec Codec, src []byte) ([]byte, error) {
	switch codec {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		zw, _ := c.gzipWriters.Get().(*gzip.Writer)
		if zw == nil {
			zw = gzip.NewWriter(nil) // DefaultCompression
		}
		defer func() {
			zw.Reset(nil) // do not keep the output alive from the pool
			c.gzipWriters.Put(zw)
		}()
		w := appendWriter{b: dst}
		zw.Reset(&w)
		if _, err := zw.Write(src); err != nil {
			return dst, fmt.Errorf("protocol: gzip: %w", err)
		}
		if err := zw.Close(); err != nil {
			return dst, fmt.Errorf("protocol: gzip: %w", err)
		}
		return w.b, nil
	case CodecSnappy:
		n := snappy.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, fmt.Errorf("protocol: snappy: %d bytes is too large for one block", len(src))
		}
		start := len(dst)
		dst = grow(dst, n)
		enc := snappy.Encode(dst[start:start+n], src)
		return dst[:start+len(enc)], nil
	case CodecLz4:
		zw, _ := c.lz4Writers.Get().(*lz4.Writer)
		if zw == nil {
			zw = lz4.NewWriter(nil)
			// 64 KiB blocks, as the Java client writes; content checksum on.
			if err := zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
				return dst, fmt.Errorf("protocol: lz4: %w", err)
			}
		}
		defer func() {
			zw.Reset(nil)
			c.lz4Writers.Put(zw)
		}()
		w := appendWriter{b: dst}
		zw.Reset(&w)
		if _, err := zw.Write(src); err != nil {
			return dst, fmt.Errorf("protocol: lz4: %w", err)
		}
		if err := zw.Close(); err != nil {
			return dst, fmt.Errorf("protocol: lz4: %w", err)
		}
		return w.b, nil
	case CodecZstd:
		enc, err := c.zstdEncoder()
		if err != nil {
			return dst, err
		}
		return enc.EncodeAll(src, dst), nil
	default:
		return dst, fmt.Errorf("%w: codec %d", ErrUnsupportedCodec, codec)
	}
}

func (c *Codecs) zstdEncoder() (*zstd.Encoder, error) {
	c.zstdOnce.Do(func() {
		// A 1 MiB window covers typical batches while keeping each
		// concurrent encoder's state small; the zero frame keeps empty
		// input decodable.
		c.zstdEnc, c.zstdErr = zstd.NewWriter(nil,
			zstd.WithWindowSize(1<<20),
			zstd.WithZeroFrames(true),
		)
		if c.zstdErr != nil {
			c.zstdErr = fmt.Errorf("protocol: zstd encoder: %w", c.zstdErr)
		}
	})
	return c.zstdEnc, c.zstdErr
}

// String returns the codec's name as Kafka's compression.type spells it.
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLz4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

func (c *Codecs) gunzip(src []byte, limit int) ([]byte, error) {
	gr, _ := c.gzipReaders.Get().(*gzipReader)
	if gr == nil {
		gr = new(gzipReader)
	}
	defer func() {
		gr.src.Reset(nil)
		c.gzipReaders.Put(gr)
	}()
	gr.src.Reset(src)
	if err := gr.zr.Reset(&gr.src); err != nil {
		return nil, err
	}
	gr.zr.Multistream(true)
	return readAllLimit(&gr.zr, 4*len(src), limit)
}

func (c *Codecs) unlz4(src []byte, limit int) ([]byte, error) {
	lr, _ := c.lz4Readers.Get().(*lz4Reader)
	if lr == nil {
		lr = &lz4Reader{zr: lz4.NewReader(nil)}
	}
	defer func() {
		lr.zr.Reset(nil)
		lr.src.Reset(nil)
		c.lz4Readers.Put(lr)
	}()
	lr.src.Reset(src)
	lr.zr.Reset(&lr.src)
	return readAllLimit(lr.zr, 4*len(src), limit)
}

func (c *Codecs) unzstd(src []byte, limit int) ([]byte, error) {
	zd, err := c.zstdDecoder()
	if err != nil {
		return nil, err
	}
	h, single := zstdFrame(src)

	// The common case (franz-go, librdkafka, sarama): one frame that
	// declares its size. Decode it in one call into a buffer of exactly
	// that size, after checking the size against the limit and against
	// what the input could possibly expand to (no block decodes to more
	// than 128 KiB, and the smallest block is 4 bytes), so a lying header
	// costs nothing. DecodeAll keeps no reference to the output.
	if single && h.HasFCS {
		defer c.zstdDecs.Put(zd)
		if h.FrameContentSize > uint64(limit) {
			return nil, ErrDecompressedTooLarge
		}
		if h.FrameContentSize > (uint64(len(src))/4+1)*zstdMaxBlockOut {
			return nil, fmt.Errorf("zstd: frame declares %d bytes from %d input bytes", h.FrameContentSize, len(src))
		}
		return zd.d.DecodeAll(src, make([]byte, 0, int(h.FrameContentSize)+zstdOverAlloc))
	}

	// Otherwise (the Java client's streaming frames carry no size, or
	// there are several frames) stream into a buffer that grows with the
	// output and stops at the limit. DecodeAll would grow its output with
	// append and only check the limit per block, allocating several times
	// the limit before failing. A stream costs its window (at most
	// zstdWindowMax) on top of the output, and the decoder keeps that
	// buffer: it goes back to the pool only after a lone frame with a
	// window of at most zstdPoolWindow.
	window := h.WindowSize
	if h.SingleSegment {
		window = h.FrameContentSize
	}
	if single && window <= zstdPoolWindow {
		defer c.zstdDecs.Put(zd)
	}
	zd.src.Reset(src)
	defer func() {
		zd.d.Reset(nil) // drop references to src
		zd.src.Reset(nil)
	}()
	if err := zd.d.Reset(&zd.src); err != nil {
		return nil, err
	}
	return readAllLimit(zd.d, 4*len(src), limit)
}

// zstdDecoder returns a pooled zstd decoder or a new one.
func (c *Codecs) zstdDecoder() (*zstdDecoder, error) {
	if zd, _ := c.zstdDecs.Get().(*zstdDecoder); zd != nil {
		return zd, nil
	}
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1), // synchronous: no goroutines
		zstd.WithDecoderLowmem(true),
		zstd.WithDecodeBuffersBelow(0),
		// Output is bounded by the callers; the decoder's own bound
		// would otherwise also cap the window.
		zstd.WithDecoderMaxMemory(maxLimit),
		zstd.WithDecoderMaxWindow(zstdWindowMax),
	)
	if err != nil {
		return nil, err
	}
	return &zstdDecoder{d: d}, nil
}

// zstdFrame returns the header of the first frame in src and whether src
// is exactly that one frame (not skippable), found by walking the block
// headers without decoding them.
func zstdFrame(src []byte) (zstd.Header, bool) {
	var h zstd.Header
	if err := h.Decode(src); err != nil || h.Skippable {
		return h, false
	}
	pos := h.HeaderSize
	for {
		if len(src)-pos < 3 {
			return h, false
		}
		bh := uint32(src[pos]) | uint32(src[pos+1])<<8 | uint32(src[pos+2])<<16
		pos += 3
		switch size := int(bh >> 3); (bh >> 1) & 3 {
		case 0, 2: // raw, compressed: size bytes follow
			pos += size
		case 1: // RLE: one byte follows
			pos++
		default: // reserved
			return h, false
		}
		if pos > len(src) {
			return h, false
		}
		if bh&1 != 0 { // last block
			break
		}
	}
	if h.HasCheckSum {
		pos += 4
	}
	return h, pos == len(src)
}

// unsnappy decodes a raw snappy block or a xerial snappy stream.
func unsnappy(src []byte, limit int) ([]byte, error) {
	if len(src) >= xerialHeaderSize && bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		out, err := unxerial(src[xerialHeaderSize:], limit)
		if err == nil || errors.Is(err, ErrDecompressedTooLarge) {
			return out, err
		}
		// A raw block can, rarely, begin with the same bytes (a length
		// varint of 10626 followed by a 20-byte literal); accept it if
		// it decodes as one.
		if raw, rawErr := appendSnappyBlock(nil, src, limit); rawErr == nil {
			return raw, nil
		}
		return nil, err
	}
	return appendSnappyBlock(nil, src, limit)
}

// unxerial decodes the chunks following a xerial header. A first pass
// checks the chunk framing and sums the declared lengths, so the output is
// allocated once and only if it fits the limit.
func unxerial(b []byte, limit int) ([]byte, error) {
	total := 0
	for rest := b; len(rest) > 0; {
		chunk, next, err := xerialChunk(rest)
		if err != nil {
			return nil, err
		}
		n, err := snappy.DecodedLen(chunk)
		if err != nil {
			return nil, err
		}
		if n > limit-total {
			return nil, ErrDecompressedTooLarge
		}
		total += n
		rest = next
	}
	out := make([]byte, 0, total)
	for len(b) > 0 {
		chunk, next, _ := xerialChunk(b)
		var err error
		if out, err = appendSnappyBlock(out, chunk, limit); err != nil {
			return nil, err
		}
		b = next
	}
	return out, nil
}

// xerialChunk splits the first length-prefixed chunk off b.
func xerialChunk(b []byte) (chunk, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("xerial: %d trailing bytes, chunk length needs 4", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)) {
		return nil, nil, fmt.Errorf("xerial: chunk of %d bytes with %d left", n, len(b))
	}
	return b[:n], b[n:], nil
}

// appendSnappyBlock appends the decoding of one raw snappy block to dst,
// checking the block's declared length before allocating for it.
func appendSnappyBlock(dst, block []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	hdr := uvarintLen(block)
	if n > limit-len(dst) {
		return nil, ErrDecompressedTooLarge
	}
	if n > snappyMaxExpansion*(len(block)-hdr) {
		return nil, fmt.Errorf("snappy: block declares %d bytes from %d input bytes", n, len(block))
	}
	start := len(dst)
	dst = grow(dst, n)
	// DecodeStrict decodes in place when the destination has room, which
	// grow guaranteed; it rejects s2 extensions no Kafka client writes.
	dec, err := snappy.DecodeStrict(dst[start:start+n], block)
	if err != nil {
		return nil, err
	}
	if len(dec) != n {
		return nil, fmt.Errorf("snappy: decoded %d bytes, block declared %d", len(dec), n)
	}
	return dst[:start+n], nil
}

// uvarintLen returns the length of the uvarint at the start of b (0 if none).
func uvarintLen(b []byte) int {
	_, n := binary.Uvarint(b)
	return max(n, 0)
}

// readAllLimit reads r to EOF, failing with ErrDecompressedTooLarge once
// more than limit bytes arrive. The buffer starts at hint (capped by the
// limit) and doubles, never past limit+1, so a bomb costs at most about
// limit bytes of memory.
func readAllLimit(r io.Reader, hint, limit int) ([]byte, error) {
	const minRead = 512
	hint = min(max(hint, minRead), limit+1)
	buf := make([]byte, 0, hint)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, ErrDecompressedTooLarge
			}
			buf = grow(buf, min(max(cap(buf), minRead), limit+1-len(buf)))
		}
		// Never read past limit+1: one byte over is enough to know.
		n, err := r.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, ErrDecompressedTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// grow returns b with room for n more bytes, keeping its length.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// maxPooledScratch is the largest decoded-snappy buffer kept for reuse.
const maxPooledScratch = 4 << 20

// stream is a compressed records section opened for one pass, as
// ValidateProduceBatch reads it: decoded at once into mem (snappy's raw
// block, whose format needs its whole output) or read in order from r
// (everything else), never more than the limit given to openStream in
// total (r's reader enforces it per block; the caller counts the rest).
type stream struct {
	inMem bool
	mem   []byte
	r     io.Reader

	// Pooled state to give back on release.
	c        *Codecs
	gz       *gzipReader
	lz       *lz4Reader
	zd       *zstdDecoder
	keepZstd bool // zd's window is small enough to pool
	scratch  *[]byte
}

// openStream opens src (a records section compressed with codec) for
// reading. Errors wrap ErrCorruptBatch or ErrDecompressedTooLarge.
// release must be called once the stream is done with.
func (c *Codecs) openStream(st *stream, codec Codec, src []byte, limit int) error {
	limit = min(max(limit, 0), maxLimit)
	if len(src) == 0 {
		return fmt.Errorf("%w: %s: no compressed bytes", ErrCorruptBatch, codec)
	}
	*st = stream{c: c}
	var err error
	switch codec {
	case CodecGzip:
		gr, _ := c.gzipReaders.Get().(*gzipReader)
		if gr == nil {
			gr = new(gzipReader)
		}
		st.gz = gr
		gr.src.Reset(src)
		if err = gr.zr.Reset(&gr.src); err == nil {
			gr.zr.Multistream(true)
			st.r = &gr.zr
		}
	case CodecLz4:
		lr, _ := c.lz4Readers.Get().(*lz4Reader)
		if lr == nil {
			lr = &lz4Reader{zr: lz4.NewReader(nil)}
		}
		st.lz = lr
		lr.src.Reset(src)
		lr.zr.Reset(&lr.src)
		st.r = lr.zr
	case CodecZstd:
		err = c.openZstd(st, src, limit)
	case CodecSnappy:
		err = c.openSnappy(st, src, limit)
	default:
		return fmt.Errorf("%w: codec %d", ErrUnsupportedCodec, codec)
	}
	if err != nil {
		st.release()
		if errors.Is(err, ErrDecompressedTooLarge) {
			return fmt.Errorf("%w: %s output passes %d bytes", ErrDecompressedTooLarge, codec, limit)
		}
		return fmt.Errorf("%w: %s: %v", ErrCorruptBatch, codec, err)
	}
	return nil
}

// openZstd streams src through a pooled decoder. A lone frame declaring
// its size is checked first, as in unzstd, so a lying header costs
// nothing; the decoder's window (at most zstdWindowMax) is the memory a
// stream costs.
func (c *Codecs) openZstd(st *stream, src []byte, limit int) error {
	h, single := zstdFrame(src)
	if single && h.HasFCS {
		if h.FrameContentSize > uint64(limit) {
			return ErrDecompressedTooLarge
		}
		if h.FrameContentSize > (uint64(len(src))/4+1)*zstdMaxBlockOut {
			return fmt.Errorf("frame declares %d bytes from %d input bytes", h.FrameContentSize, len(src))
		}
	}
	zd, err := c.zstdDecoder()
	if err != nil {
		return err
	}
	st.zd = zd
	window := h.WindowSize
	if h.SingleSegment {
		window = h.FrameContentSize
	}
	st.keepZstd = single && window <= zstdPoolWindow
	zd.src.Reset(src)
	if err := zd.d.Reset(&zd.src); err != nil {
		return err
	}
	st.r = zd.d
	return nil
}

// openSnappy decodes a raw block at once into a pooled buffer, or streams
// a xerial stream chunk by chunk once its framing checks out.
func (c *Codecs) openSnappy(st *stream, src []byte, limit int) error {
	if len(src) >= xerialHeaderSize && bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		if xr, err := newXerialReader(src[xerialHeaderSize:], limit); err == nil {
			st.r = xr
			return nil
		} else if errors.Is(err, ErrDecompressedTooLarge) {
			return err
		}
		// Framing that does not check out may still be a raw block
		// beginning with the same bytes (see unsnappy).
	}
	sp, _ := c.scratch.Get().(*[]byte)
	if sp == nil {
		sp = new([]byte)
	}
	st.scratch = sp
	out, err := appendSnappyBlock((*sp)[:0], src, limit)
	if err != nil {
		return err
	}
	*sp = out
	st.inMem, st.mem = true, out
	return nil
}

// release gives the stream's pooled state back.
func (st *stream) release() {
	c := st.c
	if st.gz != nil {
		st.gz.src.Reset(nil)
		c.gzipReaders.Put(st.gz)
	}
	if st.lz != nil {
		st.lz.zr.Reset(nil)
		st.lz.src.Reset(nil)
		c.lz4Readers.Put(st.lz)
	}
	if st.zd != nil {
		st.zd.d.Reset(nil) // drop references to src
		st.zd.src.Reset(nil)
		if st.keepZstd {
			c.zstdDecs.Put(st.zd)
		}
	}
	if st.scratch != nil && cap(*st.scratch) <= maxPooledScratch {
		c.scratch.Put(st.scratch)
	}
	*st = stream{}
}

// window returns a pooled buffer to walk a stream through.
func (c *Codecs) window() *[validateWindow]byte {
	if w, _ := c.windows.Get().(*[validateWindow]byte); w != nil {
		return w
	}
	return new([validateWindow]byte)
}

// xerialReader decodes a xerial snappy stream one chunk at a time.
type xerialReader struct {
	rest []byte // chunks not decoded yet
	out  []byte // the current chunk, decoded; out[pos:] unread
	pos  int
}

// newXerialReader checks the chunk framing of b (what follows the
// header) and that no chunk declares more than limit bytes, without
// decoding anything.
func newXerialReader(b []byte, limit int) (*xerialReader, error) {
	for rest := b; len(rest) > 0; {
		chunk, next, err := xerialChunk(rest)
		if err != nil {
			return nil, err
		}
		n, err := snappy.DecodedLen(chunk)
		if err != nil {
			return nil, err
		}
		if n > limit {
			return nil, ErrDecompressedTooLarge
		}
		rest = next
	}
	return &xerialReader{rest: b}, nil
}

// Read implements io.Reader.
func (x *xerialReader) Read(p []byte) (int, error) {
	for x.pos == len(x.out) {
		if len(x.rest) == 0 {
			return 0, io.EOF
		}
		chunk, next, err := xerialChunk(x.rest)
		if err != nil {
			return 0, err
		}
		// Chunks were checked against the limit; the reader's caller
		// bounds their sum.
		if x.out, err = appendSnappyBlock(x.out[:0], chunk, maxLimit); err != nil {
			return 0, err
		}
		x.pos, x.rest = 0, next
	}
	n := copy(p, x.out[x.pos:])
	x.pos += n
	return n, nil
}
