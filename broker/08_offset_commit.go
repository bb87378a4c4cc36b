package broker

// OffsetCommit (key 8), v0-v10.
//
// Behavior:
//   - Members commit with their member id and generation; a commit with
//     generation -1 and no member id is accepted only while the group has
//     no members (tools, and consumers that assign partitions themselves).
//     Errors: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID,
//     REBALANCE_IN_PROGRESS (while the group awaits its assignment),
//     INVALID_GROUP_ID, OFFSET_METADATA_TOO_LARGE (offset.metadata.max.bytes).
//   - A partition of a topic that does not exist, or a partition number
//     the topic does not have, gets UNKNOWN_TOPIC_OR_PARTITION and is not
//     stored; the request's other partitions are committed (Kafka's
//     KafkaApis checks the metadata cache the same way).
//   - The offsets are acknowledged once they are in __consumer_offsets.
//   - v10 names topics by id (UNKNOWN_TOPIC_ID when unknown). The v1
//     commit timestamp and v2-v4 retention time are ignored: offsets expire
//     offsets.retention.minutes after their group became empty (KIP-211).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) offsetCommitHandler() handler {
	return handle(kmsg.OffsetCommit.Int16(), 0, 10, b.handleOffsetCommit)
}

func (b *Broker) handleOffsetCommit(c *conn, req *kmsg.OffsetCommitRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	generation, memberID := req.Generation, req.MemberID
	if req.Version == 0 {
		generation, memberID = -1, ""
	}
	var parts []coordinator.CommitPartition
	// partErrs holds, per topic and partition of the request, the error
	// decided here; nil ones are sent to the coordinator in order.
	partErrs := make([][]*kerr.Error, len(req.Topics))
	for i, rt := range req.Topics {
		partErrs[i] = make([]*kerr.Error, len(rt.Partitions))
		name := rt.Topic
		t, known := b.store.Topic(name)
		if req.Version >= 10 {
			if t, known = b.store.TopicByID(rt.TopicID); known {
				name = t.Name
			}
		}
		for j, rp := range rt.Partitions {
			switch {
			case !known && req.Version >= 10:
				partErrs[i][j] = kerr.UnknownTopicID
				continue
			case !known || rp.Partition < 0 || rp.Partition >= t.Partitions:
				partErrs[i][j] = kerr.UnknownTopicOrPartition
				continue
			}
			epoch := rp.LeaderEpoch
			if req.Version < 6 {
				epoch = -1
			}
			parts = append(parts, coordinator.CommitPartition{Topic: name, Partition: rp.Partition, Offset: rp.Offset, LeaderEpoch: epoch, Metadata: rp.Metadata})
		}
	}
	var errs []*kerr.Error
	if len(parts) > 0 {
		errs = b.coord.Commit(c.ctx, req.Group, coordinator.CommitArgs{Version: req.Version, MemberID: memberID, InstanceID: req.InstanceID, Generation: generation}, parts)
	}
	next := 0
	for i, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for j, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			if partErrs[i][j] != nil {
				sp.ErrorCode = partErrs[i][j].Code
			} else {
				sp.ErrorCode = code(errs[next])
				next++
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
