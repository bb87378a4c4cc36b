package integration

// Consumer groups driven by franz-go (kgo) against Gregor: the classic
// protocol with an eager (range) and a cooperative (cooperative-sticky)
// balancer, KIP-848 with server-side assignors, a member that dies without
// leaving, static membership, and committed offsets across a clean restart
// and a kill -9.
//
// Members (grpMember) consume with kgo.BlockRebalanceOnPoll and commit what
// they polled, synchronously, before they allow the next rebalance. Every
// consumed record has therefore been committed (and the commit acknowledged)
// before its partition can move, so under Kafka's semantics a record is
// never delivered twice; grpCheckDelivery checks the whole history:
// per partition, offsets in order with no gap, the values produced, no
// redelivery of a record covered by an acknowledged commit (duplicates are
// tolerated only for records whose commit was not acknowledged, and commit
// failures are reported as errors of their own), and nothing left unconsumed.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// grpTakeover describes one run of grpRunTakeover.
type grpTakeover struct {
	opts        []kgo.Opt
	protocol    string // classic: the protocol DescribeGroups must report
	assignor    string // KIP-848: the assignor ConsumerGroupDescribe must report
	incremental bool   // cooperative or KIP-848: kept partitions are never revoked
	kip848      bool
}

// grpRunTakeover: three members join a 6-partition topic one after the
// other while records are being produced; then one member leaves (Close)
// and the two others take its partitions over, starting exactly at its
// committed offsets. Records are produced before, during and after every
// change; grpCheckDelivery checks the whole history.
func grpRunTakeover(t *testing.T, p *brokerProc, sc grpTakeover) {
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := grpName(t, "grp-take"), grpName(t, "grp-take-g")
	const parts = 6
	fzCreateTopic(ctx, t, adm, topic, parts, nil)
	prod := grpProducer(t, p.Addr)
	exp := grpNewExpected(topic, parts)
	l := &grpLog{}
	hooks := map[string]*grpKeyCounter{}
	start := func(name string) *grpMember {
		hooks[name] = &grpKeyCounter{}
		opts := append([]kgo.Opt{kgo.SessionTimeout(60 * time.Second), kgo.WithHooks(hooks[name])}, sc.opts...)
		return grpStartMember(t, p.Addr, name, group, []string{topic}, l, opts...)
	}

	// One member alone gets everything.
	exp.produce(ctx, t, prod, "a", 60)
	m1 := start("m1")
	grpWaitBalanced(t, 30*time.Second, topic, parts, m1)
	grpWaitConsumed(t, l, exp, 30*time.Second)

	// Two more join while records keep arriving.
	m2 := start("m2")
	exp.produce(ctx, t, prod, "b", 60)
	m3 := start("m3")
	exp.produce(ctx, t, prod, "c", 60)
	grpWaitBalanced(t, 30*time.Second, topic, parts, m1, m2, m3)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	for _, m := range []*grpMember{m1, m2, m3} {
		if n := len(m.Assigned(topic)); n != 2 {
			t.Errorf("%s owns %v; 6 partitions over 3 members must be 2 each", m.name, m.Assigned(topic))
		}
	}

	// The assignment is used: records produced now are consumed by the
	// owner of their partition.
	mark := l.len()
	owned := map[string][]int32{}
	for _, m := range []*grpMember{m1, m2, m3} {
		owned[m.name] = m.Assigned(topic)
	}
	exp.produce(ctx, t, prod, "d", 60)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	for _, m := range []*grpMember{m1, m2, m3} {
		got := l.consumedBy(m.name, topic, mark)
		var ps []int32
		for p := range got {
			ps = append(ps, p)
		}
		slices.Sort(ps)
		if !slices.Equal(ps, owned[m.name]) {
			t.Errorf("%s owns %v but consumed the new records of partitions %v", m.name, owned[m.name], ps)
		}
	}

	// What the coordinator reports matches what the members were given.
	if sc.kip848 {
		grpCheckConsumerGroupDescribe(ctx, t, adm, group, topic, sc.assignor, m1, m2, m3)
	} else {
		d := grpDescribe(ctx, t, adm, group)
		if d.Err != nil || d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != sc.protocol || len(d.Members) != 3 {
			t.Errorf("DescribeGroups(%s) = err %v, state %q, protocol type %q, protocol %q, %d members; want Stable consumer %q with 3 members",
				group, d.Err, d.State, d.ProtocolType, d.Protocol, len(d.Members), sc.protocol)
		}
		for _, dm := range d.Members {
			name := strings.TrimPrefix(dm.ClientID, "gregor-it-group-")
			if got := grpAssignedTopics(dm)[topic]; !slices.Equal(got, owned[name]) {
				t.Errorf("DescribeGroups: member %s (client %s) assigned %v, the member itself owns %v", dm.MemberID, dm.ClientID, got, owned[name])
			}
		}
	}

	// ListGroups v5 filters by group type (KIP-848 "consumer" groups vs
	// "classic" ones); both kinds have protocol type "consumer".
	for _, typ := range []string{"classic", "consumer"} {
		ls, err := adm.ListGroupsByType(ctx, []string{typ})
		if err != nil {
			t.Fatalf("ListGroups(type %s): %v", typ, err)
		}
		g, listed := ls[group]
		if want := (typ == "consumer") == sc.kip848; listed != want {
			t.Errorf("ListGroups(type %s) lists %s: %v, want %v", typ, group, listed, want)
		}
		if listed && (g.State != "Stable" || g.ProtocolType != "consumer") {
			t.Errorf("ListGroups(type %s): %s in state %q with protocol type %q, want Stable, consumer", typ, group, g.State, g.ProtocolType)
		}
	}

	// Protocol actually used, seen from the members' side.
	for name, h := range hooks {
		join, cgh := h.count(kmsg.JoinGroup), h.count(kmsg.ConsumerGroupHeartbeat)
		if sc.kip848 && (join != 0 || cgh == 0) {
			t.Errorf("%s sent %d JoinGroup and %d ConsumerGroupHeartbeat requests; a KIP-848 member sends only the latter", name, join, cgh)
		}
		if !sc.kip848 && (join == 0 || cgh != 0) {
			t.Errorf("%s sent %d JoinGroup and %d ConsumerGroupHeartbeat requests; a classic member sends only the former", name, join, cgh)
		}
	}
	revoked := m1.EverRevoked(topic)
	for _, p := range owned["m1"] {
		if sc.incremental && revoked[p] {
			t.Errorf("m1 kept partition %d throughout, yet it was revoked: an incremental (cooperative / KIP-848) rebalance only revokes partitions that move", p)
		}
		if !sc.incremental && !revoked[p] {
			t.Errorf("m1 kept partition %d but it was never revoked: an eager rebalance revokes every partition", p)
		}
	}

	// m2 leaves; its partitions go to m1 and m3, which start at m2's
	// committed offsets. The session timeout is 60s, so a take-over within
	// 20s is the LeaveGroup (or the KIP-848 leave heartbeat) at work.
	left := owned["m2"]
	m2.Close()
	leftAt := time.Now()
	mark = l.len()
	exp.produce(ctx, t, prod, "e", 60)
	grpWaitBalanced(t, 20*time.Second, topic, parts, m1, m3)
	t.Logf("m2's partitions %v taken over %v after it left", left, time.Since(leftAt).Round(time.Millisecond))
	grpWaitConsumed(t, l, exp, 30*time.Second)
	lastCommit := map[int32]int64{}
	for _, e := range l.snapshot()[:mark] {
		if e.commit && e.member == "m2" {
			lastCommit[e.partition] = e.offset
		}
	}
	for _, part := range left {
		first := int64(-1)
		by := ""
		for _, e := range l.snapshot()[mark:] {
			if !e.commit && e.partition == part && e.member != "m2" {
				first, by = e.offset, e.member
				break
			}
		}
		if want, ok := lastCommit[part]; !ok || first != want {
			t.Errorf("partition %d: after m2 left, %s started at offset %d; m2's last acknowledged commit was %d (committed: %v)", part, by, first, want, ok)
		}
	}

	m1.Stop()
	m3.Stop()
	if dups := grpCheckDelivery(t, l, exp); dups != 0 {
		t.Errorf("%d records were delivered twice although every consumed record was committed before its partition could move", dups)
	}
	grpReportErrs(t, m1, m2, m3)
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())

	m1.Close()
	m3.Close()
	fzWaitFor(t, 20*time.Second, "group empty after every member closed", func() error {
		if sc.kip848 {
			ds, err := adm.DescribeConsumerGroups(ctx, group)
			if err != nil {
				return err
			}
			if d := ds[group]; d.State != "Empty" || len(d.Members) != 0 {
				return fmt.Errorf("state %q with %d members (err %v)", d.State, len(d.Members), d.Err)
			}
			return nil
		}
		d := grpDescribe(ctx, t, adm, group)
		if d.State != "Empty" || len(d.Members) != 0 {
			return fmt.Errorf("state %q with %d members (err %v)", d.State, len(d.Members), d.Err)
		}
		return nil
	})
	fzCheckLogs(t, p)
}

// grpCheckConsumerGroupDescribe checks ConsumerGroupDescribe of a KIP-848
// group against the members' own view.
func grpCheckConsumerGroupDescribe(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic, assignor string, ms ...*grpMember) {
	t.Helper()
	ds, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeConsumerGroups(%s): %v", group, err)
	}
	d, ok := ds[group]
	if !ok || d.Err != nil {
		t.Fatalf("DescribeConsumerGroups(%s): %+v", group, ds)
	}
	if d.State != "Stable" || d.AssignorName != assignor || len(d.Members) != len(ms) || d.Epoch != d.AssignmentEpoch || d.Epoch <= 0 {
		t.Errorf("ConsumerGroupDescribe(%s): state %q, assignor %q, %d members, epoch %d, assignment epoch %d; want Stable, %q, %d members, equal positive epochs",
			group, d.State, d.AssignorName, len(d.Members), d.Epoch, d.AssignmentEpoch, assignor, len(ms))
	}
	byClient := map[string]*grpMember{}
	for _, m := range ms {
		byClient["gregor-it-group-"+m.name] = m
	}
	for _, dm := range d.Members {
		m := byClient[dm.ClientID]
		if m == nil {
			t.Errorf("ConsumerGroupDescribe: unexpected member %s (client %q)", dm.MemberID, dm.ClientID)
			continue
		}
		if id, _ := m.cl.GroupMetadata(); id != dm.MemberID {
			t.Errorf("ConsumerGroupDescribe: %s has member id %q, the client says %q", m.name, dm.MemberID, id)
		}
		got := dm.Assignment.Sorted()
		var gotParts []int32
		for _, tp := range got {
			if tp.Topic == topic {
				gotParts = tp.Partitions
			}
		}
		slices.Sort(gotParts)
		if want := m.Assigned(topic); !slices.Equal(gotParts, want) {
			t.Errorf("ConsumerGroupDescribe: %s assigned %v, the member owns %v", m.name, gotParts, want)
		}
		if dm.MemberEpoch != d.Epoch {
			t.Errorf("ConsumerGroupDescribe: %s at member epoch %d, group epoch %d (a stable group has every member at the group epoch)", m.name, dm.MemberEpoch, d.Epoch)
		}
		if !slices.Equal(dm.SubscribedTopics, []string{topic}) {
			t.Errorf("ConsumerGroupDescribe: %s subscribed to %v, want [%s]", m.name, dm.SubscribedTopics, topic)
		}
	}
}

// TestGroupFranzClassic: the classic protocol with kgo's eager range
// balancer and its cooperative-sticky balancer (see grpRunTakeover).
func TestGroupFranzClassic(t *testing.T) {
	p := grpStartBroker(t)
	t.Run("range", func(t *testing.T) {
		grpRunTakeover(t, p, grpTakeover{
			opts:     []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())},
			protocol: "range",
		})
	})
	t.Run("cooperative-sticky", func(t *testing.T) {
		grpRunTakeover(t, p, grpTakeover{
			opts:        []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())},
			protocol:    "cooperative-sticky",
			incremental: true,
		})
	})
}

// TestGroupFranzKIP848: the same scenario with KIP-848 (kgo opts in with
// ServerSideBalancer; the range balancer asks for the broker's "range"
// assignor, the sticky one for "uniform").
func TestGroupFranzKIP848(t *testing.T) {
	p := grpStartBroker(t, "--config", "group.consumer.heartbeat.interval.ms=500")
	t.Run("range", func(t *testing.T) {
		grpRunTakeover(t, p, grpTakeover{
			opts:        []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer()},
			assignor:    "range",
			incremental: true,
			kip848:      true,
		})
	})
	t.Run("uniform", func(t *testing.T) {
		grpRunTakeover(t, p, grpTakeover{
			opts:        []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer()},
			assignor:    "uniform",
			incremental: true,
			kip848:      true,
		})
	})
}

// TestGroupSessionTimeoutEvictsSilentMember: a raw member (exact requests on
// its own connection) joins a group next to a kgo member, gets half of the
// partitions, commits an offset on each of them, then goes silent with its
// connection left open. Kafka removes it once its session timeout (3s)
// passes without a heartbeat, not before, and rebalances: the survivor gets
// its partitions and resumes exactly at its commits.
func TestGroupSessionTimeoutEvictsSilentMember(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := grpName(t, "grp-silent"), grpName(t, "grp-silent-g")
	const parts = 6
	const session = 3 * time.Second
	fzCreateTopic(ctx, t, adm, topic, parts, nil)
	prod := grpProducer(t, p.Addr)
	exp := grpNewExpected(topic, parts)
	l := &grpLog{}

	exp.produce(ctx, t, prod, "a", 60)
	s := grpStartMember(t, p.Addr, "survivor", group, []string{topic}, l,
		kgo.Balancers(kgo.RangeBalancer()), kgo.SessionTimeout(30*time.Second))
	grpWaitBalanced(t, 30*time.Second, topic, parts, s)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())

	// The silent member joins (KIP-394 two-step join, JoinGroup v7) and
	// syncs (v5). The survivor stays leader and assigns with range.
	z := fzDial(t, p.Addr)
	jr := grpJoinNew(t, z, 7, group, int32(session/time.Millisecond), 20000, topic)
	zid, gen := jr.MemberID, jr.Generation
	var assignments map[string][]byte
	if jr.LeaderID == zid {
		// Kafka keeps the existing leader; should the broker pick us, do
		// the leader's job (range over members sorted by id) so the test
		// can go on.
		t.Logf("JoinGroup: the new member %s was made leader (Kafka keeps the current leader)", zid)
		ids := []string{}
		for _, m := range jr.Members {
			ids = append(ids, m.MemberID)
		}
		slices.Sort(ids)
		assignments = map[string][]byte{}
		per := parts / len(ids)
		for i, id := range ids {
			var ps []int32
			for p := i * per; p < (i+1)*per; p++ {
				ps = append(ps, int32(p))
			}
			assignments[id] = grpConsumerAssignment(topic, ps...)
		}
	}
	syncSent := time.Now()
	sr := z.roundTrip(grpSyncRequest(5, group, zid, gen, assignments)).(*kmsg.SyncGroupResponse)
	if sr.ErrorCode != 0 {
		t.Fatalf("SyncGroup v5 as %s gen %d: %s", zid, gen, fzErrCode(sr.ErrorCode))
	}
	var za kmsg.ConsumerMemberAssignment
	if err := za.ReadFrom(sr.MemberAssignment); err != nil {
		t.Fatalf("SyncGroup: assignment %x does not parse: %v", sr.MemberAssignment, err)
	}
	var zparts []int32
	for _, ta := range za.Topics {
		if ta.Topic == topic {
			zparts = append(zparts, ta.Partitions...)
		}
	}
	slices.Sort(zparts)
	if len(zparts) != parts/2 {
		t.Fatalf("the silent member was assigned %v of %s; range over 2 members of 6 partitions gives 3", za.Topics, topic)
	}
	grpWaitBalanced(t, 20*time.Second, topic, parts-int32(len(zparts)), s)
	for _, p := range s.Assigned(topic) {
		if slices.Contains(zparts, p) {
			t.Fatalf("partition %d assigned to both the survivor and the silent member", p)
		}
	}

	// New records everywhere; the silent member "processes" offsets 10..14
	// of its partitions and commits 15, then never speaks again.
	exp.produce(ctx, t, prod, "b", 60)
	for _, part := range zparts {
		if code := grpOffsetCommit(t, z, 8, group, zid, gen, topic, part, 15); code != 0 {
			t.Fatalf("OffsetCommit v8 by the silent member for %s[%d]: %s", topic, part, fzErrCode(code))
		}
		var evs []grpEvent
		for o := int64(10); o < 15; o++ {
			v, _ := exp.value(part, o)
			evs = append(evs, grpEvent{member: "silent", topic: topic, partition: part, offset: o, value: v})
		}
		l.add(append(evs, grpEvent{member: "silent", commit: true, topic: topic, partition: part, offset: 15})...)
	}

	// Not removed early: a DescribeGroups answered well within the
	// session timeout of the silent member's last request must list it.
	d := grpDescribe(ctx, t, adm, group)
	if time.Since(syncSent) < session-500*time.Millisecond {
		found := false
		for _, m := range d.Members {
			found = found || m.MemberID == zid
		}
		if !found || len(d.Members) != 2 {
			t.Errorf("%v after its last request, the silent member is gone: %d members %+v", time.Since(syncSent), len(d.Members), d.Members)
		}
	} else {
		t.Logf("skipping the early-removal check: the describe came %v after the SyncGroup", time.Since(syncSent))
	}

	// Removed after the session timeout; the survivor takes everything.
	grpWaitBalanced(t, session+20*time.Second, topic, parts, s)
	if took := time.Since(syncSent); took < session {
		t.Errorf("the silent member's partitions moved %v after its SyncGroup was sent, before its %v session timeout", took, session)
	}
	d = grpDescribe(ctx, t, adm, group)
	if len(d.Members) != 1 || d.Members[0].MemberID == zid || d.State != "Stable" {
		t.Errorf("after the session timeout: state %q, members %+v; want Stable with only the survivor", d.State, d.Members)
	}
	grpWantCode(t, "Heartbeat v4 by the evicted member", grpHeartbeat(t, z, 4, group, zid, gen), kerr.UnknownMemberID)
	grpWantCode(t, "OffsetCommit v8 by the evicted member", grpOffsetCommit(t, z, 8, group, zid, gen, topic, zparts[0], 16), kerr.UnknownMemberID)

	exp.produce(ctx, t, prod, "c", 60)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	s.Stop()
	if dups := grpCheckDelivery(t, l, exp); dups != 0 {
		t.Errorf("%d records delivered twice", dups)
	}
	for _, part := range zparts {
		first := int64(-1)
		for _, e := range l.snapshot() {
			if !e.commit && e.member == "survivor" && e.partition == part && e.offset >= 10 {
				first = e.offset
				break
			}
		}
		if first != 15 {
			t.Errorf("partition %d: the survivor resumed at offset %d, want 15 (the evicted member's commit)", part, first)
		}
	}
	grpReportErrs(t, s)
	fzCheckLogs(t, p)
}

// TestGroupStaticMembership: two static members (group.instance.id); one
// restarts: kgo closes a static member without LeaveGroup, so the group
// keeps it; the restarted client joins with the same instance id before the
// session timeout and gets its old assignment back with no rebalance: same
// generation on both members, the other member never revoked, a new member
// id for the restarted one (KIP-345) and the old id fenced. Once for the
// follower, once for the leader (KIP-814's skip-assignment path).
func TestGroupStaticMembership(t *testing.T) {
	p := grpStartBroker(t)
	for _, restart := range []string{"follower", "leader"} {
		t.Run(restart, func(t *testing.T) {
			ctx := testContext(t, 90*time.Second)
			adm := fzAdmin(t, p.Addr)
			topic, group := grpName(t, "grp-static"), grpName(t, "grp-static-g")
			const parts = 4
			fzCreateTopic(ctx, t, adm, topic, parts, nil)
			prod := grpProducer(t, p.Addr)
			exp := grpNewExpected(topic, parts)
			l := &grpLog{}
			hooks := map[string]*grpKeyCounter{}
			start := func(name, instance string) *grpMember {
				hooks[name] = &grpKeyCounter{}
				return grpStartMember(t, p.Addr, name, group, []string{topic}, l,
					kgo.Balancers(kgo.RangeBalancer()), kgo.InstanceID(instance),
					kgo.SessionTimeout(20*time.Second), kgo.WithHooks(hooks[name]))
			}
			// The first member is the leader (Kafka keeps the leader while
			// it stays in the group).
			first := start("first", "inst-first")
			grpWaitBalanced(t, 30*time.Second, topic, parts, first)
			second := start("second", "inst-second")
			grpWaitBalanced(t, 30*time.Second, topic, parts, first, second)
			exp.produce(ctx, t, prod, "a", 40)
			grpWaitConsumed(t, l, exp, 30*time.Second)

			x, other := second, first
			if restart == "leader" {
				x, other = first, second
			}
			xID, xGen := x.cl.GroupMetadata()
			oID, oGen := other.cl.GroupMetadata()
			if xGen != oGen || xGen <= 0 {
				t.Fatalf("generations %d and %d before the restart; want one positive generation", xGen, oGen)
			}
			xParts, oParts := x.Assigned(topic), other.Assigned(topic)
			oCallbacks := other.Callbacks()
			d := grpDescribe(ctx, t, adm, group)
			if d.State != "Stable" || len(d.Members) != 2 {
				t.Fatalf("before the restart: state %q with %d members", d.State, len(d.Members))
			}

			x.Close()
			if n := hooks[x.name].count(kmsg.LeaveGroup); n != 0 {
				t.Fatalf("kgo sent %d LeaveGroup requests closing a static member", n)
			}
			d = grpDescribe(ctx, t, adm, group)
			var kept bool
			for _, m := range d.Members {
				kept = kept || (m.InstanceID != nil && *m.InstanceID == "inst-"+x.name && m.MemberID == xID)
			}
			if !kept || len(d.Members) != 2 {
				t.Errorf("right after the static member closed (no LeaveGroup), the group has %d members %+v; want it kept until its session timeout", len(d.Members), d.Members)
			}

			exp.produce(ctx, t, prod, "b", 40)
			x2 := start(x.name+"-restarted", "inst-"+x.name)
			fzWaitFor(t, 20*time.Second, "restarted static member owns its old partitions", func() error {
				if got := x2.Assigned(topic); !slices.Equal(got, xParts) {
					return fmt.Errorf("owns %v, owned %v before", got, xParts)
				}
				return nil
			})
			grpWaitConsumed(t, l, exp, 30*time.Second)
			exp.produce(ctx, t, prod, "c", 40)
			grpWaitConsumed(t, l, exp, 30*time.Second)

			x2ID, x2Gen := x2.cl.GroupMetadata()
			oID2, oGen2 := other.cl.GroupMetadata()
			if x2Gen != xGen || oGen2 != oGen {
				t.Errorf("generation went from %d to %d (restarted member) and %d (other); a static rejoin must not rebalance", xGen, x2Gen, oGen2)
			}
			if oID2 != oID {
				t.Errorf("the other member's id changed from %q to %q", oID, oID2)
			}
			if x2ID == xID || x2ID == "" {
				t.Errorf("the restarted static member has member id %q, before %q; Kafka hands a rejoining static member a new id", x2ID, xID)
			}
			if n := other.Callbacks(); n != oCallbacks {
				t.Errorf("the other member ran %d partition callbacks during the restart (revoked: %v); a static rejoin must not touch it", n-oCallbacks, other.EverRevoked(topic))
			}
			if got := other.Assigned(topic); !slices.Equal(got, oParts) {
				t.Errorf("the other member owns %v, owned %v", got, oParts)
			}
			d = grpDescribe(ctx, t, adm, group)
			if d.State != "Stable" || len(d.Members) != 2 {
				t.Errorf("after the restart: state %q with %d members", d.State, len(d.Members))
			}
			for _, m := range d.Members {
				if m.InstanceID == nil {
					t.Errorf("member %s has no instance id", m.MemberID)
					continue
				}
				want, wantParts := oID, oParts
				if *m.InstanceID == "inst-"+x.name {
					want, wantParts = x2ID, xParts
				}
				if m.MemberID != want {
					t.Errorf("instance %s is member %s, want %s", *m.InstanceID, m.MemberID, want)
				}
				if got := grpAssignedTopics(m)[topic]; !slices.Equal(got, wantParts) {
					t.Errorf("instance %s assigned %v, want %v", *m.InstanceID, got, wantParts)
				}
			}

			// The replaced member id is fenced.
			t.Run("old-member-id-fenced", func(t *testing.T) {
				raw := fzDial(t, p.Addr)
				hb := kmsg.NewPtrHeartbeatRequest()
				hb.SetVersion(4)
				hb.Group, hb.MemberID, hb.Generation = group, xID, xGen
				hb.InstanceID = kmsg.StringPtr("inst-" + x.name)
				grpWantCode(t, "Heartbeat v4 with the replaced member id of a static instance",
					raw.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.FencedInstanceID)
				grpWantCode(t, "OffsetCommit v8 with the replaced member id of a static instance",
					grpOffsetCommitStatic(t, raw, group, xID, "inst-"+x.name, xGen, topic, 0, 1), kerr.FencedInstanceID)
			})

			x2.Stop()
			other.Stop()
			if dups := grpCheckDelivery(t, l, exp); dups != 0 {
				t.Errorf("%d records delivered twice", dups)
			}
			grpReportErrs(t, first, second, x2)
			grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())
		})
	}
	fzCheckLogs(t, p)
}

// TestGroupOffsetsSurviveRestart: committed offsets survive a clean stop
// (SIGTERM) and a kill -9 right after the commit was acknowledged; a member
// started after the restart resumes exactly at them.
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 150*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group, manual := grpName(t, "grp-restart"), grpName(t, "grp-restart-g"), grpName(t, "grp-restart-manual")
	const parts = 4
	fzCreateTopic(ctx, t, adm, topic, parts, nil)
	prod := grpProducer(t, p.Addr)
	exp := grpNewExpected(topic, parts)
	l := &grpLog{}
	member := func(name string) *grpMember {
		return grpStartMember(t, p.Addr, name, group, []string{topic}, l, kgo.Balancers(kgo.RangeBalancer()))
	}

	exp.produce(ctx, t, prod, "a", 40)
	c1 := member("c1")
	grpWaitConsumed(t, l, exp, 30*time.Second)
	c1.Close()
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())

	// A second group gets offsets from an admin commit (generation -1):
	// somewhere in the middle of each partition.
	manualAt := map[int32]int64{0: 3, 1: 10, 2: 7, 3: 0}
	grpAdminCommit(ctx, t, adm, manual, topic, manualAt)

	p.Stop()
	if code := p.ExitCode(); code != 0 {
		t.Errorf("gregor exited with %d on SIGTERM", code)
	}
	p.Restart()
	grpWaitCommitted(t, 30*time.Second, adm, group, topic, exp.ends())
	grpWaitCommitted(t, 30*time.Second, adm, manual, topic, manualAt)

	// The group resumes after its commits: nothing committed is read
	// again (grpCheckDelivery knows c1's acknowledged commits), nothing is
	// skipped.
	exp.produce(ctx, t, prod, "b", 40)
	c2 := member("c2")
	grpWaitConsumed(t, l, exp, 30*time.Second)

	// The manual group resumes at its mid-partition offsets.
	ml := &grpLog{}
	for part, at := range manualAt {
		for o := int64(0); o < at; o++ {
			v, _ := exp.value(part, o)
			ml.add(grpEvent{member: "admin", topic: topic, partition: part, offset: o, value: v})
		}
		ml.add(grpEvent{member: "admin", commit: true, topic: topic, partition: part, offset: at})
	}
	mm := grpStartMember(t, p.Addr, "manual", manual, []string{topic}, ml, kgo.Balancers(kgo.RangeBalancer()))
	grpWaitConsumed(t, ml, exp, 30*time.Second)
	mm.Close()
	for part, at := range manualAt {
		got := ml.consumedBy("manual", topic, 0)[part]
		if len(got) == 0 || got[0] != at {
			t.Errorf("manual group, partition %d: first offset consumed %v, want %d (the committed offset)", part, got, at)
		}
	}
	if dups := grpCheckDelivery(t, ml, exp); dups != 0 {
		t.Errorf("manual group: %d records delivered twice", dups)
	}

	// kill -9 right after acknowledged commits: c2's last commit, and an
	// admin commit issued just before the kill.
	exp.produce(ctx, t, prod, "c", 40)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	c2.Close()
	manualAt = map[int32]int64{0: 25, 1: 1, 2: 30, 3: 29}
	grpAdminCommit(ctx, t, adm, manual, topic, manualAt)
	p.Kill()
	p.Restart()
	grpWaitCommitted(t, 30*time.Second, adm, group, topic, exp.ends())
	grpWaitCommitted(t, 30*time.Second, adm, manual, topic, manualAt)

	exp.produce(ctx, t, prod, "d", 40)
	c3 := member("c3")
	grpWaitConsumed(t, l, exp, 30*time.Second)
	c3.Stop()
	if dups := grpCheckDelivery(t, l, exp); dups != 0 {
		t.Errorf("%d records delivered twice", dups)
	}
	grpReportErrs(t, c1, c2, c3, mm)
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())
	fzCheckLogs(t, p)
}

// grpAdminCommit commits offsets for an empty (or new) group through kadm
// (OffsetCommit with generation -1) and fails the test on any error.
func grpAdminCommit(ctx context.Context, t testing.TB, adm *kadm.Client, group, topic string, at map[int32]int64) {
	t.Helper()
	os := make(kadm.Offsets)
	for part, o := range at {
		os.Add(kadm.Offset{Topic: topic, Partition: part, At: o, LeaderEpoch: -1})
	}
	if err := adm.CommitAllOffsets(ctx, group, os); err != nil {
		t.Fatalf("admin commit %v for group %s: %v", at, group, err)
	}
}

// TestGroupKIP848SessionTimeout: the KIP-848 form of
// TestGroupSessionTimeoutEvictsSilentMember. A raw member
// (ConsumerGroupHeartbeat v1 on its own connection) joins next to a kgo
// member, heartbeats until the coordinator has moved half of the partitions
// to it (after the kgo member revoked them), commits an offset on each with
// its member epoch (OffsetCommit v9), then stops heartbeating. Once
// group.consumer.session.timeout.ms (3s here) has passed since its last
// heartbeat, and not before, the coordinator fences it and the survivor
// gets its partitions, resuming at its commits.
func TestGroupKIP848SessionTimeout(t *testing.T) {
	const session = 3 * time.Second
	p := grpStartBroker(t,
		"--config", "group.consumer.heartbeat.interval.ms=300",
		"--config", fmt.Sprintf("group.consumer.session.timeout.ms=%d", session/time.Millisecond))
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := grpName(t, "grp-848-silent"), grpName(t, "grp-848-silent-g")
	const parts = 4
	fzCreateTopic(ctx, t, adm, topic, parts, nil)
	prod := grpProducer(t, p.Addr)
	exp := grpNewExpected(topic, parts)
	l := &grpLog{}

	exp.produce(ctx, t, prod, "a", 40)
	s := grpStartMember(t, p.Addr, "survivor", group, []string{topic}, l,
		kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer())
	grpWaitBalanced(t, 30*time.Second, topic, parts, s)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())

	z := fzDial(t, p.Addr)
	const zid = "c2lsZW50c2lsZW50c2lsZW50"
	var (
		epoch    int32
		owned    []kmsg.ConsumerGroupHeartbeatRequestTopic
		zparts   []int32
		lastSent time.Time
	)
	heartbeat := func(join bool) {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.SetVersion(1)
		req.Group, req.MemberID, req.MemberEpoch = group, zid, epoch
		req.Topics = owned
		if req.Topics == nil {
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		}
		if join {
			req.RebalanceTimeoutMillis = 10000
			req.SubscribedTopicNames = []string{topic}
			req.ServerAssignor = kmsg.StringPtr("range")
		}
		lastSent = time.Now()
		resp := z.roundTrip(req).(*kmsg.ConsumerGroupHeartbeatResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("ConsumerGroupHeartbeat v1 of the raw member at epoch %d: %s", epoch, fzErrCode(resp.ErrorCode))
		}
		epoch = resp.MemberEpoch
		if resp.Assignment != nil {
			owned, zparts = nil, nil
			for _, tp := range resp.Assignment.Topics {
				rt := kmsg.NewConsumerGroupHeartbeatRequestTopic()
				rt.TopicID, rt.Partitions = tp.TopicID, tp.Partitions
				owned = append(owned, rt)
				zparts = append(zparts, tp.Partitions...)
			}
			slices.Sort(zparts)
		}
	}
	heartbeat(true)
	deadline := time.Now().Add(20 * time.Second)
	for len(zparts) != parts/2 {
		if time.Now().After(deadline) {
			t.Fatalf("the raw KIP-848 member was never given %d partitions (has %v, epoch %d); the survivor owns %v", parts/2, zparts, epoch, s.Assigned(topic))
		}
		time.Sleep(200 * time.Millisecond)
		heartbeat(false)
	}
	grpWaitBalanced(t, 20*time.Second, topic, parts-int32(len(zparts)), s)
	for _, part := range s.Assigned(topic) {
		if slices.Contains(zparts, part) {
			t.Fatalf("partition %d owned by both the survivor and the raw member", part)
		}
	}

	exp.produce(ctx, t, prod, "b", 40)
	for _, part := range zparts {
		if code := grpOffsetCommit(t, z, 9, group, zid, epoch, topic, part, 15); code != 0 {
			t.Fatalf("OffsetCommit v9 by the raw member (epoch %d) for %s[%d]: %s", epoch, topic, part, fzErrCode(code))
		}
		var evs []grpEvent
		for o := int64(10); o < 15; o++ {
			v, _ := exp.value(part, o)
			evs = append(evs, grpEvent{member: "silent", topic: topic, partition: part, offset: o, value: v})
		}
		l.add(append(evs, grpEvent{member: "silent", commit: true, topic: topic, partition: part, offset: 15})...)
	}
	silentFrom := lastSent

	grpWaitBalanced(t, session+20*time.Second, topic, parts, s)
	if took := time.Since(silentFrom); took < session {
		t.Errorf("the silent member's partitions moved %v after its last heartbeat was sent, before the %v session timeout", took, session)
	}
	ds, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeConsumerGroups: %v", err)
	}
	if d := ds[group]; len(d.Members) != 1 || d.Members[0].MemberID == zid {
		t.Errorf("after the session timeout: members %+v, want only the survivor", d.Members)
	}
	exp.produce(ctx, t, prod, "c", 40)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	s.Stop()
	if dups := grpCheckDelivery(t, l, exp); dups != 0 {
		t.Errorf("%d records delivered twice", dups)
	}
	for _, part := range zparts {
		first := int64(-1)
		for _, e := range l.snapshot() {
			if !e.commit && e.member == "survivor" && e.partition == part && e.offset >= 10 {
				first = e.offset
				break
			}
		}
		if first != 15 {
			t.Errorf("partition %d: the survivor resumed at offset %d, want 15 (the fenced member's commit)", part, first)
		}
	}
	grpReportErrs(t, s)
	fzCheckLogs(t, p)
}
