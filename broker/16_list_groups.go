package broker

// ListGroups (key 16), v0-v5.
//
// Behavior:
//   - Lists every group this broker coordinates (all of them on one node),
//     including groups that only hold committed offsets.
//   - v4+ filters by state names and v5+ by type ("classic", "consumer"),
//     case-insensitively; an empty filter keeps everything.

import "github.com/twmb/franz-go/pkg/kmsg"

func (b *Broker) listGroupsHandler() handler {
	return handle(kmsg.ListGroups.Int16(), 0, 5, b.handleListGroups)
}

func (b *Broker) handleListGroups(_ *conn, req *kmsg.ListGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	for _, l := range b.coord.ListGroups(req.StatesFilter, req.TypesFilter) {
		sg := kmsg.NewListGroupsResponseGroup()
		sg.Group, sg.ProtocolType, sg.GroupState, sg.GroupType = l.Group, l.ProtocolType, l.State, l.Type
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
