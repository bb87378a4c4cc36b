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
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, b := range brokers {
			lines := strings.Split(b.Logs(), "\n")
			var keep []string
			for _, l := range lines {
				if strings.Contains(l, "WRN") || strings.Contains(l, "ERR") || strings.Contains(l, "coordinator") || strings.Contains(l, "leading") || strings.Contains(l, "follow") {
					keep = append(keep, l)
				}
			}
			t.Logf("broker %d log (warnings, errors, leadership; last 80):\n%s", i+1, strings.Join(keep[max(0, len(keep)-80):], "\n"))
		}
	})
	return brokers
}

// startSharedEtcdCluster starts n brokers (lease 2 s) on the first one's
// embedded etcd, which the others use as an external etcd: any broker but
// the first can die without the cluster losing its metadata store.
func startSharedEtcdCluster(t *testing.T, n int) []*brokerProc {
	t.Helper()
	first := startBroker(t, "--node-id", "1", "--etcd-lease-ttl", "2s")
	brokers := []*brokerProc{first}
	for id := 2; id <= n; id++ {
		brokers = append(brokers, startBroker(t, "--node-id", strconv.Itoa(id), "--etcd-endpoints", first.Etcd, "--etcd-lease-ttl", "2s"))
	}
	return brokers
}

// replPartitionAvoiding returns a partition of td (and its replicas) with
// no replica on broker avoid: one whose replicas can all be killed while
// avoid keeps the cluster's etcd.
func replPartitionAvoiding(t *testing.T, td kadm.TopicDetail, avoid int32) (int32, []int32) {
	t.Helper()
	for _, p := range td.Partitions.Sorted() {
		if !slices.Contains(p.Replicas, avoid) {
			return p.Partition, p.Replicas
		}
	}
	t.Fatalf("every partition has a replica on broker %d: %+v", avoid, td.Partitions)
	return -1, nil
}

// replPartitionLedBy returns a partition of td that broker id leads.
func replPartitionLedBy(t *testing.T, td kadm.TopicDetail, id int32) int32 {
	t.Helper()
	for _, p := range td.Partitions.Sorted() {
		if p.Leader == id {
			return p.Partition
		}
	}
	t.Fatalf("no partition led by broker %d: %+v", id, td.Partitions)
	return -1
}

// replPartition returns one partition's state as Metadata reports it.
func replPartition(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, part int32) kadm.PartitionDetail {
	t.Helper()
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return tds[topic].Partitions[part]
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

// replLoad produces acks=all to every partition of a topic, one record
// at a time per partition, and records what was acknowledged.
type replLoad struct {
	mu        sync.Mutex
	acks      []acked
	failures  int
	lastAckAt map[int32]time.Time
	gapMax    time.Duration
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

func replStartLoad(ctx context.Context, t *testing.T, seeds []string, topic string, parts int32) *replLoad {
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0)}
	if os.Getenv("GREGOR_REPL_DEBUG") != "" {
		// Debugging aid: the producer's kgo log on stderr.
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}
	prod := fzClient(t, seeds[0], opts...)
	l := &replLoad{lastAckAt: map[int32]time.Time{}}
	pctx, stop := context.WithCancel(ctx)
	l.stop = stop
	for p := range parts {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; pctx.Err() == nil; i++ {
				r := &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i)}
				err := prod.ProduceSync(pctx, r).FirstErr()
				l.mu.Lock()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						l.failures++
					}
				} else {
					l.acks = append(l.acks, acked{r.Partition, r.Offset, string(r.Value)})
					now := time.Now()
					if last, ok := l.lastAckAt[p]; ok && now.Sub(last) > l.gapMax {
						l.gapMax = now.Sub(last)
					}
					l.lastAckAt[p] = now
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *replLoad) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.acks) }

// waitMore waits until n more records than now are acknowledged.
func (l *replLoad) waitMore(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	from := l.count()
	fzWaitFor(t, timeout, fmt.Sprintf("%d more acknowledged records", n), func() error {
		if got := l.count() - from; got < n {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

// resetGap starts measuring the longest gap between acks afresh.
func (l *replLoad) resetGap() { l.mu.Lock(); l.gapMax = 0; l.mu.Unlock() }

// finish stops producing and returns what was acknowledged.
func (l *replLoad) finish() ([]acked, int, time.Duration) {
	l.stop()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acks), l.failures, l.gapMax
}

func replAddrs(brokers []*brokerProc, skip int32) []string {
	var out []string
	for i, b := range brokers {
		if int32(i+1) != skip {
			out = append(out, b.Addr)
		}
	}
	return out
}

func TestReplicationFailover(t *testing.T) {
	brokers := startQuorumCluster(t, 3, "--etcd-lease-ttl", "3s")
	ctx := testContext(t, 180*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "repl")
	const parts = 3
	two := "2"
	replCreateTopic(ctx, t, adm, topic, parts, 3, map[string]*string{"min.insync.replicas": &two})
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	victim := td.Partitions[0].Leader

	load := replStartLoad(ctx, t, replAddrs(brokers, -1), topic, parts)
	// A consumer group reads along and must carry on through the failover.
	glog := &grpLog{}
	grpStartMember(t, brokers[0].Addr, "m", fzTopic(t, "repl-g"), []string{topic}, glog, kgo.SeedBrokers(replAddrs(brokers, -1)...))
	load.waitMore(t, 300, 30*time.Second)
	load.resetGap()
	killedAt := time.Now()
	brokers[victim-1].Kill()
	// Acks on every partition well after the kill (not just responses
	// that were in flight when it happened).
	fzWaitFor(t, 30*time.Second, "acknowledged records on every partition after the leader was killed", func() error {
		load.mu.Lock()
		defer load.mu.Unlock()
		for p := range int32(parts) {
			if !load.lastAckAt[p].After(killedAt.Add(time.Second)) {
				return fmt.Errorf("partition %d: nothing acknowledged since the kill", p)
			}
		}
		return nil
	})
	load.waitMore(t, 200, 30*time.Second)
	got, failures, gap := load.finish()
	// The longest gap between two acks on one partition is how long the
	// killed leader's partition took no writes: lease expiry, election,
	// the client finding the new leader, the ISR moving on.
	t.Logf("killed broker %d (leader of partition 0) with the default 3 s lease: partition unavailable for acks=all writes for %v (longest gap between acks); %d acknowledged, %d failed attempts",
		victim, gap.Round(time.Millisecond), len(got), failures)

	// Every acknowledged record is there, at its offset, read from the
	// new leaders, and the group member consumed every one of them.
	replCheckAcked(ctx, t, replAddrs(brokers, victim), topic, parts, got)
	fzWaitFor(t, 60*time.Second, "the group member to consume every acknowledged record", func() error {
		seen := map[int32]map[int64]string{}
		for _, e := range glog.snapshot() {
			if !e.commit {
				if seen[e.partition] == nil {
					seen[e.partition] = map[int64]string{}
				}
				seen[e.partition][e.offset] = e.value
			}
		}
		missing := 0
		for _, a := range got {
			if v, ok := seen[a.partition][a.offset]; !ok {
				missing++
			} else if v != a.value {
				return fmt.Errorf("member read %q at %d@%d, acknowledged %q", v, a.partition, a.offset, a.value)
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d acknowledged records not consumed yet", missing)
		}
		return nil
	})

	// The killed broker comes back, cuts the tail it had appended but no
	// ISR member acknowledged (writes in flight when it died), catches up
	// and rejoins every ISR. Made leader again (preferred election), it
	// serves exactly the acknowledged log.
	brokers[victim-1].Restart()
	td = replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
	var preferred []int32
	for _, p := range td.Partitions {
		if p.Replicas[0] == victim && p.Leader != victim {
			preferred = append(preferred, p.Partition)
		}
	}
	if len(preferred) == 0 {
		t.Fatalf("broker %d is no partition's displaced preferred leader: %+v", victim, td.Partitions)
	}
	for p, err := range rsElect(ctx, t, adm, kadm.ElectPreferredReplica, topic, preferred...) {
		if err != nil {
			t.Fatalf("preferred election of %s[%d] back to broker %d: %v", topic, p, victim, err)
		}
	}
	fzWaitFor(t, 30*time.Second, fmt.Sprintf("broker %d leading %v again", victim, preferred), func() error {
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range preferred {
			if l := tds[topic].Partitions[p].Leader; l != victim {
				return fmt.Errorf("partition %d led by %d", p, l)
			}
		}
		return nil
	})
	replCheckAcked(ctx, t, replAddrs(brokers, -1), topic, parts, got)
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// TestReplicationRollingRestart restarts the three brokers one after the
// other (SIGTERM: controlled shutdown hands leadership to in-sync
// followers first) under acks=all load: nothing acknowledged is lost, and
// writes barely pause.
func TestReplicationRollingRestart(t *testing.T) {
	brokers := startQuorumCluster(t, 3, "--etcd-lease-ttl", "3s")
	ctx := testContext(t, 240*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "rolling")
	const parts = 3
	replCreateTopic(ctx, t, adm, topic, parts, 3, nil)
	replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	load := replStartLoad(ctx, t, replAddrs(brokers, -1), topic, parts)
	load.waitMore(t, 200, 30*time.Second)
	load.resetGap()
	for i, b := range brokers {
		b.Stop()
		if code := b.ExitCode(); code != 0 {
			t.Errorf("broker %d exited with %d after SIGTERM", i+1, code)
		}
		load.waitMore(t, 100, 30*time.Second)
		b.Restart()
		replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
		load.waitMore(t, 100, 30*time.Second)
	}
	got, failures, gap := load.finish()
	t.Logf("rolling restart: %d acknowledged, %d failed attempts, longest gap between acks on one partition %v", len(got), failures, gap.Round(time.Millisecond))
	replCheckAcked(ctx, t, replAddrs(brokers, -1), topic, parts, got)
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// TestReplicationFencing pauses a partition's leader (SIGSTOP) until the
// controller has elected another, then resumes it: the old leader refuses
// writes (its lease may have expired) instead of accepting them next to
// the new leader.
func TestReplicationFencing(t *testing.T) {
	// One etcd, in broker 1, which is never paused: the paused broker is
	// cut off from the store, and the store keeps its quorum.
	brokers := startSharedEtcdCluster(t, 3)
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "fence")
	replCreateTopic(ctx, t, adm, topic, 3, 3, nil)
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	old, part := int32(-1), int32(-1)
	for _, p := range td.Partitions {
		if p.Leader != 1 {
			old, part = p.Leader, p.Partition
			break
		}
	}
	if old < 0 {
		t.Fatalf("every partition led by broker 1: %+v", td.Partitions)
	}
	brokers[old-1].Pause()
	fzWaitFor(t, 30*time.Second, "a new leader while the old one is paused", func() error {
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		if l := tds[topic].Partitions[part].Leader; l == old || l < 0 {
			return fmt.Errorf("leader %d", l)
		}
		return nil
	})
	brokers[old-1].Resume()
	// The first request the old leader handles after waking is refused.
	raw := fzDial(t, brokers[old-1].Addr)
	pr := raw.roundTrip(fzProduceRequest(9, fzProducePart{topic: topic, partition: part, records: fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("stale")})})).(*kmsg.ProduceResponse)
	if code := pr.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Errorf("produce to the resumed old leader: %s, want NOT_LEADER_OR_FOLLOWER", fzErrCode(code))
	}
	// And the cluster carries on: it rejoins as a follower.
	replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// replCheckAckedPartition is replCheckAcked for one partition of a topic.
func replCheckAckedPartition(ctx context.Context, t *testing.T, seeds []string, topic string, part int32, want []acked) {
	t.Helper()
	cons := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}}))
	replCheckConsumed(ctx, t, cons, topic, []int32{part}, want)
}

// replCheckAcked consumes topic from the start and checks that every
// acknowledged record is at its offset with its value.
func replCheckAcked(ctx context.Context, t *testing.T, seeds []string, topic string, parts int32, want []acked) {
	t.Helper()
	cons := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var ps []int32
	for p := range parts {
		ps = append(ps, p)
	}
	replCheckConsumed(ctx, t, cons, topic, ps, want)
}

func replCheckConsumed(ctx context.Context, t *testing.T, cons *kgo.Client, topic string, parts []int32, want []acked) {
	t.Helper()
	ends := map[int32]int64{}
	for _, a := range want {
		ends[a.partition] = max(ends[a.partition], a.offset+1)
	}
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
		for _, p := range parts {
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
	brokers := startSharedEtcdCluster(t, 3)
	first := brokers[0]
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, first.Addr)
	topic := fzTopic(t, "minisr")
	two := "2"
	replCreateTopic(ctx, t, adm, topic, 3, 3, map[string]*string{"min.insync.replicas": &two})
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	// Use the partition broker 1 leads: brokers 2 and 3 die, and broker 1
	// holds the etcd the others use.
	part := replPartitionLedBy(t, td, 1)
	all := fzClient(t, first.Addr, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(0), kgo.RetryTimeout(time.Second))
	one := fzClient(t, first.Addr, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
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

// TestReplicationKillAllReplicas kills every replica of a partition, one
// after the other, leader first, with acks=all writes in between, then
// brings them back in the order they died: the replicas that died first
// are out of the ISR and must not lead (the partition stays offline, as
// unclean.leader.election.enable is off), the last one to die leads when
// it returns, and every acknowledged record is there. Broker 1 holds the
// etcd the others use and no replica of the partition.
func TestReplicationKillAllReplicas(t *testing.T) {
	brokers := startSharedEtcdCluster(t, 4)
	first := brokers[0]
	ctx := testContext(t, 240*time.Second)
	adm := fzAdmin(t, first.Addr)
	topic := fzTopic(t, "killall")
	replCreateTopic(ctx, t, adm, topic, 8, 3, nil)
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	part, replicas := replPartitionAvoiding(t, td, 1)
	prod := fzClient(t, first.Addr, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var acks []acked
	produce := func(tag string, n int) {
		t.Helper()
		for i := range n {
			r := &kgo.Record{Topic: topic, Partition: part, Value: fmt.Appendf(nil, "%s-%d", tag, i)}
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", r.Value, err)
			}
			acks = append(acks, acked{part, r.Offset, string(r.Value)})
		}
	}
	state := func() kadm.PartitionDetail { return replPartition(ctx, t, adm, topic, part) }
	produce("all-in-sync", 50)
	var order []int32
	for round := range 3 {
		leader := state().Leader
		order = append(order, leader)
		brokers[leader-1].Kill()
		if round < 2 {
			fzWaitFor(t, 30*time.Second, "a new leader after killing "+strconv.Itoa(int(leader)), func() error {
				if p := state(); p.Leader < 0 || p.Leader == leader || slices.Contains(p.ISR, leader) {
					return fmt.Errorf("leader %d, isr %v", p.Leader, p.ISR)
				}
				return nil
			})
			produce(fmt.Sprintf("after-kill-%d", round+1), 50)
		}
	}
	fzWaitFor(t, 30*time.Second, "the partition offline", func() error {
		if p := state(); p.Leader >= 0 {
			return fmt.Errorf("leader %d", p.Leader)
		}
		return nil
	})
	t.Logf("replicas %v killed in order %v", replicas, order)
	// The first two to die come back: they are out of the ISR, so the
	// partition stays offline (they lack the last writes).
	brokers[order[0]-1].Restart()
	brokers[order[1]-1].Restart()
	time.Sleep(3 * time.Second) // several controller passes; the assertion is that nothing changes
	if p := state(); p.Leader >= 0 {
		t.Fatalf("an out-of-sync replica became leader: %+v (killed in order %v)", p, order)
	}
	// The last one to die returns and leads; the others catch up.
	brokers[order[2]-1].Restart()
	fzWaitFor(t, 30*time.Second, "the last in-sync replica leading again", func() error {
		if p := state(); p.Leader != order[2] {
			return fmt.Errorf("leader %d", p.Leader)
		}
		return nil
	})
	var alive []string
	for _, b := range brokers {
		alive = append(alive, b.Addr)
	}
	replCheckAckedPartition(ctx, t, alive, topic, part, acks)
	fzWaitFor(t, 60*time.Second, "all three replicas back in the isr", func() error {
		if p := state(); len(p.ISR) != 3 {
			return fmt.Errorf("isr %v", p.ISR)
		}
		return nil
	})
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// TestReplicationGroupCoordinatorFailover: __consumer_offsets is
// replicated, so when a group's coordinator is killed its group carries on
// at the new leader of its partition, with its committed offsets: the
// member keeps consuming, nothing committed is delivered again and
// nothing is skipped.
func TestReplicationGroupCoordinatorFailover(t *testing.T) {
	brokers := startQuorumCluster(t, 3, "--etcd-lease-ttl", "2s", "--config", "group.initial.rebalance.delay.ms=0")
	ctx := testContext(t, 180*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic, group := fzTopic(t, "coordfail"), fzTopic(t, "coordfail-g")
	const parts = 3
	replCreateTopic(ctx, t, adm, topic, parts, 3, nil)
	replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	prod := fzClient(t, brokers[0].Addr, kgo.SeedBrokers(replAddrs(brokers, -1)...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	exp := grpNewExpected(topic, parts)
	l := &grpLog{}
	exp.produce(ctx, t, prod, "a", 30)
	// Seeded with every broker, so it finds the cluster whichever dies.
	grpStartMember(t, brokers[0].Addr, "m", group, []string{topic}, l, kgo.SeedBrokers(replAddrs(brokers, -1)...))
	grpWaitConsumed(t, l, exp, 30*time.Second)
	grpWaitCommitted(t, 20*time.Second, adm, group, topic, exp.ends())
	coords := adm.FindGroupCoordinators(ctx, group)
	coord := coords[group].NodeID
	if err := coords[group].Err; err != nil || coord <= 0 {
		t.Fatalf("coordinator of %s: %d %v", group, coord, err)
	}
	offsetsBefore := grpCommitted(ctx, t, adm, group, topic)
	brokers[coord-1].Kill()
	t.Logf("killed broker %d, the coordinator of %s", coord, group)
	survivor := fzAdmin(t, replAddrs(brokers, coord)[0])
	fzWaitFor(t, 30*time.Second, "a new coordinator with the committed offsets", func() error {
		cs := survivor.FindGroupCoordinators(ctx, group)
		if c := cs[group]; c.Err != nil || c.NodeID == coord {
			return fmt.Errorf("coordinator %d (%v)", c.NodeID, c.Err)
		}
		got := grpCommitted(ctx, t, survivor, group, topic)
		if !grpSameOffsets(got, offsetsBefore) {
			return fmt.Errorf("committed %v, want %v", got, offsetsBefore)
		}
		return nil
	})
	exp.produce(ctx, t, prod, "b", 30)
	grpWaitConsumed(t, l, exp, 60*time.Second)
	grpWaitCommitted(t, 30*time.Second, survivor, group, topic, exp.ends())
	dups := grpCheckDelivery(t, l, exp)
	t.Logf("%d records delivered again around the failover (consumed, commit not yet acknowledged)", dups)
	for i, b := range brokers {
		if int32(i+1) != coord {
			fzCheckLogs(t, b)
		}
	}
}

// TestReplicationUncleanElection: with unclean.leader.election.enable set
// on the topic, a partition whose in-sync replicas are all dead is led by
// an out-of-sync replica that comes back, accepting the loss of what only
// the ISR held; without it (the default) it stays offline.
func TestReplicationUncleanElection(t *testing.T) {
	brokers := startSharedEtcdCluster(t, 3)
	first := brokers[0]
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, first.Addr)
	topic := fzTopic(t, "unclean")
	replCreateTopic(ctx, t, adm, topic, 3, 2, nil)
	td := replWaitISR(ctx, t, adm, topic, 2, 30*time.Second)
	part, replicas := replPartitionAvoiding(t, td, 1)
	state := func() kadm.PartitionDetail { return replPartition(ctx, t, adm, topic, part) }
	leader := state().Leader
	follower := replicas[0]
	if follower == leader {
		follower = replicas[1]
	}
	brokers[follower-1].Kill() // out of the ISR first
	fzWaitFor(t, 30*time.Second, "the follower out of the isr", func() error {
		if isr := state().ISR; len(isr) != 1 {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})
	brokers[leader-1].Kill()
	brokers[follower-1].Restart()
	time.Sleep(2 * time.Second) // controller passes; the assertion is that nothing is elected
	if p := state(); p.Leader >= 0 {
		t.Fatalf("out-of-sync replica %d elected with unclean election off: %+v", follower, p)
	}
	on := "true"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "unclean.leader.election.enable", Value: &on}}, topic); err != nil {
		t.Fatal(err)
	}
	fzWaitFor(t, 30*time.Second, "the out-of-sync replica elected", func() error {
		if p := state(); p.Leader != follower || !slices.Equal(p.ISR, []int32{follower}) {
			return fmt.Errorf("leader %d isr %v", p.Leader, p.ISR)
		}
		return nil
	})
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// TestReplicationPeerDeathDetected: a killed broker's peers notice at once
// that its process is gone (their connections to it close and its port
// refuses new ones) and end its registration, so its partitions fail over
// long before its lease would expire; a paused broker, which still
// completes TCP handshakes, keeps its registration until its lease runs
// out. The lease here is 30 s so the two cannot be confused.
func TestReplicationPeerDeathDetected(t *testing.T) {
	brokers := startQuorumCluster(t, 3, "--etcd-lease-ttl", "30s")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "peer-death")
	replCreateTopic(ctx, t, adm, topic, 3, 3, nil)
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	// Metadata straight from one broker (kgo may answer from its cache).
	metadataFrom := func(b *brokerProc) *kmsg.MetadataResponse {
		raw := fzDial(t, b.Addr)
		defer raw.c.Close()
		return fzMetadata(raw, topic)
	}
	registered := func(resp *kmsg.MetadataResponse, id int32) bool {
		return slices.ContainsFunc(resp.Brokers, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == id })
	}
	other := func(id int32) *brokerProc { return brokers[id%3] } // a broker other than id

	// Paused: still registered well after the pause (and the cluster keeps
	// its etcd quorum with the other two members).
	paused := td.Partitions[1].Leader
	brokers[paused-1].Pause()
	time.Sleep(4 * time.Second) // time passing is what is tested: a paused broker keeps its lease
	if !registered(metadataFrom(other(paused)), paused) {
		t.Errorf("broker %d paused for 4 s of a 30 s lease is gone from Metadata; a paused broker must keep its lease", paused)
	}
	brokers[paused-1].Resume()

	// Killed: gone, and its partitions led elsewhere, within a fraction of
	// the lease.
	td = replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	victim := td.Partitions[0].Leader
	brokers[victim-1].Kill()
	fzWaitFor(t, 12*time.Second, fmt.Sprintf("killed broker %d out of Metadata and its partitions led elsewhere (its 30 s lease has not expired)", victim), func() error {
		resp := metadataFrom(other(victim))
		if registered(resp, victim) {
			return fmt.Errorf("broker %d still registered", victim)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.Leader == victim || p.Leader < 0 {
				return fmt.Errorf("partition %d leader %d", p.Partition, p.Leader)
			}
		}
		return nil
	})
	for i, b := range brokers {
		if int32(i+1) != victim {
			fzCheckLogs(t, b)
		}
	}
}
