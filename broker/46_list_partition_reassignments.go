package broker

// ListPartitionReassignments (key 46), v0.
//
// Behavior:
//   - Lists the partitions with a reassignment in progress (see
//     AlterPartitionReassignments): their current Replicas (the target
//     followed by the replicas being removed), AddingReplicas and
//     RemovingReplicas, as this broker's metadata cache holds them.
//   - Null Topics lists every topic, sorted by name, partitions ascending;
//     otherwise only the named partitions, in request order. As in Kafka,
//     a named topic or partition that does not exist, or is not being
//     reassigned, is left out rather than answered with an error, and a
//     topic with nothing to list is left out.
//   - The top-level ErrorCode is always 0.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

func (b *Broker) listPartitionReassignmentsHandler() handler {
	return handle(kmsg.ListPartitionReassignments.Int16(), 0, 0, b.handleListPartitionReassignments)
}

func (b *Broker) handleListPartitionReassignments(_ *conn, req *kmsg.ListPartitionReassignmentsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	add := func(topic string, sts []metadata.PartitionState) {
		rt := kmsg.NewListPartitionReassignmentsResponseTopic()
		rt.Topic = topic
		for _, st := range sts {
			if !st.Reassigning() {
				continue
			}
			rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
			rp.Partition = st.Partition
			rp.Replicas = st.Replicas
			rp.AddingReplicas = st.AddingReplicas
			rp.RemovingReplicas = st.RemovingReplicas
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if req.Topics == nil {
		for _, t := range b.store.Topics() {
			var sts []metadata.PartitionState
			for _, st := range b.store.PartitionStates(t.Name) {
				if st.TopicID == t.ID {
					sts = append(sts, st)
				}
			}
			add(t.Name, sts)
		}
		return resp, nil
	}
	for _, rt := range req.Topics {
		t, ok := b.store.Topic(rt.Topic)
		if !ok {
			continue
		}
		var sts []metadata.PartitionState
		seen := map[int32]bool{}
		for _, p := range rt.Partitions {
			if seen[p] {
				continue
			}
			seen[p] = true
			if st, ok := b.store.Partition(t.Name, p); ok && st.TopicID == t.ID {
				sts = append(sts, st)
			}
		}
		add(t.Name, sts)
	}
	return resp, nil
}
