package broker

// OffsetForLeaderEpoch (key 23), v0-v4.
//
// Behavior:
//   - For a consumer (replica id -1; v0-v2 carry none): per partition, the
//     end offset of the requested leader epoch from the partition's leader
//     epoch cache (storage.Log.EndOffsetForEpoch): the largest known epoch
//     not above the requested one and the offset where the next began, the
//     high watermark for the current epoch, -1/-1 for an epoch newer than
//     every known one. Clients use it to find where their position left
//     the log after a leader change (KIP-320).
//   - For a follower (v3+, replica id >= 0) the same, except that the
//     current epoch ends at the log end offset: the follower cuts its
//     divergent tail there before it fetches (KIP-101, KIP-279).
//   - Errors as Fetch: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
//     LEADER_NOT_AVAILABLE; v2+ a current leader epoch other than ours gets
//     FENCED_LEADER_EPOCH (older) or UNKNOWN_LEADER_EPOCH (newer).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) offsetForLeaderEpochHandler() handler {
	return handle(kmsg.OffsetForLeaderEpoch.Int16(), 0, 4, b.handleOffsetForLeaderEpoch)
}

func (b *Broker) handleOffsetForLeaderEpoch(_ *conn, req *kmsg.OffsetForLeaderEpochRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			if err := b.endOffsetForEpoch(req, rt.Topic, rp, &sp); err != nil {
				sp.ErrorCode = errCode(err)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) endOffsetForEpoch(req *kmsg.OffsetForLeaderEpochRequest, topic string, rp *kmsg.OffsetForLeaderEpochRequestTopicPartition, sp *kmsg.OffsetForLeaderEpochResponseTopicPartition) error {
	part, err := b.parts.get(topic, rp.Partition)
	if err != nil {
		return err
	}
	current := part.leaderEpoch()
	if req.Version >= 2 {
		if err := checkLeaderEpoch(rp.CurrentLeaderEpoch, current); err != nil {
			return err
		}
	}
	if req.Version >= 3 && req.ReplicaID >= 0 {
		sp.LeaderEpoch, sp.EndOffset = part.log.ReplicaEndOffsetForEpoch(rp.LeaderEpoch, current)
		return nil
	}
	sp.LeaderEpoch, sp.EndOffset = part.log.EndOffsetForEpoch(rp.LeaderEpoch, current)
	return nil
}
