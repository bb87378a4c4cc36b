package broker

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

func TestAdminDescribeLogDirs(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("b-topic", 2, 1), adminTopic("a-topic", 1, 1), adminTopic("c-unused", 1, 1))
	describe := func(version int16, topics []kmsg.DescribeLogDirsRequestTopic) kmsg.DescribeLogDirsResponseDir {
		t.Helper()
		req := kmsg.NewPtrDescribeLogDirsRequest()
		req.SetVersion(version)
		req.Topics = topics
		resp, err := b.handleDescribeLogDirs(c, req)
		if err != nil {
			t.Fatal(err)
		}
		r := resp.(*kmsg.DescribeLogDirsResponse)
		if r.ErrorCode != 0 || len(r.Dirs) != 1 || r.Dirs[0].ErrorCode != 0 {
			t.Fatalf("DescribeLogDirs: %+v", r)
		}
		return r.Dirs[0]
	}

	all := describe(4, nil)
	if !filepath.IsAbs(all.Dir) || all.Dir != adminAbs(t, b.cfg.DataDir) {
		t.Errorf("dir %q, want the absolute data dir", all.Dir)
	}
	if all.TotalBytes <= 0 || all.UsableBytes < 0 || all.UsableBytes > all.TotalBytes {
		t.Errorf("total %d usable %d", all.TotalBytes, all.UsableBytes)
	}
	got := map[string][]int32{}
	var order []string
	for _, dt := range all.Topics {
		order = append(order, dt.Topic)
		for _, p := range dt.Partitions {
			got[dt.Topic] = append(got[dt.Topic], p.Partition)
			if p.Size < 0 || p.OffsetLag != 0 || p.IsFuture {
				t.Errorf("%s-%d: size %d lag %d future %v", dt.Topic, p.Partition, p.Size, p.OffsetLag, p.IsFuture)
			}
		}
	}
	// Every partition is listed from its creation on, written to or not.
	if len(order) != 3 || order[0] != "a-topic" || order[1] != "b-topic" || order[2] != "c-unused" || len(got["b-topic"]) != 2 || got["b-topic"][0] != 0 {
		t.Errorf("all partitions: topics %v partitions %v", order, got)
	}

	asked := []kmsg.DescribeLogDirsRequestTopic{
		{Topic: "b-topic", Partitions: []int32{1, 7}},
		{Topic: "missing", Partitions: []int32{0}},
		{Topic: "a-topic", Partitions: []int32{0, 0}},
		{Topic: "b-topic", Partitions: []int32{0, 1}},
	}
	some := describe(0, asked)
	if len(some.Topics) != 2 || some.Topics[0].Topic != "b-topic" || some.Topics[1].Topic != "a-topic" {
		t.Fatalf("asked partitions: %+v", some.Topics)
	}
	if ps := some.Topics[0].Partitions; len(ps) != 2 || ps[0].Partition != 1 || ps[1].Partition != 0 {
		t.Errorf("b-topic partitions %+v, want 1 then 0", ps)
	}
	if ps := some.Topics[1].Partitions; len(ps) != 1 {
		t.Errorf("a-topic partitions %+v, want one", ps)
	}
	if empty := describe(5, []kmsg.DescribeLogDirsRequestTopic{}); len(empty.Topics) != 0 {
		t.Errorf("empty topic list described %d topics", len(empty.Topics))
	}
}

func adminAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func adminCreatePartitions(t *testing.T, b *Broker, c *conn, validateOnly bool, topics ...kmsg.CreatePartitionsRequestTopic) []kmsg.CreatePartitionsResponseTopic {
	t.Helper()
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.SetVersion(3)
	req.ValidateOnly = validateOnly
	req.Topics = topics
	resp, err := b.handleCreatePartitions(c, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.CreatePartitionsResponse)
	if len(r.Topics) != len(topics) {
		t.Fatalf("%d answers for %d topics", len(r.Topics), len(topics))
	}
	for i := range topics {
		if r.Topics[i].Topic != topics[i].Topic {
			t.Fatalf("answer %d is for %q, want %q", i, r.Topics[i].Topic, topics[i].Topic)
		}
	}
	return r.Topics
}

func adminGrow(topic string, count int32, assignment ...[]int32) kmsg.CreatePartitionsRequestTopic {
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, count
	for _, replicas := range assignment {
		rt.Assignment = append(rt.Assignment, kmsg.CreatePartitionsRequestTopicAssignment{Replicas: replicas})
	}
	return rt
}

func TestAdminCreatePartitions(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("grow", 1, 1), adminTopic("same", 2, 1), adminTopic("shrink", 3, 1), adminTopic("dup", 1, 1),
		adminTopic("assigned", 1, 1), adminTopic("bad-assign", 1, 1), adminTopic("dry", 1, 1))
	if _, err := b.store.CreateTopic(context.Background(), metadata.Topic{Name: "__transaction_state", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	empty := adminGrow("empty-replicas", 2)
	empty.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{{}}
	adminMustCreate(t, b, c, adminTopic("empty-replicas", 1, 1))

	cases := []struct {
		rt      kmsg.CreatePartitionsRequestTopic
		want    *kerr.Error
		msgPart string
	}{
		{adminGrow("grow", 3), nil, ""},
		{adminGrow("same", 2), kerr.InvalidPartitions, "already has 2"},
		{adminGrow("shrink", 1), kerr.InvalidPartitions, "would not be an increase"},
		{adminGrow("dup", 2), kerr.InvalidRequest, "Duplicate"},
		{adminGrow("missing", 2), kerr.UnknownTopicOrPartition, ""},
		{adminGrow("dup", 3), kerr.InvalidRequest, "Duplicate"},
		{adminGrow("assigned", 3, []int32{1}, []int32{1}), nil, ""},
		{adminGrow("bad-assign", 3, []int32{1}), kerr.InvalidReplicaAssignment, "only 1 assignment"},
		{adminGrow("__transaction_state", 4), kerr.InvalidTopicException, "internal"},
		{empty, kerr.InvalidReplicaAssignment, "empty replica list"},
	}
	var topics []kmsg.CreatePartitionsRequestTopic
	for _, tc := range cases {
		topics = append(topics, tc.rt)
	}
	for i, st := range adminCreatePartitions(t, b, c, false, topics...) {
		adminWantCode(t, "grow "+cases[i].rt.Topic, st.ErrorCode, st.ErrorMessage, cases[i].want, cases[i].msgPart)
	}
	for name, want := range map[string]int32{"grow": 3, "same": 2, "shrink": 3, "dup": 1, "assigned": 3, "bad-assign": 1, "__transaction_state": 1} {
		if tp, _ := b.store.Topic(name); tp.Partitions != want {
			t.Errorf("%s has %d partitions, want %d", name, tp.Partitions, want)
		}
	}
	if _, err := b.parts.get("grow", 2); err != nil {
		t.Errorf("new partition grow-2 does not open: %v", err)
	}

	r := adminCreatePartitions(t, b, c, false, adminGrow("bad-assign", 2, []int32{5}), adminGrow("dry", 1<<30))
	adminWantCode(t, "unknown broker", r[0].ErrorCode, r[0].ErrorMessage, kerr.InvalidReplicaAssignment, "broker 5")
	adminWantCode(t, "too many", r[1].ErrorCode, r[1].ErrorMessage, kerr.PolicyViolation, "limit")

	r = adminCreatePartitions(t, b, c, true, adminGrow("dry", 5))
	adminWantCode(t, "validate-only", r[0].ErrorCode, r[0].ErrorMessage, nil, "")
	if tp, _ := b.store.Topic("dry"); tp.Partitions != 1 {
		t.Errorf("validate-only grew dry to %d partitions", tp.Partitions)
	}
}

func TestAdminDescribeCluster(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	describe := func(version int16, endpoint int8, ops bool) *kmsg.DescribeClusterResponse {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.SetVersion(version)
		req.EndpointType, req.IncludeClusterAuthorizedOperations = endpoint, ops
		resp, err := b.handleDescribeCluster(c, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.DescribeClusterResponse)
	}
	r := describe(0, 0, false) // v0 has no endpoint type; brokers is implied
	if r.ErrorCode != 0 || r.ClusterID != "test-cluster" || r.ControllerID != 1 || r.ClusterAuthorizedOperations != authorizedOperationsUnknown {
		t.Errorf("v0: %+v", r)
	}
	if len(r.Brokers) != 1 || r.Brokers[0].NodeID != 1 || r.Brokers[0].Host != "localhost" || r.Brokers[0].Port != 9092 || r.Brokers[0].Rack != nil {
		t.Errorf("v0 brokers %+v", r.Brokers)
	}

	adminRegisterPeer(t, b, metadata.Broker{NodeID: 3, Host: "h3", Port: 9, Rack: "r1"})
	r = describe(2, endpointTypeBrokers, true)
	if r.ErrorCode != 0 || r.EndpointType != endpointTypeBrokers {
		t.Fatalf("v2: error %d endpoint %d", r.ErrorCode, r.EndpointType)
	}
	// Without an authorizer Kafka reports every CLUSTER operation:
	// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
	if r.ClusterAuthorizedOperations != 1<<5|1<<7|1<<8|1<<9|1<<10|1<<11|1<<12 {
		t.Errorf("authorized operations %b", r.ClusterAuthorizedOperations)
	}
	var rack3 string
	for _, br := range r.Brokers {
		if br.IsFenced {
			t.Errorf("broker %d fenced", br.NodeID)
		}
		if br.NodeID == 3 {
			rack3 = adminDeref(br.Rack)
		}
	}
	if len(r.Brokers) != 2 || rack3 != "r1" {
		t.Errorf("v2 brokers %+v", r.Brokers)
	}

	r = describe(1, endpointTypeControllers, false)
	adminWantCode(t, "controllers", r.ErrorCode, r.ErrorMessage, kerr.MismatchedEndpointType, "CONTROLLER")
	if len(r.Brokers) != 0 {
		t.Errorf("error response lists brokers")
	}
	r = describe(1, 7, false)
	adminWantCode(t, "unknown endpoint", r.ErrorCode, r.ErrorMessage, kerr.UnsupportedEndpointType, "7")
}

// TestAdminHandlersNeverPanic drives every admin handler with many random
// requests, including null and empty fields and nonsense values, at every
// version, and checks that each answers with an encodable response that
// mirrors the request. A panic fails the test.
func TestAdminHandlersNeverPanic(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("t0", 2, 1, "retention.ms", "10"), adminTopic("t.1", 1, 1))
	if _, err := b.parts.get("t0", 0); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	g := adminReqGen{rng}
	for i := 0; i < 300; i++ {
		for _, req := range []kmsg.Request{
			g.createTopics(), g.deleteTopics(), g.describeConfigs(), g.alterConfigs(),
			g.incrementalAlterConfigs(), g.describeLogDirs(), g.createPartitions(), g.describeCluster(),
		} {
			h := b.handlers.byKey[req.Key()]
			version := h.min + int16(rng.Intn(int(h.max-h.min)+1))
			req.SetVersion(version)
			resp, err := h.fn(c, req)
			if err != nil || resp == nil {
				t.Fatalf("%s v%d: response %v, error %v", kmsg.NameForKey(req.Key()), version, resp, err)
			}
			adminCheckMirrors(t, req, resp)
			resp.SetVersion(version)
			decoded := kmsg.ResponseForKey(req.Key())
			decoded.SetVersion(version)
			if err := decoded.ReadFrom(resp.AppendTo(nil)); err != nil {
				t.Fatalf("%s v%d: response does not decode: %v", kmsg.NameForKey(req.Key()), version, err)
			}
		}
	}
}

// adminCheckMirrors checks that a response has one entry per request entry.
func adminCheckMirrors(t *testing.T, req kmsg.Request, resp kmsg.Response) {
	t.Helper()
	var want, got int
	switch r := req.(type) {
	case *kmsg.CreateTopicsRequest:
		want, got = len(r.Topics), len(resp.(*kmsg.CreateTopicsResponse).Topics)
	case *kmsg.DeleteTopicsRequest:
		want, got = len(r.TopicNames), len(resp.(*kmsg.DeleteTopicsResponse).Topics)
		if r.Version >= 6 {
			want = len(r.Topics)
		}
	case *kmsg.DescribeConfigsRequest:
		want, got = len(r.Resources), len(resp.(*kmsg.DescribeConfigsResponse).Resources)
	case *kmsg.AlterConfigsRequest:
		want, got = len(r.Resources), len(resp.(*kmsg.AlterConfigsResponse).Resources)
	case *kmsg.IncrementalAlterConfigsRequest:
		want, got = len(r.Resources), len(resp.(*kmsg.IncrementalAlterConfigsResponse).Resources)
	case *kmsg.CreatePartitionsRequest:
		want, got = len(r.Topics), len(resp.(*kmsg.CreatePartitionsResponse).Topics)
	default:
		return
	}
	if want != got {
		t.Fatalf("%s v%d: %d answers for %d entries", kmsg.NameForKey(req.Key()), req.GetVersion(), got, want)
	}
}

// adminReqGen makes random admin requests from a small vocabulary, so that
// names repeat, exist, are internal or invalid, and numbers are edge cases.
type adminReqGen struct{ rng *rand.Rand }

func (g adminReqGen) pick(n int) int { return g.rng.Intn(n) }

func (g adminReqGen) count() int { return []int{0, 0, 1, 1, 2, 3}[g.pick(6)] }

func (g adminReqGen) name() string {
	return []string{"t0", "t.1", "t_1", "new", "new2", "", "a/b", "__consumer_offsets", "__transaction_state", "..", "1"}[g.pick(11)]
}

func (g adminReqGen) namePtr() *string {
	if g.pick(4) == 0 {
		return nil
	}
	return kmsg.StringPtr(g.name())
}

func (g adminReqGen) configName() string {
	return []string{"retention.ms", "cleanup.policy", "max.message.bytes", "log.retention.ms", "log.cleanup.policy", "num.partitions",
		"log.dirs", "node.id", "segment.bytes", "bogus", ""}[g.pick(11)]
}

func (g adminReqGen) value() *string {
	if g.pick(5) == 0 {
		return nil
	}
	return kmsg.StringPtr([]string{"1", "0", "-1", "1000", "delete", "compact", "delete,compact", "", ",", "x", "9223372036854775808"}[g.pick(11)])
}

func (g adminReqGen) int32() int32 {
	return []int32{-2, -1, 0, 1, 2, 3, 100, 20000, 1<<31 - 1, -1 << 31}[g.pick(10)]
}

func (g adminReqGen) int16() int16 { return []int16{-2, -1, 0, 1, 2, 1<<15 - 1}[g.pick(6)] }

func (g adminReqGen) replicas() []int32 {
	if g.pick(5) == 0 {
		return nil
	}
	out := make([]int32, g.count())
	for i := range out {
		out[i] = []int32{1, 1, 2, -1}[g.pick(4)]
	}
	return out
}

func (g adminReqGen) id() [16]byte {
	switch g.pick(3) {
	case 0:
		return [16]byte{}
	case 1:
		return [16]byte{byte(g.pick(256))}
	}
	return [16]byte{}
}

func (g adminReqGen) resourceType() kmsg.ConfigResourceType {
	return []kmsg.ConfigResourceType{2, 2, 4, 4, 8, 0, 16, 32, -1}[g.pick(9)]
}

func (g adminReqGen) resourceName() string {
	return []string{"t0", "t.1", "", "1", "2", "x", "missing"}[g.pick(7)]
}

func (g adminReqGen) createTopics() *kmsg.CreateTopicsRequest {
	r := kmsg.NewPtrCreateTopicsRequest()
	r.ValidateOnly = g.pick(2) == 0
	r.TimeoutMillis = []int32{0, -1, 60000}[g.pick(3)]
	for range g.count() {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = g.name(), g.int32(), g.int16()
		for range g.count() {
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, kmsg.CreateTopicsRequestTopicReplicaAssignment{Partition: g.int32(), Replicas: g.replicas()})
		}
		for range g.count() {
			rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: g.configName(), Value: g.value()})
		}
		r.Topics = append(r.Topics, rt)
	}
	return r
}

func (g adminReqGen) deleteTopics() *kmsg.DeleteTopicsRequest {
	r := kmsg.NewPtrDeleteTopicsRequest()
	for range g.count() {
		r.TopicNames = append(r.TopicNames, g.name())
		r.Topics = append(r.Topics, kmsg.DeleteTopicsRequestTopic{Topic: g.namePtr(), TopicID: g.id()})
	}
	return r
}

func (g adminReqGen) describeConfigs() *kmsg.DescribeConfigsRequest {
	r := kmsg.NewPtrDescribeConfigsRequest()
	r.IncludeSynonyms, r.IncludeDocumentation = g.pick(2) == 0, g.pick(2) == 0
	for range g.count() {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = g.resourceType(), g.resourceName()
		if g.pick(2) == 0 {
			rr.ConfigNames = []string{}
			for range g.count() {
				rr.ConfigNames = append(rr.ConfigNames, g.configName())
			}
		}
		r.Resources = append(r.Resources, rr)
	}
	return r
}

func (g adminReqGen) alterConfigs() *kmsg.AlterConfigsRequest {
	r := kmsg.NewPtrAlterConfigsRequest()
	r.ValidateOnly = g.pick(2) == 0
	for range g.count() {
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = g.resourceType(), g.resourceName()
		for range g.count() {
			rr.Configs = append(rr.Configs, kmsg.AlterConfigsRequestResourceConfig{Name: g.configName(), Value: g.value()})
		}
		r.Resources = append(r.Resources, rr)
	}
	return r
}

func (g adminReqGen) incrementalAlterConfigs() *kmsg.IncrementalAlterConfigsRequest {
	r := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r.ValidateOnly = g.pick(2) == 0
	for range g.count() {
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = g.resourceType(), g.resourceName()
		for range g.count() {
			op := kmsg.IncrementalAlterConfigOp([]int8{0, 1, 2, 3, 4, -1}[g.pick(6)])
			rr.Configs = append(rr.Configs, kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: g.configName(), Op: op, Value: g.value()})
		}
		r.Resources = append(r.Resources, rr)
	}
	return r
}

func (g adminReqGen) describeLogDirs() *kmsg.DescribeLogDirsRequest {
	r := kmsg.NewPtrDescribeLogDirsRequest()
	if g.pick(3) == 0 {
		return r // null: all
	}
	r.Topics = []kmsg.DescribeLogDirsRequestTopic{}
	for range g.count() {
		rt := kmsg.DescribeLogDirsRequestTopic{Topic: g.name()}
		for range g.count() {
			rt.Partitions = append(rt.Partitions, g.int32())
		}
		r.Topics = append(r.Topics, rt)
	}
	return r
}

func (g adminReqGen) createPartitions() *kmsg.CreatePartitionsRequest {
	r := kmsg.NewPtrCreatePartitionsRequest()
	r.ValidateOnly = g.pick(3) != 0 // mostly dry, so topics do not adminGrow without bound
	for range g.count() {
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = g.name(), g.int32()
		if g.pick(2) == 0 {
			rt.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{}
			for range g.count() {
				rt.Assignment = append(rt.Assignment, kmsg.CreatePartitionsRequestTopicAssignment{Replicas: g.replicas()})
			}
		}
		r.Topics = append(r.Topics, rt)
	}
	return r
}

func (g adminReqGen) describeCluster() *kmsg.DescribeClusterRequest {
	r := kmsg.NewPtrDescribeClusterRequest()
	r.EndpointType = int8(g.pick(4))
	r.IncludeClusterAuthorizedOperations = g.pick(2) == 0
	r.IncludeFencedBrokers = g.pick(2) == 0
	return r
}

// adminFailingStore is a metadata store whose writes fail with err, as a store
// losing a race with another broker or losing etcd would.
type adminFailingStore struct {
	metadata.Store
	err error
}

func (s adminFailingStore) CreateTopic(context.Context, metadata.Topic, ...[]int32) (metadata.Topic, error) {
	return metadata.Topic{}, s.err
}
func (s adminFailingStore) DeleteTopic(context.Context, string) error { return s.err }
func (s adminFailingStore) SetTopicConfigs(context.Context, string, map[string]string) error {
	return s.err
}
func (s adminFailingStore) SetPartitionCount(context.Context, string, int32, ...[]int32) error {
	return s.err
}
func (s adminFailingStore) SetBrokerConfigs(context.Context, int32, map[string]string) error {
	return s.err
}

// TestAdminMetadataWriteFailures checks the errors clients get when the
// metadata write itself fails after every check passed: lost races with
// another broker, a timeout, a closed store.
func TestAdminMetadataWriteFailures(t *testing.T) {
	mem := metadata.NewMemoryStore("test-cluster")
	if _, err := mem.CreateTopic(context.Background(), metadata.Topic{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	tp, _ := mem.Topic("t")
	newBroker := func(err error) (*Broker, *conn) {
		b, nerr := New(Config{NodeID: 1, AdvertisedHost: "localhost", AdvertisedPort: 9092, DataDir: t.TempDir(), Logger: zerolog.Nop()},
			adminFailingStore{Store: mem, err: fmt.Errorf("metadata: write: %w", err)})
		if nerr != nil {
			t.Fatal(nerr)
		}
		t.Cleanup(func() { b.Close() })
		return b, newTestConn(b)
	}
	ops := map[string]func(b *Broker, c *conn) (int16, *string){
		"create": func(b *Broker, c *conn) (int16, *string) {
			st := adminCreateTopics(t, b, c, 7, false, adminTopic("new", 1, 1)).Topics[0]
			return st.ErrorCode, st.ErrorMessage
		},
		"delete": func(b *Broker, c *conn) (int16, *string) {
			st := adminDeleteByName(t, b, c, 5, "t").Topics[0]
			return st.ErrorCode, st.ErrorMessage
		},
		"delete by id": func(b *Broker, c *conn) (int16, *string) {
			req := kmsg.NewPtrDeleteTopicsRequest()
			req.SetVersion(6)
			req.Topics = []kmsg.DeleteTopicsRequestTopic{{TopicID: tp.ID}}
			resp, _ := b.handleDeleteTopics(c, req)
			st := resp.(*kmsg.DeleteTopicsResponse).Topics[0]
			return st.ErrorCode, st.ErrorMessage
		},
		"alter topic": func(b *Broker, c *conn) (int16, *string) {
			r := adminIncAlter(t, b, c, false, adminIncResource(adminResTopic, "t", opSet("retention.ms", "1")))[0]
			return r.ErrorCode, r.ErrorMessage
		},
		"alter broker": func(b *Broker, c *conn) (int16, *string) {
			r := adminLegacyAlter(t, b, c, false, adminLegacyResource(adminResBroker, "1", "log.retention.ms", "1"))[0]
			return r.ErrorCode, r.ErrorMessage
		},
		"grow": func(b *Broker, c *conn) (int16, *string) {
			r := adminCreatePartitions(t, b, c, false, adminGrow("t", 2))[0]
			return r.ErrorCode, r.ErrorMessage
		},
	}
	for _, tc := range []struct {
		op   string
		err  error
		want *kerr.Error
	}{
		{"create", metadata.ErrTopicExists, kerr.TopicAlreadyExists},
		{"create", context.DeadlineExceeded, kerr.RequestTimedOut},
		{"create", metadata.ErrClosed, kerr.UnknownServerError},
		{"delete", metadata.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
		{"delete", context.Canceled, kerr.RequestTimedOut},
		{"delete by id", metadata.ErrUnknownTopic, kerr.UnknownTopicID},
		{"alter topic", metadata.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
		{"alter topic", metadata.ErrClosed, kerr.UnknownServerError},
		{"alter broker", context.DeadlineExceeded, kerr.RequestTimedOut},
		{"alter broker", metadata.ErrClosed, kerr.UnknownServerError},
		{"grow", metadata.ErrInvalidPartitions, kerr.InvalidPartitions},
		{"grow", metadata.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	} {
		b, c := newBroker(tc.err)
		code, msg := ops[tc.op](b, c)
		adminWantCode(t, tc.op+" with "+tc.err.Error(), code, msg, tc.want, "")
	}
	// A connection that ended mid-request gives up the write.
	b, c := newAdminBroker(t, nil)
	c.stop()
	st := adminCreateTopics(t, b, c, 7, false, adminTopic("late", 1, 1)).Topics[0]
	adminWantCode(t, "cancelled connection", st.ErrorCode, st.ErrorMessage, kerr.RequestTimedOut, "")
	if _, ok := b.store.Topic("late"); ok {
		t.Error("created over a cancelled connection")
	}
}
