package storage_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// deleteOps records, through a faultFS, what a deletion does to the
// directory: fsyncs of the directory, renames, and opens and removals of
// deletion intents, as "sync", "rename <file>", "intent <name>",
// "unintent <name>".
type deleteOps struct {
	mu  sync.Mutex
	ops []string
}

func (d *deleteOps) record(dir string) func(op, name string) error {
	return func(op, name string) error {
		base := filepath.Base(name)
		var s string
		switch {
		case op == faultSync && name == dir:
			s = "sync"
		case op == faultRename:
			s = "rename " + base
		case op == faultOpen && strings.HasPrefix(base, ".gregor-delete-below-"):
			s = "intent " + base
		case op == faultRemove && strings.HasPrefix(base, ".gregor-delete-below-"):
			s = "unintent " + base
		default:
			return nil
		}
		d.mu.Lock()
		d.ops = append(d.ops, s)
		d.mu.Unlock()
		return nil
	}
}

func (d *deleteOps) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.ops
	d.ops = nil
	return out
}

// TestDeleteManySegmentsOneDirectoryFsync: deleting several segments
// costs two directory fsyncs, not one per segment: the deletion intent is
// made durable, every segment renamed oldest first (.log first), the
// directory fsynced once, the intent removed. One segment needs no intent.
func TestDeleteManySegmentsOneDirectoryFsync(t *testing.T) {
	cfg := storage.DefaultConfig()
	one := simple(t, 1, 1)
	cfg.SegmentBytes = int64(len(one) + 10) // one batch per segment
	e := newEnv(t, cfg)
	ffs := &faultFS{}
	e.fs = ffs
	l := e.open()
	for range 8 {
		appendAll(t, l, one)
	}
	l.SetHighWatermark(l.LogEndOffset())
	if err := l.Flush(); err != nil { // the rolls' directory fsyncs are done
		t.Fatal(err)
	}
	ops := &deleteOps{}
	ffs.set(func(f *faultFS) { f.inject = ops.record(e.dir) })

	if n, err := l.DeleteSegmentsBelow(5); err != nil || n != 5 {
		t.Fatalf("delete below 5: %d segments, %v; want 5", n, err)
	}
	intent := fmt.Sprintf(".gregor-delete-below-v1-%020d", 5)
	want := []string{"intent " + intent, "sync"}
	for base := range int64(5) {
		for _, suf := range []string{".log", ".index", ".timeindex"} {
			want = append(want, "rename "+segName(base, suf))
		}
	}
	want = append(want, "sync", "unintent "+intent)
	if got := ops.take(); !slices.Equal(got, want) {
		t.Fatalf("deleting 5 segments did\n%q\nwant\n%q", got, want)
	}
	if _, err := os.Stat(e.path(intent)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("intent left behind: %v", err)
	}

	if n, err := l.DeleteSegmentsBelow(6); err != nil || n != 1 {
		t.Fatalf("delete below 6: %d segments, %v; want 1", n, err)
	}
	want = []string{"rename " + segName(5, ".log"), "rename " + segName(5, ".index"), "rename " + segName(5, ".timeindex"), "sync"}
	if got := ops.take(); !slices.Equal(got, want) {
		t.Fatalf("deleting 1 segment did\n%q\nwant\n%q", got, want)
	}
	if got := fmt.Sprint(l.SegmentBases()); got != "[6 7]" || l.LogStartOffset() != 6 {
		t.Fatalf("segments %s, log start %d after the deletions", got, l.LogStartOffset())
	}
}

// TestOpenFinishesInterruptedDeletion: the filesystem may make the
// renames of one deletion durable in any order, so a crash can leave a
// later segment renamed and earlier ones not. The deletion intent makes
// Open finish the deletion: the log is the suffix from the intent's
// offset, with no hole in the middle.
func TestOpenFinishesInterruptedDeletion(t *testing.T) {
	cfg := storage.DefaultConfig()
	one := simple(t, 1, 1)
	cfg.SegmentBytes = int64(len(one) + 10)
	e := newEnv(t, cfg)
	l := e.open()
	var all []stored
	for range 8 {
		all = append(all, appendAll(t, l, one)...)
	}
	l.Crash()
	// A deletion below 4 whose intent and the rename of segment 2 reached
	// the disk, and nothing else.
	writeFile(t, e.path(fmt.Sprintf(".gregor-delete-below-v1-%020d", 4)), nil)
	for _, suf := range []string{".log", ".index", ".timeindex"} {
		if err := os.Rename(e.path(segName(2, suf)), e.path(segName(2, suf)+".deleted")); err != nil {
			t.Fatal(err)
		}
	}
	l = e.open()
	if got := fmt.Sprint(l.SegmentBases()); got != "[4 5 6 7]" || l.LogStartOffset() != 4 {
		t.Fatalf("segments %s, log start %d after an interrupted deletion below 4; want [4 5 6 7] from 4", got, l.LogStartOffset())
	}
	l.SetHighWatermark(l.LogEndOffset())
	checkLog(t, l, all[4:])
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if n := ent.Name(); strings.HasPrefix(n, ".gregor-delete-below-") || strings.HasSuffix(n, ".deleted") {
			t.Fatalf("%s left after Open", n)
		}
		if base, err := strconv.ParseInt(strings.SplitN(ent.Name(), ".", 2)[0], 10, 64); err == nil && base < 4 {
			t.Fatalf("%s of a deleted segment left after Open", ent.Name())
		}
	}
	if n := len(e.logs.lines(t, "removed the segments an interrupted deletion had not removed yet")); n != 1 {
		t.Fatalf("%d log lines about the interrupted deletion, want 1", n)
	}
}

// TestEpochsAfterDeletionAndCrash: a deletion that only moves the first
// leader epoch entry's start does not rewrite the epoch checkpoint; after
// a crash, Open clamps the entry to the first segment, so the cache reads
// as it did before the crash. An epoch wholly below the new start goes
// from the file at once.
func TestEpochsAfterDeletionAndCrash(t *testing.T) {
	cfg := storage.DefaultConfig()
	one := simple(t, 1, 1)
	cfg.SegmentBytes = int64(len(one) + 10)
	e := newEnv(t, cfg)
	l := e.open()
	for i := range 8 {
		epoch := int32(0)
		if i >= 3 {
			epoch = 1
		}
		if _, err := l.Append(append([]byte(nil), one...), epoch); err != nil {
			t.Fatal(err)
		}
	}
	l.SetHighWatermark(l.LogEndOffset())
	for _, below := range []int64{2, 5} {
		if _, err := l.DeleteSegmentsBelow(below); err != nil {
			t.Fatal(err)
		}
		before := fmt.Sprint(l.Epochs())
		l.Crash()
		l = e.open()
		if got := fmt.Sprint(l.Epochs()); got != before {
			t.Fatalf("after deleting below %d and a crash, epochs %s, want %s", below, got, before)
		}
	}
	if got := fmt.Sprint(l.Epochs()); got != "[{1 5}]" {
		t.Fatalf("epochs %s, want epoch 1 from 5", got)
	}
}

// TestDeletionFailsMidwayThenReopen: a rename that fails in the middle of
// a deletion of several segments fails the log with the intent left on
// disk; the next Open finishes the deletion, so the log is the suffix
// from the first segment that was to stay.
func TestDeletionFailsMidwayThenReopen(t *testing.T) {
	cfg := storage.DefaultConfig()
	one := simple(t, 1, 1)
	cfg.SegmentBytes = int64(len(one) + 10)
	e := newEnv(t, cfg)
	ffs := &faultFS{}
	e.fs = ffs
	l := e.open()
	var all []stored
	for range 8 {
		all = append(all, appendAll(t, l, one)...)
	}
	l.SetHighWatermark(l.LogEndOffset())
	ffs.set(func(f *faultFS) {
		f.inject = func(op, name string) error {
			if op == faultRename && filepath.Base(name) == segName(2, ".log") {
				return errInjected
			}
			return nil
		}
	})
	n, err := l.DeleteSegmentsBelow(5)
	if !errors.Is(err, storage.ErrStorage) || n != 2 {
		t.Fatalf("delete below 5 with a failing rename: %d segments, %v; want 2 and ErrStorage", n, err)
	}
	if _, err := os.Stat(e.path(fmt.Sprintf(".gregor-delete-below-v1-%020d", 5))); err != nil {
		t.Fatalf("no deletion intent after the failure: %v", err)
	}
	l.Crash()
	ffs.set(func(f *faultFS) { f.inject = nil })
	l = e.open()
	if got := fmt.Sprint(l.SegmentBases()); got != "[5 6 7]" || l.LogStartOffset() != 5 {
		t.Fatalf("segments %s, log start %d after reopening; want [5 6 7] from 5", got, l.LogStartOffset())
	}
	l.SetHighWatermark(l.LogEndOffset())
	checkLog(t, l, all[5:])
}
