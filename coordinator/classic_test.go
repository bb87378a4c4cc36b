package coordinator

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The classic state machine driven directly, with made-up times and no
// timers: each test calls tick where a timer would fire.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testLimits() limits {
	return limits{minSession: time.Second, maxSession: time.Hour, initialRebalanceDelay: 0}
}

func newTestGroup() *group {
	return &group{id: "g", c: newClassicState(t0), k: newConsumerState(), offsets: map[string]map[int32]offsetCommit{}}
}

func joinArgs(member string, protocols ...string) JoinArgs {
	a := JoinArgs{
		MemberID:             member,
		ClientID:             "c",
		ProtocolType:         "consumer",
		SessionTimeout:       10 * time.Second,
		RebalanceTimeout:     30 * time.Second,
		RequireKnownMemberID: true,
	}
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	for _, p := range protocols {
		a.Protocols = append(a.Protocols, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: []byte(p + "-meta")})
	}
	return a
}

// result reads a result that must be ready now.
func result[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("no result yet")
		panic("unreachable")
	}
}

func pendingResult[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("unexpected result %+v", r)
	default:
	}
}

// joinNew runs the two-step KIP-394 join and returns the member id and the
// channel of its second JoinGroup.
func joinNew(t *testing.T, g *group, now time.Time, protocols ...string) (string, <-chan JoinResult) {
	t.Helper()
	first := result(t, g.join(joinArgs("", protocols...), now, testLimits()))
	if first.Err != kerr.MemberIDRequired || first.MemberID == "" {
		t.Fatalf("first join: %+v, want MEMBER_ID_REQUIRED with an id", first)
	}
	return first.MemberID, g.join(joinArgs(first.MemberID, protocols...), now, testLimits())
}

func TestClassicSingleMemberLifecycle(t *testing.T) {
	g := newTestGroup()
	id, ch := joinNew(t, g, t0)
	j := result(t, ch)
	if j.Err != nil || j.Generation != 1 || j.Leader != id || j.Protocol != "range" || len(j.Members) != 1 {
		t.Fatalf("join: %+v", j)
	}
	if g.c.state != stateCompletingRebalance {
		t.Fatalf("state %v", g.c.state)
	}
	if err := g.heartbeat(id, nil, 1, t0); err != nil {
		t.Fatalf("heartbeat while completing: %v", err)
	}
	s := result(t, g.sync(SyncArgs{MemberID: id, Generation: 1, Assignments: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: id, MemberAssignment: []byte("a")}}}, t0, testLimits()))
	if s.Err != nil || string(s.Assignment) != "a" || g.c.state != stateStable || !g.dirty {
		t.Fatalf("sync: %+v state %v dirty %v", s, g.c.state, g.dirty)
	}
	if err := g.heartbeat(id, nil, 0, t0); err != kerr.IllegalGeneration {
		t.Fatalf("old generation heartbeat: %v", err)
	}
	if err := g.heartbeat("nobody", nil, 1, t0); err != kerr.UnknownMemberID {
		t.Fatalf("unknown member heartbeat: %v", err)
	}
	if err := g.leave(id, nil, t0, testLimits()); err != nil {
		t.Fatal(err)
	}
	if g.c.state != stateEmpty || len(g.c.members) != 0 || g.c.generation != 2 {
		t.Fatalf("after leave: state %v members %d generation %d", g.c.state, len(g.c.members), g.c.generation)
	}
}

func TestClassicSecondMemberTriggersRebalance(t *testing.T) {
	g := newTestGroup()
	lim := testLimits()
	a, ch := joinNew(t, g, t0)
	result(t, ch)
	result(t, g.sync(SyncArgs{MemberID: a, Generation: 1}, t0, lim))

	b, chB := joinNew(t, g, t0)
	pendingResult(t, chB) // waits for a to rejoin
	if g.c.state != statePreparingRebalance {
		t.Fatalf("state %v", g.c.state)
	}
	if err := g.heartbeat(a, nil, 1, t0); err != kerr.RebalanceInProgress {
		t.Fatalf("heartbeat during rebalance: %v", err)
	}
	chA := g.join(joinArgs(a), t0, lim)
	ra, rb := result(t, chA), result(t, chB)
	if ra.Generation != 2 || rb.Generation != 2 || ra.Leader != a || rb.Leader != a {
		t.Fatalf("generation 2: %+v / %+v", ra, rb)
	}
	if len(ra.Members) != 2 || len(rb.Members) != 0 {
		t.Fatalf("leader sees %d members, follower %d", len(ra.Members), len(rb.Members))
	}
	// The follower's sync waits for the leader's.
	sb := g.sync(SyncArgs{MemberID: b, Generation: 2}, t0, lim)
	pendingResult(t, sb)
	sa := g.sync(SyncArgs{MemberID: a, Generation: 2, Assignments: []kmsg.SyncGroupRequestGroupAssignment{
		{MemberID: a, MemberAssignment: []byte("A")}, {MemberID: b, MemberAssignment: []byte("B")},
	}}, t0, lim)
	if r := result(t, sa); string(r.Assignment) != "A" {
		t.Fatalf("leader assignment %q", r.Assignment)
	}
	if r := result(t, sb); string(r.Assignment) != "B" {
		t.Fatalf("follower assignment %q", r.Assignment)
	}
}

func TestClassicJoinPhaseEndsWithoutSilentMember(t *testing.T) {
	g := newTestGroup()
	lim := testLimits()
	a, ch := joinNew(t, g, t0)
	result(t, ch)
	result(t, g.sync(SyncArgs{MemberID: a, Generation: 1}, t0, lim))
	b, chB := joinNew(t, g, t0.Add(time.Second))
	// a never rejoins, nor heartbeats: its session ends first (before the
	// rebalance timeout), and then b is all the group has.
	deadline := g.classicDeadline()
	if want := t0.Add(10 * time.Second); !deadline.Equal(want) {
		t.Fatalf("deadline %v, want a's session end %v", deadline, want)
	}
	g.tick(deadline.Add(-time.Millisecond), lim)
	pendingResult(t, chB)
	g.tick(deadline, lim)
	r := result(t, chB)
	if r.Err != nil || r.Leader != b || len(r.Members) != 1 || g.c.members[a] != nil {
		t.Fatalf("after join timeout: %+v members %d", r, len(g.c.members))
	}
}

func TestClassicSessionExpiry(t *testing.T) {
	g := newTestGroup()
	lim := testLimits()
	a, ch := joinNew(t, g, t0)
	result(t, ch)
	result(t, g.sync(SyncArgs{MemberID: a, Generation: 1}, t0, lim))
	g.tick(t0.Add(9*time.Second), lim)
	if len(g.c.members) != 1 {
		t.Fatal("expired before its session timeout")
	}
	if err := g.heartbeat(a, nil, 1, t0.Add(9*time.Second)); err != nil {
		t.Fatal(err)
	}
	g.tick(t0.Add(18*time.Second), lim)
	if len(g.c.members) != 1 {
		t.Fatal("a heartbeat did not extend the session")
	}
	g.tick(t0.Add(19*time.Second), lim)
	if len(g.c.members) != 0 || g.c.state != stateEmpty {
		t.Fatalf("after session timeout: %d members, state %v", len(g.c.members), g.c.state)
	}
}

func TestClassicSyncTimeoutRemovesUnsyncedLeader(t *testing.T) {
	g := newTestGroup()
	lim := testLimits()
	a, chA := joinNew(t, g, t0)
	result(t, chA)
	// a (leader) never syncs; the sync deadline removes it.
	g.tick(t0.Add(30*time.Second), lim)
	if g.c.members[a] != nil || g.c.state != stateEmpty {
		t.Fatalf("state %v, members %d", g.c.state, len(g.c.members))
	}
}

func TestClassicErrors(t *testing.T) {
	g := newTestGroup()
	lim := testLimits()
	bad := joinArgs("")
	bad.SessionTimeout = time.Millisecond
	if r := result(t, g.join(bad, t0, lim)); r.Err != kerr.InvalidSessionTimeout {
		t.Fatalf("short session: %v", r.Err)
	}
	if r := result(t, g.join(joinArgs("made-up"), t0, lim)); r.Err != kerr.UnknownMemberID {
		t.Fatalf("unknown member id: %v", r.Err)
	}
	a, ch := joinNew(t, g, t0, "range")
	result(t, ch)
	other := joinArgs("", "roundrobin")
	if r := result(t, g.join(other, t0, lim)); r.Err != kerr.InconsistentGroupProtocol {
		t.Fatalf("no common protocol: %v", r.Err)
	}
	if r := result(t, g.sync(SyncArgs{MemberID: a, Generation: 7}, t0, lim)); r.Err != kerr.IllegalGeneration {
		t.Fatalf("sync wrong generation: %v", r.Err)
	}
	if r := result(t, g.sync(SyncArgs{MemberID: "x", Generation: 1}, t0, lim)); r.Err != kerr.UnknownMemberID {
		t.Fatalf("sync unknown member: %v", r.Err)
	}
	if err := g.checkCommitter(CommitArgs{MemberID: a, Generation: 1}, t0); err != kerr.RebalanceInProgress {
		t.Fatalf("commit while completing: %v", err)
	}
	if err := g.checkCommitter(CommitArgs{Generation: -1}, t0); err != kerr.UnknownMemberID {
		t.Fatalf("outside commit into a live group: %v", err)
	}
	if err := g.leave("x", nil, t0, lim); err != kerr.UnknownMemberID {
		t.Fatalf("leave unknown: %v", err)
	}
}

func TestClassicStaticMemberRejoinsWithoutRebalance(t *testing.T) {
	g := newTestGroup()
	lim := testLimits()
	inst := "instance-1"
	a := joinArgs("")
	a.InstanceID = &inst
	r := result(t, g.join(a, t0, lim)) // static members skip MEMBER_ID_REQUIRED
	if r.Err != nil {
		t.Fatalf("static join: %+v", r)
	}
	result(t, g.sync(SyncArgs{MemberID: r.MemberID, Generation: 1, Assignments: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: r.MemberID, MemberAssignment: []byte("mine")}}}, t0, lim))

	// The same instance comes back with no member id (a restart), with
	// other metadata (a restarted consumer owns nothing and has no
	// generation): the protocol stays, so there is no rebalance.
	a.SupportsSkipAssignment = true
	a.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("restarted-meta")}}
	r2 := result(t, g.join(a, t0.Add(time.Second), lim))
	if r2.Err != nil || r2.Generation != 1 || r2.MemberID == r.MemberID || !r2.SkipAssignment {
		t.Fatalf("static rejoin: %+v", r2)
	}
	if g.c.state != stateStable {
		t.Fatalf("state %v, want Stable (no rebalance)", g.c.state)
	}
	s := result(t, g.sync(SyncArgs{MemberID: r2.MemberID, Generation: 1}, t0, lim))
	if string(s.Assignment) != "mine" {
		t.Fatalf("assignment after rejoin %q", s.Assignment)
	}
	// The old member id is fenced: FENCED_INSTANCE_ID with the instance
	// id, UNKNOWN_MEMBER_ID without it.
	if err := g.heartbeat(r.MemberID, &inst, 1, t0); err != kerr.FencedInstanceID {
		t.Fatalf("old static member id with its instance id: %v", err)
	}
	if err := g.heartbeat(r.MemberID, nil, 1, t0); err != kerr.UnknownMemberID {
		t.Fatalf("old static member id without instance id: %v", err)
	}
	if err := g.checkCommitter(CommitArgs{MemberID: r.MemberID, InstanceID: &inst, Generation: 1}, t0); err != kerr.FencedInstanceID {
		t.Fatalf("commit by the old static member id: %v", err)
	}
	// Sync, JoinGroup and LeaveGroup of the old member id are fenced too
	// (a JoinGroup answered UNKNOWN_MEMBER_ID would have the old client
	// join again without a member id and take the instance back).
	if s := result(t, g.sync(SyncArgs{MemberID: r.MemberID, InstanceID: &inst, Generation: 1}, t0, lim)); s.Err != kerr.FencedInstanceID {
		t.Fatalf("sync by the old static member id: %v", s.Err)
	}
	old := a
	old.MemberID = r.MemberID
	if j := result(t, g.join(old, t0, lim)); j.Err != kerr.FencedInstanceID {
		t.Fatalf("join by the old static member id: %v", j.Err)
	}
	if err := g.leave(r.MemberID, &inst, t0, lim); err != kerr.FencedInstanceID {
		t.Fatalf("leave by the old static member id: %v", err)
	}
	// Leaving by instance id works.
	if err := g.leave("", &inst, t0, lim); err != nil {
		t.Fatal(err)
	}
}

func TestClassicMetadataRoundTrip(t *testing.T) {
	g := newTestGroup()
	lim := testLimits()
	a, ch := joinNew(t, g, t0)
	result(t, ch)
	result(t, g.sync(SyncArgs{MemberID: a, Generation: 1, Assignments: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: a, MemberAssignment: []byte("x")}}}, t0, lim))
	key, val := groupRecord("g", g.metadataValue())
	d, err := decodeRecord(key, val)
	if err != nil || d.kind != groupKeyV2 || d.groupMeta == nil {
		t.Fatalf("decode: %+v %v", d, err)
	}
	h := newTestGroup()
	h.restoreClassic(d.groupMeta, t0)
	if h.c.state != stateStable || h.c.generation != 1 || h.c.leader != a || string(h.c.members[a].assignment) != "x" {
		t.Fatalf("restored: %+v", h.c)
	}
}

func TestPartitionFor(t *testing.T) {
	// Values from Java: "group".hashCode() = 98629247; abs % 50 = 47.
	if got := javaStringHash("group"); got != 98629247 {
		t.Fatalf("hash(group) = %d", got)
	}
	if got := partitionFor("group", 50); got != 47 {
		t.Fatalf("partitionFor(group) = %d", got)
	}
	for _, s := range []string{"", "a", "über-gruppe", "𝄞 clef", "console-consumer-12345"} {
		if p := partitionFor(s, 50); p < 0 || p >= 50 {
			t.Fatalf("partitionFor(%q) = %d", s, p)
		}
	}
}

func TestOffsetRecordRoundTrip(t *testing.T) {
	c := offsetCommit{offset: 42, leaderEpoch: 3, metadata: "m", commitMs: 1234}
	key, val := offsetRecord("g", "t", 7, &c)
	d, err := decodeRecord(key, val)
	if err != nil || d.kind != offsetKeyV1 || d.topic != "t" || d.partition != 7 || d.offset == nil || *d.offset != c {
		t.Fatalf("decode: %+v %v", d, err)
	}
	key, val = offsetRecord("g", "t", 7, nil)
	if d, err := decodeRecord(key, val); err != nil || d.offset != nil || d.kind != offsetKeyV1 {
		t.Fatalf("tombstone: %+v %v", d, err)
	}
	if _, err := decodeRecord([]byte{0, 9, 1, 2}, nil); err == nil {
		t.Fatal("unknown key version decoded")
	}
}

func TestClassicRebalanceTimeoutDropsMemberThatOnlyHeartbeats(t *testing.T) {
	g := newTestGroup()
	lim := testLimits()
	a, ch := joinNew(t, g, t0)
	result(t, ch)
	result(t, g.sync(SyncArgs{MemberID: a, Generation: 1}, t0, lim))
	_, chB := joinNew(t, g, t0)
	// a keeps heartbeating but never rejoins: the join phase ends at the
	// rebalance timeout (30 s) without it.
	for at := t0.Add(5 * time.Second); at.Before(t0.Add(30 * time.Second)); at = at.Add(5 * time.Second) {
		if err := g.heartbeat(a, nil, 1, at); err != kerr.RebalanceInProgress {
			t.Fatalf("heartbeat at %v: %v", at, err)
		}
		g.tick(at, lim)
		pendingResult(t, chB)
	}
	g.tick(t0.Add(30*time.Second), lim)
	if r := result(t, chB); r.Err != nil || len(r.Members) != 1 || g.c.members[a] != nil {
		t.Fatalf("after the rebalance timeout: %+v", r)
	}
}
