package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

// lockedTopics is a Topics the test may change while the coordinator's
// timers run.
type lockedTopics struct {
	mu sync.Mutex
	m  fakeTopics
}

func (l *lockedTopics) TopicByName(n string) (TopicInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.TopicByName(n)
}

func (l *lockedTopics) TopicByID(id [16]byte) (TopicInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.TopicByID(id)
}

func (l *lockedTopics) TopicNames() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.TopicNames()
}

func (l *lockedTopics) set(t TopicInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[t.Name] = t
}

func newConsumerCoordinator(t *testing.T, logs *memLogs, clk *clock, topics Topics) *Coordinator {
	t.Helper()
	cfg := DefaultConfig()
	cfg.OffsetsTopicPartitions = 5
	cfg.RetentionCheckInterval = 0
	c := New(cfg, logs, topics, protocol.NewCodecs(), zerolog.Nop(), clk.Now)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// consumerSnapshot prints the durable KIP-848 state of a group: what a
// reload must bring back. Called with g.mu held.
func consumerSnapshot(g *group) string {
	ks := &g.k
	var b strings.Builder
	fmt.Fprintf(&b, "kind=%d epoch=%d assignmentEpoch=%d\n", g.kind, ks.epoch, ks.assignmentEpoch)
	for _, name := range sortedKeys(ks.topicsSeen) {
		t := ks.topicsSeen[name]
		fmt.Fprintf(&b, "topic %s id=%x partitions=%d\n", name, t.ID[:1], t.Partitions)
	}
	str := func(s *string) string {
		if s == nil {
			return "<nil>"
		}
		return *s
	}
	parts := func(a assignment) string {
		var out []string
		for p := range a {
			out = append(out, fmt.Sprintf("%x/%d", p.topic[:1], p.partition))
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	for _, id := range sortedKeys(ks.members) {
		m := ks.members[id]
		fmt.Fprintf(&b, "member %s instance=%s rack=%s client=%s/%s subs=%v regex=%q effective=%v assignor=%s timeout=%v\n",
			m.id, str(m.instanceID), str(m.rackID), m.clientID, m.clientHost, m.subscribed, m.regexSrc, m.effective, m.assignor, m.rebalanceTimeout)
		fmt.Fprintf(&b, "  epoch=%d previous=%d leftStatic=%v current=[%s] revoking=[%s] target=[%s] revokeDeadlineSet=%v\n",
			m.epoch, m.previousEpoch, m.leftStatic, parts(m.current), parts(m.revoking), parts(ks.target[m.id]), !m.revokeDeadline.IsZero())
	}
	for _, inst := range sortedKeys(ks.statics) {
		fmt.Fprintf(&b, "static %s -> %s\n", inst, ks.statics[inst])
	}
	return b.String()
}

// reloadedSnapshot loads a new coordinator from logs and returns the
// snapshot of group in it ("absent" when it is not there).
func reloadedSnapshot(t *testing.T, logs *memLogs, clk *clock, topics Topics, group string) string {
	t.Helper()
	c := newConsumerCoordinator(t, logs, clk, topics)
	defer c.Close()
	c.mu.Lock()
	g := c.groups[group]
	c.mu.Unlock()
	if g == nil {
		return "absent"
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return consumerSnapshot(g)
}

// checkReload fails the test unless a reload of logs gives back exactly
// the state of group in c.
func checkReload(t *testing.T, c *Coordinator, logs *memLogs, clk *clock, topics Topics, group, when string) {
	t.Helper()
	c.mu.Lock()
	g := c.groups[group]
	c.mu.Unlock()
	want := "absent"
	if g != nil {
		g.mu.Lock()
		defer g.mu.Unlock() // no timer may change g while the log is read
		want = consumerSnapshot(g)
	}
	if got := reloadedSnapshot(t, logs, clk, topics, group); got != want {
		t.Fatalf("%s: reloaded state differs\nin memory:\n%s\nreloaded:\n%s", when, want, got)
	}
}

// hbClient is a KIP-848 client driving the Coordinator's public entry
// point: it owns exactly what it was last told.
type hbClient struct {
	id       string
	instance *string
	epoch    int32
	own      *kmsg.ConsumerGroupHeartbeatResponseAssignment
	left     bool
}

func (m *hbClient) beat(ctx context.Context, c *Coordinator, group string, subs []string) ConsumerHeartbeatResult {
	a := ConsumerHeartbeatArgs{MemberID: m.id, MemberEpoch: m.epoch, InstanceID: m.instance, RebalanceTimeout: time.Minute, Subscribed: subs, ClientID: "cl-" + m.id, ClientHost: "/127.0.0.1"}
	if m.own != nil {
		a.Owned, a.OwnedSet = owned(m.own), true
	}
	r := c.ConsumerHeartbeat(ctx, group, a)
	if r.Err == nil {
		m.epoch = r.Epoch
		if r.Assignment != nil {
			m.own = r.Assignment
		}
	}
	return r
}

func TestConsumerRecordsRoundTrip(t *testing.T) {
	inst, rack, re, asg := "i", "r", "t.*", "range"
	a := assignment{{[16]byte{2}, 1}: {}, {[16]byte{1}, 0}: {}, {[16]byte{1}, 3}: {}}
	cases := []struct {
		kind  int16
		value []byte
		want  any
	}{
		{consumerGroupMetadataKey, appendConsumerGroupValue(7), int32(7)},
		{consumerTargetMetadataKey, appendConsumerTargetEpochValue(6), int32(6)},
		{consumerGroupPartitionsKey, appendConsumerPartitionsValue(7, []consumerTopicMeta{{id: [16]byte{1}, name: "t", partitions: 4}}),
			consumerPartitionsValue{epoch: 7, topics: []consumerTopicMeta{{id: [16]byte{1}, name: "t", partitions: 4}}}},
		{consumerMemberMetadataKey, appendConsumerMemberValue(consumerMemberValue{instanceID: &inst, rackID: &rack, clientID: "c", clientHost: "h", subscribed: []string{"a", "b"}, regex: &re, rebalanceTimeout: 3000, assignor: &asg}),
			consumerMemberValue{instanceID: &inst, rackID: &rack, clientID: "c", clientHost: "h", subscribed: []string{"a", "b"}, regex: &re, rebalanceTimeout: 3000, assignor: &asg}},
		{consumerTargetMemberKey, appendConsumerTargetValue(a), a},
		{consumerCurrentAssignmentKey, appendConsumerCurrentValue(consumerCurrentValue{epoch: 5, previousEpoch: 4, state: consumerMemberUnrevoked, assigned: a, revoking: assignment{{[16]byte{3}, 9}: {}}}),
			consumerCurrentValue{epoch: 5, previousEpoch: 4, state: consumerMemberUnrevoked, assigned: a, revoking: assignment{{[16]byte{3}, 9}: {}}}},
	}
	for _, c := range cases {
		k := consumerKey{kind: c.kind}
		if isMemberKey(c.kind) {
			k.member = "m-1"
		}
		d, err := decodeRecord(k.encode("grp"), c.value)
		if err != nil {
			t.Fatalf("type %d: %v", c.kind, err)
		}
		if d.kind != c.kind || d.group != "grp" || d.consumerKey != k || fmt.Sprintf("%#v", d.consumer) != fmt.Sprintf("%#v", c.want) && !sameValue(d.consumer, c.want) {
			t.Fatalf("type %d: decoded %+v, want %+v", c.kind, d, c.want)
		}
		// A tombstone decodes to the key alone.
		if d, err := decodeRecord(k.encode("grp"), nil); err != nil || d.consumer != nil || d.consumerKey != k {
			t.Fatalf("type %d tombstone: %+v %v", c.kind, d, err)
		}
		// Every truncation of the value is an error, never a panic.
		for n := range len(c.value) {
			if _, err := decodeRecord(k.encode("grp"), c.value[:n]); err == nil {
				t.Fatalf("type %d: value cut at %d bytes decoded", c.kind, n)
			}
		}
	}
	if _, err := decodeRecord(consumerKey{kind: consumerGroupMetadataKey}.encode("g"), []byte{0, 1, 0, 0, 0, 1, 0}); !errors.Is(err, errUnknownRecord) {
		t.Fatalf("value version 1: %v, want errUnknownRecord", err)
	}
}

// sameValue compares decoded values whose %#v differs only in pointer
// addresses.
func sameValue(a, b any) bool {
	am, ok1 := a.(consumerMemberValue)
	bm, ok2 := b.(consumerMemberValue)
	if ok1 && ok2 {
		eq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
		return eq(am.instanceID, bm.instanceID) && eq(am.rackID, bm.rackID) && eq(am.regex, bm.regex) && eq(am.assignor, bm.assignor) &&
			am.clientID == bm.clientID && am.clientHost == bm.clientHost && slices.Equal(am.subscribed, bm.subscribed) && am.rebalanceTimeout == bm.rebalanceTimeout
	}
	if ac, ok := a.(consumerCurrentValue); ok {
		bc := b.(consumerCurrentValue)
		return ac.epoch == bc.epoch && ac.previousEpoch == bc.previousEpoch && ac.state == bc.state && ac.assigned.equal(bc.assigned) && ac.revoking.equal(bc.revoking)
	}
	if aa, ok := a.(assignment); ok {
		return aa.equal(b.(assignment))
	}
	return false
}

// TestConsumerGroupSurvivesReload: a KIP-848 group in the middle of a
// revocation is reloaded by a new coordinator (a broker restart) and its
// members carry on with their epochs: nobody is fenced or unknown, the
// revocation completes, and no partition is owned twice.
func TestConsumerGroupSurvivesReload(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	topics := &lockedTopics{m: fakeTopics{"t": {Name: "t", ID: [16]byte{1}, Partitions: 6}}}
	c := newConsumerCoordinator(t, logs, clk, topics)
	subs := []string{"t"}
	a, b := &hbClient{id: "a"}, &hbClient{id: "b"}
	for _, m := range []*hbClient{a, b, a, b, a, b} {
		if r := m.beat(ctx, c, "g", subs); r.Err != nil {
			t.Fatalf("%s: %v", m.id, r.Err)
		}
	}
	if count(a.own) != 3 || count(b.own) != 3 {
		t.Fatalf("not converged: a %d, b %d", count(a.own), count(b.own))
	}
	// A static member joins; a is told to give up one partition and has
	// not yet acknowledged when the broker restarts.
	inst := "static-1"
	s := &hbClient{id: "s", instance: &inst}
	s.beat(ctx, c, "g", subs)
	if r := a.beat(ctx, c, "g", nil); r.Err != nil || count(a.own) != 2 {
		t.Fatalf("a during the revocation: %v, owns %d", r.Err, count(a.own))
	}
	checkReload(t, c, logs, clk, topics, "g", "mid-revocation")
	c.Close()

	c2 := newConsumerCoordinator(t, logs, clk, topics)
	if d := c2.DescribeConsumerGroup(ctx, "g"); d.Err != nil || len(d.Members) != 3 {
		t.Fatalf("described after reload: %+v", d)
	}
	for range 4 {
		for _, m := range []*hbClient{a, b, s} {
			epoch := m.epoch
			r := m.beat(ctx, c2, "g", nil)
			if r.Err != nil {
				t.Fatalf("%s (epoch %d) after reload: %v", m.id, epoch, r.Err)
			}
			noOverlap(t, &member{id: a.id, own: a.own}, &member{id: b.id, own: b.own}, &member{id: s.id, own: s.own})
		}
	}
	if count(a.own) != 2 || count(b.own) != 2 || count(s.own) != 2 {
		t.Fatalf("after reload: a %d, b %d, s %d", count(a.own), count(b.own), count(s.own))
	}
	if st := c2.DescribeConsumerGroup(ctx, "g").State; st != "Stable" {
		t.Fatalf("state after reload %s", st)
	}

	// The static member leaves for a restart; a second reload keeps its
	// place, and its next incarnation (a new member id) takes it over.
	if r := c2.ConsumerHeartbeat(ctx, "g", ConsumerHeartbeatArgs{MemberID: "s", MemberEpoch: -2, InstanceID: &inst}); r.Err != nil {
		t.Fatalf("static leave: %v", r.Err)
	}
	checkReload(t, c2, logs, clk, topics, "g", "after a static leave")
	c2.Close()
	c3 := newConsumerCoordinator(t, logs, clk, topics)
	s2 := &hbClient{id: "s2", instance: &inst}
	if r := s2.beat(ctx, c3, "g", subs); r.Err != nil || count(s2.own) != 2 {
		t.Fatalf("static member back after reload: %v, owns %d", r.Err, count(s2.own))
	}

	// Compaction keeps exactly the live records.
	p := partitionFor("g", 5)
	compactMem(t, logs, p)
	checkReload(t, c3, logs, clk, topics, "g", "after compaction")

	// DeleteGroups on the emptied group leaves nothing behind.
	for _, m := range []*hbClient{a, b, s2} {
		if r := c3.ConsumerHeartbeat(ctx, "g", ConsumerHeartbeatArgs{MemberID: m.id, MemberEpoch: -1}); r.Err != nil {
			t.Fatalf("leave %s: %v", m.id, r.Err)
		}
	}
	checkReload(t, c3, logs, clk, topics, "g", "after everyone left")
	if err := c3.DeleteGroup(ctx, "g"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if got := reloadedSnapshot(t, logs, clk, topics, "g"); got != "absent" {
		t.Fatalf("deleted group came back:\n%s", got)
	}
}

// TestConsumerHeartbeatFailsWhenNotStored: a heartbeat whose state cannot
// be written is answered COORDINATOR_NOT_AVAILABLE, and the state is
// written by the next one that can.
func TestConsumerHeartbeatFailsWhenNotStored(t *testing.T) {
	ctx := context.Background()
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	topics := &lockedTopics{m: fakeTopics{"t": {Name: "t", ID: [16]byte{1}, Partitions: 2}}}
	c := newConsumerCoordinator(t, logs, clk, topics)
	a := &hbClient{id: "a"}
	if r := a.beat(ctx, c, "g", []string{"t"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	logs.setFail(errors.New("disk full"))
	b := &hbClient{id: "b"}
	if r := b.beat(ctx, c, "g", []string{"t"}); r.Err != kerr.CoordinatorNotAvailable {
		t.Fatalf("heartbeat with a failing log: %v, want COORDINATOR_NOT_AVAILABLE", r.Err)
	}
	logs.setFail(nil)
	if r := a.beat(ctx, c, "g", nil); r.Err != nil {
		t.Fatal(r.Err)
	}
	checkReload(t, c, logs, clk, topics, "g", "after the log recovered")
}

// TestConsumerPersistenceMatchesMemory drives groups through random
// sequences of joins, heartbeats, leaves, static restarts, subscription
// and topic changes and session expiries, and after every step checks
// that a reload of the log gives back the state in memory.
func TestConsumerPersistenceMatchesMemory(t *testing.T) {
	seeds := 30
	if testing.Short() {
		seeds = 5
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomConsumerRun(t, uint64(seed)) })
	}
}

func randomConsumerRun(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 848))
	logs := &memLogs{batches: map[int32][][]byte{}}
	clk := &clock{now: t0}
	topics := &lockedTopics{m: fakeTopics{
		"x": {Name: "x", ID: [16]byte{1}, Partitions: 4},
		"y": {Name: "y", ID: [16]byte{2}, Partitions: 3},
	}}
	c := newConsumerCoordinator(t, logs, clk, topics)
	const group = "rg"
	var clients []*hbClient
	next := 0
	subsets := [][]string{{"x"}, {"y"}, {"x", "y"}}
	for step := range 60 {
		var what string
		live := slices.DeleteFunc(slices.Clone(clients), func(m *hbClient) bool { return m.left })
		switch op := rng.IntN(10); {
		case op < 2 || len(live) == 0:
			m := &hbClient{id: fmt.Sprintf("m%d", next)}
			if rng.IntN(3) == 0 {
				inst := fmt.Sprintf("inst%d", next)
				m.instance = &inst
			}
			next++
			clients = append(clients, m)
			m.beat(ctx, c, group, subsets[rng.IntN(len(subsets))])
			what = "join " + m.id
		case op < 6:
			m := live[rng.IntN(len(live))]
			if r := m.beat(ctx, c, group, nil); r.Err == kerr.UnknownMemberID || r.Err == kerr.FencedMemberEpoch {
				m.left = true // expired meanwhile
			}
			what = "heartbeat " + m.id
		case op == 6:
			m := live[rng.IntN(len(live))]
			m.beat(ctx, c, group, subsets[rng.IntN(len(subsets))])
			what = "resubscribe " + m.id
		case op == 7:
			m := live[rng.IntN(len(live))]
			epoch := int32(-1)
			if m.instance != nil && rng.IntN(2) == 0 {
				epoch = -2
			}
			c.ConsumerHeartbeat(ctx, group, ConsumerHeartbeatArgs{MemberID: m.id, MemberEpoch: epoch, InstanceID: m.instance})
			m.left = true
			what = fmt.Sprintf("leave %s with epoch %d", m.id, epoch)
			if epoch == -2 {
				// Its next incarnation comes back with a new member id.
				back := &hbClient{id: fmt.Sprintf("m%d", next), instance: m.instance}
				next++
				clients = append(clients, back)
				back.beat(ctx, c, group, subsets[rng.IntN(len(subsets))])
				what += ", back as " + back.id
			}
		case op == 8:
			ti, _ := topics.TopicByName("y")
			ti.Partitions++
			topics.set(ti)
			live[0].beat(ctx, c, group, nil)
			what = "grow y"
		default:
			clk.Add(time.Duration(rng.IntN(30)) * time.Second)
			c.mu.Lock()
			g := c.groups[group]
			c.mu.Unlock()
			c.fire(g)
			what = "tick"
		}
		if step%15 == 14 {
			compactMem(t, logs, partitionFor(group, 5))
			what += ", compact"
		}
		checkReload(t, c, logs, clk, topics, group, fmt.Sprintf("step %d (%s)", step, what))
	}
}

// FuzzDecodeRecord: no record read back from __consumer_offsets, however
// corrupt, makes the decoder panic or allocate beyond its input.
func FuzzDecodeRecord(f *testing.F) {
	c := offsetCommit{offset: 1, leaderEpoch: 2, metadata: "m", commitMs: 3}
	k, v := offsetRecord("g", "t", 0, &c)
	f.Add(k, v)
	gv := kmsg.NewGroupMetadataValue()
	k, v = groupRecord("g", &gv)
	f.Add(k, v)
	a := assignment{{[16]byte{1}, 0}: {}, {[16]byte{1}, 1}: {}}
	f.Add(consumerKey{kind: consumerCurrentAssignmentKey, member: "m"}.encode("g"), appendConsumerCurrentValue(consumerCurrentValue{epoch: 1, assigned: a}))
	f.Add(consumerKey{kind: consumerMemberMetadataKey, member: "m"}.encode("g"), appendConsumerMemberValue(consumerMemberValue{clientID: "c", subscribed: []string{"t"}}))
	f.Add(consumerKey{kind: consumerGroupPartitionsKey}.encode("g"), appendConsumerPartitionsValue(1, []consumerTopicMeta{{name: "t", partitions: 3}}))
	f.Add(consumerKey{kind: consumerTargetMemberKey, member: "m"}.encode("g"), append(appendConsumerTargetValue(a), 0xff, 0xff))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0, 3}, []byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		_, _ = decodeRecord(key, value)
	})
}
