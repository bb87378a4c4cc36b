package broker

// TxnOffsetCommit (key 28), v0-v4.
//
// Behavior: offsets committed inside a producer's transaction, sent to
// the group's coordinator after AddOffsetsToTxn. They are written to
// __consumer_offsets in the transaction (coordinator.Coordinator.TxnCommit)
// and become the group's committed offsets only when the commit marker
// arrives; an abort drops them. v3+ names the group member, checked as
// OffsetCommit checks it (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// FENCED_INSTANCE_ID); a producer epoch older than the partition's gets
// INVALID_PRODUCER_EPOCH. v5+ (implicit AddOffsetsToTxn of KIP-890 part
// 2, topic ids) is not offered.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) txnOffsetCommitHandler() handler {
	return handle(kmsg.TxnOffsetCommit.Int16(), 0, 4, b.handleTxnOffsetCommit)
}

func (b *Broker) handleTxnOffsetCommit(c *conn, req *kmsg.TxnOffsetCommitRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	var parts []coordinator.CommitPartition
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			epoch := rp.LeaderEpoch
			if req.Version < 2 {
				epoch = -1
			}
			parts = append(parts, coordinator.CommitPartition{Topic: rt.Topic, Partition: rp.Partition, Offset: rp.Offset, LeaderEpoch: epoch, Metadata: rp.Metadata})
		}
	}
	a := coordinator.TxnCommitArgs{ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Generation: -1}
	if req.Version >= 3 {
		a.MemberID, a.InstanceID, a.Generation = req.MemberID, req.InstanceID, req.Generation
	}
	errs := b.coord.TxnCommit(c.ctx, req.Group, a, parts)
	i := 0
	for _, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, code(errs[i])
			i++
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
