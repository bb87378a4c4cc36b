package metadata

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

func init() {
	conformanceTests = append(conformanceTests,
		struct {
			name string
			fn   func(t *testing.T, h harness)
		}{"PartitionState", testPartitionState},
		struct {
			name string
			fn   func(t *testing.T, h harness)
		}{"PartitionStateConcurrentCAS", testPartitionStateConcurrentCAS},
	)
}

// testPartitionState: compare-and-swap writes of partition states, what
// readers and subscribers of another store see, and that deleting a topic
// takes its states with it.
func testPartitionState(t *testing.T, h harness) {
	s1, s2 := h.open(t), h.open(t)
	ctx := testCtx(t)
	var seen eventLog
	defer s2.Subscribe(seen.add)()
	topic := mustCreate(t, s1, "orders", 3, nil)
	if _, ok := s1.Partition("orders", 0); ok {
		t.Fatal("a new topic has a partition state before any was written")
	}

	st := PartitionState{Topic: "orders", TopicID: topic.ID, Partition: 1, Replicas: []int32{2, 1, 3}, Leader: 2, LeaderEpoch: 0, ISR: []int32{2, 1, 3}}
	v1, err := s1.SetPartitionState(ctx, st)
	if err != nil || v1 <= 0 {
		t.Fatalf("first write: version %d, %v", v1, err)
	}
	want := st
	want.Version = v1
	if got, ok := s1.Partition("orders", 1); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("Partition after write = %+v %v, want %+v", got, ok, want)
	}
	waitFor(t, "the second store to see the state", func() bool {
		got, ok := s2.Partition("orders", 1)
		return ok && reflect.DeepEqual(got, want)
	})
	defer func() {
		if t.Failed() {
			t.Logf("events: %+v, want %+v", seen.get(), want)
		}
	}()
	waitFor(t, "the second store's subscriber to be told", func() bool {
		for _, ev := range seen.get() {
			if ev.Kind == PartitionChanged && reflect.DeepEqual(ev.Partition, want) {
				return true
			}
		}
		return false
	})

	// A write from the version read: one wins, a stale one conflicts.
	if _, err := s2.SetPartitionState(ctx, st); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create-only write: %v, want ErrConflict", err)
	}
	next := want
	next.Leader, next.LeaderEpoch, next.ISR = 1, 1, []int32{1, 3}
	v2, err := s2.SetPartitionState(ctx, next)
	if err != nil || v2 <= v1 {
		t.Fatalf("write at version %d: version %d, %v", v1, v2, err)
	}
	if _, err := s1.SetPartitionState(ctx, want); !errors.Is(err, ErrConflict) {
		t.Fatalf("write at the stale version %d: %v, want ErrConflict", v1, err)
	}
	waitFor(t, "the first store to see the new leader", func() bool {
		got, ok := s1.Partition("orders", 1)
		return ok && got.Leader == 1 && got.LeaderEpoch == 1 && got.Version == v2
	})
	p0 := PartitionState{Topic: "orders", TopicID: topic.ID, Partition: 0, Replicas: []int32{1}, Leader: 1, ISR: []int32{1}}
	if _, err := s1.SetPartitionState(ctx, p0); err != nil {
		t.Fatal(err)
	}
	if got := s1.PartitionStates("orders"); len(got) != 2 || got[0].Partition != 0 || got[1].Partition != 1 {
		t.Fatalf("PartitionStates = %+v, want partitions 0 and 1", got)
	}

	// Refused writes.
	for _, c := range []struct {
		what string
		st   PartitionState
		want error
	}{
		{"leader outside the replicas", PartitionState{Topic: "orders", TopicID: topic.ID, Partition: 2, Replicas: []int32{1, 2}, Leader: 3, ISR: []int32{1, 2}}, ErrInvalidPartitionState},
		{"leader outside the isr", PartitionState{Topic: "orders", TopicID: topic.ID, Partition: 2, Replicas: []int32{1, 2}, Leader: 2, ISR: []int32{1}}, ErrInvalidPartitionState},
		{"repeated replica", PartitionState{Topic: "orders", TopicID: topic.ID, Partition: 2, Replicas: []int32{1, 1}, Leader: NoLeader}, ErrInvalidPartitionState},
		{"no replicas", PartitionState{Topic: "orders", TopicID: topic.ID, Partition: 2, Leader: NoLeader}, ErrInvalidPartitionState},
		{"a partition beyond the count", PartitionState{Topic: "orders", TopicID: topic.ID, Partition: 3, Replicas: []int32{1}, Leader: NoLeader}, ErrUnknownTopic},
		{"an unknown topic", PartitionState{Topic: "nope", TopicID: topic.ID, Partition: 0, Replicas: []int32{1}, Leader: NoLeader}, ErrUnknownTopic},
		{"another topic id", PartitionState{Topic: "orders", TopicID: TopicID{9}, Partition: 2, Replicas: []int32{1}, Leader: NoLeader}, ErrUnknownTopic},
	} {
		if _, err := s1.SetPartitionState(ctx, c.st); !errors.Is(err, c.want) {
			t.Errorf("write with %s: %v, want %v", c.what, err, c.want)
		}
	}

	// Deleting the topic takes its states; a new topic of the same name
	// starts with none.
	if err := s1.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	again := mustCreate(t, s1, "orders", 3, nil)
	if got := s1.PartitionStates("orders"); len(got) != 0 {
		t.Fatalf("states of the recreated topic: %+v, want none", got)
	}
	waitFor(t, "the second store to see the recreated topic without states", func() bool {
		got, ok := s2.Topic("orders")
		return ok && got.ID == again.ID && len(s2.PartitionStates("orders")) == 0
	})
	if _, err := s1.SetPartitionState(ctx, PartitionState{Topic: "orders", TopicID: topic.ID, Partition: 0, Replicas: []int32{1}, Leader: NoLeader}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("write for the deleted incarnation: %v, want ErrUnknownTopic", err)
	}
}

// testPartitionStateConcurrentCAS: writers racing from one version; exactly
// one wins.
func testPartitionStateConcurrentCAS(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	topic := mustCreate(t, s, "race", 1, nil)
	base := PartitionState{Topic: "race", TopicID: topic.ID, Partition: 0, Replicas: []int32{1, 2, 3}, Leader: 1, ISR: []int32{1, 2, 3}}
	v, err := s.SetPartitionState(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	base.Version = v
	const writers = 8
	stores := make([]Store, writers)
	for i := range stores {
		stores[i] = h.open(t)
		waitFor(t, "a new store to see the topic", func() bool {
			_, ok := stores[i].Topic("race")
			return ok
		})
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := base
			st.LeaderEpoch = int32(i + 1)
			_, errs[i] = stores[i].SetPartitionState(ctx, st)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrConflict):
			t.Errorf("racing write: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d racing writes from one version succeeded, want exactly 1", wins)
	}
}

func init() {
	conformanceTests = append(conformanceTests, struct {
		name string
		fn   func(t *testing.T, h harness)
	}{"ControllerElection", testControllerElection})
}

// testControllerElection: one controller at a time; when its store closes
// it loses the role and the next candidate gets it; every store sees who
// holds it.
func testControllerElection(t *testing.T, h harness) {
	s1, s2, s3 := h.open(t), h.open(t), h.open(t)
	ctx := testCtx(t)
	if id, ok := s3.Controller(); ok {
		t.Fatalf("a fresh cluster has controller %d", id)
	}
	lost1, _, err := s1.Campaign(ctx, 1)
	if err != nil {
		t.Fatalf("first campaign: %v", err)
	}
	if id, ok := s1.Controller(); !ok || id != 1 {
		t.Fatalf("the winner's store says the controller is %d %v, want 1", id, ok)
	}
	waitFor(t, "the other stores to see controller 1", func() bool {
		a, okA := s2.Controller()
		b, okB := s3.Controller()
		return okA && okB && a == 1 && b == 1
	})

	type result struct {
		lost <-chan struct{}
		err  error
	}
	second := make(chan result, 1)
	go func() {
		lost, _, err := s2.Campaign(ctx, 2)
		second <- result{lost, err}
	}()
	select {
	case r := <-second:
		t.Fatalf("a second candidate won while the first held the role: %v", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	// A candidacy that gives up ends cleanly.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, _, err = s3.Campaign(short, 3)
	cancel()
	if err == nil {
		t.Fatal("a campaign whose context ended while another held the role succeeded")
	}

	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost1:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the controller's store did not end its role")
	}
	var r result
	select {
	case r = <-second:
	case <-time.After(15 * time.Second):
		t.Fatal("the waiting candidate did not take over")
	}
	if r.err != nil {
		t.Fatalf("second campaign: %v", r.err)
	}
	waitFor(t, "the third store to see controller 2", func() bool {
		id, ok := s3.Controller()
		return ok && id == 2
	})
	select {
	case <-r.lost:
		t.Fatal("the new controller lost the role for no reason")
	default:
	}
}
