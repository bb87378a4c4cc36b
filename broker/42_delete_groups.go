package broker

// DeleteGroups (key 42), v0-v3.
//
// Behavior:
//   - Deletes groups without members, with their committed offsets
//     (tombstones in __consumer_offsets). NON_EMPTY_GROUP while members
//     remain; GROUP_ID_NOT_FOUND for an unknown group; INVALID_GROUP_ID for
//     an empty name.

import "github.com/twmb/franz-go/pkg/kmsg"

func (b *Broker) deleteGroupsHandler() handler {
	return handle(kmsg.DeleteGroups.Int16(), 0, 3, b.handleDeleteGroups)
}

func (b *Broker) handleDeleteGroups(c *conn, req *kmsg.DeleteGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		sg := kmsg.NewDeleteGroupsResponseGroup()
		sg.Group = id
		if err := b.coord.DeleteGroup(c.ctx, id); err != nil {
			sg.ErrorCode = err.Code
			if req.Version >= 3 {
				msg := err.Message
				sg.ErrorMessage = &msg
			}
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
