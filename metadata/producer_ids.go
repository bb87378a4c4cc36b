package metadata

// Producer ids: one counter for the whole cluster.
//
// Key <prefix>/producer-ids holds {"v":1,"next":<n>}: every id below n has
// been handed out. AllocateProducerIDs moves it forward with a
// compare-and-swap on the key's mod revision, so two brokers never get the
// same block, and ids are never reused, even after every broker restarted.

import (
	"context"
	"errors"
	"fmt"
	"math"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// producerIDsKey is the counter's key, relative to the prefix.
const producerIDsKey = "producer-ids"

// producerIDsValue is the counter's JSON form.
type producerIDsValue struct {
	V    int   `json:"v"`
	Next int64 `json:"next"`
}

// ErrProducerIDsExhausted means the cluster has handed out every producer
// id an int64 holds.
var ErrProducerIDsExhausted = errors.New("metadata: producer ids exhausted")

// checkProducerIDBlock validates a request for n ids starting at next.
func checkProducerIDBlock(next, n int64) error {
	if n <= 0 {
		return fmt.Errorf("metadata: allocate %d producer ids: want at least one", n)
	}
	if next < 0 || next > math.MaxInt64-n {
		return ErrProducerIDsExhausted
	}
	return nil
}

// AllocateProducerIDs implements Store.
func (s *EtcdStore) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	op := fmt.Sprintf("allocate %d producer ids", n)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	key := s.prefix + producerIDsKey
	for {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return 0, s.opErr(op, err)
		}
		var next, modRev int64
		if len(resp.Kvs) == 1 {
			var v producerIDsValue
			if err := decodeStrict(resp.Kvs[0].Value, &v, &v.V); err != nil {
				return 0, s.opErr(op, fmt.Errorf("%s: %w", key, err))
			}
			next, modRev = v.Next, resp.Kvs[0].ModRevision
		}
		if err := checkProducerIDBlock(next, n); err != nil {
			return 0, s.opErr(op, err)
		}
		val, err := marshal(producerIDsValue{V: valueVersion, Next: next + n})
		if err != nil {
			return 0, s.opErr(op, err)
		}
		txn, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
			Then(clientv3.OpPut(key, string(val))).
			Commit()
		if err != nil {
			return 0, s.opErr(op, err)
		}
		if txn.Succeeded {
			return next, nil
		}
		// Another broker took a block first: read the counter again.
	}
}

// AllocateProducerIDs implements Store.
func (m *MemoryStore) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.closed {
		return 0, fmt.Errorf("metadata: allocate producer ids: %w", ErrClosed)
	}
	if err := checkProducerIDBlock(c.mu.nextProducerID, n); err != nil {
		return 0, err
	}
	first := c.mu.nextProducerID
	c.mu.nextProducerID += n
	return first, nil
}
