package metadata

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// harness is one cluster of a Store implementation under test.
type harness interface {
	// open returns another store on the harness's cluster; the test's
	// cleanup closes it.
	open(t *testing.T) Store
}

// conformanceTests is the one test body every Store implementation runs
// (memory_test.go, etcd_test.go). Each test gets a cluster of its own.
var conformanceTests = []struct {
	name string
	fn   func(t *testing.T, h harness)
}{
	{"TopicLifecycle", testTopicLifecycle},
	{"UnknownTopic", testUnknownTopic},
	{"InvalidCreate", testInvalidCreate},
	{"TopicConfigs", testTopicConfigs},
	{"PartitionCount", testPartitionCount},
	{"ConcurrentUpdates", testConcurrentUpdates},
	{"BrokerConfigs", testBrokerConfigs},
	{"Subscribe", testSubscribe},
	{"ReadYourWrites", testReadYourWrites},
	{"SecondStoreSeesWrites", testSecondStoreSeesWrites},
	{"Brokers", testBrokers},
	{"ClusterIDStable", testClusterIDStable},
	{"Closed", testClosed},
	{"ProducerIDs", testProducerIDs},
	{"DeletionRecord", testDeletionRecord},
	{"CreatePlaced", testCreatePlaced},
	{"CreatePlacedLarge", testCreatePlacedLarge},
}

func runConformance(t *testing.T, newHarness func(t *testing.T) harness) {
	for _, tc := range conformanceTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t))
		})
	}
}

// testCtx bounds one test's store calls.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustCreate(t *testing.T, s Store, name string, partitions int32, configs map[string]string) Topic {
	t.Helper()
	got, err := s.CreateTopic(testCtx(t), Topic{Name: name, Partitions: partitions, Configs: configs})
	if err != nil {
		t.Fatalf("CreateTopic(%q): %v", name, err)
	}
	return got
}

func mustTopic(t *testing.T, s Store, name string) Topic {
	t.Helper()
	got, ok := s.Topic(name)
	if !ok {
		t.Fatalf("Topic(%q): not found", name)
	}
	return got
}

func topicNames(ts []Topic) []string {
	var names []string
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return names
}

// eventLog collects what a subscriber is told.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

func (l *eventLog) get() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func describeEvents(evs []Event) string {
	s := ""
	for _, ev := range evs {
		s += fmt.Sprintf("{%d %s p=%d %v} ", ev.Kind, ev.Topic.Name, ev.Topic.Partitions, ev.Topic.Configs)
	}
	return s
}

func testTopicLifecycle(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	if got := s.Topics(); len(got) != 0 {
		t.Fatalf("new cluster has topics %v", topicNames(got))
	}

	in := Topic{Name: "orders", ID: TopicID{1, 2, 3}, Partitions: 3, Configs: map[string]string{"cleanup.policy": "compact"}}
	created, err := s.CreateTopic(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == (TopicID{}) || created.ID == in.ID {
		t.Fatalf("created id %v: want a fresh non-zero id", created.ID)
	}
	want := Topic{Name: "orders", ID: created.ID, Partitions: 3, Configs: map[string]string{"cleanup.policy": "compact"}}
	if !reflect.DeepEqual(created, want) {
		t.Fatalf("CreateTopic returned %+v, want %+v", created, want)
	}
	if got := mustTopic(t, s, "orders"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Topic = %+v, want %+v", got, want)
	}
	if got, ok := s.TopicByID(created.ID); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("TopicByID = %+v, %v; want %+v", got, ok, want)
	}

	zeta := mustCreate(t, s, "zeta", 1, nil)
	alpha := mustCreate(t, s, "alpha", 2, nil)
	if got := topicNames(s.Topics()); !slices.Equal(got, []string{"alpha", "orders", "zeta"}) {
		t.Fatalf("Topics = %v, want sorted by name", got)
	}
	if zeta.ID == alpha.ID || zeta.ID == created.ID {
		t.Fatal("topic ids repeat")
	}
	if len(alpha.Configs) != 0 || alpha.Configs == nil {
		t.Fatalf("topic without configs has Configs %#v, want an empty map", alpha.Configs)
	}

	_, err = s.CreateTopic(ctx, Topic{Name: "orders", Partitions: 9})
	if !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second CreateTopic: %v, want ErrTopicExists", err)
	}
	if got := mustTopic(t, s, "orders"); !reflect.DeepEqual(got, want) {
		t.Fatalf("failed create changed the topic: %+v", got)
	}

	if err := s.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Topic("orders"); ok {
		t.Fatal("deleted topic still found by name")
	}
	if _, ok := s.TopicByID(created.ID); ok {
		t.Fatal("deleted topic still found by id")
	}
	if got := topicNames(s.Topics()); !slices.Equal(got, []string{"alpha", "zeta"}) {
		t.Fatalf("Topics after delete = %v", got)
	}
	if err := s.DeleteTopic(ctx, "orders"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("second DeleteTopic: %v, want ErrUnknownTopic", err)
	}

	again := mustCreate(t, s, "orders", 1, nil)
	if again.ID == created.ID {
		t.Fatal("recreated topic reuses the deleted topic's id")
	}
}

func testUnknownTopic(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	if _, ok := s.Topic("nope"); ok {
		t.Fatal("Topic(nope) found")
	}
	if _, ok := s.TopicByID(TopicID{9}); ok {
		t.Fatal("TopicByID found an id never made")
	}
	for name, err := range map[string]error{
		"DeleteTopic":       s.DeleteTopic(ctx, "nope"),
		"SetTopicConfigs":   s.SetTopicConfigs(ctx, "nope", map[string]string{"a": "b"}),
		"SetPartitionCount": s.SetPartitionCount(ctx, "nope", 5),
	} {
		if !errors.Is(err, ErrUnknownTopic) {
			t.Errorf("%s of unknown topic: %v, want ErrUnknownTopic", name, err)
		}
	}
	if got := s.Topics(); len(got) != 0 {
		t.Fatalf("failed writes made topics %v", topicNames(got))
	}
}

func testInvalidCreate(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	for _, n := range []int32{0, -1} {
		if _, err := s.CreateTopic(ctx, Topic{Name: "t", Partitions: n}); !errors.Is(err, ErrInvalidPartitions) {
			t.Errorf("CreateTopic with %d partitions: %v, want ErrInvalidPartitions", n, err)
		}
	}
	for _, name := range []string{"", "a/b"} {
		if _, err := s.CreateTopic(ctx, Topic{Name: name, Partitions: 1}); !errors.Is(err, ErrInvalidTopicName) {
			t.Errorf("CreateTopic(%q): %v, want ErrInvalidTopicName", name, err)
		}
	}
	if got := s.Topics(); len(got) != 0 {
		t.Fatalf("invalid creates made topics %v", topicNames(got))
	}
}

func testTopicConfigs(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	in := map[string]string{"a": "1", "b": "2"}
	created := mustCreate(t, s, "t", 2, in)
	in["a"] = "changed by caller"
	created.Configs["b"] = "changed by caller"
	if got := mustTopic(t, s, "t").Configs; !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Fatalf("configs %v: the caller's maps leak into the store", got)
	}

	if err := s.SetTopicConfigs(ctx, "t", map[string]string{"c": "3"}); err != nil {
		t.Fatal(err)
	}
	got := mustTopic(t, s, "t")
	if !reflect.DeepEqual(got.Configs, map[string]string{"c": "3"}) {
		t.Fatalf("configs after replace = %v, want only c=3", got.Configs)
	}
	if got.ID != created.ID || got.Partitions != 2 {
		t.Fatalf("SetTopicConfigs changed id or partitions: %+v", got)
	}
	got.Configs["c"] = "changed by caller"
	if again := mustTopic(t, s, "t"); again.Configs["c"] != "3" {
		t.Fatal("a returned Configs map is the store's own")
	}
	for _, ts := range s.Topics() {
		ts.Configs["x"] = "changed by caller"
	}
	if again := mustTopic(t, s, "t"); len(again.Configs) != 1 {
		t.Fatal("Topics returns the store's own Configs maps")
	}

	if err := s.SetTopicConfigs(ctx, "t", nil); err != nil {
		t.Fatal(err)
	}
	if got := mustTopic(t, s, "t").Configs; got == nil || len(got) != 0 {
		t.Fatalf("configs after clearing = %#v, want an empty map", got)
	}
}

func testPartitionCount(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	created := mustCreate(t, s, "t", 3, map[string]string{"k": "v"})
	if err := s.SetPartitionCount(ctx, "t", 5); err != nil {
		t.Fatal(err)
	}
	got := mustTopic(t, s, "t")
	if got.Partitions != 5 || got.ID != created.ID || got.Configs["k"] != "v" {
		t.Fatalf("after raising to 5: %+v", got)
	}
	for _, n := range []int32{5, 4, 0} {
		if err := s.SetPartitionCount(ctx, "t", n); !errors.Is(err, ErrInvalidPartitions) {
			t.Errorf("SetPartitionCount(%d) from 5: %v, want ErrInvalidPartitions", n, err)
		}
	}
	if got := mustTopic(t, s, "t"); got.Partitions != 5 {
		t.Fatalf("partitions = %d after refused changes, want 5", got.Partitions)
	}
}

// testConcurrentUpdates races read-modify-write updates of one topic: none
// may be lost.
func testConcurrentUpdates(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	mustCreate(t, s, "t", 1, nil)
	const writers = 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i := range writers {
		wg.Go(func() {
			err := s.SetPartitionCount(ctx, "t", int32(i+2))
			if err != nil && !errors.Is(err, ErrInvalidPartitions) {
				errs <- fmt.Errorf("SetPartitionCount(%d): %w", i+2, err)
			}
		})
		wg.Go(func() {
			if err := s.SetTopicConfigs(ctx, "t", map[string]string{"writer": fmt.Sprint(i)}); err != nil {
				errs <- fmt.Errorf("SetTopicConfigs(%d): %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := mustTopic(t, s, "t")
	if got.Partitions != writers+1 {
		t.Fatalf("partitions = %d, want the largest asked for, %d", got.Partitions, writers+1)
	}
	if len(got.Configs) != 1 || got.Configs["writer"] == "" {
		t.Fatalf("configs = %v, want one writer's whole set", got.Configs)
	}
}

func testBrokerConfigs(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	if got := s.BrokerConfigs(1); got == nil || len(got) != 0 {
		t.Fatalf("BrokerConfigs of a broker never set = %#v, want an empty map", got)
	}
	if err := s.SetBrokerConfigs(ctx, 1, map[string]string{"x": "1", "z": "0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBrokerConfigs(ctx, 1, map[string]string{"y": "2"}); err != nil {
		t.Fatal(err)
	}
	got := s.BrokerConfigs(1)
	if !reflect.DeepEqual(got, map[string]string{"y": "2"}) {
		t.Fatalf("BrokerConfigs(1) = %v, want only y=2", got)
	}
	got["y"] = "changed by caller"
	if s.BrokerConfigs(1)["y"] != "2" {
		t.Fatal("BrokerConfigs returns the store's own map")
	}
	if got := s.BrokerConfigs(2); len(got) != 0 {
		t.Fatalf("BrokerConfigs(2) = %v, want none", got)
	}
}

func testSubscribe(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	mustCreate(t, s, "before", 1, nil) // before Subscribe: not reported

	var all, late eventLog
	unsubscribe := s.Subscribe(all.add)
	mustCreate(t, s, "a", 1, map[string]string{"k": "v"})
	if err := s.SetTopicConfigs(ctx, "a", map[string]string{"k": "w"}); err != nil {
		t.Fatal(err)
	}
	unsubscribeLate := s.Subscribe(late.add)
	defer unsubscribeLate()
	if err := s.SetPartitionCount(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic(ctx, Topic{Name: "a", Partitions: 1}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("CreateTopic of existing topic: %v", err)
	}
	if err := s.SetBrokerConfigs(ctx, 1, map[string]string{"b": "c"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}

	// Writes return only after subscribers have been told, so no waiting.
	got := all.get()
	want := []Event{
		{Kind: TopicCreated, Topic: Topic{Name: "a", Partitions: 1, Configs: map[string]string{"k": "v"}}},
		{Kind: TopicUpdated, Topic: Topic{Name: "a", Partitions: 1, Configs: map[string]string{"k": "w"}}},
		{Kind: TopicUpdated, Topic: Topic{Name: "a", Partitions: 2, Configs: map[string]string{"k": "w"}}},
		{Kind: TopicDeleted, Topic: Topic{Name: "a", Partitions: 2, Configs: map[string]string{"k": "w"}}},
	}
	if len(got) != len(want) {
		t.Fatalf("events: %s\nwant 4: created, updated, updated, deleted", describeEvents(got))
	}
	id := got[0].Topic.ID
	for i := range want {
		want[i].Topic.ID = id
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if gotLate := late.get(); len(gotLate) != 2 || gotLate[0].Kind != TopicUpdated || gotLate[1].Kind != TopicDeleted {
		t.Fatalf("late subscriber saw %s, want the last update and the delete", describeEvents(gotLate))
	}

	unsubscribe()
	mustCreate(t, s, "b", 1, nil)
	if n := len(all.get()); n != len(want) {
		t.Fatalf("subscriber called after unsubscribe (%d events)", n)
	}
	if gotLate := late.get(); len(gotLate) != 3 || gotLate[2].Kind != TopicCreated || gotLate[2].Topic.Name != "b" {
		t.Fatalf("remaining subscriber saw %s", describeEvents(gotLate))
	}
}

func testReadYourWrites(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	for i := range 15 {
		name := fmt.Sprintf("t%02d", i)
		created, err := s.CreateTopic(ctx, Topic{Name: name, Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Topic(name); !ok {
			t.Fatalf("%s not visible right after CreateTopic returned", name)
		}
		if _, ok := s.TopicByID(created.ID); !ok {
			t.Fatalf("%s not visible by id right after CreateTopic returned", name)
		}
		if err := s.SetPartitionCount(ctx, name, 2); err != nil {
			t.Fatal(err)
		}
		if got := mustTopic(t, s, name); got.Partitions != 2 {
			t.Fatalf("%s has %d partitions right after raising to 2", name, got.Partitions)
		}
		if i%2 == 0 {
			if err := s.DeleteTopic(ctx, name); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Topic(name); ok {
				t.Fatalf("%s visible right after DeleteTopic returned", name)
			}
		}
	}
	if n := len(s.Topics()); n != 7 {
		t.Fatalf("%d topics, want 7", n)
	}
}

func testSecondStoreSeesWrites(t *testing.T, h harness) {
	s1, s2 := h.open(t), h.open(t)
	ctx := testCtx(t)
	if s1.ClusterID() != s2.ClusterID() {
		t.Fatalf("two stores of one cluster disagree on its id: %q, %q", s1.ClusterID(), s2.ClusterID())
	}
	var seen eventLog
	defer s2.Subscribe(seen.add)()

	created := mustCreate(t, s1, "shared", 1, map[string]string{"a": "b"})
	waitFor(t, "second store to see the topic", func() bool {
		got, ok := s2.Topic("shared")
		return ok && reflect.DeepEqual(got, created)
	})
	if err := s1.SetPartitionCount(ctx, "shared", 4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second store's subscriber to see the update", func() bool {
		evs := seen.get()
		return len(evs) == 2 && evs[1].Kind == TopicUpdated && evs[1].Topic.Partitions == 4
	})
	if evs := seen.get(); evs[0].Kind != TopicCreated || !reflect.DeepEqual(evs[0].Topic, created) {
		t.Fatalf("second store's first event = %+v, want the creation", evs[0])
	}
	if err := s2.SetBrokerConfigs(ctx, 3, map[string]string{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := s2.DeleteTopic(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first store to see the deletion and broker configs", func() bool {
		_, ok := s1.Topic("shared")
		return !ok && s1.BrokerConfigs(3)["x"] == "y"
	})
}

func testBrokers(t *testing.T, h harness) {
	s1, s2 := h.open(t), h.open(t)
	ctx := testCtx(t)
	b2 := Broker{NodeID: 2, Host: "h2", Port: 9092, Rack: "r1", Listeners: []Endpoint{{Name: "PLAINTEXT", Host: "h2", Port: 9092}, {Name: "INTERNAL", Host: "h2.internal", Port: 29092}}}
	b1 := Broker{NodeID: 1, Host: "h1", Port: 9093}
	if err := s1.RegisterBroker(ctx, b2); err != nil {
		t.Fatal(err)
	}
	if got := s1.Brokers(); !slices.ContainsFunc(got, func(b Broker) bool { return reflect.DeepEqual(b, b2) }) {
		t.Fatalf("Brokers right after RegisterBroker = %v, want it to hold %v", got, b2)
	}
	if err := s2.RegisterBroker(ctx, b1); err != nil {
		t.Fatal(err)
	}
	both := []Broker{b1, b2}
	waitFor(t, "both stores to list both brokers, by node id", func() bool {
		return reflect.DeepEqual(s1.Brokers(), both) && reflect.DeepEqual(s2.Brokers(), both)
	})

	if host, port := b2.EndpointFor("INTERNAL"); host != "h2.internal" || port != 29092 {
		t.Fatalf("EndpointFor(INTERNAL) = %s:%d", host, port)
	}
	if host, port := b2.EndpointFor("OTHER"); host != "h2" || port != 9092 {
		t.Fatalf("EndpointFor of an unknown listener = %s:%d, want the first listener", host, port)
	}
	b2.Host = "h2-new"
	if err := s1.RegisterBroker(ctx, b2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second store to see the broker's new host", func() bool {
		return reflect.DeepEqual(s2.Brokers(), []Broker{b1, b2})
	})
	if err := s1.RegisterBroker(ctx, Broker{NodeID: 5, Host: "h5", Port: 1}); err == nil {
		t.Fatal("one store registered a second node id")
	}

	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "closed store's broker to leave Brokers()", func() bool {
		return reflect.DeepEqual(s1.Brokers(), []Broker{b2})
	})
}

func testClusterIDStable(t *testing.T, h harness) {
	s1 := h.open(t)
	id := s1.ClusterID()
	if _, err := ParseTopicID(id); err != nil || len(id) != 22 {
		t.Fatalf("cluster id %q: want 22 characters of base64url (%v)", id, err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := h.open(t)
	if got := s2.ClusterID(); got != id {
		t.Fatalf("cluster id after reopening = %q, want %q", got, id)
	}
}

func testClosed(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	mustCreate(t, s, "t", 1, nil)
	var seen eventLog
	s.Subscribe(seen.add)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := s.CreateTopic(ctx, Topic{Name: "u", Partitions: 1})
	errs := map[string]error{
		"CreateTopic":       err,
		"DeleteTopic":       s.DeleteTopic(ctx, "t"),
		"SetTopicConfigs":   s.SetTopicConfigs(ctx, "t", nil),
		"SetPartitionCount": s.SetPartitionCount(ctx, "t", 2),
		"SetBrokerConfigs":  s.SetBrokerConfigs(ctx, 1, nil),
		"RegisterBroker":    s.RegisterBroker(ctx, Broker{NodeID: 1, Host: "h", Port: 1}),
	}
	for _, name := range slices.Sorted(maps.Keys(errs)) {
		if !errors.Is(errs[name], ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, errs[name])
		}
	}
	s.Subscribe(seen.add)() // allowed, does nothing
	if n := len(seen.get()); n != 0 {
		t.Fatalf("subscriber of a closed store got %d events", n)
	}
}

// testProducerIDs: blocks from several stores, taken concurrently, never
// overlap, and a store opened later continues after them.
func testProducerIDs(t *testing.T, h harness) {
	ctx := testCtx(t)
	stores := []Store{h.open(t), h.open(t), h.open(t)}
	type block struct{ first, n int64 }
	var mu sync.Mutex
	var blocks []block
	var wg sync.WaitGroup
	for i, s := range stores {
		for j := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := int64(1 + i + j)
				first, err := s.AllocateProducerIDs(ctx, n)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				blocks = append(blocks, block{first, n})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	slices.SortFunc(blocks, func(a, b block) int { return cmp.Compare(a.first, b.first) })
	var next int64
	for _, b := range blocks {
		if b.first != next {
			t.Fatalf("blocks %v: a gap or an overlap at %d", blocks, next)
		}
		next = b.first + b.n
	}
	if first, err := h.open(t).AllocateProducerIDs(ctx, 10); err != nil || first != next {
		t.Fatalf("a new store's block starts at %d (%v), want %d", first, err, next)
	}
	if _, err := stores[0].AllocateProducerIDs(ctx, 0); err == nil {
		t.Error("a block of 0 ids was allocated")
	}
}

// testDeletionRecord: DeleteTopic records the deletion by topic id, and
// subscribers are told TopicDeleted (the one event that lets a broker
// remove data); a topic never deleted has no record.
func testDeletionRecord(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	doomed := mustCreate(t, s, "doomed", 2, nil)
	kept := mustCreate(t, s, "kept", 1, nil)
	var seen eventLog
	defer s.Subscribe(seen.add)()
	if s.Deleted(doomed.ID) {
		t.Fatal("Deleted before DeleteTopic")
	}
	if err := s.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	if !s.Deleted(doomed.ID) {
		t.Fatal("no deletion record after DeleteTopic")
	}
	if s.Deleted(kept.ID) {
		t.Fatal("deletion record for a topic never deleted")
	}
	evs := seen.get()
	if len(evs) != 1 || evs[0].Kind != TopicDeleted || evs[0].Topic.ID != doomed.ID {
		t.Fatalf("events = %s, want one TopicDeleted of doomed", describeEvents(evs))
	}
	if len(s.Faults()) != 0 {
		t.Fatalf("faults %v", s.Faults())
	}
}

// testCreatePlaced: a topic created with an assignment has every
// partition's state, leader first replica, as soon as CreateTopic returns
// (on this store and, once it has caught up, on another one); the same
// for SetPartitionCount; assignments of the wrong length are refused.
func testCreatePlaced(t *testing.T, h harness) {
	s := h.open(t)
	other := h.open(t)
	ctx := testCtx(t)
	assignment := [][]int32{{2, 1, 3}, {3, 2, 1}, {1, 3, 2}}
	var atCreate []PartitionState
	unsubscribe := s.Subscribe(func(ev Event) {
		if ev.Kind == TopicCreated {
			atCreate = s.PartitionStates(ev.Topic.Name)
		}
	})
	topic, err := s.CreateTopic(ctx, Topic{Name: "placed", Partitions: 3, ReplicationFactor: 3}, assignment...)
	unsubscribe()
	if err != nil {
		t.Fatal(err)
	}
	check := func(s Store, n int) {
		t.Helper()
		states := s.PartitionStates("placed")
		if len(states) != n {
			t.Fatalf("%d partition states, want %d", len(states), n)
		}
		for p, st := range states {
			want := assignment[p]
			if st.TopicID != topic.ID || !slices.Equal(st.Replicas, want) || st.Leader != want[0] || !slices.Equal(st.ISR, want) || st.LeaderEpoch != 0 {
				t.Fatalf("partition %d state %+v, want replicas and isr %v led by %d", p, st, want, want[0])
			}
		}
	}
	check(s, 3)
	if len(atCreate) != 3 {
		t.Fatalf("a subscriber told of the creation saw %d partition states, want all 3", len(atCreate))
	}
	waitFor(t, "the other store to see the placed topic", func() bool { return len(other.PartitionStates("placed")) == 3 })
	check(other, 3)

	assignment = append(assignment, []int32{2, 3, 1}, []int32{1, 2, 3})
	if err := s.SetPartitionCount(ctx, "placed", 5, assignment[3:]...); err != nil {
		t.Fatal(err)
	}
	check(s, 5)

	if _, err := s.CreateTopic(ctx, Topic{Name: "short", Partitions: 2}, []int32{1}); !errors.Is(err, ErrInvalidPartitionState) {
		t.Fatalf("CreateTopic with one replica list for two partitions: %v, want ErrInvalidPartitionState", err)
	}
	if _, ok := s.Topic("short"); ok {
		t.Fatal("topic created despite a bad assignment")
	}
	if err := s.SetPartitionCount(ctx, "placed", 7, []int32{1}); !errors.Is(err, ErrInvalidPartitionState) {
		t.Fatalf("SetPartitionCount with one replica list for two partitions: %v, want ErrInvalidPartitionState", err)
	}
	if err := s.SetPartitionCount(ctx, "placed", 6, []int32{1, 1}); !errors.Is(err, ErrInvalidPartitionState) {
		t.Fatalf("SetPartitionCount with a repeated replica: %v, want ErrInvalidPartitionState", err)
	}
	if got := mustTopic(t, s, "placed"); got.Partitions != 5 {
		t.Fatalf("refused SetPartitionCount changed the count to %d", got.Partitions)
	}
}

// testCreatePlacedLarge: a topic with more partitions than one etcd
// transaction holds still appears with every partition's state at once,
// and so do partitions added in bulk.
func testCreatePlacedLarge(t *testing.T, h harness) {
	s := h.open(t)
	ctx := testCtx(t)
	assign := func(n int) [][]int32 {
		out := make([][]int32, n)
		for p := range out {
			out[p] = []int32{int32(p%3 + 1)}
		}
		return out
	}
	var atCreate, atUpdate int
	defer s.Subscribe(func(ev Event) {
		switch ev.Kind {
		case TopicCreated:
			atCreate = len(s.PartitionStates(ev.Topic.Name))
		case TopicUpdated:
			atUpdate = len(s.PartitionStates(ev.Topic.Name))
		}
	})()
	if _, err := s.CreateTopic(ctx, Topic{Name: "large", Partitions: 300}, assign(300)...); err != nil {
		t.Fatal(err)
	}
	if n := len(s.PartitionStates("large")); n != 300 || atCreate != 300 {
		t.Fatalf("%d partition states after CreateTopic, %d when the creation was delivered; want 300", n, atCreate)
	}
	if err := s.SetPartitionCount(ctx, "large", 600, assign(600)[300:]...); err != nil {
		t.Fatal(err)
	}
	if n := len(s.PartitionStates("large")); n != 600 || atUpdate != 600 {
		t.Fatalf("%d partition states after SetPartitionCount, %d when the update was delivered; want 600", n, atUpdate)
	}
	if _, err := s.CreateTopic(ctx, Topic{Name: "large", Partitions: 300}, assign(300)...); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second CreateTopic: %v, want ErrTopicExists", err)
	}
	if n := len(s.PartitionStates("large")); n != 600 {
		t.Fatalf("a refused CreateTopic changed the partition states: %d", n)
	}
	for _, st := range s.PartitionStates("large") {
		if want := int32(st.Partition%3 + 1); st.Leader != want {
			t.Fatalf("partition %d led by %d, want %d", st.Partition, st.Leader, want)
		}
	}
}
