package metadata

// Partition state: where each partition lives. See doc.go for its key
// and value; the controller (a later change) is its main writer.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrConflict: a compare-and-swap write whose expected version is no
// longer the stored one; another writer got there first. Read again and
// decide again.
var ErrConflict = errors.New("metadata: conflicting update")

// ErrInvalidPartitionState: a partition state that breaks the rules of
// PartitionState (the store refuses to write it).
var ErrInvalidPartitionState = errors.New("metadata: invalid partition state")

// NoLeader is the Leader of a partition that has none.
const NoLeader int32 = -1

// PartitionState is one partition's replica assignment and leadership, as
// Kafka's PartitionRecord holds it: the replicas (preferred leader first),
// the leader and its epoch, and the in-sync replicas.
//
// Rules (checked on write and on read): Replicas is non-empty, with no
// repeats and no negative ids; Leader is NoLeader or one of the Replicas;
// ISR is a subset of Replicas with no repeats, and holds the leader when
// there is one; LeaderEpoch >= 0; AddingReplicas and RemovingReplicas are
// subsets of Replicas with no repeats and no member in common, and
// RemovingReplicas is not all of Replicas.
//
// A reassignment in progress (see reassign.go) is held as Kafka's KRaft
// PartitionRecord holds it: Replicas is the target followed by the
// replicas being removed, AddingReplicas the target's replicas that were
// not replicas before, RemovingReplicas the old replicas not in the
// target. With neither, no reassignment is in progress.
type PartitionState struct {
	Topic       string
	TopicID     TopicID // of the topic incarnation the state belongs to
	Partition   int32
	Replicas    []int32
	Leader      int32
	LeaderEpoch int32
	ISR         []int32
	// AddingReplicas are replicas being added by a reassignment: they
	// lead only once in the ISR. Empty (nil) outside a reassignment.
	AddingReplicas []int32
	// RemovingReplicas are replicas being removed by a reassignment: they
	// leave Replicas and the ISR when it completes. Empty (nil) outside a
	// reassignment.
	RemovingReplicas []int32
	// Version is the store's compare-and-swap token for this state (etcd:
	// the key's mod revision); 0 for a state never stored. A write names
	// the version it read and fails with ErrConflict if it moved.
	Version int64
}

// copyPartition returns st with slices of its own.
func copyPartition(st PartitionState) PartitionState {
	st.Replicas = slices.Clone(st.Replicas)
	st.ISR = slices.Clone(st.ISR)
	st.AddingReplicas = slices.Clone(st.AddingReplicas)
	st.RemovingReplicas = slices.Clone(st.RemovingReplicas)
	return st
}

// Reassigning reports whether a reassignment of the partition is in
// progress.
func (st PartitionState) Reassigning() bool {
	return len(st.AddingReplicas) > 0 || len(st.RemovingReplicas) > 0
}

// TargetReplicas is the replica list the partition will have once its
// reassignment completes: Replicas without RemovingReplicas (Replicas
// itself when no reassignment is in progress).
func (st PartitionState) TargetReplicas() []int32 {
	return without(st.Replicas, st.RemovingReplicas)
}

// OriginalReplicas is the replica list the partition had before its
// reassignment began, as far as the state records it: Replicas without
// AddingReplicas, in Replicas order (Replicas itself when no reassignment
// is in progress).
func (st PartitionState) OriginalReplicas() []int32 {
	return without(st.Replicas, st.AddingReplicas)
}

// without returns the members of ids not in drop, in ids order, in a new
// slice (nil when none are left).
func without(ids, drop []int32) []int32 {
	var out []int32
	for _, id := range ids {
		if !slices.Contains(drop, id) {
			out = append(out, id)
		}
	}
	return out
}

// Check reports whether st obeys the rules of PartitionState.
func (st PartitionState) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s-%d: %s", ErrInvalidPartitionState, st.Topic, st.Partition, fmt.Sprintf(format, args...))
	}
	if st.Partition < 0 {
		return bad("negative partition")
	}
	if len(st.Replicas) == 0 {
		return bad("no replicas")
	}
	if err := checkIDSet(st.Replicas); err != nil {
		return bad("replicas %v: %v", st.Replicas, err)
	}
	if err := checkIDSet(st.ISR); err != nil {
		return bad("isr %v: %v", st.ISR, err)
	}
	for _, id := range st.ISR {
		if !slices.Contains(st.Replicas, id) {
			return bad("isr member %d is not a replica of %v", id, st.Replicas)
		}
	}
	if st.Leader != NoLeader {
		if !slices.Contains(st.Replicas, st.Leader) {
			return bad("leader %d is not a replica of %v", st.Leader, st.Replicas)
		}
		if !slices.Contains(st.ISR, st.Leader) {
			return bad("leader %d is not in the isr %v", st.Leader, st.ISR)
		}
	}
	if st.LeaderEpoch < 0 {
		return bad("leader epoch %d", st.LeaderEpoch)
	}
	for _, set := range []struct {
		name string
		ids  []int32
	}{{"adding replicas", st.AddingReplicas}, {"removing replicas", st.RemovingReplicas}} {
		if err := checkIDSet(set.ids); err != nil {
			return bad("%s %v: %v", set.name, set.ids, err)
		}
		for _, id := range set.ids {
			if !slices.Contains(st.Replicas, id) {
				return bad("%s member %d is not a replica of %v", set.name, id, st.Replicas)
			}
		}
	}
	for _, id := range st.AddingReplicas {
		if slices.Contains(st.RemovingReplicas, id) {
			return bad("replica %d is both being added and being removed", id)
		}
	}
	if len(st.RemovingReplicas) == len(st.Replicas) {
		return bad("every replica of %v is being removed", st.Replicas)
	}
	return nil
}

// checkIDSet refuses negative node ids and repeats.
func checkIDSet(ids []int32) error {
	for i, id := range ids {
		if id < 0 {
			return fmt.Errorf("negative node id %d", id)
		}
		if slices.Contains(ids[:i], id) {
			return fmt.Errorf("node %d listed twice", id)
		}
	}
	return nil
}

// partitionsDir holds one key per partition: partitions/<topic>/<partition>.
const partitionsDir = "partitions/"

// partitionRel is a partition's key relative to the prefix.
func partitionRel(topic string, partition int32) string {
	return partitionsDir + topic + "/" + strconv.FormatInt(int64(partition), 10)
}

// parsePartitionRel reads the topic and partition from the part of a key
// after partitionsDir.
func parsePartitionRel(rel string) (string, int32, error) {
	i := strings.LastIndexByte(rel, '/')
	if i <= 0 {
		return "", 0, fmt.Errorf("partition key %q has no topic/partition form", rel)
	}
	topic, num := rel[:i], rel[i+1:]
	if err := checkTopicName(topic); err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != num {
		return "", 0, fmt.Errorf("partition %q is not a canonical non-negative decimal", num)
	}
	return topic, int32(n), nil
}

// partitionValue is the JSON form of a partition state; see doc.go.
type partitionValue struct {
	V           int     `json:"v"`
	TopicID     string  `json:"topic_id"`
	Replicas    []int32 `json:"replicas"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
	// AddingReplicas and RemovingReplicas were added within v1 and are
	// left out when empty; see doc.go for why an older reader may ignore
	// them.
	AddingReplicas   []int32 `json:"adding_replicas,omitempty"`
	RemovingReplicas []int32 `json:"removing_replicas,omitempty"`
}

func encodePartition(st PartitionState) ([]byte, error) {
	if err := st.Check(); err != nil {
		return nil, err
	}
	isr := st.ISR
	if isr == nil {
		isr = []int32{}
	}
	return marshal(partitionValue{V: valueVersion, TopicID: st.TopicID.String(), Replicas: st.Replicas, Leader: st.Leader, LeaderEpoch: st.LeaderEpoch, ISR: isr,
		AddingReplicas: st.AddingReplicas, RemovingReplicas: st.RemovingReplicas})
}

// emptyAsNil makes an empty list nil, so that a state reads the same
// whether a writer left an empty list out or wrote [].
func emptyAsNil(ids []int32) []int32 {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

// decodePartition reads a partition value; topic and partition come from
// the key, version from the key's mod revision.
func decodePartition(topic string, partition int32, version int64, b []byte) (PartitionState, error) {
	var v partitionValue
	if err := decodeStrict(b, &v, &v.V); err != nil {
		return PartitionState{}, err
	}
	id, err := ParseTopicID(v.TopicID)
	if err != nil {
		return PartitionState{}, err
	}
	st := PartitionState{Topic: topic, TopicID: id, Partition: partition, Replicas: v.Replicas, Leader: v.Leader, LeaderEpoch: v.LeaderEpoch, ISR: v.ISR,
		AddingReplicas: emptyAsNil(v.AddingReplicas), RemovingReplicas: emptyAsNil(v.RemovingReplicas), Version: version}
	if err := st.Check(); err != nil {
		return PartitionState{}, err
	}
	return st, nil
}
