package broker

// FindCoordinator (key 10), v0-v6.
//
// Behavior:
//   - Group keys (type 0): this broker is the coordinator of every group
//     (a single node leads every partition of __consumer_offsets). The
//     first lookup creates __consumer_offsets (offsets.topic.num.partitions
//     partitions), as Kafka does; if that fails the key gets
//     COORDINATOR_NOT_AVAILABLE.
//   - Transaction keys (type 1) get COORDINATOR_NOT_AVAILABLE until
//     transactions are implemented; other types INVALID_REQUEST.
//   - An empty key gets INVALID_REQUEST (v0-v3: for the whole request).
//   - v4+ batches keys: each key is answered in its own entry.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
)

func (b *Broker) findCoordinatorHandler() handler {
	return handle(kmsg.FindCoordinator.Int16(), 0, 6, b.handleFindCoordinator)
}

func (b *Broker) handleFindCoordinator(c *conn, req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	find := func(key string) (*kerr.Error, string) {
		switch {
		case req.CoordinatorType == 1:
			return kerr.CoordinatorNotAvailable, "transactions are not supported yet"
		case req.CoordinatorType != 0:
			return kerr.InvalidRequest, "unknown coordinator type"
		case key == "":
			return kerr.InvalidRequest, "empty coordinator key"
		}
		if _, err := (offsetsLogs{b}).EnsureOffsetsTopic(c.ctx, b.coordinatorConfig().OffsetsTopicPartitions); err != nil {
			b.log.Error().Err(err).Str("topic", coordinator.OffsetsTopic).Msg("cannot create the offsets topic")
			return kerr.CoordinatorNotAvailable, "the offsets topic is not available"
		}
		return nil, ""
	}
	if req.Version <= 3 {
		err, msg := find(req.CoordinatorKey)
		resp.NodeID, resp.Host, resp.Port = -1, "", -1
		if err != nil {
			resp.ErrorCode = err.Code
			if req.Version >= 1 {
				resp.ErrorMessage = &msg
			}
			return resp, nil
		}
		resp.NodeID, resp.Host, resp.Port = b.cfg.NodeID, b.cfg.AdvertisedHost, b.cfg.AdvertisedPort
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		rc := kmsg.NewFindCoordinatorResponseCoordinator()
		rc.Key = key
		if err, msg := find(key); err != nil {
			rc.NodeID, rc.Port = -1, -1
			rc.ErrorCode, rc.ErrorMessage = err.Code, &msg
		} else {
			rc.NodeID, rc.Host, rc.Port = b.cfg.NodeID, b.cfg.AdvertisedHost, b.cfg.AdvertisedPort
		}
		resp.Coordinators = append(resp.Coordinators, rc)
	}
	return resp, nil
}
