package storage_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// leaderLog appends n batches of 3 records with epochs 1 (first half) and
// 4 (second half) and returns them as stored.
func leaderLog(t *testing.T, l *storage.Log, n int) []stored {
	t.Helper()
	var out []stored
	for i := range n {
		b := simple(t, 3, int64(1000+i))
		epoch := int32(1)
		if i >= n/2 {
			epoch = 4
		}
		res, err := l.Append(b, epoch)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, stored{res.BaseOffset, res.LastOffset, b})
	}
	return out
}

func TestAppendReplicaCopiesTheLeader(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 400 // a few batches per segment
	cfg.IndexIntervalBytes = 1
	leader := newEnv(t, cfg).open()
	want := leaderLog(t, leader, 12)
	followerEnv := newEnv(t, cfg)
	follower := followerEnv.open()
	raw, _ := readBytes(t, leader, 0, 1<<30, false, leader.LogEndOffset())
	for _, b := range splitBatches(t, raw) {
		if _, err := follower.AppendReplica(append([]byte(nil), b...)); err != nil {
			t.Fatal(err)
		}
	}
	checkLog(t, follower, want)
	if got, w := fmt.Sprint(follower.Epochs()), fmt.Sprint(leader.Epochs()); got != w {
		t.Fatalf("follower epochs %s, leader %s", got, w)
	}
	// A batch that does not continue the log is refused.
	again := append([]byte(nil), splitBatches(t, raw)[0]...)
	if _, err := follower.AppendReplica(again); !errors.Is(err, storage.ErrNotContiguous) {
		t.Fatalf("replayed batch: %v, want ErrNotContiguous", err)
	}
	// A batch after a gap (what a compacted leader serves) is taken at
	// its offset.
	gap := simple(t, 1, 5)
	at := follower.LogEndOffset() + 5
	protocol.SetBaseOffset(gap, at)
	if res, err := follower.AppendReplica(gap); err != nil || res.BaseOffset != at || follower.LogEndOffset() != at+1 {
		t.Fatalf("batch after a gap: %+v %v, log end %d; want it at %d", res, err, follower.LogEndOffset(), at)
	}
}

// TestTruncateTo cuts a multi-segment log at every offset, checks what is
// left (in memory and after a reopen), and that appends carry on from the
// cut.
func TestTruncateTo(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 400
	cfg.IndexIntervalBytes = 1
	probe := newEnv(t, cfg).open()
	all := leaderLog(t, probe, 12)
	leo := all[len(all)-1].last + 1
	for cut := int64(0); cut <= leo; cut++ {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			e := newEnv(t, cfg)
			l := e.open()
			leaderLog(t, l, 12)
			l.SetHighWatermark(leo)
			got, err := l.TruncateTo(cut)
			if err != nil {
				t.Fatal(err)
			}
			var keep []stored
			for _, s := range all {
				if s.last < cut {
					keep = append(keep, s)
				}
			}
			want := int64(0)
			if len(keep) > 0 {
				want = keep[len(keep)-1].last + 1
			}
			if got != want || l.LogEndOffset() != want || l.HighWatermark() != want {
				t.Fatalf("truncate to %d: returned %d, log end %d, high watermark %d; want %d", cut, got, l.LogEndOffset(), l.HighWatermark(), want)
			}
			checkLog(t, l, keep)
			for _, ep := range l.Epochs() {
				if ep.StartOffset >= want && want > 0 {
					t.Fatalf("epoch entry %+v at or past the new end %d", ep, want)
				}
			}
			// Appends continue at the cut, and survive a reopen.
			more := appendAll(t, l, simple(t, 2, 5000))
			if more[0].base != want {
				t.Fatalf("next append at %d, want %d", more[0].base, want)
			}
			keep = append(keep, more...)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := e.open()
			checkLog(t, l2, keep)
			// And a crash after a truncation recovers the same log.
			l2.Crash()
			checkLog(t, e.open(), keep)
		})
	}
}

func TestTruncateBelowStartStartsOver(t *testing.T) {
	l := newEnv(t, storage.DefaultConfig()).open()
	leaderLog(t, l, 4)
	got, err := l.TruncateTo(0)
	if err != nil || got != 0 || l.LogEndOffset() != 0 || l.LogStartOffset() != 0 {
		t.Fatalf("truncate to 0: %d %v, log %d..%d", got, err, l.LogStartOffset(), l.LogEndOffset())
	}
	if len(l.Epochs()) != 0 {
		t.Fatalf("epochs left after emptying the log: %v", l.Epochs())
	}
	appendAll(t, l, simple(t, 1, 1))
	if l.LogEndOffset() != 1 {
		t.Fatalf("log end after one append: %d", l.LogEndOffset())
	}
}

// TestAppendReplicaStartInsideBatch: a follower that started over at the
// leader's log start, which DeleteRecords put inside a batch, gets that
// whole batch (its base below the follower's log end) from the leader: it
// starts over at the batch's base and takes it, as Kafka's follower does,
// instead of refusing it for good; its start then moves up to the
// leader's again.
func TestAppendReplicaStartInsideBatch(t *testing.T) {
	leader := newEnv(t, storage.DefaultConfig()).open()
	b := simple(t, 10, 1000)
	if _, err := leader.Append(append([]byte(nil), b...), 1); err != nil {
		t.Fatal(err)
	}
	leader.SetHighWatermark(10)
	if _, err := leader.AdvanceLogStart(5); err != nil {
		t.Fatal(err)
	}
	raw, _ := readBytes(t, leader, 5, 1<<20, true, leader.LogEndOffset())

	follower := newEnv(t, storage.DefaultConfig()).open()
	if err := follower.StartAt(5); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.AppendReplica(raw); err != nil {
		t.Fatalf("the batch holding the follower's start: %v", err)
	}
	if follower.LogEndOffset() != 10 || follower.LogStartOffset() != 0 {
		t.Fatalf("follower log %d..%d, want 0..10", follower.LogStartOffset(), follower.LogEndOffset())
	}
	follower.SetHighWatermark(10)
	if _, err := follower.AdvanceLogStart(5); err != nil || follower.LogStartOffset() != 5 {
		t.Fatalf("follower start after the leader's: %d, %v", follower.LogStartOffset(), err)
	}
	// A log that is not empty still refuses a batch below its end.
	if _, err := follower.AppendReplica(raw); !errors.Is(err, storage.ErrNotContiguous) {
		t.Fatalf("the same batch again: %v, want ErrNotContiguous", err)
	}
}
