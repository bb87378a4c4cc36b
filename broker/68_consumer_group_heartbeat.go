package broker

// ConsumerGroupHeartbeat (key 68), v0-v1: the KIP-848 consumer protocol.
//
// Behavior (see coordinator/consumer.go):
//   - Epoch 0 joins (v0: the coordinator makes the member id; v1: the
//     client does), -1 leaves, -2 leaves a static member that will return
//     with its partitions kept for group.consumer.session.timeout.ms.
//   - Assignment is server side: "uniform" (default) or "range"
//     (UNSUPPORTED_ASSIGNOR otherwise). Partitions move only after their
//     previous owner has revoked them.
//   - Errors: UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, UNRELEASED_INSTANCE_ID,
//     GROUP_MAX_SIZE_REACHED, GROUP_ID_NOT_FOUND for a classic group with
//     members, INVALID_REGULAR_EXPRESSION, INVALID_REQUEST for a malformed
//     heartbeat (no subscription or owned partitions on join, an epoch
//     below -2, -2 without an instance id, an empty member or instance
//     id); a malformed heartbeat creates no group. v1 subscription regexes
//     (RE2 syntax, as Kafka's RE2/J) must match a whole topic name, and
//     match internal topics too, as in Kafka.
//   - The heartbeat interval is group.consumer.heartbeat.interval.ms.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) consumerGroupHeartbeatHandler() handler {
	return handle(kmsg.ConsumerGroupHeartbeat.Int16(), 0, 1, b.handleConsumerGroupHeartbeat)
}

func (b *Broker) handleConsumerGroupHeartbeat(c *conn, req *kmsg.ConsumerGroupHeartbeatRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	fail := func(err *kerr.Error, msg string) (kmsg.Response, error) {
		resp.ErrorCode = err.Code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		resp.MemberEpoch = -1
		return resp, nil
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID, "")
	}
	if req.Version >= 1 && req.MemberID == "" {
		return fail(kerr.InvalidRequest, "MemberId must be set from version 1 on")
	}
	rebalance := millis(req.RebalanceTimeoutMillis)
	if req.RebalanceTimeoutMillis < 0 {
		rebalance = -1
	}
	res := b.coord.ConsumerHeartbeat(c.ctx, req.Group, coordinator.ConsumerHeartbeatArgs{
		Version:          req.Version,
		MemberID:         req.MemberID,
		MemberEpoch:      req.MemberEpoch,
		InstanceID:       req.InstanceID,
		RackID:           req.RackID,
		RebalanceTimeout: rebalance,
		Subscribed:       req.SubscribedTopicNames,
		Regex:            req.SubscribedTopicRegex,
		Assignor:         req.ServerAssignor,
		Owned:            req.Topics,
		OwnedSet:         req.Topics != nil,
		ClientID:         c.requestClientID(),
		ClientHost:       c.clientHost(),
	})
	if res.Err != nil {
		return fail(res.Err, res.Message)
	}
	resp.MemberID = kmsg.StringPtr(res.MemberID)
	resp.MemberEpoch = res.Epoch
	resp.HeartbeatIntervalMillis = int32(b.coordinatorConfig().ConsumerHeartbeatInterval.Milliseconds())
	resp.Assignment = res.Assignment
	return resp, nil
}
