package broker

// FindCoordinator (key 10), v0-v6.
//
// Behavior:
//   - Group keys (type 0): the coordinator of a group is the leader of its
//     partition of __consumer_offsets (coordinator.PartitionFor), as in
//     Kafka. The first lookup creates __consumer_offsets
//     (offsets.topic.num.partitions partitions) and waits for the
//     controller to place it; if that fails, or the partition has no
//     leader, the key gets COORDINATOR_NOT_AVAILABLE.
//   - Transaction keys (type 1): the leader of the transactional id's
//     partition of __transaction_state (same hash), created on first use
//     (transaction.state.log.* configs). Other types get INVALID_REQUEST.
//   - An empty key gets INVALID_REQUEST (v0-v3: for the whole request).
//   - v4+ batches keys: each key is answered in its own entry.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
	"github.com/gregorbroker/gregor/metadata"
)

func (b *Broker) findCoordinatorHandler() handler {
	return handle(kmsg.FindCoordinator.Int16(), 0, 6, b.handleFindCoordinator)
}

func (b *Broker) handleFindCoordinator(c *conn, req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	find := func(key string) (metadata.Broker, *kerr.Error, string) {
		var (
			topic string
			n     int32
			err   error
		)
		switch {
		case req.CoordinatorType != 0 && req.CoordinatorType != 1:
			return metadata.Broker{}, kerr.InvalidRequest, "unknown coordinator type"
		case key == "":
			return metadata.Broker{}, kerr.InvalidRequest, "empty coordinator key"
		case req.CoordinatorType == 1:
			topic = coordinator.TxnStateTopic
			n, err = b.txnLogs().EnsureTxnTopic(c.ctx, b.txnCoordinatorConfig().Partitions)
		default:
			topic = coordinator.OffsetsTopic
			n, err = b.offsetsLogs().EnsureOffsetsTopic(c.ctx, b.coordinatorConfig().OffsetsTopicPartitions)
		}
		if err != nil {
			b.log.Error().Err(err).Str("topic", topic).Msg("cannot create an internal topic")
			return metadata.Broker{}, kerr.CoordinatorNotAvailable, "the coordinator's internal topic is not available"
		}
		p := coordinator.PartitionFor(key, n)
		st, ok := b.store.Partition(topic, p)
		if !ok || st.Leader == metadata.NoLeader {
			return metadata.Broker{}, kerr.CoordinatorNotAvailable, "the coordinator's partition has no leader"
		}
		for _, br := range b.liveBrokers() {
			if br.NodeID == st.Leader {
				return br, nil, ""
			}
		}
		return metadata.Broker{}, kerr.CoordinatorNotAvailable, "the coordinator is not registered"
	}
	if req.Version <= 3 {
		br, err, msg := find(req.CoordinatorKey)
		resp.NodeID, resp.Host, resp.Port = -1, "", -1
		if err != nil {
			resp.ErrorCode = err.Code
			if req.Version >= 1 {
				resp.ErrorMessage = &msg
			}
			return resp, nil
		}
		resp.NodeID = br.NodeID
		resp.Host, resp.Port = br.EndpointFor(c.listener)
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		rc := kmsg.NewFindCoordinatorResponseCoordinator()
		rc.Key = key
		if br, err, msg := find(key); err != nil {
			rc.NodeID, rc.Port = -1, -1
			rc.ErrorCode, rc.ErrorMessage = err.Code, &msg
		} else {
			rc.NodeID = br.NodeID
			rc.Host, rc.Port = br.EndpointFor(c.listener)
		}
		resp.Coordinators = append(resp.Coordinators, rc)
	}
	return resp, nil
}
