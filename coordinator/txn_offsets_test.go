package coordinator

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/protocol"
)

// fetchOne returns the committed offset of t/p in group g (require
// stable), failing on a group error.
func fetchOne(t *testing.T, c *Coordinator, g string, partition int32) FetchedOffset {
	t.Helper()
	got, err := c.FetchOffsetsStable(context.Background(), g, []FetchTopic{{Topic: "t", Partitions: []int32{partition}}}, true)
	if err != nil || len(got) != 1 {
		t.Fatalf("fetch %s: %v %v", g, got, err)
	}
	return got[0]
}

// appendMarker writes a transaction marker for pid to partition p of the
// in-memory offsets topic, as WriteTxnMarkers would, and tells c.
func appendMarker(t *testing.T, logs *memLogs, c *Coordinator, p int32, pid int64, commit bool) {
	t.Helper()
	if err := logs.Append(p, protocol.NewControlBatch(pid, 0, commit, 0, t0.UnixMilli())); err != nil {
		t.Fatal(err)
	}
	c.CompleteTxn(p, pid, commit)
}

func TestTxnOffsetsPendingUntilMarker(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	c := startCoordinator(t, logs, clk)
	if errs := c.Commit(ctx, "g", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 5, LeaderEpoch: -1}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	commit := func(pid int64, offset int64) {
		t.Helper()
		errs := c.TxnCommit(ctx, "g", TxnCommitArgs{ProducerID: pid, ProducerEpoch: 0, Generation: -1},
			[]CommitPartition{{Topic: "t", Partition: 0, Offset: offset, LeaderEpoch: -1}})
		if errs[0] != nil {
			t.Fatalf("txn commit: %v", errs[0])
		}
	}
	p := partitionFor("g", 5)

	// Aborted: the old offset stays.
	commit(100, 10)
	if f := fetchOne(t, c, "g", 0); !f.Unstable {
		t.Fatalf("pending offset not unstable: %+v", f)
	}
	if got, _ := c.FetchOffsets(ctx, "g", []FetchTopic{{Topic: "t", Partitions: []int32{0}}}); got[0].Offset != 5 {
		t.Fatalf("without require_stable: %+v, want the committed 5", got[0])
	}
	appendMarker(t, logs, c, p, 100, false)
	if f := fetchOne(t, c, "g", 0); f.Unstable || f.Offset != 5 {
		t.Fatalf("after abort: %+v, want 5", f)
	}

	// Committed: the transaction's offset wins.
	commit(101, 20)
	appendMarker(t, logs, c, p, 101, true)
	if f := fetchOne(t, c, "g", 0); f.Unstable || f.Offset != 20 {
		t.Fatalf("after commit: %+v, want 20", f)
	}

	// Still open when the coordinator restarts: pending after replay.
	commit(102, 30)
	c.Close()
	c2 := startCoordinator(t, logs, clk)
	if f := fetchOne(t, c2, "g", 0); !f.Unstable {
		t.Fatalf("replayed pending offset not unstable: %+v", f)
	}
	appendMarker(t, logs, c2, p, 102, true)
	if f := fetchOne(t, c2, "g", 0); f.Unstable || f.Offset != 30 {
		t.Fatalf("after commit of the replayed transaction: %+v, want 30", f)
	}
	c2.Close()

	// Every marker replays: the result is the same from the log alone.
	c3 := startCoordinator(t, logs, clk)
	if f := fetchOne(t, c3, "g", 0); f.Unstable || f.Offset != 30 {
		t.Fatalf("after a full replay: %+v, want 30", f)
	}
	if c3.hasPendingTxn(p) {
		t.Fatalf("partition %d still has pending transactions after replay", p)
	}
}

// TestCommitsOfAReplacedStaticMemberAreFenced: once a static member's
// instance id is taken over by a new member id, OffsetCommit and
// TxnOffsetCommit with the old member id and the instance id are
// FENCED_INSTANCE_ID and store nothing.
func TestCommitsOfAReplacedStaticMemberAreFenced(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	c := startCoordinator(t, logs, &clock{now: t0})
	inst := "static-1"
	a := joinArgs("")
	a.InstanceID = &inst
	old := c.Join(ctx, "g", a)
	if old.Err != nil {
		t.Fatalf("join: %v", old.Err)
	}
	if s := c.Sync(ctx, "g", SyncArgs{MemberID: old.MemberID, InstanceID: &inst, Generation: old.Generation}); s.Err != nil {
		t.Fatalf("sync: %v", s.Err)
	}
	a.SupportsSkipAssignment = true
	newer := c.Join(ctx, "g", a)
	if newer.Err != nil || newer.MemberID == old.MemberID {
		t.Fatalf("static rejoin: %+v", newer)
	}
	part := []CommitPartition{{Topic: "t", Partition: 0, Offset: 9, LeaderEpoch: -1}}
	if errs := c.Commit(ctx, "g", CommitArgs{Version: 8, MemberID: old.MemberID, InstanceID: &inst, Generation: old.Generation}, part); errs[0] != kerr.FencedInstanceID {
		t.Errorf("OffsetCommit of the replaced member id: %v, want FENCED_INSTANCE_ID", errs[0])
	}
	if errs := c.TxnCommit(ctx, "g", TxnCommitArgs{ProducerID: 7, MemberID: old.MemberID, InstanceID: &inst, Generation: old.Generation}, part); errs[0] != kerr.FencedInstanceID {
		t.Errorf("TxnOffsetCommit of the replaced member id: %v, want FENCED_INSTANCE_ID", errs[0])
	}
	if err := c.Heartbeat(ctx, "g", old.MemberID, &inst, old.Generation); err != kerr.FencedInstanceID {
		t.Errorf("Heartbeat of the replaced member id: %v, want FENCED_INSTANCE_ID", err)
	}
	if f := fetchOne(t, c, "g", 0); f.Offset != -1 || f.Unstable {
		t.Errorf("fenced commits stored %+v", f)
	}
	if errs := c.Commit(ctx, "g", CommitArgs{Version: 8, MemberID: newer.MemberID, InstanceID: &inst, Generation: newer.Generation}, part); errs[0] != nil {
		t.Errorf("OffsetCommit of the new member id: %v", errs[0])
	}
}
