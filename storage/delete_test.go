package storage_test

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/gregorbroker/gregor/storage"
)

func TestRollOnRequest(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	if base, err := l.Roll(); err != nil || base != 0 {
		t.Fatalf("roll of an empty log: base %d, %v; want 0 and no new segment", base, err)
	}
	want := appendAll(t, l, simple(t, 2, 1), simple(t, 3, 2))
	base, err := l.Roll()
	if err != nil || base != 5 {
		t.Fatalf("roll: base %d, %v; want 5", base, err)
	}
	if base2, err := l.Roll(); err != nil || base2 != 5 {
		t.Fatalf("second roll with nothing appended: base %d, %v; want 5", base2, err)
	}
	want = append(want, appendAll(t, l, simple(t, 1, 3))...)
	if got := fmt.Sprint(l.SegmentBases()); got != "[0 5]" {
		t.Fatalf("segments %s, want [0 5]", got)
	}
	l.SetHighWatermark(l.LogEndOffset())
	checkLog(t, l, want)
}

func TestDeleteSegmentsBelow(t *testing.T) {
	cfg := storage.DefaultConfig()
	one := simple(t, 1, 1)
	cfg.SegmentBytes = int64(3*len(one) + 10) // three batches per segment
	cfg.FileDeleteDelayMs = 0
	e := newEnv(t, cfg)
	l := e.open()
	var all []stored
	for range 10 {
		all = append(all, appendAll(t, l, one)...)
	}
	l.SetHighWatermark(10)
	// Segments [0 3 6 9]. Offset 5 is inside segment 3: only segment 0
	// lies wholly below it.
	// A range handed out before the delete stays readable until the delay.
	cfg.FileDeleteDelayMs = 60000
	l.SetConfig(cfg)
	early, err := l.Read(0, 1<<20, true, 10)
	if err != nil {
		t.Fatal(err)
	}
	sizeBefore := l.Size()
	n, err := l.DeleteSegmentsBelow(5)
	if err != nil || n != 1 {
		t.Fatalf("delete below 5: %d segments, %v; want 1", n, err)
	}
	if got := fmt.Sprint(l.SegmentBases()); got != "[3 6 9]" {
		t.Fatalf("segments %s, want [3 6 9]", got)
	}
	if l.LogStartOffset() != 3 {
		t.Fatalf("log start offset %d, want 3", l.LogStartOffset())
	}
	if l.Size() != sizeBefore-int64(3*len(one)) {
		t.Fatalf("size %d, want %d", l.Size(), sizeBefore-int64(3*len(one)))
	}
	if _, err := l.Read(2, 1<<20, true, 10); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read below the new start: %v, want ErrOffsetOutOfRange", err)
	}
	if _, err := early.Ranges[0].AppendTo(nil); err != nil {
		t.Fatalf("a range of the deleted segment, read within file.delete.delay.ms: %v", err)
	}
	if _, err := os.Stat(e.path(segName(0, ".log"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the deleted segment's .log is still there under its name: %v", err)
	}
	if _, err := os.Stat(e.path(segName(0, ".log.deleted"))); err != nil {
		t.Fatalf("the deleted segment waits for its delay as .log.deleted: %v", err)
	}
	checkLog(t, l, all[3:])

	// The active segment never goes, whatever the offset.
	cfg.FileDeleteDelayMs = 0
	l.SetConfig(cfg)
	if n, err := l.DeleteSegmentsBelow(1 << 40); err != nil || n != 2 {
		t.Fatalf("delete below everything: %d segments, %v; want 2", n, err)
	}
	if got := fmt.Sprint(l.SegmentBases()); got != "[9]" {
		t.Fatalf("segments %s, want [9]", got)
	}
	waitFor(t, "files of segments deleted with no delay to be removed", func() bool {
		for _, base := range []int64{3, 6} {
			for _, suffix := range []string{".log", ".index", ".timeindex"} {
				if _, err := os.Stat(e.path(segName(base, suffix+".deleted"))); err == nil {
					return false
				}
			}
		}
		return true
	})
	all = append(all, appendAll(t, l, one)...)
	l.SetHighWatermark(11)
	checkLog(t, l, all[9:])

	// Close removes files whose delay had not passed yet.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.path(segName(0, ".log.deleted"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a deleted segment's file outlived Close: %v", err)
	}
	// Reopened as after a crash that left a deleted file behind: the log
	// starts at 9, and the file is removed.
	os.Remove(e.path(".gregor-clean-shutdown"))
	writeFile(t, e.path(segName(3, ".log.deleted")), one)
	l2 := e.open()
	if l2.LogStartOffset() != 9 || l2.LogEndOffset() != 11 {
		t.Fatalf("reopened: log %d to %d, want 9 to 11", l2.LogStartOffset(), l2.LogEndOffset())
	}
	ents, _ := os.ReadDir(e.dir)
	for _, ent := range ents {
		if len(ent.Name()) > 8 && ent.Name()[len(ent.Name())-8:] == ".deleted" {
			t.Errorf("%s left after reopening", ent.Name())
		}
	}
	l2.SetHighWatermark(11)
	checkLog(t, l2, all[9:])
}
