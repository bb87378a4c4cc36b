package broker

// SyncGroup (key 14), v0-v5.
//
// Behavior:
//   - Followers wait for the leader's SyncGroup, which carries every
//     member's assignment; then all get theirs and the group is Stable.
//     The group's metadata (members, assignments, generation) is stored in
//     __consumer_offsets before the answers leave.
//   - Errors: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID,
//     REBALANCE_IN_PROGRESS (a new join phase began), and v5+
//     INCONSISTENT_GROUP_PROTOCOL when protocol type or name differ.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) syncGroupHandler() handler {
	return handle(kmsg.SyncGroup.Int16(), 0, 5, b.handleSyncGroup)
}

func (b *Broker) handleSyncGroup(c *conn, req *kmsg.SyncGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	res := b.coord.Sync(c.ctx, req.Group, coordinator.SyncArgs{
		MemberID:     req.MemberID,
		InstanceID:   req.InstanceID,
		Generation:   req.Generation,
		ProtocolType: req.ProtocolType,
		Protocol:     req.Protocol,
		Assignments:  req.GroupAssignment,
	})
	resp.ErrorCode = code(res.Err)
	if res.Err == nil {
		resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
		resp.Protocol = kmsg.StringPtr(res.Protocol)
		resp.MemberAssignment = res.Assignment
	}
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp, nil
}
