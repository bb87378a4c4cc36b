package broker

// ConsumerGroupDescribe (key 69), v0-v1.
//
// Behavior:
//   - Describes KIP-848 groups: state (Empty, Assigning, Reconciling,
//     Stable), group and assignment epochs, assignor, and each member's
//     epoch, subscription, current and target assignment. Unknown groups
//     and classic groups get GROUP_ID_NOT_FOUND. v1: every member is a
//     consumer member (type 1).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) consumerGroupDescribeHandler() handler {
	return handle(kmsg.ConsumerGroupDescribe.Int16(), 0, 1, b.handleConsumerGroupDescribe)
}

func (b *Broker) handleConsumerGroupDescribe(c *conn, req *kmsg.ConsumerGroupDescribeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, id := range req.Groups {
		sg := kmsg.NewConsumerGroupDescribeResponseGroup()
		sg.Group = id
		if id == "" {
			sg.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		d := b.coord.DescribeConsumerGroup(c.ctx, id)
		if d.Err != nil {
			sg.ErrorCode = d.Err.Code
			if d.Err == kerr.GroupIDNotFound {
				msg := "Group " + id + " not found."
				sg.ErrorMessage = &msg
			}
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		sg.State, sg.Epoch, sg.AssignmentEpoch, sg.AssignorName = d.State, d.Epoch, d.AssignmentEpoch, d.Assignor
		for _, m := range d.Members {
			sm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
			sm.MemberID, sm.InstanceID, sm.RackID, sm.MemberEpoch = m.MemberID, m.InstanceID, m.RackID, m.Epoch
			sm.ClientID, sm.ClientHost, sm.SubscribedTopics = m.ClientID, m.ClientHost, m.Subscribed
			sm.Assignment, sm.TargetAssignment = m.Current, m.Target
			sm.MemberType = 1
			sg.Members = append(sg.Members, sm)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
