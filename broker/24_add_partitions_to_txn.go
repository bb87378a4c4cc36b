package broker

// AddPartitionsToTxn (key 24), v0-v5.
//
// Behavior:
//   - v0-v3 (producers): the partitions join the producer's transaction
//     at its coordinator (coordinator.TxnCoordinator.AddPartitions), which
//     opens one when none is open. Errors per partition:
//     INVALID_PRODUCER_ID_MAPPING (unknown id or producer id),
//     PRODUCER_FENCED (v2+; INVALID_PRODUCER_EPOCH before) for a stale
//     epoch, CONCURRENT_TRANSACTIONS while the previous transaction's
//     markers are written, UNKNOWN_TOPIC_OR_PARTITION (the others then get
//     OPERATION_NOT_ATTEMPTED), NOT_COORDINATOR.
//   - v4+ batches transactions, each answered on its own; a transaction
//     with verify_only (KIP-890, from brokers) only checks that its
//     partitions are in the open transaction: INVALID_TXN_STATE where not.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) addPartitionsToTxnHandler() handler {
	return handle(kmsg.AddPartitionsToTxn.Int16(), 0, 5, b.handleAddPartitionsToTxn)
}

func (b *Broker) handleAddPartitionsToTxn(c *conn, req *kmsg.AddPartitionsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	add := func(id string, pid int64, epoch int16, verify bool, parts []coordinator.TopicPartition) []*kerr.Error {
		return b.txn.AddPartitions(c.ctx, coordinator.AddPartitionsArgs{
			TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch,
			Partitions: parts, VerifyOnly: verify, FencedError: req.Version >= 2,
		})
	}
	if req.Version <= 3 {
		var parts []coordinator.TopicPartition
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				parts = append(parts, coordinator.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		errs := add(req.TransactionalID, req.ProducerID, req.ProducerEpoch, false, parts)
		i := 0
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, code(errs[i])
				i++
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	for _, tx := range req.Transactions {
		var parts []coordinator.TopicPartition
		for _, t := range tx.Topics {
			for _, p := range t.Partitions {
				parts = append(parts, coordinator.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		errs := add(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly, parts)
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		i := 0
		for _, t := range tx.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, code(errs[i])
				i++
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return resp, nil
}
