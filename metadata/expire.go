package metadata

// Expiring the registration of a broker known to be dead, before its
// lease runs out.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// BrokerIncarnation names one registration of a broker: one process's
// lease. A broker that restarts, or loses its lease and registers again,
// is a new incarnation. The zero value names none.
type BrokerIncarnation struct {
	lease     int64 // the etcd lease of the registration
	createRev int64 // the revision that created the registration key
}

// BrokerExpirer is implemented by stores that can end a dead broker's
// registration early. A lease is the proof of life that fencing relies
// on, so ending one is safe only when the process that holds it is known
// to be gone: its connections closed and its listening port refuses new
// ones (a live broker closes its listener only in Close, after it gave up
// leadership). Then its partitions fail over at once rather than one lease
// TTL after its last renewal.
type BrokerExpirer interface {
	// BrokerIncarnation returns the registration nodeID has in the cache
	// now; false when it is not registered.
	BrokerIncarnation(nodeID int32) (BrokerIncarnation, bool)
	// ExpireBroker ends registration inc of nodeID as if its lease had
	// expired, together with the controller candidacies that incarnation
	// created. A newer incarnation of the broker is left alone; an
	// incarnation already gone is not an error.
	ExpireBroker(ctx context.Context, nodeID int32, inc BrokerIncarnation) error
}

var _ BrokerExpirer = (*EtcdStore)(nil)

// BrokerIncarnation implements BrokerExpirer.
func (s *EtcdStore) BrokerIncarnation(nodeID int32) (BrokerIncarnation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inc, ok := s.mu.incarnations[nodeID]
	return inc, ok
}

// expireRetry is how long ExpireBroker keeps trying when etcd has no
// leader (the dead broker may have run the embedded quorum's leader).
const expireRetry = 100 * time.Millisecond

// ExpireBroker implements BrokerExpirer. It revokes the registration's
// lease and the leases of the controller candidacies nodeID created after
// that registration (and before a newer one), retrying until ctx ends.
func (s *EtcdStore) ExpireBroker(ctx context.Context, nodeID int32, inc BrokerIncarnation) error {
	if inc.lease == 0 {
		return nil
	}
	if s.reg.Lock(); s.reg.lease == clientv3.LeaseID(inc.lease) {
		s.reg.Unlock()
		return fmt.Errorf("metadata: expire broker %d: that is this store's own registration", nodeID)
	}
	s.reg.Unlock()
	// The candidacies are read from the cache: bring it up to etcd's
	// current revision first, so that one created just before is not
	// missed (the dead broker would then stay controller until its
	// session's lease ran out). Without etcd the cache is what there is.
	if err := s.Sync(ctx); err != nil {
		s.log.Debug().Int32("node_id", nodeID).Err(err).Msg("expiring a broker from a cache that may lag")
	}
	leases := []clientv3.LeaseID{clientv3.LeaseID(inc.lease)}
	s.mu.Lock()
	until := int64(-1) // candidacies created before this revision (-1: any)
	if cur, ok := s.mu.incarnations[nodeID]; ok && cur != inc {
		until = cur.createRev
	}
	for _, c := range s.mu.controller {
		if c.nodeID != nodeID || c.createRev < inc.createRev || (until >= 0 && c.createRev >= until) || c.lease == 0 {
			continue
		}
		leases = append(leases, clientv3.LeaseID(c.lease))
	}
	s.mu.Unlock()
	for _, id := range leases {
		if err := s.revokeUntil(ctx, id); err != nil {
			return fmt.Errorf("metadata: expire broker %d: revoke lease %x: %w", nodeID, int64(id), err)
		}
	}
	s.log.Info().Int32("node_id", nodeID).Int("leases", len(leases)).Msg("expired a dead broker's registration")
	return nil
}

// revokeUntil revokes lease id, retrying transient failures until ctx
// ends. A lease that is already gone counts as revoked.
func (s *EtcdStore) revokeUntil(ctx context.Context, id clientv3.LeaseID) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		_, err := s.cli.Revoke(attempt, id)
		cancel()
		if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-s.closed:
			return ErrClosed
		case <-time.After(expireRetry):
		}
	}
}
