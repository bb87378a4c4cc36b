package metadata

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func init() {
	conformanceTests = append(conformanceTests, struct {
		name string
		fn   func(t *testing.T, h harness)
	}{"Controller", testController})
}

// testController runs three brokers' controllers on one cluster: new
// partitions are placed with their replication factor, and when a broker
// goes (its store closes: registration and candidacy end) its partitions
// get new leaders from their ISR with the next epoch, and it leaves every
// ISR, whether or not it was the controller.
func testController(t *testing.T, h harness) {
	ctx := testCtx(t)
	stores := map[int32]Store{}
	ctrls := map[int32]*Controller{}
	for id := int32(1); id <= 3; id++ {
		s := h.open(t)
		if err := s.RegisterBroker(ctx, Broker{NodeID: id, Host: "127.0.0.1", Port: 9090 + id}); err != nil {
			t.Fatal(err)
		}
		stores[id] = s
		ctrls[id] = StartController(s, id, 50*time.Millisecond, zerolog.Nop())
		t.Cleanup(ctrls[id].Close)
	}
	watch := h.open(t)
	waitFor(t, "all three brokers to be seen", func() bool { return len(watch.Brokers()) == 3 })

	topic, err := watch.CreateTopic(ctx, Topic{Name: "orders", Partitions: 6, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	single, err := watch.CreateTopic(ctx, Topic{Name: "logs", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	placed := func(name string, n int) []PartitionState {
		var sts []PartitionState
		waitFor(t, fmt.Sprintf("the %d partitions of %s to be placed", n, name), func() bool {
			sts = watch.PartitionStates(name)
			return len(sts) == n
		})
		return sts
	}
	sts := placed("orders", 6)
	leaders := map[int32]int{}
	for _, st := range sts {
		if st.TopicID != topic.ID || len(st.Replicas) != 3 || st.Leader != st.Replicas[0] || st.LeaderEpoch != 0 || !slices.Equal(st.ISR, st.Replicas) {
			t.Fatalf("new partition state %+v: want 3 replicas, the first leading at epoch 0, all in sync", st)
		}
		leaders[st.Leader]++
	}
	if leaders[1] != 2 || leaders[2] != 2 || leaders[3] != 2 {
		t.Errorf("leaders of 6 partitions over 3 brokers: %v, want 2 each", leaders)
	}
	for _, st := range placed("logs", 3) {
		if st.TopicID != single.ID || len(st.Replicas) != 1 || len(st.ISR) != 1 {
			t.Fatalf("replication factor 1 partition: %+v", st)
		}
	}
	// Added partitions are placed too.
	if err := watch.SetPartitionCount(ctx, "orders", 8); err != nil {
		t.Fatal(err)
	}
	placed("orders", 8)

	// Broker 1 goes, and then the controller, whichever it is.
	gone := []int32{1}
	if c, ok := watch.Controller(); ok && c != 1 {
		gone = append(gone, c)
	} else {
		gone = append(gone, 2)
	}
	before := map[int32]PartitionState{}
	for _, st := range watch.PartitionStates("orders") {
		before[st.Partition] = st
	}
	for i, id := range gone {
		ctrls[id].Close()
		if err := stores[id].Close(); err != nil {
			t.Fatal(err)
		}
		dead := gone[:i+1]
		waitFor(t, fmt.Sprintf("partitions to move off brokers %v", dead), func() bool {
			for _, st := range watch.PartitionStates("orders") {
				for _, d := range dead {
					if st.Leader == d || slices.Contains(st.ISR, d) {
						return false
					}
				}
			}
			return true
		})
	}
	survivor := int32(6) - gone[0] - gone[1]
	for _, st := range watch.PartitionStates("orders") {
		old := before[st.Partition]
		if st.Leader != survivor || !slices.Equal(st.ISR, []int32{survivor}) {
			t.Errorf("partition %d after brokers %v went: leader %d isr %v, want %d alone", st.Partition, gone, st.Leader, st.ISR, survivor)
		}
		if old.Leader != survivor && st.LeaderEpoch <= old.LeaderEpoch {
			t.Errorf("partition %d changed leader from %d to %d without a new epoch (%d -> %d)", st.Partition, old.Leader, st.Leader, old.LeaderEpoch, st.LeaderEpoch)
		}
		if old.Leader == survivor && st.LeaderEpoch != old.LeaderEpoch {
			t.Errorf("partition %d kept leader %d but its epoch moved from %d to %d", st.Partition, st.Leader, old.LeaderEpoch, st.LeaderEpoch)
		}
	}
	// A replication factor 1 partition on a dead broker has no leader.
	for _, st := range watch.PartitionStates("logs") {
		if slices.Contains(gone, st.Replicas[0]) && st.Leader != NoLeader {
			t.Errorf("logs-%d lives only on dead broker %d but has leader %d", st.Partition, st.Replicas[0], st.Leader)
		}
	}
	if c, ok := watch.Controller(); !ok || c != survivor {
		t.Errorf("controller %d %v, want the survivor %d", c, ok, survivor)
	}
}

// TestControllerFinishesAPartialPlacement: a controller that died while
// placing a topic's partitions left some unplaced, and fewer brokers than
// the replication factor are live now: the rest are placed on the live
// brokers rather than left unavailable. A topic none of whose partitions
// is placed still waits for enough brokers.
func TestControllerFinishesAPartialPlacement(t *testing.T) {
	ctx := testCtx(t)
	s := NewMemoryStore("test-cluster")
	defer s.Close()
	peer := s.Peer() // the second live broker
	defer peer.Close()
	for id, st := range map[int32]*MemoryStore{1: s, 2: peer} {
		if err := st.RegisterBroker(ctx, Broker{NodeID: id, Host: "127.0.0.1", Port: 9090 + id}); err != nil {
			t.Fatal(err)
		}
	}
	partial, err := s.CreateTopic(ctx, Topic{Name: "partial", Partitions: 2, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := s.CreateTopic(ctx, Topic{Name: "fresh", Partitions: 1, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Partition 0 was placed, with broker 3 (now dead), by the old controller.
	if _, err := s.SetPartitionState(ctx, PartitionState{Topic: "partial", TopicID: partial.ID, Partition: 0, Replicas: []int32{1, 2, 3}, Leader: 1, ISR: []int32{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	c := StartController(s, 1, 20*time.Millisecond, zerolog.Nop())
	defer c.Close()
	waitFor(t, "partition 1 of partial placed on the two live brokers", func() bool {
		st, ok := s.Partition("partial", 1)
		return ok && len(st.Replicas) == 2 && slices.Contains(st.Replicas, 1) && slices.Contains(st.Replicas, 2)
	})
	// Nothing happens: three more passes, each after the placement above,
	// leave fresh unplaced.
	after := c.Passes()
	waitFor(t, "three more controller passes", func() bool { return c.Passes() >= after+3 })
	if st, ok := s.Partition("fresh", 0); ok {
		t.Fatalf("a topic with no partition placed was placed with too few brokers: %+v (topic %v)", st, fresh.ID)
	}
}
