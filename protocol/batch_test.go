package protocol

import (
	"encoding/binary"
	"testing"
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

func TestSetLogAppendTime(t *testing.T) {
	c := NewCodecs()
	for _, codec := range []Codec{CodecNone, CodecSnappy} {
		b := mustBuild(t, c, codec, 1000, testRecords(3))
		SetBaseOffset(b, 50)
		SetLogAppendTime(b, 1_234_567)
		h, err := CheckBatch(b)
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
		if _, err := CheckBatch(b); err != nil {
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
