package integration

// Replication across three broker processes: partitions with replication
// factor 3, acks=all produce while a leader is killed with SIGKILL, every
// acknowledged record read back afterwards, the killed broker catching up
// and rejoining the ISR, and min.insync.replicas refusing writes when too
// few replicas are in sync.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startQuorumCluster starts n brokers whose embedded etcd members form one
// quorum, and waits until all serve.
func startQuorumCluster(t *testing.T, n int, extra ...string) []*brokerProc {
	t.Helper()
	var brokers []*brokerProc
	for id := 1; id <= n; id++ {
		brokers = append(brokers, newBrokerProc(t, append([]string{"--node-id", strconv.Itoa(id)}, extra...)...))
	}
	var members []string
	for i, b := range brokers {
		members = append(members, fmt.Sprintf("%d=%s", i+1, b.Peer))
	}
	for _, b := range brokers {
		b.args = append(b.args, "--etcd-initial-cluster", strings.Join(members, ","))
		b.spawn()
	}
	for _, b := range brokers {
		b.waitReady(90 * time.Second)
	}
	return brokers
}

// replCreateTopic creates a topic with the given replication factor.
func replCreateTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, parts int32, rf int16, configs map[string]*string) {
	t.Helper()
	resp, err := adm.CreateTopic(ctx, parts, rf, configs, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create %s (rf %d): %v %v %s", topic, rf, err, resp.Err, resp.ErrMessage)
	}
}

// replWaitISR waits until every partition of topic has an ISR of n.
func replWaitISR(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, n int, timeout time.Duration) kadm.TopicDetail {
	t.Helper()
	var td kadm.TopicDetail
	fzWaitFor(t, timeout, fmt.Sprintf("every partition of %s with %d in-sync replicas", topic, n), func() error {
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		td = tds[topic]
		for _, p := range td.Partitions {
			if len(p.ISR) != n || p.Leader < 0 {
				return fmt.Errorf("partition %d: leader %d, isr %v", p.Partition, p.Leader, p.ISR)
			}
		}
		return nil
	})
	return td
}

// acked is an acknowledged record: where the broker said it is.
type acked struct {
	partition int32
	offset    int64
	value     string
}

func TestReplicationFailover(t *testing.T) {
	brokers := startQuorumCluster(t, 3, "--etcd-lease-ttl", "2s")
	ctx := testContext(t, 180*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "repl")
	const parts = 3
	two := "2"
	replCreateTopic(ctx, t, adm, topic, parts, 3, map[string]*string{"min.insync.replicas": &two})
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	victim := td.Partitions[0].Leader

	seeds := []string{brokers[0].Addr, brokers[1].Addr, brokers[2].Addr}
	prod := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	var (
		mu        sync.Mutex
		acks      []acked
		failures  int
		lastAckAt = map[int32]time.Time{}
		gapMax    time.Duration
	)
	produceCtx, stopProducing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for p := range int32(parts) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; produceCtx.Err() == nil; i++ {
				r := &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i)}
				err := prod.ProduceSync(produceCtx, r).FirstErr()
				mu.Lock()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						failures++
					}
				} else {
					acks = append(acks, acked{r.Partition, r.Offset, string(r.Value)})
					now := time.Now()
					if last, ok := lastAckAt[p]; ok && now.Sub(last) > gapMax {
						gapMax = now.Sub(last)
					}
					lastAckAt[p] = now
				}
				mu.Unlock()
			}
		}()
	}
	ackCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	fzWaitFor(t, 30*time.Second, "300 acknowledged records", func() error {
		if n := ackCount(); n < 300 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	mu.Lock()
	gapMax = 0 // measure the gap the failover causes, not start-up
	mu.Unlock()
	killedAt := time.Now()
	brokers[victim-1].Kill()
	before := ackCount()
	fzWaitFor(t, 30*time.Second, "acknowledged records on every partition after the leader was killed", func() error {
		mu.Lock()
		defer mu.Unlock()
		for p := range int32(parts) {
			if !lastAckAt[p].After(killedAt) {
				return fmt.Errorf("partition %d: nothing acknowledged since the kill", p)
			}
		}
		return nil
	})
	recovered := time.Since(killedAt)
	fzWaitFor(t, 30*time.Second, "200 more acknowledged records", func() error {
		if n := ackCount(); n < before+200 {
			return fmt.Errorf("%d acknowledged", n-before)
		}
		return nil
	})
	stopProducing()
	wg.Wait()
	mu.Lock()
	t.Logf("killed broker %d (leader of partition 0); every partition took acks=all writes again %v later; longest gap between acks on one partition %v; %d acknowledged, %d failed attempts",
		victim, recovered.Round(time.Millisecond), gapMax.Round(time.Millisecond), len(acks), failures)
	got := slices.Clone(acks)
	mu.Unlock()

	// Every acknowledged record is there, at its offset, read from the
	// new leaders.
	var alive []string
	for i, b := range brokers {
		if int32(i+1) != victim {
			alive = append(alive, b.Addr)
		}
	}
	replCheckAcked(ctx, t, alive, topic, parts, got)

	// The killed broker comes back, catches up and rejoins every ISR.
	brokers[victim-1].Restart()
	replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// replCheckAcked consumes topic from the start and checks that every
// acknowledged record is at its offset with its value.
func replCheckAcked(ctx context.Context, t *testing.T, seeds []string, topic string, parts int32, want []acked) {
	t.Helper()
	ends := map[int32]int64{}
	for _, a := range want {
		ends[a.partition] = max(ends[a.partition], a.offset+1)
	}
	cons := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[int32]map[int64]string{}
	fzWaitFor(t, 60*time.Second, "every acknowledged record consumed", func() error {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cons.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if seen[r.Partition] == nil {
				seen[r.Partition] = map[int64]string{}
			}
			seen[r.Partition][r.Offset] = string(r.Value)
		})
		for p := range parts {
			if int64(len(seen[p])) < ends[p] {
				return fmt.Errorf("partition %d: %d of at least %d records", p, len(seen[p]), ends[p])
			}
		}
		return nil
	})
	for _, a := range want {
		if v, ok := seen[a.partition][a.offset]; !ok || v != a.value {
			t.Errorf("acknowledged %q at %s[%d]@%d; read back %q (present %v)", a.value, topic, a.partition, a.offset, v, ok)
		}
	}
}

// TestReplicationMinInsync: with two of three replicas down, acks=all
// writes get NOT_ENOUGH_REPLICAS (min.insync.replicas=2) while acks=1
// writes still work; when the brokers return, acks=all works again.
func TestReplicationMinInsync(t *testing.T) {
	first := startBroker(t, "--node-id", "1", "--etcd-lease-ttl", "2s")
	brokers := []*brokerProc{first}
	for id := 2; id <= 3; id++ {
		brokers = append(brokers, startBroker(t, "--node-id", strconv.Itoa(id), "--etcd-endpoints", first.Etcd, "--etcd-lease-ttl", "2s"))
	}
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, first.Addr)
	topic := fzTopic(t, "minisr")
	two := "2"
	replCreateTopic(ctx, t, adm, topic, 3, 3, map[string]*string{"min.insync.replicas": &two})
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	// Use the partition broker 1 leads: brokers 2 and 3 die, and broker 1
	// holds the etcd the others use.
	part := int32(-1)
	for _, p := range td.Partitions {
		if p.Leader == 1 {
			part = p.Partition
		}
	}
	if part < 0 {
		t.Fatalf("no partition led by broker 1: %+v", td.Partitions)
	}
	all := fzClient(t, first.Addr, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(0), kgo.RetryTimeout(time.Second))
	one := fzClient(t, first.Addr, kgo.RequiredAcks(kgo.LeaderAck()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	rec := func(v string) *kgo.Record { return &kgo.Record{Topic: topic, Partition: part, Value: []byte(v)} }
	if err := all.ProduceSync(ctx, rec("all-3")).FirstErr(); err != nil {
		t.Fatalf("acks=all with three in sync: %v", err)
	}
	brokers[1].Kill()
	brokers[2].Kill()
	fzWaitFor(t, 30*time.Second, "the partition's isr down to broker 1", func() error {
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		if isr := tds[topic].Partitions[part].ISR; len(isr) != 1 {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})
	err := all.ProduceSync(ctx, rec("all-1")).FirstErr()
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Errorf("acks=all with one replica in sync: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if err := one.ProduceSync(ctx, rec("one-1")).FirstErr(); err != nil {
		t.Errorf("acks=1 with one replica in sync: %v", err)
	}
	brokers[1].Restart()
	fzWaitFor(t, 60*time.Second, "broker 2 back in the partition's isr", func() error {
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		if isr := tds[topic].Partitions[part].ISR; len(isr) != 2 {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})
	if err := all.ProduceSync(ctx, rec("all-2")).FirstErr(); err != nil {
		t.Errorf("acks=all with two replicas in sync again: %v", err)
	}
	fzCheckLogs(t, brokers[0])
	fzCheckLogs(t, brokers[1])
}
