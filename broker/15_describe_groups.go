package broker

// DescribeGroups (key 15), v0-v6.
//
// Behavior:
//   - Each group: state (Kafka's names), protocol type, selected protocol
//     and members with their client id, host, protocol metadata and
//     assignment (v4+ group instance id).
//   - An unknown group is reported in state "Dead" with no members; from
//     v6 on it also carries GROUP_ID_NOT_FOUND (KIP-1043), as Kafka 4 does.
//     A KIP-848 group is not a classic group: GROUP_ID_NOT_FOUND likewise.
//   - v3+: authorized operations are not computed (INT32_MIN).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeGroupsHandler() handler {
	return handle(kmsg.DescribeGroups.Int16(), 0, 6, b.handleDescribeGroups)
}

func (b *Broker) handleDescribeGroups(c *conn, req *kmsg.DescribeGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		sg := kmsg.NewDescribeGroupsResponseGroup()
		sg.Group = id
		d := b.coord.DescribeGroup(c.ctx, id)
		sg.State, sg.ProtocolType, sg.Protocol = d.State, d.ProtocolType, d.Protocol
		switch {
		case d.Err == kerr.GroupIDNotFound:
			if req.Version >= 6 {
				sg.ErrorCode = d.Err.Code
				msg := "Group " + id + " not found."
				sg.ErrorMessage = &msg
			}
		case d.Err != nil:
			sg.ErrorCode = d.Err.Code
		}
		for _, m := range d.Members {
			sm := kmsg.NewDescribeGroupsResponseGroupMember()
			sm.MemberID, sm.InstanceID, sm.ClientID, sm.ClientHost = m.MemberID, m.InstanceID, m.ClientID, m.ClientHost
			sm.ProtocolMetadata, sm.MemberAssignment = m.Metadata, m.Assignment
			if sm.ProtocolMetadata == nil {
				sm.ProtocolMetadata = []byte{}
			}
			if sm.MemberAssignment == nil {
				sm.MemberAssignment = []byte{}
			}
			sg.Members = append(sg.Members, sm)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
