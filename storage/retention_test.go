package storage_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/storage"
)

// retentionEnv is an env whose segments hold three one-record batches
// each and whose deleted files are removed at once; one is such a batch.
func retentionEnv(t *testing.T) (*env, storage.Config, []byte) {
	cfg := storage.DefaultConfig()
	one := simple(t, 1, 1)
	cfg.SegmentBytes = int64(3*len(one) + 10) // three batches per segment
	cfg.FileDeleteDelayMs = 0
	cfg.RetentionMs = -1
	return newEnv(t, cfg), cfg, one
}

func TestRetentionByTime(t *testing.T) {
	e, cfg, _ := retentionEnv(t)
	l := e.open()
	now := e.clock.Now().UnixMilli()
	// Offsets 0..8 are an hour old, 9..11 fresh: segments [0 3 6 9].
	for i := range 12 {
		ts := now - 3600_000 + int64(i)
		if i >= 9 {
			ts = now
		}
		appendAll(t, l, simple(t, 1, ts))
	}
	if got := fmt.Sprint(l.SegmentBases()); got != "[0 3 6 9]" {
		t.Fatalf("segments %s", got)
	}
	cfg.RetentionMs = 60_000
	l.SetConfig(cfg)
	// Nothing is below the high watermark yet: nothing goes.
	res, err := l.EnforceRetention(e.clock.Now(), true)
	if err != nil || res.Segments != 0 {
		t.Fatalf("before the high watermark moved: %+v, %v", res, err)
	}
	l.SetHighWatermark(5)
	// Only segment 0 ends at or below the high watermark.
	if res, err = l.EnforceRetention(e.clock.Now(), true); err != nil || res.Segments != 1 || res.LogStartOffset != 3 {
		t.Fatalf("high watermark 5: %+v, %v; want segment 0 gone, start 3", res, err)
	}
	// Without the delete policy (compact only), age deletes nothing.
	l.SetHighWatermark(12)
	if res, err = l.EnforceRetention(e.clock.Now(), false); err != nil || res.Segments != 0 {
		t.Fatalf("compact-only: %+v, %v; want nothing deleted", res, err)
	}
	if res, err = l.EnforceRetention(e.clock.Now(), true); err != nil || res.Segments != 2 || res.LogStartOffset != 9 {
		t.Fatalf("%+v, %v; want segments 3 and 6 gone, start 9", res, err)
	}
	if got := fmt.Sprint(l.SegmentBases()); got != "[9]" {
		t.Fatalf("segments %s, want [9]", got)
	}
	if _, err := l.Read(8, 1<<20, true, 12); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read below the start: %v, want out of range", err)
	}
	if _, rr := readBytes(t, l, 9, 1<<20, true, 12); len(rr.Ranges) == 0 {
		t.Fatal("read at the start returned nothing")
	}
	// The active segment, old as its data may be, stays until it rolls.
	e.clock.Advance(time.Hour)
	if res, err = l.EnforceRetention(e.clock.Now(), true); err != nil || res.Segments != 0 || res.Rolled {
		t.Fatalf("active segment: %+v, %v; want it kept and not rolled (segment.ms is 7 days)", res, err)
	}
	for _, name := range []string{segName(0, ".log"), segName(0, ".log.deleted"), segName(6, ".timeindex.deleted")} {
		waitFor(t, name+" removed", func() bool {
			_, err := os.Stat(e.path(name))
			return errors.Is(err, os.ErrNotExist)
		})
	}
}

func TestRetentionRollsOnSegmentMs(t *testing.T) {
	e, cfg, one := retentionEnv(t)
	cfg.SegmentMs = 1000
	cfg.RetentionMs = 500
	e.cfg = cfg
	l := e.open()
	ts := e.clock.Now().UnixMilli()
	appendAll(t, l, simple(t, 1, ts), simple(t, 1, ts))
	l.SetHighWatermark(2)
	e.clock.Advance(800 * time.Millisecond)
	res, err := l.EnforceRetention(e.clock.Now(), true)
	if err != nil || res.Rolled || res.Segments != 0 {
		t.Fatalf("before segment.ms: %+v, %v", res, err)
	}
	e.clock.Advance(300 * time.Millisecond)
	res, err = l.EnforceRetention(e.clock.Now(), true)
	if err != nil || !res.Rolled || res.Segments != 1 || res.LogStartOffset != 2 {
		t.Fatalf("after segment.ms: %+v, %v; want rolled, segment 0 gone, start 2", res, err)
	}
	if l.LogEndOffset() != 2 || l.Size() != 0 {
		t.Fatalf("log end %d, size %d; want 2 and 0", l.LogEndOffset(), l.Size())
	}
	// An empty active segment is never rolled.
	e.clock.Advance(time.Hour)
	if res, err = l.EnforceRetention(e.clock.Now(), true); err != nil || res.Rolled {
		t.Fatalf("empty active segment: %+v, %v", res, err)
	}
	appendAll(t, l, one)
	if l.LogEndOffset() != 3 {
		t.Fatalf("append after: log end %d", l.LogEndOffset())
	}
}

func TestRetentionJitter(t *testing.T) {
	e, cfg, _ := retentionEnv(t)
	cfg.SegmentMs = 10_000
	cfg.SegmentJitterMs = 10_000
	e.cfg = cfg
	l := e.open()
	// Each segment draws its jitter once, in [0, segment.jitter.ms), and
	// rolls once segment.ms less that has passed; segments differ.
	jitters := map[int64]bool{}
	for range 8 {
		appendAll(t, l, simple(t, 1, 1))
		j := l.ActiveRollJitterMs()
		if j < 0 || j >= 10_000 {
			t.Fatalf("jitter %d outside [0, 10000)", j)
		}
		jitters[j] = true
		e.clock.Advance(time.Duration(10_000-j-1) * time.Millisecond)
		if res, err := l.EnforceRetention(e.clock.Now(), false); err != nil || res.Rolled {
			t.Fatalf("%d ms before segment.ms - jitter: %+v, %v; want no roll", 1, res, err)
		}
		e.clock.Advance(2 * time.Millisecond)
		if res, err := l.EnforceRetention(e.clock.Now(), false); err != nil || !res.Rolled {
			t.Fatalf("past segment.ms - jitter (%d): %+v, %v; want a roll", j, res, err)
		}
	}
	if len(jitters) < 2 {
		t.Fatalf("eight segments drew the same jitter: %v", jitters)
	}
	// Jitter is capped by segment.ms itself.
	cfg.SegmentJitterMs = 1 << 40
	l.SetConfig(cfg)
	if j := l.ActiveRollJitterMs(); j >= cfg.SegmentMs {
		t.Fatalf("jitter %d not below segment.ms %d", j, cfg.SegmentMs)
	}
}

func TestRetentionBySize(t *testing.T) {
	e, cfg, one := retentionEnv(t)
	l := e.open()
	for range 12 {
		appendAll(t, l, one)
	}
	l.SetHighWatermark(12)
	seg := 3 * int64(len(one))
	// 4 segments of 3 batches; keep at least 2 segments' worth: the
	// oldest two go (the log then holds exactly 2 segments).
	cfg.RetentionBytes = 2 * seg
	l.SetConfig(cfg)
	res, err := l.EnforceRetention(e.clock.Now(), true)
	if err != nil || res.Segments != 2 || res.Bytes != 2*seg || res.LogStartOffset != 6 {
		t.Fatalf("%+v, %v; want 2 segments of %d bytes gone, start 6", res, err, seg)
	}
	if l.Size() != 2*seg {
		t.Fatalf("size %d, want %d", l.Size(), 2*seg)
	}
	// One byte under: one more segment would leave too little.
	cfg.RetentionBytes = seg + 1
	l.SetConfig(cfg)
	if res, err = l.EnforceRetention(e.clock.Now(), true); err != nil || res.Segments != 0 {
		t.Fatalf("%+v, %v; want nothing gone", res, err)
	}
	// retention.bytes 0 still keeps the active segment.
	cfg.RetentionBytes = 0
	l.SetConfig(cfg)
	if res, err = l.EnforceRetention(e.clock.Now(), true); err != nil || res.Segments != 1 || res.LogStartOffset != 9 {
		t.Fatalf("%+v, %v; want the last closed segment gone, start 9", res, err)
	}
}

func openAt(t *testing.T, e *env, start int64) *storage.Log {
	t.Helper()
	l, err := storage.Open(e.dir, e.cfg, storage.Options{
		Logger: zerolog.New(e.logs), Now: e.clock.Now, FS: e.fs, LogStartOffset: start,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAdvanceLogStart(t *testing.T) {
	e, _, one := retentionEnv(t)
	l := openAt(t, e, 0)
	var all []stored
	for range 10 {
		all = append(all, appendAll(t, l, one)...)
	}
	l.SetHighWatermark(10)
	// Inside segment 3: segment 0 goes, 3 stays whole on disk.
	moved, err := l.AdvanceLogStart(4)
	if err != nil || !moved || l.LogStartOffset() != 4 {
		t.Fatalf("advance to 4: %v, %v, start %d", moved, err, l.LogStartOffset())
	}
	if got := fmt.Sprint(l.SegmentBases()); got != "[3 6 9]" {
		t.Fatalf("segments %s, want [3 6 9]", got)
	}
	if _, err := l.Read(3, 1<<20, true, 10); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read at 3: %v, want out of range", err)
	}
	got, _ := readBytes(t, l, 4, 1<<20, true, 10)
	if len(got) == 0 || baseOf(got) != 4 {
		t.Fatalf("read at 4: %d bytes", len(got))
	}
	// Backwards does nothing.
	if moved, err := l.AdvanceLogStart(2); err != nil || moved || l.LogStartOffset() != 4 {
		t.Fatalf("advance back to 2: %v, %v, start %d", moved, err, l.LogStartOffset())
	}
	// The log start comes back from the checkpoint value, not from the
	// first segment's base; without it, it is the first segment's base.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openAt(t, e, 4)
	if l.LogStartOffset() != 4 || l.HighWatermark() < 4 {
		t.Fatalf("reopened with checkpoint 4: start %d, hw %d", l.LogStartOffset(), l.HighWatermark())
	}
	checkFrom := all[4:]
	got, _ = readBytes(t, l, 4, 1<<20, true, 10)
	if n := len(splitBatches(t, got)); n != len(checkFrom) {
		t.Fatalf("reopened: %d batches from 4, want %d", n, len(checkFrom))
	}
	l.Close()
	l = openAt(t, e, 0)
	if l.LogStartOffset() != 3 {
		t.Fatalf("reopened without checkpoint: start %d, want 3", l.LogStartOffset())
	}
	l.Close()
	// A checkpoint past the log end is clamped to it.
	l = openAt(t, e, 99)
	if l.LogStartOffset() != 10 {
		t.Fatalf("reopened with checkpoint 99: start %d, want the log end 10", l.LogStartOffset())
	}
	// To the log end: every closed segment goes, the log reads empty.
	if _, err := l.AdvanceLogStart(10); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(l.SegmentBases()); got != "[9]" {
		t.Fatalf("segments %s, want [9]", got)
	}
	if rr, err := l.Read(10, 1<<20, true, 10); err != nil || rr.Size != 0 {
		t.Fatalf("read at the end: %+v, %v", rr, err)
	}
	appendAll(t, l, one)
	if l.LogEndOffset() != 11 {
		t.Fatalf("log end %d, want 11", l.LogEndOffset())
	}
	l.Close()
}

// TestRetentionCrash: a crash (no clean shutdown) right after a retention
// pass, and with a .log rename done but the index renames not: the log
// reopens as a suffix of the old one, its start at or above the start it
// had, nothing above it lost.
func TestRetentionCrash(t *testing.T) {
	for _, failAt := range []string{"", ".index", ".timeindex"} {
		t.Run("fail"+failAt, func(t *testing.T) {
			e, cfg, one := retentionEnv(t)
			ffs := &faultFS{}
			e.fs = ffs
			cfg.RetentionBytes = 0
			e.cfg = cfg
			l := e.open()
			var all []stored
			for range 12 {
				all = append(all, appendAll(t, l, one)...)
			}
			l.SetHighWatermark(12)
			if failAt != "" {
				// Fail the rename of segment 3's index: segment 0 went, 3's
				// .log is renamed, the log fails.
				target := filepath.Join(e.dir, segName(3, failAt))
				ffs.set(func(f *faultFS) {
					f.inject = func(op, name string) error {
						if op == faultRename && name == target {
							return errors.New("injected rename failure")
						}
						return nil
					}
				})
			}
			_, err := l.EnforceRetention(e.clock.Now(), true)
			if failAt == "" && err != nil {
				t.Fatal(err)
			}
			if failAt != "" && !errors.Is(err, storage.ErrStorage) {
				t.Fatalf("failed rename: %v, want ErrStorage", err)
			}
			start := l.LogStartOffset()
			l.Crash()
			ffs.set(func(f *faultFS) { f.inject = nil })
			l2 := openAt(t, e, start)
			defer l2.Close()
			if l2.LogStartOffset() < start || l2.LogEndOffset() != 12 {
				t.Fatalf("reopened: %d to %d, want from at least %d to 12", l2.LogStartOffset(), l2.LogEndOffset(), start)
			}
			l2.SetHighWatermark(12)
			got, _ := readBytes(t, l2, l2.LogStartOffset(), 1<<20, true, 12)
			bs := splitBatches(t, got)
			if want := all[l2.LogStartOffset():]; len(bs) != len(want) {
				t.Fatalf("reopened: %d batches, want %d", len(bs), len(want))
			}
			for i, b := range bs {
				if baseOf(b) != l2.LogStartOffset()+int64(i) {
					t.Fatalf("batch %d at %d", i, baseOf(b))
				}
			}
		})
	}
}

func TestTruncateBelowLogStart(t *testing.T) {
	e, _, one := retentionEnv(t)
	l := e.open()
	for range 5 {
		appendAll(t, l, one)
	}
	l.SetHighWatermark(5)
	if _, err := l.AdvanceLogStart(2); err != nil {
		t.Fatal(err)
	}
	// Offset 1 is inside the first segment but below the log start.
	leo, err := l.TruncateTo(1)
	if err != nil || leo != 1 || l.LogStartOffset() != 1 {
		t.Fatalf("truncate to 1: leo %d, %v, start %d; want an empty log at 1", leo, err, l.LogStartOffset())
	}
}

// TestRetentionRollsOnMaxCompactionLag: a compacted log's non-empty active
// segment is rolled once max.compaction.lag.ms (CompactionRollMs) passed,
// so the cleaner, which cleans closed segments only, can clean it; nothing
// is deleted without the delete policy.
func TestRetentionRollsOnMaxCompactionLag(t *testing.T) {
	e, cfg, one := retentionEnv(t)
	cfg.SegmentMs = 0 // never on time
	cfg.CompactionRollMs = 1000
	e.cfg = cfg
	l := e.open()
	appendAll(t, l, one, one)
	l.SetHighWatermark(2)
	e.clock.Advance(800 * time.Millisecond)
	if res, err := l.EnforceRetention(e.clock.Now(), false); err != nil || res.Rolled {
		t.Fatalf("before max.compaction.lag.ms: %+v, %v", res, err)
	}
	e.clock.Advance(300 * time.Millisecond)
	res, err := l.EnforceRetention(e.clock.Now(), false)
	if err != nil || !res.Rolled || res.Segments != 0 || l.SegmentCount() != 2 {
		t.Fatalf("after max.compaction.lag.ms: %+v, %v, %d segments; want rolled, nothing deleted", res, err, l.SegmentCount())
	}
	e.clock.Advance(time.Hour)
	if res, err := l.EnforceRetention(e.clock.Now(), false); err != nil || res.Rolled {
		t.Fatalf("empty active segment: %+v, %v", res, err)
	}
}
