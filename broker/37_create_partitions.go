package broker

// CreatePartitions (key 37), v0-v3.
//
// Behavior:
//   - A topic named more than once gets INVALID_REQUEST at every occurrence;
//     an unknown topic UNKNOWN_TOPIC_OR_PARTITION.
//   - Count is the new total and must be larger than the current count
//     (INVALID_PARTITIONS, with Kafka's messages for equal and smaller).
//   - A manual Assignment must have one replica list per new partition, each
//     with distinct live brokers and all of one length
//     (INVALID_REPLICA_ASSIGNMENT); the new partitions are placed as
//     assigned, the first replica of each its preferred leader. Without one
//     they are placed over the live brokers (metadata.AssignReplicas) with
//     the topic's replication factor.
//   - The new partitions' states are written in the etcd transaction that
//     raises the count, and the answer waits until this broker's metadata
//     cache has applied it: every later request here sees them with leaders.
//   - Internal topics keep their partition count (INVALID_TOPIC_EXCEPTION):
//     the coordinators map groups and transactional ids onto their
//     partitions, so adding some would move them. Kafka does not refuse this.
//   - One request adds at most maxPartitionsPerRequest partitions in all;
//     topics beyond it get POLICY_VIOLATION.
//   - ValidateOnly checks everything and changes nothing. New partitions'
//     logs are opened by the brokers they are placed on.
//   - TimeoutMillis > 0 bounds the metadata write (REQUEST_TIMED_OUT).
//   - Responses follow the request's order and carry error messages.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) createPartitionsHandler() handler {
	return handle(kmsg.CreatePartitions.Int16(), 0, 3, b.handleCreatePartitions)
}

func (b *Broker) handleCreatePartitions(c *conn, req *kmsg.CreatePartitionsRequest) (kmsg.Response, error) {
	if resp := b.createPartitionsOverLimit(req); resp != nil { // limits.go
		return resp, nil
	}
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := adminRequestContext(c, req.TimeoutMillis)
	defer cancel()

	seen := make(map[string]int, len(req.Topics))
	for i := range req.Topics {
		seen[req.Topics[i].Topic]++
	}
	live := b.liveBrokerIDs()
	budget := maxPartitionsPerRequest
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if seen[rt.Topic] > 1 {
			err = adminErrorf(kerr.InvalidRequest, "Duplicate topic name.")
		} else {
			err = b.createPartitions(ctx, rt, req.ValidateOnly, live, &budget)
		}
		if err != nil {
			st.ErrorCode = errCode(err)
			st.ErrorMessage = adminMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// createPartitions raises one topic's partition count.
func (b *Broker) createPartitions(ctx context.Context, rt *kmsg.CreatePartitionsRequestTopic, validateOnly bool, live map[int32]bool, budget *int) error {
	t, ok := b.store.Topic(rt.Topic)
	if !ok {
		return adminErrorf(kerr.UnknownTopicOrPartition, "Topic '%s' does not exist.", rt.Topic)
	}
	if isInternalTopic(t.Name) {
		return adminErrorf(kerr.InvalidTopicException, "The partition count of internal topic '%s' cannot be changed.", t.Name)
	}
	switch {
	case rt.Count == t.Partitions:
		return adminErrorf(kerr.InvalidPartitions, "Topic already has %d partition(s).", t.Partitions)
	case rt.Count < t.Partitions:
		return adminErrorf(kerr.InvalidPartitions, "The topic %s currently has %d partition(s); %d would not be an increase.", t.Name, t.Partitions, rt.Count)
	}
	additional := int(rt.Count - t.Partitions)
	if additional > *budget {
		return adminErrorf(kerr.PolicyViolation, "Adding %d partitions would exceed the limit of %d new partitions per request.", additional, maxPartitionsPerRequest)
	}
	var assignment [][]int32
	if rt.Assignment != nil {
		if len(rt.Assignment) != additional {
			return adminErrorf(kerr.InvalidReplicaAssignment, "Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", additional, len(rt.Assignment))
		}
		replicas := -1
		for _, a := range rt.Assignment {
			if err := checkManualReplicas(a.Replicas, live, replicas); err != nil {
				return err
			}
			replicas = len(a.Replicas)
			assignment = append(assignment, slices.Clone(a.Replicas))
		}
	}
	*budget -= additional
	if validateOnly {
		return nil
	}
	if assignment == nil {
		assignment = b.placement(t.Partitions, int32(additional), t.ReplicationFactor)
	}
	if err := b.store.SetPartitionCount(ctx, t.Name, rt.Count, assignment...); err != nil {
		return b.metadataWriteError(err, "create partitions of", t.Name)
	}
	if _, bounded := ctx.Deadline(); bounded {
		t.Partitions = rt.Count
		if err := b.waitPlaced(ctx, t); err != nil {
			return b.metadataWriteError(err, "place new partitions of", t.Name)
		}
	}
	b.log.Info().Str("topic", t.Name).Int32("from", t.Partitions).Int32("to", rt.Count).Msg("added partitions")
	return nil
}
