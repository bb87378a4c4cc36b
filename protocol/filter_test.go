package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzFilterBatch: any bytes filter or fail cleanly; what filters is one
// whole batch that passes CheckBatch, spans the same offsets and holds
// exactly the kept records.
func FuzzFilterBatch(f *testing.F) {
	c := NewCodecs()
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecLz4} {
		b, err := c.BuildBatch(codec, 1000, []kmsg.Record{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b")}, {Key: []byte("a"), Value: []byte("2")}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0b101))
		f.Add(b, uint8(0))
	}
	f.Add([]byte{}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, mask uint8) {
		if _, err := CheckBatch(b); err != nil {
			return // the cleaner checks the CRC before filtering
		}
		i := 0
		out, kept, err := c.FilterBatch(b, func(*RecordAt) bool { i++; return mask&(1<<((i-1)%8)) != 0 })
		if err != nil {
			return
		}
		h, err := CheckBatch(out)
		if err != nil {
			t.Fatalf("filtered batch: %v", err)
		}
		orig, _ := ParseBatchHeader(b)
		if h.FirstOffset != orig.FirstOffset || h.LastOffsetDelta != orig.LastOffsetDelta || int(h.NumRecords) != kept {
			t.Fatalf("filtered header %+v from %+v, kept %d", h, orig, kept)
		}
		recs, err := c.Records(out)
		if err != nil || len(recs) != kept {
			t.Fatalf("filtered records: %d, %v; kept %d", len(recs), err, kept)
		}
	})
}
