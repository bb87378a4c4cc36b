package coordinator

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type fakeTopics map[string]TopicInfo

func (f fakeTopics) TopicByName(n string) (TopicInfo, bool) { t, ok := f[n]; return t, ok }
func (f fakeTopics) TopicByID(id [16]byte) (TopicInfo, bool) {
	for _, t := range f {
		if t.ID == id {
			return t, true
		}
	}
	return TopicInfo{}, false
}
func (f fakeTopics) TopicNames() []string {
	var out []string
	for n := range f {
		out = append(out, n)
	}
	return out
}

func consumerTestCoordinator(topics fakeTopics) *Coordinator {
	cfg := DefaultConfig()
	return &Coordinator{cfg: cfg, topics: topics}
}

// owned turns a heartbeat answer's assignment into the request's owned list.
func owned(a *kmsg.ConsumerGroupHeartbeatResponseAssignment) []kmsg.ConsumerGroupHeartbeatRequestTopic {
	out := []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for _, t := range a.Topics {
		out = append(out, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: t.TopicID, Partitions: t.Partitions})
	}
	return out
}

func count(a *kmsg.ConsumerGroupHeartbeatResponseAssignment) int {
	n := 0
	for _, t := range a.Topics {
		n += len(t.Partitions)
	}
	return n
}

// member is a test client of the consumer protocol: it owns exactly what
// the coordinator last told it.
type member struct {
	id    string
	epoch int32
	own   *kmsg.ConsumerGroupHeartbeatResponseAssignment
}

func (m *member) beat(t *testing.T, g *group, c *Coordinator, now time.Time, subs []string) ConsumerHeartbeatResult {
	t.Helper()
	a := ConsumerHeartbeatArgs{MemberID: m.id, MemberEpoch: m.epoch, RebalanceTimeout: time.Minute, Subscribed: subs}
	if m.own != nil {
		a.Owned, a.OwnedSet = owned(m.own), true
	}
	r := g.consumerHeartbeat(a, now, c)
	if r.Err != nil {
		t.Fatalf("heartbeat of %s: %v %s", m.id, r.Err, r.Message)
	}
	m.epoch = r.Epoch
	if r.Assignment != nil {
		m.own = r.Assignment
	}
	return r
}

func noOverlap(t *testing.T, ms ...*member) {
	t.Helper()
	seen := map[tp]string{}
	for _, m := range ms {
		if m.own == nil {
			continue
		}
		for _, tt := range m.own.Topics {
			for _, p := range tt.Partitions {
				k := tp{tt.TopicID, p}
				if other, ok := seen[k]; ok {
					t.Fatalf("partition %d owned by %s and %s", p, other, m.id)
				}
				seen[k] = m.id
			}
		}
	}
}

func TestConsumerJoinRevokeReassign(t *testing.T) {
	topics := fakeTopics{"t": {Name: "t", ID: [16]byte{1}, Partitions: 6}}
	c := consumerTestCoordinator(topics)
	g := newTestGroup()
	subs := []string{"t"}

	a := &member{id: "a"}
	a.beat(t, g, c, t0, subs)
	if a.epoch != 1 || count(a.own) != 6 {
		t.Fatalf("a alone: epoch %d, %d partitions", a.epoch, count(a.own))
	}
	b := &member{id: "b"}
	b.beat(t, g, c, t0, subs)
	noOverlap(t, a, b)
	if count(b.own) != 0 {
		t.Fatalf("b got %d partitions before a revoked any", count(b.own))
	}
	// a is told to give up three; b gets them only after a's next heartbeat shows it did.
	a.beat(t, g, c, t0, nil)
	if count(a.own) != 3 {
		t.Fatalf("a should keep 3, has %d", count(a.own))
	}
	b.beat(t, g, c, t0, nil)
	noOverlap(t, a, b)
	a.beat(t, g, c, t0, nil) // acknowledges the revocation
	b.beat(t, g, c, t0, nil)
	noOverlap(t, a, b)
	if count(a.own) != 3 || count(b.own) != 3 || a.epoch != g.k.assignmentEpoch || b.epoch != g.k.assignmentEpoch {
		t.Fatalf("converged: a %d (epoch %d), b %d (epoch %d), group epoch %d", count(a.own), a.epoch, count(b.own), b.epoch, g.k.epoch)
	}
	if s := g.consumerStateName(); s != "Stable" {
		t.Fatalf("state %s", s)
	}

	// b leaves: a gets everything.
	if r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "b", MemberEpoch: -1}, t0, c); r.Err != nil {
		t.Fatal(r.Err)
	}
	a.beat(t, g, c, t0, nil)
	if count(a.own) != 6 {
		t.Fatalf("after b left a has %d", count(a.own))
	}
}

func TestConsumerFencingAndExpiry(t *testing.T) {
	topics := fakeTopics{"t": {Name: "t", ID: [16]byte{1}, Partitions: 2}}
	c := consumerTestCoordinator(topics)
	g := newTestGroup()
	a := &member{id: "a"}
	a.beat(t, g, c, t0, []string{"t"})
	if r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "a", MemberEpoch: a.epoch + 5, RebalanceTimeout: -1}, t0, c); r.Err != kerr.FencedMemberEpoch {
		t.Fatalf("wrong epoch: %v", r.Err)
	}
	if r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "zz", MemberEpoch: 3, RebalanceTimeout: -1}, t0, c); r.Err != kerr.UnknownMemberID {
		t.Fatalf("unknown member: %v", r.Err)
	}
	bad, empty, unknown := "range(", "", "sticky"
	for _, c := range []struct {
		what string
		args ConsumerHeartbeatArgs
		want *kerr.Error
	}{
		{"join without subscription", ConsumerHeartbeatArgs{MemberID: "n", MemberEpoch: 0, RebalanceTimeout: -1}, kerr.InvalidRequest},
		{"join with owned partitions", ConsumerHeartbeatArgs{MemberID: "n", MemberEpoch: 0, Subscribed: []string{"t"}, Owned: []kmsg.ConsumerGroupHeartbeatRequestTopic{{Partitions: []int32{0}}}, OwnedSet: true}, kerr.InvalidRequest},
		{"bad regex", ConsumerHeartbeatArgs{MemberID: "n", MemberEpoch: 0, Regex: &bad}, kerr.InvalidRegularExpression},
		{"epoch -3", ConsumerHeartbeatArgs{MemberID: "n", MemberEpoch: -3}, kerr.InvalidRequest},
		{"static leave without instance id", ConsumerHeartbeatArgs{MemberID: "n", MemberEpoch: -2}, kerr.InvalidRequest},
		{"empty instance id", ConsumerHeartbeatArgs{MemberID: "n", MemberEpoch: 0, Subscribed: []string{"t"}, InstanceID: &empty}, kerr.InvalidRequest},
		{"heartbeat without member id", ConsumerHeartbeatArgs{MemberEpoch: 3}, kerr.InvalidRequest},
		{"unknown assignor", ConsumerHeartbeatArgs{MemberID: "n", MemberEpoch: 0, Subscribed: []string{"t"}, Assignor: &unknown}, kerr.UnsupportedAssignor},
	} {
		if err, _ := validateConsumerHeartbeat(c.args); err != c.want {
			t.Errorf("%s: %v, want %v", c.what, err, c.want)
		}
	}
	if err, _ := validateConsumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "n", MemberEpoch: 0, Subscribed: []string{"t"}}); err != nil {
		t.Errorf("a well-formed join: %v", err)
	}
	if err := g.checkConsumerCommitter(CommitArgs{MemberID: "a", Generation: a.epoch - 1}); err != kerr.StaleMemberEpoch {
		t.Fatalf("stale commit: %v", err)
	}
	if d := g.consumerDeadline(); !d.Equal(t0.Add(c.cfg.ConsumerSessionTimeout)) {
		t.Fatalf("deadline %v", d)
	}
	g.consumerTick(t0.Add(c.cfg.ConsumerSessionTimeout), c)
	if g.consumerMembers() != 0 {
		t.Fatal("member survived its session timeout")
	}
}

func TestConsumerRegexSubscription(t *testing.T) {
	topics := fakeTopics{
		"orders-eu": {Name: "orders-eu", ID: [16]byte{1}, Partitions: 2},
		"orders-us": {Name: "orders-us", ID: [16]byte{2}, Partitions: 2},
		"payments":  {Name: "payments", ID: [16]byte{3}, Partitions: 2},
	}
	c := consumerTestCoordinator(topics)
	g := newTestGroup()
	re := "orders-.*"
	r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "a", MemberEpoch: 0, Regex: &re, RebalanceTimeout: -1}, t0, c)
	if r.Err != nil || count(r.Assignment) != 4 {
		t.Fatalf("regex join: %+v", r)
	}
	// A new matching topic bumps the epoch and is assigned.
	topics["orders-jp"] = TopicInfo{Name: "orders-jp", ID: [16]byte{4}, Partitions: 1}
	r = g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "a", MemberEpoch: r.Epoch, RebalanceTimeout: -1}, t0, c)
	if r.Err != nil || r.Assignment == nil || count(r.Assignment) != 5 {
		t.Fatalf("after a new topic: %+v", r)
	}
}

func TestAssignorsBalance(t *testing.T) {
	topics := fakeTopics{
		"x": {Name: "x", ID: [16]byte{1}, Partitions: 7},
		"y": {Name: "y", ID: [16]byte{2}, Partitions: 3},
	}
	members := map[string]*consumerMember{
		"m1": {id: "m1", effective: []string{"x", "y"}},
		"m2": {id: "m2", effective: []string{"x"}},
		"m3": {id: "m3", effective: []string{"x", "y"}},
	}
	for _, assignor := range []string{"uniform", "range"} {
		out := computeAssignment(assignor, members, nil, topics)
		total := 0
		seen := map[tp]bool{}
		minN, maxN := 100, 0
		for id, a := range out {
			for p := range a {
				if seen[p] {
					t.Fatalf("%s: partition assigned twice", assignor)
				}
				seen[p] = true
				if p.topic == [16]byte{2} && id == "m2" {
					t.Fatalf("%s: m2 got a partition of y, which it does not subscribe to", assignor)
				}
			}
			total += len(a)
			minN, maxN = min(minN, len(a)), max(maxN, len(a))
		}
		if total != 10 {
			t.Fatalf("%s: %d partitions assigned, want 10", assignor, total)
		}
		if assignor == "uniform" && maxN-minN > 1 {
			t.Fatalf("uniform: counts between %d and %d", minN, maxN)
		}
	}
	// Sticky: with the previous target, a fourth member takes partitions
	// only from others' surplus; nobody else swaps.
	prev := computeAssignment("uniform", members, nil, topics)
	members["m4"] = &consumerMember{id: "m4", effective: []string{"x", "y"}}
	next := computeAssignment("uniform", members, prev, topics)
	for id, a := range prev {
		for p := range next[id] {
			if _, had := a[p]; !had {
				t.Fatalf("%s gained a partition it did not have when m4 joined", id)
			}
		}
	}
}

// TestConsumerStaticInstanceFenced: a second member joining with a live
// static member's instance id gets UNRELEASED_INSTANCE_ID; once the old one
// left as static (epoch -2) the new one takes over, and the old member id's
// heartbeats with the instance id are FENCED_INSTANCE_ID (Kafka's
// throwIfInstanceIdIsFenced), without it UNKNOWN_MEMBER_ID.
func TestConsumerStaticInstanceFenced(t *testing.T) {
	topics := fakeTopics{"t": {Name: "t", ID: [16]byte{1}, Partitions: 2}}
	c := consumerTestCoordinator(topics)
	g := newTestGroup()
	inst := "i1"
	join := func(id string) ConsumerHeartbeatResult {
		return g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: id, MemberEpoch: 0, InstanceID: &inst, RebalanceTimeout: time.Minute, Subscribed: []string{"t"}}, t0, c)
	}
	ra := join("a")
	if ra.Err != nil {
		t.Fatalf("join of a: %v", ra.Err)
	}
	if r := join("b"); r.Err != kerr.UnreleasedInstanceID {
		t.Fatalf("b joining with a's live instance id: %v, want UNRELEASED_INSTANCE_ID", r.Err)
	}
	if r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "a", MemberEpoch: -2, InstanceID: &inst}, t0, c); r.Err != nil {
		t.Fatalf("static leave of a: %v", r.Err)
	}
	if r := join("b"); r.Err != nil {
		t.Fatalf("b taking over the released instance: %v", r.Err)
	}
	if r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "a", MemberEpoch: ra.Epoch, InstanceID: &inst, RebalanceTimeout: -1}, t0, c); r.Err != kerr.FencedInstanceID {
		t.Fatalf("heartbeat of the replaced member id with the instance id: %v, want FENCED_INSTANCE_ID", r.Err)
	}
	if r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "a", MemberEpoch: -1, InstanceID: &inst}, t0, c); r.Err != kerr.FencedInstanceID {
		t.Fatalf("leave of the replaced member id with the instance id: %v, want FENCED_INSTANCE_ID", r.Err)
	}
	if r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "a", MemberEpoch: ra.Epoch, RebalanceTimeout: -1}, t0, c); r.Err != kerr.UnknownMemberID {
		t.Fatalf("heartbeat of the replaced member id without the instance id: %v, want UNKNOWN_MEMBER_ID", r.Err)
	}
	other := "i2"
	if r := g.consumerHeartbeat(ConsumerHeartbeatArgs{MemberID: "b", MemberEpoch: 1, InstanceID: &other, RebalanceTimeout: -1}, t0, c); r.Err != kerr.UnknownMemberID {
		t.Fatalf("heartbeat with an instance id nobody holds: %v, want UNKNOWN_MEMBER_ID", r.Err)
	}
}
