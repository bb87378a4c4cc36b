package coordinator

// Offsets committed in a transaction (TxnOffsetCommit).
//
// A transactional commit is written to the group's partition of
// OffsetsTopic as an ordinary offset commit record, in a batch that
// carries the transaction's producer id and epoch and the transactional
// attribute (base sequence -1, as Kafka's coordinator writes it). Until
// the transaction coordinator's marker lands in that partition the
// offsets are pending: they are held by producer id, OffsetFetch does not
// return them, and with require_stable (KIP-447) it answers
// UNSTABLE_OFFSET_COMMIT for the partitions they cover so that a new
// consumer does not start from an offset that may yet be undone. A commit
// marker makes them the group's committed offsets; an abort drops them.
//
// The broker tells the coordinator of every marker it writes to
// OffsetsTopic (CompleteTxn). A replay of a partition keeps pending
// offsets until it meets their producer's marker, so a restart or a move
// of the partition's leadership leaves them pending just the same.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/protocol"
)

// TxnCommitArgs identifies a transactional commit: the producer whose
// transaction holds it and, from v3, the group member that commits.
type TxnCommitArgs struct {
	ProducerID    int64
	ProducerEpoch int16
	MemberID      string
	InstanceID    *string
	Generation    int32 // -1 when the request has none (v0-v2)
}

// pendingOffsets are the offsets of one producer's open transaction, by
// topic and partition.
type pendingOffsets map[string]map[int32]offsetCommit

func (p pendingOffsets) set(topic string, partition int32, oc offsetCommit) {
	ps := p[topic]
	if ps == nil {
		ps = make(map[int32]offsetCommit)
		p[topic] = ps
	}
	ps[partition] = oc
}

// TxnCommit handles a TxnOffsetCommit: it checks the committer as
// OffsetCommit does (when the request names one), writes the offsets to
// OffsetsTopic in the producer's transaction and holds them as pending.
// It returns the error of each partition (same order as parts).
func (c *Coordinator) TxnCommit(ctx context.Context, groupID string, a TxnCommitArgs, parts []CommitPartition) []*kerr.Error {
	out := make([]*kerr.Error, len(parts))
	fill := func(err *kerr.Error) []*kerr.Error {
		for i := range out {
			out[i] = err
		}
		return out
	}
	var groupErr *kerr.Error
	err := c.withGroup(ctx, groupID, a.Generation < 0, func(g *group, now time.Time) {
		// Before v3 the request names no member: Kafka does not check it.
		if a.Generation >= 0 || a.MemberID != "" || a.InstanceID != nil {
			if groupErr = g.checkCommitter(CommitArgs{Version: 9, MemberID: a.MemberID, InstanceID: a.InstanceID, Generation: a.Generation}, now); groupErr != nil {
				return
			}
		}
		commits, records, ok := c.commitRecords(groupID, parts, now, out)
		if len(records) == 0 {
			return
		}
		batch, err := c.codecs.BuildBatch(protocol.CodecNone, now.UnixMilli(), records)
		if err == nil {
			protocol.SetTransactional(batch, a.ProducerID, a.ProducerEpoch)
			err = c.logs.Append(g.partition, batch)
		}
		if err != nil {
			code := kerr.CoordinatorNotAvailable
			if errors.Is(err, kerr.InvalidProducerEpoch) {
				code = kerr.InvalidProducerEpoch
			}
			c.log.Error().Err(err).Str("group", groupID).Int64("producer_id", a.ProducerID).Msg("cannot store transactional offsets")
			for _, i := range ok {
				out[i] = code
			}
			return
		}
		if g.txnOffsets == nil {
			g.txnOffsets = make(map[int64]pendingOffsets)
		}
		pend := g.txnOffsets[a.ProducerID]
		if pend == nil {
			pend = make(pendingOffsets)
			g.txnOffsets[a.ProducerID] = pend
		}
		for _, i := range ok {
			pend.set(parts[i].Topic, parts[i].Partition, commits[i])
		}
		c.notePending(g.partition, a.ProducerID, g.id)
	})
	if err != nil {
		if err == kerr.GroupIDNotFound {
			err = kerr.IllegalGeneration
		}
		return fill(err)
	}
	if groupErr != nil {
		return fill(groupErr)
	}
	return out
}

// notePending records that group has offsets pending in producerID's
// transaction, in partition p of OffsetsTopic.
func (c *Coordinator) notePending(p int32, producerID int64, group string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notePendingLocked(p, producerID, group)
}

// notePendingLocked is notePending with c.mu held.
func (c *Coordinator) notePendingLocked(p int32, producerID int64, group string) {
	byProducer := c.pending[p]
	if byProducer == nil {
		byProducer = make(map[int64]map[string]struct{})
		c.pending[p] = byProducer
	}
	groups := byProducer[producerID]
	if groups == nil {
		groups = make(map[string]struct{})
		byProducer[producerID] = groups
	}
	groups[group] = struct{}{}
}

// CompleteTxn is told that a marker for producerID's transaction is in
// partition p of OffsetsTopic: the producer's pending offsets there
// become committed offsets (commit) or are dropped (abort). A partition
// whose groups are not in memory needs nothing: its replay will meet the
// marker.
func (c *Coordinator) CompleteTxn(p int32, producerID int64, commit bool) {
	// loadMu orders this after a load in progress, whose replay may or may
	// not have seen the marker: completing twice is harmless.
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	c.mu.Lock()
	groups := c.pending[p][producerID]
	delete(c.pending[p], producerID)
	var gs []*group
	for id := range groups {
		if g := c.groups[id]; g != nil {
			gs = append(gs, g)
		}
	}
	c.mu.Unlock()
	for _, g := range gs {
		locked(&g.mu, func() { g.completeTxnLocked(producerID, commit, c.now()) })
	}
}

// completeTxnLocked applies the end of producerID's transaction to the
// group's pending offsets.
func (g *group) completeTxnLocked(producerID int64, commit bool, now time.Time) {
	pend, ok := g.txnOffsets[producerID]
	if !ok {
		return
	}
	delete(g.txnOffsets, producerID)
	if !commit {
		return
	}
	for topic, ps := range pend {
		for p, oc := range ps {
			dst := g.offsets[topic]
			if dst == nil {
				dst = make(map[int32]offsetCommit)
				g.offsets[topic] = dst
			}
			dst[p] = oc
		}
	}
	if g.kind == kindNone && len(g.c.members) == 0 {
		g.c.stateSince = now
	}
}

// unstable reports whether a transaction has offsets pending for
// topic/partition of the group.
func (g *group) unstable(topic string, partition int32) bool {
	for _, pend := range g.txnOffsets {
		if _, ok := pend[topic][partition]; ok {
			return true
		}
	}
	return false
}

// hasPendingTxn reports whether partition p of OffsetsTopic holds offsets
// of a transaction still open (compaction leaves such a partition alone:
// it rewrites committed state only).
func (c *Coordinator) hasPendingTxn(p int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending[p]) > 0
}
