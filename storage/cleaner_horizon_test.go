package storage_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// logBatches returns every batch of the log, raw, each checked whole
// (header, length, CRC).
func logBatches(t testing.TB, l *storage.Log) [][]byte {
	t.Helper()
	b, _ := readBytes(t, l, l.LogStartOffset(), 1<<40, true, l.LogEndOffset())
	out := splitBatches(t, b)
	for _, batch := range out {
		if _, err := protocol.CheckBatch(batch); err != nil {
			t.Fatalf("batch at %d: %v", baseOf(batch), err)
		}
	}
	return out
}

// batchHolding returns the batch of the log holding offset.
func batchHolding(t testing.TB, l *storage.Log, offset int64) []byte {
	t.Helper()
	for _, b := range logBatches(t, l) {
		if base := baseOf(b); base <= offset && offset <= base+int64(int32(binary.BigEndian.Uint32(b[23:]))) {
			return b
		}
	}
	t.Fatalf("no batch holds offset %d", offset)
	return nil
}

// kgoRecords decodes the log as franz-go's consumer does (a fetch
// response partition holding the log's bytes), control records included.
func kgoRecords(t testing.TB, l *storage.Log) []*kgo.Record {
	t.Helper()
	b, _ := readBytes(t, l, l.LogStartOffset(), 1<<40, true, l.LogEndOffset())
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.HighWatermark, rp.LastStableOffset, rp.RecordBatches = l.LogEndOffset(), l.LogEndOffset(), b
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{KeepControlRecords: true, Topic: "t"}, &rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		t.Fatalf("franz-go decoding the log: %v", fp.Err)
	}
	return fp.Records
}

// TestCleanerDeleteHorizon (KIP-534): a tombstone produced with an old
// CreateTime survives the first pass, which stamps its batch with the
// delete horizon (bit 6, base timestamp = pass time + delete.retention.ms,
// CRC valid), records keeping their timestamps as franz-go reads them;
// later passes keep it until the horizon and remove it at the horizon.
func TestCleanerDeleteHorizon(t *testing.T) {
	for _, codec := range []protocol.Codec{protocol.CodecNone, protocol.CodecLz4} {
		t.Run(fmt.Sprint(codec), func(t *testing.T) {
			e := newEnv(t, storage.DefaultConfig())
			l := e.open()
			old := e.clock.Now().Add(-30 * 24 * time.Hour).UnixMilli() // far older than delete.retention.ms
			appendAll(t, l, keyed(t, codec, old, kv{"a", val("1")}, kv{"b", val("1")}))
			// The tombstone of a and a new b, 7 ms apart.
			tomb, err := testCodecs.BuildBatch(codec, old+100, []kmsg.Record{
				{Key: []byte("a")},
				{Key: []byte("b"), Value: []byte("2"), TimestampDelta64: 7},
			})
			if err != nil {
				t.Fatal(err)
			}
			appendAll(t, l, tomb)
			l.Roll()
			appendAll(t, l, keyed(t, codec, old, kv{"c", val("active")}))
			l.SetHighWatermark(l.LogEndOffset())
			cfg := cleanCfg() // delete.retention.ms 60 s
			t0 := e.clock.Now().UnixMilli()

			st, err := l.Clean(0, cfg)
			if err != nil {
				t.Fatal(err)
			}
			recs, _ := readRecords(t, l)
			if fmt.Sprint(recs) != "[{2 a  true} {3 b 2 false} {4 c active false}]" {
				t.Fatalf("after the first pass: %v; want the tombstone of a kept", recs)
			}
			horizon := t0 + cfg.DeleteRetentionMs
			stamped := batchHolding(t, l, 2)
			if attrs := binary.BigEndian.Uint16(stamped[21:]); attrs&protocol.AttrDeleteHorizon == 0 || protocol.Codec(attrs&protocol.AttrCompressionMask) != codec {
				t.Fatalf("tombstone batch attributes %#x: want bit 6 and codec %d", attrs, codec)
			}
			if got := int64(binary.BigEndian.Uint64(stamped[27:])); got != horizon {
				t.Fatalf("base timestamp %d, want the delete horizon %d", got, horizon)
			}
			if got := int64(binary.BigEndian.Uint64(stamped[35:])); got != old+107 {
				t.Fatalf("max timestamp %d, want %d", got, old+107)
			}
			if st.NextDeleteHorizonMs != horizon {
				t.Fatalf("next delete horizon %d, want %d", st.NextDeleteHorizonMs, horizon)
			}
			// Batches without tombstones are not stamped.
			if b := batchHolding(t, l, 4); binary.BigEndian.Uint16(b[21:])&protocol.AttrDeleteHorizon != 0 {
				t.Fatal("the active segment's batch got a delete horizon")
			}
			// franz-go reads the records with the timestamps produced.
			wantTs := map[int64]int64{2: old + 100, 3: old + 107, 4: old}
			krs := kgoRecords(t, l)
			if len(krs) != 3 {
				t.Fatalf("franz-go read %d records, want 3", len(krs))
			}
			for _, r := range krs {
				if r.Timestamp.UnixMilli() != wantTs[r.Offset] {
					t.Fatalf("franz-go: record at %d has timestamp %d, want %d", r.Offset, r.Timestamp.UnixMilli(), wantTs[r.Offset])
				}
			}
			if krs[0].Value != nil || string(krs[0].Key) != "a" {
				t.Fatalf("franz-go: record at 2 is %q=%q, want the tombstone of a", krs[0].Key, krs[0].Value)
			}

			// Before the horizon, a pass keeps it and does not stamp again.
			e.clock.Advance(time.Duration(cfg.DeleteRetentionMs-1) * time.Millisecond)
			if st, err = l.Clean(st.CleanedTo, cfg); err != nil {
				t.Fatal(err)
			}
			if recs, _ := readRecords(t, l); len(recs) != 3 || !recs[0].tombstone {
				t.Fatalf("1 ms before the horizon: %v", recs)
			}
			if got := int64(binary.BigEndian.Uint64(batchHolding(t, l, 2)[27:])); got != horizon || st.NextDeleteHorizonMs != horizon {
				t.Fatalf("horizon moved to %d (next %d), want %d", got, st.NextDeleteHorizonMs, horizon)
			}
			// At the horizon it goes.
			e.clock.Advance(time.Millisecond)
			if st, err = l.Clean(st.CleanedTo, cfg); err != nil {
				t.Fatal(err)
			}
			if recs, _ := readRecords(t, l); fmt.Sprint(recs) != "[{3 b 2 false} {4 c active false}]" {
				t.Fatalf("at the horizon: %v; want the tombstone gone", recs)
			}
			if st.NextDeleteHorizonMs != -1 {
				t.Fatalf("next delete horizon %d with no tombstone left", st.NextDeleteHorizonMs)
			}
			for _, r := range kgoRecords(t, l) {
				if r.Timestamp.UnixMilli() != wantTs[r.Offset] {
					t.Fatalf("franz-go after removal: record at %d has timestamp %d, want %d", r.Offset, r.Timestamp.UnixMilli(), wantTs[r.Offset])
				}
			}
		})
	}
}

// TestCleanerMarkerDeleteHorizon (KIP-534): the marker of a transaction
// whose records were all overwritten, written with an old timestamp,
// is stamped by the first pass and removed only at its horizon.
func TestCleanerMarkerDeleteHorizon(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	old := e.clock.Now().Add(-30 * 24 * time.Hour).UnixMilli()
	n := protocol.CodecNone
	appendAll(t, l, withProducer(keyed(t, n, old, kv{"a", val("txn")}), 30, 0, 0, true))
	marker, err := l.AppendMarker(30, 0, true, 0, 7, old)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, withProducer(keyed(t, n, old, kv{"a", val("later")}), 30, 0, 1, false))
	l.Roll()
	appendAll(t, l, keyed(t, n, old, kv{"z", val("active")}))
	l.SetHighWatermark(l.LogEndOffset())
	cfg := cleanCfg()
	horizon := e.clock.Now().UnixMilli() + cfg.DeleteRetentionMs

	st, err := l.Clean(0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, markers := readRecords(t, l); fmt.Sprint(markers) != fmt.Sprint([]int64{marker.BaseOffset}) {
		t.Fatalf("markers %v after the first pass, want %d kept", markers, marker.BaseOffset)
	}
	b := batchHolding(t, l, marker.BaseOffset)
	if attrs := binary.BigEndian.Uint16(b[21:]); attrs != protocol.AttrControl|protocol.AttrTransactional|protocol.AttrDeleteHorizon {
		t.Fatalf("marker attributes %#x", attrs)
	}
	if got, ok := protocol.DeleteHorizon(b); !ok || got != horizon || st.NextDeleteHorizonMs != horizon {
		t.Fatalf("marker horizon %d %v (next %d), want %d", got, ok, st.NextDeleteHorizonMs, horizon)
	}
	// franz-go still reads it as a commit marker, at its old timestamp.
	var found bool
	for _, r := range kgoRecords(t, l) {
		if r.Offset == marker.BaseOffset {
			found = true
			if !r.Attrs.IsControl() || r.Timestamp.UnixMilli() != old {
				t.Fatalf("franz-go: marker control=%v timestamp %d, want a control record at %d", r.Attrs.IsControl(), r.Timestamp.UnixMilli(), old)
			}
			if k := kmsg.NewEndTxnMarker(); k.ReadFrom(r.Value) != nil {
				t.Fatalf("franz-go: marker value %x does not decode", r.Value)
			}
		}
	}
	if !found {
		t.Fatal("franz-go did not return the marker")
	}
	e.clock.Advance(time.Duration(cfg.DeleteRetentionMs-1) * time.Millisecond)
	if st, err = l.Clean(st.CleanedTo, cfg); err != nil {
		t.Fatal(err)
	}
	if _, markers := readRecords(t, l); len(markers) != 1 {
		t.Fatalf("markers %v 1 ms before the horizon", markers)
	}
	e.clock.Advance(time.Millisecond)
	if _, err = l.Clean(st.CleanedTo, cfg); err != nil {
		t.Fatal(err)
	}
	if _, markers := readRecords(t, l); len(markers) != 0 {
		t.Fatalf("markers %v at the horizon, want none", markers)
	}
}

// TestCleanerTruncationDuringPass: a truncation inside a segment the pass
// is cleaning, re-appends and a roll that leave the group's segments with
// the same base offsets, between writing the cleaned image and the swap:
// the swap is abandoned, the log holds the re-appended data, and the next
// pass cleans it.
func TestCleanerTruncationDuringPass(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	ts := e.clock.Now().UnixMilli()
	n := protocol.CodecNone
	appendAll(t, l, keyed(t, n, ts, kv{"a", val("1")}))
	l.Roll()
	appendAll(t, l, keyed(t, n, ts, kv{"b", val("1")}), keyed(t, n, ts, kv{"b", val("stale")}))
	l.Roll()
	appendAll(t, l, keyed(t, n, ts, kv{"c", val("1")}))
	l.SetHighWatermark(l.LogEndOffset())
	basesBefore := fmt.Sprint(l.SegmentBases()) // [0 1 3]
	gen := l.Truncations()
	hooked := 0
	l.SetBeforeSwapHook(func() {
		if hooked++; hooked > 1 {
			return
		}
		// A follower truncating to the leader's epoch end at 2, then
		// copying the leader's different offset 2, and rolling at 3.
		if end, err := l.TruncateTo(2); err != nil || end != 2 {
			t.Errorf("truncate: %d %v", end, err)
		}
		appendAll(t, l, keyed(t, n, ts, kv{"b", val("new")}))
		if _, err := l.Roll(); err != nil {
			t.Error(err)
		}
		appendAll(t, l, keyed(t, n, ts, kv{"c", val("2")}))
	})
	_, err := l.Clean(0, cleanCfg())
	if !errors.Is(err, storage.ErrCleanAborted) {
		t.Fatalf("clean with a truncation during the pass: %v, want ErrCleanAborted", err)
	}
	if got := fmt.Sprint(l.SegmentBases()); got != basesBefore {
		t.Fatalf("segments %s, want %s (the case the base offsets alone do not catch)", got, basesBefore)
	}
	if l.Truncations() != gen+1 {
		t.Fatalf("truncation count %d, want %d", l.Truncations(), gen+1)
	}
	recs, _ := readRecords(t, l)
	if fmt.Sprint(recs) != "[{0 a 1 false} {1 b 1 false} {2 b new false} {3 c 2 false}]" {
		t.Fatalf("log after the abandoned swap: %v; want the re-appended data", recs)
	}
	for _, name := range mustReadDir(t, e.dir) {
		if strings.HasSuffix(name, ".cleaned") || strings.HasSuffix(name, ".swap") || name == "cleaner-swap" {
			t.Fatalf("abandoned swap left %s", name)
		}
	}
	// The next pass cleans what is there now.
	l.SetHighWatermark(l.LogEndOffset())
	if _, err := l.Clean(0, cleanCfg()); err != nil {
		t.Fatal(err)
	}
	if recs, _ := readRecords(t, l); fmt.Sprint(recs) != "[{0 a 1 false} {2 b new false} {3 c 2 false}]" {
		t.Fatalf("after the next pass: %v", recs)
	}
}

// TestCleanerSwapDirectoryFsyncs: a swap that replaces eight segments
// fsyncs the directory three times under the append lock (once per step:
// the renames to .swap, the retirements, the renames into place), and
// writes the swap marker, with its fsyncs, before taking the lock.
func TestCleanerSwapDirectoryFsyncs(t *testing.T) {
	ffs := &faultFS{}
	e := newEnv(t, storage.DefaultConfig())
	e.fs = ffs
	l := e.open()
	ts := e.clock.Now().UnixMilli()
	for i := range 8 {
		appendAll(t, l, keyed(t, protocol.CodecNone, ts, kv{fmt.Sprintf("k%d", i), val("v")}, kv{"shared", val(fmt.Sprint(i))}))
		l.Roll()
	}
	appendAll(t, l, keyed(t, protocol.CodecNone, ts, kv{"active", val("x")}))
	l.SetHighWatermark(l.LogEndOffset())
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the roll fsyncs", func() bool { return l.SyncedOffset() == l.LogEndOffset() })
	var mu sync.Mutex // inject may be called from any goroutine
	var locked, unlocked []string
	ffs.set(func(f *faultFS) {
		f.inject = func(op, name string) error {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case op == faultSync && name == e.dir && l.AppendLockHeld():
				locked = append(locked, "dir")
			case op == faultSync && name == e.dir:
				unlocked = append(unlocked, "dir")
			case op == faultSync && strings.HasPrefix(filepath.Base(name), "cleaner-swap"):
				if l.AppendLockHeld() {
					t.Errorf("swap marker %s fsynced under the append lock", name)
				}
			}
			return nil
		}
	})
	st, err := l.Clean(0, cleanCfg())
	ffs.set(func(f *faultFS) { f.inject = nil })
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if st.SegmentsIn != 8 || st.SegmentsOut != 1 {
		t.Fatalf("cleaned %d segments into %d, want 8 into 1", st.SegmentsIn, st.SegmentsOut)
	}
	if len(locked) != 3 || len(unlocked) != 1 {
		t.Fatalf("directory fsyncs: %d under the append lock, %d outside; want 3 and 1 (the marker)", len(locked), len(unlocked))
	}
	recs, _ := readRecords(t, l)
	if len(recs) != 10 || recs[len(recs)-2].value != "7" {
		t.Fatalf("after the swap: %v", recs)
	}
}
