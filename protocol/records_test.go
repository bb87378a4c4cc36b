package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testRecords returns n records with a mix of keys, null keys and values,
// headers and timestamp deltas (some negative, as clock skew allows).
func testRecords(n int) []kmsg.Record {
	recs := make([]kmsg.Record, n)
	for i := range recs {
		r := &recs[i]
		r.TimestampDelta64 = int64(i*7 - 3)
		if i%3 != 0 {
			r.Key = fmt.Appendf(nil, "key-%d", i)
		}
		if i%5 != 4 {
			r.Value = testPayload(10+i*13, uint64(i))
		}
		for h := range i % 3 {
			r.Headers = append(r.Headers, kmsg.Header{Key: fmt.Sprintf("h%d", h), Value: []byte{byte(h)}})
		}
		if i%4 == 1 {
			r.Headers = append(r.Headers, kmsg.Header{Key: "null-value"})
		}
	}
	return recs
}

func mustBuild(t testing.TB, c *Codecs, codec Codec, base int64, recs []kmsg.Record) []byte {
	t.Helper()
	b, err := c.BuildBatch(codec, base, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameRecord(a, b *kmsg.Record) bool {
	if !bytes.Equal(a.Key, b.Key) || (a.Key == nil) != (b.Key == nil) ||
		!bytes.Equal(a.Value, b.Value) || (a.Value == nil) != (b.Value == nil) ||
		a.TimestampDelta64 != b.TimestampDelta64 || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		x, y := a.Headers[i], b.Headers[i]
		if x.Key != y.Key || !bytes.Equal(x.Value, y.Value) || (x.Value == nil) != (y.Value == nil) {
			return false
		}
	}
	return true
}

func TestBuildBatchHeader(t *testing.T) {
	c := NewCodecs()
	recs := testRecords(5)
	for _, codec := range append([]Codec{CodecNone}, allCodecs...) {
		t.Run(codec.String(), func(t *testing.T) {
			b := mustBuild(t, c, codec, 1_700_000_000_000, recs)
			h, err := CheckBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.ValidateProduceBatch(b, lenient); err != nil {
				t.Fatal(err)
			}
			want := kmsg.RecordBatch{
				FirstOffset:          0,
				Length:               int32(len(b) - 12),
				PartitionLeaderEpoch: -1,
				Magic:                2,
				CRC:                  int32(BatchCRC(b)),
				Attributes:           int16(codec),
				LastOffsetDelta:      4,
				FirstTimestamp:       1_700_000_000_000,
				MaxTimestamp:         1_700_000_000_000 + 25, // largest delta: 4*7-3
				ProducerID:           -1,
				ProducerEpoch:        -1,
				FirstSequence:        -1,
				NumRecords:           5,
				Records:              b[BatchHeaderSize:],
			}
			// kmsg encodes the same header independently.
			if enc := want.AppendTo(nil); !bytes.Equal(enc, b) {
				t.Fatalf("header differs from kmsg's encoding:\n got %x\nwant %x", b[:BatchHeaderSize], enc[:BatchHeaderSize])
			}
			if h.NumRecords != 5 || h.MaxTimestamp != want.MaxTimestamp {
				t.Fatalf("parsed header %+v", h)
			}
		})
	}
	// The caller's records are left alone.
	if recs[3].OffsetDelta != 0 || recs[3].Length != 0 {
		t.Fatal("BuildBatch modified its input")
	}
}

func TestBuildBatchTimestampDelta32(t *testing.T) {
	c := NewCodecs()
	b := mustBuild(t, c, CodecNone, 1000, []kmsg.Record{{TimestampDelta: 5}, {TimestampDelta: 9}})
	recs, err := c.RecordsAt(b)
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Timestamp != 1005 || recs[1].Timestamp != 1009 {
		t.Fatalf("timestamps %d %d", recs[0].Timestamp, recs[1].Timestamp)
	}
	if _, err := c.BuildBatch(7, 0, nil); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("codec 7: %v", err)
	}
}

func TestRecordsAt(t *testing.T) {
	c := NewCodecs()
	recs := testRecords(40)
	const base = 1_700_000_000_000
	for _, codec := range append([]Codec{CodecNone}, allCodecs...) {
		t.Run(codec.String(), func(t *testing.T) {
			b := mustBuild(t, c, codec, base, recs)
			SetBaseOffset(b, 1000)
			SetPartitionLeaderEpoch(b, 7)

			got, err := c.RecordsAt(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d records, want %d", len(got), len(recs))
			}
			for i := range got {
				if got[i].Offset != 1000+int64(i) {
					t.Errorf("record %d: offset %d", i, got[i].Offset)
				}
				if want := base + recs[i].TimestampDelta64; got[i].Timestamp != want {
					t.Errorf("record %d: timestamp %d, want %d", i, got[i].Timestamp, want)
				}
				if !sameRecord(&got[i].Record, &recs[i]) {
					t.Errorf("record %d: %+v, want %+v", i, got[i].Record, recs[i])
				}
				if got[i].Record.OffsetDelta != int32(i) {
					t.Errorf("record %d: offset delta %d", i, got[i].Record.OffsetDelta)
				}
			}

			plain, err := c.Records(b)
			if err != nil || len(plain) != len(recs) || !sameRecord(&plain[7], &recs[7]) {
				t.Fatalf("Records: %d records, %v", len(plain), err)
			}

			// LogAppendTime: every record takes the batch's max timestamp.
			SetLogAppendTime(b, 42)
			if _, err := CheckBatch(b); err != nil {
				t.Fatalf("after SetLogAppendTime: %v", err)
			}
			got, err = c.RecordsAt(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i].Timestamp != 42 || got[i].Offset != 1000+int64(i) {
					t.Fatalf("LogAppendTime record %d: offset %d timestamp %d", i, got[i].Offset, got[i].Timestamp)
				}
			}
		})
	}
}

// TestRecordsXerial decodes a batch compressed the way the Java client
// compresses snappy.
func TestRecordsXerial(t *testing.T) {
	c := NewCodecs()
	recs := testRecords(30)
	plain := mustBuild(t, c, CodecNone, 5, recs)
	b := append([]byte(nil), plain[:BatchHeaderSize]...)
	b = append(b, xerialFrame(plain[BatchHeaderSize:], 256)...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint16(b[21:], uint16(CodecSnappy))
	binary.BigEndian.PutUint32(b[17:], BatchCRC(b))
	if _, err := c.ValidateProduceBatch(b, lenient); err != nil {
		t.Fatal(err)
	}
	got, err := c.RecordsAt(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if !sameRecord(&got[i].Record, &recs[i]) || got[i].Timestamp != 5+recs[i].TimestampDelta64 {
			t.Fatalf("record %d differs", i)
		}
	}
}

func TestRecordsEmptyBatch(t *testing.T) {
	c := NewCodecs()
	b := mustBuild(t, c, CodecNone, 9, nil)
	recs, err := c.RecordsAt(b)
	if err != nil || len(recs) != 0 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	if _, err := c.ValidateProduceBatch(b, lenient); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("empty batch validates: %v", err)
	}
}

// rebatch replaces the records section of an uncompressed batch and fixes
// the length, count and CRC so that only the records are wrong.
func rebatch(b []byte, records []byte, count int32) []byte {
	out := append(append([]byte(nil), b[:BatchHeaderSize]...), records...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[57:], uint32(count))
	binary.BigEndian.PutUint32(out[23:], uint32(count-1))
	binary.BigEndian.PutUint32(out[17:], BatchCRC(out))
	return out
}

func TestRecordsCorrupt(t *testing.T) {
	c := NewCodecs()
	good := mustBuild(t, c, CodecNone, 0, testRecords(3))
	section := good[BatchHeaderSize:]

	// One hand-made record: length 7, attributes, ts 0, offset 0,
	// key null, value null, no headers, plus one stray byte.
	stray := []byte{7 << 1, 0, 0, 0, 1, 1, 0, 0xAA}

	setCodec := func(b []byte, codec Codec) []byte {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint16(b[21:], uint16(codec))
		binary.BigEndian.PutUint32(b[17:], BatchCRC(b))
		return b
	}
	cases := map[string]struct {
		batch []byte
		want  error
	}{
		"count over bytes":    {rebatch(good, section, 1<<30), ErrCorruptBatch},
		"negative count":      {rebatch(good, section, -1), ErrCorruptBatch},
		"count under records": {rebatch(good, section, 2), ErrCorruptBatch},
		"count over records":  {rebatch(good, section, 4), ErrCorruptBatch},
		"trailing byte":       {rebatch(good, append(append([]byte(nil), section...), 0), 3), ErrCorruptBatch},
		"record length short": {rebatch(good, stray[:len(stray)-1], 1), ErrCorruptBatch},
		"record has extra":    {rebatch(good, stray, 1), ErrCorruptBatch},
		"record length past":  {rebatch(good, []byte{100 << 1, 0, 0, 0, 1, 1, 0}, 1), ErrCorruptBatch},
		"record length tiny":  {rebatch(good, []byte{2 << 1, 0, 0, 0, 1, 1, 0}, 1), ErrCorruptBatch},
		"bad varint":          {rebatch(good, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1), ErrCorruptBatch},
		"truncated batch":     {good[:len(good)-1], ErrCorruptBatch},
		"short header":        {good[:40], ErrCorruptBatch},
		"unknown codec":       {setCodec(good, 6), ErrUnsupportedCodec},
		"not really gzip":     {setCodec(good, CodecGzip), ErrCorruptBatch},
		"not really zstd":     {setCodec(good, CodecZstd), ErrCorruptBatch},
		"magic 1":             {func() []byte { b := append([]byte(nil), good...); b[16] = 1; return b }(), ErrInvalidBatch},
	}
	for name, tc := range cases {
		if _, err := c.RecordsAt(tc.batch); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// The exact-length record decodes.
	ok := stray[:len(stray)-1]
	ok[0] = 6 << 1
	if recs, err := c.Records(rebatch(good, ok, 1)); err != nil || len(recs) != 1 || recs[0].Key != nil || recs[0].Value != nil {
		t.Fatalf("minimal record: %+v, %v", recs, err)
	}
}

func TestRecordsDecompressLimit(t *testing.T) {
	big := []kmsg.Record{{Value: make([]byte, 2<<20)}}
	b := mustBuild(t, NewCodecs(), CodecZstd, 0, big)
	if _, err := NewCodecsLimit(1 << 20).Records(b); !errors.Is(err, ErrDecompressedTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
	if _, err := NewCodecsLimit(4 << 20).Records(b); err != nil {
		t.Fatalf("within limit: %v", err)
	}
}

// TestRecordBodyLen checks the size computation against kmsg's encoder.
func TestRecordBodyLen(t *testing.T) {
	for i, r := range append(testRecords(20), kmsg.Record{TimestampDelta64: -1 << 40, OffsetDelta: 1 << 30, Value: make([]byte, 300)}) {
		enc := r.AppendTo(nil)
		_, n := kbin.Varint(enc)
		if got, want := recordBodyLen(&r), len(enc)-n; got != want {
			t.Errorf("record %d: %d, want %d", i, got, want)
		}
	}
}

func BenchmarkRecordsAt(b *testing.B) {
	c := NewCodecs()
	for _, codec := range []Codec{CodecNone, CodecLz4, CodecZstd} {
		batch := mustBuild(b, c, codec, 0, testRecords(100))
		b.Run(codec.String(), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.RecordsAt(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
