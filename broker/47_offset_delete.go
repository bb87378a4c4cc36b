package broker

// OffsetDelete (key 47), v0.
//
// Behavior:
//   - Deletes committed offsets of a group. A partition of a topic the
//     group's members subscribe to gets GROUP_SUBSCRIBED_TO_TOPIC; a group
//     with members that is not a consumer group gets NON_EMPTY_GROUP;
//     GROUP_ID_NOT_FOUND for an unknown group.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) offsetDeleteHandler() handler {
	return handle(kmsg.OffsetDelete.Int16(), 0, 0, b.handleOffsetDelete)
}

func (b *Broker) handleOffsetDelete(c *conn, req *kmsg.OffsetDeleteRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	var topics []coordinator.FetchTopic
	for _, t := range req.Topics {
		ft := coordinator.FetchTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			ft.Partitions = append(ft.Partitions, p.Partition)
		}
		topics = append(topics, ft)
	}
	errs, groupErr := b.coord.DeleteOffsets(c.ctx, req.Group, topics)
	if groupErr != nil {
		resp.ErrorCode = groupErr.Code
		return resp, nil
	}
	i := 0
	for _, t := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = t.Topic
		for _, p := range t.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = p.Partition
			sp.ErrorCode = code(errs[i])
			i++
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
