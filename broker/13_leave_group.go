package broker

// LeaveGroup (key 13), v0-v5.
//
// Behavior:
//   - v0-v2 remove one member by id; v3+ remove a batch of members, each
//     by member id or group instance id (KIP-345), each answered on its
//     own (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID).
//   - The rest of the group rebalances; the last member leaving empties it.
//   - An unknown group gets UNKNOWN_MEMBER_ID, as in Kafka.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) leaveGroupHandler() handler {
	return handle(kmsg.LeaveGroup.Int16(), 0, 5, b.handleLeaveGroup)
}

func (b *Broker) handleLeaveGroup(c *conn, req *kmsg.LeaveGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	var members []coordinator.LeaveMember
	if req.Version <= 2 {
		members = []coordinator.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			members = append(members, coordinator.LeaveMember{MemberID: m.MemberID, InstanceID: m.InstanceID})
		}
	}
	errs, groupErr := b.coord.Leave(c.ctx, req.Group, members)
	if groupErr != nil {
		resp.ErrorCode = groupErr.Code
		return resp, nil
	}
	if req.Version <= 2 {
		resp.ErrorCode = code(errs[0])
		return resp, nil
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, code(errs[i])
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
