package broker

// Replication on the broker side: each local partition is led here, followed
// from another broker (replication.Manager fetches it), or neither. A led
// partition keeps a replication.Leader under its repl mutex: follower
// fetches feed it, and from it come the high watermark (the lowest log
// end offset in the ISR) and ISR changes, which the leader writes to the
// metadata store with compare-and-swap (the controller writes there too,
// for dead brokers; whoever loses re-reads and decides again).

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/replication"
)

// replState is the replication state of one local partition, protected
// by partition.repl.mu.
type replState struct {
	leader     *replication.Leader // nil unless this broker leads the partition
	epochStart int64               // log end offset when this broker became leader at the current epoch
	isrPending bool                // an ISR change is being written
	// lowWMCh is closed (and set to nil) when a follower's log start
	// offset moves; nil until lowWatermark hands one out.
	lowWMCh chan struct{}
}

// lowWatermark returns the partition's low watermark (the lowest log
// start offset in the ISR; the log's own when not replicated or not led
// here, -1 while a member's is unknown) and a channel closed when a
// follower's log start next moves.
func (part *partition) lowWatermark() (int64, <-chan struct{}) {
	part.repl.Lock()
	defer part.repl.Unlock()
	l := part.replState.leader
	if l == nil {
		return part.log.LogStartOffset(), nil
	}
	if part.replState.lowWMCh == nil {
		part.replState.lowWMCh = make(chan struct{})
	}
	return l.LowWatermark(part.log.LogStartOffset()), part.replState.lowWMCh
}

// newReplicaManager builds the follower side from the broker's configs.
func (b *Broker) newReplicaManager() *replication.Manager {
	ms := func(name string, def time.Duration) time.Duration {
		if n, err := strconv.ParseInt(b.brokerConfig(name), 10, 64); err == nil {
			return time.Duration(n) * time.Millisecond
		}
		return def
	}
	n32 := func(name string) int32 {
		n, _ := strconv.ParseInt(b.brokerConfig(name), 10, 32)
		return int32(n)
	}
	return replication.NewManager(replication.Config{
		NodeID: b.cfg.NodeID,
		Resolve: func(id int32) (string, bool) {
			for _, br := range b.store.Brokers() {
				if br.NodeID == id {
					return br.Host + ":" + strconv.Itoa(int(br.Port)), true
				}
			}
			return "", false
		},
		MaxWait:           ms("replica.fetch.wait.max.ms", 500*time.Millisecond),
		PartitionMaxBytes: n32("replica.fetch.max.bytes"),
		MaxBytes:          n32("replica.fetch.response.max.bytes"),
		Backoff:           ms("replica.fetch.backoff.ms", time.Second),
		Log:               b.log.With().Str("component", "replica-fetcher").Logger(),
		Appended:          func(n int) { b.metrics.replicationBytesIn.Add(uint64(n)) },
	})
}

// followState makes part's replication follow st: lead it, follow its
// leader, or neither. Called with the partition set's lock held, for
// every state change of a local partition.
func (s *partitionSet) followState(part *partition, st metadata.PartitionState) {
	b := s.b
	self := b.cfg.NodeID
	part.repl.Lock()
	defer part.repl.Unlock()
	defer func() {
		close(part.roleChanged)
		part.roleChanged = make(chan struct{})
	}()
	switch {
	case st.Leader == self:
		b.repl.Unfollow(part.topic, part.index)
		if l := part.replState.leader; l != nil && l.Epoch() == st.LeaderEpoch {
			l.Update(st.Replicas, st.ISR, b.now())
		} else {
			if err := part.log.AssignEpoch(st.LeaderEpoch); err != nil {
				b.log.Error().Err(err).Str("topic", part.topic).Int32("partition", part.index).Msg("cannot record the new leader epoch")
			}
			part.replState = replState{leader: replication.NewLeader(self, st.LeaderEpoch, st.Replicas, st.ISR, b.now()), epochStart: part.log.LogEndOffset()}
			b.log.Info().Str("topic", part.topic).Int32("partition", part.index).Int32("leader_epoch", st.LeaderEpoch).
				Ints32("isr", st.ISR).Int64("log_end_offset", part.log.LogEndOffset()).Msg("leading the partition")
		}
		part.epoch.Store(st.LeaderEpoch)
		part.leading.Store(true)
		s.advanceHWLocked(part)
	case slices.Contains(st.Replicas, self) && st.Leader != metadata.NoLeader && part.log.Failed() == nil:
		part.leading.Store(false)
		part.epoch.Store(st.LeaderEpoch)
		part.replState = replState{}
		b.repl.Follow(replication.Replica{Topic: part.topic, Partition: part.index, Log: part.log}, st.Leader, st.LeaderEpoch)
	default:
		part.leading.Store(false)
		part.epoch.Store(st.LeaderEpoch)
		part.replState = replState{}
		b.repl.Unfollow(part.topic, part.index)
	}
}

// advanceHWLocked moves the high watermark of a led partition to what its
// ISR has reached. part.repl held.
func (s *partitionSet) advanceHWLocked(part *partition) {
	if l := part.replState.leader; l != nil {
		if hw := l.HighWatermark(part.log.LogEndOffset()); hw >= 0 {
			part.log.SetHighWatermark(hw)
		}
	}
}

// appended moves the high watermark after a local append by the leader.
func (s *partitionSet) appended(part *partition) {
	part.repl.Lock()
	s.advanceHWLocked(part)
	part.repl.Unlock()
}

// roleWatch returns a channel closed at the partition's next leadership
// change.
func (part *partition) roleWatch() <-chan struct{} {
	part.repl.Lock()
	defer part.repl.Unlock()
	return part.roleChanged
}

// isr returns the partition's ISR as this leader knows it (nil when it
// does not lead).
func (part *partition) isr() []int32 {
	part.repl.Lock()
	defer part.repl.Unlock()
	if l := part.replState.leader; l != nil {
		return slices.Clone(l.ISR())
	}
	return nil
}

// followerFetched records a follower's fetch of a led partition at offset
// and moves the high watermark; a follower that caught up joins the ISR.
// Its log start offset (logStart) feeds the low watermark DeleteRecords
// waits for.
func (s *partitionSet) followerFetched(part *partition, replica int32, offset, logStart int64) {
	part.repl.Lock()
	defer part.repl.Unlock()
	l := part.replState.leader
	if l == nil {
		return
	}
	if l.FetchedLogStart(replica, logStart) && part.replState.lowWMCh != nil {
		close(part.replState.lowWMCh)
		part.replState.lowWMCh = nil
	}
	join := l.Fetched(replica, offset, part.log.LogEndOffset(), part.log.HighWatermark(), part.replState.epochStart, s.b.now())
	s.advanceHWLocked(part)
	if join {
		s.changeISRLocked(part, func(isr []int32) []int32 {
			if slices.Contains(isr, replica) {
				return isr
			}
			return append(slices.Clone(isr), replica)
		}, "follower caught up; adding it to the isr")
	}
}

// changeISRLocked writes an ISR change in the background unless one is
// already being written (the next fetch or check tries again).
// part.repl held.
func (s *partitionSet) changeISRLocked(part *partition, change func([]int32) []int32, why string) {
	if part.replState.isrPending {
		return
	}
	part.replState.isrPending = true
	epoch := part.replState.leader.Epoch()
	b := s.b
	safe.Go(&b.bg, b.log, "ISR change", func() {
		defer func() {
			part.repl.Lock()
			part.replState.isrPending = false
			part.repl.Unlock()
		}()
		for range 3 {
			st, ok := b.store.Partition(part.topic, part.index)
			if !ok || st.TopicID != part.topicID || st.Leader != b.cfg.NodeID || st.LeaderEpoch != epoch {
				return
			}
			next := change(st.ISR)
			if slices.Equal(next, st.ISR) {
				return
			}
			shrunk := len(next) < len(st.ISR)
			st.ISR = next
			ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
			_, err := b.store.SetPartitionState(ctx, st)
			cancel()
			if err == nil {
				if shrunk {
					b.metrics.isrShrinks.Inc()
				} else {
					b.metrics.isrExpands.Inc()
				}
				b.log.Info().Str("topic", part.topic).Int32("partition", part.index).Int32("leader_epoch", epoch).
					Ints32("isr", next).Msg(why)
				return
			}
			if b.ctx.Err() != nil {
				return // closing
			}
			if !errors.Is(err, metadata.ErrConflict) {
				b.log.Warn().Err(err).Str("topic", part.topic).Int32("partition", part.index).Msg("cannot write an isr change")
				return
			}
		}
	})
}

// shrinkISRs drops followers that lag more than maxLag from the ISR of
// every partition this broker leads; Start runs it periodically.
func (s *partitionSet) shrinkISRs(maxLag time.Duration) {
	now := s.b.now()
	for _, part := range s.all() {
		part.repl.Lock()
		if l := part.replState.leader; l != nil {
			if lagging := l.Lagging(now, maxLag); len(lagging) > 0 {
				s.changeISRLocked(part, func(isr []int32) []int32 {
					return slices.DeleteFunc(slices.Clone(isr), func(id int32) bool { return slices.Contains(lagging, id) })
				}, "followers fell behind; removing them from the isr")
			}
		}
		part.repl.Unlock()
	}
}

// handOffLeadership is controlled shutdown: before the broker stops, it
// leaves the ISR of its partitions and every partition it leads moves to
// another live ISR member (stepAside), so clients and acks=all writes
// carry on at once instead of after the lease expires. It returns how many
// partitions changed.
func (b *Broker) handOffLeadership(ctx context.Context) int {
	moved, stayed := 0, 0
	for _, part := range b.parts.all() {
		switch b.stepAside(ctx, part, "controlled shutdown") {
		case stepMoved:
			moved++
		case stepStayed:
			stayed++
		}
	}
	if stayed > 0 {
		// One line, not one a partition: on a single broker this is
		// every partition at every stop.
		b.log.Info().Int("partitions", stayed).Msg("controlled shutdown: stayed in the isr of partitions with no other live in-sync replica")
	}
	return moved
}

// leaveISRsAfterCrash applies the KIP-966 rule at start: a replica whose
// log was recovered after an unclean shutdown may have lost records that
// were acknowledged (what was not fsynced), so it leaves the ISR, and
// leadership if it had it, wherever another live in-sync replica can take
// over; it rejoins once it has caught up. Where it is the last in-sync
// replica it stays: no live replica is known to hold more.
func (b *Broker) leaveISRsAfterCrash(ctx context.Context) {
	n, stayed := 0, 0
	for _, part := range b.parts.all() {
		if !part.log.CrashRecovered() {
			continue
		}
		switch b.stepAside(ctx, part, "unclean shutdown") {
		case stepMoved:
			n++
		case stepStayed:
			stayed++
		}
	}
	if n > 0 {
		b.log.Info().Int("partitions", n).Msg("left the isr of partitions whose logs were recovered after an unclean shutdown")
	}
	if stayed > 0 {
		b.log.Warn().Int("partitions", stayed).
			Msg("stayed in the isr of partitions recovered after an unclean shutdown: no other live in-sync replica is known to hold more")
	}
}

// stepResult is what stepAside did.
type stepResult int

const (
	stepNone   stepResult = iota // not in the ISR, or the write failed
	stepMoved                    // left the ISR (and leadership, if held)
	stepStayed                   // stayed: no other live in-sync replica
)

// stepAside takes this broker out of a partition's ISR; if it leads the
// partition, leadership moves with the next epoch to the first live ISR
// member in replica order. Nothing changes when no other live ISR member
// exists (stepStayed: the caller says so in the log, once for many).
func (b *Broker) stepAside(ctx context.Context, part *partition, why string) stepResult {
	live := map[int32]bool{}
	for _, br := range b.store.Brokers() {
		live[br.NodeID] = br.NodeID != b.cfg.NodeID
	}
	self := b.cfg.NodeID
	for range 3 {
		st, ok := b.store.Partition(part.topic, part.index)
		if !ok || st.TopicID != part.topicID || !slices.Contains(st.ISR, self) {
			return stepNone
		}
		next := st.Leader
		if st.Leader == self {
			next = metadata.NoLeader
			for _, id := range st.Replicas {
				if live[id] && slices.Contains(st.ISR, id) {
					next = id
					break
				}
			}
		}
		if next == metadata.NoLeader || len(st.ISR) == 1 {
			b.log.Debug().Str("topic", part.topic).Int32("partition", part.index).Ints32("isr", st.ISR).Str("reason", why).
				Msg("no other live in-sync replica; staying in the isr")
			return stepStayed
		}
		if next != st.Leader {
			st.Leader, st.LeaderEpoch = next, st.LeaderEpoch+1
		}
		st.ISR = slices.DeleteFunc(slices.Clone(st.ISR), func(id int32) bool { return id == self })
		_, err := b.store.SetPartitionState(ctx, st)
		if err == nil {
			b.log.Info().Str("topic", part.topic).Int32("partition", part.index).Int32("leader", st.Leader).
				Int32("leader_epoch", st.LeaderEpoch).Ints32("isr", st.ISR).Str("reason", why).Msg("left the isr")
			return stepMoved
		}
		if !errors.Is(err, metadata.ErrConflict) {
			b.log.Warn().Err(err).Str("topic", part.topic).Int32("partition", part.index).Str("reason", why).Msg("cannot leave the isr")
			return stepNone
		}
	}
	return stepNone
}
