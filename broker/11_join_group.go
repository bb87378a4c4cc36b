package broker

// JoinGroup (key 11), v0-v9.
//
// Behavior (the classic group protocol; see coordinator/classic.go):
//   - The request waits until the group's join phase ends: every known
//     member has rejoined, or the rebalance timeout passed (for a group
//     that was empty: at least group.initial.rebalance.delay.ms).
//   - v4+: a member without an id gets MEMBER_ID_REQUIRED and its id, and
//     joins again with it (KIP-394). Static members (v5+ group.instance.id)
//     skip that and get their old assignment back without a rebalance when
//     nothing changed (KIP-345).
//   - Errors: INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT (outside
//     group.min/max.session.timeout.ms), INCONSISTENT_GROUP_PROTOCOL,
//     UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED.
//   - v0 has no rebalance timeout: the session timeout is used.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) joinGroupHandler() handler {
	return handle(kmsg.JoinGroup.Int16(), 0, 9, b.handleJoinGroup)
}

func (b *Broker) handleJoinGroup(c *conn, req *kmsg.JoinGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	rebalance := req.RebalanceTimeoutMillis
	if req.Version == 0 || rebalance <= 0 {
		rebalance = req.SessionTimeoutMillis
	}
	res := b.coord.Join(c.ctx, req.Group, coordinator.JoinArgs{
		MemberID:               req.MemberID,
		InstanceID:             req.InstanceID,
		ClientID:               c.requestClientID(),
		ClientHost:             c.clientHost(),
		ProtocolType:           req.ProtocolType,
		Protocols:              req.Protocols,
		SessionTimeout:         millis(req.SessionTimeoutMillis),
		RebalanceTimeout:       millis(rebalance),
		RequireKnownMemberID:   req.Version >= 4,
		SupportsSkipAssignment: req.Version >= 9,
	})
	resp.ErrorCode = code(res.Err)
	resp.MemberID = res.MemberID
	resp.Generation = res.Generation
	if res.Err == nil {
		resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
		resp.Protocol = kmsg.StringPtr(res.Protocol)
		resp.LeaderID = res.Leader
		resp.SkipAssignment = res.SkipAssignment
		resp.Members = res.Members
	}
	return resp, nil
}
