package broker

// AddOffsetsToTxn (key 25), v0-v4.
//
// Behavior: the group's partition of __consumer_offsets joins the
// producer's transaction (as AddPartitionsToTxn would add it), so that
// the markers that end the transaction reach the offsets the producer
// then commits with TxnOffsetCommit. Errors as AddPartitionsToTxn's;
// INVALID_GROUP_ID for an empty group id.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) addOffsetsToTxnHandler() handler {
	return handle(kmsg.AddOffsetsToTxn.Int16(), 0, 4, b.handleAddOffsetsToTxn)
}

func (b *Broker) handleAddOffsetsToTxn(c *conn, req *kmsg.AddOffsetsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	n, err := b.offsetsLogs().EnsureOffsetsTopic(c.ctx, b.coordinatorConfig().OffsetsTopicPartitions)
	if err != nil {
		b.log.Error().Err(err).Str("topic", coordinator.OffsetsTopic).Msg("cannot create the offsets topic")
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	errs := b.txn.AddPartitions(c.ctx, coordinator.AddPartitionsArgs{
		TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch,
		Partitions:  []coordinator.TopicPartition{{Topic: coordinator.OffsetsTopic, Partition: coordinator.PartitionFor(req.Group, n)}},
		FencedError: req.Version >= 2,
	})
	resp.ErrorCode = code(errs[0])
	return resp, nil
}
