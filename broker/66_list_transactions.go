package broker

// ListTransactions (key 66), v0-v2.
//
// Behavior: the transactional ids this broker coordinates (admin clients
// ask every broker), filtered by state names (names Kafka does not know
// come back in unknown_state_filters), producer ids, v1+ the least time
// a transaction has been open, and v2+ a regular expression on the id
// (Go's syntax; an invalid one gets INVALID_REQUEST).

import (
	"regexp"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) listTransactionsHandler() handler {
	return handle(kmsg.ListTransactions.Int16(), 0, 2, b.handleListTransactions)
}

func (b *Broker) handleListTransactions(c *conn, req *kmsg.ListTransactionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	f := coordinator.ListFilter{States: req.StateFilters, ProducerIDs: req.ProducerIDFilters, MinDurationMs: -1}
	if req.Version >= 1 {
		f.MinDurationMs = req.DurationFilterMillis
	}
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		re, err := regexp.Compile(*req.TransactionalIDPattern)
		if err != nil {
			resp.ErrorCode = kerr.InvalidRequest.Code
			return resp, nil
		}
		f.Pattern = re
	}
	listed, unknown := b.txn.List(f)
	resp.UnknownStateFilters = unknown
	for _, l := range listed {
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = l.TransactionalID, l.ProducerID, l.State
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
