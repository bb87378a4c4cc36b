package metadata

// Partition reassignment (KIP-455) as Kafka's KRaft controller does it,
// as pure functions of a partition's state: starting one
// (ReassignPartition), cancelling one (CancelReassignment), and the
// controller's step that completes one (NextReassignmentState). The
// broker's AlterPartitionReassignments handler writes the first two; the
// controller's pass writes the third. Every write is a compare-and-swap,
// so the order in which they race does not matter.
//
// A reassignment of a partition with replicas R to a target T is held in
// the state itself (see PartitionState):
//
//	Replicas         = T, then the members of R not in T (in R order)
//	AddingReplicas   = T − R
//	RemovingReplicas = R − T
//
// The ISR and the leader do not change when it starts. The new replicas
// catch up as followers (replication) and join the ISR; once all of them
// are in it, the controller completes the reassignment.

import (
	"errors"
	"fmt"
	"slices"
)

// Sentinel errors of reassignment and leader election; the broker maps
// them to Kafka error codes.
var (
	// ErrInvalidReplicaAssignment: a reassignment target that cannot be
	// used (empty, repeats, unregistered brokers), or a cancellation that
	// would leave the partition with an empty ISR
	// (INVALID_REPLICA_ASSIGNMENT).
	ErrInvalidReplicaAssignment = errors.New("metadata: invalid replica assignment")
	// ErrNoReassignmentInProgress: a cancellation of a partition that is
	// not being reassigned (NO_REASSIGNMENT_IN_PROGRESS).
	ErrNoReassignmentInProgress = errors.New("metadata: no reassignment in progress")
)

// ReassignPartition starts a reassignment of st to target, whose brokers
// must all be registered (live). A reassignment already in progress is
// cancelled first (CancelReassignment), so the new one starts from the
// original replicas, as in Kafka. A target with the same members as the
// replicas only reorders them, and no reassignment is in progress after
// it. The leader, its epoch and the ISR are unchanged.
//
// A target that drops replicas without adding any is complete as soon as
// NextReassignmentState says so; the caller may apply that at once.
func ReassignPartition(st PartitionState, target []int32, live map[int32]bool) (PartitionState, error) {
	if len(target) == 0 {
		return st, fmt.Errorf("%w: empty replica list", ErrInvalidReplicaAssignment)
	}
	for i, id := range target {
		if slices.Contains(target[:i], id) {
			return st, fmt.Errorf("%w: broker %d is listed more than once in %v", ErrInvalidReplicaAssignment, id, target)
		}
		if !live[id] {
			return st, fmt.Errorf("%w: broker %d is not registered", ErrInvalidReplicaAssignment, id)
		}
	}
	base := st
	if st.Reassigning() {
		var err error
		if base, err = CancelReassignment(st, live); err != nil {
			return st, err
		}
	}
	next := copyPartition(base)
	adding := without(target, base.Replicas)
	removing := without(base.Replicas, target)
	next.AddingReplicas, next.RemovingReplicas = adding, removing
	next.Replicas = append(slices.Clone(target), removing...)
	return next, nil
}

// CancelReassignment reverts a reassignment in progress, as Kafka's
// PartitionReassignmentRevert does: Replicas and the ISR lose the adding
// replicas (Replicas keeps its order, which is the original order when
// the target listed the original replicas it kept first and in their
// original order; the state does not record more), and a leader that was
// an adding replica gives way to the first live replica in the remaining
// ISR with the next epoch (none: no leader, the epoch still moving on).
// ErrNoReassignmentInProgress when none is in progress;
// ErrInvalidReplicaAssignment when only adding replicas are in sync, as
// the partition would be left with an empty ISR.
func CancelReassignment(st PartitionState, live map[int32]bool) (PartitionState, error) {
	if !st.Reassigning() {
		return st, fmt.Errorf("%w: %s-%d", ErrNoReassignmentInProgress, st.Topic, st.Partition)
	}
	next := copyPartition(st)
	next.Replicas = st.OriginalReplicas()
	next.ISR = without(st.ISR, st.AddingReplicas)
	if len(next.ISR) == 0 && len(st.ISR) > 0 {
		return st, fmt.Errorf("%w: cancelling the reassignment of %s-%d would leave it with an empty ISR (in sync: %v, being added: %v)",
			ErrInvalidReplicaAssignment, st.Topic, st.Partition, st.ISR, st.AddingReplicas)
	}
	next.AddingReplicas, next.RemovingReplicas = nil, nil
	if st.Leader != NoLeader && slices.Contains(st.AddingReplicas, st.Leader) {
		next.Leader = firstLiveIn(next.Replicas, next.ISR, live)
		next.LeaderEpoch = st.LeaderEpoch + 1
	}
	return next, nil
}

// NextReassignmentState is the controller's step for a partition being
// reassigned, and whether it changed st: once every adding replica is in
// the ISR, the reassignment completes:
//
//   - Replicas becomes the target, the ISR its members that are in sync,
//     AddingReplicas and RemovingReplicas are cleared;
//   - a leader that is not in the target gives way to the first member of
//     the target (target order) that is in the ISR and live, with the
//     next leader epoch.
//
// It waits (no change) while an adding replica is not in the ISR, while
// no member of the target is in the ISR, and while the leader must move
// but no member of the target in the ISR is live: completing then would
// leave the partition without an in-sync replica or without a leader.
// NextPartitionState, applied after it, handles dead brokers meanwhile.
func NextReassignmentState(st PartitionState, live map[int32]bool) (PartitionState, bool) {
	if !st.Reassigning() {
		return st, false
	}
	for _, id := range st.AddingReplicas {
		if !slices.Contains(st.ISR, id) {
			return st, false
		}
	}
	target := st.TargetReplicas()
	isr := without(st.ISR, st.RemovingReplicas)
	if len(isr) == 0 {
		return st, false
	}
	next := copyPartition(st)
	if st.Leader == NoLeader || !slices.Contains(target, st.Leader) {
		leader := firstLiveIn(target, isr, live)
		if leader == NoLeader {
			return st, false
		}
		next.Leader = leader
		next.LeaderEpoch = st.LeaderEpoch + 1
	}
	next.Replicas, next.ISR = target, isr
	next.AddingReplicas, next.RemovingReplicas = nil, nil
	return next, true
}

// firstLiveIn is the first member of order that is in set and live, or
// NoLeader.
func firstLiveIn(order, set []int32, live map[int32]bool) int32 {
	for _, id := range order {
		if live[id] && slices.Contains(set, id) {
			return id
		}
	}
	return NoLeader
}
