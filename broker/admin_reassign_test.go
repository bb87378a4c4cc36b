package broker

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

// newReassignBroker is broker 1 over a store of its own, with brokers 2
// and 3 registered too, and topic placed with the given partition count.
func newReassignBroker(t *testing.T, store metadata.Store, topic string, partitions int32) (*Broker, *conn) {
	t.Helper()
	b, err := New(Config{NodeID: 1, AdvertisedHost: "localhost", AdvertisedPort: 9092, DataDir: t.TempDir(), Logger: zerolog.Nop()}, store)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	for id := int32(2); id <= 3; id++ {
		peer := memoryOf(b).Peer()
		t.Cleanup(func() { peer.Close() })
		if err := peer.RegisterBroker(context.Background(), metadata.Broker{NodeID: id, Host: "other", Port: 9090 + id}); err != nil {
			t.Fatal(err)
		}
	}
	reassignWait(t, b, "three live brokers", func() bool { return len(b.store.Brokers()) == 3 })
	createPlaced(t, b, metadata.Topic{Name: topic, Partitions: partitions})
	return b, newTestConn(b)
}

// memoryOf is the MemoryStore behind a broker's store.
func memoryOf(b *Broker) *metadata.MemoryStore {
	switch s := b.store.(type) {
	case *metadata.MemoryStore:
		return s
	case *racingStore:
		return s.Store.(*metadata.MemoryStore)
	case *laggingStore:
		return s.Store.(*metadata.MemoryStore)
	case *failingSyncStore:
		return s.Store.(*metadata.MemoryStore)
	}
	panic(fmt.Sprintf("store %T", b.store))
}

// reassignWait polls cond until it holds, failing the test after 10s.
func reassignWait(t *testing.T, b *Broker, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setState overwrites a partition's state (compare-and-swap from the
// current one), as a controller or a leader might have left it. The states
// the tests set are ones the controller leaves alone: every ISR member
// that is not live is the last one standing.
func setState(t *testing.T, b *Broker, topic string, p int32, replicas []int32, leader int32, isr, adding, removing []int32) metadata.PartitionState {
	t.Helper()
	st, ok := b.store.Partition(topic, p)
	if !ok {
		t.Fatalf("%s-%d has no state", topic, p)
	}
	st.Replicas, st.Leader, st.ISR, st.AddingReplicas, st.RemovingReplicas = replicas, leader, isr, adding, removing
	v, err := memoryOf(b).SetPartitionState(context.Background(), st)
	if err != nil {
		t.Fatalf("set %s-%d: %v", topic, p, err)
	}
	st.Version = v
	return st
}

func mustState(t *testing.T, b *Broker, topic string, p int32) metadata.PartitionState {
	t.Helper()
	st, ok := b.store.Partition(topic, p)
	if !ok {
		t.Fatalf("%s-%d has no state", topic, p)
	}
	return st
}

func electReq(version int16, how int8, topics map[string][]int32, order ...string) *kmsg.ElectLeadersRequest {
	req := kmsg.NewPtrElectLeadersRequest()
	req.SetVersion(version)
	req.ElectionType = how
	if topics != nil {
		req.Topics = []kmsg.ElectLeadersRequestTopic{}
	}
	for _, name := range order {
		rt := kmsg.NewElectLeadersRequestTopic()
		rt.Topic, rt.Partitions = name, topics[name]
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// electResults runs ElectLeaders and returns the answers by "topic-p".
func electResults(t *testing.T, b *Broker, c *conn, req *kmsg.ElectLeadersRequest) (*kmsg.ElectLeadersResponse, map[string]kmsg.ElectLeadersResponseTopicPartition) {
	t.Helper()
	resp, err := b.handleElectLeaders(c, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.ElectLeadersResponse)
	out := map[string]kmsg.ElectLeadersResponseTopicPartition{}
	for _, rt := range r.Topics {
		for _, rp := range rt.Partitions {
			key := fmt.Sprintf("%s-%d", rt.Topic, rp.Partition)
			if _, dup := out[key]; dup {
				t.Fatalf("ElectLeaders answered %s twice", key)
			}
			out[key] = rp
		}
	}
	return r, out
}

func TestElectLeadersPreferred(t *testing.T) {
	for _, version := range []int16{0, 1, 2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			b, c := newReassignBroker(t, metadata.NewMemoryStore("test-cluster"), "e", 4)
			moved := setState(t, b, "e", 0, []int32{2, 1}, 1, []int32{1, 2}, nil, nil) // preferred 2 is in sync
			setState(t, b, "e", 1, []int32{1, 2}, 1, []int32{1, 2}, nil, nil)          // led by its preferred replica
			setState(t, b, "e", 2, []int32{4, 1}, 1, []int32{1}, nil, nil)             // preferred 4 is not registered
			setState(t, b, "e", 3, []int32{2, 1}, 1, []int32{1}, nil, nil)             // preferred 2 is out of sync

			// v0 has no election type: whatever is set, it is preferred.
			how := electPreferred
			if version == 0 {
				how = electUnclean
			}
			resp, got := electResults(t, b, c, electReq(version, how,
				map[string][]int32{"e": {0, 1, 2, 3, 9, 1}, "nope": {0}}, "e", "nope"))
			if resp.ErrorCode != 0 {
				t.Fatalf("top-level error %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			if len(got) != 6 {
				t.Fatalf("answers %v, want 6 (partition 1 named twice is answered once)", got)
			}
			for key, want := range map[string]*kerr.Error{
				"e-0": nil, "e-1": kerr.ElectionNotNeeded, "e-2": kerr.PreferredLeaderNotAvailable,
				"e-3": kerr.PreferredLeaderNotAvailable, "e-9": kerr.UnknownTopicOrPartition, "nope-0": kerr.UnknownTopicOrPartition,
			} {
				adminWantCode(t, key, got[key].ErrorCode, got[key].ErrorMessage, want, "")
			}
			if st := mustState(t, b, "e", 0); st.Leader != 2 || st.LeaderEpoch != moved.LeaderEpoch+1 || !slices.Equal(st.ISR, []int32{1, 2}) {
				t.Errorf("after the election e-0 is %+v, want leader 2 at epoch %d", st, moved.LeaderEpoch+1)
			}
			if st := mustState(t, b, "e", 2); st.Leader != 1 {
				t.Errorf("e-2 changed leader to %d", st.Leader)
			}

			// Null topics: every partition; those needing no election are
			// left out (e-0 now, e-1, and __consumer_offsets).
			_, got = electResults(t, b, c, electReq(version, electPreferred, nil))
			if len(got) != 2 {
				t.Fatalf("null topics answered %v, want only e-2 and e-3", got)
			}
			adminWantCode(t, "null topics e-2", got["e-2"].ErrorCode, got["e-2"].ErrorMessage, kerr.PreferredLeaderNotAvailable, "not live")
			adminWantCode(t, "null topics e-3", got["e-3"].ErrorCode, got["e-3"].ErrorMessage, kerr.PreferredLeaderNotAvailable, "not in the isr")
		})
	}
}

func TestElectLeadersUnclean(t *testing.T) {
	b, c := newReassignBroker(t, metadata.NewMemoryStore("test-cluster"), "u", 3)
	setState(t, b, "u", 0, []int32{3, 1}, 1, []int32{1}, nil, nil)
	// No leader; the last in-sync replica, 4, is gone.
	lost := setState(t, b, "u", 1, []int32{4, 2}, metadata.NoLeader, []int32{4}, nil, nil)
	setState(t, b, "u", 2, []int32{4, 5}, metadata.NoLeader, []int32{4}, nil, nil)

	resp, got := electResults(t, b, c, electReq(1, electUnclean, map[string][]int32{"u": {0, 1, 2, 3}}, "u"))
	if resp.ErrorCode != 0 {
		t.Fatalf("top-level error %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	adminWantCode(t, "live leader", got["u-0"].ErrorCode, got["u-0"].ErrorMessage, kerr.ElectionNotNeeded, "")
	adminWantCode(t, "out-of-sync replica", got["u-1"].ErrorCode, got["u-1"].ErrorMessage, nil, "")
	adminWantCode(t, "nothing live", got["u-2"].ErrorCode, got["u-2"].ErrorMessage, kerr.EligibleLeadersNotAvailable, "")
	adminWantCode(t, "beyond the count", got["u-3"].ErrorCode, got["u-3"].ErrorMessage, kerr.UnknownTopicOrPartition, "")
	if st := mustState(t, b, "u", 1); st.Leader != 2 || !slices.Equal(st.ISR, []int32{2}) || st.LeaderEpoch != lost.LeaderEpoch+1 {
		t.Errorf("after unclean election u-1 is %+v, want leader 2, isr [2], epoch %d", st, lost.LeaderEpoch+1)
	}

	// An election type Kafka does not know.
	for _, version := range []int16{1, 2} {
		resp, got = electResults(t, b, c, electReq(version, 2, map[string][]int32{"u": {0}}, "u"))
		if resp.ErrorCode != kerr.InvalidRequest.Code || got["u-0"].ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("v%d election type 2: top-level %v, partition %v; want INVALID_REQUEST", version,
				kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(got["u-0"].ErrorCode))
		}
	}
}

// racingStore makes the first SetPartitionState calls for one partition
// lose a race: before passing each on, another writer moves the state's
// leader epoch on (conflicts of them), or it fails with ErrConflict
// without writing (always).
type racingStore struct {
	metadata.Store
	topic     string
	conflicts atomic.Int32 // how many writes lose, while always is false
	always    atomic.Bool
	calls     atomic.Int32
}

func (s *racingStore) SetPartitionState(ctx context.Context, st metadata.PartitionState) (int64, error) {
	if st.Topic != s.topic {
		return s.Store.SetPartitionState(ctx, st)
	}
	n := s.calls.Add(1)
	if s.always.Load() {
		return 0, fmt.Errorf("%w: injected", metadata.ErrConflict)
	}
	if n <= s.conflicts.Load() {
		cur, _ := s.Store.Partition(st.Topic, st.Partition)
		cur.LeaderEpoch++
		if _, err := s.Store.SetPartitionState(ctx, cur); err != nil {
			return 0, fmt.Errorf("interfering write: %w", err)
		}
	}
	return s.Store.SetPartitionState(ctx, st)
}

func TestElectLeadersRetriesLostRaces(t *testing.T) {
	store := &racingStore{Store: metadata.NewMemoryStore("test-cluster"), topic: "race"}
	b, c := newReassignBroker(t, store, "race", 1)
	base := setState(t, b, "race", 0, []int32{2, 1}, 1, []int32{1, 2}, nil, nil)

	store.calls.Store(0) // the controller placed the partition through this store
	store.conflicts.Store(2)
	_, got := electResults(t, b, c, electReq(2, electPreferred, map[string][]int32{"race": {0}}, "race"))
	adminWantCode(t, "after two lost races", got["race-0"].ErrorCode, got["race-0"].ErrorMessage, nil, "")
	st := mustState(t, b, "race", 0)
	// Two interfering writes moved the epoch by 2, the election by 1 more:
	// the handler decided on the state it read again, not on its first.
	if st.Leader != 2 || st.LeaderEpoch != base.LeaderEpoch+3 {
		t.Errorf("after retries race-0 is %+v, want leader 2 at epoch %d", st, base.LeaderEpoch+3)
	}
	if n := store.calls.Load(); n != 3 {
		t.Errorf("%d writes, want 3 (two lost, one won)", n)
	}

	// Always losing: a bounded number of attempts, then REQUEST_TIMED_OUT.
	store.calls.Store(0)
	store.always.Store(true)
	_, got = electResults(t, b, c, electReq(2, electPreferred, map[string][]int32{"race": {0}}, "race"))
	adminWantCode(t, "losing every race", got["race-0"].ErrorCode, got["race-0"].ErrorMessage, kerr.ElectionNotNeeded, "")
	setState(t, b, "race", 0, []int32{1, 2}, 2, []int32{1, 2}, nil, nil)
	store.calls.Store(0)
	_, got = electResults(t, b, c, electReq(2, electPreferred, map[string][]int32{"race": {0}}, "race"))
	adminWantCode(t, "losing every race", got["race-0"].ErrorCode, got["race-0"].ErrorMessage, kerr.RequestTimedOut, "attempts")
	if n := store.calls.Load(); n != partitionChangeAttempts {
		t.Errorf("%d attempts, want %d", n, partitionChangeAttempts)
	}
}

func reassignReq(version int16, allowRF bool, topic string, parts map[int32][]int32, order ...int32) *kmsg.AlterPartitionAssignmentsRequest {
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.SetVersion(version)
	req.AllowReplicationFactorChange = allowRF
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	for _, p := range order {
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = p, parts[p]
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// reassign runs AlterPartitionReassignments for one partition and returns
// its code and message.
func reassign(t *testing.T, b *Broker, c *conn, version int16, allowRF bool, topic string, p int32, replicas []int32) (int16, *string) {
	t.Helper()
	resp, err := b.handleAlterPartitionReassignments(c, reassignReq(version, allowRF, topic, map[int32][]int32{p: replicas}, p))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.AlterPartitionAssignmentsResponse)
	if r.ErrorCode != 0 || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 || r.Topics[0].Topic != topic || r.Topics[0].Partitions[0].Partition != p {
		t.Fatalf("AlterPartitionReassignments response %+v", r)
	}
	if version >= 1 && r.AllowReplicationFactorChange != allowRF {
		t.Errorf("response AllowReplicationFactorChange %v, request %v", r.AllowReplicationFactorChange, allowRF)
	}
	rp := r.Topics[0].Partitions[0]
	return rp.ErrorCode, rp.ErrorMessage
}

// listReassignments runs ListPartitionReassignments and renders the
// answer as "topic-p replicas adding removing" lines.
func listReassignments(t *testing.T, b *Broker, c *conn, topics map[string][]int32, order ...string) []string {
	t.Helper()
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	if topics != nil {
		req.Topics = []kmsg.ListPartitionReassignmentsRequestTopic{}
	}
	for _, name := range order {
		rt := kmsg.NewListPartitionReassignmentsRequestTopic()
		rt.Topic, rt.Partitions = name, topics[name]
		req.Topics = append(req.Topics, rt)
	}
	resp, err := b.handleListPartitionReassignments(c, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.ListPartitionReassignmentsResponse)
	if r.ErrorCode != 0 {
		t.Fatalf("ListPartitionReassignments: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	var out []string
	for _, rt := range r.Topics {
		for _, rp := range rt.Partitions {
			out = append(out, fmt.Sprintf("%s-%d %v %v %v", rt.Topic, rp.Partition, rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas))
		}
	}
	return out
}

func TestAlterPartitionReassignments(t *testing.T) {
	b, c := newReassignBroker(t, metadata.NewMemoryStore("test-cluster"), "r", 2)
	setState(t, b, "r", 0, []int32{1}, 1, []int32{1}, nil, nil)
	setState(t, b, "r", 1, []int32{2}, 2, []int32{2}, nil, nil)

	code, msg := reassign(t, b, c, 0, true, "r", 0, []int32{2, 3})
	adminWantCode(t, "move r-0 to [2 3]", code, msg, nil, "")
	st := mustState(t, b, "r", 0)
	if !slices.Equal(st.Replicas, []int32{2, 3, 1}) || !slices.Equal(st.AddingReplicas, []int32{2, 3}) || !slices.Equal(st.RemovingReplicas, []int32{1}) ||
		st.Leader != 1 || !slices.Equal(st.ISR, []int32{1}) {
		t.Fatalf("r-0 being moved: %+v", st)
	}
	// Replicas 2 and 3 never join the ISR here (nothing replicates in this
	// test), so the controller leaves it in progress.
	want := []string{"r-0 [2 3 1] [2 3] [1]"}
	if got := listReassignments(t, b, c, nil); !slices.Equal(got, want) {
		t.Errorf("list all: %v, want %v", got, want)
	}
	if got := listReassignments(t, b, c, map[string][]int32{"r": {1, 0, 0, 7}, "nope": {0}}, "nope", "r"); !slices.Equal(got, want) {
		t.Errorf("list r and an unknown topic: %v, want %v", got, want)
	}
	if got := listReassignments(t, b, c, map[string][]int32{"r": {1}}, "r"); len(got) != 0 {
		t.Errorf("list r-1 (not moving): %v", got)
	}

	for _, tc := range []struct {
		name      string
		version   int16
		allowRF   bool
		topic     string
		partition int32
		replicas  []int32
		want      *kerr.Error
		msg       string
	}{
		{"empty target", 0, true, "r", 1, []int32{}, kerr.InvalidReplicaAssignment, "empty"},
		{"repeated broker", 0, true, "r", 1, []int32{3, 3}, kerr.InvalidReplicaAssignment, "more than once"},
		{"unregistered broker", 0, true, "r", 1, []int32{2, 9}, kerr.InvalidReplicaAssignment, "not registered"},
		{"unknown topic", 0, true, "nope", 0, []int32{1}, kerr.UnknownTopicOrPartition, ""},
		{"unknown partition", 0, true, "r", 7, []int32{1}, kerr.UnknownTopicOrPartition, ""},
		{"negative partition", 0, true, "r", -1, []int32{1}, kerr.UnknownTopicOrPartition, ""},
		{"cancel with none in progress", 0, true, "r", 1, nil, kerr.NoReassignmentInProgress, ""},
		{"rf change forbidden", 1, false, "r", 1, []int32{2, 3}, kerr.InvalidReplicationFactor, "from 1 to 2"},
		// Against the original replicas [1], not the [2 3 1] of the move.
		{"rf kept while moving", 1, false, "r", 0, []int32{3}, nil, ""},
	} {
		code, msg := reassign(t, b, c, tc.version, tc.allowRF, tc.topic, tc.partition, tc.replicas)
		adminWantCode(t, tc.name, code, msg, tc.want, tc.msg)
	}
	if st := mustState(t, b, "r", 1); st.Reassigning() || !slices.Equal(st.Replicas, []int32{2}) {
		t.Errorf("refused reassignments changed r-1: %+v", st)
	}
	// The second reassignment replaced the first, from the original [1].
	want = []string{"r-0 [3 1] [3] [1]"}
	if got := listReassignments(t, b, c, nil); !slices.Equal(got, want) {
		t.Errorf("after replacing the move: %v, want %v", got, want)
	}

	// Cancelling goes back to the original replicas, once.
	code, msg = reassign(t, b, c, 1, true, "r", 0, nil)
	adminWantCode(t, "cancel", code, msg, nil, "")
	if st := mustState(t, b, "r", 0); st.Reassigning() || !slices.Equal(st.Replicas, []int32{1}) || st.Leader != 1 || !slices.Equal(st.ISR, []int32{1}) {
		t.Errorf("after cancelling r-0 is %+v, want replicas [1] led by 1", st)
	}
	if got := listReassignments(t, b, c, nil); len(got) != 0 {
		t.Errorf("after cancelling: %v", got)
	}
	code, msg = reassign(t, b, c, 0, true, "r", 0, nil)
	adminWantCode(t, "cancel again", code, msg, kerr.NoReassignmentInProgress, "")
}

// TestReassignmentCompletion: one that only removes replicas completes
// in the request; one that adds completes, by the controller, once the
// new replica is in the ISR.
func TestReassignmentCompletion(t *testing.T) {
	b, c := newReassignBroker(t, metadata.NewMemoryStore("test-cluster"), "c", 2)
	shrink := setState(t, b, "c", 0, []int32{1, 2}, 1, []int32{1, 2}, nil, nil)
	code, msg := reassign(t, b, c, 0, true, "c", 0, []int32{2})
	adminWantCode(t, "shrink to [2]", code, msg, nil, "")
	if st := mustState(t, b, "c", 0); st.Reassigning() || !slices.Equal(st.Replicas, []int32{2}) || st.Leader != 2 ||
		st.LeaderEpoch != shrink.LeaderEpoch+1 || !slices.Equal(st.ISR, []int32{2}) {
		t.Errorf("after shrinking c-0 is %+v, want replicas [2] led by 2 at epoch %d", st, shrink.LeaderEpoch+1)
	}

	setState(t, b, "c", 1, []int32{3}, 3, []int32{3}, nil, nil)
	code, msg = reassign(t, b, c, 0, true, "c", 1, []int32{1, 3})
	adminWantCode(t, "grow to [1 3]", code, msg, nil, "")
	st := mustState(t, b, "c", 1)
	if !slices.Equal(st.Replicas, []int32{1, 3}) || !slices.Equal(st.AddingReplicas, []int32{1}) {
		t.Fatalf("c-1 growing: %+v", st)
	}
	// Broker 1 caught up: its leader puts it in the ISR.
	st.ISR = []int32{3, 1}
	if _, err := b.store.SetPartitionState(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	reassignWait(t, b, "the controller to complete c-1", func() bool { return !mustState(t, b, "c", 1).Reassigning() })
	if st := mustState(t, b, "c", 1); !slices.Equal(st.Replicas, []int32{1, 3}) || st.Leader != 3 || !slices.Equal(st.ISR, []int32{3, 1}) {
		t.Errorf("completed c-1: %+v, want replicas [1 3], leader 3, isr [3 1]", st)
	}
	// Now the preferred replica is 1, in sync: it can be elected.
	_, got := electResults(t, b, c, electReq(2, electPreferred, map[string][]int32{"c": {1}}, "c"))
	adminWantCode(t, "preferred after growing", got["c-1"].ErrorCode, got["c-1"].ErrorMessage, nil, "")
	if st := mustState(t, b, "c", 1); st.Leader != 1 {
		t.Errorf("c-1 leader %d after preferred election, want 1", st.Leader)
	}
}

// TestReassignHandlersRandom sends random requests of the three APIs at
// every version: no error, one answer per partition named for
// AlterPartitionReassignments, answers that encode and decode, and every
// partition state left valid.
func TestReassignHandlersRandom(t *testing.T) {
	b, c := newReassignBroker(t, metadata.NewMemoryStore("test-cluster"), "x", 3)
	rng := rand.New(rand.NewSource(1))
	topics := []string{"x", "x", "nope", "", "__consumer_offsets"}
	ids := func() []int32 {
		if rng.Intn(4) == 0 {
			return nil
		}
		out := make([]int32, rng.Intn(4))
		for i := range out {
			out[i] = int32(rng.Intn(6)) - 1
		}
		return out
	}
	part := func() int32 { return int32(rng.Intn(5)) - 1 }
	for i := 0; i < 300; i++ {
		el := kmsg.NewPtrElectLeadersRequest()
		el.ElectionType = int8(rng.Intn(3))
		al := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		al.AllowReplicationFactorChange = rng.Intn(2) == 0
		li := kmsg.NewPtrListPartitionReassignmentsRequest()
		named := 0
		for range rng.Intn(3) {
			name := topics[rng.Intn(len(topics))]
			et := kmsg.NewElectLeadersRequestTopic()
			et.Topic = name
			at := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			at.Topic = name
			lt := kmsg.NewListPartitionReassignmentsRequestTopic()
			lt.Topic = name
			for range rng.Intn(3) {
				et.Partitions = append(et.Partitions, part())
				lt.Partitions = append(lt.Partitions, part())
				ap := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
				ap.Partition, ap.Replicas = part(), ids()
				at.Partitions = append(at.Partitions, ap)
				named++
			}
			el.Topics = append(el.Topics, et)
			al.Topics = append(al.Topics, at)
			li.Topics = append(li.Topics, lt)
		}
		if rng.Intn(3) == 0 {
			el.Topics, li.Topics = nil, nil
		}
		for _, req := range []kmsg.Request{el, al, li} {
			h := b.handlers.byKey[req.Key()]
			version := h.min + int16(rng.Intn(int(h.max-h.min)+1))
			req.SetVersion(version)
			resp, err := h.fn(c, req)
			if err != nil || resp == nil {
				t.Fatalf("%s v%d: response %v, error %v", kmsg.NameForKey(req.Key()), version, resp, err)
			}
			if ar, ok := resp.(*kmsg.AlterPartitionAssignmentsResponse); ok {
				n := 0
				for _, rt := range ar.Topics {
					n += len(rt.Partitions)
				}
				if n != named {
					t.Fatalf("AlterPartitionReassignments: %d answers for %d partitions", n, named)
				}
			}
			resp.SetVersion(version)
			decoded := kmsg.ResponseForKey(req.Key())
			decoded.SetVersion(version)
			if err := decoded.ReadFrom(resp.AppendTo(nil)); err != nil {
				t.Fatalf("%s v%d: response does not decode: %v", kmsg.NameForKey(req.Key()), version, err)
			}
		}
	}
	for p := int32(0); p < 3; p++ {
		if err := mustState(t, b, "x", p).Check(); err != nil {
			t.Errorf("x-%d: %v", p, err)
		}
	}
}
