package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// mustPanic runs fn and fails the test unless it panics.
func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: did not panic", what)
		}
	}()
	fn()
}

// within runs fn and fails the test if it does not return in time (a
// lock left held by a panic would block it for good).
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: blocked (a lock left held by the panic?)", what)
	}
}

// TestGroupServesAfterPanic: a panic in the middle of a group operation
// (here, in the log append of a commit and of a SyncGroup's metadata, with
// the group's lock held) leaves the group unlocked: the broker recovers
// the panic per connection, and the group's next requests are served.
func TestGroupServesAfterPanic(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	c := startCoordinator(t, logs, clk)
	first := c.Join(ctx, "g", joinArgs(""))
	j := c.Join(ctx, "g", joinArgs(first.MemberID))
	if j.Err != nil {
		t.Fatalf("join: %v", j.Err)
	}
	logs.mu.Lock()
	logs.panics = 1
	logs.mu.Unlock()
	mustPanic(t, "SyncGroup storing the group's metadata", func() {
		c.Sync(ctx, "g", SyncArgs{MemberID: j.MemberID, Generation: j.Generation, Assignments: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: j.MemberID, MemberAssignment: []byte("a")}}})
	})
	within(t, "heartbeat after the panic", func() {
		if err := c.Heartbeat(ctx, "g", j.MemberID, nil, j.Generation); err != nil {
			t.Errorf("heartbeat after the panic: %v", err)
		}
	})
	logs.mu.Lock()
	logs.panics = 1
	logs.mu.Unlock()
	mustPanic(t, "OffsetCommit", func() {
		c.Commit(ctx, "g", CommitArgs{MemberID: j.MemberID, Generation: j.Generation}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1}})
	})
	within(t, "commit after the panic", func() {
		for _, err := range c.Commit(ctx, "g", CommitArgs{MemberID: j.MemberID, Generation: j.Generation}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 2, LeaderEpoch: -1}}) {
			if err != nil {
				t.Errorf("commit after the panic: %v", err)
			}
		}
	})
	within(t, "listing and describing after the panic", func() {
		if d := c.DescribeGroup(ctx, "g"); d.Err != nil || len(d.Members) != 1 {
			t.Errorf("describe after the panic: %+v", d)
		}
		c.ListGroups(nil, nil)
		c.ExpireOffsets()
	})
}

// TestTxnServesAfterPanic: the same for a transaction: a panic while its
// state is being stored leaves it unlocked, and the producer carries on.
func TestTxnServesAfterPanic(t *testing.T) {
	h := newTxnHarness(t)
	pid, epoch, err := h.init(t, "tx", -1, -1)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	h.logs.mu.Lock()
	h.logs.panics = 1
	h.logs.mu.Unlock()
	mustPanic(t, "AddPartitionsToTxn storing the state", func() { h.add("tx", pid, epoch, TopicPartition{Topic: "t", Partition: 0}) })
	within(t, "AddPartitionsToTxn after the panic", func() {
		if errs := h.add("tx", pid, epoch, TopicPartition{Topic: "t", Partition: 0}); !allNil(errs) {
			t.Errorf("add after the panic: %v", errs)
		}
		if err := h.end("tx", pid, epoch, true); err != nil {
			t.Errorf("commit after the panic: %v", err)
		}
	})
	h.waitState(t, "tx", "CompleteCommit")
	within(t, "listing after the panic", func() { h.c.List(ListFilter{MinDurationMs: -1}) })
}
