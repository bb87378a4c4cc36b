package metadata

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// ps builds a partition state of topic t, partition 0, for the tables
// below; adding and removing are optional (nil, nil: no reassignment).
func ps(replicas []int32, leader, epoch int32, isr []int32, adding, removing []int32) PartitionState {
	return PartitionState{Topic: "t", Partition: 0, Replicas: replicas, Leader: leader, LeaderEpoch: epoch, ISR: isr,
		AddingReplicas: adding, RemovingReplicas: removing, Version: 9}
}

func ids(v ...int32) []int32 { return v }

func liveSet(v ...int32) map[int32]bool {
	m := map[int32]bool{}
	for _, id := range v {
		m[id] = true
	}
	return m
}

// sameState compares states treating nil and empty lists as one.
func sameState(a, b PartitionState) bool {
	norm := func(p PartitionState) PartitionState {
		p.Replicas, p.ISR = emptyAsNil(p.Replicas), emptyAsNil(p.ISR)
		p.AddingReplicas, p.RemovingReplicas = emptyAsNil(p.AddingReplicas), emptyAsNil(p.RemovingReplicas)
		return p
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func TestPartitionStateCheckReassignment(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   PartitionState
		ok   bool
	}{
		{"no reassignment", ps(ids(1, 2), 1, 0, ids(1, 2), nil, nil), true},
		{"in progress", ps(ids(2, 3, 1), 1, 0, ids(1), ids(2, 3), ids(1)), true},
		{"adding only", ps(ids(1, 2), 1, 0, ids(1), ids(2), nil), true},
		{"adding not a replica", ps(ids(1, 2), 1, 0, ids(1), ids(3), nil), false},
		{"removing not a replica", ps(ids(1, 2), 1, 0, ids(1), nil, ids(3)), false},
		{"adding repeated", ps(ids(1, 2, 3), 1, 0, ids(1), ids(2, 2), nil), false},
		{"adding negative", ps(ids(1, 2), 1, 0, ids(1), ids(-2), nil), false},
		{"both adding and removing", ps(ids(1, 2), 1, 0, ids(1), ids(2), ids(2)), false},
		{"every replica removed", ps(ids(1, 2), 1, 0, ids(1), nil, ids(1, 2)), false},
	} {
		if err := tc.st.Check(); (err == nil) != tc.ok {
			t.Errorf("%s: Check(%+v) = %v, want ok=%v", tc.name, tc.st, err, tc.ok)
		} else if err != nil && !errors.Is(err, ErrInvalidPartitionState) {
			t.Errorf("%s: error %v is not ErrInvalidPartitionState", tc.name, err)
		}
	}
}

// TestPartitionValueReassignment: the reassignment fields round-trip, are
// left out when empty (so the value is byte for byte what an older Gregor
// writes), and values without them read as no reassignment.
func TestPartitionValueReassignment(t *testing.T) {
	id := TopicID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	moving := PartitionState{Topic: "t", TopicID: id, Partition: 1, Replicas: ids(2, 3, 1), Leader: 1, ISR: ids(1),
		AddingReplicas: ids(2, 3), RemovingReplicas: ids(1), Version: 7}
	b, err := encodePartition(moving)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"topic_id":"AQIDBAUGBwgJCgsMDQ4PEA","replicas":[2,3,1],"leader":1,"leader_epoch":0,"isr":[1],"adding_replicas":[2,3],"removing_replicas":[1]}`
	if string(b) != want {
		t.Errorf("encoded %s\nwant    %s", b, want)
	}
	got, err := decodePartition("t", 1, 7, b)
	if err != nil || !reflect.DeepEqual(got, moving) {
		t.Errorf("decoded %+v, %v; want %+v", got, err, moving)
	}

	still := PartitionState{Topic: "t", TopicID: id, Partition: 1, Replicas: ids(1), Leader: 1, ISR: ids(1), AddingReplicas: []int32{}, Version: 7}
	b, err = encodePartition(still)
	if err != nil {
		t.Fatal(err)
	}
	old := `{"v":1,"topic_id":"AQIDBAUGBwgJCgsMDQ4PEA","replicas":[1],"leader":1,"leader_epoch":0,"isr":[1]}`
	if string(b) != old {
		t.Errorf("a state with no reassignment encodes as %s, want the old form %s", b, old)
	}
	for _, v := range []string{old, strings.TrimSuffix(old, "}") + `,"adding_replicas":[],"removing_replicas":[]}`} {
		got, err := decodePartition("t", 1, 7, []byte(v))
		if err != nil || got.Reassigning() || got.AddingReplicas != nil || got.RemovingReplicas != nil {
			t.Errorf("decode %s = %+v, %v; want no reassignment", v, got, err)
		}
	}
	for _, v := range []string{
		strings.TrimSuffix(old, "}") + `,"adding_replicas":[5]}`,
		strings.TrimSuffix(old, "}") + `,"removing_replicas":[1]}`,
		strings.TrimSuffix(old, "}") + `,"adding_replicas":"x"}`,
	} {
		if got, err := decodePartition("t", 1, 7, []byte(v)); err == nil {
			t.Errorf("decode %s = %+v, want an error", v, got)
		}
	}
}

func TestReassignPartition(t *testing.T) {
	live := liveSet(1, 2, 3, 4, 5)
	for _, tc := range []struct {
		name    string
		st      PartitionState
		target  []int32
		want    PartitionState
		wantErr error
	}{
		{"move one replica", ps(ids(1, 2, 3), 1, 4, ids(1, 2, 3), nil, nil), ids(1, 2, 4),
			ps(ids(1, 2, 4, 3), 1, 4, ids(1, 2, 3), ids(4), ids(3)), nil},
		{"move everything", ps(ids(1), 1, 0, ids(1), nil, nil), ids(2, 3),
			ps(ids(2, 3, 1), 1, 0, ids(1), ids(2, 3), ids(1)), nil},
		{"grow", ps(ids(1), 1, 0, ids(1), nil, nil), ids(1, 2),
			ps(ids(1, 2), 1, 0, ids(1), ids(2), nil), nil},
		{"shrink", ps(ids(1, 2, 3), 2, 1, ids(1, 2, 3), nil, nil), ids(3, 1),
			ps(ids(3, 1, 2), 2, 1, ids(1, 2, 3), nil, ids(2)), nil},
		{"removed keep R order", ps(ids(3, 1, 2), 3, 0, ids(3, 1, 2), nil, nil), ids(4),
			ps(ids(4, 3, 1, 2), 3, 0, ids(3, 1, 2), ids(4), ids(3, 1, 2)), nil},
		{"reorder only", ps(ids(1, 2, 3), 1, 0, ids(1, 2, 3), nil, nil), ids(3, 2, 1),
			ps(ids(3, 2, 1), 1, 0, ids(1, 2, 3), nil, nil), nil},
		{"same", ps(ids(1, 2), 1, 0, ids(1, 2), nil, nil), ids(1, 2),
			ps(ids(1, 2), 1, 0, ids(1, 2), nil, nil), nil},
		// A reassignment in progress is reverted first: from [1,2] (being
		// moved to [3,4]) to [2,5] is 2 kept, 1 removed, 5 added.
		{"replace one in progress", ps(ids(3, 4, 1, 2), 1, 0, ids(1, 2), ids(3, 4), ids(1, 2)), ids(2, 5),
			ps(ids(2, 5, 1), 1, 0, ids(1, 2), ids(5), ids(1)), nil},
		{"back to the original", ps(ids(3, 1), 1, 0, ids(1), ids(3), ids(1)), ids(1),
			ps(ids(1), 1, 0, ids(1), nil, nil), nil},
		{"empty target", ps(ids(1), 1, 0, ids(1), nil, nil), ids(), PartitionState{}, ErrInvalidReplicaAssignment},
		{"repeated broker", ps(ids(1), 1, 0, ids(1), nil, nil), ids(2, 2), PartitionState{}, ErrInvalidReplicaAssignment},
		{"unregistered broker", ps(ids(1), 1, 0, ids(1), nil, nil), ids(1, 9), PartitionState{}, ErrInvalidReplicaAssignment},
		{"negative broker", ps(ids(1), 1, 0, ids(1), nil, nil), ids(-1), PartitionState{}, ErrInvalidReplicaAssignment},
		// Only the adding replica is in sync: reverting would empty the ISR.
		{"in progress, revert impossible", ps(ids(2, 1), 2, 3, ids(2), ids(2), ids(1)), ids(3), PartitionState{}, ErrInvalidReplicaAssignment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := copyPartition(tc.st)
			got, err := ReassignPartition(tc.st, tc.target, live)
			if !reflect.DeepEqual(tc.st, before) {
				t.Fatalf("ReassignPartition changed its argument: %+v, was %+v", tc.st, before)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !sameState(got, tc.want) {
				t.Fatalf("ReassignPartition(%v) = %+v, %v\nwant %+v", tc.target, got, err, tc.want)
			}
			if err := got.Check(); err != nil {
				t.Fatalf("result fails Check: %v", err)
			}
			if tt := got.TargetReplicas(); !slices.Equal(tt, tc.target) {
				t.Errorf("TargetReplicas = %v, want %v", tt, tc.target)
			}
		})
	}
}

func TestCancelReassignment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		st      PartitionState
		live    map[int32]bool
		want    PartitionState
		wantErr error
	}{
		{"adding not in sync", ps(ids(2, 3, 1), 1, 4, ids(1), ids(2, 3), ids(1)), liveSet(1, 2, 3),
			ps(ids(1), 1, 4, ids(1), nil, nil), nil},
		{"original order kept", ps(ids(1, 2, 4, 3), 1, 0, ids(1, 2, 3, 4), ids(4), ids(3)), liveSet(1, 2, 3, 4),
			ps(ids(1, 2, 3), 1, 0, ids(1, 2, 3), nil, nil), nil},
		{"order as Replicas has it", ps(ids(3, 1, 2), 2, 1, ids(1, 2, 3), nil, ids(2)), liveSet(1, 2, 3),
			ps(ids(3, 1, 2), 2, 1, ids(1, 2, 3), nil, nil), nil},
		{"leader was adding", ps(ids(3, 1, 2), 3, 5, ids(3, 2), ids(3), ids(1, 2)), liveSet(1, 2, 3),
			ps(ids(1, 2), 2, 6, ids(2), nil, nil), nil},
		{"leader was adding, rest dead", ps(ids(3, 1, 2), 3, 5, ids(3, 2), ids(3), ids(1, 2)), liveSet(3),
			ps(ids(1, 2), NoLeader, 6, ids(2), nil, nil), nil},
		{"only adding in sync", ps(ids(2, 1), 2, 3, ids(2), ids(2), ids(1)), liveSet(1, 2), PartitionState{}, ErrInvalidReplicaAssignment},
		{"nothing in progress", ps(ids(1, 2), 1, 0, ids(1, 2), nil, nil), liveSet(1, 2), PartitionState{}, ErrNoReassignmentInProgress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CancelReassignment(tc.st, tc.live)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !sameState(got, tc.want) {
				t.Fatalf("CancelReassignment = %+v, %v\nwant %+v", got, err, tc.want)
			}
			if err := got.Check(); err != nil {
				t.Fatalf("result fails Check: %v", err)
			}
		})
	}
}

func TestNextReassignmentState(t *testing.T) {
	all := liveSet(1, 2, 3, 4)
	for _, tc := range []struct {
		name    string
		st      PartitionState
		live    map[int32]bool
		want    PartitionState
		changed bool
	}{
		{"not reassigning", ps(ids(1, 2), 1, 0, ids(1, 2), nil, nil), all, ps(ids(1, 2), 1, 0, ids(1, 2), nil, nil), false},
		{"adding not yet in sync", ps(ids(2, 3, 1), 1, 0, ids(1, 2), ids(2, 3), ids(1)), all, ps(ids(2, 3, 1), 1, 0, ids(1, 2), ids(2, 3), ids(1)), false},
		{"complete, leader moves", ps(ids(2, 3, 1), 1, 4, ids(1, 3, 2), ids(2, 3), ids(1)), all,
			ps(ids(2, 3), 2, 5, ids(3, 2), nil, nil), true},
		{"complete, first in-sync target leads", ps(ids(2, 3, 1), 1, 4, ids(1, 3), ids(3), ids(1)), liveSet(1, 3),
			ps(ids(2, 3), 3, 5, ids(3), nil, nil), true},
		{"complete, leader stays", ps(ids(1, 4, 3), 1, 2, ids(1, 3, 4), ids(4), ids(3)), all,
			ps(ids(1, 4), 1, 2, ids(1, 4), nil, nil), true},
		{"grow completes", ps(ids(1, 2), 1, 0, ids(1, 2), ids(2), nil), all, ps(ids(1, 2), 1, 0, ids(1, 2), nil, nil), true},
		{"shrink completes at once", ps(ids(3, 1, 2), 2, 1, ids(1, 2, 3), nil, ids(2)), all,
			ps(ids(3, 1), 3, 2, ids(1, 3), nil, nil), true},
		{"shrink waits for an in-sync target", ps(ids(3, 1, 2), 2, 1, ids(2), nil, ids(1, 2)), all,
			ps(ids(3, 1, 2), 2, 1, ids(2), nil, ids(1, 2)), false},
		{"leader must move but target not live", ps(ids(2, 1), 1, 0, ids(1, 2), ids(2), ids(1)), liveSet(1),
			ps(ids(2, 1), 1, 0, ids(1, 2), ids(2), ids(1)), false},
		{"leaderless completes with a leader", ps(ids(2, 1), NoLeader, 3, ids(2), ids(2), ids(1)), all,
			ps(ids(2), 2, 4, ids(2), nil, nil), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := copyPartition(tc.st)
			got, changed := NextReassignmentState(tc.st, tc.live)
			if !reflect.DeepEqual(tc.st, before) {
				t.Fatalf("NextReassignmentState changed its argument")
			}
			if changed != tc.changed || !sameState(got, tc.want) {
				t.Fatalf("NextReassignmentState = %+v, %v\nwant %+v, %v", got, changed, tc.want, tc.changed)
			}
			if err := got.Check(); err != nil {
				t.Fatalf("result fails Check: %v", err)
			}
		})
	}
}

// TestNextPartitionStateSkipsAddingReplicas: a replica being added leads
// only once it is in the ISR, even though it comes first in Replicas.
func TestNextPartitionStateSkipsAddingReplicas(t *testing.T) {
	st := ps(ids(4, 5, 1, 2), 1, 3, ids(1, 2), ids(4, 5), ids(1, 2))
	next, changed := NextPartitionState(st, liveSet(2, 4, 5))
	want := ps(ids(4, 5, 1, 2), 2, 4, ids(2), ids(4, 5), ids(1, 2))
	if !changed || !sameState(next, want) {
		t.Fatalf("NextPartitionState = %+v, %v; want %+v", next, changed, want)
	}
	// With no live ISR member there is no leader, live adding replicas
	// notwithstanding.
	next, _ = NextPartitionState(st, liveSet(4, 5))
	if next.Leader != NoLeader {
		t.Fatalf("leader %d elected from outside the ISR %v", next.Leader, st.ISR)
	}
}

func TestElectPreferredLeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		st      PartitionState
		live    map[int32]bool
		want    PartitionState
		wantErr error
	}{
		{"elects", ps(ids(1, 2, 3), 2, 4, ids(2, 3, 1), nil, nil), liveSet(1, 2, 3), ps(ids(1, 2, 3), 1, 5, ids(2, 3, 1), nil, nil), nil},
		{"from no leader", ps(ids(1, 2), NoLeader, 4, ids(1), nil, nil), liveSet(1), ps(ids(1, 2), 1, 5, ids(1), nil, nil), nil},
		{"already leader", ps(ids(1, 2), 1, 0, ids(1, 2), nil, nil), liveSet(1, 2), PartitionState{}, ErrElectionNotNeeded},
		{"not live", ps(ids(1, 2), 2, 0, ids(1, 2), nil, nil), liveSet(2), PartitionState{}, ErrPreferredLeaderNotAvailable},
		{"not in sync", ps(ids(1, 2), 2, 0, ids(2), nil, nil), liveSet(1, 2), PartitionState{}, ErrPreferredLeaderNotAvailable},
		{"adding replica not in sync", ps(ids(3, 1), 1, 0, ids(1), ids(3), ids(1)), liveSet(1, 3), PartitionState{}, ErrPreferredLeaderNotAvailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ElectPreferredLeader(tc.st, tc.live)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !sameState(got, tc.want) {
				t.Fatalf("ElectPreferredLeader = %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
}

func TestElectUncleanLeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		st      PartitionState
		live    map[int32]bool
		want    PartitionState
		wantErr error
	}{
		{"leader live", ps(ids(1, 2), 2, 0, ids(2), nil, nil), liveSet(1, 2), PartitionState{}, ErrElectionNotNeeded},
		{"live isr member, as the controller", ps(ids(1, 2, 3), 1, 3, ids(1, 3), nil, nil), liveSet(2, 3),
			ps(ids(1, 2, 3), 3, 4, ids(3), nil, nil), nil},
		{"leaderless with live isr", ps(ids(1, 2, 3), NoLeader, 3, ids(2), nil, nil), liveSet(2),
			ps(ids(1, 2, 3), 2, 4, ids(2), nil, nil), nil},
		{"first live replica", ps(ids(1, 2, 3), NoLeader, 3, ids(1), nil, nil), liveSet(3, 2),
			ps(ids(1, 2, 3), 2, 4, ids(2), nil, nil), nil},
		{"dead leader, out-of-sync replica", ps(ids(1, 2, 3), 1, 3, ids(1), nil, nil), liveSet(3),
			ps(ids(1, 2, 3), 3, 4, ids(3), nil, nil), nil},
		{"original replicas before adding ones", ps(ids(4, 1, 2), NoLeader, 2, ids(1), ids(4), ids(1, 2)), liveSet(2, 4),
			ps(ids(4, 1, 2), 2, 3, ids(2), ids(4), ids(1, 2)), nil},
		{"only an adding replica", ps(ids(4, 1), NoLeader, 2, ids(1), ids(4), ids(1)), liveSet(4),
			ps(ids(4, 1), 4, 3, ids(4), ids(4), ids(1)), nil},
		{"none live", ps(ids(1, 2), NoLeader, 2, ids(1), nil, nil), liveSet(3), PartitionState{}, ErrEligibleLeadersNotAvailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ElectUncleanLeader(tc.st, tc.live)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !sameState(got, tc.want) {
				t.Fatalf("ElectUncleanLeader = %+v, %v\nwant %+v", got, err, tc.want)
			}
			if err := got.Check(); err != nil {
				t.Fatalf("result fails Check: %v", err)
			}
		})
	}
}

func init() {
	conformanceTests = append(conformanceTests, struct {
		name string
		fn   func(t *testing.T, h harness)
	}{"ControllerCompletesReassignment", testControllerCompletesReassignment})
}

// testControllerCompletesReassignment: the controller leaves a
// reassignment alone while its adding replica is out of sync, and
// completes it (new replicas, ISR, leader, epoch) once the replica is in
// the ISR, as a leader would record it once replication caught it up.
func testControllerCompletesReassignment(t *testing.T, h harness) {
	ctx := testCtx(t)
	s := h.open(t)
	for id := int32(1); id <= 2; id++ {
		reg := s
		if id > 1 {
			reg = h.open(t)
		}
		if err := reg.RegisterBroker(ctx, Broker{NodeID: id, Host: "127.0.0.1", Port: 9090 + id}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both brokers to be seen", func() bool { return len(s.Brokers()) == 2 })
	ctrl := StartController(s, 1, 20*time.Millisecond, zerolog.Nop())
	t.Cleanup(ctrl.Close)
	if _, err := s.CreateTopic(ctx, Topic{Name: "moving", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var st PartitionState
	waitFor(t, "the partition to be placed", func() bool {
		var ok bool
		st, ok = s.Partition("moving", 0)
		return ok
	})
	from := st.Replicas[0]
	to := 3 - from
	moving, err := ReassignPartition(st, ids(to), liveSet(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPartitionState(ctx, moving); err != nil {
		t.Fatal(err)
	}
	// The write woke the controller; whatever it made of the state, the
	// reassignment must still be in progress (its adding replica is out of
	// sync; the pure rule is TestNextReassignmentState's).
	cur, _ := s.Partition("moving", 0)
	if !cur.Reassigning() || !slices.Equal(cur.Replicas, ids(to, from)) {
		t.Fatalf("reassignment with its adding replica out of sync: %+v", cur)
	}
	cur.ISR = append(cur.ISR, to)
	if _, err := s.SetPartitionState(ctx, cur); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reassignment to complete", func() bool {
		cur, _ = s.Partition("moving", 0)
		return !cur.Reassigning()
	})
	want := fmt.Sprintf("replicas [%d] leader %d epoch %d isr [%d]", to, to, st.LeaderEpoch+1, to)
	if got := fmt.Sprintf("replicas %v leader %d epoch %d isr %v", cur.Replicas, cur.Leader, cur.LeaderEpoch, cur.ISR); got != want {
		t.Fatalf("completed reassignment: %s, want %s", got, want)
	}
}
