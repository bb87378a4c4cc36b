package coordinator

// Ownership: the coordinator serves the groups of the partitions of
// OffsetsTopic that this broker leads, as Kafka's does. A partition's
// groups are loaded (replayed from its log) the first time a request
// needs them while this broker leads it, and again whenever its leader
// epoch has moved since (another broker may have led it and written in
// between); they are dropped when this broker no longer leads it.

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ensureOwned makes sure the groups of partition p are in memory and
// current, or says why this broker does not serve them: NOT_COORDINATOR
// (another broker leads p) or COORDINATOR_LOAD_IN_PROGRESS (the replay
// failed; the client retries).
func (c *Coordinator) ensureOwned(p, partitions int32) *kerr.Error {
	return ensureLoaded(&c.loadMu, func() (bool, int32) { return c.logs.Leadership(p) },
		func() (int32, bool) { return c.loadedEpoch(p) },
		func() { c.releaseLocked(p) },
		func(epoch int32) *kerr.Error { return c.loadOwned(p, partitions, epoch) })
}

// loadedEpoch is the leader epoch partition p's groups were loaded at.
func (c *Coordinator) loadedEpoch(p int32) (int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.owned[p]
	return e, ok
}

// ensureLoaded is the ownership rule both coordinators follow for one
// partition of their internal topic: nothing to do when it is loaded at
// the epoch this broker leads it at; otherwise, under loadMu, release it
// when this broker no longer leads it (NOT_COORDINATOR) or leads it at a
// new epoch, and load it (at that epoch) when it leads it.
func ensureLoaded(loadMu *sync.Mutex, leadership func() (bool, int32), loaded func() (int32, bool), release func(), load func(epoch int32) *kerr.Error) *kerr.Error {
	leader, epoch := leadership()
	if e, ok := loaded(); leader && ok && e == epoch {
		return nil
	}
	loadMu.Lock()
	defer loadMu.Unlock()
	leader, epoch = leadership()
	e, ok := loaded()
	switch {
	case !leader:
		if ok {
			release()
		}
		return kerr.NotCoordinator
	case ok && e == epoch:
		return nil
	case ok:
		release() // led again at a new epoch: read it afresh
	}
	return load(epoch)
}

// loadOwned replays partition p and publishes its groups; c.loadMu held.
func (c *Coordinator) loadOwned(p, partitions, epoch int32) *kerr.Error {
	groups, err := c.loadPartition(p, partitions)
	if err != nil {
		c.log.Error().Err(err).Int32("partition", p).Msg("cannot load groups")
		return kerr.CoordinatorLoadInProgress
	}
	now := c.now()
	c.mu.Lock()
	for id, g := range groups {
		c.groups[id] = g
		for producer := range g.txnOffsets {
			c.notePendingLocked(p, producer, id)
		}
	}
	c.owned[p] = epoch
	c.mu.Unlock()
	for _, g := range groups {
		locked(&g.mu, func() { c.armLocked(g, now) })
	}
	return nil
}

// releaseLocked drops the groups of partition p from memory: each is
// marked deleted (requests holding it look it up again) and its timer
// stopped. c.loadMu must be held.
func (c *Coordinator) releaseLocked(p int32) {
	c.mu.Lock()
	var doomed []*group
	for id, g := range c.groups {
		if g.partition == p {
			doomed = append(doomed, g)
			delete(c.groups, id)
		}
	}
	delete(c.owned, p)
	delete(c.pending, p)
	c.mu.Unlock()
	for _, g := range doomed {
		locked(&g.mu, func() {
			g.deleted = true
			if g.timer != nil {
				g.timer.Stop()
			}
			g.abandonWaitersLocked(kerr.NotCoordinator)
		})
	}
	c.log.Info().Int32("partition", p).Int("groups", len(doomed)).Msg("released groups: this broker no longer leads their partition")
}
