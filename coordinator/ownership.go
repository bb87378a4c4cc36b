package coordinator

// Ownership: the coordinator serves the groups of the partitions of
// OffsetsTopic that this broker leads, as Kafka's does. A partition's
// groups are loaded (replayed from its log) the first time a request
// needs them while this broker leads it, and again whenever its leader
// epoch has moved since (another broker may have led it and written in
// between); they are dropped when this broker no longer leads it.

import (
	"github.com/twmb/franz-go/pkg/kerr"
)

// ensureOwned makes sure the groups of partition p are in memory and
// current, or says why this broker does not serve them: NOT_COORDINATOR
// (another broker leads p) or COORDINATOR_LOAD_IN_PROGRESS (the replay
// failed; the client retries).
func (c *Coordinator) ensureOwned(p, partitions int32) *kerr.Error {
	leader, epoch := c.logs.Leadership(p)
	c.mu.Lock()
	e, ok := c.owned[p]
	c.mu.Unlock()
	if leader && ok && e == epoch {
		return nil
	}
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	leader, epoch = c.logs.Leadership(p)
	c.mu.Lock()
	e, ok = c.owned[p]
	c.mu.Unlock()
	if !leader {
		if ok {
			c.releaseLocked(p)
		}
		return kerr.NotCoordinator
	}
	if ok && e == epoch {
		return nil
	}
	if ok {
		c.releaseLocked(p) // led again at a new epoch: read it afresh
	}
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
		g.mu.Lock()
		c.armLocked(g, now)
		g.mu.Unlock()
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
		g.mu.Lock()
		g.deleted = true
		if g.timer != nil {
			g.timer.Stop()
		}
		g.abandonWaitersLocked(kerr.NotCoordinator)
		g.mu.Unlock()
	}
	c.log.Info().Int32("partition", p).Int("groups", len(doomed)).Msg("released groups: this broker no longer leads their partition")
}

// owns reports whether partition p's groups are in memory.
func (c *Coordinator) owns(p int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.owned[p]
	return ok
}
