package broker

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/storage"
)

// configDef describes one config Gregor knows, with Kafka's name, type and
// default. Topic configs name the broker config that supplies their default
// (for example segment.bytes inherits log.segment.bytes).
type configDef struct {
	name       string
	typ        kmsg.ConfigType
	def        *string // nil: Kafka's default is null
	brokerName string  // topic configs: the broker synonym, or ""
	check      func(string) error
	doc        string
	// dynamic marks broker configs that AlterConfigs may change at run time.
	dynamic bool
	// enforced is false for configs Gregor stores and reports but does not act on yet.
	enforced bool
}

func str(s string) *string { return &s }

func intRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is outside [%d, %d]", n, lo, hi)
		}
		return nil
	}
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		for _, ok := range values {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(values, ", "))
	}
}

func listOf(values ...string) func(string) error {
	each := oneOf(values...)
	return func(v string) error {
		for _, part := range strings.Split(v, ",") {
			if err := each(strings.TrimSpace(part)); err != nil {
				return err
			}
		}
		return nil
	}
}

func isBool(v string) error {
	if v != "true" && v != "false" {
		return fmt.Errorf("%q is not true or false", v)
	}
	return nil
}

func isDouble(lo, hi float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < lo || f > hi {
			return fmt.Errorf("%q is not a number in [%g, %g]", v, lo, hi)
		}
		return nil
	}
}

const maxLong = math.MaxInt64

var maxLongStr = strconv.FormatInt(maxLong, 10)

// topicConfigDefs lists the topic configs Gregor accepts, sorted by name.
// It is built once per broker and never changed.
func topicConfigDefs() []configDef {
	long := kmsg.ConfigTypeLong
	integer := kmsg.ConfigTypeInt
	defs := []configDef{
		{name: "cleanup.policy", typ: kmsg.ConfigTypeList, def: str("delete"), brokerName: "log.cleanup.policy", check: listOf("delete", "compact"), doc: "delete or compact old segments; compact (or compact,delete) runs the log cleaner and needs keyed records", enforced: true},
		{name: "compression.type", typ: kmsg.ConfigTypeString, def: str("producer"), brokerName: "compression.type", check: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"), doc: "codec of stored batches; producer keeps the producer's"},
		{name: "delete.retention.ms", typ: long, def: str("86400000"), brokerName: "log.cleaner.delete.retention.ms", check: intRange(0, maxLong), doc: "how long tombstones, and markers of transactions with nothing left, stay in a cleaned log (from their batch timestamp)", enforced: true},
		{name: "file.delete.delay.ms", typ: long, def: str("60000"), brokerName: "log.segment.delete.delay.ms", check: intRange(0, maxLong), doc: "delay before a deleted segment's file is removed", enforced: true},
		{name: "flush.messages", typ: long, def: str(maxLongStr), brokerName: "log.flush.interval.messages", check: intRange(1, maxLong), doc: "fsync once this many messages are unflushed; acks wait for it", enforced: true},
		{name: "flush.ms", typ: long, def: str(maxLongStr), brokerName: "log.flush.interval.ms", check: intRange(0, maxLong), doc: "fsync when the oldest unflushed message is this old; acks wait for it", enforced: true},
		{name: "index.interval.bytes", typ: integer, def: str("4096"), brokerName: "log.index.interval.bytes", check: intRange(0, math.MaxInt32), doc: "bytes between offset index entries", enforced: true},
		{name: "max.compaction.lag.ms", typ: long, def: str(maxLongStr), brokerName: "log.cleaner.max.compaction.lag.ms", check: intRange(1, maxLong), doc: "longest time a record may stay uncompacted", enforced: true},
		{name: "max.message.bytes", typ: integer, def: str("1048588"), brokerName: "message.max.bytes", check: intRange(0, math.MaxInt32), doc: "largest record batch accepted", enforced: true},
		{name: "message.timestamp.after.max.ms", typ: long, def: str("3600000"), brokerName: "log.message.timestamp.after.max.ms", check: intRange(0, maxLong), doc: "how far in the future a batch timestamp may be"},
		{name: "message.timestamp.before.max.ms", typ: long, def: str(maxLongStr), brokerName: "log.message.timestamp.before.max.ms", check: intRange(0, maxLong), doc: "how far in the past a batch timestamp may be"},
		{name: "message.timestamp.type", typ: kmsg.ConfigTypeString, def: str("CreateTime"), brokerName: "log.message.timestamp.type", check: oneOf("CreateTime", "LogAppendTime"), doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's", enforced: true},
		{name: "min.cleanable.dirty.ratio", typ: kmsg.ConfigTypeDouble, def: str("0.5"), brokerName: "log.cleaner.min.cleanable.ratio", check: isDouble(0, 1), doc: "dirty ratio that makes a compacted log eligible for cleaning", enforced: true},
		{name: "min.compaction.lag.ms", typ: long, def: str("0"), brokerName: "log.cleaner.min.compaction.lag.ms", check: intRange(0, maxLong), doc: "shortest time a record stays uncompacted", enforced: true},
		{name: "min.insync.replicas", typ: integer, def: str("1"), brokerName: "min.insync.replicas", check: intRange(1, math.MaxInt32), doc: "replicas that must acknowledge an acks=all write", enforced: true},
		{name: "preallocate", typ: kmsg.ConfigTypeBoolean, def: str("false"), brokerName: "log.preallocate", check: isBool, doc: "preallocate segment files"},
		{name: "retention.bytes", typ: long, def: str("-1"), brokerName: "log.retention.bytes", check: intRange(-1, maxLong), doc: "size a partition is trimmed to, by whole closed segments; -1 for no limit", enforced: true},
		{name: "retention.ms", typ: long, def: str("604800000"), brokerName: "log.retention.ms", check: intRange(-1, maxLong), doc: "age (by its largest timestamp) at which a closed segment is deleted; -1 for no limit", enforced: true},
		{name: "segment.bytes", typ: integer, def: str("1073741824"), brokerName: "log.segment.bytes", check: intRange(14, math.MaxInt32), doc: "size at which a new segment is rolled", enforced: true},
		{name: "segment.index.bytes", typ: integer, def: str("10485760"), brokerName: "log.index.size.max.bytes", check: intRange(8, math.MaxInt32), doc: "largest offset index before a roll", enforced: true},
		{name: "segment.jitter.ms", typ: long, def: str("0"), brokerName: "log.roll.jitter.ms", check: intRange(0, maxLong), doc: "random jitter subtracted from segment.ms", enforced: true},
		{name: "segment.ms", typ: long, def: str("604800000"), brokerName: "log.roll.ms", check: intRange(1, maxLong), doc: "age at which a new segment is rolled", enforced: true},
		{name: "unclean.leader.election.enable", typ: kmsg.ConfigTypeBoolean, def: str("false"), brokerName: "unclean.leader.election.enable", check: isBool, doc: "allow out-of-sync replicas to become leader"},
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].name < defs[j].name })
	return defs
}

// brokerConfigDefs lists the broker configs Gregor reports and accepts,
// sorted by name: the broker synonyms of every topic config plus the
// broker-only ones.
func brokerConfigDefs(topicDefs []configDef) []configDef {
	defs := []configDef{
		{name: "auto.create.topics.enable", typ: kmsg.ConfigTypeBoolean, def: str("true"), check: isBool, doc: "create unknown topics on Metadata requests that allow it", dynamic: true, enforced: true},
		{name: "default.replication.factor", typ: kmsg.ConfigTypeInt, def: str("1"), check: intRange(1, math.MaxInt16), doc: "replication factor of automatically created topics", dynamic: true},
		{name: "num.partitions", typ: kmsg.ConfigTypeInt, def: str("1"), check: intRange(1, math.MaxInt32), doc: "partition count of topics created without one", dynamic: true, enforced: true},
		{name: "socket.request.max.bytes", typ: kmsg.ConfigTypeInt, def: str("104857600"), check: intRange(1, math.MaxInt32), doc: "largest request frame accepted", enforced: true},
		// Resource limits (README "Limits"): read once at start unless dynamic.
		{name: "fetch.max.bytes", typ: kmsg.ConfigTypeInt, def: str("57671680"), check: intRange(1024, math.MaxInt32), doc: "most record bytes one Fetch response returns, whatever the request asks", enforced: true},
		{name: "queued.max.request.bytes", typ: kmsg.ConfigTypeLong, def: str("134217728"), check: intRange(-1, maxLong), doc: "bytes of requests read and not yet handled, across connections, before no more are read (Kafka's default -1 is unbounded; Gregor's is 128 MiB; -1 or 0 unbounded)", enforced: true},
		{name: "queued.max.response.bytes", typ: kmsg.ConfigTypeLong, def: str("268435456"), check: intRange(-1, maxLong), doc: "Gregor: bytes of fetched records read for consumers and not yet written to their sockets, across connections; a fetch over it returns less (-1 or 0 unbounded)", enforced: true},
		{name: "queued.max.replica.response.bytes", typ: kmsg.ConfigTypeLong, def: str("67108864"), check: intRange(-1, maxLong), doc: "Gregor: queued.max.response.bytes for follower fetches, kept apart so that consumers cannot starve replication (-1 or 0 unbounded)", enforced: true},
		{name: "max.connections", typ: kmsg.ConfigTypeInt, def: str("4096"), check: intRange(0, math.MaxInt32), doc: "connections the broker accepts at once; more are closed at accept (Kafka's default is 2147483647)", dynamic: true, enforced: true},
		{name: "max.connections.per.ip", typ: kmsg.ConfigTypeInt, def: str("2147483647"), check: intRange(0, math.MaxInt32), doc: "connections accepted at once from one IP address; more are closed at accept", dynamic: true, enforced: true},
		{name: "max.connections.per.ip.overrides", typ: kmsg.ConfigTypeString, def: str(""), check: checkIPOverrides, doc: "per-IP exceptions to max.connections.per.ip, as ip:count,ip:count", dynamic: true, enforced: true},
		{name: "connections.max.idle.ms", typ: kmsg.ConfigTypeLong, def: str("600000"), check: intRange(1, maxLong), doc: "a connection with no request in flight and nothing read for this long is closed", enforced: true},
		{name: "max.partitions", typ: kmsg.ConfigTypeInt, def: str("100000"), check: intRange(1, math.MaxInt32), doc: "Gregor (KIP-578): partitions the cluster may hold; creations beyond it fail with POLICY_VIOLATION", dynamic: true, enforced: true},
		{name: "max.broker.partitions", typ: kmsg.ConfigTypeInt, def: str("10000"), check: intRange(1, math.MaxInt32), doc: "Gregor (KIP-578): partition replicas per live broker; creations beyond live brokers times it fail with POLICY_VIOLATION", dynamic: true, enforced: true},
		{name: "node.id", typ: kmsg.ConfigTypeInt, check: intRange(0, math.MaxInt32), doc: "this broker's id", enforced: true},
		{name: "broker.id", typ: kmsg.ConfigTypeInt, check: intRange(0, math.MaxInt32), doc: "this broker's id (synonym of node.id)", enforced: true},
		{name: "log.dirs", typ: kmsg.ConfigTypeString, doc: "directory holding partition logs", enforced: true},
		// Read by tools deciding what a cluster supports.
		{name: "delete.topic.enable", typ: kmsg.ConfigTypeBoolean, def: str("true"), check: isBool, doc: "allow DeleteTopics; false refuses every deletion with TOPIC_DELETION_DISABLED", enforced: true},
		{name: "inter.broker.protocol.version", typ: kmsg.ConfigTypeString, def: str(interBrokerProtocolVersion), doc: "the inter-broker protocol version (Kafka 3.9's value, the last release with this config: Gregor's brokers speak one protocol)"},
		{name: "log.segment.files.open.max", typ: kmsg.ConfigTypeInt, def: str("4096"), check: intRange(0, math.MaxInt32), doc: "Gregor: segment files (.log, .index, .timeindex) kept open when idle, across all partitions; more are opened on demand and the least recently used closed (Kafka keeps every one open; 0 keeps every one open too)", enforced: true},
		{name: "log.flush.offset.checkpoint.interval.ms", typ: kmsg.ConfigTypeInt, def: str("60000"), check: intRange(0, math.MaxInt32), doc: "how often the recovery-point-offset-checkpoint is written (and at shutdown); after a crash only segments past it are checked", enforced: true},
		{name: "advertised.listeners", typ: kmsg.ConfigTypeString, doc: "address clients are told to connect to", enforced: true},
		{name: "listeners", typ: kmsg.ConfigTypeString, doc: "address the broker listens on", enforced: true},
		// Group coordinator configs: read once at start (static).
		{name: "offsets.topic.num.partitions", typ: kmsg.ConfigTypeInt, def: str("50"), check: intRange(1, 10000), doc: "partitions of __consumer_offsets when it is created", enforced: true},
		{name: "offsets.topic.replication.factor", typ: kmsg.ConfigTypeShort, def: str("3"), check: intRange(1, math.MaxInt16), doc: "replication factor of __consumer_offsets (fewer when fewer brokers are live at its creation)", enforced: true},
		{name: "offsets.topic.segment.bytes", typ: kmsg.ConfigTypeInt, def: str("104857600"), check: intRange(14, math.MaxInt32), doc: "segment.bytes of __consumer_offsets", enforced: true},
		{name: "offsets.retention.minutes", typ: kmsg.ConfigTypeInt, def: str("10080"), check: intRange(1, math.MaxInt32), doc: "how long the offsets of an empty group are kept", enforced: true},
		{name: "offsets.retention.check.interval.ms", typ: kmsg.ConfigTypeLong, def: str("600000"), check: intRange(1, maxLong), doc: "how often expired offsets are looked for", enforced: true},
		{name: "log.cleaner.backoff.ms", typ: kmsg.ConfigTypeLong, def: str("15000"), check: intRange(0, maxLong), doc: "how long a log cleaner thread waits when no compacted partition is due; 0 stops cleaning", dynamic: true, enforced: true},
		{name: "log.cleaner.enable", typ: kmsg.ConfigTypeBoolean, def: str("true"), check: isBool, doc: "run the log cleaner (compaction of cleanup.policy=compact topics, the internal topics included); read at start", enforced: true},
		{name: "log.cleaner.threads", typ: kmsg.ConfigTypeInt, def: str("1"), check: intRange(1, maxCleanerThreads), doc: "log cleaner goroutines", dynamic: true, enforced: true},
		{name: "log.cleaner.dedupe.buffer.size", typ: kmsg.ConfigTypeLong, def: str("134217728"), check: intRange(1<<10, maxLong), doc: "memory of the cleaners' offset maps, shared among the threads (24 bytes a key)", dynamic: true, enforced: true},
		{name: "log.cleaner.io.buffer.load.factor", typ: kmsg.ConfigTypeDouble, def: str("0.9"), check: isDouble(0.01, 1), doc: "how full an offset map is filled", dynamic: true, enforced: true},
		{name: "log.cleaner.io.max.bytes.per.second", typ: kmsg.ConfigTypeDouble, def: str("1.7976931348623157E308"), check: isDouble(1, math.MaxFloat64), doc: "bytes per second the cleaners read and write, together", dynamic: true, enforced: true},
		// Retention (retention.go): log.retention.ms and .bytes are the
		// dynamic synonyms of the topic configs; the hours and minutes
		// forms and the intervals are read-only, as in Kafka.
		{name: "log.retention.hours", typ: kmsg.ConfigTypeInt, def: str("168"), check: intRange(-1, math.MaxInt32), doc: "retention.ms default in hours, when neither log.retention.ms nor log.retention.minutes is set", dynamic: true, enforced: true},
		{name: "log.retention.minutes", typ: kmsg.ConfigTypeInt, check: intRange(-1, math.MaxInt32), doc: "retention.ms default in minutes, when log.retention.ms is not set", dynamic: true, enforced: true},
		{name: "log.retention.check.interval.ms", typ: kmsg.ConfigTypeLong, def: str("300000"), check: intRange(1, maxLong), doc: "how often every partition is checked for segments to delete", enforced: true},
		{name: "log.flush.start.offset.checkpoint.interval.ms", typ: kmsg.ConfigTypeInt, def: str("60000"), check: intRange(0, math.MaxInt32), doc: "how often the log start offsets are written to log-start-offset-checkpoint (DeleteRecords writes it at once)", enforced: true},
		{name: "offset.metadata.max.bytes", typ: kmsg.ConfigTypeInt, def: str("4096"), check: intRange(0, math.MaxInt32), doc: "largest metadata string of a committed offset", enforced: true},
		{name: "group.min.session.timeout.ms", typ: kmsg.ConfigTypeInt, def: str("6000"), check: intRange(0, math.MaxInt32), doc: "smallest session timeout a classic group member may ask for", enforced: true},
		{name: "group.max.session.timeout.ms", typ: kmsg.ConfigTypeInt, def: str("1800000"), check: intRange(0, math.MaxInt32), doc: "largest session timeout a classic group member may ask for", enforced: true},
		{name: "group.initial.rebalance.delay.ms", typ: kmsg.ConfigTypeInt, def: str("3000"), check: intRange(0, math.MaxInt32), doc: "how long the first rebalance of an empty group waits for more members", enforced: true},
		{name: "group.max.size", typ: kmsg.ConfigTypeInt, def: str("2147483647"), check: intRange(1, math.MaxInt32), doc: "most members a group may have", enforced: true},
		{name: "group.consumer.session.timeout.ms", typ: kmsg.ConfigTypeInt, def: str("45000"), check: intRange(1, math.MaxInt32), doc: "session timeout of KIP-848 consumer group members", enforced: true},
		{name: "group.consumer.heartbeat.interval.ms", typ: kmsg.ConfigTypeInt, def: str("5000"), check: intRange(1, math.MaxInt32), doc: "heartbeat interval of KIP-848 consumer group members", enforced: true},
		// Replication: read once at start (static).
		// Transaction coordinator configs: read once at start (static).
		{name: "transaction.state.log.num.partitions", typ: kmsg.ConfigTypeInt, def: str("50"), check: intRange(1, 10000), doc: "partitions of __transaction_state when it is created", enforced: true},
		{name: "transaction.state.log.replication.factor", typ: kmsg.ConfigTypeShort, def: str("3"), check: intRange(1, math.MaxInt16), doc: "replication factor of __transaction_state (fewer when fewer brokers are live at its creation)", enforced: true},
		{name: "transaction.state.log.min.isr", typ: kmsg.ConfigTypeInt, def: str("2"), check: intRange(1, math.MaxInt32), doc: "min.insync.replicas of __transaction_state (capped by its replication factor)", enforced: true},
		{name: "transaction.state.log.segment.bytes", typ: kmsg.ConfigTypeInt, def: str("104857600"), check: intRange(14, math.MaxInt32), doc: "segment.bytes of __transaction_state", enforced: true},
		{name: "transactional.id.expiration.ms", typ: kmsg.ConfigTypeInt, def: str("604800000"), check: intRange(1, math.MaxInt32), doc: "how long a transactional id without an open transaction is kept after its last change", enforced: true},
		{name: "transaction.partition.verification.enable", typ: kmsg.ConfigTypeBoolean, def: str("true"), check: isBool, doc: "verify with the transaction coordinator that a transactional batch's partition is in the producer's open transaction (KIP-890)", enforced: true},
		{name: "transaction.max.timeout.ms", typ: kmsg.ConfigTypeInt, def: str("900000"), check: intRange(1, math.MaxInt32), doc: "largest transaction.timeout.ms a producer may ask for", enforced: true},
		{name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", typ: kmsg.ConfigTypeInt, def: str("10000"), check: intRange(1, math.MaxInt32), doc: "how often open transactions are checked against their timeouts", enforced: true},
		{name: "producer.id.expiration.ms", typ: kmsg.ConfigTypeInt, def: str("86400000"), check: intRange(1, math.MaxInt32), doc: "how long a partition keeps the state of a producer that wrote nothing (and has no open transaction)", enforced: true},
		{name: "producer.id.expiration.check.interval.ms", typ: kmsg.ConfigTypeInt, def: str("600000"), check: intRange(1, math.MaxInt32), doc: "how often expired producer state is looked for", enforced: true},
		{name: "replica.lag.time.max.ms", typ: kmsg.ConfigTypeLong, def: str("30000"), check: intRange(1, maxLong), doc: "a follower not caught up for this long leaves the ISR", enforced: true},
		{name: "replica.fetch.wait.max.ms", typ: kmsg.ConfigTypeInt, def: str("500"), check: intRange(1, math.MaxInt32), doc: "longest a follower fetch waits for data", enforced: true},
		{name: "replica.fetch.max.bytes", typ: kmsg.ConfigTypeInt, def: str("1048576"), check: intRange(1, math.MaxInt32), doc: "bytes a follower fetches per partition per request", enforced: true},
		{name: "replica.fetch.response.max.bytes", typ: kmsg.ConfigTypeInt, def: str("10485760"), check: intRange(1, math.MaxInt32), doc: "bytes a follower fetches per request", enforced: true},
		{name: "replica.fetch.backoff.ms", typ: kmsg.ConfigTypeInt, def: str("1000"), check: intRange(0, math.MaxInt32), doc: "pause after a failed follower fetch (a leadership change ends it early)", enforced: true},
	}
	for _, t := range topicDefs {
		d := t
		d.name, d.brokerName, d.dynamic = t.brokerName, "", true
		defs = append(defs, d)
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].name < defs[j].name })
	return defs
}

// configTable is the immutable set of config definitions a broker uses.
type configTable struct {
	topic      []configDef
	broker     []configDef
	topicIdx   map[string]*configDef
	brokerIdx  map[string]*configDef
	brokerSyns map[string]string // broker name -> topic name
}

func newConfigTable() *configTable {
	t := &configTable{topic: topicConfigDefs()}
	t.broker = brokerConfigDefs(t.topic)
	t.topicIdx = make(map[string]*configDef, len(t.topic))
	t.brokerIdx = make(map[string]*configDef, len(t.broker))
	t.brokerSyns = make(map[string]string)
	for i := range t.topic {
		t.topicIdx[t.topic[i].name] = &t.topic[i]
		t.brokerSyns[t.topic[i].brokerName] = t.topic[i].name
	}
	for i := range t.broker {
		t.brokerIdx[t.broker[i].name] = &t.broker[i]
	}
	return t
}

// interBrokerProtocolVersion is what DescribeConfigs reports as
// inter.broker.protocol.version: Kafka 3.9's latest metadata version, as a
// Kafka 3.9 KRaft broker reports it. Kafka 4 dropped the config; tools that
// read it to decide what a cluster supports find a current version.
const interBrokerProtocolVersion = "3.9-IV0"

// knownConfigs is the config table IsBrokerConfig reads, built once.
var knownConfigs = sync.OnceValue(newConfigTable)

// IsBrokerConfig reports whether name is a broker config Gregor knows by
// its Kafka name, one Config.StaticConfigs accepts (the broker synonyms of
// topic configs included).
func IsBrokerConfig(name string) bool {
	_, ok := knownConfigs().brokerIdx[name]
	return ok
}

// IsBooleanBrokerConfig reports whether name is a broker config Gregor
// knows whose type is boolean.
func IsBooleanBrokerConfig(name string) bool {
	d, ok := knownConfigs().brokerIdx[name]
	return ok && d.typ == kmsg.ConfigTypeBoolean
}

// validateTopicConfig checks one topic config name and value.
func (t *configTable) validateTopicConfig(name string, value *string) error {
	d, ok := t.topicIdx[name]
	if !ok {
		return fmt.Errorf("unknown topic config %q", name)
	}
	if value == nil {
		return fmt.Errorf("topic config %q needs a value", name)
	}
	if d.check != nil {
		if err := d.check(*value); err != nil {
			return fmt.Errorf("invalid value for %s: %v", name, err)
		}
	}
	return nil
}

// validateBrokerConfig checks one dynamically set broker config.
func (t *configTable) validateBrokerConfig(name string, value string) error {
	d, ok := t.brokerIdx[name]
	if !ok {
		return fmt.Errorf("unknown broker config %q", name)
	}
	if !d.dynamic {
		return fmt.Errorf("broker config %q cannot be changed at run time", name)
	}
	if d.check != nil {
		if err := d.check(value); err != nil {
			return fmt.Errorf("invalid value for %s: %v", name, err)
		}
	}
	return nil
}

// configValue is one resolved config with where its value came from.
type configValue struct {
	def      *configDef
	value    *string
	source   kmsg.ConfigSource
	synonyms []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
}

// brokerLayers are the broker-level config sources, strongest first.
type brokerLayers struct {
	dynamic        map[string]string // this broker's dynamic configs (etcd)
	dynamicDefault map[string]string // cluster-wide dynamic defaults (etcd)
	static         map[string]string // from the command line
}

func (l brokerLayers) lookup(name string) (string, kmsg.ConfigSource, bool) {
	if v, ok := l.dynamic[name]; ok {
		return v, kmsg.ConfigSourceDynamicBrokerConfig, true
	}
	if v, ok := l.dynamicDefault[name]; ok {
		return v, kmsg.ConfigSourceDynamicDefaultBrokerConfig, true
	}
	if v, ok := l.static[name]; ok {
		return v, kmsg.ConfigSourceStaticBrokerConfig, true
	}
	return "", 0, false
}

func (l brokerLayers) synonyms(name string) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var syns []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(m map[string]string, src kmsg.ConfigSource) {
		if v, ok := m[name]; ok {
			s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			s.Name, s.Value, s.Source = name, str(v), src
			syns = append(syns, s)
		}
	}
	add(l.dynamic, kmsg.ConfigSourceDynamicBrokerConfig)
	add(l.dynamicDefault, kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	add(l.static, kmsg.ConfigSourceStaticBrokerConfig)
	return syns
}

// resolveBroker resolves one broker config.
func (t *configTable) resolveBroker(d *configDef, l brokerLayers) configValue {
	cv := configValue{def: d, value: d.def, source: kmsg.ConfigSourceDefaultConfig}
	if v, src, ok := l.lookup(d.name); ok {
		cv.value, cv.source = str(v), src
	}
	cv.synonyms = l.synonyms(d.name)
	if d.def != nil {
		s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		s.Name, s.Value, s.Source = d.name, d.def, kmsg.ConfigSourceDefaultConfig
		cv.synonyms = append(cv.synonyms, s)
	}
	return cv
}

// resolveTopic resolves one topic config: the topic's own value, else its
// broker synonym, else Kafka's default.
func (t *configTable) resolveTopic(d *configDef, topicConfigs map[string]string, l brokerLayers) configValue {
	cv := configValue{def: d, value: d.def, source: kmsg.ConfigSourceDefaultConfig}
	var syns []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	if v, ok := topicConfigs[d.name]; ok {
		cv.value, cv.source = str(v), kmsg.ConfigSourceDynamicTopicConfig
		s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		s.Name, s.Value, s.Source = d.name, str(v), kmsg.ConfigSourceDynamicTopicConfig
		syns = append(syns, s)
	}
	if d.brokerName != "" {
		if v, src, ok := l.lookup(d.brokerName); ok && cv.source == kmsg.ConfigSourceDefaultConfig {
			cv.value, cv.source = str(v), src
		}
		syns = append(syns, l.synonyms(d.brokerName)...)
	}
	if d.name == "retention.ms" {
		// Kafka's weaker synonyms of log.retention.ms, in rank order.
		for _, syn := range []struct {
			name string
			unit int64
		}{{"log.retention.minutes", 60_000}, {"log.retention.hours", 3_600_000}} {
			if v, src, ok := l.lookup(syn.name); ok && cv.source == kmsg.ConfigSourceDefaultConfig {
				ms := parseInt(&v, 0)
				if ms >= 0 {
					ms *= syn.unit
				}
				cv.value, cv.source = str(strconv.FormatInt(ms, 10)), src
			}
			syns = append(syns, l.synonyms(syn.name)...)
		}
	}
	if d.def != nil {
		s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		s.Name, s.Value, s.Source = d.name, d.def, kmsg.ConfigSourceDefaultConfig
		if d.brokerName != "" {
			s.Name = d.brokerName
		}
		syns = append(syns, s)
	}
	cv.synonyms = syns
	return cv
}

// topicSettings are the resolved topic configs the data path acts on.
type topicSettings struct {
	storage           storage.Config
	maxMessageBytes   int32
	logAppendTime     bool
	timestampBeforeMs int64
	timestampAfterMs  int64
	compacted         bool // cleanup.policy includes compact: produced records need keys
	deletePolicy      bool // cleanup.policy includes delete: retention.ms and retention.bytes apply
	minInsyncReplicas int  // acks=all needs this many in-sync replicas
	// The log cleaner's (cleaner.go), for compacted topics.
	deleteRetentionMs  int64
	minCompactionLagMs int64
	maxCompactionLagMs int64
	minCleanableRatio  float64
}

func parseInt(v *string, fallback int64) int64 {
	if v == nil {
		return fallback
	}
	n, err := strconv.ParseInt(*v, 10, 64)
	if err != nil {
		return fallback
	}
	return n
}

// settings resolves the configs of one topic into the values the data path uses.
func (t *configTable) settings(topicConfigs map[string]string, l brokerLayers) topicSettings {
	get := func(name string) *string { return t.resolveTopic(t.topicIdx[name], topicConfigs, l).value }
	s := topicSettings{storage: storage.DefaultConfig()}
	s.storage.SegmentBytes = parseInt(get("segment.bytes"), s.storage.SegmentBytes)
	s.storage.SegmentMs = parseInt(get("segment.ms"), s.storage.SegmentMs)
	s.storage.SegmentIndexBytes = parseInt(get("segment.index.bytes"), s.storage.SegmentIndexBytes)
	s.storage.IndexIntervalBytes = parseInt(get("index.interval.bytes"), s.storage.IndexIntervalBytes)
	s.storage.FlushMessages = parseInt(get("flush.messages"), maxLong)
	s.storage.FlushMs = parseInt(get("flush.ms"), maxLong)
	s.storage.FileDeleteDelayMs = parseInt(get("file.delete.delay.ms"), s.storage.FileDeleteDelayMs)
	s.storage.RetentionMs = parseInt(get("retention.ms"), 604800000)
	s.storage.RetentionBytes = parseInt(get("retention.bytes"), -1)
	s.storage.SegmentJitterMs = parseInt(get("segment.jitter.ms"), 0)
	s.maxMessageBytes = int32(parseInt(get("max.message.bytes"), 1048588))
	s.minInsyncReplicas = int(parseInt(get("min.insync.replicas"), 1))
	if v := get("message.timestamp.type"); v != nil && *v == "LogAppendTime" {
		s.logAppendTime = true
	}
	s.timestampBeforeMs = parseInt(get("message.timestamp.before.max.ms"), maxLong)
	s.timestampAfterMs = parseInt(get("message.timestamp.after.max.ms"), 3600000)
	s.deleteRetentionMs = parseInt(get("delete.retention.ms"), 86400000)
	s.minCompactionLagMs = parseInt(get("min.compaction.lag.ms"), 0)
	s.maxCompactionLagMs = parseInt(get("max.compaction.lag.ms"), maxLong)
	s.minCleanableRatio = 0.5
	if v := get("min.cleanable.dirty.ratio"); v != nil {
		if f, err := strconv.ParseFloat(*v, 64); err == nil {
			s.minCleanableRatio = f
		}
	}
	if v := get("cleanup.policy"); v != nil {
		for _, p := range strings.Split(*v, ",") {
			s.compacted = s.compacted || strings.TrimSpace(p) == "compact"
			s.deletePolicy = s.deletePolicy || strings.TrimSpace(p) == "delete"
		}
	}
	if s.compacted && s.maxCompactionLagMs < maxLong {
		s.storage.CompactionRollMs = s.maxCompactionLagMs
	}
	return s
}
