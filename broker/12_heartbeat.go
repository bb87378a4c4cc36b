package broker

// Heartbeat (key 12), v0-v4.
//
// Behavior:
//   - Keeps a member's session alive. REBALANCE_IN_PROGRESS tells it to
//     rejoin; UNKNOWN_MEMBER_ID (also for an unknown group),
//     ILLEGAL_GENERATION and FENCED_INSTANCE_ID tell it it was removed or
//     fenced.

import "github.com/twmb/franz-go/pkg/kmsg"

func (b *Broker) heartbeatHandler() handler {
	return handle(kmsg.Heartbeat.Int16(), 0, 4, b.handleHeartbeat)
}

func (b *Broker) handleHeartbeat(c *conn, req *kmsg.HeartbeatRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = code(b.coord.Heartbeat(c.ctx, req.Group, req.MemberID, req.InstanceID, req.Generation))
	return resp, nil
}
