package broker

// EndTxn (key 26), v0-v4.
//
// Behavior: commits or aborts the producer's open transaction at its
// coordinator (coordinator.TxnCoordinator.EndTxn). The answer comes once
// PrepareCommit or PrepareAbort is stored in __transaction_state; the
// markers are then written to every partition of the transaction, and
// requests for the id get CONCURRENT_TRANSACTIONS until they are. A retry
// of an end that went through succeeds; an end that contradicts the
// transaction's state (commit after abort, no open transaction) gets
// INVALID_TXN_STATE; a stale epoch PRODUCER_FENCED (v2+;
// INVALID_PRODUCER_EPOCH before). v5 (KIP-890 part 2, an epoch bump per
// transaction) is not offered: Gregor does not finalize
// transaction.version 2.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) endTxnHandler() handler {
	return handle(kmsg.EndTxn.Int16(), 0, 4, b.handleEndTxn)
}

func (b *Broker) handleEndTxn(c *conn, req *kmsg.EndTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	err := b.txn.EndTxn(c.ctx, coordinator.EndTxnArgs{
		TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch,
		Commit: req.Commit, FencedError: req.Version >= 2,
	})
	resp.ErrorCode = code(err)
	return resp, nil
}
