package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestOwnershipFollowsLeadership: a coordinator serves only the groups of
// partitions it leads; losing one drops its groups and answers parked
// JoinGroups with NOT_COORDINATOR; leading it again (at a new epoch)
// replays it from the log.
func TestOwnershipFollowsLeadership(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	c := startCoordinator(t, logs, clk)
	const group = "g3"
	p := partitionFor(group, 5)

	if errs := c.Commit(ctx, group, CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 7, LeaderEpoch: -1}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	// Member a joins and syncs; member b's join then waits for a.
	first := c.Join(ctx, group, joinArgs(""))
	a := c.Join(ctx, group, joinArgs(first.MemberID))
	if a.Err != nil {
		t.Fatal(a.Err)
	}
	if s := c.Sync(ctx, group, SyncArgs{MemberID: a.MemberID, Generation: a.Generation, Assignments: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: a.MemberID}}}); s.Err != nil {
		t.Fatal(s.Err)
	}
	pending := c.Join(ctx, group, joinArgs(""))
	parked := make(chan JoinResult, 1)
	go func() { parked <- c.Join(ctx, group, joinArgs(pending.MemberID)) }()
	deadline := time.Now().Add(5 * time.Second)
	for c.DescribeGroup(ctx, group).State != "PreparingRebalance" {
		if time.Now().After(deadline) {
			t.Fatal("the second member's join did not start a rebalance")
		}
		time.Sleep(time.Millisecond)
	}

	logs.setLeader(p, false, 1)
	if _, err := c.FetchOffsets(ctx, group, nil); err != kerr.NotCoordinator {
		t.Fatalf("offset fetch after losing the partition: %v, want NOT_COORDINATOR", err)
	}
	select {
	case r := <-parked:
		if r.Err != kerr.NotCoordinator {
			t.Fatalf("parked join: %v, want NOT_COORDINATOR", r.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the parked join was not answered when the partition was lost")
	}
	for _, l := range c.ListGroups(nil, nil) {
		if l.Group == group {
			t.Fatalf("ListGroups still lists %s after its partition was lost", group)
		}
	}

	// Led again at a new epoch: the group is read back from the log.
	logs.setLeader(p, true, 2)
	got, err := c.FetchOffsets(ctx, group, nil)
	if err != nil || len(got) != 1 || got[0].Offset != 7 {
		t.Fatalf("offsets after leading again: %+v %v", got, err)
	}
	if d := c.DescribeGroup(ctx, group); d.Err != nil || len(d.Members) == 0 {
		t.Fatalf("group after leading again: %+v", d)
	}
}
