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

// TestSetDeleteHorizon: the stamped batch has bit 6, the horizon as its
// base timestamp and a valid CRC, and every record reads back with its
// timestamp (a record whose new delta is 0 included), compressed or not;
// a LogAppendTime batch's records read the max timestamp, as before.
func TestSetDeleteHorizon(t *testing.T) {
	c := NewCodecs()
	const base, horizon = 1_000_000, 1_000_010
	for _, codec := range []Codec{CodecNone, CodecLz4} {
		b, err := c.BuildBatch(codec, base, []kmsg.Record{
			{Key: []byte("a"), Value: []byte("1")},
			{Key: []byte("b"), TimestampDelta64: 10}, // a tombstone at the horizon itself: delta 0
			{Key: []byte("c"), Value: []byte("3"), TimestampDelta64: 25},
		})
		if err != nil {
			t.Fatal(err)
		}
		before, err := c.RecordsAt(b)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.SetDeleteHorizon(b, horizon)
		if err != nil {
			t.Fatal(err)
		}
		h, err := CheckBatch(out)
		if err != nil {
			t.Fatalf("codec %d: stamped batch: %v", codec, err)
		}
		if h.Attributes != int16(codec)|AttrDeleteHorizon || h.FirstTimestamp != horizon || h.MaxTimestamp != base+25 || h.NumRecords != 3 {
			t.Fatalf("codec %d: header %+v", codec, h)
		}
		if got, ok := DeleteHorizon(out); !ok || got != horizon {
			t.Fatalf("codec %d: DeleteHorizon %d %v", codec, got, ok)
		}
		if _, ok := DeleteHorizon(b); ok {
			t.Fatal("unstamped batch reports a horizon")
		}
		after, err := c.RecordsAt(out)
		if err != nil {
			t.Fatal(err)
		}
		for i := range before {
			x, y := before[i], after[i]
			if x.Timestamp != y.Timestamp || x.Offset != y.Offset || string(x.Record.Key) != string(y.Record.Key) ||
				string(x.Record.Value) != string(y.Record.Value) || (x.Record.Value == nil) != (y.Record.Value == nil) {
				t.Fatalf("codec %d: record %d: %+v became %+v", codec, i, x, y)
			}
		}
		if after[1].Record.TimestampDelta64 != 0 || after[0].Record.TimestampDelta64 != -10 {
			t.Fatalf("codec %d: deltas %d %d, want -10 and 0", codec, after[0].Record.TimestampDelta64, after[1].Record.TimestampDelta64)
		}
		// Filtering a stamped batch keeps the horizon.
		f, _, err := c.FilterBatch(out, func(r *RecordAt) bool { return string(r.Record.Key) != "a" })
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := DeleteHorizon(f); !ok || got != horizon {
			t.Fatalf("codec %d: filtered stamped batch has horizon %d %v", codec, got, ok)
		}
		if rs, _ := c.RecordsAt(f); len(rs) != 2 || rs[0].Timestamp != base+10 || rs[1].Timestamp != base+25 {
			t.Fatalf("codec %d: filtered stamped records %+v", codec, rs)
		}
	}
	// LogAppendTime: records read the max timestamp before and after.
	b, err := c.BuildBatch(CodecNone, base, []kmsg.Record{{Key: []byte("a")}})
	if err != nil {
		t.Fatal(err)
	}
	SetLogAppendTime(b, 5_000_000)
	out, err := c.SetDeleteHorizon(b, horizon)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckBatch(out); err != nil {
		t.Fatal(err)
	}
	if rs, err := c.RecordsAt(out); err != nil || rs[0].Timestamp != 5_000_000 {
		t.Fatalf("LogAppendTime record after stamping: %+v %v", rs, err)
	}
}
