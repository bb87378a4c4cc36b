package integration

// Partition limits (max.partitions, max.broker.partitions) and the one
// deadline of a request, driven with franz-go and raw requests.

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestPartitionLimits: CreateTopics, CreatePartitions and auto-creation
// that would take the cluster past max.partitions or max.broker.partitions
// get POLICY_VIOLATION and create nothing; raising the limit at run time
// with IncrementalAlterConfigs lets the same request through.
func TestPartitionLimits(t *testing.T) {
	b := startBroker(t, "--max-partitions", "10", "--max-broker-partitions", "12")
	ctx := testContext(t, 60*time.Second)
	adm := fzAdmin(t, b.Addr)
	cl := fzClient(t, b.Addr)

	first, second := fzTopic(t, "limit-a"), fzTopic(t, "limit-b")
	fzCreateTopic(ctx, t, adm, first, 8, nil)
	// 8 + 5 > 10: refused whole, nothing created.
	resps, err := adm.CreateTopics(ctx, 5, 1, nil, second)
	if err != nil {
		t.Fatal(err)
	}
	if r := resps[second]; !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Fatalf("CreateTopics past max.partitions: %v (%s), want POLICY_VIOLATION", r.Err, r.ErrMessage)
	}
	// A request with two topics, one of which would fit alone: both refused.
	third := fzTopic(t, "limit-c")
	resps, err = adm.CreateTopics(ctx, 2, 1, nil, second, third)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{second, third} {
		if r := resps[name]; !errors.Is(r.Err, kerr.PolicyViolation) {
			t.Fatalf("CreateTopics of %s in a request past max.partitions: %v, want POLICY_VIOLATION", name, r.Err)
		}
	}
	// CreatePartitions past the limit.
	cps, err := adm.CreatePartitions(ctx, 3, first)
	if err != nil {
		t.Fatal(err)
	}
	if r := cps[first]; !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Fatalf("CreatePartitions past max.partitions: %v (%s), want POLICY_VIOLATION", r.Err, r.ErrMessage)
	}
	// Auto-creation past the limit (num.partitions is 1; 8 + 2 fills it).
	fzCreateTopic(ctx, t, adm, third, 2, nil)
	auto := fzTopic(t, "limit-auto")
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(auto)
	req.Topics = append(req.Topics, rt)
	autoCreate := func() *kmsg.MetadataResponse {
		t.Helper()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := autoCreate(); len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.PolicyViolation.Code {
		t.Fatalf("Metadata auto-creating past max.partitions: %+v, want POLICY_VIOLATION", resp.Topics)
	}
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tds.Has(second) || tds.Has(auto) {
		t.Fatalf("a refused creation created a topic: %v", tds.Names())
	}
	if n := len(tds[first].Partitions); n != 8 {
		t.Fatalf("%s has %d partitions after a refused CreatePartitions, want 8", first, n)
	}

	// max.broker.partitions: 12 replicas on the one live broker. Raise
	// max.partitions at run time; 10 + 3 partitions pass it but not 12
	// replicas per broker.
	alter := func(name, value string) {
		t.Helper()
		v := value
		rs, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: name, Value: &v}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil {
				t.Fatalf("set %s=%s: %v %s", name, value, r.Err, r.ErrMessage)
			}
		}
	}
	alter("max.partitions", "100")
	resps, err = adm.CreateTopics(ctx, 3, 1, nil, second)
	if err != nil {
		t.Fatal(err)
	}
	if r := resps[second]; !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Fatalf("CreateTopics past max.broker.partitions: %v (%s), want POLICY_VIOLATION", r.Err, r.ErrMessage)
	}
	alter("max.broker.partitions", "100")
	fzCreateTopic(ctx, t, adm, second, 3, nil)
	// Auto-creation goes through too, once within the limits.
	if resp := autoCreate(); len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("Metadata auto-creating within the limits: %+v", resp.Topics)
	}
	fzProduceSync(ctx, t, cl, &kgo.Record{Topic: auto, Value: []byte("v")})
	fzCheckLogs(t, b)
}

// TestProduceDeadlineCoversEveryPartition: one acks=all Produce to two
// partitions whose follower has stopped (paused, still in the ISR: its
// lease and replica.lag.time.max.ms outlast the test) is answered once
// its timeout_ms has passed, REQUEST_TIMED_OUT for both partitions; the
// second partition's wait is bounded by the same deadline as the first.
func TestProduceDeadlineCoversEveryPartition(t *testing.T) {
	lag := "--config=replica.lag.time.max.ms=300000"
	first := startBroker(t, "--node-id", "1", lag)
	second := startBroker(t, "--node-id", "2", "--etcd-endpoints", first.Etcd, "--etcd-lease-ttl", "120s", lag)
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, first.Addr)
	topic := fzTopic(t, "deadline")
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p := int32(0); p < 2; p++ {
		ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		ra.Partition, ra.Replicas = p, []int32{1, 2}
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	}
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 30000
	cresp, err := req.RequestWith(ctx, fzClient(t, first.Addr))
	if err != nil || len(cresp.Topics) != 1 || cresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create %s on brokers 1 and 2: %+v %v", topic, cresp, err)
	}
	replWaitISR(ctx, t, adm, topic, 2, 30*time.Second)

	second.Pause()
	defer second.Resume()
	raw := fzDial(t, first.Addr)
	const timeoutMs = 1500
	preq := fzProduceRequest(9,
		fzProducePart{topic: topic, partition: 0, records: fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("p0")})},
		fzProducePart{topic: topic, partition: 1, records: fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("p1")})},
	)
	preq.TimeoutMillis = timeoutMs
	start := time.Now()
	presp := raw.roundTrip(preq).(*kmsg.ProduceResponse)
	took := time.Since(start)
	results := fzProduceResults(t, presp)
	for p := 0; p < 2; p++ {
		r, ok := results[topic+"/"+strconv.Itoa(p)]
		if !ok || r.ErrorCode != kerr.RequestTimedOut.Code {
			t.Errorf("partition %d: %+v (present %v), want REQUEST_TIMED_OUT", p, r, ok)
		}
	}
	// The deadline is timeout_ms for the request as a whole: well under
	// twice it, and nowhere near the ISR's 300 s.
	if took < timeoutMs*time.Millisecond || took > 2*timeoutMs*time.Millisecond+2*time.Second {
		t.Errorf("acks=all Produce to two partitions answered after %v, want about %d ms", took, timeoutMs)
	}
}
