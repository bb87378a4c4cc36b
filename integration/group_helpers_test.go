package integration

// Helpers for the consumer-group tests (group_*_test.go). Every name starts
// with grp so nothing collides with the per-client helpers of the other
// files (fz*, sarama*, kafkago*, kcat*).
//
// The central piece is grpLog, one ordered log per test of everything the
// group members did that matters for delivery guarantees: each record a
// member consumed, and each offset commit the broker acknowledged. Members
// consume with kgo.BlockRebalanceOnPoll and commit synchronously what they
// polled before they allow the next rebalance, so causality puts an old
// owner's last consumption and its acknowledged commit before the new
// owner's first consumption of a partition; grpCheckDelivery then checks the
// per-partition sequence against Kafka's guarantees.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
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

// grpBrokerFlags are the group configs every group test runs with: no
// initial rebalance delay (Kafka's 3s default would slow every test), and a
// low minimum session timeout so tests that wait for a session to expire
// stay short.
var grpBrokerFlags = []string{
	"--config", "group.initial.rebalance.delay.ms=0",
	"--config", "group.min.session.timeout.ms=1000",
}

// grpStartBroker starts gregor with grpBrokerFlags plus extra flags.
func grpStartBroker(t testing.TB, extra ...string) *brokerProc {
	t.Helper()
	return startBroker(t, append(slices.Clone(grpBrokerFlags), extra...)...)
}

// grpName is a topic or group name unique to the running (sub)test.
func grpName(t testing.TB, prefix string) string {
	t.Helper()
	return fzTopic(t, prefix)
}

// grpProducer is a kgo producer that writes each record to the partition set
// on it.
func grpProducer(t testing.TB, addr string) *kgo.Client {
	t.Helper()
	return fzClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

// grpExpected is what a test produced: the value at every offset of every
// partition of one topic.
type grpExpected struct {
	topic string
	parts int32
	mu    sync.Mutex
	vals  map[int32][]string // partition -> offset -> value
}

func grpNewExpected(topic string, parts int32) *grpExpected {
	return &grpExpected{topic: topic, parts: parts, vals: make(map[int32][]string)}
}

// produce writes n records spread round-robin over the topic's partitions,
// with values "<tag>-<i>", and records their offsets.
func (e *grpExpected) produce(ctx context.Context, t testing.TB, cl *kgo.Client, tag string, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{
			Topic:     e.topic,
			Partition: int32(i) % e.parts,
			Key:       []byte(fmt.Sprintf("k%d", i)),
			Value:     []byte(fmt.Sprintf("%s-%d", tag, i)),
		}
	}
	fzProduceSync(ctx, t, cl, recs...)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range recs {
		vs := e.vals[r.Partition]
		if int64(len(vs)) != r.Offset {
			t.Fatalf("produce %s: record %q got %s[%d]@%d, want offset %d (offsets must be dense)", tag, r.Value, r.Topic, r.Partition, r.Offset, len(vs))
		}
		e.vals[r.Partition] = append(vs, string(r.Value))
	}
}

// ends returns the number of records produced to each partition.
func (e *grpExpected) ends() map[int32]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[int32]int64, e.parts)
	for p := int32(0); p < e.parts; p++ {
		out[p] = int64(len(e.vals[p]))
	}
	return out
}

func (e *grpExpected) value(p int32, o int64) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs := e.vals[p]
	if o < 0 || o >= int64(len(vs)) {
		return "", false
	}
	return vs[o], true
}

func (e *grpExpected) total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, vs := range e.vals {
		n += len(vs)
	}
	return n
}

// grpEvent is a record consumed or a commit acknowledged.
type grpEvent struct {
	at        time.Time
	member    string
	commit    bool // an acknowledged commit of offset (the next offset to consume)
	topic     string
	partition int32
	offset    int64
	value     string
}

// grpLog is the ordered log of one test's group events.
type grpLog struct {
	mu     sync.Mutex
	events []grpEvent
}

func (l *grpLog) add(evs ...grpEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for i := range evs {
		evs[i].at = now
	}
	l.events = append(l.events, evs...)
}

func (l *grpLog) snapshot() []grpEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// distinct returns how many distinct (partition, offset) records of topic
// were consumed.
func (l *grpLog) distinct(topic string) int {
	seen := make(map[[2]int64]bool)
	for _, e := range l.snapshot() {
		if !e.commit && e.topic == topic {
			seen[[2]int64{int64(e.partition), e.offset}] = true
		}
	}
	return len(seen)
}

// consumedBy returns the records of topic that member consumed at or after
// index from in the log, by partition.
func (l *grpLog) consumedBy(member, topic string, from int) map[int32][]int64 {
	out := make(map[int32][]int64)
	evs := l.snapshot()
	for _, e := range evs[min(from, len(evs)):] {
		if !e.commit && e.member == member && e.topic == topic {
			out[e.partition] = append(out[e.partition], e.offset)
		}
	}
	return out
}

// len returns the number of events so far.
func (l *grpLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// grpWaitConsumed waits until every record produced so far has been
// consumed at least once.
func grpWaitConsumed(t testing.TB, l *grpLog, exp *grpExpected, timeout time.Duration) {
	t.Helper()
	fzWaitFor(t, timeout, "all produced records consumed", func() error {
		if got, want := l.distinct(exp.topic), exp.total(); got < want {
			return fmt.Errorf("%d of %d distinct records consumed", got, want)
		}
		return nil
	})
}

// grpCheckDelivery checks Kafka's delivery guarantees for one topic over
// the whole log, per partition, in log order:
//
//   - every consumed record has the value produced at its offset;
//   - records are consumed in offset order with no gap: the first time a
//     record is consumed, it is the lowest offset not consumed before (so a
//     member that takes a partition over starts exactly at the committed
//     offset, or earlier if the commit did not cover what was consumed);
//   - a record consumed again (a duplicate) must not have been covered by an
//     acknowledged commit at the time it was consumed again: its offset is
//     >= the partition's last acknowledged committed offset. Duplicates are
//     therefore allowed only for records that were consumed but whose commit
//     was not (yet) acknowledged;
//   - at the end every produced record was consumed (nothing skipped).
//
// It returns the number of duplicates.
func grpCheckDelivery(t testing.TB, l *grpLog, exp *grpExpected) int {
	t.Helper()
	next := make(map[int32]int64)
	acked := make(map[int32]int64)
	ackedBy := make(map[int32]string)
	dups := 0
	for _, e := range l.snapshot() {
		if e.topic != exp.topic {
			continue
		}
		if e.commit {
			acked[e.partition], ackedBy[e.partition] = e.offset, e.member
			continue
		}
		want, ok := exp.value(e.partition, e.offset)
		switch {
		case !ok:
			t.Errorf("%s consumed %s[%d]@%d, which was never produced", e.member, e.topic, e.partition, e.offset)
			continue
		case want != e.value:
			t.Errorf("%s consumed %s[%d]@%d = %q, produced %q", e.member, e.topic, e.partition, e.offset, e.value, want)
		}
		switch n := next[e.partition]; {
		case e.offset == n:
			next[e.partition]++
		case e.offset > n:
			t.Errorf("%s consumed %s[%d]@%d but offsets %d..%d were never consumed before it (skipped records)", e.member, e.topic, e.partition, e.offset, n, e.offset-1)
			next[e.partition] = e.offset + 1
		default:
			dups++
			if e.offset < acked[e.partition] {
				t.Errorf("%s consumed %s[%d]@%d again although %s's commit of offset %d had been acknowledged (a committed record was redelivered)",
					e.member, e.topic, e.partition, e.offset, ackedBy[e.partition], acked[e.partition])
			}
		}
	}
	for p, end := range exp.ends() {
		if next[p] != end {
			t.Errorf("%s[%d]: consumed offsets 0..%d, produced 0..%d: %d records never consumed", exp.topic, p, next[p]-1, end-1, end-next[p])
		}
	}
	return dups
}

// grpMember is one kgo group member: a goroutine polls, logs every record,
// commits what it polled synchronously (logging the acknowledgement), and
// only then allows a rebalance (kgo.BlockRebalanceOnPoll). Partition
// callbacks keep its current assignment.
type grpMember struct {
	t    testing.TB
	name string
	cl   *kgo.Client
	log  *grpLog

	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	assigned    map[string]map[int32]bool
	everRevoked map[string]map[int32]bool
	callbacks   int // assign, revoke and lost callbacks with a non-empty set
	commitErrs  []error
	fetchErrs   []error
	closed      bool
}

// grpStartMember creates a group member named name consuming topics in
// group, with extra kgo options (balancers, instance id, timeouts...).
func grpStartMember(t testing.TB, addr, name, group string, topics []string, l *grpLog, extra ...kgo.Opt) *grpMember {
	t.Helper()
	return grpNewMember(t, addr, name, group, topics, l, true, extra...)
}

// grpStartIdle creates a group member that never polls: it joins, gets an
// assignment and heartbeats, but consumes and commits nothing unless the
// test does so through m.cl.
func grpStartIdle(t testing.TB, addr, name, group string, topics []string, extra ...kgo.Opt) *grpMember {
	t.Helper()
	return grpNewMember(t, addr, name, group, topics, &grpLog{}, false, extra...)
}

func grpNewMember(t testing.TB, addr, name, group string, topics []string, l *grpLog, poll bool, extra ...kgo.Opt) *grpMember {
	t.Helper()
	m := &grpMember{
		t: t, name: name, log: l, done: make(chan struct{}),
		assigned:    make(map[string]map[int32]bool),
		everRevoked: make(map[string]map[int32]bool),
	}
	opts := []kgo.Opt{
		kgo.ClientID("gregor-it-group-" + name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for tp, ps := range a {
				if m.assigned[tp] == nil {
					m.assigned[tp] = make(map[int32]bool)
				}
				for _, p := range ps {
					m.assigned[tp][p] = true
				}
				if len(ps) > 0 {
					m.callbacks++
				}
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.drop(r) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.drop(r) }),
	}
	if poll {
		opts = append(opts, kgo.BlockRebalanceOnPoll())
	}
	if os.Getenv("GREGOR_GROUP_DEBUG") != "" {
		// Debugging aid: the member's kgo log on stderr.
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return name + ": " })))
	}
	m.cl = fzClient(t, addr, append(opts, extra...)...)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if poll {
		go m.loop(ctx)
	} else {
		close(m.done)
	}
	t.Cleanup(m.Close)
	return m
}

func (m *grpMember) drop(r map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tp, ps := range r {
		if m.everRevoked[tp] == nil {
			m.everRevoked[tp] = make(map[int32]bool)
		}
		for _, p := range ps {
			delete(m.assigned[tp], p)
			m.everRevoked[tp][p] = true
		}
		if len(ps) > 0 {
			m.callbacks++
		}
	}
}

func (m *grpMember) loop(ctx context.Context) {
	defer close(m.done)
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fs := m.cl.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			m.cl.AllowRebalance()
			return
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			m.mu.Lock()
			m.fetchErrs = append(m.fetchErrs, fmt.Errorf("%s[%d]: %w", fe.Topic, fe.Partition, fe.Err))
			m.mu.Unlock()
		}
		recs := fs.Records()
		if len(recs) > 0 {
			evs := make([]grpEvent, 0, len(recs))
			for _, r := range recs {
				evs = append(evs, grpEvent{member: m.name, topic: r.Topic, partition: r.Partition, offset: r.Offset, value: string(r.Value)})
			}
			m.log.add(evs...)
			cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
			err := m.cl.CommitRecords(cctx, recs...)
			ccancel()
			if err != nil {
				m.mu.Lock()
				m.commitErrs = append(m.commitErrs, err)
				m.mu.Unlock()
			} else {
				next := make(map[string]map[int32]int64)
				for _, r := range recs {
					if next[r.Topic] == nil {
						next[r.Topic] = make(map[int32]int64)
					}
					next[r.Topic][r.Partition] = max(next[r.Topic][r.Partition], r.Offset+1)
				}
				var acks []grpEvent
				for tp, ps := range next {
					for p, o := range ps {
						acks = append(acks, grpEvent{member: m.name, commit: true, topic: tp, partition: p, offset: o})
					}
				}
				m.log.add(acks...)
			}
		}
		m.cl.AllowRebalance()
	}
}

// Stop ends the poll loop (after its last commit) without closing the client.
func (m *grpMember) Stop() {
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.t.Errorf("member %s: poll loop did not stop within 30s", m.name)
	}
}

// Close stops the poll loop and closes the client (kgo leaves the group
// unless the member is static).
func (m *grpMember) Close() {
	m.mu.Lock()
	closed := m.closed
	m.closed = true
	m.mu.Unlock()
	if closed {
		return
	}
	m.Stop()
	m.cl.Close()
}

// Assigned returns the member's current partitions of topic, sorted.
func (m *grpMember) Assigned(topic string) []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.assigned[topic] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// EverRevoked returns the partitions of topic ever revoked from (or lost by)
// the member.
func (m *grpMember) EverRevoked(topic string) map[int32]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[int32]bool)
	for p := range m.everRevoked[topic] {
		out[p] = true
	}
	return out
}

// Callbacks returns how many non-empty assign/revoke/lost callbacks ran.
func (m *grpMember) Callbacks() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.callbacks
}

// Errs returns the commit and fetch errors the member saw.
func (m *grpMember) Errs() (commit, fetch []error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.commitErrs), slices.Clone(m.fetchErrs)
}

// grpReportErrs fails the test if any member saw a commit or fetch error.
// Commit errors are not delivery violations by themselves (grpCheckDelivery
// allows the duplicates they cause), but with BlockRebalanceOnPoll and one
// broker Kafka never fails these commits, so they are reported.
func grpReportErrs(t testing.TB, ms ...*grpMember) {
	t.Helper()
	for _, m := range ms {
		ce, fe := m.Errs()
		for _, err := range ce {
			t.Errorf("member %s: commit failed: %v", m.name, err)
		}
		for _, err := range fe {
			t.Errorf("member %s: fetch error: %v", m.name, err)
		}
	}
}

// grpWaitBalanced waits until the members together own every partition of
// topic exactly once, each member owning at least one partition (when
// there are no more members than partitions).
func grpWaitBalanced(t testing.TB, timeout time.Duration, topic string, parts int32, ms ...*grpMember) {
	t.Helper()
	fzWaitFor(t, timeout, fmt.Sprintf("%d members own %s's %d partitions", len(ms), topic, parts), func() error {
		return grpBalanced(topic, parts, ms...)
	})
}

func grpBalanced(topic string, parts int32, ms ...*grpMember) error {
	owner := make(map[int32]string)
	var desc []string
	for _, m := range ms {
		a := m.Assigned(topic)
		desc = append(desc, fmt.Sprintf("%s=%v", m.name, a))
		if len(a) == 0 && int(parts) >= len(ms) {
			return fmt.Errorf("%s owns nothing (%s)", m.name, strings.Join(desc, " "))
		}
		for _, p := range a {
			if o, dup := owner[p]; dup {
				return fmt.Errorf("partition %d owned by %s and %s", p, o, m.name)
			}
			owner[p] = m.name
		}
	}
	if len(owner) != int(parts) {
		return fmt.Errorf("%d of %d partitions owned (%s)", len(owner), parts, strings.Join(desc, " "))
	}
	return nil
}

// grpDescribe describes one classic group and fails the test on a request
// error (the group's own error is left in the result).
func grpDescribe(ctx context.Context, t testing.TB, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups(%s): %v", group, err)
	}
	d, ok := ds[group]
	if !ok {
		t.Fatalf("DescribeGroups(%s): group missing from the response: %v", group, ds.Names())
	}
	return d
}

// grpCommitted returns the group's committed offsets for topic (partitions
// with a commit only).
func grpCommitted(ctx context.Context, t testing.TB, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	resps, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets(%s): %v", group, err)
	}
	out := make(map[int32]int64)
	for _, ps := range resps {
		for _, r := range ps {
			if r.Err != nil {
				t.Fatalf("FetchOffsets(%s): %s[%d]: %v", group, r.Topic, r.Partition, r.Err)
			}
			if r.Topic == topic && r.At >= 0 {
				out[r.Partition] = r.At
			}
		}
	}
	return out
}

// grpWaitCommitted waits until the group's committed offsets for topic
// equal want.
func grpWaitCommitted(t testing.TB, timeout time.Duration, adm *kadm.Client, group, topic string, want map[int32]int64) {
	t.Helper()
	fzWaitFor(t, timeout, fmt.Sprintf("group %s committed %v on %s", group, want, topic), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resps, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return err
		}
		got := make(map[int32]int64)
		for _, ps := range resps {
			for _, r := range ps {
				if r.Err != nil {
					return fmt.Errorf("%s[%d]: %w", r.Topic, r.Partition, r.Err)
				}
				if r.Topic == topic && r.At >= 0 {
					got[r.Partition] = r.At
				}
			}
		}
		if !grpSameOffsets(got, want) {
			return fmt.Errorf("committed %v", got)
		}
		return nil
	})
}

func grpSameOffsets(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for p, o := range a {
		if bo, ok := b[p]; !ok || bo != o {
			return false
		}
	}
	return true
}

// grpAssignedTopics decodes a classic consumer member's assignment.
func grpAssignedTopics(m kadm.DescribedGroupMember) map[string][]int32 {
	out := make(map[string][]int32)
	if c, ok := m.Assigned.AsConsumer(); ok {
		for _, tp := range c.Topics {
			ps := slices.Clone(tp.Partitions)
			slices.Sort(ps)
			out[tp.Topic] = ps
		}
	}
	return out
}

// grpKeyCounter is a kgo hook counting the requests a client wrote, by key.
type grpKeyCounter struct {
	mu sync.Mutex
	n  map[int16]int
}

func (c *grpKeyCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[int16]int)
	}
	c.n[key]++
}

func (c *grpKeyCounter) count(key kmsg.Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[int16(key)]
}

// ---- raw classic-protocol members (exact request versions) ----

// grpConsumerMetadata is the "consumer" protocol metadata of a member
// subscribed to topics.
func grpConsumerMetadata(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Version = 0
	m.Topics = topics
	return m.AppendTo(nil)
}

// grpConsumerAssignment is a "consumer" protocol assignment.
func grpConsumerAssignment(topic string, parts ...int32) []byte {
	a := kmsg.NewConsumerMemberAssignment()
	a.Version = 0
	if len(parts) > 0 {
		ta := kmsg.NewConsumerMemberAssignmentTopic()
		ta.Topic = topic
		ta.Partitions = parts
		a.Topics = append(a.Topics, ta)
	}
	return a.AppendTo(nil)
}

// grpJoinRequest builds a JoinGroup with one protocol ("range" unless
// protocols are given) subscribed to topic.
func grpJoinRequest(version int16, group, member string, sessionMs, rebalanceMs int32, topic string, protocols ...string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.SetVersion(version)
	req.Group = group
	req.MemberID = member
	req.SessionTimeoutMillis = sessionMs
	req.RebalanceTimeoutMillis = rebalanceMs
	req.ProtocolType = "consumer"
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	for _, name := range protocols {
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = name
		p.Metadata = grpConsumerMetadata(topic)
		req.Protocols = append(req.Protocols, p)
	}
	return req
}

// grpJoin sends a JoinGroup on raw and returns its response.
func grpJoin(t testing.TB, raw *fzRaw, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	t.Helper()
	return raw.roundTrip(req).(*kmsg.JoinGroupResponse)
}

// grpJoinNew joins as a new member with KIP-394's two steps (v4+): the first
// join must answer MEMBER_ID_REQUIRED with a member id, the second joins
// with it. It returns the second response.
func grpJoinNew(t testing.TB, raw *fzRaw, version int16, group string, sessionMs, rebalanceMs int32, topic string) *kmsg.JoinGroupResponse {
	t.Helper()
	first := grpJoin(t, raw, grpJoinRequest(version, group, "", sessionMs, rebalanceMs, topic))
	if first.ErrorCode != kerr.MemberIDRequired.Code || first.MemberID == "" {
		t.Fatalf("JoinGroup v%d %s with no member id: error %s, member id %q; want MEMBER_ID_REQUIRED and an id", version, group, fzErrCode(first.ErrorCode), first.MemberID)
	}
	resp := grpJoin(t, raw, grpJoinRequest(version, group, first.MemberID, sessionMs, rebalanceMs, topic))
	if resp.ErrorCode != 0 {
		t.Fatalf("JoinGroup v%d %s as %s: %s", version, group, first.MemberID, fzErrCode(resp.ErrorCode))
	}
	if resp.MemberID != first.MemberID {
		t.Fatalf("JoinGroup v%d %s: joined as %q, want the id handed out, %q", version, group, resp.MemberID, first.MemberID)
	}
	return resp
}

// grpSyncRequest builds a SyncGroup; assignments is member id -> bytes
// (only the leader sends them).
func grpSyncRequest(version int16, group, member string, generation int32, assignments map[string][]byte) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.SetVersion(version)
	req.Group = group
	req.MemberID = member
	req.Generation = generation
	req.ProtocolType = kmsg.StringPtr("consumer")
	req.Protocol = kmsg.StringPtr("range")
	ids := make([]string, 0, len(assignments))
	for id := range assignments {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID = id
		a.MemberAssignment = assignments[id]
		req.GroupAssignment = append(req.GroupAssignment, a)
	}
	return req
}

func grpHeartbeat(t testing.TB, raw *fzRaw, version int16, group, member string, generation int32) int16 {
	t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.SetVersion(version)
	req.Group = group
	req.MemberID = member
	req.Generation = generation
	return raw.roundTrip(req).(*kmsg.HeartbeatResponse).ErrorCode
}

// grpOffsetCommit commits offset on topic[partition] and returns the
// partition's error code.
func grpOffsetCommit(t testing.TB, raw *fzRaw, version int16, group, member string, generation int32, topic string, partition int32, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(version)
	req.Group = group
	req.MemberID = member
	req.Generation = generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition = partition
	rp.Offset = offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := raw.roundTrip(req).(*kmsg.OffsetCommitResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("OffsetCommit v%d %s: response topics %+v, want exactly %s[%d]", version, group, resp.Topics, topic, partition)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// grpOffsetCommitStatic commits as a static member (OffsetCommit v8 with a
// group instance id) and returns the partition's error code.
func grpOffsetCommitStatic(t testing.TB, raw *fzRaw, group, member, instance string, generation int32, topic string, partition int32, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(8)
	req.Group, req.MemberID, req.Generation = group, member, generation
	req.InstanceID = kmsg.StringPtr(instance)
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = partition, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := raw.roundTrip(req).(*kmsg.OffsetCommitResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("OffsetCommit v8 %s: response topics %+v", group, resp.Topics)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// grpBrokerPort is the numeric port of addr.
func grpBrokerPort(t testing.TB, addr string) (string, int32) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("split %s: %v", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("port of %s: %v", addr, err)
	}
	return host, int32(n)
}

// grpWantCode fails the test unless got is want.
func grpWantCode(t testing.TB, what string, got int16, want *kerr.Error) {
	t.Helper()
	wc := int16(0)
	if want != nil {
		wc = want.Code
	}
	if got != wc {
		t.Errorf("%s: error %s, want %s", what, fzErrCode(got), fzErrCode(wc))
	}
}
