package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

func TestAppendAndReadBack(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	var orig [][]byte
	for i := range 20 {
		orig = append(orig, makeBatch(t, batchSpec{records: 1 + i%4, firstTs: int64(1000 + i), valueSize: 5 * i}))
	}
	got := appendAll(t, l, orig...)
	next := int64(0)
	for i, s := range got {
		if s.base != next {
			t.Fatalf("batch %d: base offset %d, want %d", i, s.base, next)
		}
		if want := next + int64(1+i%4) - 1; s.last != want {
			t.Fatalf("batch %d: last offset %d, want %d", i, s.last, want)
		}
		next = s.last + 1
		wantStored(t, orig[i], s)
	}
	if l.LogEndOffset() != next || l.HighWatermark() != 0 || l.LogStartOffset() != 0 {
		t.Fatalf("leo %d hw %d start %d, want %d 0 0", l.LogEndOffset(), l.HighWatermark(), l.LogStartOffset(), next)
	}
	l.SetHighWatermark(next)
	checkLog(t, l, got)

	// Every offset reads from the batch holding it.
	for _, s := range got {
		for off := s.base; off <= s.last; off++ {
			b, _ := readBytes(t, l, off, 1<<20, false, next)
			if baseOf(b) != s.base || !bytes.HasPrefix(b, s.bytes) {
				t.Fatalf("read at %d starts at batch %d, want %d", off, baseOf(b), s.base)
			}
		}
	}
	var size int64
	for _, s := range got {
		size += int64(len(s.bytes))
	}
	if l.Size() != size {
		t.Fatalf("Size %d, want %d", l.Size(), size)
	}
	if fi, err := os.Stat(e.path(segName(0, ".log"))); err != nil || fi.Size() != size {
		t.Fatalf("segment file: %v, %v bytes, want %d", err, fi, size)
	}
}

func TestReadLimits(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	var batches [][]byte
	for range 5 {
		batches = append(batches, simple(t, 2, 1)) // offsets 0-1, 2-3, ...
	}
	got := appendAll(t, l, batches...)
	n := int64(len(got[0].bytes))
	l.SetHighWatermark(l.LogEndOffset())
	hw := l.HighWatermark()

	cases := []struct {
		name      string
		from      int64
		maxBytes  int64
		minOne    bool
		maxOffset int64
		want      []int // indexes of batches returned
	}{
		{"all", 0, 1 << 20, false, hw, []int{0, 1, 2, 3, 4}},
		{"mid batch", 3, 1 << 20, false, hw, []int{1, 2, 3, 4}},
		{"exact bytes", 0, 2 * n, false, hw, []int{0, 1}},
		{"one byte short", 0, 2*n - 1, false, hw, []int{0}},
		{"too small", 0, n - 1, false, hw, nil},
		{"too small, min one", 0, n - 1, true, hw, []int{0}},
		{"zero, min one", 4, 0, true, hw, []int{2}},
		{"min one with room", 0, n + 1, true, hw, []int{0}},
		{"max offset", 0, 1 << 20, false, 6, []int{0, 1, 2}},
		{"max offset mid batch", 0, 1 << 20, false, 5, []int{0, 1}},
		{"at max offset", 6, 1 << 20, true, 6, nil},
		{"past max offset", 8, 1 << 20, true, 6, nil},
		{"at log end", 10, 1 << 20, true, hw, nil},
		{"max offset past end", 8, 1 << 20, false, 1 << 40, []int{4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, rr := readBytes(t, l, c.from, c.maxBytes, c.minOne, c.maxOffset)
			var want []byte
			for _, i := range c.want {
				want = append(want, got[i].bytes...)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("read %d bytes (%d ranges), want batches %v", len(b), len(rr.Ranges), c.want)
			}
			if len(c.want) > 0 && len(rr.Ranges) != 1 {
				t.Fatalf("%d ranges for adjacent batches in one segment, want 1", len(rr.Ranges))
			}
		})
	}
}

func TestReadOutOfRangeAndEmpty(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	if b, rr := readBytes(t, l, 0, 1<<20, true, 0); len(b) != 0 || len(rr.Ranges) != 0 {
		t.Fatalf("empty log read %d bytes", len(b))
	}
	for _, off := range []int64{-1, 1, 100} {
		if _, err := l.Read(off, 1<<20, true, 0); !errors.Is(err, storage.ErrOffsetOutOfRange) {
			t.Fatalf("read %d of empty log: %v, want ErrOffsetOutOfRange", off, err)
		}
	}
	if ts, base := l.MaxTimestamp(); ts != -1 || base != -1 {
		t.Fatalf("MaxTimestamp of empty log = %d, %d", ts, base)
	}
	if _, ok, err := l.BatchAtTime(0); ok || err != nil {
		t.Fatalf("BatchAtTime on empty log: %v %v", ok, err)
	}
	appendAll(t, l, simple(t, 3, 5))
	if _, err := l.Read(4, 1<<20, true, 3); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	// Below the high watermark only: nothing yet.
	if b, _ := readBytes(t, l, 0, 1<<20, true, l.HighWatermark()); len(b) != 0 {
		t.Fatal("read above the high watermark")
	}
}

func TestAppendRejectsMalformedBatch(t *testing.T) {
	l := newEnv(t, storage.DefaultConfig()).open()
	b := simple(t, 2, 1)
	if _, err := l.Append(b[:len(b)-1], 0); !errors.Is(err, protocol.ErrCorruptBatch) {
		t.Fatalf("short batch: %v", err)
	}
	if _, err := l.Append(append(append([]byte(nil), b...), 0), 0); !errors.Is(err, protocol.ErrInvalidBatch) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := l.Append(nil, 0); !errors.Is(err, protocol.ErrCorruptBatch) {
		t.Fatalf("nil batch: %v", err)
	}
	if l.LogEndOffset() != 0 || l.Size() != 0 {
		t.Fatal("a rejected batch moved the log")
	}
}

func TestRollBySize(t *testing.T) {
	cfg := storage.DefaultConfig()
	one := simple(t, 1, 1)
	cfg.SegmentBytes = int64(3*len(one) + 10) // three batches per segment
	e := newEnv(t, cfg)
	l := e.open()
	var want []stored
	for range 10 {
		want = append(want, appendAll(t, l, one)...)
	}
	if got := fmt.Sprint(l.SegmentBases()); got != "[0 3 6 9]" {
		t.Fatalf("segments %s, want [0 3 6 9]", got)
	}
	for _, base := range []int64{0, 3, 6, 9} {
		for _, suffix := range []string{".log", ".index", ".timeindex"} {
			if _, err := os.Stat(e.path(segName(base, suffix))); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.SetHighWatermark(10)
	checkLog(t, l, want)
	// A read across segments gives one range per segment.
	_, rr := readBytes(t, l, 2, 1<<20, false, 10)
	if len(rr.Ranges) != 4 || rr.Size != int64(8*len(one)) {
		t.Fatalf("%d ranges, %d bytes; want 4 ranges, %d bytes", len(rr.Ranges), rr.Size, 8*len(one))
	}
	// A batch larger than a segment goes alone into a fresh one.
	big := makeBatch(t, batchSpec{records: 3, firstTs: 1, valueSize: int(cfg.SegmentBytes)})
	res, err := l.Append(big, 0)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, one)
	if got := fmt.Sprint(l.SegmentBases()); got != "[0 3 6 9 10 13]" {
		t.Fatalf("segments %s after a big batch, want [0 3 6 9 10 13]", got)
	}
	if res.BaseOffset != 10 || res.LastOffset != 12 {
		t.Fatalf("big batch at %d-%d", res.BaseOffset, res.LastOffset)
	}
	var size int64
	ents, _ := os.ReadDir(e.dir)
	for _, ent := range ents {
		if fi, _ := ent.Info(); len(ent.Name()) == 24 && ent.Name()[20:] == ".log" {
			size += fi.Size()
		}
	}
	if l.Size() != size {
		t.Fatalf("Size %d, files hold %d", l.Size(), size)
	}
}

func TestRollBySegmentMs(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.SegmentMs = 1000
	e := newEnv(t, cfg)
	l := e.open()
	appendAll(t, l, simple(t, 1, 1))
	e.clock.Advance(1000 * time.Millisecond) // not older than segment.ms yet
	appendAll(t, l, simple(t, 1, 1))
	if got := fmt.Sprint(l.SegmentBases()); got != "[0]" {
		t.Fatalf("segments %s, want [0]", got)
	}
	e.clock.Advance(time.Millisecond)
	appendAll(t, l, simple(t, 1, 1))
	e.clock.Advance(500 * time.Millisecond)
	appendAll(t, l, simple(t, 1, 1))
	if got := fmt.Sprint(l.SegmentBases()); got != "[0 2]" {
		t.Fatalf("segments %s, want [0 2]", got)
	}
	// segment.ms=0 never rolls on time.
	cfg.SegmentMs = 0
	l.SetConfig(cfg)
	e.clock.Advance(365 * 24 * time.Hour)
	appendAll(t, l, simple(t, 1, 1))
	if got := fmt.Sprint(l.SegmentBases()); got != "[0 2]" {
		t.Fatalf("segments %s with segment.ms=0, want [0 2]", got)
	}
}

func TestRollByIndexBytes(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.IndexIntervalBytes = 0 // every batch but a segment's first gets an entry
	cfg.SegmentIndexBytes = 24 // room for 3 offset entries, 2 time entries
	e := newEnv(t, cfg)
	l := e.open()
	for i := range 7 {
		appendAll(t, l, simple(t, 1, int64(i+1)))
	}
	// Each segment: a first batch with no entry, then two with entries
	// (the time index, at 12 bytes an entry, fills first).
	if got := fmt.Sprint(l.SegmentBases()); got != "[0 3 6]" {
		t.Fatalf("segments %s, want [0 3 6]", got)
	}
	if idx := decodeIndex(t, readFile(t, e.path(segName(3, ".index")))); len(idx) != 2 {
		t.Fatalf("segment 3 has %d index entries, want 2", len(idx))
	}
}

// TestOffsetIndex checks the .index entries against the rule in doc.go and
// that reads at every offset land on the right batch.
func TestOffsetIndex(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.IndexIntervalBytes = 300
	cfg.SegmentBytes = 4000
	e := newEnv(t, cfg)
	l := e.open()
	var want []stored
	for i := range 60 {
		want = append(want, appendAll(t, l, makeBatch(t, batchSpec{records: 1 + i%3, firstTs: 1, valueSize: 20 + 7*(i%5)}))...)
	}
	l.SetHighWatermark(l.LogEndOffset())
	checkIndexes(t, e, l, want, cfg.IndexIntervalBytes)
	for _, s := range want {
		for off := s.base; off <= s.last; off++ {
			b, _ := readBytes(t, l, off, 1, true, l.HighWatermark())
			if !bytes.Equal(b, s.bytes) {
				t.Fatalf("read at %d returned batch %d, want %d", off, baseOf(b), s.base)
			}
		}
	}
}

// checkIndexes recomputes every segment's .index and .timeindex from the
// stored batches and compares them with the files.
func checkIndexes(t *testing.T, e *env, l *storage.Log, all []stored, interval int64) {
	t.Helper()
	bases := l.SegmentBases()
	for i, base := range bases {
		var segBatches []stored
		for _, s := range all {
			if s.base >= base && (i == len(bases)-1 || s.base < bases[i+1]) {
				segBatches = append(segBatches, s)
			}
		}
		wantIdx, wantTime := expectedIndexes(base, segBatches, interval, i < len(bases)-1)
		gotIdx := decodeIndex(t, readFile(t, e.path(segName(base, ".index"))))
		gotTime := decodeTimeIndex(t, readFile(t, e.path(segName(base, ".timeindex"))))
		if fmt.Sprint(gotIdx) != fmt.Sprint(wantIdx) {
			t.Fatalf("segment %d .index\n got %v\nwant %v", base, gotIdx, wantIdx)
		}
		if fmt.Sprint(gotTime) != fmt.Sprint(wantTime) {
			t.Fatalf("segment %d .timeindex\n got %v\nwant %v", base, gotTime, wantTime)
		}
	}
}

// expectedIndexes is the index rule of doc.go, written out independently.
func expectedIndexes(base int64, batches []stored, interval int64, finished bool) ([]indexEntry, []timeEntry) {
	var idx []indexEntry
	var tim []timeEntry
	var pos, since int64
	maxTs, maxLast := int64(-1), int64(-1)
	lastTs := func() int64 {
		if len(tim) == 0 {
			return -1
		}
		return tim[len(tim)-1].ts
	}
	for _, s := range batches {
		h, _ := protocol.ParseBatchHeader(s.bytes)
		if h.MaxTimestamp > maxTs {
			maxTs, maxLast = h.MaxTimestamp, s.last
		}
		if pos > 0 && since >= interval {
			idx = append(idx, indexEntry{uint32(s.last - base), uint32(pos)})
			if maxTs > lastTs() {
				tim = append(tim, timeEntry{maxTs, uint32(maxLast - base)})
			}
			since = 0
		}
		since += int64(len(s.bytes))
		pos += int64(len(s.bytes))
	}
	if finished && maxTs > lastTs() {
		tim = append(tim, timeEntry{maxTs, uint32(maxLast - base)})
	}
	return idx, tim
}

func TestTimeIndexAndBatchAtTime(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.IndexIntervalBytes = 150
	cfg.SegmentBytes = 1000
	e := newEnv(t, cfg)
	l := e.open()
	// Timestamps mostly rising, with dips and repeats.
	stamps := []int64{100, 105, 103, 110, 110, 120, 90, 130, 131, 125, 140, 140, 150, 149, 160, 170, 165, 180, 200, 190, 210, 220, 215, 230, 240}
	var want []stored
	for i, ts := range stamps {
		want = append(want, appendAll(t, l, makeBatch(t, batchSpec{records: 2, firstTs: ts - 1, maxTs: ts, valueSize: 10 + i}))...)
	}
	if len(l.SegmentBases()) < 3 {
		t.Fatalf("want several segments, have %v", l.SegmentBases())
	}
	checkIndexes(t, e, l, want, cfg.IndexIntervalBytes)

	check := func(hwBatches int) {
		t.Helper()
		for ts := int64(0); ts <= 250; ts++ {
			var wantB []byte
			for i, s := range want[:hwBatches] {
				if stamps[i] >= ts {
					wantB = s.bytes
					break
				}
			}
			got, ok, err := l.BatchAtTime(ts)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (wantB != nil) || !bytes.Equal(got, wantB) {
				t.Fatalf("hw at batch %d: BatchAtTime(%d) = %v (base %d), want %v", hwBatches, ts, ok, baseOf(append(got, make([]byte, 8)...)), wantB != nil)
			}
		}
	}
	check(0) // nothing below the high watermark
	l.SetHighWatermark(want[10].base)
	check(10)
	l.SetHighWatermark(l.LogEndOffset())
	check(len(want))

	ts, base := l.MaxTimestamp()
	if ts != 240 || base != want[len(want)-1].base {
		t.Fatalf("MaxTimestamp = %d at %d, want 240 at %d", ts, base, want[len(want)-1].base)
	}
	// The first batch to reach the max wins; reopening (max from the time
	// index, base found by a scan) agrees.
	appendAll(t, l, makeBatch(t, batchSpec{records: 1, firstTs: 240, maxTs: 240}))
	if ts2, base2 := l.MaxTimestamp(); ts2 != ts || base2 != base {
		t.Fatalf("after a tie MaxTimestamp = %d at %d, want %d at %d", ts2, base2, ts, base)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if ts2, base2 := l.MaxTimestamp(); ts2 != ts || base2 != base {
		t.Fatalf("after reopen MaxTimestamp = %d at %d, want %d at %d", ts2, base2, ts, base)
	}
	check(len(want))
}

func TestHighWatermarkAndChanged(t *testing.T) {
	l := newEnv(t, storage.DefaultConfig()).open()
	ch := l.Changed()
	l.SetHighWatermark(5) // clamped to the log end offset, 0: no move
	select {
	case <-ch:
		t.Fatal("Changed fired without a move")
	default:
	}
	appendAll(t, l, simple(t, 3, 1))
	l.SetHighWatermark(100)
	if l.HighWatermark() != 3 {
		t.Fatalf("hw %d, want 3 (clamped)", l.HighWatermark())
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed did not fire")
	}
	ch = l.Changed()
	l.SetHighWatermark(1) // never down
	if l.HighWatermark() != 3 {
		t.Fatalf("hw moved down to %d", l.HighWatermark())
	}
	select {
	case <-ch:
		t.Fatal("Changed fired without a move")
	default:
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Close did not wake Changed waiters")
	}
	<-l.Changed()
}

func TestClosedAndDelete(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	appendAll(t, l, simple(t, 1, 1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(simple(t, 1, 1), 0); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.Read(0, 100, true, 1); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := l.Flush(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("flush after close: %v", err)
	}
	l = e.open()
	appendAll(t, l, simple(t, 1, 1))
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.dir); !os.IsNotExist(err) {
		t.Fatalf("directory still there: %v", err)
	}
}

// TestConcurrentAppendRead appends from many goroutines while others
// read; every batch must land whole, once, with contiguous offsets.
func TestConcurrentAppendRead(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 8 << 10
	cfg.IndexIntervalBytes = 256
	e := newEnv(t, cfg)
	l := e.open()
	const writers, perWriter = 8, 50
	var wg sync.WaitGroup
	done := make(chan struct{})
	readErr := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				hw := l.HighWatermark()
				rr, err := l.Read(0, 1<<20, true, hw)
				if err != nil {
					readErr <- err
					return
				}
				var b []byte
				for _, r := range rr.Ranges {
					if b, err = r.AppendTo(b); err != nil {
						readErr <- err
						return
					}
				}
				for next := int64(0); len(b) > 0; {
					n := protocol.BatchSize(b)
					h, err := protocol.ParseBatchHeader(b[:n])
					if err != nil || h.FirstOffset != next || protocol.BatchCRC(b[:n]) != uint32(h.CRC) {
						readErr <- fmt.Errorf("bad batch at %d: %v", next, err)
						return
					}
					next += int64(h.LastOffsetDelta) + 1
					b = b[n:]
				}
			}
		})
	}
	var wwg sync.WaitGroup
	for w := range writers {
		wwg.Go(func() {
			for i := range perWriter {
				res, err := l.Append(simple(t, 1+(w+i)%3, int64(i)), 0)
				if err != nil {
					t.Error(err)
					return
				}
				l.SetHighWatermark(res.LastOffset + 1)
			}
		})
	}
	wwg.Wait()
	close(done)
	wg.Wait()
	select {
	case err := <-readErr:
		t.Fatal(err)
	default:
	}
	b, _ := readBytes(t, l, 0, 1<<30, false, l.HighWatermark())
	var records int64
	for _, batch := range splitBatches(t, b) {
		h, _ := protocol.ParseBatchHeader(batch)
		if h.FirstOffset != records {
			t.Fatalf("batch at %d, want %d", h.FirstOffset, records)
		}
		records += int64(h.NumRecords)
	}
	if records != l.LogEndOffset() || l.HighWatermark() != records {
		t.Fatalf("%d records read, leo %d, hw %d", records, l.LogEndOffset(), l.HighWatermark())
	}
}

func TestConfigDefaults(t *testing.T) {
	c := storage.DefaultConfig()
	if c.SegmentBytes != 1<<30 || c.SegmentMs != 7*24*3600*1000 || c.SegmentIndexBytes != 10<<20 || c.IndexIntervalBytes != 4096 {
		t.Fatalf("defaults %+v", c)
	}
	// Nonsense values are replaced, not obeyed.
	e := newEnv(t, storage.Config{SegmentBytes: -1, SegmentIndexBytes: 0, IndexIntervalBytes: -5})
	l := e.open()
	appendAll(t, l, simple(t, 1, 1), simple(t, 1, 1))
	if len(l.SegmentBases()) != 1 {
		t.Fatalf("segments %v", l.SegmentBases())
	}
}

func TestFileRangeOSFile(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	if e.files != nil {
		t.Skip("segment files in a descriptor cache are not handed out as *os.File")
	}
	l := e.open()
	appendAll(t, l, simple(t, 1, 1))
	rr, err := l.Read(0, 1<<20, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Ranges) != 1 || rr.Ranges[0].File == nil {
		t.Fatalf("ranges %+v: want one with an *os.File", rr.Ranges)
	}
	// The exported fields alone are enough (what a sendfile path uses).
	r := storage.FileRange{File: rr.Ranges[0].File, Pos: rr.Ranges[0].Pos, Len: rr.Ranges[0].Len}
	b, err := r.AppendTo([]byte("x"))
	if err != nil || int64(len(b)) != 1+r.Len || b[0] != 'x' {
		t.Fatalf("AppendTo: %v, %d bytes", err, len(b))
	}
}
