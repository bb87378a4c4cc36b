package broker

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

// markDir writes a file into a partition directory, standing for its data.
func markDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantMarked fails unless dir holds the file markDir wrote.
func wantMarked(t *testing.T, dir string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "marker")); err != nil || string(b) != "data" {
		t.Fatalf("%s lost its data: %v", dir, err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestPartitionsKeptWhenTopicVanishes: a topic that leaves the metadata
// without a deletion (TopicUnavailable) is closed with its directory
// kept, and opened again when the same topic id comes back.
func TestPartitionsKeptWhenTopicVanishes(t *testing.T) {
	store := &hidingStore{Store: metadata.NewMemoryStore("test-cluster")}
	b := newTestBrokerOn(t, store)
	tp := createPlaced(t, b, metadata.Topic{Name: "kept", Partitions: 2})
	if _, err := b.parts.get("kept", 1); err != nil {
		t.Fatal(err)
	}
	dir := b.parts.partitionDir("kept", 1)
	markDir(t, dir)

	// The store's cache loses the topic, then says so; a partition state
	// written meanwhile (the controller's) must not reopen it.
	store.hide("kept", true)
	b.parts.onEvent(metadata.Event{Kind: metadata.TopicUnavailable, Topic: tp})
	if st, ok := store.Partition("kept", 1); ok {
		b.parts.onEvent(metadata.Event{Kind: metadata.PartitionChanged, Partition: st})
	}
	if b.parts.lookup("kept", 1) != nil {
		t.Fatal("a topic that left the metadata is still open")
	}
	wantMarked(t, dir)

	store.hide("kept", false)
	b.parts.onEvent(metadata.Event{Kind: metadata.TopicCreated, Topic: tp})
	if p := b.parts.lookup("kept", 1); p == nil || p.topicID != tp.ID {
		t.Fatal("the topic back in the metadata was not opened again")
	}
	wantMarked(t, dir)
}

// TestStrayDirSetAsideAndRestored: a directory of another topic id of the
// same name is renamed <topic>-<p>.<id>-stray, not removed, and moved back
// when its topic id is opened again.
func TestStrayDirSetAsideAndRestored(t *testing.T) {
	b := newTestBroker(t)
	old := createPlaced(t, b, metadata.Topic{Name: "s", Partitions: 1})
	if _, err := b.parts.get("s", 0); err != nil {
		t.Fatal(err)
	}
	dir := b.parts.partitionDir("s", 0)
	markDir(t, dir)
	b.parts.onEvent(metadata.Event{Kind: metadata.TopicUnavailable, Topic: old})

	newer := metadata.Topic{Name: "s", ID: metadata.TopicID{9, 9, 9}, Partitions: 1, Configs: map[string]string{}}
	b.parts.mu.Lock()
	_, err := b.parts.openLocked(newer, 0)
	b.parts.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	stray := dir + "." + old.ID.String() + "-stray"
	wantMarked(t, stray)
	if id, err := readPartitionMetadata(dir); err != nil || id != newer.ID {
		t.Fatalf("%s holds topic id %v (%v), want the new topic's", dir, id, err)
	}
	if top, p, id, ok := parseAsideName(filepath.Base(stray), straySuffix); !ok || top != "s" || p != 0 || id != old.ID {
		t.Fatalf("parseAsideName(%s) = %q %d %v %v", filepath.Base(stray), top, p, id, ok)
	}

	b.parts.mu.Lock()
	_, err = b.parts.openLocked(old, 0)
	b.parts.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	wantMarked(t, dir)
	if exists(stray) {
		t.Fatal("the stray directory was not moved back")
	}
	if !exists(dir + "." + newer.ID.String() + "-stray") {
		t.Fatal("the other topic id's directory was not set aside")
	}
}

// TestDeleteTopicRemovesAfterDelay: DeleteTopics renames the directories
// for deletion at once (the partition directory is gone before the
// answer) and removes them after file.delete.delay.ms.
func TestDeleteTopicRemovesAfterDelay(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	tp := createPlaced(t, b, metadata.Topic{Name: "doomed", Partitions: 1, Configs: map[string]string{"file.delete.delay.ms": "300"}})
	if _, err := b.parts.get("doomed", 0); err != nil {
		t.Fatal(err)
	}
	dir := b.parts.partitionDir("doomed", 0)
	resp := adminDeleteByName(t, b, c, 5, "doomed")
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("DeleteTopics: error %d", code)
	}
	if exists(dir) {
		t.Fatal("partition directory still there after DeleteTopics answered")
	}
	aside := dir + "." + tp.ID.String() + "-delete"
	if !exists(aside) {
		t.Fatalf("no %s", aside)
	}
	waitUntil(t, "the -delete directory to go", func() bool { return !exists(aside) })
}

// TestStartupScanOfDataDir: at start, a directory left for deletion is
// removed and one of a topic id the metadata does not know is set aside
// as stray, with its data.
func TestStartupScanOfDataDir(t *testing.T) {
	dataDir := t.TempDir()
	unknown := metadata.TopicID{1, 2, 3}
	orphan := filepath.Join(dataDir, "orphan-0")
	if err := os.MkdirAll(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writePartitionMetadata(orphan, unknown); err != nil {
		t.Fatal(err)
	}
	markDir(t, orphan)
	leftover := filepath.Join(dataDir, "gone-3."+unknown.String()+"-delete")
	if err := os.MkdirAll(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{NodeID: 1, AdvertisedHost: "localhost", AdvertisedPort: 9092, DataDir: dataDir, Logger: zerolog.Nop()},
		metadata.NewMemoryStore("test-cluster"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	wantMarked(t, orphan+"."+unknown.String()+"-stray")
	waitUntil(t, "the leftover -delete directory to go", func() bool { return !exists(leftover) })
}

// TestCreateTopicsPlacesAsAssigned: CreateTopics and CreatePartitions
// write the partitions' states with the topic (no waiting for the
// controller), as the request's assignment places them, first replica
// leading; without an assignment they are placed over the live brokers.
func TestCreateTopicsPlacesAsAssigned(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminRegisterPeer(t, b, metadata.Broker{NodeID: 2, Host: "h2", Port: 9092})
	adminRegisterPeer(t, b, metadata.Broker{NodeID: 3, Host: "h3", Port: 9092})

	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "manual", -1, -1
	assignment := [][]int32{{3, 1, 2}, {2, 3, 1}}
	for p, replicas := range assignment {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	adminMustCreate(t, b, c, rt, adminTopic("auto", 3, 2))
	check := func(topic string, want [][]int32) {
		t.Helper()
		states := b.store.PartitionStates(topic)
		if len(states) != len(want) {
			t.Fatalf("%s has %d partition states right after the answer, want %d", topic, len(states), len(want))
		}
		for p, st := range states {
			if want[p] != nil && !slices.Equal(st.Replicas, want[p]) || st.Leader != st.Replicas[0] {
				t.Fatalf("%s-%d: replicas %v leader %d, want %v led by its first", topic, p, st.Replicas, st.Leader, want[p])
			}
		}
	}
	check("manual", assignment)
	check("auto", [][]int32{nil, nil, nil})
	for _, st := range b.store.PartitionStates("auto") {
		if len(st.Replicas) != 2 {
			t.Fatalf("auto-%d has replicas %v, want 2", st.Partition, st.Replicas)
		}
	}

	req := kmsg.NewPtrCreatePartitionsRequest()
	rp := kmsg.NewCreatePartitionsRequestTopic()
	rp.Topic, rp.Count = "manual", 3
	a := kmsg.NewCreatePartitionsRequestTopicAssignment()
	a.Replicas = []int32{1, 2, 3}
	rp.Assignment = append(rp.Assignment, a)
	req.Topics = append(req.Topics, rp)
	resp, err := b.handleCreatePartitions(c, req)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("CreatePartitions: %v", kerr.ErrorForCode(code))
	}
	check("manual", append(assignment, []int32{1, 2, 3}))
}

// TestParseAsideName reads the names partition_dirs.go writes, the topic
// id's '-' and '_' and a counter included, and refuses others.
func TestParseAsideName(t *testing.T) {
	id := metadata.TopicID{0xfb, 0xef, 0xbe, 0xff} // "-----..." in base64url
	for _, tc := range []struct {
		name, suffix, topic string
		part                int32
		ok                  bool
	}{
		{"orders-2." + id.String() + "-stray", straySuffix, "orders", 2, true},
		{"my-topic.v1-10." + id.String() + "-delete", deleteSuffix, "my-topic.v1", 10, true},
		{"a-0." + id.String() + ".3-delete", deleteSuffix, "a", 0, true},
		{"a-0." + id.String() + "-stray", deleteSuffix, "", 0, false},
		{"a-0.short-delete", deleteSuffix, "", 0, false},
		{"a-x." + id.String() + "-delete", deleteSuffix, "", 0, false},
		{"-delete", deleteSuffix, "", 0, false},
	} {
		topic, part, got, ok := parseAsideName(tc.name, tc.suffix)
		if ok != tc.ok || (ok && (topic != tc.topic || part != tc.part || got != id)) {
			t.Errorf("parseAsideName(%q) = %q %d %v %v, want %q %d %v", tc.name, topic, part, got, ok, tc.topic, tc.part, tc.ok)
		}
	}
}
