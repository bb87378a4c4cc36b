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
// INVALID_PRODUCER_EPOCH. First the transaction coordinator is asked
// whether the group's offsets partition is in the producer's open
// transaction (KIP-890, transaction.partition.verification.enable):
// INVALID_TXN_STATE when it is not (no AddOffsetsToTxn, or the
// transaction ended), INVALID_PRODUCER_EPOCH when the producer was
// fenced, COORDINATOR_NOT_AVAILABLE (retriable) when the coordinator
// cannot answer. A partition of an unknown topic, or one the topic does
// not have, gets UNKNOWN_TOPIC_OR_PARTITION and is left out; the others
// are committed. v5+ (implicit AddOffsetsToTxn of KIP-890 part
// 2, topic ids) is not offered.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) txnOffsetCommitHandler() handler {
	return handle(kmsg.TxnOffsetCommit.Int16(), 0, 4, b.handleTxnOffsetCommit)
}

func (b *Broker) handleTxnOffsetCommit(c *conn, req *kmsg.TxnOffsetCommitRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	var parts []coordinator.CommitPartition
	// partErrs holds, per topic and partition of the request, the error
	// decided here; nil ones go to the coordinator in order.
	partErrs := make([][]*kerr.Error, len(req.Topics))
	for i, rt := range req.Topics {
		partErrs[i] = make([]*kerr.Error, len(rt.Partitions))
		t, known := b.store.Topic(rt.Topic)
		for j, rp := range rt.Partitions {
			if !known || rp.Partition < 0 || rp.Partition >= t.Partitions {
				partErrs[i][j] = kerr.UnknownTopicOrPartition
				continue
			}
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
	var errs []*kerr.Error
	if len(parts) > 0 {
		if err := b.verifyTxnOffsets(c, req); err != nil {
			errs = make([]*kerr.Error, len(parts))
			for i := range errs {
				errs[i] = err
			}
		} else {
			errs = b.coord.TxnCommit(c.ctx, req.Group, a, parts)
		}
	}
	next := 0
	for i, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for j, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
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

// verifyTxnOffsets checks with the transaction coordinator that the
// group's __consumer_offsets partition is in the producer's open
// transaction (AddOffsetsToTxn added it), as KIP-890 has the group
// coordinator do: offsets committed outside a transaction would stay
// pending with no marker to end them, or be applied by the producer's
// next, unrelated transaction.
func (b *Broker) verifyTxnOffsets(c *conn, req *kmsg.TxnOffsetCommitRequest) *kerr.Error {
	if !b.verifyTxns {
		return nil
	}
	if req.Group == "" {
		return kerr.InvalidGroupID
	}
	n := b.offsetsLogs().OffsetsPartitions()
	if n == 0 {
		return kerr.InvalidTxnState // AddOffsetsToTxn would have created it
	}
	err := b.verifyTxn(c.ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, coordinator.OffsetsTopic, coordinator.PartitionFor(req.Group, n))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.NotEnoughReplicas):
		return kerr.CoordinatorNotAvailable // retriable: the transaction coordinator moves
	case errors.Is(err, kerr.InvalidProducerEpoch):
		return kerr.InvalidProducerEpoch
	default:
		return kerr.InvalidTxnState
	}
}
