package broker

// InitProducerId (key 22), v0-v5.
//
// Behavior:
//   - Without a transactional id (idempotent producers): a new producer id
//     with epoch 0, every time, as Kafka does; a producer that resets
//     (KIP-360) simply gets a new id. Ids come from blocks that the
//     cluster hands out once (metadata.Store.AllocateProducerIDs), so they
//     are unique across brokers and restarts.
//   - With a transactional id, sent to the id's transaction coordinator
//     (coordinator.TxnCoordinator.InitProducerID): the id keeps its
//     producer id and gets the next epoch, which fences every older
//     producer of the id; an open transaction is aborted first
//     (CONCURRENT_TRANSACTIONS until it is). The timeout must be in
//     (0, transaction.max.timeout.ms], else INVALID_TRANSACTION_TIMEOUT.
//     v3+ may name the producer's current id and epoch (KIP-360); a stale
//     one gets PRODUCER_FENCED (v4+) or INVALID_PRODUCER_EPOCH.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) initProducerIDHandler() handler {
	return handle(kmsg.InitProducerID.Int16(), 0, 5, b.handleInitProducerID)
}

func (b *Broker) handleInitProducerID(c *conn, req *kmsg.InitProducerIDRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	ctx, cancel := context.WithTimeout(c.ctx, producerIDTimeout)
	defer cancel()
	if req.TransactionalID != nil {
		if *req.TransactionalID == "" {
			resp.ErrorCode = kerr.InvalidRequest.Code
			return resp, nil
		}
		id, epoch, err := b.txn.InitProducerID(ctx, coordinator.InitProducerIDArgs{
			TransactionalID: *req.TransactionalID,
			TimeoutMs:       req.TransactionTimeoutMillis,
			ProducerID:      req.ProducerID,
			ProducerEpoch:   req.ProducerEpoch,
			FencedError:     req.Version >= 4,
		})
		if err != nil {
			resp.ErrorCode = err.Code
			return resp, nil
		}
		resp.ProducerID, resp.ProducerEpoch = id, epoch
		return resp, nil
	}
	id, err := b.nextProducerID(ctx)
	if err != nil {
		b.log.Warn().Err(err).Msg("cannot allocate a producer id")
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

// nextProducerID is a producer id no one else was given.
func (b *Broker) nextProducerID(ctx context.Context) (int64, error) {
	return b.producerIDs.take(ctx, b.store.AllocateProducerIDs)
}

const (
	// producerIDBlockSize is how many producer ids a broker takes from
	// the cluster at once (Kafka's block size too).
	producerIDBlockSize = 1000
	// producerIDTimeout bounds the wait for a new block.
	producerIDTimeout = 5 * time.Second
)

// producerIDBlock hands out this broker's current block of producer ids.
// Its fields are protected by mu, which is held across the fetch of a
// new block so that concurrent callers wait for one fetch.
type producerIDBlock struct {
	mu       sync.Mutex
	cur, end int64 // ids cur .. end-1 are left; none when cur == end
}

// take returns an id no one else was given, taking a new block through
// allocate when this one is used up.
func (p *producerIDBlock) take(ctx context.Context, allocate func(ctx context.Context, n int64) (int64, error)) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == p.end {
		first, err := allocate(ctx, producerIDBlockSize)
		if err != nil {
			return 0, fmt.Errorf("broker: allocate producer ids: %w", err)
		}
		p.cur, p.end = first, first+producerIDBlockSize
	}
	id := p.cur
	p.cur++
	return id, nil
}
