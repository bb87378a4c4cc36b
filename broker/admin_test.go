package broker

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

// newAdminBroker is newTestBroker with static broker configs, plus a
// connection for calling handlers directly.
func newAdminBroker(t *testing.T, static map[string]string) (*Broker, *conn) {
	t.Helper()
	b, err := New(Config{
		NodeID:         1,
		AdvertisedHost: "localhost",
		AdvertisedPort: 9092,
		DataDir:        t.TempDir(),
		StaticConfigs:  static,
		Logger:         zerolog.Nop(),
	}, metadata.NewMemoryStore("test-cluster"))
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, newTestConn(b)
}

// adminRegisterPeer registers another live broker, as a second broker's store
// on the same cluster would.
func adminRegisterPeer(t *testing.T, b *Broker, br metadata.Broker) {
	t.Helper()
	peer := b.store.(*metadata.MemoryStore).Peer()
	t.Cleanup(func() { peer.Close() })
	if err := peer.RegisterBroker(context.Background(), br); err != nil {
		t.Fatal(err)
	}
}

func adminTopic(name string, partitions int32, rf int16, configs ...string) kmsg.CreateTopicsRequestTopic {
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, rf
	for i := 0; i+1 < len(configs); i += 2 {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = configs[i], kmsg.StringPtr(configs[i+1])
		rt.Configs = append(rt.Configs, c)
	}
	return rt
}

func adminCreateTopics(t *testing.T, b *Broker, c *conn, version int16, validateOnly bool, topics ...kmsg.CreateTopicsRequestTopic) *kmsg.CreateTopicsResponse {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(version)
	req.ValidateOnly = validateOnly
	req.Topics = topics
	resp, err := b.handleCreateTopics(c, req)
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	r := resp.(*kmsg.CreateTopicsResponse)
	if len(r.Topics) != len(topics) {
		t.Fatalf("CreateTopics answered %d topics for %d", len(r.Topics), len(topics))
	}
	for i := range topics {
		if r.Topics[i].Topic != topics[i].Topic {
			t.Fatalf("CreateTopics answer %d is for %q, asked %q", i, r.Topics[i].Topic, topics[i].Topic)
		}
	}
	return r
}

// adminMustCreate creates topics and fails the test on any error.
func adminMustCreate(t *testing.T, b *Broker, c *conn, topics ...kmsg.CreateTopicsRequestTopic) {
	t.Helper()
	for _, st := range adminCreateTopics(t, b, c, 7, false, topics...).Topics {
		if st.ErrorCode != 0 {
			t.Fatalf("create %s: %v: %s", st.Topic, kerr.ErrorForCode(st.ErrorCode), adminDeref(st.ErrorMessage))
		}
	}
}

func adminDeref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// adminWantCode checks an error code and, when msgPart is not empty, that the
// message mentions it.
func adminWantCode(t *testing.T, what string, code int16, msg *string, want *kerr.Error, msgPart string) {
	t.Helper()
	var adminWantCode int16
	if want != nil {
		adminWantCode = want.Code
	}
	if code != adminWantCode {
		t.Errorf("%s: error %v (%s), want %v", what, kerr.ErrorForCode(code), adminDeref(msg), want)
		return
	}
	if msgPart != "" && (msg == nil || !strings.Contains(*msg, msgPart)) {
		t.Errorf("%s: message %q does not mention %q", what, adminDeref(msg), msgPart)
	}
}

func TestAdminCreateTopicsErrors(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("existing", 1, 1), adminTopic("dotted.name", 1, 1))

	assign := func(rt kmsg.CreateTopicsRequestTopic, parts ...[]int32) kmsg.CreateTopicsRequestTopic {
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		for i, replicas := range parts {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = int32(i), replicas
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		}
		return rt
	}
	nullConfig := adminTopic("null-config", 1, 1)
	nullConfig.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "retention.ms"}}
	badRF := assign(adminTopic("assign-rf", 0, 0), []int32{1})
	badRF.ReplicationFactor = 1
	badNP := assign(adminTopic("assign-np", 0, 0), []int32{1})
	badNP.NumPartitions = 1
	gap := assign(adminTopic("assign-gap", 0, 0), []int32{1}, []int32{1})
	gap.ReplicaAssignment[1].Partition = 2
	twice := assign(adminTopic("assign-twice", 0, 0), []int32{1}, []int32{1})
	twice.ReplicaAssignment[1].Partition = 0

	cases := []struct {
		topic   kmsg.CreateTopicsRequestTopic
		want    *kerr.Error
		msgPart string
	}{
		{adminTopic("dup", 1, 1), kerr.InvalidRequest, "Duplicate"},
		{adminTopic("ok", 2, 1), nil, ""},
		{adminTopic("dup", 1, 1), kerr.InvalidRequest, "Duplicate"},
		{adminTopic("", 1, 1), kerr.InvalidTopicException, "empty"},
		{adminTopic("bad/name", 1, 1), kerr.InvalidTopicException, "illegal character"},
		{adminTopic(strings.Repeat("x", 250), 1, 1), kerr.InvalidTopicException, "249"},
		{adminTopic("__consumer_offsets", 1, 1), kerr.InvalidTopicException, "internal"},
		{adminTopic("dotted_name", 1, 1), kerr.InvalidTopicException, "collides with existing topic: dotted.name"},
		{adminTopic("existing", 1, 1), kerr.TopicAlreadyExists, "already exists"},
		{nullConfig, kerr.InvalidConfig, "Null value"},
		{adminTopic("unknown-config", 1, 1, "no.such.config", "1"), kerr.InvalidConfig, "no.such.config"},
		{adminTopic("bad-config", 1, 1, "retention.ms", "soon"), kerr.InvalidConfig, "retention.ms"},
		{adminTopic("bad-enum", 1, 1, "cleanup.policy", "shred"), kerr.InvalidConfig, "cleanup.policy"},
		{adminTopic("rf-zero", 1, 0), kerr.InvalidReplicationFactor, "larger than 0"},
		{adminTopic("rf-neg", 1, -2), kerr.InvalidReplicationFactor, "larger than 0"},
		{adminTopic("rf-too-big", 1, 2), kerr.InvalidReplicationFactor, "only 1 broker"},
		{adminTopic("np-zero", 0, 1), kerr.InvalidPartitions, "non-positive"},
		{adminTopic("np-neg", -3, 1), kerr.InvalidPartitions, "non-positive"},
		{adminTopic("np-huge", 1<<30, 1), kerr.PolicyViolation, "limit"},
		{badRF, kerr.InvalidRequest, "replication factor was not set to -1"},
		{badNP, kerr.InvalidRequest, "numPartitions was not set to -1"},
		{assign(adminTopic("assign-empty", 0, 0), []int32{}), kerr.InvalidReplicaAssignment, "empty replica list"},
		{assign(adminTopic("assign-unknown", 0, 0), []int32{7}), kerr.InvalidReplicaAssignment, "broker 7"},
		{assign(adminTopic("assign-same", 0, 0), []int32{1, 1}), kerr.InvalidReplicaAssignment, "more than once"},
		{gap, kerr.InvalidReplicaAssignment, "consecutive"},
		{twice, kerr.InvalidReplicaAssignment, "multiple manual partition assignments"},
		{assign(adminTopic("assigned", 0, 0), []int32{1}, []int32{1}), nil, ""},
	}
	var topics []kmsg.CreateTopicsRequestTopic
	for _, tc := range cases {
		topics = append(topics, tc.topic)
	}
	resp := adminCreateTopics(t, b, c, 7, false, topics...)
	for i, tc := range cases {
		st := resp.Topics[i]
		adminWantCode(t, "create "+tc.topic.Topic, st.ErrorCode, st.ErrorMessage, tc.want, tc.msgPart)
		_, exists := b.store.Topic(tc.topic.Topic)
		if created := tc.want == nil; exists != created && tc.topic.Topic != "existing" && tc.topic.Topic != "dotted.name" {
			t.Errorf("%s: exists=%v after create with error %v", tc.topic.Topic, exists, tc.want)
		}
		if tc.want != nil && (st.NumPartitions != -1 || st.ReplicationFactor != -1 || st.Configs != nil || st.TopicID != [16]byte{}) {
			t.Errorf("%s: failed create reports partitions=%d rf=%d configs=%d id=%x", tc.topic.Topic, st.NumPartitions, st.ReplicationFactor, len(st.Configs), st.TopicID)
		}
	}
	if st := resp.Topics[len(cases)-1]; st.NumPartitions != 2 || st.ReplicationFactor != 1 {
		t.Errorf("manual assignment: partitions=%d rf=%d, want 2 and 1", st.NumPartitions, st.ReplicationFactor)
	}
}

func TestAdminCreateTopicsDefaultsAndResponse(t *testing.T) {
	b, c := newAdminBroker(t, map[string]string{"num.partitions": "3", "log.segment.bytes": "1048576"})
	resp := adminCreateTopics(t, b, c, 7, false, adminTopic("defaults", -1, -1, "retention.ms", "1000", "retention.ms", "2000"))
	st := resp.Topics[0]
	if st.ErrorCode != 0 {
		t.Fatalf("create: %v %s", kerr.ErrorForCode(st.ErrorCode), adminDeref(st.ErrorMessage))
	}
	topic, ok := b.store.Topic("defaults")
	if !ok {
		t.Fatal("topic not in the store")
	}
	if topic.Partitions != 3 || st.NumPartitions != 3 || st.ReplicationFactor != 1 {
		t.Errorf("partitions store=%d response=%d rf=%d, want 3, 3, 1", topic.Partitions, st.NumPartitions, st.ReplicationFactor)
	}
	if st.TopicID != topic.ID || st.TopicID == [16]byte{} {
		t.Errorf("topic id %x, store has %x", st.TopicID, topic.ID)
	}
	if got := topic.Configs["retention.ms"]; got != "2000" || len(topic.Configs) != 1 {
		t.Errorf("stored configs %v, want retention.ms=2000 (last value wins)", topic.Configs)
	}
	sources := map[string]int8{}
	values := map[string]string{}
	for _, cfg := range st.Configs {
		sources[cfg.Name], values[cfg.Name] = cfg.Source, adminDeref(cfg.Value)
		if cfg.ReadOnly || cfg.IsSensitive {
			t.Errorf("%s: read-only %v, sensitive %v", cfg.Name, cfg.ReadOnly, cfg.IsSensitive)
		}
	}
	if len(st.Configs) != len(b.configs.topic) {
		t.Errorf("%d configs returned, want all %d", len(st.Configs), len(b.configs.topic))
	}
	for name, want := range map[string]struct {
		src   kmsg.ConfigSource
		value string
	}{
		"retention.ms":     {kmsg.ConfigSourceDynamicTopicConfig, "2000"},
		"segment.bytes":    {kmsg.ConfigSourceStaticBrokerConfig, "1048576"},
		"cleanup.policy":   {kmsg.ConfigSourceDefaultConfig, "delete"},
		"compression.type": {kmsg.ConfigSourceDefaultConfig, "producer"},
	} {
		if sources[name] != int8(want.src) || values[name] != want.value {
			t.Errorf("%s: source %d value %q, want %d %q", name, sources[name], values[name], want.src, want.value)
		}
	}
}

func TestAdminCreateTopicsValidateOnly(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	resp := adminCreateTopics(t, b, c, 5, true, adminTopic("dry", 4, 1, "retention.ms", "10"), adminTopic("dry-bad", 0, 1))
	if st := resp.Topics[0]; st.ErrorCode != 0 || st.NumPartitions != 4 || len(st.Configs) == 0 {
		t.Errorf("validate-only: error %d partitions %d configs %d", st.ErrorCode, st.NumPartitions, len(st.Configs))
	}
	adminWantCode(t, "validate-only bad", resp.Topics[1].ErrorCode, resp.Topics[1].ErrorMessage, kerr.InvalidPartitions, "")
	if topics := b.store.Topics(); len(topics) != 0 {
		t.Errorf("validate-only created %v", topics)
	}
	// Once created, the same name is taken.
	adminMustCreate(t, b, c, adminTopic("dry", 4, 1))
	resp = adminCreateTopics(t, b, c, 1, true, adminTopic("dry", 4, 1))
	adminWantCode(t, "validate-only existing", resp.Topics[0].ErrorCode, resp.Topics[0].ErrorMessage, kerr.TopicAlreadyExists, "")
}

func TestAdminCreateTopicsMultipleBrokers(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminRegisterPeer(t, b, metadata.Broker{NodeID: 2, Host: "other", Port: 9093})
	rt := adminTopic("spread", -1, -1)
	for p, replicas := range [][]int32{{1, 2}, {2, 1}, {2}} {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	resp := adminCreateTopics(t, b, c, 7, false, adminTopic("rf2", 1, 2), adminTopic("rf3", 1, 3), rt)
	if st := resp.Topics[0]; st.ErrorCode != 0 || st.ReplicationFactor != 2 {
		t.Errorf("rf 2 of 2 brokers: error %d, replication factor %d; want created with 2", st.ErrorCode, st.ReplicationFactor)
	}
	adminWantCode(t, "rf 3 of 2 brokers", resp.Topics[1].ErrorCode, resp.Topics[1].ErrorMessage, kerr.InvalidReplicationFactor, "only 2 broker")
	adminWantCode(t, "uneven assignment", resp.Topics[2].ErrorCode, resp.Topics[2].ErrorMessage, kerr.InvalidReplicaAssignment, "not consistent")
}

func adminDeleteByName(t *testing.T, b *Broker, c *conn, version int16, names ...string) *kmsg.DeleteTopicsResponse {
	t.Helper()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.SetVersion(version)
	req.TopicNames = names
	resp, err := b.handleDeleteTopics(c, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.DeleteTopicsResponse)
	if len(r.Topics) != len(names) {
		t.Fatalf("DeleteTopics answered %d topics for %d", len(r.Topics), len(names))
	}
	return r
}

func TestAdminDeleteTopicsByName(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("doomed", 2, 1), adminTopic("twice", 1, 1))
	if _, err := b.store.CreateTopic(context.Background(), metadata.Topic{Name: "__consumer_offsets", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.parts.get("doomed", 1); err != nil {
		t.Fatalf("open doomed-1: %v", err)
	}
	dir := b.parts.partitionDir("doomed", 1)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("partition dir: %v", err)
	}

	resp := adminDeleteByName(t, b, c, 5, "doomed", "missing", "twice", "__consumer_offsets", "twice", "bad/name")
	want := []struct {
		name    string
		err     *kerr.Error
		msgPart string
	}{
		{"doomed", nil, ""},
		{"missing", kerr.UnknownTopicOrPartition, ""},
		{"twice", kerr.InvalidRequest, "Duplicate"},
		{"__consumer_offsets", kerr.TopicDeletionDisabled, "internal"},
		{"twice", kerr.InvalidRequest, "Duplicate"},
		{"bad/name", kerr.UnknownTopicOrPartition, ""},
	}
	for i, w := range want {
		st := resp.Topics[i]
		if adminDeref(st.Topic) != w.name {
			t.Errorf("answer %d is for %q, want %q", i, adminDeref(st.Topic), w.name)
		}
		adminWantCode(t, "delete "+w.name, st.ErrorCode, st.ErrorMessage, w.err, w.msgPart)
	}
	if _, ok := b.store.Topic("doomed"); ok {
		t.Error("doomed still in the store")
	}
	if _, ok := b.store.Topic("twice"); !ok {
		t.Error("a topic named twice was deleted")
	}
	if _, ok := b.store.Topic("__consumer_offsets"); !ok {
		t.Error("an internal topic was deleted")
	}
	if p := b.parts.lookup("doomed", 1); p != nil {
		t.Error("deleted partition still open")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("partition dir after delete: %v", err)
	}

	// Before v3 an internal topic gets INVALID_REQUEST, as Kafka answers
	// when deletion is disabled.
	resp = adminDeleteByName(t, b, c, 2, "__consumer_offsets")
	adminWantCode(t, "v2 internal", resp.Topics[0].ErrorCode, nil, kerr.InvalidRequest, "")
}

func TestAdminDeleteTopicsByID(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("by-id", 1, 1), adminTopic("by-name", 1, 1), adminTopic("both-ways", 1, 1))
	byID, _ := b.store.Topic("by-id")
	bothWays, _ := b.store.Topic("both-ways")
	unknown := [16]byte{1, 2, 3}

	entry := func(name *string, id [16]byte) kmsg.DeleteTopicsRequestTopic {
		e := kmsg.NewDeleteTopicsRequestTopic()
		e.Topic, e.TopicID = name, id
		return e
	}
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.SetVersion(6)
	req.Topics = []kmsg.DeleteTopicsRequestTopic{
		entry(nil, byID.ID),
		entry(kmsg.StringPtr("by-name"), [16]byte{}),
		entry(nil, unknown),
		entry(nil, [16]byte{}),
		entry(kmsg.StringPtr("by-name"), unknown),
		entry(kmsg.StringPtr("both-ways"), [16]byte{}),
		entry(nil, bothWays.ID),
	}
	resp, err := b.handleDeleteTopics(c, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.DeleteTopicsResponse)
	if len(r.Topics) != len(req.Topics) {
		t.Fatalf("%d answers for %d topics", len(r.Topics), len(req.Topics))
	}
	adminWantCode(t, "by id", r.Topics[0].ErrorCode, r.Topics[0].ErrorMessage, nil, "")
	if adminDeref(r.Topics[0].Topic) != "by-id" || r.Topics[0].TopicID != byID.ID {
		t.Errorf("by id answered %q %x", adminDeref(r.Topics[0].Topic), r.Topics[0].TopicID)
	}
	// The entry naming "by-name" together with an id is refused on its own;
	// it does not make the plain "by-name" entry a duplicate (as in Kafka).
	adminWantCode(t, "by name", r.Topics[1].ErrorCode, r.Topics[1].ErrorMessage, nil, "")
	adminWantCode(t, "unknown id", r.Topics[2].ErrorCode, r.Topics[2].ErrorMessage, kerr.UnknownTopicID, "")
	adminWantCode(t, "neither", r.Topics[3].ErrorCode, r.Topics[3].ErrorMessage, kerr.InvalidRequest, "Neither")
	adminWantCode(t, "name and id", r.Topics[4].ErrorCode, r.Topics[4].ErrorMessage, kerr.InvalidRequest, "both")
	adminWantCode(t, "name of a given id", r.Topics[5].ErrorCode, r.Topics[5].ErrorMessage, kerr.InvalidRequest, "already supplied")
	adminWantCode(t, "id of a given name", r.Topics[6].ErrorCode, r.Topics[6].ErrorMessage, kerr.InvalidRequest, "already supplied")
	for _, name := range []string{"by-id", "by-name"} {
		if _, ok := b.store.Topic(name); ok {
			t.Errorf("%s not deleted", name)
		}
	}
	if _, ok := b.store.Topic("both-ways"); !ok {
		t.Error("both-ways deleted through entries that name it twice")
	}
	// Named once, it is deleted; its id is then unknown.
	req.Topics = []kmsg.DeleteTopicsRequestTopic{entry(kmsg.StringPtr("both-ways"), [16]byte{}), entry(nil, byID.ID)}
	resp, _ = b.handleDeleteTopics(c, req)
	r = resp.(*kmsg.DeleteTopicsResponse)
	adminWantCode(t, "both-ways alone", r.Topics[0].ErrorCode, r.Topics[0].ErrorMessage, nil, "")
	if r.Topics[0].TopicID != bothWays.ID {
		t.Errorf("deleted by name, answered id %x, want %x", r.Topics[0].TopicID, bothWays.ID)
	}
	adminWantCode(t, "deleted id", r.Topics[1].ErrorCode, r.Topics[1].ErrorMessage, kerr.UnknownTopicID, "")
}

// TestAdminRecreateAfterDelete checks that a topic deleted and created again
// under the same name starts with an empty log and the new id.
func TestAdminRecreateAfterDelete(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("again", 1, 1, "retention.ms", "5"))
	if _, err := b.parts.get("again", 0); err != nil {
		t.Fatal(err)
	}
	first, _ := b.store.Topic("again")
	if r := adminDeleteByName(t, b, c, 5, "again"); r.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete: %d", r.Topics[0].ErrorCode)
	}
	adminMustCreate(t, b, c, adminTopic("again", 1, 1))
	second, _ := b.store.Topic("again")
	if second.ID == first.ID || len(second.Configs) != 0 {
		t.Errorf("recreated topic id %x (first %x) configs %v", second.ID, first.ID, second.Configs)
	}
	part, err := b.parts.get("again", 0)
	if err != nil {
		t.Fatal(err)
	}
	if part.topicID != second.ID || part.log.LogEndOffset() != 0 {
		t.Errorf("partition id %x log end %d", part.topicID, part.log.LogEndOffset())
	}
}
