package integration

// /metrics scraped during and after load from franz-go clients: the
// BrokerTopicMetrics counters against what was produced and consumed,
// consumer-group lag against committed offsets, log sizes against
// DescribeLogDirs, the replica manager gauges, request metrics, etcd
// health and the Go runtime's metrics.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// scrape is one parsed /metrics answer, by family name.
type scrape map[string]*dto.MetricFamily

// scrapeMetrics fetches and parses /metrics of p.
func scrapeMetrics(p *brokerProc) (scrape, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + p.HTTP + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return scrape(fams), nil
}

// get returns the value of the sample of name whose labels are exactly kv
// (name, value pairs): a counter's or gauge's value, a histogram's count.
func (s scrape) get(name string, kv ...string) (float64, bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		want[kv[i]] = kv[i+1]
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// must is get, failing the test when the sample is absent.
func (s scrape) must(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	v, ok := s.get(name, kv...)
	if !ok {
		t.Fatalf("/metrics has no sample %s%v", name, kv)
	}
	return v
}

// sumOver adds the samples of name that carry label=value.
func (s scrape) sumOver(name, label, value string) float64 {
	var sum float64
	for _, m := range s[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				switch {
				case m.Counter != nil:
					sum += m.GetCounter().GetValue()
				case m.Histogram != nil:
					sum += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return sum
}

// TestMetricsUnderLoad produces with franz-go while /metrics is scraped,
// consumes in a group that commits, and checks what the scrapes say:
// messages in equals the records produced (idempotent retries are not
// counted twice), bytes out grows with consumption, lag is what was
// produced past the committed offsets, log sizes match DescribeLogDirs,
// and the gauges describe a single broker that leads everything.
func TestMetricsUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := startBroker(t)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "metrics")
	const partitions = 3
	fzCreateTopic(ctx, t, adm, topic, partitions, nil)

	// Scrape all along the load: every answer parses, and the counter of
	// records in never goes down.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var scrapeErr error
	scrapes := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := -1.0
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s, err := scrapeMetrics(p)
			if err != nil {
				scrapeErr = err
				return
			}
			scrapes++
			v, _ := s.get("kafka_server_brokertopicmetrics_messagesin_total", "topic", topic)
			if v < last {
				scrapeErr = fmt.Errorf("messages in went from %v to %v", last, v)
				return
			}
			last = v
		}
	}()

	producer := fzClient(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	const rounds, perRound = 20, 50
	perPartition := map[int32]int64{}
	for r := range rounds {
		recs := make([]*kgo.Record, perRound)
		for i := range recs {
			recs[i] = &kgo.Record{Value: []byte("record " + strconv.Itoa(r*perRound+i))}
		}
		for _, rec := range fzProduceSync(ctx, t, producer, recs...) {
			perPartition[rec.Partition]++
		}
	}
	const produced = rounds * perRound

	s, err := scrapeMetrics(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.must(t, "kafka_server_brokertopicmetrics_messagesin_total", "topic", topic); got != produced {
		t.Errorf("messages in = %v, want %d", got, produced)
	}
	bytesIn := s.must(t, "kafka_server_brokertopicmetrics_bytesin_total", "topic", topic)
	if bytesIn < produced*10 {
		t.Errorf("bytes in = %v for %d records of at least 8 bytes each", bytesIn, produced)
	}
	if all := s.must(t, "kafka_server_brokertopicmetrics_messagesin_total"); all < produced {
		t.Errorf("messages in, all topics = %v < %d", all, produced)
	}
	if got := s.must(t, "kafka_server_brokertopicmetrics_failedproducerequests_total", "topic", topic); got != 0 {
		t.Errorf("failed produce requests = %v, want 0", got)
	}
	// Polled: a request is counted once its response is on the socket,
	// just after the client can have it.
	fzWaitFor(t, 10*time.Second, "the Produce request metrics", func() error {
		s, err := scrapeMetrics(p)
		if err != nil {
			return err
		}
		if got := s.sumOver("kafka_network_requestmetrics_requests_total", "request", "Produce"); got < rounds {
			return fmt.Errorf("Produce requests = %v, want at least %d", got, rounds)
		}
		for _, name := range []string{"kafka_network_requestmetrics_totaltimems", "kafka_network_requestmetrics_responsequeuetimems", "kafka_network_requestmetrics_responsesendtimems"} {
			if got := s.must(t, name, "request", "Produce"); got < rounds {
				return fmt.Errorf("Produce %s observations = %v, want at least %d", name, got, rounds)
			}
		}
		return nil
	})
	bytesOutBefore := s.must(t, "kafka_server_brokertopicmetrics_bytesout_total", "topic", topic)

	// A group consumes everything and commits.
	const group = "metrics-group"
	consumer := fzClient(t, p.Addr, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < produced {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", got, produced, err)
		}
		fs.EachError(func(t2 string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", t2, p, err) })
		got += fs.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	s, err = scrapeMetrics(p)
	if err != nil {
		t.Fatal(err)
	}
	if out := s.must(t, "kafka_server_brokertopicmetrics_bytesout_total", "topic", topic); out <= bytesOutBefore || out < bytesIn {
		t.Errorf("bytes out = %v after consuming everything (before: %v, bytes in: %v)", out, bytesOutBefore, bytesIn)
	}
	for part := range int32(partitions) {
		ps := strconv.Itoa(int(part))
		if lag := s.must(t, "kafka_consumergroup_lag", "consumergroup", group, "topic", topic, "partition", ps); lag != 0 {
			t.Errorf("lag of partition %d after committing everything = %v, want 0", part, lag)
		}
		if off := s.must(t, "kafka_consumergroup_current_offset", "consumergroup", group, "topic", topic, "partition", ps); off != float64(perPartition[part]) {
			t.Errorf("committed offset of partition %d = %v, want %d", part, off, perPartition[part])
		}
	}

	// More records, not consumed: the lag is what was produced past the
	// commits. A second group commits explicit offsets.
	more := map[int32]int64{}
	recs := make([]*kgo.Record, 30)
	for i := range recs {
		recs[i] = &kgo.Record{Value: []byte("more " + strconv.Itoa(i))}
	}
	for _, rec := range fzProduceSync(ctx, t, producer, recs...) {
		more[rec.Partition]++
	}
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 5, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, "metrics-explicit", offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit explicit offsets: %v %v", err, resp.Error())
	}
	s, err = scrapeMetrics(p)
	if err != nil {
		t.Fatal(err)
	}
	for part := range int32(partitions) {
		ps := strconv.Itoa(int(part))
		if lag := s.must(t, "kafka_consumergroup_lag", "consumergroup", group, "topic", topic, "partition", ps); lag != float64(more[part]) {
			t.Errorf("lag of partition %d = %v, want %d (produced past the commit)", part, lag, more[part])
		}
	}
	end0 := perPartition[0] + more[0]
	if lag := s.must(t, "kafka_consumergroup_lag", "consumergroup", "metrics-explicit", "topic", topic, "partition", "0"); lag != float64(end0-5) {
		t.Errorf("lag of the explicit commit = %v, want %d", lag, end0-5)
	}
	if _, ok := s.get("kafka_consumergroup_lag", "consumergroup", "metrics-explicit", "topic", topic, "partition", "1"); ok {
		t.Error("lag series for a partition the group never committed")
	}

	// Log sizes match DescribeLogDirs; offsets match what was produced.
	dirs, err := adm.DescribeBrokerLogDirs(ctx, 1, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	if err != nil {
		t.Fatalf("describe log dirs: %v", err)
	}
	sizes := map[int32]int64{}
	dirs.EachPartition(func(d kadm.DescribedLogDirPartition) { sizes[d.Partition] += d.Size })
	for part := range int32(partitions) {
		ps := strconv.Itoa(int(part))
		if size := s.must(t, "kafka_log_log_size", "topic", topic, "partition", ps); size != float64(sizes[part]) || size == 0 {
			t.Errorf("log size of partition %d = %v, DescribeLogDirs says %d", part, size, sizes[part])
		}
		if end := s.must(t, "kafka_log_log_logendoffset", "topic", topic, "partition", ps); end != float64(perPartition[part]+more[part]) {
			t.Errorf("log end offset of partition %d = %v, want %d", part, end, perPartition[part]+more[part])
		}
	}

	// One broker: it leads every partition it has, nothing is
	// under-replicated, it is the controller and its etcd is up.
	leaders := s.must(t, "kafka_server_replicamanager_leadercount")
	if hosted := s.must(t, "kafka_server_replicamanager_partitioncount"); leaders != hosted || leaders < partitions {
		t.Errorf("leader count %v, partition count %v: want equal and at least %d", leaders, hosted, partitions)
	}
	for name, want := range map[string]float64{
		"kafka_server_replicamanager_underreplicatedpartitions":  0,
		"kafka_controller_kafkacontroller_activecontrollercount": 1,
		"gregor_etcd_up": 1,
		"kafka_server_replicamanager_isrshrinks_total": 0,
		"gregor_metadata_faults":                       0,
	} {
		if got := s.must(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := s.must(t, "kafka_network_requestmetrics_totaltimems", "request", "FetchConsumer"); got == 0 {
		t.Error("no FetchConsumer latency observations after consuming")
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "gregor_etcd_request_duration_seconds"} {
		if s[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}

	close(stop)
	wg.Wait()
	if scrapeErr != nil {
		t.Fatalf("scrape during load: %v", scrapeErr)
	}
	if scrapes == 0 {
		t.Fatal("no scrape completed during the load")
	}

	// Deleting the topic removes its series.
	if _, err := adm.DeleteTopic(ctx, topic); err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := scrapeMetrics(p)
		if err != nil {
			t.Fatal(err)
		}
		_, in := s.get("kafka_server_brokertopicmetrics_messagesin_total", "topic", topic)
		_, size := s.get("kafka_log_log_size", "topic", topic, "partition", "0")
		_, lag := s.get("kafka_consumergroup_lag", "consumergroup", group, "topic", topic, "partition", "0")
		if !in && !size && !lag {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("series of the deleted topic still exported: messages in %v, log size %v, lag %v", in, size, lag)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsCluster scrapes three brokers on one etcd: each counts the
// records produced to the partitions it leads (followers do not count
// replication), one is the controller, a group's coordinator exports its
// lag on every partition, those led elsewhere too; when a follower stops fetching,
// its leaders shrink the ISR (isrshrinks) and report under-replicated
// partitions, and when it is back and caught up they expand the ISR
// again (isrexpands) and nothing is under-replicated.
func TestMetricsCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A follower silent for a second leaves the ISR, before its 2 s
	// lease expires: the leader, not the controller, shrinks the ISR.
	lag := []string{"--etcd-lease-ttl", "2s", "--config", "replica.lag.time.max.ms=1000"}
	first := startBroker(t, append([]string{"--node-id", "1"}, lag...)...)
	brokers := []*brokerProc{first}
	for id := 2; id <= 3; id++ {
		brokers = append(brokers, startBroker(t, append([]string{"--node-id", strconv.Itoa(id), "--etcd-endpoints", first.Etcd}, lag...)...))
	}
	waitBrokersInMetadata(ctx, t, first.Addr, 3)
	adm := fzAdmin(t, first.Addr)
	topic := fzTopic(t, "metrics")
	replCreateTopic(ctx, t, adm, topic, 3, 3, nil)
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)

	producer := fzClient(t, first.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	recs := make([]*kgo.Record, 300)
	for i := range recs {
		recs[i] = &kgo.Record{Value: []byte("record " + strconv.Itoa(i))}
	}
	byLeader := map[int32]float64{}
	byPartition := map[int32]int64{}
	for _, r := range fzProduceSync(ctx, t, producer, recs...) {
		byLeader[td.Partitions[r.Partition].Leader]++
		byPartition[r.Partition]++
	}
	scrapeAll := func(ps []*brokerProc) []scrape {
		t.Helper()
		var out []scrape
		for _, p := range ps {
			s, err := scrapeMetrics(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	sum := func(ss []scrape, name string) float64 {
		var n float64
		for _, s := range ss {
			n += s.must(t, name)
		}
		return n
	}
	// Polled, not asserted once: on a loaded machine a follower may be
	// out of the ISR for a moment (replica.lag.time.max.ms is 1 s here),
	// and the scrapes of the three brokers are not one instant.
	fzWaitFor(t, 30*time.Second, "the cluster's gauges and counters", func() error {
		ss := scrapeAll(brokers)
		for i, s := range ss {
			id := int32(i + 1)
			if got := s.must(t, "kafka_server_brokertopicmetrics_messagesin_total", "topic", topic); got != byLeader[id] {
				return fmt.Errorf("broker %d: messages in = %v, want %v (the records of the partitions it leads)", id, got, byLeader[id])
			}
		}
		if got := sum(ss, "kafka_controller_kafkacontroller_activecontrollercount"); got != 1 {
			return fmt.Errorf("active controllers over the cluster = %v, want 1", got)
		}
		if got := sum(ss, "kafka_server_replicamanager_underreplicatedpartitions"); got != 0 {
			return fmt.Errorf("under-replicated partitions with every broker up = %v, want 0", got)
		}
		return nil
	})

	// A group's lag, exported by its coordinator for every partition,
	// those led by other brokers too (their high watermarks asked of
	// their leaders), and by no other broker.
	const group = "metrics-cluster-group"
	offsets := kadm.Offsets{}
	for part := range int32(3) {
		offsets.Add(kadm.Offset{Topic: topic, Partition: part, At: 10, LeaderEpoch: -1})
	}
	if resp, err := adm.CommitOffsets(ctx, group, offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit offsets: %v %v", err, resp.Error())
	}
	coord := adm.FindGroupCoordinators(ctx, group)[group]
	if coord.Err != nil {
		t.Fatalf("find coordinator: %v", coord.Err)
	}
	// Polled: a remote leader's answer may miss one scrape's 1 s bound
	// on a loaded machine (the series is then left out of that scrape).
	fzWaitFor(t, 30*time.Second, "the coordinator's lag series", func() error {
		for i, s := range scrapeAll(brokers) {
			for part := range int32(3) {
				lag, ok := s.get("kafka_consumergroup_lag", "consumergroup", group, "topic", topic, "partition", strconv.Itoa(int(part)))
				switch {
				case int32(i+1) != coord.NodeID && ok:
					t.Fatalf("broker %d, not the coordinator (%d), exports lag of partition %d", i+1, coord.NodeID, part)
				case int32(i+1) == coord.NodeID && !ok:
					return fmt.Errorf("coordinator %d exports no lag for partition %d (leader %d)", coord.NodeID, part, td.Partitions[part].Leader)
				case ok && lag != float64(byPartition[part]-10):
					t.Fatalf("lag of partition %d (leader %d) = %v, want %d", part, td.Partitions[part].Leader, lag, byPartition[part]-10)
				}
			}
		}
		return nil
	})

	// Broker 3 stops; the leaders of the others shrink their ISRs.
	brokers[2].Pause()
	fzWaitFor(t, 30*time.Second, "under-replicated partitions and ISR shrinks", func() error {
		ss := scrapeAll(brokers[:2])
		if under := sum(ss, "kafka_server_replicamanager_underreplicatedpartitions"); under < 3 {
			return fmt.Errorf("%v under-replicated partitions", under)
		}
		if shrinks := sum(ss, "kafka_server_replicamanager_isrshrinks_total"); shrinks < 1 {
			return fmt.Errorf("%v isr shrinks", shrinks)
		}
		return nil
	})

	// Back and caught up: the ISRs expand and nothing is under-replicated.
	brokers[2].Resume()
	replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
	fzWaitFor(t, 30*time.Second, "ISR expands and no under-replicated partitions", func() error {
		ss := scrapeAll(brokers)
		if under := sum(ss, "kafka_server_replicamanager_underreplicatedpartitions"); under != 0 {
			return fmt.Errorf("%v under-replicated partitions", under)
		}
		if expands := sum(ss, "kafka_server_replicamanager_isrexpands_total"); expands < 1 {
			return fmt.Errorf("%v isr expands", expands)
		}
		if got := sum(ss, "kafka_controller_kafkacontroller_activecontrollercount"); got != 1 {
			return fmt.Errorf("%v active controllers", got)
		}
		return nil
	})
}

// TestMetricsCoordinatorAppendsAndExpiries runs two brokers on the first
// one's etcd. A group commits offsets: its coordinator, which leads the
// group's __consumer_offsets partition, counts the appends in that
// topic's messages and bytes in, and the other broker, which follows it,
// does not (it counts replication bytes in; the leader, replication
// bytes out), as Kafka does. Then broker 2 stops (SIGSTOP) and an
// acks=all produce to a partition broker 1 leads times out waiting for
// it: REQUEST_TIMED_OUT, counted as a delayed-produce expiry of that
// partition, not as a failed produce; the partition's series goes with
// the topic.
func TestMetricsCoordinatorAppendsAndExpiries(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	brokers := startSharedEtcdCluster(t, 2)
	waitBrokersInMetadata(ctx, t, brokers[0].Addr, 2)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "metrics-expiry")
	replCreateTopic(ctx, t, adm, topic, 2, 2, nil)
	td := replWaitISR(ctx, t, adm, topic, 2, 30*time.Second)

	// Offsets committed through the coordinator's appends.
	const group = "metrics-internal-group"
	commit := func(at int64) {
		t.Helper()
		offsets := kadm.Offsets{}
		for part := range int32(2) {
			offsets.Add(kadm.Offset{Topic: topic, Partition: part, At: at, LeaderEpoch: -1})
		}
		if resp, err := adm.CommitOffsets(ctx, group, offsets); err != nil || resp.Error() != nil {
			t.Fatalf("commit offsets: %v %v", err, resp.Error())
		}
	}
	commit(0)
	coord := adm.FindGroupCoordinators(ctx, group)[group]
	if coord.Err != nil {
		t.Fatalf("find coordinator: %v", coord.Err)
	}
	coordProc, followerProc := brokers[0], brokers[1]
	if coord.NodeID == 2 {
		coordProc, followerProc = brokers[1], brokers[0]
	}
	before, err := scrapeMetrics(coordProc)
	if err != nil {
		t.Fatal(err)
	}
	in0 := before.must(t, "kafka_server_brokertopicmetrics_messagesin_total", "topic", "__consumer_offsets")
	bytes0 := before.must(t, "kafka_server_brokertopicmetrics_bytesin_total", "topic", "__consumer_offsets")
	if in0 < 1 || bytes0 < 61 {
		t.Errorf("coordinator after a commit: __consumer_offsets messages in %v, bytes in %v; want a batch", in0, bytes0)
	}
	commit(1)
	after, err := scrapeMetrics(coordProc)
	if err != nil {
		t.Fatal(err)
	}
	if in := after.must(t, "kafka_server_brokertopicmetrics_messagesin_total", "topic", "__consumer_offsets"); in <= in0 {
		t.Errorf("__consumer_offsets messages in went from %v to %v over a commit", in0, in)
	}
	if in, all := after.must(t, "kafka_server_brokertopicmetrics_messagesin_total", "topic", "__consumer_offsets"),
		after.must(t, "kafka_server_brokertopicmetrics_messagesin_total"); all < in {
		t.Errorf("messages in over all topics %v < the internal topic's %v", all, in)
	}
	// The follower has the offsets (polled: it fetches them meanwhile)
	// and counts them only as replication.
	fzWaitFor(t, 30*time.Second, "the follower's replication counters", func() error {
		f, err := scrapeMetrics(followerProc)
		if err != nil {
			return err
		}
		l, err := scrapeMetrics(coordProc)
		if err != nil {
			return err
		}
		if in, _ := f.get("kafka_server_brokertopicmetrics_messagesin_total", "topic", "__consumer_offsets"); in != 0 {
			t.Fatalf("follower of the group's partition counts %v messages in for __consumer_offsets", in)
		}
		if n := f.must(t, "kafka_server_brokertopicmetrics_replicationbytesin_total"); n < bytes0 {
			return fmt.Errorf("follower replication bytes in %v, want at least the %v bytes of the first commit", n, bytes0)
		}
		if n := l.must(t, "kafka_server_brokertopicmetrics_replicationbytesout_total"); n < bytes0 {
			return fmt.Errorf("leader replication bytes out %v, want at least the %v bytes of the first commit", n, bytes0)
		}
		return nil
	})

	// Broker 2 stops; an acks=all produce to broker 1's partition cannot
	// be committed (broker 2 stays in the ISR for replica.lag.time.max.ms,
	// 30 s, and its 2 s lease outlives the 300 ms timeout).
	part := replPartitionLedBy(t, td, 1)
	ps := strconv.Itoa(int(part))
	raw := fzDial(t, brokers[0].Addr)
	brokers[1].Pause()
	defer brokers[1].Resume()
	req := fzProduceRequest(9, fzProducePart{topic: topic, partition: part, records: fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("never committed")})})
	req.TimeoutMillis = 300
	resp := raw.roundTrip(req).(*kmsg.ProduceResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.RequestTimedOut.Code {
		t.Fatalf("acks=all produce with its follower stopped: %s, want REQUEST_TIMED_OUT", fzErrCode(code))
	}
	s, err := scrapeMetrics(brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := s.must(t, "kafka_server_delayedproducemetrics_expires_total", "topic", topic, "partition", ps); got != 1 {
		t.Errorf("expires of %s-%d = %v, want 1", topic, part, got)
	}
	if got := s.must(t, "kafka_server_delayedproducemetrics_expires_total"); got < 1 {
		t.Errorf("expires over all partitions = %v, want at least 1", got)
	}
	if _, ok := s.get("kafka_server_delayedproducemetrics_expires_total", "topic", topic, "partition", strconv.Itoa(int(1-part))); ok {
		t.Error("an expiry series for a partition that had none")
	}
	if got := s.must(t, "kafka_server_brokertopicmetrics_failedproducerequests_total", "topic", topic); got != 0 {
		t.Errorf("failed produce requests = %v: a timed-out wait is not a failed produce", got)
	}
	all := s.must(t, "kafka_server_delayedproducemetrics_expires_total")

	// The partition goes with its topic, and its series with it; the
	// count over all partitions stays.
	if _, err := adm.DeleteTopic(ctx, topic); err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	fzWaitFor(t, 30*time.Second, "the deleted partition's expiry series gone", func() error {
		s, err := scrapeMetrics(brokers[0])
		if err != nil {
			return err
		}
		if _, ok := s.get("kafka_server_delayedproducemetrics_expires_total", "topic", topic, "partition", ps); ok {
			return fmt.Errorf("still exported")
		}
		if got := s.must(t, "kafka_server_delayedproducemetrics_expires_total"); got < all {
			t.Fatalf("expires over all partitions went from %v to %v", all, got)
		}
		return nil
	})
}
