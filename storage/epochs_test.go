package storage_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gregorbroker/gregor/storage"
)

func TestLeaderEpochCache(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.FileDeleteDelayMs = 0
	one := simple(t, 2, 1) // two records per batch
	cfg.SegmentBytes = int64(2*len(one) + 10)
	e := newEnv(t, cfg)
	l := e.open()
	for _, epoch := range []int32{0, 0, 2, 2, 5} {
		if _, err := l.Append(append([]byte(nil), one...), epoch); err != nil {
			t.Fatal(err)
		}
	}
	l.SetHighWatermark(l.LogEndOffset())
	want := "[{0 0} {2 4} {5 8}]"
	if got := fmt.Sprint(l.Epochs()); got != want {
		t.Fatalf("epochs %s, want %s", got, want)
	}
	// A stale epoch adds nothing.
	if _, err := l.Append(append([]byte(nil), one...), 3); err != nil {
		t.Fatal(err)
	}
	l.SetHighWatermark(l.LogEndOffset())
	if got := fmt.Sprint(l.Epochs()); got != want {
		t.Fatalf("epochs after a stale epoch %s, want %s", got, want)
	}
	for _, c := range []struct {
		requested, current int32
		epoch              int32
		end                int64
	}{
		{5, 5, 5, 12},  // the current epoch: the high watermark
		{0, 5, 0, 4},   // epoch 0 ended where epoch 2 began
		{1, 5, 0, 4},   // unknown epoch 1: the epoch below it
		{2, 5, 2, 8},   //
		{4, 5, 2, 8},   //
		{7, 5, -1, -1}, // newer than anything
		{5, 6, 5, 12},  // a new leader epoch with nothing written yet
	} {
		epoch, end := l.EndOffsetForEpoch(c.requested, c.current)
		if epoch != c.epoch || end != c.end {
			t.Errorf("EndOffsetForEpoch(%d, current %d) = %d, %d; want %d, %d", c.requested, c.current, epoch, end, c.epoch, c.end)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	reopen := func(what string) *storage.Log {
		t.Helper()
		l := e.open()
		if got := fmt.Sprint(l.Epochs()); got != want {
			t.Fatalf("epochs after %s: %s, want %s", what, got, want)
		}
		return l
	}
	reopen("a clean restart").Close()
	os.Remove(e.path("leader-epoch-checkpoint"))
	reopen("losing the checkpoint (rebuilt from the batches)").Close()
	writeFile(t, e.path("leader-epoch-checkpoint"), []byte("0\n2\n9 0\n"))
	reopen("a garbled checkpoint").Close()

	// Deleting old segments moves the first epoch up to the log start.
	l = e.open()
	if _, err := l.DeleteSegmentsBelow(6); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(l.Epochs()); got != "[{2 4} {5 8}]" {
		t.Fatalf("epochs after deleting below offset 6 (log start %d): %s", l.LogStartOffset(), got)
	}
	if epoch, end := l.EndOffsetForEpoch(0, 5); epoch != 0 || end != l.LogStartOffset() {
		t.Errorf("an epoch older than the log: %d, %d; want 0 and the log start %d", epoch, end, l.LogStartOffset())
	}
}

// An epoch assigned with no batch yet (a leader elected at it) survives a
// clean restart, in an empty log and after batches, so that the leader
// elected again at that epoch has nothing to write; after a crash it is
// dropped with whatever recovery could not vouch for.
func TestAssignedEpochAcrossRestarts(t *testing.T) {
	cfg := storage.DefaultConfig()
	e := newEnv(t, cfg)
	l := e.open()
	if err := l.AssignEpoch(3); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(l.Epochs()); got != "[{3 0}]" {
		t.Fatalf("empty log after AssignEpoch(3): %s", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if got := fmt.Sprint(l.Epochs()); got != "[{3 0}]" {
		t.Fatalf("empty log after a clean restart: %s, want the assigned epoch kept", got)
	}
	if _, err := l.Append(simple(t, 2, 1), 3); err != nil {
		t.Fatal(err)
	}
	if err := l.AssignEpoch(4); err != nil {
		t.Fatal(err)
	}
	want := "[{3 0} {4 2}]"
	if got := fmt.Sprint(l.Epochs()); got != want {
		t.Fatalf("after a batch and AssignEpoch(4): %s, want %s", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if got := fmt.Sprint(l.Epochs()); got != want {
		t.Fatalf("after a clean restart: %s, want %s", got, want)
	}
	l.Crash() // nothing changed since the clean start: still a clean shutdown
	l = e.open()
	if got := fmt.Sprint(l.Epochs()); got != want {
		t.Fatalf("after a crash with nothing changed since a clean start: %s, want %s", got, want)
	}
	if err := l.AssignEpoch(5); err != nil {
		t.Fatal(err)
	}
	l.Crash()
	l = e.open()
	if got := fmt.Sprint(l.Epochs()); got != "[{3 0}]" {
		t.Fatalf("after a crash: %s, want the epochs with no batch dropped", got)
	}
	l.Close()
}

// A truncation whose epoch checkpoint cannot be rewritten fails the log
// (as Kafka does): growing back over the dropped entries would leave the
// file naming the wrong epoch for the new offsets after a crash.
func TestEpochRewriteFailureOnTruncateFailsTheLog(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	fsys := &faultFS{}
	e.fs = fsys
	l := e.open()
	for _, epoch := range []int32{3, 5} {
		if _, err := l.Append(simple(t, 2, 1), epoch); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(l.Epochs()); got != "[{3 0} {5 2}]" {
		t.Fatalf("epochs %s", got)
	}
	fsys.set(failEpochRename)
	if _, err := l.TruncateTo(2); !errors.Is(err, storage.ErrStorage) {
		t.Fatalf("truncate with the checkpoint rewrite failing: %v, want ErrStorage", err)
	}
	if _, err := l.Append(simple(t, 2, 1), 3); err == nil {
		t.Fatal("a failed log took an append")
	}
	l.Close()
	fsys.set(func(f *faultFS) { f.inject = nil })
	l = e.open()
	if got := fmt.Sprint(l.Epochs()); got != "[{3 0}]" {
		t.Fatalf("epochs after reopening: %s, want [{3 0}]", got)
	}
}

// A checkpoint rewrite that failed when the log start moved past entries
// is written again at the clean close, before the marker; if it still
// fails, no marker vouches for the file.
func TestStaleEpochCheckpointAtCleanClose(t *testing.T) {
	for _, stillFailing := range []bool{false, true} {
		t.Run(fmt.Sprintf("rewrite at close fails: %v", stillFailing), func(t *testing.T) {
			one := simple(t, 2, 1)
			cfg := storage.DefaultConfig()
			cfg.SegmentBytes = int64(2*len(one) + 10)
			cfg.FileDeleteDelayMs = 0
			e := newEnv(t, cfg)
			fsys := &faultFS{}
			e.fs = fsys
			l := e.open()
			for _, epoch := range []int32{3, 3, 5, 5, 5} {
				if _, err := l.Append(append([]byte(nil), one...), epoch); err != nil {
					t.Fatal(err)
				}
			}
			l.SetHighWatermark(l.LogEndOffset())
			if got := fmt.Sprint(l.Epochs()); got != "[{3 0} {5 4}]" {
				t.Fatalf("epochs %s", got)
			}
			fsys.set(failEpochRename)
			if _, err := l.DeleteSegmentsBelow(6); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(l.Epochs()); got != "[{5 4}]" {
				t.Fatalf("epochs after deleting below 6 (the first segment): %s", got)
			}
			if !stillFailing {
				fsys.set(func(f *faultFS) { f.inject = nil })
			}
			err := l.Close()
			if stillFailing != (err != nil) {
				t.Fatalf("close: %v (rewrite still failing: %v)", err, stillFailing)
			}
			fsys.set(func(f *faultFS) { f.inject = nil })
			_, markerErr := os.Stat(e.path(storage.MarkerName))
			if stillFailing != os.IsNotExist(markerErr) {
				t.Fatalf("marker after close: %v (rewrite still failing: %v)", markerErr, stillFailing)
			}
			if !stillFailing {
				if got := string(readFile(t, e.path("leader-epoch-checkpoint"))); got != "0\n1\n5 4\n" {
					t.Fatalf("checkpoint after the clean close %q", got)
				}
			}
			l = e.open()
			if got := fmt.Sprint(l.Epochs()); got != "[{5 4}]" {
				t.Fatalf("epochs after restarting: %s, want [{5 4}]", got)
			}
		})
	}
}

// failEpochRename makes the leader epoch checkpoint's rename fail.
func failEpochRename(f *faultFS) {
	f.inject = func(op, name string) error {
		if op == faultRename && strings.Contains(name, "leader-epoch-checkpoint") {
			return syscall.EIO
		}
		return nil
	}
}
