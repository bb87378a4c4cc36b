package metadata

import (
	"fmt"
	"slices"
	"testing"
)

func TestAssignReplicas(t *testing.T) {
	three := []Broker{{NodeID: 3}, {NodeID: 1}, {NodeID: 2}}
	got, err := AssignReplicas(three, 0, 6, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := "[[1 2 3] [2 3 1] [3 1 2] [1 3 2] [2 1 3] [3 2 1]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("rf 3 over 3 brokers: %v, want %v", got, want)
	}
	// Leaders and replicas spread evenly.
	lead := map[int32]int{}
	for _, r := range got {
		lead[r[0]]++
	}
	for _, id := range []int32{1, 2, 3} {
		if lead[id] != 2 {
			t.Errorf("broker %d leads %d of 6 partitions, want 2", id, lead[id])
		}
	}
	// Added partitions continue the pattern.
	more, _ := AssignReplicas(three, 6, 1, 3)
	if fmt.Sprint(more) != "[[1 2 3]]" {
		t.Errorf("partition 6: %v", more)
	}
	one, _ := AssignReplicas([]Broker{{NodeID: 7}}, 0, 3, 1)
	if fmt.Sprint(one) != "[[7] [7] [7]]" {
		t.Errorf("one broker: %v", one)
	}
	if _, err := AssignReplicas(three, 0, 1, 4); err == nil {
		t.Error("rf 4 over 3 brokers was accepted")
	}
	if _, err := AssignReplicas(three, 0, 1, 0); err == nil {
		t.Error("rf 0 was accepted")
	}

	// Racks: every partition's two replicas are in different racks.
	racked := []Broker{{NodeID: 1, Rack: "a"}, {NodeID: 2, Rack: "a"}, {NodeID: 3, Rack: "b"}, {NodeID: 4, Rack: "b"}}
	rack := map[int32]string{1: "a", 2: "a", 3: "b", 4: "b"}
	rs, err := AssignReplicas(racked, 0, 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	for p, r := range rs {
		if len(r) != 2 || r[0] == r[1] {
			t.Fatalf("partition %d: replicas %v", p, r)
		}
		if p < 4 && rack[r[0]] == rack[r[1]] {
			// The first round over the brokers alternates racks exactly.
			t.Errorf("partition %d: replicas %v share rack %s", p, r, rack[r[0]])
		}
	}
	// Every partition's replicas are distinct for every rf and count.
	five := []Broker{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}, {NodeID: 4}, {NodeID: 5}}
	for rf := 1; rf <= 5; rf++ {
		rs, err := AssignReplicas(five, 0, 23, rf)
		if err != nil {
			t.Fatal(err)
		}
		for p, r := range rs {
			if len(r) != rf || checkIDSet(r) != nil {
				t.Fatalf("rf %d partition %d: %v", rf, p, r)
			}
		}
	}
}

func TestNextPartitionState(t *testing.T) {
	live := func(ids ...int32) map[int32]bool {
		m := map[int32]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	st := func(leader, epoch int32, isr ...int32) PartitionState {
		return PartitionState{Topic: "t", Partition: 0, Replicas: []int32{1, 2, 3}, Leader: leader, LeaderEpoch: epoch, ISR: isr}
	}
	for _, c := range []struct {
		what    string
		in      PartitionState
		live    map[int32]bool
		want    PartitionState
		changed bool
	}{
		{"all live: nothing to do", st(1, 4, 1, 2, 3), live(1, 2, 3), st(1, 4, 1, 2, 3), false},
		{"a follower died: it leaves the ISR, same epoch", st(1, 4, 1, 2, 3), live(1, 3), st(1, 4, 1, 3), true},
		{"the leader died: the first live ISR replica leads", st(1, 4, 1, 2, 3), live(2, 3), st(2, 5, 2, 3), true},
		{"preferred order, not ISR order", st(1, 4, 1, 3, 2), live(2, 3), st(2, 5, 3, 2), true},
		{"only an out-of-sync replica is live: no leader", st(1, 4, 1), live(2, 3), st(NoLeader, 5, 1), true},
		{"no leader, ISR member back: it leads", st(NoLeader, 5, 1), live(1, 2), st(1, 6, 1), true},
		{"no leader, still nobody: unchanged", st(NoLeader, 5, 1), live(2), st(NoLeader, 5, 1), false},
		{"everyone died at once: one ISR member stays", st(1, 4, 1, 2, 3), live(), st(NoLeader, 5, 3), true},
	} {
		got, changed := NextPartitionState(c.in, c.live)
		if changed != c.changed || got.Leader != c.want.Leader || got.LeaderEpoch != c.want.LeaderEpoch || !slices.Equal(got.ISR, c.want.ISR) {
			t.Errorf("%s: got leader %d epoch %d isr %v changed %v; want leader %d epoch %d isr %v changed %v",
				c.what, got.Leader, got.LeaderEpoch, got.ISR, changed, c.want.Leader, c.want.LeaderEpoch, c.want.ISR, c.changed)
		}
		if err := got.Check(); err != nil {
			t.Errorf("%s: the next state breaks the rules: %v", c.what, err)
		}
	}
}
