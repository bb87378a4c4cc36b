package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

var allCodecs = []Codec{CodecGzip, CodecSnappy, CodecLz4, CodecZstd}

// testPayload returns n bytes that compress somewhat, like real records:
// runs of text with random bytes mixed in.
func testPayload(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	words := []string{"topic", "partition", "offset", "gregor", "kafka", "record", "value", "{\"id\":", "}"}
	b := make([]byte, 0, n)
	for len(b) < n {
		if rng.IntN(4) == 0 {
			b = append(b, byte(rng.Uint32()))
		} else {
			b = append(b, words[rng.IntN(len(words))]...)
		}
	}
	return b[:n]
}

// randomBytes returns n incompressible bytes.
func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	c := NewCodecs()
	inputs := map[string][]byte{
		"empty":  {},
		"one":    {'x'},
		"small":  testPayload(100, 1),
		"64KiB":  testPayload(64<<10, 2),
		"1MiB":   testPayload(1<<20, 3),
		"zeros":  make([]byte, 3<<20),
		"random": randomBytes(200<<10, 4),
	}
	for _, codec := range allCodecs {
		for name, in := range inputs {
			t.Run(fmt.Sprintf("%s/%s", codec, name), func(t *testing.T) {
				comp, err := c.Compress(codec, in)
				if err != nil {
					t.Fatal(err)
				}
				if len(comp) == 0 {
					t.Fatal("compressed to nothing")
				}
				out, err := c.Decompress(codec, comp)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out, in) {
					t.Fatalf("round trip changed %d bytes into %d", len(in), len(out))
				}
				// The package functions agree with the pooled ones.
				out2, err := Decompress(codec, comp)
				if err != nil || !bytes.Equal(out2, in) {
					t.Fatalf("package Decompress: %v", err)
				}
				// AppendCompress keeps the prefix.
				app, err := c.AppendCompress([]byte("prefix"), codec, in)
				if err != nil || !bytes.HasPrefix(app, []byte("prefix")) {
					t.Fatalf("AppendCompress: %v", err)
				}
				if out3, err := c.Decompress(codec, app[len("prefix"):]); err != nil || !bytes.Equal(out3, in) {
					t.Fatalf("AppendCompress output does not decode: %v", err)
				}
			})
		}
	}
}

func TestCompressNoneAndUnknown(t *testing.T) {
	c := NewCodecs()
	in := []byte("plain")
	if out, err := c.Decompress(CodecNone, in); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("none: %q, %v", out, err)
	}
	if out, err := c.Compress(CodecNone, in); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("none: %q, %v", out, err)
	}
	for _, codec := range []Codec{5, 6, 7, -1} {
		if _, err := c.Decompress(codec, in); !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("decompress codec %d: %v, want ErrUnsupportedCodec", codec, err)
		}
		if _, err := c.Compress(codec, in); !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("compress codec %d: %v, want ErrUnsupportedCodec", codec, err)
		}
	}
}

func TestDecompressCorrupt(t *testing.T) {
	c := NewCodecs()
	in := testPayload(10<<10, 5)
	for _, codec := range allCodecs {
		comp, err := c.Compress(codec, in)
		if err != nil {
			t.Fatal(err)
		}
		cases := map[string][]byte{
			"empty":     {},
			"garbage":   []byte("this is not compressed at all, in any codec"),
			"truncated": comp[:len(comp)/2],
			"one byte":  comp[:1],
		}
		for name, src := range cases {
			if _, err := c.Decompress(codec, src); !errors.Is(err, ErrCorruptBatch) {
				t.Errorf("%s/%s: %v, want ErrCorruptBatch", codec, name, err)
			}
		}
	}
}

// xerialFrame frames data the way the Java client's SnappyOutputStream
// does: magic, version 1, compatible version 1, then length-prefixed raw
// snappy blocks of at most chunk bytes of input each.
func xerialFrame(data []byte, chunk int) []byte {
	out := append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}, 0, 0, 0, 1, 0, 0, 0, 1)
	for len(data) > 0 {
		n := min(chunk, len(data))
		block := snappy.Encode(nil, data[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
		data = data[n:]
	}
	return out
}

func TestSnappyXerial(t *testing.T) {
	c := NewCodecs()
	in := testPayload(100<<10, 6)
	framed := xerialFrame(in, 32<<10)
	out, err := c.Decompress(CodecSnappy, framed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatal("xerial decode differs")
	}

	// Only the header: an empty stream.
	if out, err := c.Decompress(CodecSnappy, xerialFrame(nil, 1)); err != nil || len(out) != 0 {
		t.Fatalf("empty xerial: %d bytes, %v", len(out), err)
	}

	// A chunk length running past the end, and a torn length.
	bad := append([]byte(nil), framed...)
	binary.BigEndian.PutUint32(bad[16:], uint32(len(bad)))
	if _, err := c.Decompress(CodecSnappy, bad); !errors.Is(err, ErrCorruptBatch) {
		t.Errorf("chunk past end: %v", err)
	}
	if _, err := c.Decompress(CodecSnappy, append(xerialFrame(in[:100], 1<<10), 0, 0)); !errors.Is(err, ErrCorruptBatch) {
		t.Errorf("torn chunk length: %v", err)
	}

	// The bound applies across chunks.
	if _, err := c.DecompressLimit(CodecSnappy, framed, len(in)-1); !errors.Is(err, ErrDecompressedTooLarge) {
		t.Errorf("limit across chunks: %v", err)
	}
	if _, err := c.DecompressLimit(CodecSnappy, framed, len(in)); err != nil {
		t.Errorf("limit equal to size: %v", err)
	}
}

func TestDecompressLimit(t *testing.T) {
	c := NewCodecs()
	in := make([]byte, 4<<20) // zeros: the best case for a bomb
	for _, codec := range allCodecs {
		comp, err := c.Compress(codec, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{0, 1000, 1 << 20, len(in) - 1} {
			if _, err := c.DecompressLimit(codec, comp, limit); !errors.Is(err, ErrDecompressedTooLarge) {
				t.Errorf("%s limit %d: %v, want ErrDecompressedTooLarge", codec, limit, err)
			}
		}
		if out, err := c.DecompressLimit(codec, comp, len(in)); err != nil || len(out) != len(in) {
			t.Errorf("%s limit == size: %d bytes, %v", codec, len(out), err)
		}
		small := NewCodecsLimit(1 << 20)
		if small.Limit() != 1<<20 {
			t.Fatalf("Limit() = %d", small.Limit())
		}
		if _, err := small.Decompress(codec, comp); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Errorf("%s NewCodecsLimit: %v", codec, err)
		}
	}
}

// zstdStream compresses data with a streaming encoder, as the Java client
// does: the frame does not declare its content size.
func zstdStream(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	// Flushing before the end starts the frame before its size is known.
	if err := zw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("streamed zstd frame: header %+v, %v", h, err)
	}
	return buf.Bytes()
}

// TestDecompressStreamsAndConcatenation covers inputs the one-shot paths
// do not produce: zstd frames without a content size, and several
// gzip members, lz4 frames or zstd frames back to back.
func TestDecompressStreamsAndConcatenation(t *testing.T) {
	c := NewCodecs()
	a, b := testPayload(70<<10, 8), testPayload(3000, 9)
	both := append(append([]byte(nil), a...), b...)

	if out, err := c.Decompress(CodecZstd, zstdStream(t, a)); err != nil || !bytes.Equal(out, a) {
		t.Fatalf("zstd stream: %v", err)
	}
	if _, err := c.DecompressLimit(CodecZstd, zstdStream(t, a), len(a)-1); !errors.Is(err, ErrDecompressedTooLarge) {
		t.Fatalf("zstd stream over limit: %v", err)
	}
	for _, codec := range []Codec{CodecGzip, CodecLz4, CodecZstd} {
		ca, _ := c.Compress(codec, a)
		cb, _ := c.Compress(codec, b)
		cat := append(append([]byte(nil), ca...), cb...)
		out, err := c.Decompress(codec, cat)
		if err != nil || !bytes.Equal(out, both) {
			t.Errorf("%s: two concatenated: %d bytes, %v", codec, len(out), err)
		}
		if _, err := c.DecompressLimit(codec, cat, len(both)-1); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Errorf("%s: two concatenated over limit: %v", codec, err)
		}
		if _, err := c.Decompress(codec, append(cat, 1, 2, 3)); !errors.Is(err, ErrCorruptBatch) {
			t.Errorf("%s: trailing garbage: %v", codec, err)
		}
	}
	// A zstd window past zstdWindowMax is refused before it is allocated.
	huge := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 18 << 3} // no content size; window 2^28
	huge = append(huge, 0x23, 0x03, 0x00, 'x')            // last RLE block of 100 bytes
	var err error
	if n := allocated(func() { _, err = c.Decompress(CodecZstd, huge) }); n > 16<<20 {
		t.Errorf("huge window: allocated %d bytes", n)
	}
	if !errors.Is(err, ErrCorruptBatch) {
		t.Errorf("huge window: %v", err)
	}
	// The same frame with a 1 MiB window decodes.
	small := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 10 << 3}, huge[6:]...)
	if out, err := c.Decompress(CodecZstd, small); err != nil || !bytes.Equal(out, bytes.Repeat([]byte("x"), 100)) {
		t.Errorf("small window: %q, %v", out, err)
	}
}

// allocated returns the bytes allocated while running f.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecompressDeclaredSize checks that a size declared up front (snappy's
// length varint, zstd's frame content size) is not allocated when the input
// could not possibly expand to it.
func TestDecompressDeclaredSize(t *testing.T) {
	c := NewCodecs()
	const declared = 200 << 20

	lyingSnappy := binary.AppendUvarint(nil, declared)
	lyingSnappy = append(lyingSnappy, 0x00, 'x', 0x00, 'y') // two 1-byte literals
	zstdHeader := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0}      // magic; single segment, 8-byte content size
	zstdHeader = binary.LittleEndian.AppendUint64(zstdHeader, declared)
	lyingZstd := append(zstdHeader, 0x01, 0x00, 0x00) // a last raw block of 0 bytes

	for name, tc := range map[string]struct {
		codec Codec
		src   []byte
	}{
		"snappy": {CodecSnappy, lyingSnappy},
		"zstd":   {CodecZstd, lyingZstd},
	} {
		var err error
		n := allocated(func() { _, err = c.Decompress(tc.codec, tc.src) })
		if !errors.Is(err, ErrCorruptBatch) {
			t.Errorf("%s: %v, want ErrCorruptBatch", name, err)
		}
		if n > 16<<20 {
			t.Errorf("%s: allocated %d bytes for a %d-byte input", name, n, len(tc.src))
		}
		// Over the caller's limit, it is too large rather than corrupt.
		if _, err := c.DecompressLimit(tc.codec, tc.src, 1<<20); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Errorf("%s over limit: %v, want ErrDecompressedTooLarge", name, err)
		}
	}
}

// TestDecompressBombMemory checks that streamed codecs stop near the limit.
func TestDecompressBombMemory(t *testing.T) {
	c := NewCodecs()
	comp := map[Codec][]byte{}
	for _, codec := range allCodecs {
		b, err := c.Compress(codec, make([]byte, 64<<20))
		if err != nil {
			t.Fatal(err)
		}
		comp[codec] = b
	}
	// EncodeAll declares the content size, which is rejected up front; a
	// streaming encoder (like the Java client's) does not, so the decoder
	// must stop on its own.
	comp[CodecZstd] = zstdStream(t, make([]byte, 64<<20))
	const limit = 1 << 20
	for _, codec := range allCodecs {
		var err error
		n := allocated(func() { _, err = c.DecompressLimit(codec, comp[codec], limit) })
		if !errors.Is(err, ErrDecompressedTooLarge) {
			t.Errorf("%s: %v", codec, err)
		}
		// zstd's decoder keeps up to its minimum window; the others stay
		// within a few times the limit.
		budget := uint64(8 * limit)
		if codec == CodecZstd {
			budget = 24 << 20 // the window (8 MiB by default) plus the output
		}
		t.Logf("%s: %d compressed bytes, allocated %d bytes stopping at %d", codec, len(comp[codec]), n, limit)
		if n > budget {
			t.Errorf("%s: allocated %d bytes with a %d-byte limit", codec, n, limit)
		}
	}
}

func TestCodecsConcurrent(t *testing.T) {
	c := NewCodecs()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				codec := allCodecs[(g+i)%len(allCodecs)]
				in := testPayload(1000+g*100+i, uint64(g*100+i))
				comp, err := c.Compress(codec, in)
				if err != nil {
					errs <- err
					return
				}
				out, err := c.Decompress(codec, comp)
				if err != nil || !bytes.Equal(out, in) {
					errs <- fmt.Errorf("%s: %v", codec, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCodecString(t *testing.T) {
	for c, want := range map[Codec]string{CodecNone: "none", CodecGzip: "gzip", CodecSnappy: "snappy", CodecLz4: "lz4", CodecZstd: "zstd", 6: "codec(6)"} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", c, got, want)
		}
	}
}

func BenchmarkDecompress(b *testing.B) {
	c := NewCodecs()
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		in := testPayload(size, uint64(size))
		for _, codec := range allCodecs {
			comp, err := c.Compress(codec, in)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%d", codec, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Decompress(codec, comp); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		stream := zstdStream(b, in)
		b.Run(fmt.Sprintf("zstd-stream/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decompress(CodecZstd, stream); err != nil {
					b.Fatal(err)
				}
			}
		})
		xerial := xerialFrame(in, 32<<10)
		b.Run(fmt.Sprintf("snappy-xerial/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decompress(CodecSnappy, xerial); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCompress(b *testing.B) {
	c := NewCodecs()
	in := testPayload(64<<10, 7)
	for _, codec := range allCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Compress(codec, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
