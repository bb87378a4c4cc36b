package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fixCRC recomputes a batch's CRC after a test edits it.
func fixCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[17:], BatchCRC(b))
	return b
}

func edit(b []byte, f func([]byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

func TestValidateProduceBatch(t *testing.T) {
	c := NewCodecs()
	good := mustBuild(t, c, CodecNone, 1000, testRecords(4))
	zstdGood := mustBuild(t, c, CodecZstd, 1000, testRecords(4))

	cases := map[string]struct {
		batch []byte
		want  error // nil: valid
	}{
		"good":       {good, nil},
		"good zstd":  {zstdGood, nil},
		"bad crc":    {edit(good, func(b []byte) { b[len(b)-1] ^= 1 }), ErrCorruptBatch},
		"crc field":  {edit(good, func(b []byte) { b[18] ^= 0x80 }), ErrCorruptBatch},
		"two":        {append(append([]byte(nil), good...), good...), ErrInvalidBatch},
		"trailing":   {append(append([]byte(nil), good...), 0), ErrInvalidBatch},
		"codec 5":    {edit(good, func(b []byte) { b[22] = 5; fixCRC(b) }), ErrUnsupportedCodec},
		"codec 7":    {edit(good, func(b []byte) { b[22] = 7; fixCRC(b) }), ErrUnsupportedCodec},
		"truncated":  {good[:len(good)-1], ErrCorruptBatch},
		"header cut": {good[:BatchHeaderSize-1], ErrCorruptBatch},
		"empty":      {nil, ErrCorruptBatch},
		"magic 1":    {edit(good, func(b []byte) { b[16] = 1 }), ErrInvalidBatch},
		"magic 0":    {edit(good, func(b []byte) { b[16] = 0 }), ErrInvalidBatch},
		"count high": {edit(good, func(b []byte) { binary.BigEndian.PutUint32(b[57:], 5); fixCRC(b) }), ErrInvalidBatch},
		"count zero": {edit(good, func(b []byte) { binary.BigEndian.PutUint32(b[57:], 0); fixCRC(b) }), ErrInvalidBatch},
		"delta off":  {edit(good, func(b []byte) { binary.BigEndian.PutUint32(b[23:], 2); fixCRC(b) }), ErrInvalidBatch},
		"control":    {edit(good, func(b []byte) { b[22] |= AttrControl; fixCRC(b) }), ErrInvalidBatch},
		"length neg": {edit(good, func(b []byte) { binary.BigEndian.PutUint32(b[8:], 0xffffffff) }), ErrCorruptBatch},
		"length low": {edit(good, func(b []byte) { binary.BigEndian.PutUint32(b[8:], batchLengthOverhead-1) }), ErrCorruptBatch},
		"length big": {edit(good, func(b []byte) { binary.BigEndian.PutUint32(b[8:], uint32(len(b))) }), ErrCorruptBatch},
		// Offsets and leader epoch are outside the CRC: a broker sets them.
		"base offset":  {edit(good, func(b []byte) { SetBaseOffset(b, 99) }), nil},
		"leader epoch": {edit(good, func(b []byte) { SetPartitionLeaderEpoch(b, 3) }), nil},
	}
	for name, tc := range cases {
		h, err := ValidateProduceBatch(tc.batch)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if BatchSize(tc.batch) != len(tc.batch) || h.NumRecords != 4 {
				t.Errorf("%s: size %d of %d, %d records", name, BatchSize(tc.batch), len(tc.batch), h.NumRecords)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestSetLogAppendTime(t *testing.T) {
	c := NewCodecs()
	for _, codec := range []Codec{CodecNone, CodecSnappy} {
		b := mustBuild(t, c, codec, 1000, testRecords(3))
		SetBaseOffset(b, 50)
		SetLogAppendTime(b, 1_234_567)
		h, err := ValidateProduceBatch(b)
		if err != nil {
			t.Fatalf("%s: CRC no longer valid: %v", codec, err)
		}
		if h.Attributes&AttrLogAppendTime == 0 || h.MaxTimestamp != 1_234_567 || h.FirstTimestamp != 1000 {
			t.Fatalf("%s: header %+v", codec, h)
		}
		if Codec(h.Attributes&AttrCompressionMask) != codec {
			t.Fatalf("%s: codec bits lost: %d", codec, h.Attributes)
		}
		// Idempotent: setting it again keeps the batch valid.
		SetLogAppendTime(b, 7)
		if _, err := ValidateProduceBatch(b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBatchSize(t *testing.T) {
	good := mustBuild(t, NewCodecs(), CodecNone, 0, testRecords(2))
	for name, tc := range map[string]struct {
		b    []byte
		want int
	}{
		"whole":    {good, len(good)},
		"two":      {append(append([]byte(nil), good...), good...), len(good)},
		"short":    {good[:11], 0},
		"header":   {good[:12], len(good)},
		"negative": {edit(good, func(b []byte) { binary.BigEndian.PutUint32(b[8:], 0x80000000) }), 0},
	} {
		if got := BatchSize(tc.b); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
}

func TestParseBatchHeaderSecondOfTwo(t *testing.T) {
	c := NewCodecs()
	a := mustBuild(t, c, CodecNone, 0, testRecords(2))
	b := mustBuild(t, c, CodecGzip, 0, testRecords(5))
	both := append(append([]byte(nil), a...), b...)
	h, err := ParseBatchHeader(both)
	if err != nil || h.NumRecords != 2 || len(h.Records) != len(a)-BatchHeaderSize {
		t.Fatalf("first: %+v, %v", h, err)
	}
	h, err = ParseBatchHeader(both[BatchSize(both):])
	if err != nil || h.NumRecords != 5 {
		t.Fatalf("second: %+v, %v", h, err)
	}
}

func BenchmarkValidateProduceBatch(b *testing.B) {
	c := NewCodecs()
	for _, n := range []int{1, 100, 1000} {
		recs := make([]kmsg.Record, n)
		for i := range recs {
			recs[i].Value = testPayload(1000, uint64(i))
		}
		for _, codec := range []Codec{CodecNone, CodecZstd} {
			batch := mustBuild(b, c, codec, 0, recs)
			b.Run(fmt.Sprintf("%s/%drecords", codec, n), func(b *testing.B) {
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ValidateProduceBatch(batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
