package metadata

// Controller election. See doc.go for the keys.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// controllerDir holds the election's candidates:
// controller/<lease id in hex>, value the candidate's node id. The
// candidate whose key was created first is the controller (etcd's
// concurrency.Election).
const controllerDir = "controller/"

// controllerCandidate is one key under controllerDir in the cache.
type controllerCandidate struct {
	nodeID    int32
	createRev int64
	lease     int64 // the candidate's session lease
}

// Campaign implements Store: it runs an etcd election under a lease of
// its own with the store's lease TTL, so a controller that dies or loses
// etcd loses the role at most one TTL later; lost is closed when that
// lease is gone (or the store closes).
func (s *EtcdStore) Campaign(ctx context.Context, nodeID int32) (<-chan struct{}, func(), error) {
	op := fmt.Sprintf("campaign for controller as broker %d", nodeID)
	if s.isClosed() {
		return nil, nil, s.opErr(op, ErrClosed)
	}
	session, err := concurrency.NewSession(s.cli, concurrency.WithTTL(int(s.ttl/time.Second)), concurrency.WithContext(s.ctx))
	if err != nil {
		return nil, nil, s.opErr(op, fmt.Errorf("new session: %w", err))
	}
	s.elect.Lock()
	if s.elect.closed {
		s.elect.Unlock()
		s.revokeLease(session.Lease())
		return nil, nil, s.opErr(op, ErrClosed)
	}
	s.elect.leases = append(s.elect.leases, session.Lease())
	s.elect.Unlock()
	e := concurrency.NewElection(session, s.prefix+controllerDir)
	if err := e.Campaign(ctx, strconv.FormatInt(int64(nodeID), 10)); err != nil {
		s.dropElectionLease(session.Lease())
		return nil, nil, s.opErr(op, err)
	}
	// Campaign returns once every older candidate's key is gone; let the
	// cache catch up with that, so Controller reads this election.
	if err := s.waitController(ctx, nodeID, e.Rev()); err != nil {
		s.dropElectionLease(session.Lease())
		return nil, nil, s.opErr(op, err)
	}
	s.log.Info().Int32("node_id", nodeID).Msg("elected controller")
	// The role is lost with the session, or with our candidacy's key if
	// that goes under a live session (etcd emptied or restored).
	gone := make(chan struct{})
	key := e.Key()
	s.mu.Lock()
	if _, still := s.mu.controller[strings.TrimPrefix(key, s.prefix)]; still {
		s.mu.ownCandidacies[key] = gone
	} else {
		close(gone)
	}
	s.mu.Unlock()
	lost := make(chan struct{})
	// Owned by the session and the store: it ends with either.
	go func() {
		defer close(lost)
		select {
		case <-session.Done():
		case <-gone:
			s.log.Warn().Int32("node_id", nodeID).Str("key", key).Msg("controller candidacy key vanished from etcd; campaigning again")
		case <-s.ctx.Done():
		}
		s.mu.Lock()
		delete(s.mu.ownCandidacies, key)
		s.mu.Unlock()
	}()
	var once sync.Once
	resign := func() { once.Do(func() { s.dropElectionLease(session.Lease()) }) }
	return lost, resign, nil
}

// waitController waits until the cache holds the candidate key created at
// rev as the oldest one.
func (s *EtcdStore) waitController(ctx context.Context, nodeID int32, rev int64) error {
	for {
		s.mu.Lock()
		oldest, found := controllerCandidate{}, false
		for _, c := range s.mu.controller {
			if !found || c.createRev < oldest.createRev {
				oldest, found = c, true
			}
		}
		advanced := s.mu.advanced
		s.mu.Unlock()
		if found && oldest.createRev == rev && oldest.nodeID == nodeID {
			return nil
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return fmt.Errorf("elected at revision %d but the local cache does not show it yet: %w", rev, ctx.Err())
		case <-s.closed:
			return ErrClosed
		}
	}
}

// dropElectionLease revokes one of this store's election leases and
// forgets it, so that Close does not revoke it again.
func (s *EtcdStore) dropElectionLease(id clientv3.LeaseID) {
	s.elect.Lock()
	s.elect.leases = slices.DeleteFunc(s.elect.leases, func(l clientv3.LeaseID) bool { return l == id })
	s.elect.Unlock()
	s.revokeLease(id)
}

// revokeLease ends a lease now (past the TTL it is gone anyway).
func (s *EtcdStore) revokeLease(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) && !errors.Is(err, context.Canceled) {
		s.log.Warn().Err(err).Msg("cannot revoke a controller election lease")
	}
}

// closeElections revokes every election lease this store took, so its
// candidacies end at once.
func (s *EtcdStore) closeElections() {
	s.elect.Lock()
	s.elect.closed = true
	leases := s.elect.leases
	s.elect.leases = nil
	s.elect.Unlock()
	for _, id := range leases {
		s.revokeLease(id)
	}
}

// Controller implements Store: the candidate whose key is oldest.
func (s *EtcdStore) Controller() (int32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, found := controllerCandidate{}, false
	for _, c := range s.mu.controller {
		if !found || c.createRev < best.createRev {
			best, found = c, true
		}
	}
	return best.nodeID, found
}

// Campaign implements Store: candidates are served in the order they
// campaigned; a store's candidacy ends when ctx ends before it wins or
// when the store closes.
func (m *MemoryStore) Campaign(ctx context.Context, nodeID int32) (<-chan struct{}, func(), error) {
	c := m.c
	c.mu.Lock()
	if m.closed {
		c.mu.Unlock()
		return nil, nil, fmt.Errorf("metadata: campaign: %w", ErrClosed)
	}
	cand := &memCandidate{store: m, nodeID: nodeID, won: make(chan struct{}), lost: make(chan struct{}), dropped: make(chan struct{})}
	c.mu.candidates = append(c.mu.candidates, cand)
	c.promoteLocked()
	c.mu.Unlock()
	select {
	case <-cand.won:
		resign := func() {
			c.mu.Lock()
			c.dropCandidateLocked(cand)
			c.mu.Unlock()
		}
		return cand.lost, resign, nil
	case <-cand.dropped:
		return nil, nil, fmt.Errorf("metadata: campaign: %w", ErrClosed)
	case <-ctx.Done():
		// Also when it won meanwhile: the caller will not hold the role,
		// so it goes to the next candidate.
		c.mu.Lock()
		c.dropCandidateLocked(cand)
		c.mu.Unlock()
		return nil, nil, fmt.Errorf("metadata: campaign: %w", ctx.Err())
	}
}

// Controller implements Store.
// RegistrationAlive implements Store: an in-memory registration never
// expires.
func (m *MemoryStore) RegistrationAlive() bool { return true }

func (m *MemoryStore) Controller() (int32, bool) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if len(m.c.mu.candidates) == 0 {
		return 0, false
	}
	return m.c.mu.candidates[0].nodeID, true
}

// memCandidate is one MemoryStore candidacy; the first in
// memCluster.candidates is the controller.
type memCandidate struct {
	store   *MemoryStore
	nodeID  int32
	won     chan struct{} // closed when it became controller
	lost    chan struct{} // closed when it stopped being controller
	dropped chan struct{} // closed when the candidacy ended before it won
	winner  bool
}

// promoteLocked makes the first candidate the controller.
func (c *memCluster) promoteLocked() {
	if len(c.mu.candidates) > 0 && !c.mu.candidates[0].winner {
		c.mu.candidates[0].winner = true
		close(c.mu.candidates[0].won)
	}
}

// dropCandidateLocked ends a candidacy and promotes the next one.
func (c *memCluster) dropCandidateLocked(cand *memCandidate) {
	for i, x := range c.mu.candidates {
		if x == cand {
			c.mu.candidates = append(c.mu.candidates[:i:i], c.mu.candidates[i+1:]...)
			if cand.winner {
				close(cand.lost)
			} else {
				close(cand.dropped)
			}
			break
		}
	}
	c.promoteLocked()
}
