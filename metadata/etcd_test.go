package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
)

// freeAddr returns a loopback host:port that was free a moment ago. etcd
// cannot be told to pick its own port (it advertises the URL it is given),
// so tests pick one this way.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// testEtcd is an embedded etcd member for a test.
type testEtcd struct {
	cfg EmbeddedConfig
	e   *EmbeddedEtcd
}

// startTestEtcd starts a one-member etcd on free loopback ports in a
// temporary directory; the test's cleanup stops it.
func startTestEtcd(t *testing.T, log zerolog.Logger) *testEtcd {
	t.Helper()
	te := &testEtcd{cfg: EmbeddedConfig{
		NodeID:     1,
		DataDir:    filepath.Join(t.TempDir(), "etcd"),
		ClientAddr: freeAddr(t),
		PeerAddr:   freeAddr(t),
		Logger:     log,
	}}
	te.start(t)
	return te
}

// start starts (or restarts) the member on te.cfg.
func (te *testEtcd) start(t *testing.T) {
	t.Helper()
	e, err := StartEmbeddedEtcd(testCtx(t), te.cfg)
	if err != nil {
		t.Fatal(err)
	}
	te.e = e
	t.Cleanup(e.Close)
}

// rawClient is a plain etcd client, for writing keys behind the store.
func (te *testEtcd) rawClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   te.e.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      newZapLogger(zerolog.Nop(), zapcore.WarnLevel, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// etcdHarness is one cluster on a shared etcd: a prefix of its own.
type etcdHarness struct {
	endpoints []string
	prefix    string
}

func (h *etcdHarness) open(t *testing.T) Store {
	t.Helper()
	s, err := OpenEtcd(testCtx(t), EtcdConfig{Endpoints: h.endpoints, Prefix: h.prefix, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestEtcdConformance(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	var n atomic.Int64
	runConformance(t, func(t *testing.T) harness {
		return &etcdHarness{endpoints: te.e.Endpoints(), prefix: fmt.Sprintf("/test%d", n.Add(1))}
	})
}

// TestEtcdClusterIDSurvivesRestart stops etcd and starts it again on the
// same data directory.
func TestEtcdClusterIDSurvivesRestart(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	h := &etcdHarness{endpoints: te.e.Endpoints()}
	s := h.open(t)
	id := s.ClusterID()
	created := mustCreate(t, s, "kept", 2, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	te.e.Close()

	te.start(t)
	s = h.open(t)
	if got := s.ClusterID(); got != id {
		t.Fatalf("cluster id after restart = %q, want %q", got, id)
	}
	if got := mustTopic(t, s, "kept"); !reflect.DeepEqual(got, created) {
		t.Fatalf("topic after restart = %+v, want %+v", got, created)
	}
}

// TestEtcdGivenClusterID checks EtcdConfig.ClusterID: the first store
// creates the cluster under it, a second store asking for the same id
// opens, one asking for another id opens the cluster under its stored id
// with a warning, a malformed one fails.
func TestEtcdGivenClusterID(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	var logs syncBuffer
	open := func(id string) (*EtcdStore, error) {
		s, err := OpenEtcd(testCtx(t), EtcdConfig{Endpoints: te.e.Endpoints(), Prefix: "/given", ClusterID: id, Logger: zerolog.New(&logs)})
		if err == nil {
			t.Cleanup(func() { _ = s.Close() })
		}
		return s, err
	}
	const id = "4L6g3nShT-eMCtK--X86sw" // testcontainers' CLUSTER_ID
	s, err := open(id)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ClusterID(); got != id {
		t.Fatalf("cluster id = %q, want %q", got, id)
	}
	if s2, err := open(id); err != nil || s2.ClusterID() != id {
		t.Fatalf("reopen with the same id: %v", err)
	}
	if s3, err := open(""); err != nil || s3.ClusterID() != id {
		t.Fatalf("reopen with no id: %v", err)
	}
	if n := logs.count("keeping it"); n != 0 {
		t.Fatalf("%d warnings before another id was given", n)
	}
	// Kafka's images format with --ignore-formatted: CLUSTER_ID names a new
	// cluster only, another id for an existing one is a warning.
	if s4, err := open("MkU3OEVBNTcwNTJENDM2Qk"); err != nil || s4.ClusterID() != id {
		t.Fatalf("another id: err = %v, want the stored id %s kept", err, id)
	}
	if n := logs.count("keeping it"); n != 1 {
		t.Fatalf("another id: %d warnings, want 1", n)
	}
	if _, err := open("not-an-id"); err == nil {
		t.Fatal("a malformed id opened")
	}
}

// syncBuffer is a bytes.Buffer safe for a logger shared by goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func TestEtcdSkipsUndecodableValues(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	cli := te.rawClient(t)
	ctx := testCtx(t)
	good := Topic{Name: "good", ID: TopicID{7}, Partitions: 2, Configs: map[string]string{}}
	goodVal, err := encodeTopic(good)
	if err != nil {
		t.Fatal(err)
	}
	for key, val := range map[string]string{
		"/gregor/topics/good":           string(goodVal),
		"/gregor/topics/bad":            "not json",
		"/gregor/topics/zero":           `{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","partitions":1,"configs":{}}`,
		"/gregor/brokers/7":             `{"v":1,"node_id":8,"host":"h","port":1,"rack":""}`,
		"/gregor/brokers/x":             `{"v":1,"node_id":8,"host":"h","port":1,"rack":""}`,
		"/gregor/configs/brokers/3":     `{`,
		"/gregor/something/from/future": "ignored without a warning",
	} {
		if _, err := cli.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}

	var logs syncBuffer
	s, err := OpenEtcd(ctx, EtcdConfig{Endpoints: te.e.Endpoints(), Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const warning = "skipping undecodable metadata value"
	const unreadable = "unreadable metadata value"
	if n, m := logs.count(warning), logs.count(unreadable); n != 2 || m != 3 {
		t.Fatalf("%d warnings about undecodable values (want 2, the brokers) and %d errors about unreadable ones (want 3):\n%s", n, m, logs.buf.String())
	}
	if got := s.Topics(); !reflect.DeepEqual(got, []Topic{good}) {
		t.Fatalf("Topics = %+v, want only the good one", got)
	}
	if got := s.Brokers(); len(got) != 0 {
		t.Fatalf("Brokers = %v, want none", got)
	}
	var keys []string
	for _, f := range s.Faults() {
		keys = append(keys, f.Key)
	}
	if want := []string{"/gregor/configs/brokers/3", "/gregor/topics/bad", "/gregor/topics/zero"}; !slices.Equal(keys, want) {
		t.Fatalf("Faults = %v, want %v", keys, want)
	}
	if s.TopicFault("bad") == nil || s.TopicFault("good") != nil {
		t.Fatalf("TopicFault(bad) = %v, TopicFault(good) = %v", s.TopicFault("bad"), s.TopicFault("good"))
	}

	// A value that turns bad under the watch: the last good one stays,
	// with no event, and the key is reported until it is repaired.
	var seen eventLog
	defer s.Subscribe(seen.add)()
	if _, err := cli.Put(ctx, "/gregor/topics/good", `{"v":1}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store to report the broken value", func() bool { return s.TopicFault("good") != nil })
	if got := mustTopic(t, s, "good"); !reflect.DeepEqual(got, good) {
		t.Fatalf("topic with a broken value = %+v, want the last good %+v", got, good)
	}
	if _, err := cli.Put(ctx, "/gregor/topics/good", string(goodVal)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the repair to clear the fault", func() bool { return s.TopicFault("good") == nil })
	mustSync(t, s) // the cache changes before its events are published
	if evs := seen.get(); len(evs) != 1 || evs[0].Kind != TopicUpdated {
		t.Fatalf("events = %s, want only the repair's TopicUpdated", describeEvents(evs))
	}

	// A value of a newer format under the watch: the topic is no longer
	// served (TopicUnavailable, never TopicDeleted), and comes back with
	// the same id once the value is put back.
	if _, err := cli.Put(ctx, "/gregor/topics/good", strings.Replace(string(goodVal), `"v":1`, `"v":2`, 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store to stop serving the topic of a newer format", func() bool {
		_, ok := s.Topic("good")
		return !ok
	})
	if err := s.TopicFault("good"); !errors.Is(err, ErrNewerVersion) {
		t.Fatalf("TopicFault = %v, want ErrNewerVersion", err)
	}
	if logs.count("upgrade Gregor") == 0 {
		t.Fatalf("no log line says to upgrade:\n%s", logs.buf.String())
	}
	if _, err := cli.Put(ctx, "/gregor/topics/good", string(goodVal)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the topic to come back", func() bool {
		got, ok := s.Topic("good")
		return ok && got.ID == good.ID
	})
	mustSync(t, s) // the cache changes before its events are published
	evs := seen.get()
	if len(evs) != 3 || evs[1].Kind != TopicUnavailable || evs[2].Kind != TopicCreated || evs[2].Topic.ID != good.ID {
		t.Fatalf("events = %s, want TopicUpdated, TopicUnavailable, TopicCreated", describeEvents(evs))
	}
	// The watch goes on.
	mustCreate(t, s, "after", 1, nil)
}

// TestEtcdRefusesNewerVersionAtLoad: a store that finds a value of a
// newer format when it opens refuses to open, saying to upgrade.
func TestEtcdRefusesNewerVersionAtLoad(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	cli := te.rawClient(t)
	ctx := testCtx(t)
	if _, err := cli.Put(ctx, "/gregor/topics/future", `{"v":2,"id":"AAAAAAAAAAAAAAAAAAAAAA","partitions":1}`); err != nil {
		t.Fatal(err)
	}
	_, err := OpenEtcd(ctx, EtcdConfig{Endpoints: te.e.Endpoints(), Logger: zerolog.Nop()})
	if !errors.Is(err, ErrNewerVersion) || !strings.Contains(err.Error(), "upgrade Gregor") || !strings.Contains(err.Error(), "/gregor/topics/future") {
		t.Fatalf("OpenEtcd = %v, want ErrNewerVersion naming the key and saying to upgrade", err)
	}
}

// TestEtcdVanishedTopicIsNotDeleted: a topic key removed behind the store
// (no deletion record), or its whole prefix emptied, is TopicUnavailable;
// DeleteTopic is TopicDeleted, with a deletion record on a lease.
func TestEtcdVanishedTopicIsNotDeleted(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	cli := te.rawClient(t)
	ctx := testCtx(t)
	s := (&etcdHarness{endpoints: te.e.Endpoints()}).open(t)
	a := mustCreate(t, s, "a", 1, nil)
	b := mustCreate(t, s, "b", 1, nil)
	var seen eventLog
	defer s.Subscribe(seen.add)()

	if _, err := cli.Delete(ctx, "/gregor/topics/a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store to drop a", func() bool { _, ok := s.Topic("a"); return !ok })
	mustSync(t, s) // the cache changes before its events are published
	if evs := seen.get(); len(evs) != 1 || evs[0].Kind != TopicUnavailable || evs[0].Topic.ID != a.ID {
		t.Fatalf("events = %s, want TopicUnavailable of a", describeEvents(evs))
	}
	if s.Deleted(a.ID) {
		t.Fatal("a vanished key counts as deleted")
	}

	if err := s.DeleteTopic(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if evs := seen.get(); len(evs) != 2 || evs[1].Kind != TopicDeleted || evs[1].Topic.ID != b.ID {
		t.Fatalf("events = %s, want TopicDeleted of b", describeEvents(evs))
	}
	got, err := cli.Get(ctx, "/gregor/deleted-topics/"+b.ID.String())
	if err != nil || len(got.Kvs) != 1 || got.Kvs[0].Lease == 0 {
		t.Fatalf("deletion record: %v %v, want one key on a lease", got, err)
	}
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(got.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL != int64(deletionRecordTTL/time.Second) {
		t.Fatalf("deletion record lease %+v, %v: want a TTL of %v", ttl, err, deletionRecordTTL)
	}

	// The whole prefix emptied, as an etcd restored from nothing.
	c := mustCreate(t, s, "c", 1, nil)
	if _, err := cli.Delete(ctx, "/gregor/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store to drop c", func() bool { _, ok := s.Topic("c"); return !ok })
	mustSync(t, s) // the cache changes before its events are published
	evs := seen.get()
	if last := evs[len(evs)-1]; last.Kind != TopicUnavailable || last.Topic.ID != c.ID {
		t.Fatalf("events = %s, want TopicUnavailable of c last", describeEvents(evs))
	}
}

// TestEtcdResyncKeepsLastGood: a value broken while the watch was away
// (and compacted past) keeps its last good value through the resync.
func TestEtcdResyncKeepsLastGood(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	ctx := testCtx(t)
	cli := te.rawClient(t)
	other := (&etcdHarness{endpoints: te.e.Endpoints()}).open(t)
	keep := mustCreate(t, other, "keep", 1, nil)
	if _, err := other.SetPartitionState(ctx, PartitionState{Topic: "keep", TopicID: keep.ID, Replicas: []int32{1}, Leader: 1, ISR: []int32{1}}); err != nil {
		t.Fatal(err)
	}

	s := newEtcdStore(zerolog.Nop(), te.rawClient(t), "/gregor/", 3*time.Second)
	if err := s.load(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var seen eventLog
	s.Subscribe(seen.add)
	for _, key := range []string{"/gregor/topics/keep", "/gregor/partitions/keep/0"} {
		if _, err := cli.Put(ctx, key, "garbage"); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, other, "marker", 1, nil)
	resp, err := cli.Get(ctx, "/gregor/cluster/id")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	s.start()
	waitFor(t, "the resync", func() bool { _, ok := s.Topic("marker"); return ok })
	if got, ok := s.Topic("keep"); !ok || got.ID != keep.ID {
		t.Fatalf("Topic(keep) after the resync = %+v, %v: want the last good", got, ok)
	}
	if st, ok := s.Partition("keep", 0); !ok || st.Leader != 1 {
		t.Fatalf("Partition(keep, 0) after the resync = %+v, %v: want the last good", st, ok)
	}
	if n := len(s.Faults()); n != 2 {
		t.Fatalf("%d faults, want 2", n)
	}
	mustSync(t, s) // the cache changes before its events are published
	for _, ev := range seen.get() {
		if ev.Topic.Name == "keep" {
			t.Fatalf("event %s for the topic whose value broke", describeEvents([]Event{ev}))
		}
	}
}

// TestEtcdResyncAfterCompaction lets changes pile up before the watch
// starts, compacts them away, and checks that the store reads everything
// again and reports the difference.
func TestEtcdResyncAfterCompaction(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	ctx := testCtx(t)
	var logs syncBuffer
	other := (&etcdHarness{endpoints: te.e.Endpoints()}).open(t)
	mustCreate(t, other, "old", 1, nil)
	mustCreate(t, other, "keep", 1, nil)

	s := newEtcdStore(zerolog.New(&logs), te.rawClient(t), "/gregor/", 3*time.Second)
	if err := s.load(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var seen eventLog
	s.Subscribe(seen.add)

	if err := other.DeleteTopic(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, other, "a", 1, nil)
	mustCreate(t, other, "b", 1, nil)
	if err := other.SetPartitionCount(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteTopic(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, other, "c", 1, nil)
	if err := other.SetPartitionCount(ctx, "keep", 3); err != nil {
		t.Fatal(err)
	}
	cli := te.rawClient(t)
	resp, err := cli.Get(ctx, "/gregor/cluster/id")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}

	s.start()
	waitFor(t, "the store to catch up after compaction", func() bool {
		return slices.Equal(topicNames(s.Topics()), []string{"a", "c", "keep"})
	})
	if got := mustTopic(t, s, "a"); got.Partitions != 2 {
		t.Fatalf("a has %d partitions, want 2", got.Partitions)
	}
	var got []string
	mustSync(t, s) // the cache changes before its events are published
	for _, ev := range seen.get() {
		got = append(got, fmt.Sprintf("%d:%s", ev.Kind, ev.Topic.Name))
	}
	want := []string{
		fmt.Sprintf("%d:old", TopicDeleted),
		fmt.Sprintf("%d:a", TopicCreated),
		fmt.Sprintf("%d:c", TopicCreated),
		fmt.Sprintf("%d:keep", TopicUpdated),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if logs.count("fell behind compaction") != 1 {
		t.Fatalf("want one warning about compaction:\n%s", logs.buf.String())
	}
	// The watch goes on from the resync's revision.
	mustCreate(t, other, "d", 1, nil)
	waitFor(t, "the store to see a write after the resync", func() bool {
		_, ok := s.Topic("d")
		return ok
	})
}

// TestEtcdRegistrationSurvivesLostLease revokes the registration's lease
// behind the store's back, as etcd does when a broker is cut off for
// longer than the TTL, and checks the store registers again.
func TestEtcdRegistrationSurvivesLostLease(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	ctx := testCtx(t)
	h := &etcdHarness{endpoints: te.e.Endpoints()}
	s := h.open(t).(*EtcdStore)
	watcher := h.open(t)
	b := Broker{NodeID: 4, Host: "h4", Port: 9092}
	if err := s.RegisterBroker(ctx, b); err != nil {
		t.Fatal(err)
	}
	s.reg.Lock()
	lease := s.reg.lease
	s.reg.Unlock()

	if _, err := te.rawClient(t).Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registration to go with its lease", func() bool {
		return len(watcher.Brokers()) == 0
	})
	waitFor(t, "the store to register again", func() bool {
		return reflect.DeepEqual(watcher.Brokers(), []Broker{b})
	})
	s.reg.Lock()
	renewed := s.reg.lease
	s.reg.Unlock()
	if renewed == lease {
		t.Fatal("registered again under the revoked lease")
	}
}

// TestEtcdOpenFailsWithoutEtcd checks that OpenEtcd gives up when its
// context ends.
func TestEtcdOpenFailsWithoutEtcd(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := OpenEtcd(ctx, EtcdConfig{Endpoints: []string{"http://" + freeAddr(t)}, Logger: zerolog.Nop()})
	if err == nil || !strings.HasPrefix(err.Error(), "metadata: ") {
		t.Fatalf("OpenEtcd with no etcd: %v, want a metadata error", err)
	}
}

func TestEmbeddedConfig(t *testing.T) {
	base := EmbeddedConfig{NodeID: 3, DataDir: t.TempDir()}
	ec, err := embedConfig(base, new(atomic.Bool))
	if err != nil {
		t.Fatal(err)
	}
	if ec.Name != "gregor-3" || ec.InitialCluster != "gregor-3=http://127.0.0.1:2380" ||
		ec.ListenClientUrls[0].String() != "http://127.0.0.1:2379" || len(ec.ListenMetricsUrls) != 0 {
		t.Fatalf("defaults: name %q, initial cluster %q, client %v, metrics %v",
			ec.Name, ec.InitialCluster, ec.ListenClientUrls, ec.ListenMetricsUrls)
	}

	named := base
	named.ClientAddr, named.PeerAddr = "gregor-3:2379", "gregor-3:2380"
	if ec, err := embedConfig(named, new(atomic.Bool)); err != nil ||
		ec.ListenClientUrls[0].String() != "http://0.0.0.0:2379" || ec.AdvertiseClientUrls[0].String() != "http://gregor-3:2379" ||
		ec.ListenPeerUrls[0].String() != "http://0.0.0.0:2380" || ec.AdvertisePeerUrls[0].String() != "http://gregor-3:2380" {
		t.Fatalf("host names: listen %v / %v, advertise %v / %v, %v", ec.ListenClientUrls, ec.ListenPeerUrls, ec.AdvertiseClientUrls, ec.AdvertisePeerUrls, err)
	}

	cfg := base
	cfg.InitialCluster = "1=http://h1:2380, 2=http://h2:2380,other=http://h3:2380"
	if ec, err = embedConfig(cfg, new(atomic.Bool)); err != nil {
		t.Fatal(err)
	}
	if want := "gregor-1=http://h1:2380,gregor-2=http://h2:2380,other=http://h3:2380"; ec.InitialCluster != want {
		t.Fatalf("initial cluster %q, want %q", ec.InitialCluster, want)
	}

	for _, bad := range []EmbeddedConfig{
		{NodeID: 1},
		{NodeID: 1, DataDir: "d", ClientAddr: "127.0.0.1:0"},
		{NodeID: 1, DataDir: "d", PeerAddr: "no-port"},
		{NodeID: 1, DataDir: "d", InitialCluster: "1http://h1:2380"},
	} {
		if _, err := embedConfig(bad, new(atomic.Bool)); err == nil || !strings.HasPrefix(err.Error(), "metadata: ") {
			t.Errorf("embedConfig(%+v): %v, want a metadata error", bad, err)
		}
	}
}

// TestEtcdControllerLosesRoleWithLease: when the controller's election
// lease is gone (it was cut off from etcd past its TTL), the role ends:
// lost is closed and another candidate is elected.
func TestEtcdControllerLosesRoleWithLease(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	ctx := testCtx(t)
	h := &etcdHarness{endpoints: te.e.Endpoints()}
	s := h.open(t).(*EtcdStore)
	other := h.open(t)
	lost, _, err := s.Campaign(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.elect.Lock()
	leases := slices.Clone(s.elect.leases)
	s.elect.Unlock()
	if len(leases) != 1 {
		t.Fatalf("%d election leases, want 1", len(leases))
	}
	won := make(chan error, 1)
	go func() {
		_, _, err := other.Campaign(ctx, 2)
		won <- err
	}()
	if _, err := te.rawClient(t).Revoke(ctx, leases[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the controller kept its role after its lease was revoked")
	}
	if err := <-won; err != nil {
		t.Fatalf("the other candidate: %v", err)
	}
	if id, ok := s.Controller(); !ok || id != 2 {
		waitFor(t, "the old controller's store to see controller 2", func() bool {
			id, ok := s.Controller()
			return ok && id == 2
		})
	}
}

// TestEtcdExpireBroker: ExpireBroker ends one incarnation of a broker (its
// registration and its controller candidacy) at once, refuses the store's
// own, and leaves a newer incarnation alone.
func TestEtcdExpireBroker(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	ctx := testCtx(t)
	h := &etcdHarness{endpoints: te.e.Endpoints()}
	a := h.open(t).(*EtcdStore)
	b := h.open(t).(*EtcdStore)
	if err := a.RegisterBroker(ctx, Broker{NodeID: 1, Host: "h1", Port: 9092}); err != nil {
		t.Fatal(err)
	}
	if err := b.RegisterBroker(ctx, Broker{NodeID: 2, Host: "h2", Port: 9092}); err != nil {
		t.Fatal(err)
	}
	lost, _, err := a.Campaign(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan error, 1)
	go func() {
		_, _, err := b.Campaign(ctx, 2)
		won <- err
	}()
	waitFor(t, "b to see broker 1", func() bool { _, ok := b.BrokerIncarnation(1); return ok })
	inc, _ := b.BrokerIncarnation(1)
	if own, _ := a.BrokerIncarnation(1); a.ExpireBroker(ctx, 1, own) == nil {
		t.Error("a store expired its own registration")
	}

	if err := b.ExpireBroker(ctx, 1, inc); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("broker 1 kept the controller role after ExpireBroker")
	}
	if err := <-won; err != nil {
		t.Fatalf("the other candidate: %v", err)
	}
	// a is alive, so it registers again: a new incarnation, which the old
	// one's expiry must not touch.
	waitFor(t, "broker 1 to register again", func() bool {
		cur, ok := b.BrokerIncarnation(1)
		return ok && cur != inc
	})
	renewed, _ := b.BrokerIncarnation(1)
	if err := b.ExpireBroker(ctx, 1, inc); err != nil {
		t.Fatal(err)
	}
	// Whatever the expiry did is in b's cache once it has synced.
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if cur, ok := b.BrokerIncarnation(1); !ok || cur != renewed {
		t.Errorf("expiring an old incarnation touched the new one: %v %v, want %v", cur, ok, renewed)
	}
	if id, ok := b.Controller(); !ok || id != 2 {
		t.Errorf("controller %d %v, want 2", id, ok)
	}
}

// TestEtcdEmptiedPrefixRegistersAgain: when the whole prefix is emptied
// under live leases (etcd restored by hand), the store puts its broker
// registration back and its controller role is reported lost, so the
// controller campaigns again.
func TestEtcdEmptiedPrefixRegistersAgain(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	cli := te.rawClient(t)
	ctx := testCtx(t)
	s := (&etcdHarness{endpoints: te.e.Endpoints()}).open(t)
	if err := s.RegisterBroker(ctx, Broker{NodeID: 4, Host: "h", Port: 1}); err != nil {
		t.Fatal(err)
	}
	lost, resign, err := s.Campaign(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer resign()
	if _, err := cli.Delete(ctx, "/gregor/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("controller role not reported lost after its key vanished")
	}
	waitFor(t, "the registration to be put back", func() bool {
		bs := s.Brokers()
		return len(bs) == 1 && bs[0].NodeID == 4
	})
	resign()
	if _, _, err := s.Campaign(ctx, 4); err != nil {
		t.Fatalf("campaigning again: %v", err)
	}
	if id, ok := s.Controller(); !ok || id != 4 {
		t.Fatalf("Controller = %d, %v", id, ok)
	}
}

// TestEtcdNewerPartitionStateSuspendsTopic: a partition state of a newer
// format seen on the watch, or found by a resync, takes its topic out of
// service (TopicUnavailable, never TopicDeleted; TopicFault says why) and
// the topic comes back with the same id once the state is readable again.
func TestEtcdNewerPartitionStateSuspendsTopic(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	cli := te.rawClient(t)
	ctx := testCtx(t)
	other := (&etcdHarness{endpoints: te.e.Endpoints()}).open(t)
	top := mustCreate(t, other, "t", 2, nil)
	if _, err := other.SetPartitionState(ctx, PartitionState{Topic: "t", TopicID: top.ID, Partition: 1, Replicas: []int32{1}, Leader: 1, ISR: []int32{1}}); err != nil {
		t.Fatal(err)
	}
	const key = "/gregor/partitions/t/1"
	got, err := cli.Get(ctx, key)
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("get %s: %v %v", key, got, err)
	}
	good := string(got.Kvs[0].Value)
	newer := strings.Replace(good, `"v":1`, `"v":2`, 1)
	if newer == good {
		t.Fatalf("partition value %s has no version 1 to bump", good)
	}

	s := newEtcdStore(zerolog.Nop(), te.rawClient(t), "/gregor/", 3*time.Second)
	if err := s.load(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var seen eventLog
	s.Subscribe(seen.add)
	s.start()

	// On the watch.
	if _, err := cli.Put(ctx, key, newer); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store to stop serving t", func() bool { _, ok := s.Topic("t"); return !ok })
	if err := s.TopicFault("t"); !errors.Is(err, ErrNewerVersion) {
		t.Fatalf("TopicFault = %v, want ErrNewerVersion", err)
	}
	// A rewrite of the topic key meanwhile does not bring it back.
	if err := other.SetTopicConfigs(ctx, "t", map[string]string{"retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, other, "marker1", 1, nil)
	waitFor(t, "the marker", func() bool { _, ok := s.Topic("marker1"); return ok })
	if _, ok := s.Topic("t"); ok {
		t.Fatal("a topic write brought back a topic with a partition state of a newer format")
	}
	if _, err := cli.Put(ctx, key, good); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "t to come back", func() bool { got, ok := s.Topic("t"); return ok && got.ID == top.ID })
	if got := mustTopic(t, s, "t"); got.Configs["retention.ms"] != "1000" {
		t.Fatalf("topic came back with configs %v, want the write made while it was out", got.Configs)
	}
	if s.TopicFault("t") != nil {
		t.Fatalf("TopicFault after the repair = %v", s.TopicFault("t"))
	}
	var kinds []EventKind
	mustSync(t, s) // the cache changes before its events are published
	for _, ev := range seen.get() {
		if ev.Topic.Name == "t" {
			kinds = append(kinds, ev.Kind)
		}
	}
	if !slices.Equal(kinds, []EventKind{TopicUnavailable, TopicCreated}) {
		t.Fatalf("events for t = %v, want TopicUnavailable then TopicCreated", kinds)
	}

	// Through a resync: the watch is away while the state turns newer.
	s.Close()
	if _, err := cli.Put(ctx, key, newer); err != nil {
		t.Fatal(err)
	}
	s2 := newEtcdStore(zerolog.Nop(), te.rawClient(t), "/gregor/", 3*time.Second)
	t.Cleanup(func() { _ = s2.Close() })
	if err := s2.load(ctx); !errors.Is(err, ErrNewerVersion) {
		t.Fatalf("load with a newer partition state = %v, want ErrNewerVersion", err)
	}
	if _, err := cli.Put(ctx, key, good); err != nil {
		t.Fatal(err)
	}
	if err := s2.load(ctx); err != nil {
		t.Fatal(err)
	}
	var seen2 eventLog
	s2.Subscribe(seen2.add)
	if _, err := cli.Put(ctx, key, newer); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "/gregor/cluster/id")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, other, "marker2", 1, nil)
	s2.start()
	waitFor(t, "the resync", func() bool { _, ok := s2.Topic("marker2"); return ok })
	if _, ok := s2.Topic("t"); ok {
		t.Fatal("a resync served a topic with a partition state of a newer format")
	}
	mustSync(t, s2) // the cache changes before its events are published
	for _, ev := range seen2.get() {
		if ev.Topic.Name == "t" && ev.Kind != TopicUnavailable {
			t.Fatalf("event %s for t, want only TopicUnavailable", describeEvents([]Event{ev}))
		}
	}
}

// TestEtcdSubscriberPanicKeepsWatch: a subscriber that panics is logged
// once per panic and misses only that event; the watch, and the other
// subscribers, go on.
func TestEtcdSubscriberPanicKeepsWatch(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	var logs syncBuffer
	s, err := OpenEtcd(testCtx(t), EtcdConfig{Endpoints: te.e.Endpoints(), Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	other := (&etcdHarness{endpoints: te.e.Endpoints()}).open(t)
	var panics atomic.Int32
	defer s.Subscribe(func(ev Event) {
		if ev.Topic.Name == "boom" {
			panics.Add(1)
			panic("subscriber bug")
		}
	})()
	var seen eventLog
	defer s.Subscribe(seen.add)()
	mustCreate(t, other, "boom", 1, nil)
	mustCreate(t, other, "after", 1, nil)
	waitFor(t, "the watch to apply the topic after the panic", func() bool { _, ok := s.Topic("after"); return ok })
	var names []string
	mustSync(t, s) // the cache changes before its events are published
	for _, ev := range seen.get() {
		names = append(names, ev.Topic.Name)
	}
	if !slices.Contains(names, "boom") || !slices.Contains(names, "after") {
		t.Fatalf("the other subscriber saw %v, want boom and after", names)
	}
	if panics.Load() != 1 || logs.count("background task panicked") != 1 {
		t.Fatalf("%d panics, %d log lines about them, want 1 and 1:\n%s", panics.Load(), logs.count("background task panicked"), logs.buf.String())
	}
}

// mustSync returns once s has published every event up to etcd's current
// revision: a store's cache changes before its subscribers hear of it, so
// a test that waited on the cache reads the events only after this.
func mustSync(t *testing.T, s Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("sync the store: %v", err)
	}
}
