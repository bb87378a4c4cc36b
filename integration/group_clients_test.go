package integration

// Consumer groups with the other clients: sarama's ConsumerGroup (an old and
// a modern protocol version), kafka-go's Reader with a GroupID, and kcat's
// balanced consumer (librdkafka).

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

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
)

// ---- sarama ----

// grpSaramaHandler logs every message it is given and marks it
// (MarkMessage; sarama's autocommit commits what is marked).
type grpSaramaHandler struct {
	name string
	log  *grpLog

	mu       sync.Mutex
	claims   map[string][]int32
	sessions int
}

func (h *grpSaramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = s.Claims()
	h.sessions++
	return nil
}

func (h *grpSaramaHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = nil
	return nil
}

func (h *grpSaramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			h.log.add(grpEvent{member: h.name, topic: m.Topic, partition: m.Partition, offset: m.Offset, value: string(m.Value)})
			s.MarkMessage(m, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

func (h *grpSaramaHandler) owned(topic string) []int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	ps := slices.Clone(h.claims[topic])
	slices.Sort(ps)
	return ps
}

// grpSaramaMember runs a sarama ConsumerGroup's Consume loop.
type grpSaramaMember struct {
	h      *grpSaramaHandler
	cg     sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	errs []error
	once sync.Once
}

func grpStartSarama(t *testing.T, addr string, cfg *sarama.Config, name, group, topic string, l *grpLog) *grpSaramaMember {
	t.Helper()
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatalf("sarama.NewConsumerGroup(%s, version %s): %v", group, cfg.Version, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &grpSaramaMember{h: &grpSaramaHandler{name: name, log: l}, cg: cg, cancel: cancel, done: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			m.mu.Lock()
			m.errs = append(m.errs, err)
			m.mu.Unlock()
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m.h); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				m.mu.Lock()
				m.errs = append(m.errs, err)
				m.mu.Unlock()
				time.Sleep(100 * time.Millisecond) // pause before consuming again
			}
		}
	}()
	t.Cleanup(m.Close)
	return m
}

// Close ends the session (sarama commits marked offsets) and leaves.
func (m *grpSaramaMember) Close() {
	m.once.Do(func() {
		m.cancel()
		select {
		case <-m.done:
		case <-time.After(30 * time.Second):
			m.mu.Lock()
			m.errs = append(m.errs, errors.New("Consume did not return within 30s of its context ending"))
			m.mu.Unlock()
		}
		m.cg.Close()
	})
}

func (m *grpSaramaMember) Errs() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.errs)
}

// grpWaitSaramaBalanced waits until the members' claims cover every
// partition exactly once, each member holding one at least.
func grpWaitSaramaBalanced(t *testing.T, timeout time.Duration, topic string, parts int32, ms ...*grpSaramaMember) {
	t.Helper()
	fzWaitFor(t, timeout, fmt.Sprintf("%d sarama members share %s's %d partitions", len(ms), topic, parts), func() error {
		owner := map[int32]string{}
		var desc []string
		for _, m := range ms {
			ps := m.h.owned(topic)
			desc = append(desc, fmt.Sprintf("%s=%v", m.h.name, ps))
			if len(ps) == 0 {
				return fmt.Errorf("%s has no claim (%s)", m.h.name, strings.Join(desc, " "))
			}
			for _, p := range ps {
				if o, dup := owner[p]; dup {
					return fmt.Errorf("partition %d claimed by %s and %s", p, o, m.h.name)
				}
				owner[p] = m.h.name
			}
		}
		if len(owner) != int(parts) {
			return fmt.Errorf("%d of %d partitions claimed (%s)", len(owner), parts, strings.Join(desc, " "))
		}
		return nil
	})
}

// grpObserveCommits adds the group's committed offsets, as OffsetFetch
// shows them now, to the log as acknowledged commits, so grpCheckDelivery
// flags any later redelivery of a committed record.
func grpObserveCommits(t testing.TB, l *grpLog, committed map[int32]int64, topic string) {
	t.Helper()
	for p, o := range committed {
		l.add(grpEvent{member: "committed", commit: true, topic: topic, partition: p, offset: o})
	}
}

// TestGroupSarama: two sarama ConsumerGroup members (range strategy,
// MarkMessage and autocommit) share a 4-partition topic and consume every
// record; their commits reach the end offsets. One member restarts (Close,
// which commits and leaves, then a new ConsumerGroup in the same group):
// records committed before the restart are never delivered again, every
// record produced meanwhile is delivered, the restarted member consumes the
// new records of the partitions it claims, and the commits reach the new
// end offsets. The test waits for the commits (sarama commits on a timer)
// before each membership change, so no record may be delivered twice. Run
// with V1_0_0_0 (JoinGroup v2, SyncGroup v1, Heartbeat v1, LeaveGroup v1,
// OffsetCommit v3, OffsetFetch v3) and V2_8_0_0 (JoinGroup v7 with the
// KIP-394 member-id handshake, SyncGroup v5, Heartbeat v4, LeaveGroup v4,
// OffsetCommit v8, OffsetFetch v7: flexible versions).
func TestGroupSarama(t *testing.T) {
	p := grpStartBroker(t)
	for _, v := range []sarama.KafkaVersion{sarama.V1_0_0_0, sarama.V2_8_0_0} {
		t.Run(v.String(), func(t *testing.T) {
			ctx := testContext(t, 120*time.Second)
			adm := fzAdmin(t, p.Addr)
			topic, group := grpName(t, "grp-sarama"), grpName(t, "grp-sarama-g")
			const parts = 4
			fzCreateTopic(ctx, t, adm, topic, parts, nil)
			prod := grpProducer(t, p.Addr)
			exp := grpNewExpected(topic, parts)
			l := &grpLog{}
			cfg := saramaConfig(v)
			cfg.ClientID = "gregor-it-sarama-group"
			cfg.Consumer.Offsets.AutoCommit.Enable = true
			cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
			cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
			cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
			cfg.Consumer.Group.Session.Timeout = 10 * time.Second
			cfg.Consumer.Group.Rebalance.Timeout = 20 * time.Second

			exp.produce(ctx, t, prod, "a", 40)
			s1 := grpStartSarama(t, p.Addr, cfg, "s1", group, topic, l)
			s2 := grpStartSarama(t, p.Addr, cfg, "s2", group, topic, l)
			grpWaitSaramaBalanced(t, 30*time.Second, topic, parts, s1, s2)
			grpWaitConsumed(t, l, exp, 30*time.Second)
			grpWaitCommitted(t, 15*time.Second, adm, group, topic, exp.ends())
			grpObserveCommits(t, l, exp.ends(), topic)
			d := grpDescribe(ctx, t, adm, group)
			if d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != "range" || len(d.Members) != 2 {
				t.Errorf("DescribeGroups(%s): state %q, protocol type %q, protocol %q, %d members; want Stable consumer range with 2", group, d.State, d.ProtocolType, d.Protocol, len(d.Members))
			}

			// s2 restarts. Records produced while it is away go to s1;
			// once their commits are visible the new s2 joins, and the
			// records produced after it got its partitions are its own.
			s2.Close()
			exp.produce(ctx, t, prod, "b", 40)
			grpWaitConsumed(t, l, exp, 30*time.Second)
			grpWaitCommitted(t, 15*time.Second, adm, group, topic, exp.ends())
			grpObserveCommits(t, l, exp.ends(), topic)
			s2b := grpStartSarama(t, p.Addr, cfg, "s2-restarted", group, topic, l)
			grpWaitSaramaBalanced(t, 30*time.Second, topic, parts, s1, s2b)
			mark := l.len()
			exp.produce(ctx, t, prod, "c", 40)
			grpWaitConsumed(t, l, exp, 30*time.Second)
			got := l.consumedBy("s2-restarted", topic, mark)
			var gotParts []int32
			for p := range got {
				gotParts = append(gotParts, p)
			}
			slices.Sort(gotParts)
			if owned := s2b.h.owned(topic); !slices.Equal(gotParts, owned) {
				t.Errorf("the restarted member holds %v but consumed new records of partitions %v", owned, gotParts)
			}
			s1.Close()
			s2b.Close()
			grpWaitCommitted(t, 15*time.Second, adm, group, topic, exp.ends())
			// Every record was committed (and seen committed) before any
			// membership change, so none may be delivered twice.
			if dups := grpCheckDelivery(t, l, exp); dups != 0 {
				t.Errorf("%d records delivered twice", dups)
			}
			for _, m := range []*grpSaramaMember{s1, s2, s2b} {
				for _, err := range m.Errs() {
					t.Errorf("sarama member %s: %v", m.h.name, err)
				}
			}
			fzWaitFor(t, 20*time.Second, "group empty after every member closed", func() error {
				if d := grpDescribe(ctx, t, adm, group); d.State != "Empty" || len(d.Members) != 0 {
					return fmt.Errorf("state %q with %d members", d.State, len(d.Members))
				}
				return nil
			})
		})
	}
	fzCheckLogs(t, p)
}

// ---- kafka-go ----

func grpKafkaGoReader(t *testing.T, addr, group, topic string) *kafka.Reader {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{addr},
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           300 * time.Millisecond,
		CommitInterval:    0, // CommitMessages commits synchronously
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: 500 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
		Dialer:            &kafka.Dialer{ClientID: "gregor-it-kafkago-group", Timeout: 5 * time.Second},
	})
	t.Cleanup(func() { r.Close() })
	return r
}

// grpKafkaGoFetch fetches n messages, logs them, commits them
// synchronously and logs the acknowledged commits.
func grpKafkaGoFetch(ctx context.Context, t *testing.T, r *kafka.Reader, name string, l *grpLog, n int) {
	t.Helper()
	var msgs []kafka.Message
	for len(msgs) < n {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := r.FetchMessage(fctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: FetchMessage after %d of %d: %v", name, len(msgs), n, err)
		}
		l.add(grpEvent{member: name, topic: m.Topic, partition: int32(m.Partition), offset: m.Offset, value: string(m.Value)})
		msgs = append(msgs, m)
	}
	if err := r.CommitMessages(ctx, msgs...); err != nil {
		t.Fatalf("%s: CommitMessages: %v", name, err)
	}
	next := map[int32]int64{}
	for _, m := range msgs {
		next[int32(m.Partition)] = max(next[int32(m.Partition)], m.Offset+1)
	}
	for p, o := range next {
		l.add(grpEvent{member: name, commit: true, topic: msgs[0].Topic, partition: p, offset: o})
	}
}

// TestGroupKafkaGoReader: a kafka-go Reader with a GroupID (JoinGroup v2,
// SyncGroup v0, Heartbeat v0, LeaveGroup v0, OffsetCommit v2, OffsetFetch
// v1) reads 20 of 30 records
// and commits them; a second Reader in the same group, started after the
// first closed, reads exactly the 10 others (nothing committed is read
// again, nothing is skipped) and nothing more; the commits end at the end
// offsets.
func TestGroupKafkaGoReader(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := grpName(t, "grp-kafkago"), grpName(t, "grp-kafkago-g")
	const parts = 3
	fzCreateTopic(ctx, t, adm, topic, parts, nil)
	prod := grpProducer(t, p.Addr)
	exp := grpNewExpected(topic, parts)
	l := &grpLog{}
	exp.produce(ctx, t, prod, "a", 30)

	r1 := grpKafkaGoReader(t, p.Addr, group, topic)
	grpKafkaGoFetch(ctx, t, r1, "r1", l, 20)
	if err := r1.Close(); err != nil {
		t.Errorf("closing the first reader: %v", err)
	}
	want := map[int32]int64{}
	for _, e := range l.snapshot() {
		if e.commit {
			want[e.partition] = e.offset
		}
	}
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, want)

	r2 := grpKafkaGoReader(t, p.Addr, group, topic)
	grpKafkaGoFetch(ctx, t, r2, "r2", l, 10)
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	extra, err := r2.FetchMessage(fctx)
	cancel()
	if err == nil {
		t.Errorf("the second reader got an 31st message: %s[%d]@%d %q", extra.Topic, extra.Partition, extra.Offset, extra.Value)
	}
	if dups := grpCheckDelivery(t, l, exp); dups != 0 {
		t.Errorf("%d records delivered twice", dups)
	}
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())
	if err := r2.Close(); err != nil {
		t.Errorf("closing the second reader: %v", err)
	}
	fzCheckLogs(t, p)
}

// ---- kcat ----

// TestGroupKcat: kcat -G (librdkafka's balanced consumer, JoinGroup v5 with
// the KIP-394 member-id handshake) consumes every record of a 3-partition
// topic; on exit librdkafka commits (auto commit) and leaves, and the
// group's committed offsets equal the end offsets (checked with kadm, as
// kafka-consumer-groups --describe would). A second kcat -G run after more
// records were produced gets exactly the new records.
func TestGroupKcat(t *testing.T) {
	kcatBin(t)
	p := grpStartBroker(t)
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := kcatTopic(t, "grp-kcat"), kcatTopic(t, "grp-kcat-g")
	fzCreateTopic(ctx, t, adm, topic, 3, nil)

	consume := func(n int) map[string]bool {
		t.Helper()
		out, stderr := kcatRun(ctx, t, "", "-b", p.Addr, "-G", group,
			"-X", "auto.offset.reset=earliest",
			"-X", "auto.commit.interval.ms=100",
			"-X", "session.timeout.ms=10000",
			"-X", "heartbeat.interval.ms=500",
			"-q", "-c", strconv.Itoa(n), "-f", "%p:%o:%s\n", topic)
		got := map[string]bool{}
		for _, line := range kcatLines(out) {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				t.Fatalf("kcat -G output line %q is not partition:offset:value\n--- stderr:\n%s", line, stderr)
			}
			if got[parts[2]] {
				t.Errorf("kcat -G delivered %q twice", parts[2])
			}
			got[parts[2]] = true
		}
		if len(got) != n {
			t.Fatalf("kcat -G -c %d printed %d distinct values\n--- stdout:\n%s\n--- stderr:\n%s", n, len(got), out, stderr)
		}
		return got
	}
	valuesOf := func(lines []string) map[string]bool {
		m := map[string]bool{}
		for _, l := range lines {
			m[strings.SplitN(l, ":", 2)[1]] = true
		}
		return m
	}

	first := kcatKeyed(30, "first")
	kcatProduce(ctx, t, p.Addr, topic, first)
	if got, want := consume(30), valuesOf(first); !grpSameSet(got, want) {
		t.Errorf("first kcat -G run: values %v, want %v", grpKeys(got), grpKeys(want))
	}
	ends := fzEndOffsets(ctx, t, adm, topic)
	grpWaitCommitted(t, 15*time.Second, adm, group, topic, ends)
	fzWaitFor(t, 20*time.Second, "group empty after kcat exited", func() error {
		if d := grpDescribe(ctx, t, adm, group); d.State != "Empty" || len(d.Members) != 0 {
			return fmt.Errorf("state %q with %d members", d.State, len(d.Members))
		}
		return nil
	})
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatalf("Lag(%s): %v", group, err)
	}
	sorted := lags[group].Lag.Sorted()
	if len(sorted) != 3 {
		t.Errorf("Lag(%s) after kcat -G: %d partitions, want 3: %+v", group, len(sorted), sorted)
	}
	for _, ml := range sorted {
		if ml.Lag != 0 || ml.Err != nil {
			t.Errorf("after kcat -G consumed everything: %s[%d] lag %d (commit %d, end %d, err %v)", ml.Topic, ml.Partition, ml.Lag, ml.Commit.At, ml.End.Offset, ml.Err)
		}
	}

	second := kcatKeyed(15, "second")
	kcatProduce(ctx, t, p.Addr, topic, second)
	if got, want := consume(15), valuesOf(second); !grpSameSet(got, want) {
		t.Errorf("second kcat -G run (resuming from the commits): values %v, want only the new %v", grpKeys(got), grpKeys(want))
	}
	grpWaitCommitted(t, 15*time.Second, adm, group, topic, fzEndOffsets(ctx, t, adm, topic))
	fzCheckLogs(t, p)
}

func grpSameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func grpKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
