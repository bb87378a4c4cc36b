package metadata

// Leader elections an operator asks for (ElectLeaders, KIP-183 and
// KIP-460), as pure functions of a partition's state and the live
// brokers. The broker's ElectLeaders handler writes what they decide,
// compare-and-swap, like the controller's own decisions
// (NextPartitionState).

import (
	"errors"
	"fmt"
	"slices"
)

// Sentinel errors of leader election; the broker maps them to Kafka
// error codes.
var (
	// ErrElectionNotNeeded: the partition already has the leader the
	// election would give it (ELECTION_NOT_NEEDED).
	ErrElectionNotNeeded = errors.New("metadata: election not needed")
	// ErrPreferredLeaderNotAvailable: the preferred replica is not live
	// or not in the ISR (PREFERRED_LEADER_NOT_AVAILABLE).
	ErrPreferredLeaderNotAvailable = errors.New("metadata: preferred leader not available")
	// ErrEligibleLeadersNotAvailable: no replica of the partition is live
	// (ELIGIBLE_LEADERS_NOT_AVAILABLE).
	ErrEligibleLeadersNotAvailable = errors.New("metadata: eligible leaders not available")
)

// ElectPreferredLeader makes the preferred replica (the first of
// Replicas) the leader, with the next leader epoch, if it is live and in
// the ISR. ErrElectionNotNeeded if it already leads;
// ErrPreferredLeaderNotAvailable if it is not live or not in the ISR
// (during a reassignment the first replica is the target's first, which
// may be an adding replica not yet in sync).
func ElectPreferredLeader(st PartitionState, live map[int32]bool) (PartitionState, error) {
	preferred := st.Replicas[0]
	switch {
	case st.Leader == preferred:
		return st, fmt.Errorf("%w: %s-%d is led by its preferred replica %d", ErrElectionNotNeeded, st.Topic, st.Partition, preferred)
	case !live[preferred]:
		return st, fmt.Errorf("%w: %s-%d: preferred replica %d is not live", ErrPreferredLeaderNotAvailable, st.Topic, st.Partition, preferred)
	case !slices.Contains(st.ISR, preferred):
		return st, fmt.Errorf("%w: %s-%d: preferred replica %d is not in the isr %v", ErrPreferredLeaderNotAvailable, st.Topic, st.Partition, preferred, st.ISR)
	}
	next := copyPartition(st)
	next.Leader = preferred
	next.LeaderEpoch = st.LeaderEpoch + 1
	return next, nil
}

// ElectUncleanLeader gives a partition with no live leader a leader:
// a live ISR member if there is one, chosen as the controller would
// (NextPartitionState: first in Replicas order, dead brokers leave the
// ISR); otherwise, losing whatever only the ISR held, the first live
// replica, original replicas before adding ones (an adding replica may
// hold nothing yet), with the ISR reduced to it. Either way the leader
// epoch moves on. ErrElectionNotNeeded if the leader is live;
// ErrEligibleLeadersNotAvailable if no replica is.
func ElectUncleanLeader(st PartitionState, live map[int32]bool) (PartitionState, error) {
	if st.Leader != NoLeader && live[st.Leader] {
		return st, fmt.Errorf("%w: %s-%d is led by live broker %d", ErrElectionNotNeeded, st.Topic, st.Partition, st.Leader)
	}
	if next, _ := NextPartitionState(st, live); next.Leader != NoLeader {
		return next, nil
	}
	for _, id := range append(st.OriginalReplicas(), st.AddingReplicas...) {
		if live[id] {
			next := copyPartition(st)
			next.Leader = id
			next.ISR = []int32{id}
			next.LeaderEpoch = st.LeaderEpoch + 1
			return next, nil
		}
	}
	return st, fmt.Errorf("%w: no replica of %s-%d in %v is live", ErrEligibleLeadersNotAvailable, st.Topic, st.Partition, st.Replicas)
}
