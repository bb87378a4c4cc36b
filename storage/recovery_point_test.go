package storage_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gregorbroker/gregor/storage"
)

// crashedLog fills a log of many segments, crashes it and returns the
// batches and the segment base offsets.
func crashedLog(t *testing.T, e *env) ([]stored, []int64) {
	t.Helper()
	l := e.open()
	want := fill(t, l, 60)
	bases := l.SegmentBases()
	if len(bases) < 6 {
		t.Fatalf("%d segments, the test needs at least 6", len(bases))
	}
	l.Crash()
	return want, bases
}

// inSegment returns the batches of want in the segment at bases[i].
func inSegment(want []stored, bases []int64, i int) []stored {
	var out []stored
	for _, s := range want {
		if s.base >= bases[i] && (i == len(bases)-1 || s.base < bases[i+1]) {
			out = append(out, s)
		}
	}
	return out
}

// below returns the batches of want before offset.
func below(want []stored, offset int64) []stored {
	var out []stored
	for _, s := range want {
		if s.base < offset {
			out = append(out, s)
		}
	}
	return out
}

// checkDropped checks the files of the segments after bases[i] are gone.
func checkDropped(t *testing.T, e *env, bases []int64, i int) {
	t.Helper()
	for _, b := range bases[i+1:] {
		for _, suf := range []string{".log", ".index", ".timeindex"} {
			if _, err := os.Stat(e.path(segName(b, suf))); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("segment %d%s still there after the cut of segment %d: %v", b, suf, bases[i], err)
			}
		}
	}
}

// TestCrashAfterRollTornEarlierSegment: a crash after rolls leaves a
// segment before the last one torn (its tail never reached the disk).
// Past the recovery point, Open checks it, cuts it at the torn batch and
// drops every later segment, as Kafka does; the log continues from there.
func TestCrashAfterRollTornEarlierSegment(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	want, bases := crashedLog(t, e)
	const torn = 3
	seg := inSegment(want, bases, torn)
	lastOfSeg := seg[len(seg)-1]
	path := e.path(segName(bases[torn], ".log"))
	editFile(t, path, func(b []byte) []byte { return b[:len(b)-5] })

	e.rp = bases[torn-1] // segments 0 .. torn-2 are known fsynced
	l := e.open()
	kept := below(want, lastOfSeg.base)
	checkLog(t, l, kept)
	checkDropped(t, e, bases, torn)
	if got := l.SegmentBases(); len(got) != torn+1 || got[torn] != bases[torn] {
		t.Fatalf("segments %v after the cut, want the first %d of %v", got, torn+1, bases)
	}
	st := l.Recovery()
	if st.Segments != 2 || st.Dropped != len(bases)-torn-1 || st.Point != bases[torn-1] {
		t.Fatalf("recovery %+v: want 2 segments checked (from the one holding the recovery point), %d dropped", st, len(bases)-torn-1)
	}
	if len(e.logs.lines(t, "cut torn or corrupt segment past the recovery point")) != 1 {
		t.Fatal("no warning about the cut segment")
	}
	// The cut segment is active again: appends land right after it and
	// a second crash finds the same log.
	more := appendAll(t, l, simple(t, 2, 5000))
	if more[0].base != lastOfSeg.base {
		t.Fatalf("append after the cut at %d, want %d", more[0].base, lastOfSeg.base)
	}
	l.Crash()
	e.rp = 0
	l = e.open()
	checkLog(t, l, append(kept, more...))
}

// TestFlipByteInEarlierSegment: a flipped byte in the middle of an earlier
// segment past the recovery point fails its batch's CRC; the segment is
// cut before that batch and the later segments dropped.
func TestFlipByteInEarlierSegment(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	want, bases := crashedLog(t, e)
	const bad = 2
	seg := inSegment(want, bases, bad)
	if len(seg) < 3 {
		t.Fatalf("segment %d has %d batches, the test needs 3", bases[bad], len(seg))
	}
	pos := len(seg[0].bytes) + len(seg[1].bytes)/2 + 30 // inside the second batch's records
	editFile(t, e.path(segName(bases[bad], ".log")), func(b []byte) []byte { b[pos] ^= 0x40; return b })

	l := e.open() // no checkpoint: every segment is checked
	checkLog(t, l, below(want, seg[1].base))
	checkDropped(t, e, bases, bad)
	if st := l.Recovery(); st.Segments != bad+1 || st.Point != 0 {
		t.Fatalf("recovery %+v, want %d segments checked", st, bad+1)
	}
}

// TestRecoveryPointTrustsEarlierSegments: segments that end at or below
// the recovery point are not read after a crash (damage there goes
// unnoticed, as in Kafka: they were fsynced), and a clean shutdown skips
// recovery altogether.
func TestRecoveryPointTrustsEarlierSegments(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	want, bases := crashedLog(t, e)
	seg := inSegment(want, bases, 1)
	editFile(t, e.path(segName(bases[1], ".log")), func(b []byte) []byte { b[len(seg[0].bytes)+40] ^= 1; return b })

	e.rp = bases[len(bases)-2] // inside the segment before the last one
	l := e.open()
	st := l.Recovery()
	if st.Segments != 2 || st.Dropped != 0 || !l.CrashRecovered() {
		t.Fatalf("recovery %+v, want the 2 segments from the recovery point on checked", st)
	}
	if l.LogEndOffset() != want[len(want)-1].last+1 {
		t.Fatalf("log end offset %d, want %d", l.LogEndOffset(), want[len(want)-1].last+1)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	e.rp = 0
	l = e.open()
	if st := l.Recovery(); st.Segments != 0 || l.CrashRecovered() {
		t.Fatalf("after a clean shutdown recovery %+v, crash recovered %v: want none", st, l.CrashRecovered())
	}
	if n := len(e.logs.lines(t, "recovered the log after an unclean shutdown")); n != 1 {
		t.Fatalf("%d recovery lines for one crash and one clean shutdown", n)
	}
}

// TestRecoveryPointFollowsRolls: a rolled segment is fsynced in the
// background and the recovery point moves past it, so a crash then checks
// only the active segment. After a recovery everything is fsynced.
func TestRecoveryPointFollowsRolls(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	l := e.open()
	want := fill(t, l, 60)
	bases := l.SegmentBases()
	active := bases[len(bases)-1]
	waitFor(t, "recovery point past the rolled segments", func() bool { return l.RecoveryPoint() >= active })
	if rp := l.RecoveryPoint(); rp > l.LogEndOffset() {
		t.Fatalf("recovery point %d past the log end %d", rp, l.LogEndOffset())
	}
	e.rp = l.RecoveryPoint()
	l.Crash()
	l = e.open()
	checkLog(t, l, want)
	if st := l.Recovery(); st.Segments != 1 {
		t.Fatalf("recovery %+v, want only the active segment checked", st)
	}
	if rp := l.RecoveryPoint(); rp != l.LogEndOffset() {
		t.Fatalf("recovery point %d right after recovery, want the log end %d", rp, l.LogEndOffset())
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryDropFails: a failure while dropping the segments after a
// cut fails Open; the next Open, without the fault, finishes the job with
// the same result.
func TestRecoveryDropFails(t *testing.T) {
	fsys := &faultFS{}
	e := newEnv(t, recoveryConfig(200))
	e.fs = fsys
	want, bases := crashedLog(t, e)
	const torn = 2
	seg := inSegment(want, bases, torn)
	editFile(t, e.path(segName(bases[torn], ".log")), func(b []byte) []byte { return b[:len(b)-3] })
	faultN(fsys, e.dir, faultRemove, segName(bases[len(bases)-2], ".log"), syscall.EIO, 1)
	if l, err := e.tryOpen(); err == nil {
		l.Crash()
		t.Fatal("open succeeded with a failing remove")
	}
	fsys.set(func(f *faultFS) { f.inject = nil })
	l := e.open()
	checkLog(t, l, below(want, seg[len(seg)-1].base))
	checkDropped(t, e, bases, torn)
}

// TestTruncateBelowRecoveryPointThenCrash: a truncation below the
// checkpointed recovery point calls OnTruncate with the point after the
// cut before TruncateTo returns, so the checkpoint the broker keeps with
// it is below the range written again. After a crash that left garbage in
// a segment of that range (one that ends below the old checkpoint, never
// fsynced), Open given that checkpoint checks the segment and cuts the log
// there; given the old one it would trust the garbage.
func TestTruncateBelowRecoveryPointThenCrash(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	var checkpoint int64 // the broker's entry for this log
	var calls []int64
	e.onTruncate = func(rp int64) error {
		calls = append(calls, rp)
		checkpoint = min(checkpoint, rp)
		return nil
	}
	l := e.open()
	first := fill(t, l, 60)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	checkpoint = l.RecoveryPoint() // a periodic checkpoint write
	old := checkpoint
	bases := l.SegmentBases()
	end, err := l.TruncateTo(inSegment(first, bases, 2)[1].base)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != end || checkpoint != end {
		t.Fatalf("OnTruncate calls %v, checkpoint %d after truncating to %d", calls, checkpoint, end)
	}
	again := fill(t, l, 40)
	want := append(below(first, end), again...)
	newBases := l.SegmentBases()
	k := -1
	for i := range len(newBases) - 1 {
		if newBases[i] >= end && newBases[i+1] <= old {
			k = i
			break
		}
	}
	if k < 0 {
		t.Fatalf("no closed segment past the cut at %d that ends below the old checkpoint %d: %v", end, old, newBases)
	}
	l.Crash()
	// As if segment k's bytes never reached the disk.
	editFile(t, e.path(segName(newBases[k], ".log")), func(b []byte) []byte {
		for i := 30; i < 60; i++ {
			b[i] ^= 0x5a
		}
		return b
	})
	e.rp = checkpoint
	l = e.open()
	checkLog(t, l, below(want, newBases[k]))
	if st := l.Recovery(); st.Point != end || st.Segments < k-segmentFor(newBases, end)+1 || st.Dropped != len(newBases)-k-1 {
		t.Fatalf("recovery %+v, want from point %d on, segment %d cut and the %d after it dropped", st, end, newBases[k], len(newBases)-k-1)
	}
}

// segmentFor is the index of the segment of bases that holds offset.
func segmentFor(bases []int64, offset int64) int {
	i := 0
	for i+1 < len(bases) && bases[i+1] <= offset {
		i++
	}
	return i
}

// TestOnTruncateCalls: OnTruncate gets the recovery point after every
// truncation and start over, and nothing when TruncateTo has nothing to
// cut.
func TestOnTruncateCalls(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	var calls []int64
	e.onTruncate = func(rp int64) error { calls = append(calls, rp); return nil }
	l := e.open()
	fill(t, l, 20)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	end := l.LogEndOffset()
	if _, err := l.TruncateTo(end + 5); err != nil {
		t.Fatal(err)
	}
	cut, err := l.TruncateTo(end - 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StartAt(end + 100); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint([]int64{cut, end + 100}); fmt.Sprint(calls) != want {
		t.Fatalf("OnTruncate calls %v, want %s", calls, want)
	}
	// A failing OnTruncate fails the log: the broker could not lower its
	// checkpoint, so appending past the cut is not safe.
	e.onTruncate = func(int64) error { return errInjected }
	l.Crash()
	l = e.open()
	fill(t, l, 3)
	if _, err := l.TruncateTo(l.LogEndOffset() - 1); !errors.Is(err, storage.ErrStorage) || !errors.Is(err, errInjected) {
		t.Fatalf("truncate with a failing OnTruncate: %v, want ErrStorage wrapping the hook's error", err)
	}
	if _, err := l.Append(simple(t, 1, 1), 0); !errors.Is(err, storage.ErrStorage) {
		t.Fatalf("append after a failed OnTruncate: %v, want ErrStorage", err)
	}
}

// TestCrashDamageInActiveSegmentPastRecoveryPoint: after a crash, a bad
// batch in the active segment between the recovery point and the
// segment's last offset index entry is found (writeback may save a later
// page, and the index entry naming it, while losing an earlier one): the
// check starts at the last entry below the recovery point, not at the
// last entry, and the segment is cut at the bad batch.
func TestCrashDamageInActiveSegmentPastRecoveryPoint(t *testing.T) {
	for _, rp := range []string{"inside", "none"} {
		t.Run(rp, func(t *testing.T) {
			cfg := storage.DefaultConfig()
			cfg.IndexIntervalBytes = 100 // an index entry every few batches
			e := newEnv(t, cfg)
			l := e.open()
			want := fill(t, l, 40)
			if n := len(l.SegmentBases()); n != 1 {
				t.Fatalf("%d segments, the test needs one", n)
			}
			l.Crash()
			if idx := readFile(t, e.path(segName(0, ".index"))); len(idx) < 8*5 {
				t.Fatalf("%d bytes of offset index, the test needs entries past the damage", len(idx))
			}
			const bad = 20
			if rp == "inside" {
				e.rp = want[5].last + 1
			}
			var pos int
			for _, s := range want[:bad] {
				pos += len(s.bytes)
			}
			pos += len(want[bad].bytes) - 3 // inside the records, covered by the CRC
			editFile(t, e.path(segName(0, ".log")), func(b []byte) []byte { b[pos] ^= 0x20; return b })

			l = e.open()
			checkLog(t, l, want[:bad])
			if len(e.logs.lines(t, "cut torn or corrupt tail of the log")) != 1 {
				t.Fatal("no warning about the cut")
			}
		})
	}
}

// TestTruncateFsyncsTheCutSegment: TruncateTo makes the cut durable before
// it returns (an fsync of the cut segment's .log after the truncate), so a
// power loss cannot bring the diverged tail back into a segment the
// recovery point covers.
func TestTruncateFsyncsTheCutSegment(t *testing.T) {
	ffs := &faultFS{}
	e := newEnv(t, recoveryConfig(200))
	e.fs = ffs
	l := e.open()
	fill(t, l, 40)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	bases := l.SegmentBases()
	cutSeg := bases[len(bases)-2]
	var ops []string
	ffs.set(func(f *faultFS) {
		f.inject = func(op, name string) error {
			if (op == faultTruncate || op == faultSync) && strings.HasSuffix(name, ".log") {
				ops = append(ops, op+" "+filepath.Base(name))
			}
			return nil
		}
	})
	if _, err := l.TruncateTo(cutSeg + 1); err != nil {
		t.Fatal(err)
	}
	ffs.set(func(f *faultFS) { f.inject = nil })
	truncated := 0
	for i, op := range ops {
		if name, ok := strings.CutPrefix(op, faultTruncate+" "); ok {
			truncated++
			if !slices.Contains(ops[i+1:], faultSync+" "+name) {
				t.Fatalf("operations on .log files during TruncateTo: %v; %s truncated, not fsynced after", ops, name)
			}
		}
	}
	if truncated == 0 {
		t.Fatalf("operations on .log files during TruncateTo: %v; no truncation", ops)
	}
}

// TestFailedLogRefusesDeletions: once a log has failed, segment deletions
// and StartAt touch no file (a failed swap may have left them mid-change:
// only the next Open may finish it); a deletion intent that cannot be
// removed fails the log.
func TestFailedLogRefusesDeletions(t *testing.T) {
	ffs := &faultFS{}
	e := newEnv(t, recoveryConfig(200))
	e.fs = ffs
	l := e.open()
	fill(t, l, 40)
	bases := l.SegmentBases()
	l.SetHighWatermark(l.LogEndOffset())
	ffs.set(func(f *faultFS) {
		f.inject = func(op, name string) error {
			if op == faultRemove && strings.Contains(filepath.Base(name), ".gregor-delete-below-") {
				return errInjected
			}
			return nil
		}
	})
	if len(bases) < 5 {
		t.Fatalf("%d segments, the test needs 5", len(bases))
	}
	if _, err := l.DeleteSegmentsBelow(bases[2]); !errors.Is(err, storage.ErrStorage) || !errors.Is(err, errInjected) {
		t.Fatalf("deletion whose intent cannot be removed: %v, want ErrStorage wrapping the injected error", err)
	}
	if l.Failed() == nil {
		t.Fatal("the log has not failed")
	}
	ffs.set(func(f *faultFS) { f.inject = nil })
	files := mustReadDir(t, e.dir)
	if _, err := l.DeleteSegmentsBelow(bases[3]); !errors.Is(err, storage.ErrStorage) {
		t.Fatalf("deletion on a failed log: %v, want ErrStorage", err)
	}
	if err := l.StartAt(l.LogEndOffset() + 10); !errors.Is(err, storage.ErrStorage) {
		t.Fatalf("StartAt on a failed log: %v, want ErrStorage", err)
	}
	if got := mustReadDir(t, e.dir); !slices.Equal(got, files) {
		t.Fatalf("files changed on a failed log:\n%v\nwas\n%v", got, files)
	}
	// The next Open finishes the first deletion from its intent.
	l.Crash()
	l = e.open()
	if got := l.SegmentBases()[0]; got != bases[2] {
		t.Fatalf("first segment %d after reopening, want %d", got, bases[2])
	}
}
