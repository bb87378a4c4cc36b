package coordinator

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCompactionKeepsState compacts every partition of the offsets topic
// and checks that a coordinator loaded from what is left has the same
// groups, offsets and members, and that the log shrank to the live
// records.
func TestCompactionKeepsState(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	c := startCoordinator(t, logs, clk)
	// Many commits of the same two partitions: garbage for compaction.
	for i := range 200 {
		errs := c.Commit(ctx, "g1", CommitArgs{Generation: -1}, []CommitPartition{
			{Topic: "t", Partition: 0, Offset: int64(i), LeaderEpoch: -1},
			{Topic: "t", Partition: 1, Offset: int64(2 * i), LeaderEpoch: 3},
		})
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("commit %d: %v", i, errs)
		}
	}
	c.Commit(ctx, "g2", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "u", Partition: 0, Offset: 5, LeaderEpoch: -1}})
	if err := c.DeleteGroup(ctx, "g2"); err != nil {
		t.Fatalf("delete g2: %v", err)
	}
	first := c.Join(ctx, "g3", joinArgs(""))
	j := c.Join(ctx, "g3", joinArgs(first.MemberID))
	if j.Err != nil {
		t.Fatalf("join: %v", j.Err)
	}
	if s := c.Sync(ctx, "g3", SyncArgs{MemberID: j.MemberID, Generation: j.Generation, Assignments: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: j.MemberID, MemberAssignment: []byte("asg")}}}); s.Err != nil {
		t.Fatalf("sync: %v", s.Err)
	}

	before := 0
	for p := range int32(5) {
		before += logs.batchCount(p)
	}
	for p := range int32(5) {
		if _, err := c.CompactPartition(p); err != nil {
			t.Fatalf("compact partition %d: %v", p, err)
		}
	}
	after := 0
	for p := range int32(5) {
		after += logs.batchCount(p)
	}
	// One batch per live group: g1 (offsets), g3 (metadata). g2 is gone.
	if after != 2 {
		t.Fatalf("%d batches after compaction (%d before), want 2: one per live group", after, before)
	}
	// A commit after the compaction lands after the rewrite.
	c.Commit(ctx, "g1", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 1000, LeaderEpoch: -1}})

	c2 := startCoordinator(t, logs, clk)
	got, err := c2.FetchOffsets(ctx, "g1", nil)
	if err != nil || len(got) != 2 || got[0].Offset != 1000 || got[1].Offset != 398 || got[1].LeaderEpoch != 3 {
		t.Fatalf("g1 after compaction and reload: %+v %v", got, err)
	}
	if got, _ := c2.FetchOffsets(ctx, "g2", nil); len(got) != 0 {
		t.Fatalf("deleted group g2 has offsets after compaction and reload: %+v", got)
	}
	wantRestoredMember(t, c2, "g3", j, "compaction and reload")
}

// TestCompactionDue: a partition is compacted once it has rolled a
// segment and at most half of it is live.
func TestCompactionDue(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	c := startCoordinator(t, logs, clk)
	p := partitionFor("g1", 5)
	commit := func(n int) {
		for i := range n {
			c.Commit(ctx, "g1", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: int64(i), LeaderEpoch: -1}})
		}
	}
	commit(10)
	live := map[int32]int64{}
	c.compactDue(live)
	if n := logs.batchCount(p); n != 10 {
		t.Fatalf("compacted with a single segment: %d batches left of 10", n)
	}
	logs.Roll(p)
	commit(10)
	c.compactDue(live)
	// The compaction rolls the active segment too: one rewritten batch is
	// all that is left.
	if n := logs.batchCount(p); n != 1 {
		t.Fatalf("after a roll: %d batches, want the rewrite alone", n)
	}
	if live[p] == 0 {
		t.Fatal("live bytes not recorded")
	}
	// Rolled again, but all of it is live: not due.
	logs.Roll(p)
	c.compactDue(live)
	if n := logs.batchCount(p); n != 1 {
		t.Fatalf("compacted a partition that is all live: %d batches, want 1", n)
	}
	// Enough garbage again.
	commit(3)
	c.compactDue(live)
	if n := logs.batchCount(p); n != 1 {
		t.Fatalf("a partition with three quarters garbage: %d batches, want 1", n)
	}
	got, err := c.FetchOffsets(ctx, "g1", nil)
	if err != nil || len(got) != 1 || got[0].Offset != 2 {
		t.Fatalf("offsets after compactions: %+v %v", got, err)
	}
}
