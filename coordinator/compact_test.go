package coordinator

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

// compactMem does to a partition of memLogs what the log cleaner does to
// a compacted log, at its most thorough (every tombstone past
// delete.retention.ms): only the latest record of each key is left, and
// no tombstone. Control batches stay. Emptied batches stay as empty
// batches, so that offsets do not move. It returns the records before
// and after.
func compactMem(t *testing.T, logs *memLogs, p int32) (before, after int) {
	t.Helper()
	codecs := protocol.NewCodecs()
	logs.mu.Lock()
	defer logs.mu.Unlock()
	type at struct{ batch, rec int }
	last := map[string]at{}
	for i, b := range logs.batches[p] {
		if binary.BigEndian.Uint16(b[21:])&protocol.AttrControl != 0 {
			continue
		}
		recs, err := codecs.RecordsAt(b)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range recs {
			last[string(r.Record.Key)] = at{i, j}
			before++
		}
	}
	for i, b := range logs.batches[p] {
		if binary.BigEndian.Uint16(b[21:])&protocol.AttrControl != 0 {
			continue
		}
		j := -1
		out, kept, err := codecs.FilterBatch(b, func(r *protocol.RecordAt) bool {
			j++
			return last[string(r.Record.Key)] == at{i, j} && r.Record.Value != nil
		})
		if err != nil {
			t.Fatal(err)
		}
		logs.batches[p][i] = out
		after += kept
	}
	return before, after
}

// TestCompactionKeepsState compacts every partition of the offsets topic
// as the log cleaner does and checks that a coordinator loaded from what
// is left has the same groups, offsets and members.
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

	before, after := 0, 0
	for p := range int32(5) {
		b, a := compactMem(t, logs, p)
		before, after = before+b, after+a
	}
	// What is left: g1's two offsets and g3's metadata; g2 is gone.
	if after != 3 {
		t.Fatalf("%d records after compaction (%d before), want 3", after, before)
	}
	// A commit after the compaction follows what is left.
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
