package storage_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

var testCodecs = protocol.NewCodecs()

// kv is one record of a keyed test batch; a nil value is a tombstone.
type kv struct {
	key   string
	value *string
}

func val(s string) *string { return &s }

// keyed builds a batch of keyed records at ts with codec.
func keyed(t testing.TB, codec protocol.Codec, ts int64, recs ...kv) []byte {
	t.Helper()
	rs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		rs[i].Key = []byte(r.key)
		if r.value != nil {
			rs[i].Value = []byte(*r.value)
		}
	}
	b, err := testCodecs.BuildBatch(codec, ts, rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withProducer gives batch a producer id, epoch and base sequence (-1 for
// none) and, with txn, the transactional bit.
func withProducer(b []byte, pid int64, epoch int16, seq int32, txn bool) []byte {
	if txn {
		attrs := binary.BigEndian.Uint16(b[21:])
		binary.BigEndian.PutUint16(b[21:], attrs|protocol.AttrTransactional)
	}
	binary.BigEndian.PutUint64(b[43:], uint64(pid))
	binary.BigEndian.PutUint16(b[51:], uint16(epoch))
	binary.BigEndian.PutUint32(b[53:], uint32(seq))
	binary.BigEndian.PutUint32(b[17:], protocol.BatchCRC(b))
	return b
}

// rec is a record read back.
type rec struct {
	offset     int64
	key, value string
	tombstone  bool
}

// readRecords reads every record of the log, markers left out, and the
// control batches' offsets.
func readRecords(t testing.TB, l *storage.Log) (recs []rec, markers []int64) {
	t.Helper()
	if l.LogEndOffset() == l.LogStartOffset() {
		return nil, nil
	}
	b, _ := readBytes(t, l, l.LogStartOffset(), 1<<40, true, l.LogEndOffset())
	last := int64(-1)
	for _, batch := range splitBatches(t, b) {
		if _, err := protocol.CheckBatch(batch); err != nil {
			t.Fatalf("batch at %d: %v", baseOf(batch), err)
		}
		if baseOf(batch) <= last {
			t.Fatalf("batch at %d after one ending at %d", baseOf(batch), last)
		}
		last = baseOf(batch) + int64(int32(binary.BigEndian.Uint32(batch[23:])))
		attrs := binary.BigEndian.Uint16(batch[21:])
		if attrs&protocol.AttrControl != 0 {
			markers = append(markers, baseOf(batch))
			continue
		}
		rs, err := testCodecs.RecordsAt(batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			recs = append(recs, rec{offset: r.Offset, key: string(r.Record.Key), value: string(r.Record.Value), tombstone: r.Record.Value == nil})
		}
	}
	return recs, markers
}

// latest is the last record of each key (tombstones included) in recs.
func latest(recs []rec) map[string]rec {
	m := make(map[string]rec)
	for _, r := range recs {
		m[r.key] = r
	}
	return m
}

func cleanCfg() storage.CleanConfig {
	return storage.CleanConfig{Codecs: testCodecs, DeleteRetentionMs: 60_000, MapBytes: 1 << 20}
}

// fillOverwrites writes rounds of overwrites of keys k0..k(keys-1), a
// segment per round, the last round deleting every third key; the last
// segment (active) gets one batch of a fresh key.
func fillOverwrites(t testing.TB, l *storage.Log, ts int64, rounds, keys int, codec protocol.Codec) {
	t.Helper()
	for r := range rounds {
		var recs []kv
		for k := range keys {
			v := val(fmt.Sprintf("v%d-%d", r, k))
			if r == rounds-1 && k%3 == 0 {
				v = nil
			}
			recs = append(recs, kv{fmt.Sprintf("k%d", k), v})
		}
		appendAll(t, l, keyed(t, codec, ts, recs[:keys/2]...), keyed(t, codec, ts, recs[keys/2:]...))
		if _, err := l.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	appendAll(t, l, keyed(t, codec, ts, kv{"active", val("x")}))
	l.SetHighWatermark(l.LogEndOffset())
}

func TestCleanerKeepsLatestValuePerKey(t *testing.T) {
	for _, codec := range []protocol.Codec{protocol.CodecNone, protocol.CodecLz4} {
		t.Run(fmt.Sprint(codec), func(t *testing.T) {
			e := newEnv(t, storage.DefaultConfig())
			l := e.open()
			ts := e.clock.Now().UnixMilli()
			fillOverwrites(t, l, ts, 4, 30, codec)
			before, _ := readRecords(t, l)
			want := latest(before)
			segsBefore, sizeBefore, leo := l.SegmentCount(), l.Size(), l.LogEndOffset()

			st, err := l.Clean(0, cleanCfg())
			if err != nil {
				t.Fatal(err)
			}
			if st.CleanedTo != l.SegmentBases()[len(l.SegmentBases())-1] {
				t.Fatalf("cleaned to %d, want the active segment's base %d", st.CleanedTo, l.SegmentBases()[len(l.SegmentBases())-1])
			}
			after, _ := readRecords(t, l)
			got := latest(after)
			if len(after) != len(want) {
				t.Fatalf("%d records after cleaning, want one per key (%d)", len(after), len(want))
			}
			for k, w := range want {
				if got[k] != w {
					t.Fatalf("key %s: got %+v, want %+v (offset preserved)", k, got[k], w)
				}
			}
			if l.LogEndOffset() != leo || l.LogStartOffset() != 0 {
				t.Fatalf("offsets moved: start %d end %d, want 0 and %d", l.LogStartOffset(), l.LogEndOffset(), leo)
			}
			if l.SegmentCount() != 2 || l.Size() >= sizeBefore/2 {
				t.Fatalf("%d segments, %d bytes after cleaning; before %d segments, %d bytes", l.SegmentCount(), l.Size(), segsBefore, sizeBefore)
			}

			// Tombstones go once delete.retention.ms has passed.
			e.clock.Advance(61 * time.Second)
			if _, err := l.Clean(st.CleanedTo, cleanCfg()); err != nil {
				t.Fatal(err)
			}
			after, _ = readRecords(t, l)
			for _, r := range after {
				if r.tombstone {
					t.Fatalf("tombstone of %s at %d still there after delete.retention.ms", r.key, r.offset)
				}
				if w := want[r.key]; w != r {
					t.Fatalf("key %s: got %+v, want %+v", r.key, r, w)
				}
			}
			if n := len(after); n != 21 { // 20 live keys of 30, and "active"
				t.Fatalf("%d records left, want 21", n)
			}
			// The cleaned log reads the same after a restart.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := e.open()
			again, _ := readRecords(t, l2)
			if fmt.Sprint(again) != fmt.Sprint(after) {
				t.Fatalf("after reopen:\n%v\nbefore:\n%v", again, after)
			}
			for _, r := range after {
				rr, err := l2.Read(r.offset, 1, true, l2.LogEndOffset())
				if err != nil || rr.Size == 0 {
					t.Fatalf("read at kept offset %d: %v, %d bytes", r.offset, err, rr.Size)
				}
			}
		})
	}
}

func TestCleanerRespectsMinCompactionLag(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	now := e.clock.Now().UnixMilli()
	appendAll(t, l, keyed(t, protocol.CodecNone, now-120_000, kv{"a", val("1")}))
	l.Roll()
	appendAll(t, l, keyed(t, protocol.CodecNone, now-120_000, kv{"a", val("2")}))
	l.Roll()
	appendAll(t, l, keyed(t, protocol.CodecNone, now, kv{"a", val("3")}))
	l.Roll()
	appendAll(t, l, keyed(t, protocol.CodecNone, now, kv{"b", val("active")}))
	l.SetHighWatermark(l.LogEndOffset())
	cfg := cleanCfg()
	cfg.MinCompactionLagMs = 60_000
	c := l.Cleanable(0, cfg.MinCompactionLagMs)
	if c.FirstUncleanable != 2 {
		t.Fatalf("first uncleanable %d, want 2 (the young segment)", c.FirstUncleanable)
	}
	st, err := l.Clean(0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := readRecords(t, l)
	if st.CleanedTo != 2 || len(recs) != 3 || recs[0].value != "2" || recs[1].value != "3" {
		t.Fatalf("cleaned to %d, records %v; want a=2 (offset 1), a=3, b", st.CleanedTo, recs)
	}
	// Nothing is cleaned above the high watermark.
	e2 := newEnv(t, storage.DefaultConfig())
	l2 := e2.open()
	appendAll(t, l2, keyed(t, protocol.CodecNone, now, kv{"a", val("1")}))
	l2.Roll()
	appendAll(t, l2, keyed(t, protocol.CodecNone, now, kv{"a", val("2")}))
	l2.Roll()
	appendAll(t, l2, keyed(t, protocol.CodecNone, now, kv{"a", val("3")}))
	l2.ResetHighWatermark(1)
	if st, err := l2.Clean(0, cleanCfg()); err != nil || st.CleanedTo != 1 {
		t.Fatalf("clean below high watermark 1: %+v %v", st, err)
	}
	if recs, _ := readRecords(t, l2); len(recs) != 3 {
		t.Fatalf("records past the high watermark were compacted away: %v", recs)
	}
}

func TestCleanerTransactions(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	ts := e.clock.Now().UnixMilli()
	n := protocol.CodecNone
	appendAll(t, l, keyed(t, n, ts, kv{"a", val("a0")}, kv{"b", val("b0")}, kv{"c", val("c0")}))
	// Producer 10 commits a=a1; producer 20 aborts a=bad, c=bad.
	appendAll(t, l,
		withProducer(keyed(t, n, ts, kv{"a", val("a1")}), 10, 0, 0, true),
		withProducer(keyed(t, n, ts, kv{"a", val("bad")}, kv{"c", val("bad")}), 20, 0, 0, true),
	)
	commit, err := l.AppendMarker(10, 0, true, 0, 7, ts)
	if err != nil {
		t.Fatal(err)
	}
	abort, err := l.AppendMarker(20, 0, false, 0, 7, ts)
	if err != nil {
		t.Fatal(err)
	}
	// Producer 30's transaction has everything overwritten later.
	appendAll(t, l, withProducer(keyed(t, n, ts, kv{"b", val("b1")}), 30, 0, 0, true))
	empty, err := l.AppendMarker(30, 0, true, 0, 7, ts)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, withProducer(keyed(t, n, ts, kv{"d", val("d1")}), 30, 0, 1, false))
	appendAll(t, l, withProducer(keyed(t, n, ts, kv{"b", val("b2")}), 40, 0, 0, false))
	appendAll(t, l, withProducer(keyed(t, n, ts, kv{"b", val("b3")}), 40, 0, 1, false))
	l.Roll()
	// An open transaction in the active segment stays untouched.
	appendAll(t, l, withProducer(keyed(t, n, ts, kv{"a", val("open")}), 50, 0, 0, true))
	l.SetHighWatermark(l.LogEndOffset())
	producersBefore := fmt.Sprint(sortedProducers(l))

	cfg := cleanCfg()
	if _, err := l.Clean(0, cfg); err != nil {
		t.Fatal(err)
	}
	recs, markers := readRecords(t, l)
	got := map[string]string{}
	for _, r := range recs {
		if r.value == "bad" {
			t.Fatalf("record of the aborted transaction at %d survived", r.offset)
		}
		got[r.key] = r.value
	}
	if got["a"] != "open" || got["b"] != "b3" || got["c"] != "c0" || got["d"] != "d1" {
		t.Fatalf("latest values %v", got)
	}
	// Kept: the commit with data left, the abort (its producer's last batch
	// stays as an empty batch), the empty transaction's marker until
	// delete.retention.ms.
	if fmt.Sprint(markers) != fmt.Sprint([]int64{commit.BaseOffset, abort.BaseOffset, empty.BaseOffset}) {
		t.Fatalf("markers %v, want %d %d %d", markers, commit.BaseOffset, abort.BaseOffset, empty.BaseOffset)
	}
	if got := fmt.Sprint(sortedProducers(l)); got != producersBefore {
		t.Fatalf("producer state changed:\n%s\nwas\n%s", got, producersBefore)
	}
	e.clock.Advance(2 * time.Minute)
	if _, err := l.Clean(0, cfg); err != nil {
		t.Fatal(err)
	}
	_, markers = readRecords(t, l)
	if fmt.Sprint(markers) != fmt.Sprint([]int64{commit.BaseOffset, abort.BaseOffset}) {
		t.Fatalf("markers %v after delete.retention.ms, want %d %d", markers, commit.BaseOffset, abort.BaseOffset)
	}
	// The producer state read back from the log alone (no snapshot) still
	// knows every producer's last batch.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range mustReadDir(t, e.dir) {
		if strings.Contains(name, "snapshot") || name == ".gregor-clean-shutdown" {
			os.Remove(e.path(name))
		}
	}
	l2 := e.open()
	// Only each producer's latest batch is known from the log, as in Kafka.
	if got, want := fmt.Sprint(lastBatches(l2)), fmt.Sprint(lastBatches(l)); got != want {
		t.Fatalf("producer state rebuilt from the cleaned log:\n%s\nwas\n%s", got, want)
	}
	if lso := l2.LastStableOffset(); lso != l2.LogEndOffset()-1 {
		t.Fatalf("last stable offset %d, want %d (only producer 50's transaction open)", lso, l2.LogEndOffset()-1)
	}
}

func sortedProducers(l *storage.Log) map[int64]string {
	out := map[int64]string{}
	for _, p := range l.Producers() {
		out[p.ProducerID] = fmt.Sprintf("epoch=%d txn=%d batches=%v", p.Epoch, p.TxnFirstOffset, p.Batches)
	}
	return out
}

func lastBatches(l *storage.Log) map[int64]string {
	out := map[int64]string{}
	for _, p := range l.Producers() {
		out[p.ProducerID] = fmt.Sprintf("epoch=%d txn=%d last=%v", p.Epoch, p.TxnFirstOffset, p.Batches[len(p.Batches)-1])
	}
	return out
}

func mustReadDir(t testing.TB, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestCleanerBoundedOffsetMap(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 64 << 10
	e := newEnv(t, cfg)
	l := e.open()
	ts := e.clock.Now().UnixMilli()
	const keys = 3000
	for round := range 3 {
		for k := 0; k < keys; k += 100 {
			var recs []kv
			for j := k; j < k+100; j++ {
				recs = append(recs, kv{fmt.Sprintf("key-%05d", j), val(fmt.Sprintf("r%d", round))})
			}
			appendAll(t, l, keyed(t, protocol.CodecNone, ts, recs...))
		}
	}
	l.Roll()
	appendAll(t, l, keyed(t, protocol.CodecNone, ts, kv{"x", val("x")}))
	l.SetHighWatermark(l.LogEndOffset())
	c := cleanCfg()
	c.MapBytes = 24 * 1200 // about a thousand keys a pass
	var checkpoint int64
	passes := 0
	for passes < 50 {
		st, err := l.Clean(checkpoint, c)
		if err != nil {
			t.Fatal(err)
		}
		passes++
		if st.MapEntries > st.MapSlots || st.MapSlots > 1200 {
			t.Fatalf("map of %d slots holds %d keys; bound 1200 slots", st.MapSlots, st.MapEntries)
		}
		if st.CleanedTo == checkpoint {
			break
		}
		checkpoint = st.CleanedTo
	}
	if passes < 9 {
		t.Fatalf("%d passes: the map bound did not limit a pass", passes)
	}
	recs, _ := readRecords(t, l)
	if len(recs) != keys+1 {
		t.Fatalf("%d records, want %d", len(recs), keys+1)
	}
	for _, r := range recs[:keys] {
		if r.value != "r2" {
			t.Fatalf("key %s has %s", r.key, r.value)
		}
	}
	// One batch larger than the map is an error, not a silent skip.
	c.MapBytes = 24 * 50
	e2 := newEnv(t, cfg)
	l2 := e2.open()
	fillOverwrites(t, l2, ts, 2, 200, protocol.CodecNone)
	if _, err := l2.Clean(0, c); err == nil || !strings.Contains(err.Error(), "dedupe") {
		t.Fatalf("clean with a map smaller than a batch: %v", err)
	}
}

// TestCleanerCrashAtEveryStep stops the process (every file operation
// fails from the nth on, and the log is abandoned) at each step of a clean,
// then reopens the directory: the log must read the same latest value for
// every key, with the same offsets, and clean again to the same result.
func TestCleanerCrashAtEveryStep(t *testing.T) {
	build := func(t *testing.T, e *env) (*storage.Log, map[string]rec) {
		l := e.open()
		fillOverwrites(t, l, e.clock.Now().UnixMilli(), 3, 12, protocol.CodecNone)
		recs, _ := readRecords(t, l)
		return l, latest(recs)
	}
	// Count the operations of a whole clean.
	var ops atomic.Int64
	counting := &faultFS{noSync: true}
	e := newEnv(t, storage.DefaultConfig())
	e.fs = counting
	l, want := build(t, e)
	counting.set(func(f *faultFS) {
		f.inject = func(op, name string) error { ops.Add(1); return nil }
	})
	if _, err := l.Clean(0, cleanCfg()); err != nil {
		t.Fatal(err)
	}
	counting.set(func(f *faultFS) { f.inject = nil })
	clean, _ := readRecords(t, l)
	total := int(ops.Load())
	if total < 10 {
		t.Fatalf("a clean took only %d file operations", total)
	}
	var failed atomic.Int64
	defer func() {
		if failed.Load() < int64(total)*3/4 {
			t.Errorf("only %d of %d crash points made the clean fail", failed.Load(), total)
		}
	}()
	for n := 0; n <= total; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ffs := &faultFS{noSync: true}
			e := newEnv(t, storage.DefaultConfig())
			e.fs = ffs
			l, _ := build(t, e)
			leo := l.LogEndOffset()
			var seen atomic.Int64
			dead := errors.New("process killed")
			ffs.set(func(f *faultFS) {
				f.inject = func(op, name string) error {
					if seen.Add(1) > int64(n) {
						return dead
					}
					return nil
				}
			})
			_, err := l.Clean(0, cleanCfg())
			if err != nil {
				failed.Add(1)
			}
			_ = l.Discard() // every file operation fails: nothing more is written
			ffs.set(func(f *faultFS) { f.inject = nil })
			for _, name := range mustReadDir(t, e.dir) {
				// A crash leaves no clean-shutdown marker.
				if name == ".gregor-clean-shutdown" {
					os.Remove(filepath.Join(e.dir, name))
				}
			}
			l2 := e.open()
			recs, _ := readRecords(t, l2)
			got := latest(recs)
			if len(got) != len(want) || l2.LogEndOffset() != leo {
				t.Fatalf("after a crash at %d: %d keys, log end %d; want %d keys, end %d", n, len(got), l2.LogEndOffset(), len(want), leo)
			}
			for k, w := range want {
				if got[k] != w {
					t.Fatalf("after a crash at %d: key %s is %+v, want %+v", n, k, got[k], w)
				}
			}
			for _, name := range mustReadDir(t, e.dir) {
				if strings.HasSuffix(name, ".cleaned") || strings.HasSuffix(name, ".swap") || name == "cleaner-swap" {
					t.Fatalf("after a crash at %d, Open left %s", n, name)
				}
			}
			l2.SetHighWatermark(l2.LogEndOffset())
			if _, err := l2.Clean(0, cleanCfg()); err != nil {
				t.Fatal(err)
			}
			again, _ := readRecords(t, l2)
			if fmt.Sprint(again) != fmt.Sprint(clean) {
				t.Fatalf("clean after a crash at %d:\n%v\nwant\n%v", n, again, clean)
			}
		})
	}
}

// TestCleanerConcurrentReadsAndAppends cleans while readers read and an
// appender appends; readers always see the latest value of every key.
func TestCleanerConcurrentReadsAndAppends(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 4 << 10
	e := newEnv(t, cfg)
	l := e.open()
	ts := e.clock.Now().UnixMilli()
	for i := range 200 {
		appendAll(t, l, keyed(t, protocol.CodecNone, ts, kv{fmt.Sprintf("k%d", i%10), val(fmt.Sprint(i))}))
	}
	l.SetHighWatermark(l.LogEndOffset())
	stop := make(chan struct{})
	done := make(chan error, 2)
	go func() {
		for i := 200; i < 1200; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			b := keyed(t, protocol.CodecNone, ts, kv{fmt.Sprintf("k%d", i%10), val(fmt.Sprint(i))})
			if _, err := l.Append(b, 7); err != nil {
				done <- err
				return
			}
			l.SetHighWatermark(l.LogEndOffset())
		}
		done <- nil
	}()
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			recs, _ := readRecords(t, l)
			if len(latest(recs)) != 10 {
				done <- fmt.Errorf("a reader saw %d keys", len(latest(recs)))
				return
			}
		}
	}()
	var checkpoint int64
	for range 30 {
		st, err := l.Clean(checkpoint, cleanCfg())
		if err != nil && !errors.Is(err, storage.ErrCleanAborted) {
			t.Fatal(err)
		}
		checkpoint = st.CleanedTo
	}
	close(stop)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCleanerFollowerCopiesGaps: a follower copies a cleaned leader's log
// (batches after gaps), survives a crash with gaps in its active segment,
// cleans its own log to the same records, and truncates inside a cleaned
// segment.
func TestCleanerFollowerCopiesGaps(t *testing.T) {
	le := newEnv(t, storage.DefaultConfig())
	leader := le.open()
	ts := le.clock.Now().UnixMilli()
	// One record a batch, keys overwritten irregularly: the batches that
	// stay are scattered, with gaps between them.
	for i := range 60 {
		k := i % 20 // then the even keys again: the odd ones stay, every other offset
		if i >= 40 {
			k = 2 * (i % 10)
		}
		appendAll(t, leader, keyed(t, protocol.CodecNone, ts, kv{fmt.Sprintf("k%d", k), val(fmt.Sprint(i))}))
	}
	leader.Roll()
	appendAll(t, leader, keyed(t, protocol.CodecNone, ts, kv{"active", val("x")}))
	leader.SetHighWatermark(leader.LogEndOffset())
	if _, err := leader.Clean(0, cleanCfg()); err != nil {
		t.Fatal(err)
	}
	want, _ := readRecords(t, leader)

	fe := newEnv(t, storage.DefaultConfig())
	follower := fe.open()
	raw, _ := readBytes(t, leader, 0, 1<<30, true, leader.LogEndOffset())
	for _, b := range splitBatches(t, raw) {
		if _, err := follower.AppendReplica(append([]byte(nil), b...)); err != nil {
			t.Fatal(err)
		}
	}
	if follower.LogEndOffset() != leader.LogEndOffset() {
		t.Fatalf("follower ends at %d, leader at %d", follower.LogEndOffset(), leader.LogEndOffset())
	}
	follower.Crash() // gaps in the active segment: recovery must keep them
	follower = fe.open()
	got, _ := readRecords(t, follower)
	if fmt.Sprint(got) != fmt.Sprint(want) || follower.LogEndOffset() != leader.LogEndOffset() {
		t.Fatalf("follower after a crash:\n%v\nleader:\n%v", got, want)
	}
	// The follower cleans its own log: the segments the gaps made merge
	// into one with gaps, and the records stay the leader's.
	follower.SetHighWatermark(follower.LogEndOffset())
	segs := follower.SegmentCount()
	if _, err := follower.Clean(0, cleanCfg()); err != nil {
		t.Fatal(err)
	}
	if got, _ := readRecords(t, follower); fmt.Sprint(got) != fmt.Sprint(want) || follower.SegmentCount() >= segs {
		t.Fatalf("follower cleaned to %d segments (from %d):\n%v\nleader:\n%v", follower.SegmentCount(), segs, got, want)
	}
	// Truncating inside the gaps keeps everything below the cut.
	cut := want[len(want)/4].offset
	if _, err := follower.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	got, _ = readRecords(t, follower)
	for _, r := range got {
		if r.offset >= cut {
			t.Fatalf("record at %d after truncating to %d", r.offset, cut)
		}
	}
	if len(got) != len(want)/4 {
		t.Fatalf("%d records below %d, want %d", len(got), cut, len(want)/4)
	}
	rolledForGaps := false
	for _, line := range fe.logs.lines(t, "rolled segment") {
		rolledForGaps = rolledForGaps || line["reason"] == "truncated into a cleaned segment"
	}
	if !rolledForGaps {
		t.Fatal("the cut into a cleaned segment did not close it")
	}
	// What is left survives a clean restart and a crash.
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}
	follower = fe.open()
	again, _ := readRecords(t, follower)
	if fmt.Sprint(again) != fmt.Sprint(got) {
		t.Fatalf("after a restart:\n%v\nbefore:\n%v", again, got)
	}
	follower.Crash()
	follower = fe.open()
	again, _ = readRecords(t, follower)
	if fmt.Sprint(again) != fmt.Sprint(got) {
		t.Fatalf("after a crash:\n%v\nbefore:\n%v", again, got)
	}
}

// TestCleanerSwapLostIndexRenames: a power loss after step 3 of a swap
// kept the cleaned .log's rename to .swap but lost its indexes' (the
// three renames become durable together, in any order). Open must not
// pair the cleaned .log with the old first segment's indexes: they are
// rebuilt, so the largest timestamp and lookups by time are the cleaned
// segment's.
func TestCleanerSwapLostIndexRenames(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.IndexIntervalBytes = 100
	e := newEnv(t, cfg)
	l := e.open()
	base := e.clock.Now().UnixMilli()
	// The first segment's records all stay (their keys are never written
	// again), so the cleaned .log begins with its bytes and the old
	// indexes look valid for it; the later segments' keys are overwritten
	// over and over, so they shrink and merge into the first.
	for i := range 60 {
		key := fmt.Sprintf("u%d", i)
		if i >= 10 {
			key = fmt.Sprintf("k%d", i%3)
		}
		appendAll(t, l, keyed(t, protocol.CodecNone, base+int64(i)*1000, kv{key, val(fmt.Sprintf("v%d", i))}))
		if i%10 == 9 {
			l.Roll()
		}
	}
	l.SetHighWatermark(l.LogEndOffset())
	before := l.SegmentBases()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	saved := t.TempDir()
	copyDir(t, e.dir, saved)

	l = e.open()
	l.SetHighWatermark(l.LogEndOffset())
	if _, err := l.Clean(0, cleanCfg()); err != nil {
		t.Fatal(err)
	}
	after := l.SegmentBases()
	if len(after) >= len(before)-1 || after[0] != before[0] {
		t.Fatalf("segments %v after the clean, %v before: the test needs several merged into the first", after, before)
	}
	wantRecs, _ := readRecords(t, l)
	wantTs, wantTsBase := l.MaxTimestamp()
	atTime := func(l *storage.Log) (out []string) {
		for i := range 60 {
			b, ok, err := l.BatchAtTime(base + int64(i)*1000 - 500)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%v:%x", ok, b))
		}
		return out
	}
	wantAtTime := atTime(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cleanedLog := readFile(t, e.path(segName(after[0], ".log")))
	cleanedIdx := readFile(t, e.path(segName(after[0], ".index")))
	cleanedTidx := readFile(t, e.path(segName(after[0], ".timeindex")))

	// The state the power loss left: the old segments, the cleaned .log
	// as .swap, its indexes still .cleaned, the marker, no clean shutdown.
	if err := os.RemoveAll(e.dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, saved, e.dir)
	os.Remove(e.path(".gregor-clean-shutdown"))
	writeFile(t, e.path(segName(after[0], ".log.swap")), cleanedLog)
	writeFile(t, e.path(segName(after[0], ".index.cleaned")), cleanedIdx)
	writeFile(t, e.path(segName(after[0], ".timeindex.cleaned")), cleanedTidx)
	writeFile(t, e.path("cleaner-swap"), fmt.Appendf(nil, "gregor-cleaner-swap v1\nbase: %d\nend: %d\n", after[0], after[1]))
	e.rp = l.LogEndOffset() // everything was fsynced before the pass

	l = e.open()
	got, _ := readRecords(t, l)
	if fmt.Sprint(got) != fmt.Sprint(wantRecs) {
		t.Fatalf("records after the interrupted swap:\n%v\nwant\n%v", got, wantRecs)
	}
	if ts, tsBase := l.MaxTimestamp(); ts != wantTs || tsBase != wantTsBase {
		t.Fatalf("largest timestamp %d (batch %d) after the interrupted swap, want %d (batch %d)", ts, tsBase, wantTs, wantTsBase)
	}
	if got := atTime(l); !slices.Equal(got, wantAtTime) {
		t.Fatal("lookups by time after the interrupted swap differ from the cleaned log's")
	}
	for _, name := range mustReadDir(t, e.dir) {
		if strings.HasSuffix(name, ".cleaned") || strings.HasSuffix(name, ".swap") || name == "cleaner-swap" {
			t.Fatalf("Open left %s", name)
		}
	}
}

// copyDir copies the regular files of src into dst (created).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range mustReadDir(t, src) {
		if fi, err := os.Stat(filepath.Join(src, name)); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		writeFile(t, filepath.Join(dst, name), readFile(t, filepath.Join(src, name)))
	}
}
