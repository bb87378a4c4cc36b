package integration

// Group protocol requests sent raw (exact versions, one connection per
// member, fzRaw) against Gregor, checking the error codes Kafka's group
// coordinator answers with (Kafka 4: group-coordinator's
// GroupMetadataManager, OffsetMetadataManager and ClassicGroup).

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// grpReadResponse reads the response to a request sent earlier with send.
func grpReadResponse(t testing.TB, raw *fzRaw, corr int32, req kmsg.Request, timeout time.Duration) kmsg.Response {
	t.Helper()
	frame, err := raw.readFrame(timeout)
	if err != nil {
		t.Fatalf("%s v%d: reading response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	gotCorr, resp, err := fzParseResponse(frame, req.Key(), req.GetVersion())
	if err != nil {
		t.Fatal(err)
	}
	if gotCorr != corr {
		t.Fatalf("%s: correlation id %d, want %d", kmsg.NameForKey(req.Key()), gotCorr, corr)
	}
	return resp
}

func grpLeave(t testing.TB, raw *fzRaw, version int16, group string, members ...string) *kmsg.LeaveGroupResponse {
	t.Helper()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.SetVersion(version)
	req.Group = group
	if version < 3 {
		req.MemberID = members[0]
	}
	for _, id := range members {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = id
		req.Members = append(req.Members, m)
	}
	return raw.roundTrip(req).(*kmsg.LeaveGroupResponse)
}

func grpDescribeRaw(t testing.TB, raw *fzRaw, version int16, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.SetVersion(version)
	req.Groups = []string{group}
	resp := raw.roundTrip(req).(*kmsg.DescribeGroupsResponse)
	if len(resp.Groups) != 1 || resp.Groups[0].Group != group {
		t.Fatalf("DescribeGroups v%d %s: response groups %+v", version, group, resp.Groups)
	}
	return resp.Groups[0]
}

// TestGroupErrorCodes: FindCoordinator, the classic member protocol with its
// errors, unknown groups, the internal topic, and KIP-848 heartbeat errors.
func TestGroupErrorCodes(t *testing.T) {
	p := grpStartBroker(t, "--config", "group.consumer.heartbeat.interval.ms=500", "--config", "group.max.size=2")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := grpName(t, "grp-err")
	fzCreateTopic(ctx, t, adm, topic, 2, nil)
	host, port := grpBrokerPort(t, p.Addr)

	t.Run("FindCoordinator", func(t *testing.T) {
		raw := fzDial(t, p.Addr)
		for v := int16(0); v <= 3; v++ {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.SetVersion(v)
			req.CoordinatorKey = "grp-fc-single"
			resp := raw.roundTrip(req).(*kmsg.FindCoordinatorResponse)
			if resp.ErrorCode != 0 || resp.NodeID != 1 || resp.Host != host || resp.Port != port {
				t.Errorf("FindCoordinator v%d: error %s, node %d at %s:%d; want node 1 at %s:%d", v, fzErrCode(resp.ErrorCode), resp.NodeID, resp.Host, resp.Port, host, port)
			}
		}
		for v := int16(4); v <= 6; v++ {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.SetVersion(v)
			keys := []string{"grp-fc-a", "grp-fc-b", "grp-fc-c"}
			req.CoordinatorKeys = keys
			resp := raw.roundTrip(req).(*kmsg.FindCoordinatorResponse)
			var got []string
			for _, c := range resp.Coordinators {
				got = append(got, c.Key)
				if c.ErrorCode != 0 || c.NodeID != 1 || c.Host != host || c.Port != port {
					t.Errorf("FindCoordinator v%d key %s: error %s, node %d at %s:%d; want node 1 at %s:%d", v, c.Key, fzErrCode(c.ErrorCode), c.NodeID, c.Host, c.Port, host, port)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, keys) {
				t.Errorf("FindCoordinator v%d for keys %v answered keys %v", v, keys, got)
			}
		}
	})

	t.Run("JoinGroup", func(t *testing.T) {
		raw := fzDial(t, p.Addr)
		group := grpName(t, "grp-err-join")
		for _, v := range []int16{4, 5, 9} {
			g := fmt.Sprintf("%s-v%d", group, v)
			resp := grpJoinNew(t, raw, v, g, 10000, 10000, topic)
			if resp.Generation != 1 || resp.LeaderID != resp.MemberID || len(resp.Members) != 1 || resp.Members[0].MemberID != resp.MemberID {
				t.Errorf("JoinGroup v%d (sole member): generation %d, leader %q, members %+v; want generation 1, itself leader and only member", v, resp.Generation, resp.LeaderID, resp.Members)
			}
			if resp.Protocol == nil || *resp.Protocol != "range" {
				t.Errorf("JoinGroup v%d: protocol %v, want range", v, resp.Protocol)
			}
			if v >= 7 && (resp.ProtocolType == nil || *resp.ProtocolType != "consumer") {
				t.Errorf("JoinGroup v%d: protocol type %v, want consumer", v, resp.ProtocolType)
			}
			if len(resp.Members) == 1 && string(resp.Members[0].ProtocolMetadata) != string(grpConsumerMetadata(topic)) {
				t.Errorf("JoinGroup v%d: the leader got metadata %x, the member sent %x", v, resp.Members[0].ProtocolMetadata, grpConsumerMetadata(topic))
			}
		}
		// Before v4 there is no member-id handshake: the first join joins.
		resp := grpJoin(t, raw, grpJoinRequest(3, group+"-v3", "", 10000, 10000, topic))
		if resp.ErrorCode != 0 || resp.MemberID == "" || resp.Generation != 1 {
			t.Errorf("JoinGroup v3 with no member id: error %s, member %q, generation %d; want a direct join (KIP-394 is v4+)", fzErrCode(resp.ErrorCode), resp.MemberID, resp.Generation)
		}
		for _, c := range []struct {
			what string
			req  *kmsg.JoinGroupRequest
			want *kerr.Error
		}{
			{"session timeout below group.min.session.timeout.ms (1000)", grpJoinRequest(5, group+"-st", "", 999, 10000, topic), kerr.InvalidSessionTimeout},
			{"session timeout above group.max.session.timeout.ms (1800000)", grpJoinRequest(5, group+"-st", "", 1800001, 10000, topic), kerr.InvalidSessionTimeout},
			{"empty group id", grpJoinRequest(5, "", "", 10000, 10000, topic), kerr.InvalidGroupID},
			{"unknown member id, unknown group", grpJoinRequest(5, group+"-nobody", "nobody", 10000, 10000, topic), kerr.UnknownMemberID},
			{"unknown member id, existing group", grpJoinRequest(5, group+"-v5", "nobody", 10000, 10000, topic), kerr.UnknownMemberID},
			{"no protocol in common with the members", grpJoinRequest(5, group+"-v5", "", 10000, 10000, topic, "roundrobin"), kerr.InconsistentGroupProtocol},
		} {
			resp := grpJoin(t, raw, c.req)
			grpWantCode(t, "JoinGroup, "+c.what, resp.ErrorCode, c.want)
		}
		other := grpJoinRequest(5, group+"-v5", "", 10000, 10000, topic)
		other.ProtocolType = "connect"
		grpWantCode(t, "JoinGroup with protocol type connect into a consumer group", grpJoin(t, raw, other).ErrorCode, kerr.InconsistentGroupProtocol)
	})

	t.Run("MemberLifecycle", func(t *testing.T) {
		group := grpName(t, "grp-err-life")
		c1, c2 := fzDial(t, p.Addr), fzDial(t, p.Addr)

		// m1 alone: generation 1, leader, synced.
		j1 := grpJoinNew(t, c1, 5, group, 10000, 10000, topic)
		m1 := j1.MemberID
		s1 := c1.roundTrip(grpSyncRequest(3, group, m1, 1, map[string][]byte{m1: grpConsumerAssignment(topic, 0, 1)})).(*kmsg.SyncGroupResponse)
		if s1.ErrorCode != 0 || string(s1.MemberAssignment) != string(grpConsumerAssignment(topic, 0, 1)) {
			t.Fatalf("SyncGroup v3 by the leader: error %s, assignment %x", fzErrCode(s1.ErrorCode), s1.MemberAssignment)
		}
		grpWantCode(t, "Heartbeat v3 of a stable member", grpHeartbeat(t, c1, 3, group, m1, 1), nil)

		// Wrong identities against a stable group.
		grpWantCode(t, "Heartbeat v4 with an unknown member id", grpHeartbeat(t, c1, 4, group, "nobody", 1), kerr.UnknownMemberID)
		grpWantCode(t, "Heartbeat v4 with a wrong generation", grpHeartbeat(t, c1, 4, group, m1, 2), kerr.IllegalGeneration)
		grpWantCode(t, "Heartbeat v0 with a wrong generation", grpHeartbeat(t, c1, 0, group, m1, 0), kerr.IllegalGeneration)
		grpWantCode(t, "SyncGroup v5 with an unknown member id",
			c1.roundTrip(grpSyncRequest(5, group, "nobody", 1, nil)).(*kmsg.SyncGroupResponse).ErrorCode, kerr.UnknownMemberID)
		grpWantCode(t, "SyncGroup v5 with a wrong generation",
			c1.roundTrip(grpSyncRequest(5, group, m1, 7, nil)).(*kmsg.SyncGroupResponse).ErrorCode, kerr.IllegalGeneration)
		grpWantCode(t, "OffsetCommit v8 with an unknown member id", grpOffsetCommit(t, c1, 8, group, "nobody", 1, topic, 0, 1), kerr.UnknownMemberID)
		grpWantCode(t, "OffsetCommit v8 with a wrong generation", grpOffsetCommit(t, c1, 8, group, m1, 5, topic, 0, 1), kerr.IllegalGeneration)
		grpWantCode(t, "OffsetCommit v8 with generation -1 and no member id to a group with members", grpOffsetCommit(t, c1, 8, group, "", -1, topic, 0, 1), kerr.UnknownMemberID)
		grpWantCode(t, "OffsetCommit v2 by the member", grpOffsetCommit(t, c1, 2, group, m1, 1, topic, 0, 1), nil)
		grpWantCode(t, "OffsetCommit v8 by the member", grpOffsetCommit(t, c1, 8, group, m1, 1, topic, 0, 2), nil)

		// m2 arrives: the group prepares a rebalance, m1 hears it from its
		// heartbeat.
		first := grpJoin(t, c2, grpJoinRequest(5, group, "", 10000, 10000, topic))
		if first.ErrorCode != kerr.MemberIDRequired.Code || first.MemberID == "" {
			t.Fatalf("JoinGroup v5 of a second member: %s, member id %q; want MEMBER_ID_REQUIRED", fzErrCode(first.ErrorCode), first.MemberID)
		}
		m2 := first.MemberID
		join2 := grpJoinRequest(5, group, m2, 10000, 10000, topic)
		corr2 := c2.send(join2)
		deadline := time.Now().Add(10 * time.Second)
		for {
			code := grpHeartbeat(t, c1, 4, group, m1, 1)
			if code == kerr.RebalanceInProgress.Code {
				break
			}
			if code != 0 || time.Now().After(deadline) {
				t.Fatalf("Heartbeat v4 of m1 while m2 joins: %s; want NONE until REBALANCE_IN_PROGRESS", fzErrCode(code))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if d := grpDescribeRaw(t, c1, 5, group); d.State != "PreparingRebalance" {
			t.Errorf("DescribeGroups v5 while m2 waits to join: state %q, want PreparingRebalance", d.State)
		}
		grpWantCode(t, "OffsetCommit v8 of the current generation during PreparingRebalance", grpOffsetCommit(t, c1, 8, group, m1, 1, topic, 0, 3), nil)
		grpWantCode(t, "SyncGroup v5 of the current generation during PreparingRebalance",
			c1.roundTrip(grpSyncRequest(5, group, m1, 1, nil)).(*kmsg.SyncGroupResponse).ErrorCode, kerr.RebalanceInProgress)

		// m1 rejoins: both joins complete in generation 2, m1 stays leader.
		j1 = grpJoin(t, c1, grpJoinRequest(5, group, m1, 10000, 10000, topic))
		j2 := grpReadResponse(t, c2, corr2, join2, 20*time.Second).(*kmsg.JoinGroupResponse)
		if j1.ErrorCode != 0 || j1.Generation != 2 || j1.LeaderID != m1 || len(j1.Members) != 2 {
			t.Fatalf("m1's rejoin: error %s, generation %d, leader %q, %d members; want generation 2, leader m1 (%s), 2 members", fzErrCode(j1.ErrorCode), j1.Generation, j1.LeaderID, len(j1.Members), m1)
		}
		if j2.ErrorCode != 0 || j2.Generation != 2 || j2.LeaderID != m1 || j2.MemberID != m2 || len(j2.Members) != 0 {
			t.Fatalf("m2's join: error %s, generation %d, leader %q, member %q, %d members; want generation 2, leader m1, itself, no member list (followers get none)",
				fzErrCode(j2.ErrorCode), j2.Generation, j2.LeaderID, j2.MemberID, len(j2.Members))
		}

		// CompletingRebalance: heartbeats are fine, commits are not.
		grpWantCode(t, "Heartbeat v4 during CompletingRebalance", grpHeartbeat(t, c1, 4, group, m1, 2), nil)
		grpWantCode(t, "Heartbeat v4 with the previous generation", grpHeartbeat(t, c1, 4, group, m1, 1), kerr.IllegalGeneration)
		grpWantCode(t, "OffsetCommit v8 during CompletingRebalance", grpOffsetCommit(t, c1, 8, group, m1, 2, topic, 0, 4), kerr.RebalanceInProgress)
		if d := grpDescribeRaw(t, c1, 5, group); d.State != "CompletingRebalance" || len(d.Members) != 2 {
			t.Errorf("DescribeGroups v5 before the leader syncs: state %q with %d members, want CompletingRebalance with 2", d.State, len(d.Members))
		}

		// The follower's sync waits for the leader's.
		sync2 := grpSyncRequest(5, group, m2, 2, nil)
		corrS2 := c2.send(sync2)
		s1 = c1.roundTrip(grpSyncRequest(5, group, m1, 2, map[string][]byte{
			m1: grpConsumerAssignment(topic, 0),
			m2: grpConsumerAssignment(topic, 1),
		})).(*kmsg.SyncGroupResponse)
		s2 := grpReadResponse(t, c2, corrS2, sync2, 20*time.Second).(*kmsg.SyncGroupResponse)
		if s1.ErrorCode != 0 || string(s1.MemberAssignment) != string(grpConsumerAssignment(topic, 0)) {
			t.Errorf("leader's SyncGroup v5: %s, assignment %x", fzErrCode(s1.ErrorCode), s1.MemberAssignment)
		}
		if s2.ErrorCode != 0 || string(s2.MemberAssignment) != string(grpConsumerAssignment(topic, 1)) {
			t.Errorf("follower's SyncGroup v5: %s, assignment %x; want the leader's assignment for it", fzErrCode(s2.ErrorCode), s2.MemberAssignment)
		}
		if s2.ProtocolType == nil || *s2.ProtocolType != "consumer" || s2.Protocol == nil || *s2.Protocol != "range" {
			t.Errorf("SyncGroup v5: protocol type %v, protocol %v; want consumer, range", s2.ProtocolType, s2.Protocol)
		}
		grpWantCode(t, "Heartbeat v4 of m2 once stable", grpHeartbeat(t, c2, 4, group, m2, 2), nil)
		grpWantCode(t, "OffsetCommit v8 of m2 once stable", grpOffsetCommit(t, c2, 8, group, m2, 2, topic, 1, 1), nil)
		d := grpDescribeRaw(t, c1, 5, group)
		if d.ErrorCode != 0 || d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != "range" || len(d.Members) != 2 {
			t.Errorf("DescribeGroups v5: %s, state %q, protocol type %q, protocol %q, %d members", fzErrCode(d.ErrorCode), d.State, d.ProtocolType, d.Protocol, len(d.Members))
		}
		for _, m := range d.Members {
			want := grpConsumerAssignment(topic, 0)
			if m.MemberID == m2 {
				want = grpConsumerAssignment(topic, 1)
			}
			if string(m.MemberAssignment) != string(want) || string(m.ProtocolMetadata) != string(grpConsumerMetadata(topic)) {
				t.Errorf("DescribeGroups v5 member %s: assignment %x metadata %x; want %x and %x", m.MemberID, m.MemberAssignment, m.ProtocolMetadata, want, grpConsumerMetadata(topic))
			}
			if m.ClientID != "gregor-it-raw" {
				t.Errorf("DescribeGroups v5 member %s: client id %q, want gregor-it-raw", m.MemberID, m.ClientID)
			}
		}
		ofr := kmsg.NewPtrOffsetFetchRequest()
		ofr.SetVersion(5)
		ofr.Group = group
		ofr.Topics = nil // all committed topics
		of := c1.roundTrip(ofr).(*kmsg.OffsetFetchResponse)
		got := map[int32]int64{}
		for _, rt := range of.Topics {
			for _, rp := range rt.Partitions {
				if rt.Topic == topic && rp.ErrorCode == 0 {
					got[rp.Partition] = rp.Offset
				}
			}
		}
		if of.ErrorCode != 0 || !grpSameOffsets(got, map[int32]int64{0: 3, 1: 1}) {
			t.Errorf("OffsetFetch v5 (all topics): %s, offsets %v; want {0:3 1:1} (the generation-2 commit during CompletingRebalance was refused)", fzErrCode(of.ErrorCode), got)
		}

		// LeaveGroup.
		lr := grpLeave(t, c1, 3, group, "nobody")
		if lr.ErrorCode != 0 || len(lr.Members) != 1 || lr.Members[0].ErrorCode != kerr.UnknownMemberID.Code {
			t.Errorf("LeaveGroup v3 of an unknown member: top-level %s, members %+v; want NONE and UNKNOWN_MEMBER_ID for the member", fzErrCode(lr.ErrorCode), lr.Members)
		}
		grpWantCode(t, "LeaveGroup v0 of an unknown member", grpLeave(t, c1, 0, group, "nobody").ErrorCode, kerr.UnknownMemberID)
		grpWantCode(t, "LeaveGroup v1 of an unknown group", grpLeave(t, c1, 1, group+"-none", "nobody").ErrorCode, kerr.UnknownMemberID)
		lr = grpLeave(t, c2, 4, group, m2)
		if lr.ErrorCode != 0 || len(lr.Members) != 1 || lr.Members[0].ErrorCode != 0 || lr.Members[0].MemberID != m2 {
			t.Errorf("LeaveGroup v4 of m2: top-level %s, members %+v; want NONE for m2", fzErrCode(lr.ErrorCode), lr.Members)
		}
		grpWantCode(t, "Heartbeat v4 of m2 after it left", grpHeartbeat(t, c2, 4, group, m2, 2), kerr.UnknownMemberID)
		grpWantCode(t, "Heartbeat v4 of m1 after m2 left", grpHeartbeat(t, c1, 4, group, m1, 2), kerr.RebalanceInProgress)
		if d := grpDescribeRaw(t, c1, 5, group); len(d.Members) != 1 || d.Members[0].MemberID != m1 {
			t.Errorf("DescribeGroups v5 after m2 left: members %+v, want only m1", d.Members)
		}
		lr = grpLeave(t, c1, 3, group, m1)
		if lr.ErrorCode != 0 || len(lr.Members) != 1 || lr.Members[0].ErrorCode != 0 {
			t.Errorf("LeaveGroup v3 of m1: %s, %+v", fzErrCode(lr.ErrorCode), lr.Members)
		}
		if d := grpDescribeRaw(t, c1, 5, group); d.State != "Empty" || len(d.Members) != 0 {
			t.Errorf("DescribeGroups v5 after everyone left: state %q with %d members, want Empty", d.State, len(d.Members))
		}
		grpWantCode(t, "Heartbeat v4 to an empty group", grpHeartbeat(t, c1, 4, group, m1, 2), kerr.UnknownMemberID)
		grpWantCode(t, "OffsetCommit v8 with generation -1 to the empty group", grpOffsetCommit(t, c1, 8, group, "", -1, topic, 0, 9), nil)
	})

	t.Run("RebalanceTimeout", func(t *testing.T) {
		// m1 (rebalance timeout 2s) is stable; m2 joins; m1 never rejoins.
		// When the rebalance timeout passes, Kafka completes the join
		// without m1 (removing it): m2 alone in generation 2, its own
		// leader.
		group := grpName(t, "grp-err-rebalance")
		c1, c2 := fzDial(t, p.Addr), fzDial(t, p.Addr)
		j1 := grpJoin(t, c1, grpJoinRequest(3, group, "", 30000, 2000, topic))
		if j1.ErrorCode != 0 || j1.Generation != 1 {
			t.Fatalf("JoinGroup v3 of m1: %s, generation %d", fzErrCode(j1.ErrorCode), j1.Generation)
		}
		m1 := j1.MemberID
		if s := c1.roundTrip(grpSyncRequest(3, group, m1, 1, map[string][]byte{m1: grpConsumerAssignment(topic, 0, 1)})).(*kmsg.SyncGroupResponse); s.ErrorCode != 0 {
			t.Fatalf("SyncGroup v3 of m1: %s", fzErrCode(s.ErrorCode))
		}
		sent := time.Now()
		j2 := grpJoin(t, c2, grpJoinRequest(3, group, "", 30000, 2000, topic))
		took := time.Since(sent)
		if j2.ErrorCode != 0 || j2.Generation != 2 || j2.LeaderID != j2.MemberID || len(j2.Members) != 1 || j2.Members[0].MemberID != j2.MemberID {
			t.Errorf("JoinGroup v3 of m2 after m1 failed to rejoin: %s, generation %d, leader %q (m2 %q), members %+v; want generation 2 with m2 alone and leader",
				fzErrCode(j2.ErrorCode), j2.Generation, j2.LeaderID, j2.MemberID, j2.Members)
		}
		if took < 1900*time.Millisecond {
			t.Errorf("m2's join completed after %v, before m1's 2s rebalance timeout", took)
		}
		grpWantCode(t, "Heartbeat v3 of m1, removed at the rebalance timeout", grpHeartbeat(t, c1, 3, group, m1, 1), kerr.UnknownMemberID)
	})

	t.Run("GroupMaxSize", func(t *testing.T) {
		// The broker runs with group.max.size=2.
		group := grpName(t, "grp-err-max")
		a := grpStartIdle(t, p.Addr, "max-a", group, []string{topic}, kgo.Balancers(kgo.RangeBalancer()))
		b := grpStartIdle(t, p.Addr, "max-b", group, []string{topic}, kgo.Balancers(kgo.RangeBalancer()))
		grpWaitBalanced(t, 30*time.Second, topic, 2, a, b)
		raw := fzDial(t, p.Addr)
		for _, v := range []int16{3, 5} {
			resp := grpJoin(t, raw, grpJoinRequest(v, group, "", 10000, 10000, topic))
			grpWantCode(t, fmt.Sprintf("JoinGroup v%d of a third member with group.max.size=2", v), resp.ErrorCode, kerr.GroupMaxSizeReached)
		}
		if err := grpBalanced(topic, 2, a, b); err != nil {
			t.Errorf("after the refused joins: %v", err)
		}
		if d := grpDescribe(ctx, t, adm, group); d.State != "Stable" || len(d.Members) != 2 {
			t.Errorf("after the refused joins: state %q with %d members, want Stable with 2", d.State, len(d.Members))
		}
	})

	t.Run("UnknownGroup", func(t *testing.T) {
		raw := fzDial(t, p.Addr)
		group := grpName(t, "grp-err-unknown")
		d := grpDescribeRaw(t, raw, 5, group)
		if d.ErrorCode != 0 || d.State != "Dead" || d.ProtocolType != "" || d.Protocol != "" || len(d.Members) != 0 {
			t.Errorf("DescribeGroups v5 of an unknown group: %s, state %q, protocol type %q, protocol %q, %d members; want NONE, Dead, no protocol, no members",
				fzErrCode(d.ErrorCode), d.State, d.ProtocolType, d.Protocol, len(d.Members))
		}
		d = grpDescribeRaw(t, raw, 6, group)
		grpWantCode(t, "DescribeGroups v6 of an unknown group (KIP-1043)", d.ErrorCode, kerr.GroupIDNotFound)
		if len(d.Members) != 0 {
			t.Errorf("DescribeGroups v6 of an unknown group lists members %+v", d.Members)
		}
		dg := kmsg.NewPtrDeleteGroupsRequest()
		dg.SetVersion(2)
		dg.Groups = []string{group}
		dr := raw.roundTrip(dg).(*kmsg.DeleteGroupsResponse)
		if len(dr.Groups) != 1 || dr.Groups[0].Group != group {
			t.Fatalf("DeleteGroups v2: response %+v", dr.Groups)
		}
		grpWantCode(t, "DeleteGroups v2 of an unknown group", dr.Groups[0].ErrorCode, kerr.GroupIDNotFound)
		grpWantCode(t, "Heartbeat v4 to an unknown group", grpHeartbeat(t, raw, 4, group, "nobody", 1), kerr.UnknownMemberID)
		grpWantCode(t, "SyncGroup v5 to an unknown group",
			raw.roundTrip(grpSyncRequest(5, group, "nobody", 1, nil)).(*kmsg.SyncGroupResponse).ErrorCode, kerr.UnknownMemberID)
		od := kmsg.NewPtrOffsetDeleteRequest()
		od.Group = group
		ot := kmsg.NewOffsetDeleteRequestTopic()
		ot.Topic = topic
		op := kmsg.NewOffsetDeleteRequestTopicPartition()
		ot.Partitions = append(ot.Partitions, op)
		od.Topics = append(od.Topics, ot)
		grpWantCode(t, "OffsetDelete of an unknown group", raw.roundTrip(od).(*kmsg.OffsetDeleteResponse).ErrorCode, kerr.GroupIDNotFound)

		grpWantCode(t, "OffsetCommit v8 with generation 1 to an unknown group", grpOffsetCommit(t, raw, 8, group, "nobody", 1, topic, 0, 1), kerr.IllegalGeneration)
		grpWantCode(t, "OffsetCommit v9 with generation 1 to an unknown group", grpOffsetCommit(t, raw, 9, group+"-v9", "nobody", 1, topic, 0, 1), kerr.GroupIDNotFound)
		// Refused requests leave no group behind.
		for _, g := range []string{group, group + "-v9"} {
			grpWantCode(t, "DescribeGroups v6 of "+g+" after refused requests", grpDescribeRaw(t, raw, 6, g).ErrorCode, kerr.GroupIDNotFound)
		}

		// OffsetFetch: an unknown group has no offsets (-1), not an error;
		// the multi-group form (v8) answers per group.
		known := grpName(t, "grp-err-known")
		grpWantCode(t, "OffsetCommit v8 (admin, generation -1) creating a group", grpOffsetCommit(t, raw, 8, known, "", -1, topic, 1, 42), nil)
		of := kmsg.NewPtrOffsetFetchRequest()
		of.SetVersion(8)
		for _, g := range []string{known, group} {
			rg := kmsg.NewOffsetFetchRequestGroup()
			rg.Group = g
			rt := kmsg.NewOffsetFetchRequestGroupTopic()
			rt.Topic = topic
			rt.Partitions = []int32{0, 1}
			rg.Topics = append(rg.Topics, rt)
			of.Groups = append(of.Groups, rg)
		}
		ofr := raw.roundTrip(of).(*kmsg.OffsetFetchResponse)
		want := map[string]map[int32]int64{known: {0: -1, 1: 42}, group: {0: -1, 1: -1}}
		if len(ofr.Groups) != 2 {
			t.Fatalf("OffsetFetch v8 for 2 groups: %d groups answered", len(ofr.Groups))
		}
		for _, rg := range ofr.Groups {
			got := map[int32]int64{}
			for _, rt := range rg.Topics {
				for _, rp := range rt.Partitions {
					if rt.Topic == topic && rp.ErrorCode == 0 {
						got[rp.Partition] = rp.Offset
					}
				}
			}
			if rg.ErrorCode != 0 || !grpSameOffsets(got, want[rg.Group]) {
				t.Errorf("OffsetFetch v8 group %s: %s, offsets %v; want NONE and %v", rg.Group, fzErrCode(rg.ErrorCode), got, want[rg.Group])
			}
		}
	})

	t.Run("InternalTopic", func(t *testing.T) {
		raw := fzDial(t, p.Addr)
		// The subtests above used groups, so __consumer_offsets exists.
		md := kmsg.NewPtrMetadataRequest()
		md.SetVersion(12)
		md.Topics = nil // all topics
		resp := raw.roundTrip(md).(*kmsg.MetadataResponse)
		found := map[string]kmsg.MetadataResponseTopic{}
		for _, rt := range resp.Topics {
			if rt.Topic != nil {
				found[*rt.Topic] = rt
			}
		}
		co, ok := found["__consumer_offsets"]
		if !ok || !co.IsInternal || co.ErrorCode != 0 || len(co.Partitions) != 50 {
			t.Errorf("Metadata v12 (all topics): __consumer_offsets present %v, internal %v, error %s, %d partitions; want listed, internal, 50 partitions (offsets.topic.num.partitions)",
				ok, co.IsInternal, fzErrCode(co.ErrorCode), len(co.Partitions))
		}
		if ours, ok := found[topic]; !ok || ours.IsInternal {
			t.Errorf("Metadata v12 (all topics): %s present %v, internal %v", topic, ok, ours.IsInternal)
		}
		md = kmsg.NewPtrMetadataRequest()
		md.SetVersion(4)
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("__consumer_offsets")
		md.Topics = append(md.Topics, rt)
		resp = raw.roundTrip(md).(*kmsg.MetadataResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || !resp.Topics[0].IsInternal || len(resp.Topics[0].Partitions) != 50 {
			t.Errorf("Metadata v4 for __consumer_offsets: %+v", resp.Topics)
		}
		code, _ := fzRawProduce(t, raw, 9, "__consumer_offsets", 0, fzBatch(time.Now().UnixMilli(), fzRecord{key: []byte("k"), value: []byte("v")}))
		grpWantCode(t, "Produce v9 to __consumer_offsets", code, kerr.InvalidTopicException)
	})

	t.Run("ConsumerGroupHeartbeat", func(t *testing.T) {
		raw := fzDial(t, p.Addr)
		group := grpName(t, "grp-err-848")
		hbTo := func(group string, version int16, member string, epoch int32, mod func(*kmsg.ConsumerGroupHeartbeatRequest)) *kmsg.ConsumerGroupHeartbeatResponse {
			t.Helper()
			req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
			req.SetVersion(version)
			req.Group = group
			req.MemberID = member
			req.MemberEpoch = epoch
			if epoch == 0 {
				req.RebalanceTimeoutMillis = 10000
				req.SubscribedTopicNames = []string{topic}
				req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			}
			if mod != nil {
				mod(req)
			}
			return raw.roundTrip(req).(*kmsg.ConsumerGroupHeartbeatResponse)
		}
		hb := func(version int16, member string, epoch int32, mod func(*kmsg.ConsumerGroupHeartbeatRequest)) *kmsg.ConsumerGroupHeartbeatResponse {
			t.Helper()
			return hbTo(group, version, member, epoch, mod)
		}
		const id = "Jm9vYmFyYmF6cXV4cXV1eA"
		r := hb(1, id, 0, nil)
		if r.ErrorCode != 0 || r.MemberID == nil || *r.MemberID != id || r.MemberEpoch < 1 || r.HeartbeatIntervalMillis != 500 {
			t.Fatalf("ConsumerGroupHeartbeat v1 join: %s, member %v, epoch %d, interval %d; want NONE, our id %s, epoch >= 1, interval 500 (group.consumer.heartbeat.interval.ms)",
				fzErrCode(r.ErrorCode), r.MemberID, r.MemberEpoch, r.HeartbeatIntervalMillis, id)
		}
		epoch := r.MemberEpoch
		var assigned []int32
		if r.Assignment != nil {
			for _, tp := range r.Assignment.Topics {
				assigned = append(assigned, tp.Partitions...)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(assigned) != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("sole KIP-848 member never assigned both partitions (has %v)", assigned)
			}
			time.Sleep(100 * time.Millisecond)
			r = hb(1, id, epoch, func(req *kmsg.ConsumerGroupHeartbeatRequest) { req.Topics = nil })
			if r.ErrorCode != 0 {
				t.Fatalf("ConsumerGroupHeartbeat v1 at epoch %d: %s", epoch, fzErrCode(r.ErrorCode))
			}
			epoch = r.MemberEpoch
			if r.Assignment != nil {
				assigned = nil
				for _, tp := range r.Assignment.Topics {
					assigned = append(assigned, tp.Partitions...)
				}
			}
		}

		cgd := kmsg.NewPtrConsumerGroupDescribeRequest()
		cgd.Groups = []string{group, grpName(t, "grp-err-848-none")}
		dr := raw.roundTrip(cgd).(*kmsg.ConsumerGroupDescribeResponse)
		if len(dr.Groups) != 2 {
			t.Fatalf("ConsumerGroupDescribe of 2 groups: %d answered", len(dr.Groups))
		}
		for _, g := range dr.Groups {
			if g.Group == group {
				if g.ErrorCode != 0 || g.State != "Stable" || len(g.Members) != 1 || g.Members[0].MemberID != id || g.Members[0].MemberEpoch != epoch {
					t.Errorf("ConsumerGroupDescribe %s: %s, state %q, members %+v; want Stable with our member at epoch %d", g.Group, fzErrCode(g.ErrorCode), g.State, g.Members, epoch)
				}
			} else {
				grpWantCode(t, "ConsumerGroupDescribe of an unknown group", g.ErrorCode, kerr.GroupIDNotFound)
			}
		}

		// Errors of the member itself; none of them changes the group.
		grpWantCode(t, "ConsumerGroupHeartbeat v1 with a member epoch ahead of the member's", hb(1, id, epoch+5, nil).ErrorCode, kerr.FencedMemberEpoch)
		grpWantCode(t, "ConsumerGroupHeartbeat v1 with member epoch -3", hb(1, id, -3, nil).ErrorCode, kerr.InvalidRequest)
		grpWantCode(t, "ConsumerGroupHeartbeat v1 with an unknown member id and epoch > 0", hb(1, "bm9ib2R5bm9ib2R5bm9ib2R5", epoch, nil).ErrorCode, kerr.UnknownMemberID)

		// Malformed first heartbeats, in a group of their own: Kafka
		// validates them before touching any group.
		bad := grpName(t, "grp-err-848-bad")
		for _, c := range []struct {
			what    string
			version int16
			member  string
			epoch   int32
			mod     func(*kmsg.ConsumerGroupHeartbeatRequest)
			want    *kerr.Error
		}{
			{"an empty member id (v1)", 1, "", 0, nil, kerr.InvalidRequest},
			{"a first heartbeat without subscribed topics", 1, "Zmlyc3RmaXJzdGZpcnN0Zmly", 0, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicNames = nil }, kerr.InvalidRequest},
			{"a first heartbeat with owned partitions", 1, "b3duZWRvd25lZG93bmVkb3du", 0, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
				tp := kmsg.NewConsumerGroupHeartbeatRequestTopic()
				tp.Partitions = []int32{0}
				r.Topics = append(r.Topics, tp)
			}, kerr.InvalidRequest},
			{"an unknown server assignor", 1, "YXNzaWdub3Jhc3NpZ25vcmFz", 0, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.ServerAssignor = kmsg.StringPtr("no-such-assignor") }, kerr.UnsupportedAssignor},
		} {
			grpWantCode(t, fmt.Sprintf("ConsumerGroupHeartbeat v%d with %s", c.version, c.what), hbTo(bad, c.version, c.member, c.epoch, c.mod).ErrorCode, c.want)
		}
		ds := kmsg.NewPtrConsumerGroupDescribeRequest()
		ds.Groups = []string{bad}
		if dr := raw.roundTrip(ds).(*kmsg.ConsumerGroupDescribeResponse); len(dr.Groups) != 1 || dr.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code {
			t.Errorf("ConsumerGroupDescribe of the group that only saw malformed heartbeats: %+v; want GROUP_ID_NOT_FOUND (nothing created)", dr.Groups)
		}

		r = hb(1, id, -1, nil)
		if r.ErrorCode != 0 || r.MemberEpoch != -1 {
			t.Errorf("ConsumerGroupHeartbeat v1 leave (epoch -1): %s, epoch %d; want NONE, -1", fzErrCode(r.ErrorCode), r.MemberEpoch)
		}
		grpWantCode(t, "ConsumerGroupHeartbeat v1 by the member that left", hb(1, id, epoch, nil).ErrorCode, kerr.UnknownMemberID)
	})
	fzCheckLogs(t, p)
}
