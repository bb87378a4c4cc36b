package broker

// Prometheus metrics, served on /metrics by the command (--http-addr),
// under the names the JMX exporter's common Kafka rules give Kafka's
// MBeans, so that dashboards and alerts written for Kafka read Gregor:
//
//   - kafka_server_brokertopicmetrics_{messagesin,bytesin,bytesout,
//     failedproducerequests,failedfetchrequests}_total, per topic (label
//     topic) and for all topics (no label), as the JMX exporter shows
//     BrokerTopicMetrics with and without its topic tag. Messages and
//     bytes in count the leader's appends, the coordinators' to the
//     internal topics too (Kafka's appendToLocalLog); followers count
//     theirs in replicationbytesin_total, and the leader what it returns
//     to them in replicationbytesout_total (all topics only, as Kafka).
//   - kafka_server_delayedproducemetrics_expires_total, per partition
//     (topic, partition: those led here that had an expiry) and for all:
//     acks=all waits that timed out (DelayedProduce onExpiration).
//   - kafka_server_replicamanager_{underreplicatedpartitions,leadercount,
//     partitioncount} gauges, kafka_server_replicamanager_{isrshrinks,
//     isrexpands}_total counters.
//   - kafka_controller_kafkacontroller_activecontrollercount.
//   - kafka_network_requestmetrics_requests_total{request,version} and the
//     histograms kafka_network_requestmetrics_{totaltimems,
//     responsequeuetimems,responsesendtimems}{request} (Fetch also as
//     FetchConsumer and FetchFollower, as Kafka splits it), observed by
//     the connection's writer once the response's last byte is written
//     (conn.go), as Kafka updates them when the send completes.
//   - kafka_log_log_{size,logendoffset,logstartoffset}{topic,partition},
//     for every local replica.
//   - kafka_consumergroup_{lag,current_offset}{consumergroup,topic,
//     partition}, kafka_exporter's names, exported by the group's
//     coordinator: high watermarks of the partitions led elsewhere come
//     from one ListOffsets per leader per scrape.
//   - gregor_etcd_up, gregor_etcd_request_duration_seconds,
//     gregor_metadata_faults.
//
// The data path only adds to atomic counters: each partition holds its
// topic's *topicMetrics and its own expiry count, and request metrics are
// cached per (api key, version) in a table built at New. Everything else is read when scraped
// (brokerCollector), with bounded work: per-partition series exist only
// for local logs and for the lag of the groups this broker coordinates
// (at most maxLagSeries), and the series of a deleted topic go with it.

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

// maxLagSeries bounds the consumer-group lag series one scrape exports
// (each is a committed offset of a group this broker coordinates).
const maxLagSeries = 10000

// etcdProbeTimeout bounds the metadata round trip a scrape makes.
const etcdProbeTimeout = 2 * time.Second

// topicMetrics are the BrokerTopicMetrics counters of one topic. The data
// path adds to them through the pointer its partitions hold; the
// collector reads them.
type topicMetrics struct {
	messagesIn    atomic.Uint64 // records appended as leader, by producers and coordinators
	bytesIn       atomic.Uint64 // batch bytes appended as leader, by producers and coordinators
	bytesOut      atomic.Uint64 // record bytes returned to consumers
	failedProduce atomic.Uint64 // partition appends that failed (countsAsFailedProduce)
	failedFetch   atomic.Uint64 // partition reads that failed on a storage error
}

// appended counts one batch of records appended, as leader, by a
// producer or a coordinator (Kafka's appendToLocalLog marks both).
func (m *topicMetrics) appended(records int64, bytes int) {
	m.messagesIn.Add(uint64(max(records, 0)))
	m.bytesIn.Add(uint64(bytes))
}

// topicMetricsSet holds the counters of every topic with a local
// partition. Partitions take their topic's at open (forTopic); the
// collector drops those of topics that no longer exist. Lock order: mu is
// taken under partitionSet.mu (a partition opening) and, held, calls
// into the metadata store's cache (snapshot's keep), whose lock is a
// leaf; it is never held while taking partitionSet.mu.
type topicMetricsSet struct {
	mu     sync.Mutex
	topics map[string]*topicMetrics // protected by mu
}

// forTopic returns the counters of a topic, creating them on first use.
func (s *topicMetricsSet) forTopic(name string) *topicMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.topics == nil {
		s.topics = make(map[string]*topicMetrics)
	}
	m := s.topics[name]
	if m == nil {
		m = new(topicMetrics)
		s.topics[name] = m
	}
	return m
}

// snapshot returns the topics' counters, first dropping those of the
// topics keep returns false for.
func (s *topicMetricsSet) snapshot(keep func(topic string) bool) map[string]*topicMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*topicMetrics, len(s.topics))
	for name, m := range s.topics {
		if !keep(name) {
			delete(s.topics, name)
			continue
		}
		out[name] = m
	}
	return out
}

// apiMetrics are the request metrics of one API: a request counter per
// version, made on first use, and the latency histograms (by reqTime).
type apiMetrics struct {
	name     string
	min      int16
	versions []atomic.Pointer[counterBox] // index version-min
	times    [numReqTimes]atomic.Pointer[observerBox]
}

type counterBox struct{ prometheus.Counter }
type observerBox struct{ prometheus.Observer }

// The request latency histograms, Kafka's RequestMetrics of the same
// names: TotalTimeMs from the processor taking the request to its
// response's last byte written to the socket, ResponseQueueTimeMs from
// the response being complete to the writer taking it, ResponseSendTimeMs
// from there to its last byte written.
const (
	reqTotal = iota
	reqResponseQueue
	reqResponseSend
	numReqTimes
)

// reqTiming is one handled request's metrics, observed once its response
// has been written (observe). A nil api is a request not counted.
type reqTiming struct {
	api     *apiMetrics
	version int16
	fetch   int8      // 0: not a Fetch; 1: a consumer's; 2: a follower's
	start   time.Time // the processor took the request
	// Since start: the response was complete and queued for the writer,
	// and the writer took it (markQueued, markDequeued). A response
	// dropped before it was made has no queued time: it waited for
	// nothing.
	queued, dequeued time.Duration
}

// markQueued records that the response is complete and queued.
func (t *reqTiming) markQueued() { t.queued = time.Since(t.start) }

// markDequeued records that the writer has taken the response; one never
// queued (dropped before it was made) counts as queued now.
func (t *reqTiming) markDequeued() {
	t.dequeued = time.Since(t.start)
	if t.queued == 0 {
		t.queued = t.dequeued
	}
}

// brokerMetrics are the broker's metrics. The fields are set by
// newBrokerMetrics and not changed after; what they point to is safe for
// concurrent use.
type brokerMetrics struct {
	topics     topicMetricsSet
	apis       []*apiMetrics // by api key; nil where none is registered
	requests   *prometheus.CounterVec
	times      [numReqTimes]*prometheus.HistogramVec
	fetchTimes [2][numReqTimes]prometheus.Observer // FetchConsumer, FetchFollower
	isrShrinks prometheus.Counter
	isrExpands prometheus.Counter
	collector  *brokerCollector

	// Counters over every partition, read by the collector.
	produceExpires      atomic.Uint64 // acks=all waits that timed out (DelayedProduceMetrics ExpiresPerSec)
	replicationBytesIn  atomic.Uint64 // batch bytes appended as follower (ReplicationBytesInPerSec)
	replicationBytesOut atomic.Uint64 // record bytes returned to followers (ReplicationBytesOutPerSec)
}

// requestTimeBuckets are the upper bounds, in milliseconds, of the
// request latency histogram.
var requestTimeBuckets = []float64{0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}

// newBrokerMetrics makes the broker's metrics for the handlers in reg and
// registers them, with the collector of what is read when scraped, in
// promReg.
func (b *Broker) newBrokerMetrics(reg *registry, promReg *prometheus.Registry) (*brokerMetrics, error) {
	m := &brokerMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kafka_network_requestmetrics_requests_total",
			Help: "Requests handled, by API and version (Kafka's RequestMetrics RequestsPerSec).",
		}, []string{"request", "version"}),
		times: [numReqTimes]*prometheus.HistogramVec{
			reqTotal: requestHistogram("totaltimems",
				"Milliseconds from a request being taken from its connection to its response's last byte written to the socket, by API (Kafka's RequestMetrics TotalTimeMs)."),
			reqResponseQueue: requestHistogram("responsequeuetimems",
				"Milliseconds a complete response waited for its connection's writer, by API (Kafka's RequestMetrics ResponseQueueTimeMs)."),
			reqResponseSend: requestHistogram("responsesendtimems",
				"Milliseconds from the writer taking a response to its last byte written to the socket, by API (Kafka's RequestMetrics ResponseSendTimeMs)."),
		},
		isrShrinks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kafka_server_replicamanager_isrshrinks_total",
			Help: "ISR changes this broker wrote, as leader, that removed replicas.",
		}),
		isrExpands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kafka_server_replicamanager_isrexpands_total",
			Help: "ISR changes this broker wrote, as leader, that added replicas.",
		}),
	}
	for i, vec := range m.times {
		m.fetchTimes[0][i] = vec.WithLabelValues("FetchConsumer")
		m.fetchTimes[1][i] = vec.WithLabelValues("FetchFollower")
	}
	maxKey := int16(0)
	for _, k := range reg.keys {
		maxKey = max(maxKey, k)
	}
	m.apis = make([]*apiMetrics, maxKey+1)
	for _, k := range reg.keys {
		h := reg.byKey[k]
		m.apis[k] = &apiMetrics{name: kafkaAPIName(k), min: h.min, versions: make([]atomic.Pointer[counterBox], h.max-h.min+1)}
	}
	m.collector = &brokerCollector{b: b}
	for _, c := range []prometheus.Collector{m.requests, m.times[reqTotal], m.times[reqResponseQueue], m.times[reqResponseSend], m.isrShrinks, m.isrExpands, m.collector} {
		if err := promReg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// requestHistogram is the RequestMetrics latency histogram of name, by
// API (label request).
func requestHistogram(name, help string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kafka_network_requestmetrics_" + name,
		Help:    help,
		Buckets: requestTimeBuckets,
	}, []string{"request"})
}

// kafkaAPIName is the name Kafka gives an API in its request metrics
// (ApiKeys' name): kmsg's, except where kmsg spells it otherwise.
func kafkaAPIName(key int16) string {
	switch key {
	case kmsg.InitProducerID.Int16():
		return "InitProducerId"
	case kmsg.AlterPartitionAssignments.Int16():
		return "AlterPartitionReassignments"
	case kmsg.SASLHandshake.Int16():
		return "SaslHandshake"
	case kmsg.SASLAuthenticate.Int16():
		return "SaslAuthenticate"
	}
	return kmsg.NameForKey(key)
}

// timing starts the metrics of one request of a registered (key,
// version), taken by the processor at start; others get a reqTiming
// that is not counted.
func (m *brokerMetrics) timing(key, version int16, start time.Time, req kmsg.Request) reqTiming {
	if key < 0 || int(key) >= len(m.apis) || m.apis[key] == nil {
		return reqTiming{}
	}
	a := m.apis[key]
	if i := int(version - a.min); i < 0 || i >= len(a.versions) {
		return reqTiming{}
	}
	t := reqTiming{api: a, version: version, start: start}
	if fr, ok := req.(*kmsg.FetchRequest); ok {
		t.fetch = 1
		if fetchReplica(fr) >= 0 {
			t.fetch = 2
		}
	}
	return t
}

// observe counts a request whose response's last byte was written at
// sent (after markDequeued), and observes its times.
func (m *brokerMetrics) observe(t *reqTiming, sent time.Time) {
	a := t.api
	if a == nil {
		return
	}
	i := int(t.version - a.min)
	c := a.versions[i].Load()
	if c == nil {
		c = &counterBox{m.requests.WithLabelValues(a.name, strconv.Itoa(int(t.version)))}
		a.versions[i].Store(c) // a racing store holds the same child
	}
	c.Inc()
	total := sent.Sub(t.start)
	ms := [numReqTimes]float64{
		reqTotal:         fracMillis(total),
		reqResponseQueue: fracMillis(t.dequeued - t.queued),
		reqResponseSend:  fracMillis(total - t.dequeued),
	}
	for k := range numReqTimes {
		o := a.times[k].Load()
		if o == nil {
			o = &observerBox{m.times[k].WithLabelValues(a.name)}
			a.times[k].Store(o)
		}
		o.Observe(ms[k])
		if t.fetch > 0 {
			m.fetchTimes[t.fetch-1][k].Observe(ms[k])
		}
	}
}

// fracMillis is d in (fractional) milliseconds, Kafka's unit for request times.
func fracMillis(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// request counts one handled request that has no response (acks=0
// produce): it ends now, with no time queued or sending.
func (m *brokerMetrics) request(key, version int16, start time.Time, req kmsg.Request) {
	t := m.timing(key, version, start, req)
	t.markDequeued()
	m.observe(&t, time.Now())
}

// fetchTally is what one read of a Fetch request adds to the topic
// counters; it is applied only for the read whose response is sent (a
// long poll drops and redoes its reads).
type fetchTally struct {
	entries    []fetchCount
	replicated int64 // record bytes returned to a follower
}

type fetchCount struct {
	m      *topicMetrics
	bytes  int64
	failed int
}

// add records bytes returned to a consumer, or a failed read, for m.
func (t *fetchTally) add(m *topicMetrics, bytes int64, failed bool) {
	f := 0
	if failed {
		f = 1
	}
	if n := len(t.entries); n > 0 && t.entries[n-1].m == m {
		t.entries[n-1].bytes += bytes
		t.entries[n-1].failed += f
		return
	}
	t.entries = append(t.entries, fetchCount{m: m, bytes: bytes, failed: f})
}

// reset forgets a dropped read.
func (t *fetchTally) reset() { t.entries, t.replicated = t.entries[:0], 0 }

// apply adds the tally to the counters: the topics' and, for a
// follower's read, the broker's replication bytes out.
func (t *fetchTally) apply(m *brokerMetrics) {
	if t.replicated > 0 {
		m.replicationBytesOut.Add(uint64(t.replicated))
	}
	for _, e := range t.entries {
		if e.bytes > 0 {
			e.m.bytesOut.Add(uint64(e.bytes))
		}
		if e.failed > 0 {
			e.m.failedFetch.Add(uint64(e.failed))
		}
	}
}

// brokerCollector exports what is read when scraped: the topic counters,
// partition and leadership counts, log sizes, consumer-group lag and the
// metadata store's health. It is an unchecked collector (Describe sends
// nothing): the BrokerTopicMetrics families hold series with and without
// the topic label, as the JMX exporter shows them.
type brokerCollector struct {
	b *Broker
	// ready is set once New has made everything Collect reads; a scrape
	// before that sees nothing.
	ready atomic.Bool
	// lagTruncatedWarned: the warning that lag series were left out was
	// logged (once per process).
	lagTruncatedWarned atomic.Bool
}

// Describe sends no descriptors: the collector is unchecked.
func (c *brokerCollector) Describe(chan<- *prometheus.Desc) {}

var (
	descMessagesIn    = topicDescs("messagesin", "Records appended to partitions this broker leads, by producers and by the group and transaction coordinators (MessagesInPerSec).")
	descBytesIn       = topicDescs("bytesin", "Record batch bytes appended to partitions this broker leads, by producers and by the coordinators (BytesInPerSec).")
	descBytesOut      = topicDescs("bytesout", "Record batch bytes returned to consumers, not followers (BytesOutPerSec).")
	descFailedProduce = topicDescs("failedproducerequests", "Partition appends refused or failed on partitions this broker leads (FailedProduceRequestsPerSec).")
	descFailedFetch   = topicDescs("failedfetchrequests", "Partition reads that failed on partitions this broker leads (FailedFetchRequestsPerSec).")

	descReplicationBytesIn = prometheus.NewDesc("kafka_server_brokertopicmetrics_replicationbytesin_total",
		"Record batch bytes this broker appended as a follower (ReplicationBytesInPerSec, all topics only, as in Kafka).", nil, nil)
	descReplicationBytesOut = prometheus.NewDesc("kafka_server_brokertopicmetrics_replicationbytesout_total",
		"Record batch bytes returned to followers (ReplicationBytesOutPerSec, all topics only, as in Kafka).", nil, nil)
	descExpires = prometheus.NewDesc("kafka_server_delayedproducemetrics_expires_total",
		"acks=all produce waits (and the coordinators' appends) that timed out before the ISR had the batch (DelayedProduceMetrics ExpiresPerSec).", nil, nil)
	descPartitionExpires = prometheus.NewDesc("kafka_server_delayedproducemetrics_expires_total",
		"acks=all produce waits (and the coordinators' appends) that timed out before the ISR had the batch (DelayedProduceMetrics ExpiresPerSec).", []string{"topic", "partition"}, nil)

	descUnderReplicated = prometheus.NewDesc("kafka_server_replicamanager_underreplicatedpartitions",
		"Partitions this broker leads whose ISR is smaller than their replica set.", nil, nil)
	descLeaderCount = prometheus.NewDesc("kafka_server_replicamanager_leadercount",
		"Partitions this broker leads.", nil, nil)
	descPartitionCount = prometheus.NewDesc("kafka_server_replicamanager_partitioncount",
		"Partition replicas on this broker (led or followed).", nil, nil)
	descActiveController = prometheus.NewDesc("kafka_controller_kafkacontroller_activecontrollercount",
		"1 if this broker is the active controller, else 0.", nil, nil)
	descLogSize = prometheus.NewDesc("kafka_log_log_size",
		"Bytes of the partition's log segments on this broker.", []string{"topic", "partition"}, nil)
	descLogEnd = prometheus.NewDesc("kafka_log_log_logendoffset",
		"Log end offset of the partition's local replica.", []string{"topic", "partition"}, nil)
	descLogStart = prometheus.NewDesc("kafka_log_log_logstartoffset",
		"Log start offset of the partition's local replica.", []string{"topic", "partition"}, nil)
	descLag = prometheus.NewDesc("kafka_consumergroup_lag",
		"High watermark minus the group's committed offset (0 when the offset is past it), for the groups this broker coordinates.",
		[]string{"consumergroup", "topic", "partition"}, nil)
	descCurrentOffset = prometheus.NewDesc("kafka_consumergroup_current_offset",
		"The group's committed offset, for the groups this broker coordinates.",
		[]string{"consumergroup", "topic", "partition"}, nil)
	descEtcdUp = prometheus.NewDesc("gregor_etcd_up",
		"1 if a metadata store round trip made for this scrape succeeded and this broker's registration is live, else 0.", nil, nil)
	descEtcdLatency = prometheus.NewDesc("gregor_etcd_request_duration_seconds",
		"Duration of the metadata store round trip made for this scrape.", nil, nil)
	descMetadataFaults = prometheus.NewDesc("gregor_metadata_faults",
		"Metadata values the broker cannot read (see /readyz).", nil, nil)
)

// topicDescs are the per-topic and all-topics descriptors of one
// BrokerTopicMetrics counter.
func topicDescs(name, help string) [2]*prometheus.Desc {
	fq := "kafka_server_brokertopicmetrics_" + name + "_total"
	return [2]*prometheus.Desc{
		prometheus.NewDesc(fq, help, []string{"topic"}, nil),
		prometheus.NewDesc(fq, help, nil, nil),
	}
}

// Collect reads the broker's state for one scrape.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	if !c.ready.Load() {
		return // New has not finished
	}
	c.collectTopics(ch)
	c.collectPartitions(ch)
	c.collectLag(ch)
	active := 0.0
	if id, ok := b.store.Controller(); ok && id == b.cfg.NodeID {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(descActiveController, prometheus.GaugeValue, active)
	ctx, cancel := context.WithTimeout(b.ctx, etcdProbeTimeout)
	start := time.Now()
	err := b.store.Sync(ctx)
	took := time.Since(start)
	cancel()
	up := 0.0
	if err == nil && b.store.RegistrationAlive() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descEtcdUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descEtcdLatency, prometheus.GaugeValue, took.Seconds())
	ch <- prometheus.MustNewConstMetric(descMetadataFaults, prometheus.GaugeValue, float64(len(b.store.Faults())))
}

func (c *brokerCollector) collectTopics(ch chan<- prometheus.Metric) {
	b := c.b
	topics := b.metrics.topics.snapshot(func(name string) bool {
		_, ok := b.store.Topic(name)
		return ok || b.store.TopicFault(name) != nil // unreadable is not deleted
	})
	var all [5]uint64
	for name, m := range topics {
		vals := [5]uint64{m.messagesIn.Load(), m.bytesIn.Load(), m.bytesOut.Load(), m.failedProduce.Load(), m.failedFetch.Load()}
		for i, d := range []*prometheus.Desc{descMessagesIn[0], descBytesIn[0], descBytesOut[0], descFailedProduce[0], descFailedFetch[0]} {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(vals[i]), name)
			all[i] += vals[i]
		}
	}
	for i, d := range []*prometheus.Desc{descMessagesIn[1], descBytesIn[1], descBytesOut[1], descFailedProduce[1], descFailedFetch[1]} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(all[i]))
	}
	m := b.metrics
	ch <- prometheus.MustNewConstMetric(descReplicationBytesIn, prometheus.CounterValue, float64(m.replicationBytesIn.Load()))
	ch <- prometheus.MustNewConstMetric(descReplicationBytesOut, prometheus.CounterValue, float64(m.replicationBytesOut.Load()))
	ch <- prometheus.MustNewConstMetric(descExpires, prometheus.CounterValue, float64(m.produceExpires.Load()))
}

func (c *brokerCollector) collectPartitions(ch chan<- prometheus.Metric) {
	b := c.b
	var hosted, leading, under int
	for _, part := range b.parts.all() {
		hosted++
		p := strconv.Itoa(int(part.index))
		ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(part.log.Size()), part.topic, p)
		ch <- prometheus.MustNewConstMetric(descLogEnd, prometheus.GaugeValue, float64(part.log.LogEndOffset()), part.topic, p)
		ch <- prometheus.MustNewConstMetric(descLogStart, prometheus.GaugeValue, float64(part.log.LogStartOffset()), part.topic, p)
		if !part.leading.Load() {
			continue
		}
		leading++
		// As Kafka makes a partition's expiry meter on its first expiry:
		// only partitions that had one, and only while led here.
		if n := part.expires.Load(); n > 0 {
			ch <- prometheus.MustNewConstMetric(descPartitionExpires, prometheus.CounterValue, float64(n), part.topic, p)
		}
		if st, ok := b.store.Partition(part.topic, part.index); ok && underReplicated(st) {
			under++
		}
	}
	ch <- prometheus.MustNewConstMetric(descPartitionCount, prometheus.GaugeValue, float64(hosted))
	ch <- prometheus.MustNewConstMetric(descLeaderCount, prometheus.GaugeValue, float64(leading))
	ch <- prometheus.MustNewConstMetric(descUnderReplicated, prometheus.GaugeValue, float64(under))
}

// underReplicated reports whether a partition's ISR lacks some of its
// replicas.
func underReplicated(st metadata.PartitionState) bool {
	return len(st.ISR) < len(st.Replicas)
}

func (c *brokerCollector) collectLag(ch chan<- prometheus.Metric) {
	b := c.b
	if b.coord == nil {
		return
	}
	offsets, truncated := b.coord.Committed(maxLagSeries)
	if truncated && c.lagTruncatedWarned.CompareAndSwap(false, true) {
		b.log.Warn().Int("series", maxLagSeries).
			Msg("consumer group lag: more committed offsets than exported; the first ones by group, topic and partition are (logged once)")
	}
	// High watermarks: read here for the partitions this broker leads,
	// asked of their leaders for the others.
	hws := make(map[topicPartition]int64)
	remote := make(map[int32][]topicPartition)
	for _, o := range offsets {
		tp := topicPartition{o.Topic, o.Partition}
		if _, seen := hws[tp]; seen {
			continue
		}
		if part := b.parts.lookup(o.Topic, o.Partition); part != nil && part.leading.Load() {
			hws[tp] = part.log.HighWatermark()
			continue
		}
		hws[tp] = -1 // unknown unless its leader answers
		if st, ok := b.store.Partition(o.Topic, o.Partition); ok && st.Leader != metadata.NoLeader && st.Leader != b.cfg.NodeID {
			remote[st.Leader] = append(remote[st.Leader], tp)
		}
	}
	for tp, hw := range b.remoteHighWatermarks(remote) {
		hws[tp] = hw
	}
	for _, o := range offsets {
		hw := hws[topicPartition{o.Topic, o.Partition}]
		if hw < 0 {
			continue // no leader, or it did not answer: no series this scrape
		}
		p := strconv.Itoa(int(o.Partition))
		lag := max(hw-o.Offset, 0)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag), o.Group, o.Topic, p)
		ch <- prometheus.MustNewConstMetric(descCurrentOffset, prometheus.GaugeValue, float64(o.Offset), o.Group, o.Topic, p)
	}
}

// lagPeerTimeout bounds the ListOffsets a scrape sends to other leaders.
const lagPeerTimeout = time.Second

// remoteHighWatermarks asks each broker in byLeader, all at once and with
// one ListOffsets (latest, read_uncommitted) each, for the high
// watermarks of its partitions there. Partitions whose leader does not
// answer within lagPeerTimeout, or answers with an error, are absent.
func (b *Broker) remoteHighWatermarks(byLeader map[int32][]topicPartition) map[topicPartition]int64 {
	out := make(map[topicPartition]int64)
	var mu sync.Mutex // protects out
	var wg sync.WaitGroup
	for leader, tps := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := kmsg.NewPtrListOffsetsRequest()
			req.SetVersion(4)
			req.ReplicaID = -1
			byTopic := make(map[string]int)
			for _, tp := range tps {
				i, ok := byTopic[tp.topic]
				if !ok {
					i = len(req.Topics)
					byTopic[tp.topic] = i
					rt := kmsg.NewListOffsetsRequestTopic()
					rt.Topic = tp.topic
					req.Topics = append(req.Topics, rt)
				}
				rp := kmsg.NewListOffsetsRequestTopicPartition()
				rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = tp.partition, listLatest, -1
				req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
			}
			// The bound covers the dial too (the peer's dialer waits 5 s).
			ctx, cancel := context.WithTimeout(b.ctx, lagPeerTimeout)
			defer cancel()
			raw, err := b.lagPeers.roundTrip(ctx, leader, req, lagPeerTimeout)
			if err != nil {
				b.log.Debug().Err(err).Int32("leader", leader).Msg("consumer group lag: cannot ask a leader for its high watermarks")
				return
			}
			resp, ok := raw.(*kmsg.ListOffsetsResponse)
			if !ok {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.ErrorCode == 0 && rp.Offset >= 0 {
						out[topicPartition{rt.Topic, rp.Partition}] = rp.Offset
					}
				}
			}
		}()
	}
	wg.Wait()
	return out
}
