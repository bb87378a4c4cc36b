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
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) addPartitionsToTxnHandler() handler {
	return handle(kmsg.AddPartitionsToTxn.Int16(), 0, 5, b.handleAddPartitionsToTxn)
}

func (b *Broker) handleAddPartitionsToTxn(c *conn, req *kmsg.AddPartitionsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	txns := req.Transactions
	if req.Version <= 3 {
		// The producer's form is one transaction of the batched form.
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = req.TransactionalID, req.ProducerID, req.ProducerEpoch
		for _, t := range req.Topics {
			tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			tt.Topic, tt.Partitions = t.Topic, t.Partitions
			tx.Topics = append(tx.Topics, tt)
		}
		txns = []kmsg.AddPartitionsToTxnRequestTransaction{tx}
	}
	for _, tx := range txns {
		var parts []coordinator.TopicPartition
		for _, t := range tx.Topics {
			for _, p := range t.Partitions {
				parts = append(parts, coordinator.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		errs := b.txn.AddPartitions(c.ctx, coordinator.AddPartitionsArgs{
			TransactionalID: tx.TransactionalID, ProducerID: tx.ProducerID, ProducerEpoch: tx.ProducerEpoch,
			Partitions: parts, VerifyOnly: tx.VerifyOnly, FencedError: req.Version >= 2,
		})
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
	if req.Version <= 3 {
		for _, rt := range resp.Transactions[0].Topics {
			ot := kmsg.NewAddPartitionsToTxnResponseTopic()
			ot.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				op := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				op.Partition, op.ErrorCode = rp.Partition, rp.ErrorCode
				ot.Partitions = append(ot.Partitions, op)
			}
			resp.Topics = append(resp.Topics, ot)
		}
		resp.Transactions = nil
	}
	return resp, nil
}
