package coordinator

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

// memLogs is an in-memory OffsetsTopic. Its offsets count batches: the
// batch batches[p][i] is at offset start[p]+i, and rolls[p] holds the base
// offsets of the segments after the first.
type memLogs struct {
	mu         sync.Mutex
	partitions int32
	batches    map[int32][][]byte
	// lost marks partitions this broker does not lead; epoch is every
	// partition's leader epoch.
	lost  map[int32]bool
	epoch int32
	// fail, when set, is what Append returns.
	fail error
	// panics is how many of the next Appends panic (a bug inside a
	// group or transaction operation, under its lock).
	panics int
}

// setFail makes every Append fail with err (nil: succeed again).
func (m *memLogs) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

// setLeader makes this broker lead partition p, or not, at epoch.
func (m *memLogs) setLeader(p int32, leader bool, epoch int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lost == nil {
		m.lost = map[int32]bool{}
	}
	m.lost[p] = !leader
	m.epoch = epoch
}

// Leadership implements Logs: this broker leads every partition but the
// lost ones.
func (m *memLogs) Leadership(p int32) (bool, int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.lost[p], m.epoch
}

// batchCount is the number of batches in the log of p.
func (m *memLogs) batchCount(p int32) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.batches[p])
}

func (m *memLogs) EnsureOffsetsTopic(_ context.Context, n int32) (int32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.partitions == 0 {
		m.partitions = n
	}
	return m.partitions, nil
}

func (m *memLogs) OffsetsPartitions() int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.partitions
}

func (m *memLogs) Append(p int32, batch []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.panics > 0 {
		m.panics--
		panic("memLogs: injected panic in Append")
	}
	m.batches[p] = append(m.batches[p], append([]byte(nil), batch...))
	return nil
}

func (m *memLogs) Scan(p int32, fn func([]byte) error) error {
	m.mu.Lock()
	bs := append([][]byte(nil), m.batches[p]...)
	m.mu.Unlock()
	for _, b := range bs {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func startCoordinator(t *testing.T, logs *memLogs, clk *clock) *Coordinator {
	t.Helper()
	cfg := DefaultConfig()
	cfg.OffsetsTopicPartitions = 5
	cfg.RetentionCheckInterval = 0 // expiry is called by hand
	cfg.InitialRebalanceDelay = 0  // joins complete at once; the fake clock does not move by itself
	c := New(cfg, logs, fakeTopics{}, protocol.NewCodecs(), zerolog.Nop(), clk.Now)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestCommitsSurviveReload(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	c := startCoordinator(t, logs, clk)
	meta := "m"
	errs := c.Commit(ctx, "g1", CommitArgs{Generation: -1}, []CommitPartition{
		{Topic: "t", Partition: 0, Offset: 10, LeaderEpoch: -1, Metadata: &meta},
		{Topic: "t", Partition: 1, Offset: 20, LeaderEpoch: 2},
	})
	for _, e := range errs {
		if e != nil {
			t.Fatalf("commit: %v", e)
		}
	}
	c.Commit(ctx, "g1", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 11, LeaderEpoch: -1}})
	c.Commit(ctx, "g2", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "u", Partition: 0, Offset: 5, LeaderEpoch: -1}})
	if err := c.DeleteGroup(ctx, "g2"); err != nil {
		t.Fatalf("delete g2: %v", err)
	}
	// A classic group with a member and an assignment is stored too.
	first := c.Join(ctx, "g3", joinArgs(""))
	j := c.Join(ctx, "g3", joinArgs(first.MemberID))
	if j.Err != nil {
		t.Fatalf("join: %v", j.Err)
	}
	s := c.Sync(ctx, "g3", SyncArgs{MemberID: j.MemberID, Generation: j.Generation, Assignments: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: j.MemberID, MemberAssignment: []byte("asg")}}})
	if s.Err != nil {
		t.Fatalf("sync: %v", s.Err)
	}

	// A new coordinator over the same log (a broker restart).
	c2 := startCoordinator(t, logs, clk)
	got, err := c2.FetchOffsets(ctx, "g1", nil)
	if err != nil || len(got) != 2 || got[0].Offset != 11 || got[0].Metadata != "" || got[1].Offset != 20 || got[1].LeaderEpoch != 2 {
		t.Fatalf("g1 after reload: %+v %v", got, err)
	}
	if got, _ := c2.FetchOffsets(ctx, "g2", nil); len(got) != 0 {
		t.Fatalf("deleted group g2 has offsets after reload: %+v", got)
	}
	wantRestoredMember(t, c2, "g3", j, "reload")
	listed := c2.ListGroups(nil, nil)
	if len(listed) != 2 || listed[0].Group != "g1" || listed[1].Group != "g3" {
		t.Fatalf("groups after reload: %+v", listed)
	}
}

// wantRestoredMember checks that a coordinator loaded from the log has
// the classic group with the one member j, Stable with its assignment
// "asg", and that the member carries on with its generation.
func wantRestoredMember(t *testing.T, c *Coordinator, group string, j JoinResult, after string) {
	t.Helper()
	d := c.DescribeGroup(context.Background(), group)
	if d.Err != nil || d.State != "Stable" || len(d.Members) != 1 || string(d.Members[0].Assignment) != "asg" {
		t.Fatalf("%s after %s: %+v", group, after, d)
	}
	if err := c.Heartbeat(context.Background(), group, j.MemberID, nil, j.Generation); err != nil {
		t.Fatalf("heartbeat in %s after %s: %v", group, after, err)
	}
}

func TestOffsetsExpireAfterRetention(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	c := startCoordinator(t, logs, clk)
	c.Commit(ctx, "old", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1}})
	clk.Add(c.cfg.OffsetsRetention - time.Minute)
	c.Commit(ctx, "new", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1}})
	clk.Add(2 * time.Minute)
	c.ExpireOffsets()
	if got, _ := c.FetchOffsets(ctx, "old", nil); len(got) != 0 {
		t.Fatalf("old offsets kept past retention: %+v", got)
	}
	if got, _ := c.FetchOffsets(ctx, "new", nil); len(got) != 1 {
		t.Fatalf("new offsets expired early: %+v", got)
	}
	// And the expiry is durable.
	c2 := startCoordinator(t, logs, clk)
	if got, _ := c2.FetchOffsets(ctx, "old", nil); len(got) != 0 {
		t.Fatalf("expired offsets back after reload: %+v", got)
	}
}

func TestDeleteOffsetsAndNonEmptyGroup(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	c := startCoordinator(t, logs, clk)
	first := c.Join(ctx, "g", joinArgs(""))
	j := c.Join(ctx, "g", joinArgs(first.MemberID))
	if err := c.DeleteGroup(ctx, "g"); err != kerr.NonEmptyGroup {
		t.Fatalf("delete with members: %v", err)
	}
	if err := c.DeleteGroup(ctx, "nope"); err != kerr.GroupIDNotFound {
		t.Fatalf("delete unknown: %v", err)
	}
	if errs := c.Commit(ctx, "g", CommitArgs{MemberID: j.MemberID, Generation: j.Generation}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 3}}); errs[0] != kerr.RebalanceInProgress {
		t.Fatalf("commit before sync: %v", errs[0])
	}
	c.Sync(ctx, "g", SyncArgs{MemberID: j.MemberID, Generation: j.Generation})
	if errs := c.Commit(ctx, "g", CommitArgs{MemberID: j.MemberID, Generation: j.Generation}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 3}, {Topic: "other", Partition: 0, Offset: 4}}); errs[0] != nil || errs[1] != nil {
		t.Fatalf("member commit: %v", errs)
	}
	// The joinArgs metadata is not a ConsumerMemberMetadata, so no topic
	// counts as subscribed; both deletions succeed.
	perr, gerr := c.DeleteOffsets(ctx, "g", []FetchTopic{{Topic: "other", Partitions: []int32{0}}})
	if gerr != nil || perr[0] != nil {
		t.Fatalf("offset delete: %v %v", gerr, perr)
	}
	if got, _ := c.FetchOffsets(ctx, "g", nil); len(got) != 1 || got[0].Topic != "t" {
		t.Fatalf("after OffsetDelete: %+v", got)
	}
}

// TestCommittedListsGroupOffsets: Committed returns every committed
// offset of the groups in memory, nothing of a deleted group, and stops at
// its limit saying so.
func TestCommittedListsGroupOffsets(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	c := startCoordinator(t, logs, &clock{now: t0})
	c.Commit(ctx, "g1", CommitArgs{Generation: -1}, []CommitPartition{
		{Topic: "t", Partition: 0, Offset: 10, LeaderEpoch: -1},
		{Topic: "t", Partition: 1, Offset: 20, LeaderEpoch: -1},
	})
	c.Commit(ctx, "g1", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 11, LeaderEpoch: -1}})
	c.Commit(ctx, "g2", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "u", Partition: 3, Offset: 5, LeaderEpoch: -1}})
	c.Commit(ctx, "gone", CommitArgs{Generation: -1}, []CommitPartition{{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1}})
	if err := c.DeleteGroup(ctx, "gone"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	// In (group, topic, partition) order, so a limit always leaves out the
	// same ones.
	got, truncated := c.Committed(100)
	want := []CommittedOffset{{"g1", "t", 0, 11}, {"g1", "t", 1, 20}, {"g2", "u", 3, 5}}
	if truncated || !slices.Equal(got, want) {
		t.Fatalf("Committed(100) = %v, %v; want %v, false", got, truncated, want)
	}
	for range 20 {
		if got, truncated := c.Committed(2); !truncated || !slices.Equal(got, want[:2]) {
			t.Fatalf("Committed(2) = %v, %v; want %v, truncated", got, truncated, want[:2])
		}
	}
}
