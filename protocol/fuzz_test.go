package protocol

// Fuzz targets for every decoder here that sees network bytes. Seeds live
// twice: added in code (so `go test` runs them) and checked in under
// testdata/fuzz/<Fuzz>/ by name (so `go test -fuzz` starts from them and a
// reader can see them). TestFuzzSeedFiles keeps the two in step; run
//
//	go test ./protocol -run TestFuzzSeedFiles -update-seeds
//
// after changing a seed. Crashers the fuzzer finds are saved beside them
// under hashed names and are kept as regression seeds.
//
// Known issue (kmsg v1.15.0, outside this package): kmsg reads a flexible
// struct's tagged fields with `for num := b.Uvarint(); num > 0; num--` and
// keeps looping after its reader has run out of bytes, so a body whose tag
// count is a large varint near its end costs up to 2^32 iterations (about
// a minute of CPU) before ReadFrom fails. FuzzParseRequest finds such
// inputs within seconds; they do not fail the target, they stall it. The
// request header's tags are skipped by skipTags in frame.go, which is not
// affected. Checking b.Ok() in that loop (kmsg api.go, internalReadTags,
// ReadTags, SkipTags) fixes it.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the named seed files under testdata/fuzz")

// fuzzReadFrameMax is the frame limit FuzzReadFrame reads with.
const fuzzReadFrameMax = 64

type fuzzSeed struct {
	name string
	data []byte
	// compressed seeds hold codec output, which may change with the
	// codec library; their files need not match byte for byte.
	compressed bool
}

func withGarbage(b []byte) []byte {
	return append(append([]byte(nil), b...), 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x7f)
}

// requestFrame returns req's frame without its size prefix, as ParseRequest takes it.
func requestFrame(req kmsg.Request) []byte {
	cid := "fuzz-client"
	return AppendRequest(nil, 42, &cid, req)[4:]
}

func seedRequests() (apiV3, metaV12 []byte) {
	api := kmsg.NewPtrApiVersionsRequest()
	api.Version = 3
	api.ClientSoftwareName, api.ClientSoftwareVersion = "gregor", "0.1.0"
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	topic := "orders"
	meta.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	return requestFrame(api), requestFrame(meta)
}

// seedBatches returns valid batches: uncompressed, each codec, and xerial snappy.
func seedBatches(t testing.TB) []fuzzSeed {
	c := NewCodecs()
	recs := testRecords(3)
	out := []fuzzSeed{{name: "batch-none", data: mustBuild(t, c, CodecNone, 1_700_000_000_000, recs)}}
	for _, codec := range allCodecs {
		out = append(out, fuzzSeed{"batch-" + codec.String(), mustBuild(t, c, codec, 1_700_000_000_000, recs), true})
	}
	plain := out[0].data
	x := append(append([]byte(nil), plain[:BatchHeaderSize]...), xerialFrame(plain[BatchHeaderSize:], 64)...)
	binary.BigEndian.PutUint32(x[8:], uint32(len(x)-12))
	binary.BigEndian.PutUint16(x[21:], uint16(CodecSnappy))
	out = append(out, fuzzSeed{"batch-snappy-xerial", fixCRC(x), true})
	return out
}

// fuzzSeeds returns the named seeds of each fuzz target.
func fuzzSeeds(t testing.TB) map[string][]fuzzSeed {
	apiV3, metaV12 := seedRequests()
	batches := seedBatches(t)
	batch := batches[0].data
	common := []fuzzSeed{
		{name: "empty"},
		{name: "zero-length", data: []byte{0, 0, 0, 0}},
		{name: "length-ffffffff", data: []byte{0xff, 0xff, 0xff, 0xff}},
	}
	seeds := map[string][]fuzzSeed{}

	seeds["FuzzParseRequest"] = append(append([]fuzzSeed(nil), common...),
		fuzzSeed{name: "apiversions-v3", data: apiV3},
		fuzzSeed{name: "metadata-v12", data: metaV12},
		fuzzSeed{name: "apiversions-v3-garbage", data: withGarbage(apiV3)},
		fuzzSeed{name: "metadata-v12-garbage", data: withGarbage(metaV12)},
	)
	for _, req := range testRequests(t) {
		name := strings.ToLower(fmt.Sprintf("req-%s-v%d", kmsg.NameForKey(req.Key()), req.GetVersion()))
		_, isProduce := req.(*kmsg.ProduceRequest) // carries an lz4 batch
		seeds["FuzzParseRequest"] = append(seeds["FuzzParseRequest"], fuzzSeed{name, requestFrame(req), isProduce})
	}

	apiFrame := sizePrefixed(apiV3)
	seeds["FuzzReadFrame"] = append(append([]fuzzSeed(nil), common...),
		fuzzSeed{name: "apiversions-v3", data: apiFrame},
		fuzzSeed{name: "apiversions-v3-garbage", data: withGarbage(apiFrame)},
		fuzzSeed{name: "two-frames", data: append(append([]byte(nil), apiFrame...), sizePrefixed([]byte("x"))...)},
		fuzzSeed{name: "over-max", data: sizePrefixed(make([]byte, fuzzReadFrameMax+1))},
		fuzzSeed{name: "torn", data: apiFrame[:len(apiFrame)-3]},
	)

	batchSeeds := append(append([]fuzzSeed(nil), common...),
		fuzzSeed{name: "batch-garbage", data: withGarbage(batch)},
		fuzzSeed{name: "batch-length-ffffffff", data: edit(batch, func(b []byte) { binary.BigEndian.PutUint32(b[8:], 0xffffffff) })},
		fuzzSeed{name: "batch-count-huge", data: fixCRC(edit(batch, func(b []byte) { binary.BigEndian.PutUint32(b[57:], 0x7fffffff) }))},
	)
	seeds["FuzzValidateProduceBatch"] = append(append(append([]fuzzSeed(nil), batchSeeds...), batches...), lyingSeeds(t)...)
	seeds["FuzzRecords"] = append(append([]fuzzSeed(nil), batchSeeds...), batches...)
	return seeds
}

// lyingSeeds are batches whose CRC is right and whose records lie, one
// of each shape the validator refuses, uncompressed and in lz4 (a
// streamed codec).
func lyingSeeds(t testing.TB) []fuzzSeed {
	var out []fuzzSeed
	for _, codec := range []Codec{CodecNone, CodecLz4} {
		cases := structureCases(t, codec)
		names := make([]string, 0, len(cases))
		for name := range cases {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			seed := "lying-" + codec.String() + "-" + strings.ReplaceAll(name, " ", "-")
			out = append(out, fuzzSeed{seed, cases[name].batch, codec != CodecNone})
		}
	}
	return out
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds(f)[f.Name()] {
		f.Add(s.data)
	}
}

// corpusFile is the Go fuzzing corpus encoding of one []byte argument.
func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

func TestFuzzSeedFiles(t *testing.T) {
	seeds := fuzzSeeds(t)
	names := make([]string, 0, len(seeds))
	for name := range seeds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, fuzz := range names {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		for _, s := range seeds[fuzz] {
			path := filepath.Join(dir, s.name)
			want := corpusFile(s.data)
			if *updateSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%v (run with -update-seeds)", err)
				continue
			}
			if !bytes.Equal(got, want) && !s.compressed {
				t.Errorf("%s differs from the seed in code (run with -update-seeds)", path)
			}
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, err := ParseRequest(frame)
		if err != nil {
			if req != nil {
				t.Fatalf("request returned with error %v", err)
			}
			if !errors.Is(err, ErrMalformedHeader) && !errors.Is(err, ErrUnknownKey) &&
				!errors.Is(err, ErrUnknownVersion) && !errors.Is(err, ErrMalformedBody) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if req.Key() != h.Key || req.GetVersion() != h.Version {
			t.Fatalf("header %+v, request %d v%d", h, req.Key(), req.GetVersion())
		}
		// What parsed must re-encode into a frame that parses again, to
		// the same header and the same body.
		again := AppendRequest(nil, h.CorrelationID, h.ClientID, req)
		h2, req2, err := ParseRequest(again[4:])
		if err != nil {
			t.Fatalf("re-encoded %s v%d does not parse: %v", kmsg.NameForKey(h.Key), h.Version, err)
		}
		if h2.Key != h.Key || h2.Version != h.Version || h2.CorrelationID != h.CorrelationID ||
			(h2.ClientID == nil) != (h.ClientID == nil) || (h.ClientID != nil && *h.ClientID != *h2.ClientID) {
			t.Fatalf("header %+v became %+v", h, h2)
		}
		if a, b := req.AppendTo(nil), req2.AppendTo(nil); !bytes.Equal(a, b) {
			t.Fatalf("%s v%d body changed across a round trip:\n%x\n%x", kmsg.NameForKey(h.Key), h.Version, a, b)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bytes.NewReader(stream)
		var frames [][]byte
		for {
			frame, err := ReadFrame(r, fuzzReadFrameMax)
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			// The buffer is the allocation: it must never pass the limit.
			if cap(frame) > fuzzReadFrameMax {
				t.Fatalf("frame buffer of %d bytes with a %d-byte limit", cap(frame), fuzzReadFrameMax)
			}
			frames = append(frames, frame)
		}
		// The frames read are exactly the stream's prefix.
		var re []byte
		for _, fr := range frames {
			re = append(re, sizePrefixed(fr)...)
		}
		if !bytes.HasPrefix(stream, re) {
			t.Fatalf("frames do not reproduce the stream")
		}
	})
}

func FuzzValidateProduceBatch(f *testing.F) {
	addSeeds(f)
	// A small limit keeps the fuzzer on structure rather than on large
	// (legitimately) decompressed outputs.
	c := NewCodecsLimit(1 << 20)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := c.ValidateProduceBatch(b, lenient)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is not a *ValidationError: %v", err)
			}
			if ve.Kind != ErrCorruptBatch && ve.Kind != ErrInvalidBatch && ve.Kind != ErrUnsupportedCodec && ve.Kind != ErrInvalidTimestamp {
				t.Fatalf("error of an unknown kind: %v", err)
			}
			if len(ve.Records) > maxRecordErrors {
				t.Fatalf("%d record errors", len(ve.Records))
			}
			return
		}
		h := v.Header
		if BatchSize(b) != len(b) || uint32(h.CRC) != BatchCRC(b) || h.NumRecords < 1 || h.FirstOffset != 0 {
			t.Fatalf("valid batch with header %+v", h)
		}
		// What validation accepts, Gregor's own reader reads back whole:
		// as many records as declared, at offsets 0..n-1, the largest
		// timestamp as reported.
		recs, err := c.RecordsAt(b)
		if err != nil {
			t.Fatalf("valid batch does not read back: %v", err)
		}
		if len(recs) != int(h.NumRecords) {
			t.Fatalf("%d records read, %d declared", len(recs), h.NumRecords)
		}
		maxTs := int64(noTimestamp)
		for i := range recs {
			if recs[i].Offset != int64(i) {
				t.Fatalf("record %d at offset %d", i, recs[i].Offset)
			}
			maxTs = max(maxTs, recs[i].Timestamp)
		}
		if maxTs != v.MaxTimestamp {
			t.Fatalf("max timestamp %d, records say %d", v.MaxTimestamp, maxTs)
		}
		// The broker's edits keep it whole.
		e := append([]byte(nil), b...)
		SetMaxTimestamp(e, v.MaxTimestamp)
		SetBaseOffset(e, 1<<40)
		SetPartitionLeaderEpoch(e, 5)
		SetLogAppendTime(e, 99)
		if _, err := CheckBatch(e); err != nil {
			t.Fatalf("invalid after broker edits: %v", err)
		}
	})
}

func FuzzRecords(f *testing.F) {
	addSeeds(f)
	// A small limit keeps the fuzzer from spending its time on large
	// (legitimately) decompressed outputs.
	c := NewCodecsLimit(1 << 20)
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := c.Records(b)
		at, errAt := c.RecordsAt(b)
		if (err == nil) != (errAt == nil) {
			t.Fatalf("Records: %v, RecordsAt: %v", err, errAt)
		}
		if err != nil {
			if !errors.Is(err, ErrCorruptBatch) && !errors.Is(err, ErrInvalidBatch) &&
				!errors.Is(err, ErrUnsupportedCodec) && !errors.Is(err, ErrDecompressedTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		h, _ := ParseBatchHeader(b)
		if len(recs) != int(h.NumRecords) || len(at) != len(recs) {
			t.Fatalf("%d records, %d with offsets, header says %d", len(recs), len(at), h.NumRecords)
		}
		// What decoded re-encodes into a batch that decodes the same.
		rebuilt, err := c.BuildBatch(CodecNone, h.FirstTimestamp, recs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.RecordsAt(rebuilt)
		if err != nil {
			t.Fatalf("rebuilt batch does not decode: %v", err)
		}
		for i := range again {
			if !sameRecord(&again[i].Record, &recs[i]) {
				t.Fatalf("record %d changed across a rebuild", i)
			}
			if h.Attributes&AttrLogAppendTime == 0 && again[i].Timestamp != at[i].Timestamp {
				t.Fatalf("record %d: timestamp %d became %d", i, at[i].Timestamp, again[i].Timestamp)
			}
		}
	})
}

// FuzzParseControlBatch: control batches come from disk and from leaders
// (replica fetches): any bytes parse or fail cleanly.
func FuzzParseControlBatch(f *testing.F) {
	f.Add(NewControlBatch(7, 1, true, 3, 1_700_000_000_000))
	f.Add(NewControlBatch(7, 1, false, 0, 0))
	f.Add(make([]byte, BatchHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseControlBatch(b)
	})
}
