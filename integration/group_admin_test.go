package integration

// Group administration through kadm against Gregor: DescribeGroups, Lag,
// ListGroups with a state filter, DeleteGroups and OffsetDelete, with the
// error codes Kafka gives (NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND,
// GROUP_SUBSCRIBED_TO_TOPIC).

import (
	"context"
	"errors"
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

// grpListed lists groups with the given state filter.
func grpListed(ctx context.Context, t testing.TB, adm *kadm.Client, states ...string) kadm.ListedGroups {
	t.Helper()
	ls, err := adm.ListGroups(ctx, states...)
	if err != nil {
		t.Fatalf("ListGroups(%v): %v", states, err)
	}
	return ls
}

// grpCommitFrom commits offsets through a member's own client (its member
// id and generation) and fails the test on any error.
func grpCommitFrom(ctx context.Context, t testing.TB, m *grpMember, topic string, at map[int32]int64) {
	t.Helper()
	offs := map[string]map[int32]kgo.EpochOffset{topic: {}}
	for p, o := range at {
		offs[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	var cerr error
	m.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s[%d]: %w", rt.Topic, rp.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		t.Fatalf("member %s commit %v: %v", m.name, at, cerr)
	}
}

// TestGroupAdmin: one broker, three groups.
//
//   - lag (2 idle members on a 3-partition topic, commits by the members):
//     DescribeGroups reports Stable, protocol type "consumer", protocol
//     "range", both members with client id, host, subscription and the
//     assignment each member was given; Lag reports commit, end offset and
//     lag per partition and who owns it.
//   - commit-only (an admin commit, no members): Empty, protocol type "".
//   - ListGroups with no filter, with "Stable", "Empty" and a lower-case
//     "empty" (Kafka matches states case-insensitively).
//   - DeleteGroups: NON_EMPTY_GROUP while members exist (nothing deleted),
//     success once empty; offsets gone and the group Dead / not found
//     afterwards; GROUP_ID_NOT_FOUND for a group that does not exist.
//   - OffsetDelete: GROUP_SUBSCRIBED_TO_TOPIC for the topic members are
//     subscribed to (offsets kept), success for another topic (offsets
//     gone), success for the first topic once the group is empty;
//     GROUP_ID_NOT_FOUND for an unknown group.
func TestGroupAdmin(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, other := grpName(t, "grp-adm"), grpName(t, "grp-adm-other")
	lagGroup, emptyGroup, odGroup := grpName(t, "grp-adm-lag"), grpName(t, "grp-adm-empty"), grpName(t, "grp-adm-od")
	fzCreateTopic(ctx, t, adm, topic, 3, nil)
	fzCreateTopic(ctx, t, adm, other, 2, nil)
	prod := grpProducer(t, p.Addr)
	var recs []*kgo.Record
	for part, n := range map[int32]int{0: 10, 1: 5, 2: 3} {
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: []byte(fmt.Sprintf("v%d-%d", part, i))})
		}
	}
	recs = append(recs, &kgo.Record{Topic: other, Partition: 0, Value: []byte("o")}, &kgo.Record{Topic: other, Partition: 1, Value: []byte("o")})
	fzProduceSync(ctx, t, prod, recs...)

	// ---- DescribeGroups and Lag ----
	a := grpStartIdle(t, p.Addr, "adm-a", lagGroup, []string{topic}, kgo.Balancers(kgo.RangeBalancer()))
	b := grpStartIdle(t, p.Addr, "adm-b", lagGroup, []string{topic}, kgo.Balancers(kgo.RangeBalancer()))
	grpWaitBalanced(t, 30*time.Second, topic, 3, a, b)
	owner := map[int32]*grpMember{}
	for _, m := range []*grpMember{a, b} {
		for _, part := range m.Assigned(topic) {
			owner[part] = m
		}
	}
	grpCommitFrom(ctx, t, owner[0], topic, map[int32]int64{0: 4})
	grpCommitFrom(ctx, t, owner[1], topic, map[int32]int64{1: 5})

	d := grpDescribe(ctx, t, adm, lagGroup)
	if d.Err != nil || d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != "range" || len(d.Members) != 2 {
		t.Fatalf("DescribeGroups(%s): err %v (%s), state %q, protocol type %q, protocol %q, %d members; want Stable consumer range with 2 members",
			lagGroup, d.Err, d.ErrMessage, d.State, d.ProtocolType, d.Protocol, len(d.Members))
	}
	seen := map[int32]string{}
	for _, dm := range d.Members {
		var m *grpMember
		for _, c := range []*grpMember{a, b} {
			if dm.ClientID == "gregor-it-group-"+c.name {
				m = c
			}
		}
		if m == nil {
			t.Errorf("DescribeGroups: member %s has client id %q, not one of ours", dm.MemberID, dm.ClientID)
			continue
		}
		if id, _ := m.cl.GroupMetadata(); dm.MemberID != id {
			t.Errorf("DescribeGroups: %s is member %q, the client says %q", m.name, dm.MemberID, id)
		}
		if !strings.Contains(dm.ClientHost, "127.0.0.1") {
			t.Errorf("DescribeGroups: %s client host %q, want the client's address 127.0.0.1", m.name, dm.ClientHost)
		}
		if dm.InstanceID != nil {
			t.Errorf("DescribeGroups: %s has instance id %q, it is dynamic", m.name, *dm.InstanceID)
		}
		if meta, ok := dm.Join.AsConsumer(); !ok || !slices.Equal(meta.Topics, []string{topic}) {
			t.Errorf("DescribeGroups: %s subscription %+v, want [%s]", m.name, meta, topic)
		}
		got := grpAssignedTopics(dm)
		if !slices.Equal(got[topic], m.Assigned(topic)) || len(got) != 1 {
			t.Errorf("DescribeGroups: %s assigned %v, the member owns %v", m.name, got, m.Assigned(topic))
		}
		for _, part := range got[topic] {
			if prev, dup := seen[part]; dup {
				t.Errorf("DescribeGroups: partition %d assigned to %s and %s", part, prev, m.name)
			}
			seen[part] = m.name
		}
	}

	lags, err := adm.Lag(ctx, lagGroup)
	if err != nil {
		t.Fatalf("Lag(%s): %v", lagGroup, err)
	}
	gl, ok := lags[lagGroup]
	if !ok || gl.Error() != nil || gl.State != "Stable" {
		t.Fatalf("Lag(%s): %+v", lagGroup, lags)
	}
	for part, want := range map[int32]struct{ commit, end, lag int64 }{0: {4, 10, 6}, 1: {5, 5, 0}, 2: {-1, 3, 3}} {
		ml, ok := gl.Lag.Lookup(topic, part)
		if !ok {
			t.Errorf("Lag: no entry for %s[%d]", topic, part)
			continue
		}
		if ml.Err != nil || ml.Commit.At != want.commit || ml.End.Offset != want.end || ml.Lag != want.lag {
			t.Errorf("Lag %s[%d]: commit %d, end %d, lag %d, err %v; want commit %d, end %d, lag %d", topic, part, ml.Commit.At, ml.End.Offset, ml.Lag, ml.Err, want.commit, want.end, want.lag)
		}
		if ml.Member == nil || ml.Member.ClientID != "gregor-it-group-"+owner[part].name {
			t.Errorf("Lag %s[%d]: member %+v, want %s", topic, part, ml.Member, owner[part].name)
		}
	}

	// ---- ListGroups ----
	grpAdminCommit(ctx, t, adm, emptyGroup, topic, map[int32]int64{0: 1})
	all := grpListed(ctx, t, adm)
	if g, ok := all[lagGroup]; !ok || g.State != "Stable" || g.ProtocolType != "consumer" {
		t.Errorf("ListGroups: %s = %+v (listed %v); want Stable, consumer", lagGroup, g, all.Groups())
	}
	if g, ok := all[emptyGroup]; !ok || g.State != "Empty" || g.ProtocolType != "" {
		t.Errorf("ListGroups: %s = %+v (listed %v); want Empty with protocol type \"\" (a group created by an admin commit)", emptyGroup, g, all.Groups())
	}
	for _, f := range []struct {
		states      []string
		in, notIn   string
		description string
	}{
		{[]string{"Stable"}, lagGroup, emptyGroup, "Stable"},
		{[]string{"Empty"}, emptyGroup, lagGroup, "Empty"},
		{[]string{"empty"}, emptyGroup, lagGroup, "lower-case empty"},
		{[]string{"PreparingRebalance", "Dead"}, "", lagGroup, "PreparingRebalance or Dead"},
	} {
		ls := grpListed(ctx, t, adm, f.states...)
		if _, ok := ls[f.in]; f.in != "" && !ok {
			t.Errorf("ListGroups(%s) lacks %s: %v", f.description, f.in, ls.Groups())
		}
		if _, ok := ls[f.notIn]; ok {
			t.Errorf("ListGroups(%s) lists %s: %v", f.description, f.notIn, ls.Groups())
		}
		for _, g := range ls {
			if !slices.ContainsFunc(f.states, func(s string) bool { return strings.EqualFold(s, g.State) }) {
				t.Errorf("ListGroups(%s) lists %s in state %q", f.description, g.Group, g.State)
			}
		}
	}

	// ---- DeleteGroups ----
	if _, err := adm.DeleteGroup(ctx, lagGroup); !errors.Is(err, kerr.NonEmptyGroup) {
		t.Errorf("DeleteGroup(%s) with 2 members: %v, want NON_EMPTY_GROUP", lagGroup, err)
	}
	if d := grpDescribe(ctx, t, adm, lagGroup); d.State != "Stable" || len(d.Members) != 2 {
		t.Errorf("after a refused DeleteGroup: state %q with %d members", d.State, len(d.Members))
	}
	if got := grpCommitted(ctx, t, adm, lagGroup, topic); !grpSameOffsets(got, map[int32]int64{0: 4, 1: 5}) {
		t.Errorf("after a refused DeleteGroup: committed %v, want {0:4 1:5}", got)
	}
	a.Close()
	b.Close()
	fzWaitFor(t, 20*time.Second, lagGroup+" empty after its members left", func() error {
		if d := grpDescribe(ctx, t, adm, lagGroup); d.State != "Empty" || len(d.Members) != 0 {
			return fmt.Errorf("state %q with %d members", d.State, len(d.Members))
		}
		return nil
	})
	if got := grpCommitted(ctx, t, adm, lagGroup, topic); !grpSameOffsets(got, map[int32]int64{0: 4, 1: 5}) {
		t.Errorf("empty group keeps its offsets: committed %v, want {0:4 1:5}", got)
	}
	rs, err := adm.DeleteGroups(ctx, lagGroup, emptyGroup)
	if err != nil {
		t.Fatalf("DeleteGroups(%s, %s): %v", lagGroup, emptyGroup, err)
	}
	for _, g := range []string{lagGroup, emptyGroup} {
		if r, ok := rs[g]; !ok || r.Err != nil {
			t.Errorf("DeleteGroups: %s: %+v (present %v), want success", g, r, ok)
		}
		if got := grpCommitted(ctx, t, adm, g, topic); len(got) != 0 {
			t.Errorf("deleted group %s still has committed offsets %v", g, got)
		}
		d := grpDescribe(ctx, t, adm, g)
		if !errors.Is(d.Err, kerr.GroupIDNotFound) || d.State != "Dead" || len(d.Members) != 0 {
			t.Errorf("DescribeGroups(deleted %s): err %v, state %q, %d members; want GROUP_ID_NOT_FOUND, Dead", g, d.Err, d.State, len(d.Members))
		}
	}
	all = grpListed(ctx, t, adm)
	for _, g := range []string{lagGroup, emptyGroup} {
		if _, ok := all[g]; ok {
			t.Errorf("ListGroups lists the deleted group %s", g)
		}
	}
	if _, err := adm.DeleteGroup(ctx, lagGroup); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("DeleteGroup(%s) again: %v, want GROUP_ID_NOT_FOUND", lagGroup, err)
	}
	if _, err := adm.DeleteGroup(ctx, grpName(t, "grp-adm-never")); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("DeleteGroup(unknown group): %v, want GROUP_ID_NOT_FOUND", err)
	}

	// ---- OffsetDelete ----
	grpAdminCommit(ctx, t, adm, odGroup, topic, map[int32]int64{0: 2, 1: 3, 2: 1})
	grpAdminCommit(ctx, t, adm, odGroup, other, map[int32]int64{0: 1, 1: 1})
	c := grpStartIdle(t, p.Addr, "adm-c", odGroup, []string{topic}, kgo.Balancers(kgo.RangeBalancer()))
	grpWaitBalanced(t, 30*time.Second, topic, 3, c)
	dr, err := adm.DeleteOffsets(ctx, odGroup, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	if err != nil {
		t.Fatalf("DeleteOffsets(%s, subscribed %s): %v", odGroup, topic, err)
	}
	for part := int32(0); part < 3; part++ {
		if perr, ok := dr[topic][part]; !ok || !errors.Is(perr, kerr.GroupSubscribedToTopic) {
			t.Errorf("DeleteOffsets %s[%d] while a member is subscribed: %v (present %v), want GROUP_SUBSCRIBED_TO_TOPIC", topic, part, perr, ok)
		}
	}
	dr, err = adm.DeleteOffsets(ctx, odGroup, kadm.TopicsSet{other: {0: {}, 1: {}}})
	if err != nil {
		t.Fatalf("DeleteOffsets(%s, unsubscribed %s): %v", odGroup, other, err)
	}
	if len(dr[other]) != 2 || dr.Error() != nil {
		t.Errorf("DeleteOffsets %s: %v, want success for partitions 0 and 1", other, dr)
	}
	if got := grpCommitted(ctx, t, adm, odGroup, topic); !grpSameOffsets(got, map[int32]int64{0: 2, 1: 3, 2: 1}) {
		t.Errorf("after OffsetDelete: %s committed %v, want unchanged {0:2 1:3 2:1}", topic, got)
	}
	if got := grpCommitted(ctx, t, adm, odGroup, other); len(got) != 0 {
		t.Errorf("after OffsetDelete: %s still committed %v", other, got)
	}
	c.Close()
	fzWaitFor(t, 20*time.Second, odGroup+" empty", func() error {
		if d := grpDescribe(ctx, t, adm, odGroup); d.State != "Empty" {
			return fmt.Errorf("state %q", d.State)
		}
		return nil
	})
	dr, err = adm.DeleteOffsets(ctx, odGroup, kadm.TopicsSet{topic: {1: {}}})
	if err != nil || dr.Error() != nil {
		t.Errorf("DeleteOffsets %s[1] of an empty group: %v / %v, want success", topic, err, dr)
	}
	if got := grpCommitted(ctx, t, adm, odGroup, topic); !grpSameOffsets(got, map[int32]int64{0: 2, 2: 1}) {
		t.Errorf("after OffsetDelete of %s[1]: committed %v, want {0:2 2:1}", topic, got)
	}
	if _, err := adm.DeleteOffsets(ctx, grpName(t, "grp-adm-never"), kadm.TopicsSet{topic: {0: {}}}); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("DeleteOffsets(unknown group): %v, want GROUP_ID_NOT_FOUND", err)
	}

	fzCheckLogs(t, p)
}
