package broker

// Metadata (key 3), v0-v13.
//
// Behavior:
//   - A null topic list (v1+; an empty list in v0) returns every topic; an
//     empty list (v1+) returns none, only brokers.
//   - Unknown topics are created when the request allows it (v4+
//     AllowAutoTopicCreation; always before v4) and auto.create.topics.enable
//     is true; created topics get num.partitions and broker defaults, their
//     partitions placed in the creating transaction (as CreateTopics), so the
//     answer already has every leader. Otherwise UNKNOWN_TOPIC_OR_PARTITION. A creation that
//     would pass max.partitions or max.broker.partitions gets
//     POLICY_VIOLATION (limits.go).
//   - A topic whose metadata value this broker cannot read (undecodable, or
//     of a newer format) and of which it has no last good state is
//     LEADER_NOT_AVAILABLE, as Kafka answers for a topic it cannot serve
//     yet, and is never auto-created over; with a last good state it is
//     served from that.
//   - Invalid names get INVALID_TOPIC_EXCEPTION.
//   - v10+: topics carry their ids; v12+ lookups by id are answered, unknown
//     ids get UNKNOWN_TOPIC_ID.
//   - Each partition reports the leader, leader epoch, replicas and ISR the
//     controller recorded (metadata.Controller); replicas on brokers that
//     are not registered are offline. A partition not placed yet, with no
//     live in-sync replica, or whose recorded leader is not registered
//     (it died and the controller has not moved leadership yet) has
//     LEADER_NOT_AVAILABLE and leader -1: the response never names a
//     leader missing from its brokers.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

// authorizedOperationsUnknown is Kafka's value when operations were not requested.
const authorizedOperationsUnknown = -2147483648

func (b *Broker) metadataHandler() handler {
	return handle(kmsg.Metadata.Int16(), 0, 13, b.handleMetadata)
}

func (b *Broker) handleMetadata(c *conn, req *kmsg.MetadataRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.Brokers = b.metadataBrokers(c.listener)
	// Leaders are checked against the brokers this response lists, so a
	// client never meets a leader it has no address for.
	live := make(map[int32]bool, len(resp.Brokers))
	for _, br := range resp.Brokers {
		live[br.NodeID] = true
	}
	clusterID := b.store.ClusterID()
	resp.ClusterID = &clusterID
	resp.ControllerID = b.controllerID()
	resp.AuthorizedOperations = authorizedOperationsUnknown

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range b.store.Topics() {
			resp.Topics = append(resp.Topics, b.metadataTopic(t, live))
		}
		return resp, nil
	}
	autoCreate := (req.Version < 4 || req.AllowAutoTopicCreation) && b.brokerConfig("auto.create.topics.enable") == "true"
	for _, rt := range req.Topics {
		var (
			t  metadata.Topic
			ok bool
		)
		if rt.Topic == nil {
			t, ok = b.store.TopicByID(rt.TopicID)
			if !ok {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				mt.AuthorizedOperations = authorizedOperationsUnknown
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		} else {
			name := *rt.Topic
			t, ok = b.store.Topic(name)
			if !ok {
				errCode := kerr.UnknownTopicOrPartition.Code
				if err := validateTopicName(name); err != nil {
					errCode = kerr.InvalidTopicException.Code
				} else if b.store.TopicFault(name) != nil {
					errCode = kerr.LeaderNotAvailable.Code
				} else if autoCreate && !isInternalTopic(name) { // the coordinator creates those with their own settings
					created, err := b.autoCreateTopic(c, name)
					switch {
					case err == nil:
						t, ok, errCode = created, true, 0
					case err == kerr.TopicAlreadyExists:
						t, ok = b.store.Topic(name)
						if ok {
							errCode = 0
						}
					default:
						if ke, isKerr := err.(*kerr.Error); isKerr {
							errCode = ke.Code
						} else {
							errCode = kerr.UnknownServerError.Code
						}
					}
				}
				if !ok {
					mt := kmsg.NewMetadataResponseTopic()
					mt.Topic = &name
					mt.ErrorCode = errCode
					mt.AuthorizedOperations = authorizedOperationsUnknown
					resp.Topics = append(resp.Topics, mt)
					continue
				}
			}
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(t, live))
	}
	return resp, nil
}

// autoCreateTopic creates a topic with the broker's defaults, as Metadata's auto-creation does.
func (b *Broker) autoCreateTopic(c *conn, name string) (metadata.Topic, error) {
	parts := int32(b.brokerConfigInt("num.partitions"))
	if err := b.partitionLimitError(int64(parts), int64(parts)*b.brokerConfigInt("default.replication.factor")); err != nil {
		b.log.Warn().Str("topic", name).Err(err).Msg("not auto-creating topic: over a partition limit")
		return metadata.Topic{}, kerr.PolicyViolation
	}
	t, err := b.store.CreateTopic(c.ctx, metadata.Topic{Name: name, Partitions: parts}, b.placement(0, parts, 1)...)
	if err != nil {
		if errors.Is(err, metadata.ErrTopicExists) {
			return t, kerr.TopicAlreadyExists
		}
		b.log.Error().Err(err).Str("topic", name).Msg("auto-create topic failed")
		return t, kerr.UnknownServerError
	}
	b.log.Info().Str("topic", name).Int32("partitions", parts).Msg("auto-created topic")
	// Placed by the creating write unless too few brokers were live: then
	// give the controller a moment, so that the answer has leaders; past
	// it, clients see LEADER_NOT_AVAILABLE and ask again.
	ctx, cancel := context.WithTimeout(c.ctx, autoCreateWait)
	defer cancel()
	if err := b.waitPlaced(ctx, t); err != nil {
		b.log.Debug().Err(err).Str("topic", name).Msg("auto-created topic not placed yet")
	}
	return t, nil
}

// metadataBrokers lists the live brokers at their endpoints on listener.
func (b *Broker) metadataBrokers(listener string) []kmsg.MetadataResponseBroker {
	var out []kmsg.MetadataResponseBroker
	for _, br := range b.liveBrokers() {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID = br.NodeID
		mb.Host, mb.Port = br.EndpointFor(listener)
		if br.Rack != "" {
			rack := br.Rack
			mb.Rack = &rack
		}
		out = append(out, mb)
	}
	return out
}

// liveBrokers is the registered brokers, always including this one.
func (b *Broker) liveBrokers() []metadata.Broker {
	brokers := b.store.Brokers()
	for _, br := range brokers {
		if br.NodeID == b.cfg.NodeID {
			return brokers
		}
	}
	return append([]metadata.Broker{b.self()}, brokers...)
}

func (b *Broker) metadataTopic(t metadata.Topic, live map[int32]bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = isInternalTopic(t.Name)
	mt.AuthorizedOperations = authorizedOperationsUnknown
	states := make(map[int32]metadata.PartitionState, t.Partitions)
	for _, st := range b.store.PartitionStates(t.Name) {
		if st.TopicID == t.ID {
			states[st.Partition] = st
		}
	}
	for p := int32(0); p < t.Partitions; p++ {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		st, ok := states[p]
		if !ok {
			// Not placed by the controller yet: clients retry.
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader, mp.LeaderEpoch = -1, -1
			mp.Replicas, mp.ISR, mp.OfflineReplicas = []int32{}, []int32{}, []int32{}
			mt.Partitions = append(mt.Partitions, mp)
			continue
		}
		mp.Leader, mp.LeaderEpoch = st.Leader, st.LeaderEpoch
		if st.Leader == metadata.NoLeader || !live[st.Leader] {
			// No leader, or one that is not registered (dead, and the
			// controller has not moved leadership yet): as Kafka,
			// leader -1 and a retriable error, never a broker the
			// response does not list.
			mp.Leader = metadata.NoLeader
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mp.Replicas, mp.ISR = st.Replicas, st.ISR
		mp.OfflineReplicas = []int32{}
		for _, r := range st.Replicas {
			if !live[r] {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// autoCreateWait bounds how long Metadata waits for an auto-created
// topic's partitions to get leaders.
const autoCreateWait = 2 * time.Second

// isInternalTopic reports Kafka's internal topics.
func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}
