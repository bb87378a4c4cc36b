package broker

// DescribeTransactions (key 65), v0.
//
// Behavior: the state of each transactional id this broker coordinates:
// its state name as Kafka spells it (Empty, Ongoing, PrepareCommit,
// PrepareAbort, CompleteCommit, CompleteAbort), timeout, start time (-1
// with no open transaction), producer id and epoch, and the partitions of
// its open transaction. An id coordinated elsewhere gets NOT_COORDINATOR,
// an unknown one TRANSACTIONAL_ID_NOT_FOUND.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeTransactionsHandler() handler {
	return handle(kmsg.DescribeTransactions.Int16(), 0, 0, b.handleDescribeTransactions)
}

func (b *Broker) handleDescribeTransactions(c *conn, req *kmsg.DescribeTransactionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, d := range b.txn.Describe(c.ctx, req.TransactionalIDs) {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = d.TransactionalID
		st.ErrorCode = code(d.Err)
		st.State, st.TimeoutMillis, st.StartTimestamp = d.State, d.TimeoutMs, d.StartMs
		st.ProducerID, st.ProducerEpoch = d.ProducerID, d.ProducerEpoch
		for _, tp := range d.Partitions {
			if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = tp.Topic
				st.Topics = append(st.Topics, t)
			}
			t := &st.Topics[len(st.Topics)-1]
			t.Partitions = append(t.Partitions, tp.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
