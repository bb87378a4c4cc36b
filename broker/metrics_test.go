package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/protocol"
)

// newMetricsBroker is a test broker registering its metrics in a
// registry of the test's.
func newMetricsBroker(t *testing.T, store metadata.Store) (*Broker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	b, err := New(Config{NodeID: 1, AdvertisedHost: "localhost", AdvertisedPort: 9092, DataDir: t.TempDir(), Logger: zerolog.Nop(), Metrics: reg}, store)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, reg
}

// series is one gathered sample: its labels and value (a histogram's
// count).
type series struct {
	labels map[string]string
	value  float64
	sum    float64 // a histogram's sum
}

// gather returns the samples of one metric family of reg.
func gather(t *testing.T, reg *prometheus.Registry, name string) []series {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []series
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.value = float64(m.GetHistogram().GetSampleCount())
				s.sum = m.GetHistogram().GetSampleSum()
			}
			out = append(out, s)
		}
	}
	return out
}

// value returns the sample of name whose labels are exactly kv (pairs of
// name, value); false when there is none.
func value(t *testing.T, reg *prometheus.Registry, name string, kv ...string) (float64, bool) {
	t.Helper()
	s, ok := sample(t, reg, name, kv...)
	return s.value, ok
}

// sample returns the sample of name whose labels are exactly kv.
func sample(t *testing.T, reg *prometheus.Registry, name string, kv ...string) (series, bool) {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		want[kv[i]] = kv[i+1]
	}
	for _, s := range gather(t, reg, name) {
		if len(s.labels) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s, true
		}
	}
	return series{}, false
}

// mustValue is value, failing the test when the sample is absent.
func mustValue(t *testing.T, reg *prometheus.Registry, name string, kv ...string) float64 {
	t.Helper()
	v, ok := value(t, reg, name, kv...)
	if !ok {
		t.Fatalf("no sample %s%v; have %v", name, kv, gather(t, reg, name))
	}
	return v
}

// produceBatch produces n records of 10-byte values to topic-partition
// with the given acks and returns the batch's size and the error code.
func produceBatch(t *testing.T, b *Broker, c *conn, topic string, partition int32, n int, acks int16) (int, int16) {
	t.Helper()
	recs := make([]kmsg.Record, n)
	for i := range recs {
		recs[i].Value = bytes.Repeat([]byte{'x'}, 10)
	}
	batch, err := b.codecs.BuildBatch(protocol.CodecNone, time.Now().UnixMilli(), recs)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = acks, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	size := len(batch)
	resp, err := b.handleProduce(c, req)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	if d, ok := resp.(*deferredResponse); ok {
		d.wait()
		resp = d.Response
	}
	return size, resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
}

// fetchAll fetches topic-partition from offset 0 as a consumer (replica
// -1) or a follower and returns the record bytes returned.
func fetchAll(t *testing.T, b *Broker, c *conn, topic string, partition, replica int32) int {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID = replica
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.PartitionMaxBytes = 1 << 20
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := b.handleFetch(c, req)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	sp := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if sp.ErrorCode != 0 {
		t.Fatalf("fetch %s-%d: error %d", topic, partition, sp.ErrorCode)
	}
	return len(sp.RecordBatches)
}

// TestMetricsTopicCounters: records and bytes produced count per topic
// and in the all-topics series; consumer fetches count bytes out and
// follower fetches do not; a refused append counts as a failed produce
// request, one too large does not (as in Kafka).
func TestMetricsTopicCounters(t *testing.T) {
	b, reg := newMetricsBroker(t, metadata.NewMemoryStore("test-cluster"))
	createPlaced(t, b, metadata.Topic{Name: "a", Partitions: 2})
	createPlaced(t, b, metadata.Topic{Name: "b", Partitions: 1, Configs: map[string]string{"min.insync.replicas": "2"}})
	c := newTestConn(b)

	var bytesA int
	for i, n := range []int{3, 5} {
		size, code := produceBatch(t, b, c, "a", int32(i), n, 1)
		if code != 0 {
			t.Fatalf("produce to a-%d: error %d", i, code)
		}
		bytesA += size
	}
	sizeB, code := produceBatch(t, b, c, "b", 0, 4, 1)
	if code != 0 {
		t.Fatalf("produce to b: error %d", code)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_messagesin_total", "topic", "a"); got != 8 {
		t.Errorf("messages in a = %v, want 8", got)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_bytesin_total", "topic", "a"); got != float64(bytesA) {
		t.Errorf("bytes in a = %v, want %d", got, bytesA)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_messagesin_total"); got != 12 {
		t.Errorf("messages in, all topics = %v, want 12", got)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_bytesin_total"); got != float64(bytesA+sizeB) {
		t.Errorf("bytes in, all topics = %v, want %d", got, bytesA+sizeB)
	}

	// acks=all with one in-sync replica of the two required: refused.
	if _, code := produceBatch(t, b, c, "b", 0, 1, -1); code == 0 {
		t.Fatal("acks=all produce below min.insync.replicas succeeded")
	}
	if err := b.store.SetTopicConfigs(context.Background(), "a", map[string]string{"max.message.bytes": "10"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "max.message.bytes applied", func() bool {
		return b.parts.lookup("a", 0).settings.Load().maxMessageBytes == 10
	})
	if _, code := produceBatch(t, b, c, "a", 0, 1, 1); code == 0 {
		t.Fatal("batch over max.message.bytes accepted")
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_failedproducerequests_total", "topic", "b"); got != 1 {
		t.Errorf("failed produce b = %v, want 1", got)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_failedproducerequests_total", "topic", "a"); got != 0 {
		t.Errorf("failed produce a = %v, want 0 (MESSAGE_TOO_LARGE is not counted)", got)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_messagesin_total"); got != 12 {
		t.Errorf("messages in after refusals = %v, want 12", got)
	}

	out := fetchAll(t, b, c, "a", 0, -1)
	if out == 0 {
		t.Fatal("consumer fetch returned nothing")
	}
	fetchAll(t, b, c, "a", 1, 2) // a follower's fetch: replication, not bytes out
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_bytesout_total", "topic", "a"); got != float64(out) {
		t.Errorf("bytes out a = %v, want %d (the consumer's fetch only)", got, out)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_failedfetchrequests_total"); got != 0 {
		t.Errorf("failed fetch = %v, want 0", got)
	}
}

// waitFor polls cond until it holds, failing the test after 10s.
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

// TestMetricsLongPollCountsSentBytesOnce: a long poll that reads, finds
// less than min bytes and reads again once data arrives counts in bytes
// out only what its response carries.
func TestMetricsLongPollCountsSentBytesOnce(t *testing.T) {
	b, reg := newMetricsBroker(t, metadata.NewMemoryStore("test-cluster"))
	createPlaced(t, b, metadata.Topic{Name: "lp", Partitions: 1})
	c := newTestConn(b)
	produceBatch(t, b, c, "lp", 0, 1, 1)
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID = -1
	req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 1<<20, 1<<20, 200
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "lp"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	done := make(chan int)
	go func() {
		resp, err := b.handleFetch(c, req)
		if err != nil {
			done <- -1
			return
		}
		done <- len(resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches)
	}()
	// Wake the poll (it reads again) a few times before its max wait.
	for range 3 {
		produceBatch(t, b, c, "lp", 0, 1, 1)
		time.Sleep(10 * time.Millisecond)
	}
	sent := <-done
	if sent <= 0 {
		t.Fatalf("long poll returned %d bytes", sent)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_bytesout_total", "topic", "lp"); got != float64(sent) {
		t.Errorf("bytes out = %v, want %d (the bytes of the response sent)", got, sent)
	}
}

// TestMetricsDeletedTopicSeriesRemoved: the series of a deleted topic
// leave the scrape.
func TestMetricsDeletedTopicSeriesRemoved(t *testing.T) {
	b, reg := newMetricsBroker(t, metadata.NewMemoryStore("test-cluster"))
	createPlaced(t, b, metadata.Topic{Name: "gone", Partitions: 1})
	createPlaced(t, b, metadata.Topic{Name: "kept", Partitions: 1})
	c := newTestConn(b)
	produceBatch(t, b, c, "gone", 0, 2, 1)
	produceBatch(t, b, c, "kept", 0, 1, 1)
	mustValue(t, reg, "kafka_server_brokertopicmetrics_messagesin_total", "topic", "gone")
	mustValue(t, reg, "kafka_log_log_size", "topic", "gone", "partition", "0")
	if err := b.store.DeleteTopic(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted topic's partition to close", func() bool { return b.parts.lookup("gone", 0) == nil })
	for _, name := range []string{"kafka_server_brokertopicmetrics_messagesin_total", "kafka_log_log_size"} {
		for _, s := range gather(t, reg, name) {
			if s.labels["topic"] == "gone" {
				t.Errorf("%s still has a series of the deleted topic: %v", name, s.labels)
			}
		}
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_messagesin_total", "topic", "kept"); got != 1 {
		t.Errorf("messages in kept = %v, want 1", got)
	}
}

// TestMetricsPartitionGauges: partition, leader and under-replicated
// counts, log sizes and offsets, the active controller, metadata health,
// and ISR shrinks and expands written by this broker as leader.
func TestMetricsPartitionGauges(t *testing.T) {
	store := metadata.NewMemoryStore("test-cluster")
	b, reg := newMetricsBroker(t, store)
	peer := store.Peer()
	t.Cleanup(func() { peer.Close() })
	if err := peer.RegisterBroker(context.Background(), metadata.Broker{NodeID: 2, Host: "other", Port: 9092}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two live brokers", func() bool { return len(b.store.Brokers()) == 2 })
	_, err := b.store.CreateTopic(context.Background(), metadata.Topic{Name: "r", Partitions: 2, ReplicationFactor: 2}, []int32{1, 2}, []int32{2, 1})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both partitions open", func() bool {
		p0, p1 := b.parts.lookup("r", 0), b.parts.lookup("r", 1)
		return p0 != nil && p1 != nil && p0.leading.Load()
	})
	createPlaced(t, b, metadata.Topic{Name: "s", Partitions: 1, ReplicationFactor: 1})
	c := newTestConn(b)
	produceBatch(t, b, c, "s", 0, 3, 1)

	gauge := func(name string, kv ...string) float64 { return mustValue(t, reg, name, kv...) }
	if got := gauge("kafka_server_replicamanager_partitioncount"); got < 3 {
		t.Errorf("partition count = %v, want at least 3 (r-0, r-1, s-0; plus internal topics)", got)
	}
	leaders := 0.0
	for _, part := range b.parts.all() {
		if part.leading.Load() {
			leaders++
		}
	}
	if got := gauge("kafka_server_replicamanager_leadercount"); got != leaders || leaders < 2 {
		t.Errorf("leader count = %v, want %v (r-0 and s-0 at least)", got, leaders)
	}
	if got := gauge("kafka_server_replicamanager_underreplicatedpartitions"); got != 0 {
		t.Errorf("under-replicated = %v, want 0", got)
	}
	s0 := b.parts.lookup("s", 0)
	if got := gauge("kafka_log_log_size", "topic", "s", "partition", "0"); got != float64(s0.log.Size()) || got == 0 {
		t.Errorf("log size s-0 = %v, want %d", got, s0.log.Size())
	}
	if got := gauge("kafka_log_log_logendoffset", "topic", "s", "partition", "0"); got != 3 {
		t.Errorf("log end offset s-0 = %v, want 3", got)
	}
	if got := gauge("kafka_log_log_logstartoffset", "topic", "s", "partition", "0"); got != 0 {
		t.Errorf("log start offset s-0 = %v, want 0", got)
	}
	// r-1 is followed here: its log is local, so it has a size series.
	gauge("kafka_log_log_size", "topic", "r", "partition", "1")
	if got := gauge("kafka_controller_kafkacontroller_activecontrollercount"); got != 1 {
		t.Errorf("active controller count = %v, want 1 (the only candidate)", got)
	}
	if got := gauge("gregor_etcd_up"); got != 1 {
		t.Errorf("etcd up = %v, want 1", got)
	}
	gauge("gregor_etcd_request_duration_seconds")

	// The leader of r-0 drops broker 2 from the ISR, then adds it back.
	r0 := b.parts.lookup("r", 0)
	isrIs := func(want ...int32) func() bool {
		return func() bool {
			st, ok := b.store.Partition("r", 0)
			return ok && slices.Equal(st.ISR, want)
		}
	}
	r0.repl.Lock()
	b.parts.changeISRLocked(r0, func(isr []int32) []int32 {
		return slices.DeleteFunc(slices.Clone(isr), func(id int32) bool { return id == 2 })
	}, "test shrink")
	r0.repl.Unlock()
	waitFor(t, "the shrunk ISR", isrIs(1))
	waitFor(t, "the shrink counted", func() bool {
		v, _ := value(t, reg, "kafka_server_replicamanager_isrshrinks_total")
		return v == 1
	})
	if got := gauge("kafka_server_replicamanager_underreplicatedpartitions"); got != 1 {
		t.Errorf("under-replicated after the shrink = %v, want 1", got)
	}
	waitFor(t, "the ISR write to finish", func() bool {
		r0.repl.Lock()
		defer r0.repl.Unlock()
		return !r0.replState.isrPending
	})
	r0.repl.Lock()
	b.parts.changeISRLocked(r0, func(isr []int32) []int32 { return append(slices.Clone(isr), 2) }, "test expand")
	r0.repl.Unlock()
	waitFor(t, "the expanded ISR", isrIs(1, 2))
	waitFor(t, "the expand counted", func() bool {
		v, _ := value(t, reg, "kafka_server_replicamanager_isrexpands_total")
		return v == 1
	})
	if got := gauge("kafka_server_replicamanager_isrshrinks_total"); got != 1 {
		t.Errorf("isr shrinks = %v, want 1", got)
	}
	if got := gauge("kafka_server_replicamanager_underreplicatedpartitions"); got != 0 {
		t.Errorf("under-replicated after the expand = %v, want 0", got)
	}
}

// TestMetricsConsumerGroupLag: the lag of a group's committed offset is
// the high watermark minus the offset, per partition, under
// kafka_exporter's names.
func TestMetricsConsumerGroupLag(t *testing.T) {
	b, reg := newMetricsBroker(t, metadata.NewMemoryStore("test-cluster"))
	createPlaced(t, b, metadata.Topic{Name: "lag", Partitions: 2})
	c := newTestConn(b)
	produceBatch(t, b, c, "lag", 0, 10, 1)
	produceBatch(t, b, c, "lag", 1, 4, 1)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(8)
	commit.Group, commit.Generation = "g1", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "lag"
	for p, off := range []int64{7, 4} {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = int32(p), off
		rt.Partitions = append(rt.Partitions, rp)
	}
	commit.Topics = append(commit.Topics, rt)
	resp, err := b.handleOffsetCommit(c, commit)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("commit partition %d: error %d", p.Partition, p.ErrorCode)
		}
	}
	for p, want := range []float64{3, 0} {
		if got := mustValue(t, reg, "kafka_consumergroup_lag", "consumergroup", "g1", "topic", "lag", "partition", strconv.Itoa(p)); got != want {
			t.Errorf("lag of partition %d = %v, want %v", p, got, want)
		}
	}
	if got := mustValue(t, reg, "kafka_consumergroup_current_offset", "consumergroup", "g1", "topic", "lag", "partition", "0"); got != 7 {
		t.Errorf("current offset = %v, want 7", got)
	}
	// The coordinator's append is the internal topic's messages in (two
	// offset records), as Kafka's appendToLocalLog counts it.
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_messagesin_total", "topic", "__consumer_offsets"); got != 2 {
		t.Errorf("__consumer_offsets messages in after committing two offsets = %v, want 2", got)
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_bytesin_total", "topic", "__consumer_offsets"); got < 61 {
		t.Errorf("__consumer_offsets bytes in = %v, want a batch", got)
	}
	produceBatch(t, b, c, "lag", 1, 2, 1)
	if got := mustValue(t, reg, "kafka_consumergroup_lag", "consumergroup", "g1", "topic", "lag", "partition", "1"); got != 2 {
		t.Errorf("lag of partition 1 after 2 more records = %v, want 2", got)
	}
}

// pipeConn is a connection whose writer goroutine runs and writes to one
// end of a net.Pipe; the test reads the other end (client).
type pipeConn struct {
	*conn
	client net.Conn
}

// newPipeConn starts the writer of a connection on a pipe; the cleanup
// ends it.
func newPipeConn(t *testing.T, b *Broker) pipeConn {
	t.Helper()
	server, client := net.Pipe()
	c := newConn(b, server, "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.writeLoop()
	}()
	t.Cleanup(func() {
		close(c.out)
		client.Close()
		<-done
		server.Close()
	})
	return pipeConn{conn: c, client: client}
}

// send handles req as one request on the connection.
func (pc pipeConn) send(t *testing.T, req kmsg.Request) {
	t.Helper()
	pc.inFlight.Add(1)
	if !pc.process(protocol.AppendRequest(nil, 1, nil, req)[4:]) {
		t.Fatalf("%s closed the connection", kmsg.NameForKey(req.Key()))
	}
}

// readResponse reads one response frame from the client end.
func (pc pipeConn) readResponse(t *testing.T) []byte {
	t.Helper()
	pc.client.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(pc.client, size[:]); err != nil {
		t.Fatalf("read response size: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(pc.client, body); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return body
}

// waitValue waits, a bounded time, until the sample of name with labels
// kv is want.
func waitValue(t *testing.T, reg *prometheus.Registry, want float64, name string, kv ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := value(t, reg, name, kv...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, kv, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// histogramSum is the sum of the histogram of name with labels kv.
func histogramSum(t *testing.T, reg *prometheus.Registry, name string, kv ...string) float64 {
	t.Helper()
	s, ok := sample(t, reg, name, kv...)
	if !ok {
		t.Fatalf("no histogram %s%v", name, kv)
	}
	return s.sum
}

// TestMetricsRequests: requests handled through a connection count by
// API and version once their responses are written, and each adds one
// observation to its API's latency histograms; Fetch is also counted as
// FetchConsumer.
func TestMetricsRequests(t *testing.T) {
	b, reg := newMetricsBroker(t, metadata.NewMemoryStore("test-cluster"))
	createPlaced(t, b, metadata.Topic{Name: "q", Partitions: 1})
	pc := newPipeConn(t, b)
	for range 3 {
		av := kmsg.NewPtrApiVersionsRequest()
		av.SetVersion(3)
		av.ClientSoftwareName, av.ClientSoftwareVersion = "test", "1"
		pc.send(t, av)
		pc.readResponse(t)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	pc.send(t, md)
	pc.readResponse(t)
	fr := kmsg.NewPtrFetchRequest()
	fr.SetVersion(11)
	fr.ReplicaID = -1
	fr.MaxBytes = 1 << 20
	pc.send(t, fr)
	pc.readResponse(t)
	// The writer observes once the client has the bytes: poll.
	waitValue(t, reg, 1, "kafka_network_requestmetrics_requests_total", "request", "Fetch", "version", "11")
	if got := mustValue(t, reg, "kafka_network_requestmetrics_requests_total", "request", "ApiVersions", "version", "3"); got != 3 {
		t.Errorf("ApiVersions v3 requests = %v, want 3", got)
	}
	if got := mustValue(t, reg, "kafka_network_requestmetrics_requests_total", "request", "Metadata", "version", "12"); got != 1 {
		t.Errorf("Metadata v12 requests = %v, want 1", got)
	}
	for _, name := range []string{"kafka_network_requestmetrics_totaltimems", "kafka_network_requestmetrics_responsequeuetimems", "kafka_network_requestmetrics_responsesendtimems"} {
		if got := mustValue(t, reg, name, "request", "ApiVersions"); got != 3 {
			t.Errorf("%s ApiVersions observations = %v, want 3", name, got)
		}
		if got := mustValue(t, reg, name, "request", "Fetch"); got != 1 {
			t.Errorf("%s Fetch observations = %v, want 1", name, got)
		}
		if got := mustValue(t, reg, name, "request", "FetchConsumer"); got != 1 {
			t.Errorf("%s FetchConsumer observations = %v, want 1", name, got)
		}
		if got := mustValue(t, reg, name, "request", "FetchFollower"); got != 0 {
			t.Errorf("%s FetchFollower observations = %v, want 0", name, got)
		}
	}
	if _, ok := value(t, reg, "kafka_network_requestmetrics_requests_total", "request", "Produce", "version", "9"); ok {
		t.Error("a series for a request never made")
	}
}

// TestMetricsRequestTimeIncludesSend: a request's total time ends when
// its response's last byte is written to the socket, as Kafka's does, not
// when the response is queued for the writer: while the client reads
// nothing the request is not observed, and once it reads, the total and
// send times cover the wait.
func TestMetricsRequestTimeIncludesSend(t *testing.T) {
	b, reg := newMetricsBroker(t, metadata.NewMemoryStore("test-cluster"))
	pc := newPipeConn(t, b)
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	pc.send(t, md)
	queued := time.Now() // process has returned: the response is queued
	// The pipe holds nothing: the writer is blocked until the client
	// reads, and the request is not observed meanwhile.
	for time.Since(queued) < 200*time.Millisecond {
		if got, _ := value(t, reg, "kafka_network_requestmetrics_totaltimems", "request", "Metadata"); got != 0 {
			t.Fatalf("observed %v times before the client read the response", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	held := time.Since(queued)
	pc.readResponse(t)
	waitValue(t, reg, 1, "kafka_network_requestmetrics_totaltimems", "request", "Metadata")
	heldMs := float64(held.Nanoseconds()) / 1e6
	if total := histogramSum(t, reg, "kafka_network_requestmetrics_totaltimems", "request", "Metadata"); total < heldMs {
		t.Errorf("total time %v ms, less than the %v ms the client held off reading", total, heldMs)
	}
	// The response was queued before the test's clock started, and the
	// writer took it at some point since: queue and send time together
	// cover the wait.
	send := histogramSum(t, reg, "kafka_network_requestmetrics_responsesendtimems", "request", "Metadata")
	q := histogramSum(t, reg, "kafka_network_requestmetrics_responsequeuetimems", "request", "Metadata")
	if send+q < heldMs || send <= 0 {
		t.Errorf("response queue time %v ms and send time %v ms: together less than the %v ms the client held off reading", q, send, heldMs)
	}
	if got := mustValue(t, reg, "kafka_network_requestmetrics_requests_total", "request", "Metadata", "version", "12"); got != 1 {
		t.Errorf("Metadata requests = %v, want 1", got)
	}
}

// TestRequestMetricsAllocs: once a request's series exist, its metrics
// cost no allocation on the writer's path: a response written into the
// buffer, flushed, and its times observed.
func TestRequestMetricsAllocs(t *testing.T) {
	b, _ := newMetricsBroker(t, metadata.NewMemoryStore("test-cluster"))
	ws := &connWriter{sock: socketWriter{nc: io.Discard}}
	ws.w = bufio.NewWriterSize(&ws.sock, connBufferSize)
	fr := kmsg.NewPtrFetchRequest()
	fr.SetVersion(11)
	frame := make([]byte, 100)
	run := func() {
		tm := b.metrics.timing(1, 11, time.Now(), fr)
		tm.markQueued()
		tm.markDequeued()
		ws.w.Write(frame)
		ws.wrote(tm, len(frame))
		ws.w.Flush()
		ws.sent(b.metrics)
	}
	run() // makes the series
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per response", n)
	}
}

// BenchmarkRequestMetrics measures what the request metrics add to each
// request: one counter and one histogram observation through the cached
// children.
func BenchmarkRequestMetrics(b *testing.B) {
	br := newTestBroker(b)
	req := kmsg.NewPtrMetadataRequest()
	start := time.Now()
	for b.Loop() {
		br.metrics.request(3, 12, start, req)
	}
}

// TestKafkaAPINames: request labels are Kafka's API names where kmsg
// spells them otherwise.
func TestKafkaAPINames(t *testing.T) {
	for key, want := range map[int16]string{0: "Produce", 18: "ApiVersions", 22: "InitProducerId", 23: "OffsetForLeaderEpoch", 45: "AlterPartitionReassignments", 68: "ConsumerGroupHeartbeat"} {
		if got := kafkaAPIName(key); got != want {
			t.Errorf("api key %d: %q, want %q", key, got, want)
		}
	}
}

// TestMetricsDelayedProduceExpires: an acks=all wait that reaches its
// deadline counts as an expiry of its partition and of all partitions
// (DelayedProduceMetrics ExpiresPerSec); one ended by the client going
// away does not; partitions with no expiry have no series.
func TestMetricsDelayedProduceExpires(t *testing.T) {
	b, reg := newMetricsBroker(t, metadata.NewMemoryStore("test-cluster"))
	createPlaced(t, b, metadata.Topic{Name: "exp", Partitions: 2})
	c := newTestConn(b)
	produceBatch(t, b, c, "exp", 0, 3, 1)
	part := b.parts.lookup("exp", 0)
	never := part.log.LogEndOffset() + 1 // an offset no one appends
	if err := part.waitCommitted(context.Background(), time.Now().Add(10*time.Millisecond), never, 1); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("wait past the deadline: %v, want REQUEST_TIMED_OUT", err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := part.waitCommitted(gone, time.Now().Add(time.Hour), never, 1); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("wait of a client gone: %v, want REQUEST_TIMED_OUT", err)
	}
	if got := mustValue(t, reg, "kafka_server_delayedproducemetrics_expires_total", "topic", "exp", "partition", "0"); got != 1 {
		t.Errorf("expires of exp-0 = %v, want 1", got)
	}
	if got := mustValue(t, reg, "kafka_server_delayedproducemetrics_expires_total"); got != 1 {
		t.Errorf("expires over all partitions = %v, want 1", got)
	}
	if _, ok := value(t, reg, "kafka_server_delayedproducemetrics_expires_total", "topic", "exp", "partition", "1"); ok {
		t.Error("an expiry series for a partition that had none")
	}
	if got := mustValue(t, reg, "kafka_server_brokertopicmetrics_failedproducerequests_total", "topic", "exp"); got != 0 {
		t.Errorf("failed produce requests = %v, want 0", got)
	}
}
