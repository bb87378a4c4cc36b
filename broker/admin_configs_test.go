package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	adminResTopic  = kmsg.ConfigResourceTypeTopic
	adminResBroker = kmsg.ConfigResourceTypeBroker
)

func adminDescribeConfigs(t *testing.T, b *Broker, c *conn, version int16, typ kmsg.ConfigResourceType, name string, names ...string) kmsg.DescribeConfigsResponseResource {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.SetVersion(version)
	req.IncludeSynonyms, req.IncludeDocumentation = true, true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = typ, name, names
	req.Resources = append(req.Resources, rr)
	resp, err := b.handleDescribeConfigs(c, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.DescribeConfigsResponse)
	if len(r.Resources) != 1 || r.Resources[0].ResourceType != typ || r.Resources[0].ResourceName != name {
		t.Fatalf("DescribeConfigs answered %+v", r.Resources)
	}
	return r.Resources[0]
}

func adminConfigsByName(res kmsg.DescribeConfigsResponseResource) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	m := make(map[string]kmsg.DescribeConfigsResponseResourceConfig, len(res.Configs))
	for _, c := range res.Configs {
		m[c.Name] = c
	}
	return m
}

// adminWantConfig checks one described config's value and source.
func adminWantConfig(t *testing.T, res kmsg.DescribeConfigsResponseResource, name, value string, src kmsg.ConfigSource) {
	t.Helper()
	if res.ErrorCode != 0 {
		t.Fatalf("describe %s: %v %s", res.ResourceName, kerr.ErrorForCode(res.ErrorCode), adminDeref(res.ErrorMessage))
	}
	c, ok := adminConfigsByName(res)[name]
	switch {
	case !ok:
		t.Errorf("%s: not described", name)
	case adminDeref(c.Value) != value || c.Source != src:
		t.Errorf("%s = %q from %v, want %q from %v", name, adminDeref(c.Value), c.Source, value, src)
	}
}

type adminConfigOp struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

func opSet(name, value string) adminConfigOp {
	return adminConfigOp{name, kmsg.IncrementalAlterConfigOpSet, &value}
}
func opDelete(name string) adminConfigOp {
	return adminConfigOp{name, kmsg.IncrementalAlterConfigOpDelete, nil}
}
func opAppend(name, value string) adminConfigOp {
	return adminConfigOp{name, kmsg.IncrementalAlterConfigOpAppend, &value}
}
func opSubtract(name, value string) adminConfigOp {
	return adminConfigOp{name, kmsg.IncrementalAlterConfigOpSubtract, &value}
}

func adminIncResource(typ kmsg.ConfigResourceType, name string, ops ...adminConfigOp) kmsg.IncrementalAlterConfigsRequestResource {
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = typ, name
	for _, o := range ops {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = o.name, o.op, o.value
		rr.Configs = append(rr.Configs, c)
	}
	return rr
}

func adminIncAlter(t *testing.T, b *Broker, c *conn, validateOnly bool, resources ...kmsg.IncrementalAlterConfigsRequestResource) []kmsg.IncrementalAlterConfigsResponseResource {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.SetVersion(1)
	req.ValidateOnly = validateOnly
	req.Resources = resources
	resp, err := b.handleIncrementalAlterConfigs(c, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.IncrementalAlterConfigsResponse)
	if len(r.Resources) != len(resources) {
		t.Fatalf("%d answers for %d resources", len(r.Resources), len(resources))
	}
	for i := range resources {
		if r.Resources[i].ResourceType != resources[i].ResourceType || r.Resources[i].ResourceName != resources[i].ResourceName {
			t.Fatalf("answer %d is for %v %q", i, r.Resources[i].ResourceType, r.Resources[i].ResourceName)
		}
	}
	return r.Resources
}

func adminLegacyResource(typ kmsg.ConfigResourceType, name string, kv ...string) kmsg.AlterConfigsRequestResource {
	rr := kmsg.NewAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = typ, name
	for i := 0; i+1 < len(kv); i += 2 {
		c := kmsg.NewAlterConfigsRequestResourceConfig()
		c.Name, c.Value = kv[i], kmsg.StringPtr(kv[i+1])
		rr.Configs = append(rr.Configs, c)
	}
	return rr
}

func adminLegacyAlter(t *testing.T, b *Broker, c *conn, validateOnly bool, resources ...kmsg.AlterConfigsRequestResource) []kmsg.AlterConfigsResponseResource {
	t.Helper()
	req := kmsg.NewPtrAlterConfigsRequest()
	req.SetVersion(2)
	req.ValidateOnly = validateOnly
	req.Resources = resources
	resp, err := b.handleAlterConfigs(c, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.AlterConfigsResponse)
	if len(r.Resources) != len(resources) {
		t.Fatalf("%d answers for %d resources", len(r.Resources), len(resources))
	}
	return r.Resources
}

// TestAdminTopicConfigRoundTrip creates a topic with configs, describes it,
// changes it with every incremental operation and describes it again.
func TestAdminTopicConfigRoundTrip(t *testing.T) {
	b, c := newAdminBroker(t, map[string]string{"log.segment.bytes": "2097152"})
	adminMustCreate(t, b, c, adminTopic("rt", 1, 1, "retention.ms", "1000", "cleanup.policy", "delete"))
	part, err := b.parts.get("rt", 0)
	if err != nil {
		t.Fatal(err)
	}

	res := adminDescribeConfigs(t, b, c, 4, adminResTopic, "rt")
	adminWantConfig(t, res, "retention.ms", "1000", kmsg.ConfigSourceDynamicTopicConfig)
	adminWantConfig(t, res, "cleanup.policy", "delete", kmsg.ConfigSourceDynamicTopicConfig)
	adminWantConfig(t, res, "segment.bytes", "2097152", kmsg.ConfigSourceStaticBrokerConfig)
	adminWantConfig(t, res, "max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)
	if len(res.Configs) != len(b.configs.topic) {
		t.Errorf("described %d configs, want all %d", len(res.Configs), len(b.configs.topic))
	}
	cfgs := adminConfigsByName(res)
	ret := cfgs["retention.ms"]
	if ret.ReadOnly || ret.IsSensitive || ret.ConfigType != kmsg.ConfigTypeLong || ret.Documentation == nil {
		t.Errorf("retention.ms: read-only %v sensitive %v type %v doc %v", ret.ReadOnly, ret.IsSensitive, ret.ConfigType, ret.Documentation)
	}
	// Synonyms, strongest first: the topic's value, then the broker default.
	if len(ret.ConfigSynonyms) != 2 || ret.ConfigSynonyms[0].Source != kmsg.ConfigSourceDynamicTopicConfig ||
		ret.ConfigSynonyms[1].Name != "log.retention.ms" || ret.ConfigSynonyms[1].Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("retention.ms synonyms %+v", ret.ConfigSynonyms)
	}
	seg := cfgs["segment.bytes"]
	if len(seg.ConfigSynonyms) != 2 || seg.ConfigSynonyms[0].Source != kmsg.ConfigSourceStaticBrokerConfig || adminDeref(seg.ConfigSynonyms[1].Value) != "1073741824" {
		t.Errorf("segment.bytes synonyms %+v", seg.ConfigSynonyms)
	}
	if part.settings.Load().storage.SegmentBytes != 2097152 {
		t.Errorf("partition segment bytes %d", part.settings.Load().storage.SegmentBytes)
	}

	for _, r := range adminIncAlter(t, b, c, false, adminIncResource(adminResTopic, "rt",
		opSet("max.message.bytes", "2000"),
		opDelete("retention.ms"),
		opAppend("cleanup.policy", "compact"),
		opDelete("segment.ms"), // not set: nothing to do
	)) {
		adminWantCode(t, "incremental alter", r.ErrorCode, r.ErrorMessage, nil, "")
	}
	res = adminDescribeConfigs(t, b, c, 4, adminResTopic, "rt")
	adminWantConfig(t, res, "max.message.bytes", "2000", kmsg.ConfigSourceDynamicTopicConfig)
	adminWantConfig(t, res, "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
	adminWantConfig(t, res, "cleanup.policy", "delete,compact", kmsg.ConfigSourceDynamicTopicConfig)
	if got := part.settings.Load().maxMessageBytes; got != 2000 {
		t.Errorf("partition max message bytes %d after alter, want 2000", got)
	}
	topic, _ := b.store.Topic("rt")
	if len(topic.Configs) != 2 {
		t.Errorf("stored configs %v, want cleanup.policy and max.message.bytes", topic.Configs)
	}

	// SUBTRACT, and APPEND starting from Kafka's default when not set.
	adminIncAlter(t, b, c, false, adminIncResource(adminResTopic, "rt", opSubtract("cleanup.policy", "delete")))
	adminWantConfig(t, adminDescribeConfigs(t, b, c, 4, adminResTopic, "rt", "cleanup.policy"), "cleanup.policy", "compact", kmsg.ConfigSourceDynamicTopicConfig)
	adminIncAlter(t, b, c, false, adminIncResource(adminResTopic, "rt", opDelete("cleanup.policy")))
	adminIncAlter(t, b, c, false, adminIncResource(adminResTopic, "rt", opAppend("cleanup.policy", "compact,delete")))
	res = adminDescribeConfigs(t, b, c, 4, adminResTopic, "rt", "cleanup.policy", "no.such.config")
	adminWantConfig(t, res, "cleanup.policy", "delete,compact", kmsg.ConfigSourceDynamicTopicConfig)
	if len(res.Configs) != 1 {
		t.Errorf("filtered describe returned %d configs", len(res.Configs))
	}

	// The legacy API replaces the whole set.
	adminWantCode(t, "legacy alter", adminLegacyAlter(t, b, c, false, adminLegacyResource(adminResTopic, "rt", "retention.ms", "77"))[0].ErrorCode, nil, nil, "")
	topic, _ = b.store.Topic("rt")
	if len(topic.Configs) != 1 || topic.Configs["retention.ms"] != "77" {
		t.Errorf("after legacy alter stored configs %v, want only retention.ms=77", topic.Configs)
	}
	if got := part.settings.Load().maxMessageBytes; got != 1048588 {
		t.Errorf("partition max message bytes %d after legacy alter, want the default", got)
	}
}

// TestAdminBrokerConfigInheritance changes log.retention.ms at the cluster
// default and at this broker and watches a topic inherit it.
func TestAdminBrokerConfigInheritance(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("heir", 1, 1))
	part, err := b.parts.get("heir", 0)
	if err != nil {
		t.Fatal(err)
	}

	r := adminLegacyAlter(t, b, c, false, adminLegacyResource(adminResBroker, "", "log.retention.ms", "1234", "log.segment.bytes", "4194304"))
	adminWantCode(t, "alter cluster default", r[0].ErrorCode, r[0].ErrorMessage, nil, "")
	res := adminDescribeConfigs(t, b, c, 4, adminResTopic, "heir", "retention.ms", "segment.bytes")
	adminWantConfig(t, res, "retention.ms", "1234", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	adminWantConfig(t, res, "segment.bytes", "4194304", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	if got := part.settings.Load().storage.SegmentBytes; got != 4194304 {
		t.Errorf("partition segment bytes %d after broker default change", got)
	}

	ir := adminIncAlter(t, b, c, false, adminIncResource(adminResBroker, "1", opSet("log.retention.ms", "555")))
	adminWantCode(t, "alter this broker", ir[0].ErrorCode, ir[0].ErrorMessage, nil, "")
	res = adminDescribeConfigs(t, b, c, 4, adminResTopic, "heir", "retention.ms")
	adminWantConfig(t, res, "retention.ms", "555", kmsg.ConfigSourceDynamicBrokerConfig)
	syns := res.Configs[0].ConfigSynonyms
	if len(syns) != 3 || syns[0].Source != kmsg.ConfigSourceDynamicBrokerConfig || syns[1].Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig || syns[2].Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("retention.ms synonyms %+v", syns)
	}

	// The cluster default resource lists only what is set there.
	def := adminDescribeConfigs(t, b, c, 4, adminResBroker, "")
	if def.ErrorCode != 0 || len(def.Configs) != 2 {
		t.Fatalf("cluster default: error %d, %d configs", def.ErrorCode, len(def.Configs))
	}
	adminWantConfig(t, def, "log.retention.ms", "1234", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	if syns := def.Configs[0].ConfigSynonyms; len(syns) != 1 || syns[0].Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Errorf("cluster default synonyms %+v", syns)
	}
	// This broker lists everything.
	self := adminDescribeConfigs(t, b, c, 4, adminResBroker, "1")
	adminWantConfig(t, self, "log.retention.ms", "555", kmsg.ConfigSourceDynamicBrokerConfig)
	adminWantConfig(t, self, "log.segment.bytes", "4194304", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	adminWantConfig(t, self, "node.id", "1", kmsg.ConfigSourceStaticBrokerConfig)
	adminWantConfig(t, self, "num.partitions", "1", kmsg.ConfigSourceDefaultConfig)
	cfgs := adminConfigsByName(self)
	if !cfgs["node.id"].ReadOnly || cfgs["log.retention.ms"].ReadOnly {
		t.Errorf("read-only: node.id %v, log.retention.ms %v", cfgs["node.id"].ReadOnly, cfgs["log.retention.ms"].ReadOnly)
	}
	if len(self.Configs) != len(b.configs.broker) {
		t.Errorf("described %d broker configs, want %d", len(self.Configs), len(b.configs.broker))
	}

	// Deleting the broker's own value falls back to the cluster default.
	adminIncAlter(t, b, c, false, adminIncResource(adminResBroker, "1", opDelete("log.retention.ms")))
	adminWantConfig(t, adminDescribeConfigs(t, b, c, 4, adminResTopic, "heir", "retention.ms"), "retention.ms", "1234", kmsg.ConfigSourceDynamicDefaultBrokerConfig)

	// num.partitions set at run time is what CreateTopics uses for -1.
	adminIncAlter(t, b, c, false, adminIncResource(adminResBroker, "", opSet("num.partitions", "5")))
	if st := adminCreateTopics(t, b, c, 7, false, adminTopic("five", -1, -1)).Topics[0]; st.NumPartitions != 5 {
		t.Errorf("created with %d partitions, want num.partitions=5", st.NumPartitions)
	}
}

func TestAdminAlterConfigsErrors(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("t", 1, 1, "retention.ms", "100"))
	nullValue := adminLegacyResource(adminResTopic, "missing")
	nullValue.Configs = []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms"}}

	cases := []struct {
		what    string
		res     kmsg.AlterConfigsRequestResource
		want    *kerr.Error
		msgPart string
	}{
		{"other topic", adminLegacyResource(adminResTopic, "missing", "retention.ms", "1"), kerr.UnknownTopicOrPartition, "missing"},
		{"invalid topic name", adminLegacyResource(adminResTopic, "a/b", "retention.ms", "1"), kerr.InvalidTopicException, ""},
		{"duplicate keys", adminLegacyResource(adminResBroker, "", "log.retention.ms", "1", "log.retention.ms", "2"), kerr.InvalidRequest, "duplicate config keys"},
		{"bad broker name", adminLegacyResource(adminResBroker, "one", "log.retention.ms", "1"), kerr.InvalidRequest, "integer"},
		{"other broker", adminLegacyResource(adminResBroker, "2", "log.retention.ms", "1"), kerr.InvalidRequest, "expected 1"},
		{"read-only broker config", adminLegacyResource(adminResBroker, "1", "log.dirs", "/x"), kerr.InvalidRequest, "log.dirs"},
		{"unknown broker config", adminLegacyResource(adminResBroker, "1", "no.such", "1"), kerr.InvalidRequest, "no.such"},
		{"bad broker value", adminLegacyResource(adminResBroker, "1", "num.partitions", "0"), kerr.InvalidRequest, "num.partitions"},
		{"logger", adminLegacyResource(kmsg.ConfigResourceTypeBrokerLogger, "1", "root", "DEBUG"), kerr.InvalidRequest, "resource type"},
		{"unknown type", adminLegacyResource(kmsg.ConfigResourceType(99), "x"), kerr.InvalidRequest, "resource type"},
	}
	for _, tc := range cases {
		r := adminLegacyAlter(t, b, c, false, tc.res)[0]
		adminWantCode(t, tc.what, r.ErrorCode, r.ErrorMessage, tc.want, tc.msgPart)
	}
	// A resource named twice is refused at both places, the other one served.
	r := adminLegacyAlter(t, b, c, false,
		adminLegacyResource(adminResTopic, "t", "retention.ms", "1"),
		adminLegacyResource(adminResBroker, "", "log.retention.ms", "9"),
		adminLegacyResource(adminResTopic, "t", "retention.ms", "2"))
	adminWantCode(t, "duplicate resource", r[0].ErrorCode, r[0].ErrorMessage, kerr.InvalidRequest, "at most once")
	adminWantCode(t, "other resource", r[1].ErrorCode, r[1].ErrorMessage, nil, "")
	adminWantCode(t, "duplicate resource", r[2].ErrorCode, r[2].ErrorMessage, kerr.InvalidRequest, "at most once")
	adminLegacyAlter(t, b, c, false, adminLegacyResource(adminResBroker, ""))

	// Topic-level validation failures are INVALID_CONFIG; a null value is
	// refused before the topic is looked at.
	adminMustCreate(t, b, c, adminTopic("u", 1, 1))
	r = adminLegacyAlter(t, b, c, false,
		adminLegacyResource(adminResTopic, "u", "retention.ms", "x"),
		adminLegacyResource(adminResTopic, "t", "bogus", "1"))
	adminWantCode(t, "bad topic value", r[0].ErrorCode, r[0].ErrorMessage, kerr.InvalidConfig, "retention.ms")
	adminWantCode(t, "unknown topic config", r[1].ErrorCode, r[1].ErrorMessage, kerr.InvalidConfig, "bogus")
	adminWantCode(t, "null value", adminLegacyAlter(t, b, c, false, nullValue)[0].ErrorCode, nil, kerr.InvalidRequest, "")
	if got, _ := b.store.Topic("t"); got.Configs["retention.ms"] != "100" || len(got.Configs) != 1 {
		t.Errorf("failed alters changed t's configs to %v", got.Configs)
	}
	if got := b.store.BrokerConfigs(-1); len(got) != 0 {
		t.Errorf("failed alters changed broker defaults to %v", got)
	}

	// ValidateOnly changes nothing.
	r = adminLegacyAlter(t, b, c, true, adminLegacyResource(adminResTopic, "t", "retention.ms", "5"), adminLegacyResource(adminResBroker, "", "log.retention.ms", "5"))
	adminWantCode(t, "validate-only topic", r[0].ErrorCode, r[0].ErrorMessage, nil, "")
	adminWantCode(t, "validate-only broker", r[1].ErrorCode, r[1].ErrorMessage, nil, "")
	if got, _ := b.store.Topic("t"); got.Configs["retention.ms"] != "100" {
		t.Errorf("validate-only changed t's configs to %v", got.Configs)
	}
	if got := b.store.BrokerConfigs(-1); len(got) != 0 {
		t.Errorf("validate-only changed broker defaults to %v", got)
	}
}

func TestAdminIncrementalAlterConfigsErrors(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("t", 1, 1, "retention.ms", "100"))
	cases := []struct {
		what    string
		res     kmsg.IncrementalAlterConfigsRequestResource
		want    *kerr.Error
		msgPart string
	}{
		{"append to non-list", adminIncResource(adminResTopic, "t", opAppend("retention.ms", "1")), kerr.InvalidConfig, "not LIST"},
		{"subtract from non-list", adminIncResource(adminResBroker, "1", opSubtract("log.retention.ms", "1")), kerr.InvalidConfig, "not LIST"},
		{"append bad item", adminIncResource(adminResBroker, "", opAppend("log.cleanup.policy", "shred")), kerr.InvalidRequest, "log.cleanup.policy"},
		{"append unknown config", adminIncResource(adminResTopic, "t", opAppend("bogus", "1")), kerr.InvalidConfig, "bogus"},
		{"unknown op", adminIncResource(adminResTopic, "t", adminConfigOp{"retention.ms", 9, kmsg.StringPtr("1")}), kerr.InvalidRequest, "operation"},
		{"duplicate keys", adminIncResource(adminResTopic, "t", opSet("retention.ms", "1"), opDelete("retention.ms")), kerr.InvalidRequest, "duplicate config keys"},
		{"null set", adminIncResource(adminResTopic, "t", adminConfigOp{"retention.ms", kmsg.IncrementalAlterConfigOpSet, nil}), kerr.InvalidRequest, "Null value"},
		{"bad value", adminIncResource(adminResTopic, "t", opSet("retention.ms", "-5")), kerr.InvalidConfig, "retention.ms"},
		{"read-only broker config", adminIncResource(adminResBroker, "1", opSet("socket.request.max.bytes", "100")), kerr.InvalidRequest, "socket.request.max.bytes"},
		{"logger", adminIncResource(kmsg.ConfigResourceTypeBrokerLogger, "1", opSet("root", "DEBUG")), kerr.InvalidRequest, "BROKER_LOGGER"},
		{"unknown topic", adminIncResource(adminResTopic, "nope", opSet("retention.ms", "1")), kerr.UnknownTopicOrPartition, ""},
		{"delete unknown", adminIncResource(adminResTopic, "t", opDelete("bogus")), nil, ""},
		{"delete null broker", adminIncResource(adminResBroker, "", opDelete("log.retention.ms")), nil, ""},
	}
	for _, tc := range cases {
		r := adminIncAlter(t, b, c, false, tc.res)[0]
		adminWantCode(t, tc.what, r.ErrorCode, r.ErrorMessage, tc.want, tc.msgPart)
	}
	dup := adminIncAlter(t, b, c, false,
		adminIncResource(adminResBroker, "1", opSet("log.retention.ms", "1")),
		adminIncResource(adminResBroker, "1", opSet("log.retention.ms", "2")))
	for _, r := range dup {
		adminWantCode(t, "duplicate resource", r.ErrorCode, r.ErrorMessage, kerr.InvalidRequest, "at most once")
	}
	if got, _ := b.store.Topic("t"); got.Configs["retention.ms"] != "100" || len(got.Configs) != 1 {
		t.Errorf("failed alters changed t's configs to %v", got.Configs)
	}
	if got := b.store.BrokerConfigs(1); len(got) != 0 {
		t.Errorf("failed alters changed broker configs to %v", got)
	}

	// ValidateOnly checks but does not store.
	r := adminIncAlter(t, b, c, true, adminIncResource(adminResTopic, "t", opSet("retention.ms", "7")))
	adminWantCode(t, "validate-only", r[0].ErrorCode, r[0].ErrorMessage, nil, "")
	if got, _ := b.store.Topic("t"); got.Configs["retention.ms"] != "100" {
		t.Errorf("validate-only changed t's configs to %v", got.Configs)
	}
}

func TestAdminDescribeConfigsErrors(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	adminMustCreate(t, b, c, adminTopic("t", 1, 1))
	for _, tc := range []struct {
		what string
		typ  kmsg.ConfigResourceType
		name string
		want *kerr.Error
	}{
		{"unknown topic", adminResTopic, "nope", kerr.UnknownTopicOrPartition},
		{"invalid topic", adminResTopic, "a b", kerr.InvalidTopicException},
		{"empty topic", adminResTopic, "", kerr.InvalidTopicException},
		{"other broker", adminResBroker, "2", kerr.InvalidRequest},
		{"non-numeric broker", adminResBroker, "b1", kerr.InvalidRequest},
		{"broker logger", kmsg.ConfigResourceTypeBrokerLogger, "1", kerr.InvalidRequest},
		{"group", kmsg.ConfigResourceTypeGroupConfig, "g", kerr.InvalidRequest},
		{"unknown type", kmsg.ConfigResourceType(-3), "x", kerr.InvalidRequest},
	} {
		res := adminDescribeConfigs(t, b, c, 4, tc.typ, tc.name)
		adminWantCode(t, tc.what, res.ErrorCode, res.ErrorMessage, tc.want, "")
		if len(res.Configs) != 0 {
			t.Errorf("%s: %d configs with an error", tc.what, len(res.Configs))
		}
	}

	// v0 has IsDefault instead of sources; no synonyms before v1.
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.SetVersion(0)
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = adminResTopic, "t", []string{"retention.ms"}
	req.Resources = append(req.Resources, rr)
	resp, _ := b.handleDescribeConfigs(c, req)
	cfgs := resp.(*kmsg.DescribeConfigsResponse).Resources[0].Configs
	if len(cfgs) != 1 || !cfgs[0].IsDefault || cfgs[0].ConfigSynonyms != nil || cfgs[0].Documentation != nil {
		t.Errorf("v0 describe %+v", cfgs)
	}
}

// TestDescribeConfigsToolConfigs checks the broker configs tools read to
// decide what a cluster supports, with Kafka's values.
func TestDescribeConfigsToolConfigs(t *testing.T) {
	b, c := newAdminBroker(t, nil)
	res := adminDescribeConfigs(t, b, c, 4, adminResBroker, "1",
		"inter.broker.protocol.version", "default.replication.factor", "delete.topic.enable", "log.dirs")
	adminWantConfig(t, res, "inter.broker.protocol.version", "3.9-IV0", kmsg.ConfigSourceDefaultConfig)
	adminWantConfig(t, res, "default.replication.factor", "1", kmsg.ConfigSourceDefaultConfig)
	adminWantConfig(t, res, "delete.topic.enable", "true", kmsg.ConfigSourceDefaultConfig)
	adminWantConfig(t, res, "log.dirs", b.cfg.DataDir, kmsg.ConfigSourceStaticBrokerConfig)
	byName := adminConfigsByName(res)
	if len(byName) != 4 {
		t.Fatalf("described %d configs, want 4: %v", len(byName), byName)
	}
	for name, want := range map[string]kmsg.ConfigType{
		"inter.broker.protocol.version": kmsg.ConfigTypeString,
		"delete.topic.enable":           kmsg.ConfigTypeBoolean,
		"default.replication.factor":    kmsg.ConfigTypeInt,
	} {
		if got := byName[name]; got.ConfigType != want || !got.ReadOnly && name != "default.replication.factor" {
			t.Errorf("%s: type %v read-only %v, want type %v read-only", name, got.ConfigType, got.ReadOnly, want)
		}
	}
}

// TestDeleteTopicsDisabled checks delete.topic.enable=false: every topic
// gets TOPIC_DELETION_DISABLED (INVALID_REQUEST before v3) and stays.
func TestDeleteTopicsDisabled(t *testing.T) {
	b, c := newAdminBroker(t, map[string]string{"delete.topic.enable": "false"})
	adminMustCreate(t, b, c, adminTopic("kept", 1, 1))
	resp := adminDeleteByName(t, b, c, 5, "kept", "missing")
	for _, st := range resp.Topics {
		adminWantCode(t, "delete "+adminDeref(st.Topic), st.ErrorCode, st.ErrorMessage, kerr.TopicDeletionDisabled, "disabled")
	}
	resp = adminDeleteByName(t, b, c, 2, "kept")
	if resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("v2: error %d, want INVALID_REQUEST", resp.Topics[0].ErrorCode)
	}
	if _, ok := b.store.Topic("kept"); !ok {
		t.Fatal("topic deleted although delete.topic.enable=false")
	}
	adminWantConfig(t, adminDescribeConfigs(t, b, c, 4, adminResBroker, "1", "delete.topic.enable"),
		"delete.topic.enable", "false", kmsg.ConfigSourceStaticBrokerConfig)
}
