package broker

// AlterPartitionReassignments (key 45; kmsg's AlterPartitionAssignments),
// v0-v1.
//
// Behavior:
//   - Replicas names a partition's target replicas T (KIP-455). It must be
//     non-empty, with no broker twice and only registered brokers
//     (INVALID_REPLICA_ASSIGNMENT). The partition's state becomes, as in
//     Kafka's KRaft controller: Replicas = T followed by the old replicas
//     not in T, AddingReplicas = T minus the old replicas, RemovingReplicas
//     = the old replicas minus T (metadata.ReassignPartition); leader and
//     ISR stay. A reassignment already in progress is cancelled first, so
//     the new one starts from the original replicas. A T with the same
//     members only reorders the replicas.
//   - The controller completes a reassignment once every adding replica is
//     in the ISR (metadata.NextReassignmentState): Replicas = T, the ISR
//     keeps its members in T, and a leader outside T gives way to the first
//     in-sync live member of T with the next epoch. One that only removes
//     replicas completes in this request. Until replication lands, a
//     replica being added never joins the ISR, so such reassignments stay
//     in progress (ListPartitionReassignments shows them) until cancelled.
//   - Null Replicas cancels: Replicas and the ISR lose the adding replicas
//     (a leader among them gives way, next epoch), adding and removing are
//     cleared; NO_REASSIGNMENT_IN_PROGRESS if none is in progress, and
//     INVALID_REPLICA_ASSIGNMENT if only adding replicas are in sync.
//   - v1: AllowReplicationFactorChange false refuses a T whose length
//     differs from the original replica count (INVALID_REPLICATION_FACTOR,
//     KIP-860); the response repeats the flag.
//   - Unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION; a partition
//     not yet placed: LEADER_NOT_AVAILABLE. Partitions are handled in
//     request order, each on its own.
//   - The handling broker first brings its metadata cache up to the
//     store's current revision (metadata.Store.Sync): a broker that just
//     registered elsewhere is a valid target. A store it cannot reach:
//     REQUEST_TIMED_OUT for every partition.
//   - The handling broker writes the change itself, compare-and-swap,
//     deciding again on a lost race a few times (then REQUEST_TIMED_OUT);
//     TimeoutMillis > 0 bounds the writes (REQUEST_TIMED_OUT).
//   - Brokers removed from a partition's replicas do not yet delete their
//     copy of its log (that belongs to the data path).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

func (b *Broker) alterPartitionReassignmentsHandler() handler {
	return handle(kmsg.AlterPartitionAssignments.Int16(), 0, 1, b.handleAlterPartitionReassignments)
}

func (b *Broker) handleAlterPartitionReassignments(c *conn, req *kmsg.AlterPartitionAssignmentsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	ctx, cancel := adminRequestContext(c, req.TimeoutMillis)
	defer cancel()

	allowRFChange := req.Version < 1 || req.AllowReplicationFactorChange
	// Decide on the registered brokers and partition states as they are
	// now, not as this broker's cache last saw them.
	synced := b.syncMetadata(ctx)
	live := b.liveBrokerIDs()
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			err := synced
			if err == nil {
				err = b.reassignPartition(ctx, rt.Topic, rp.Partition, rp.Replicas, allowRFChange, live)
			}
			if err != nil {
				sp.ErrorCode = errCode(err)
				sp.ErrorMessage = adminMessage(err)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// reassignPartition starts (target non-nil) or cancels (nil) one
// partition's reassignment.
func (b *Broker) reassignPartition(ctx context.Context, topic string, partition int32, target []int32, allowRFChange bool, live map[int32]bool) error {
	cancelling := target == nil
	var old metadata.PartitionState
	st, err := b.changePartition(ctx, topic, partition, func(st metadata.PartitionState) (metadata.PartitionState, error) {
		old = st
		if cancelling {
			return metadata.CancelReassignment(st, live)
		}
		if from := len(st.OriginalReplicas()); !allowRFChange && len(target) != from {
			return st, adminErrorf(kerr.InvalidReplicationFactor,
				"The replication factor of %s-%d would change from %d to %d, but allowReplicationFactorChange is false.", topic, partition, from, len(target))
		}
		next, err := metadata.ReassignPartition(st, target, live)
		if err != nil {
			return st, err
		}
		next, _ = metadata.NextReassignmentState(next, live) // one that only removes replicas completes now
		return next, nil
	})
	if err != nil {
		return err
	}
	what := "started partition reassignment"
	switch {
	case cancelling:
		what = "cancelled partition reassignment"
	case !st.Reassigning():
		what = "changed partition replicas"
	}
	b.log.Info().Str("topic", topic).Int32("partition", partition).
		Ints32("old_replicas", old.Replicas).Ints32("replicas", st.Replicas).
		Ints32("adding", st.AddingReplicas).Ints32("removing", st.RemovingReplicas).
		Int32("leader", st.Leader).Int32("leader_epoch", st.LeaderEpoch).Ints32("isr", st.ISR).Msg(what)
	return nil
}
