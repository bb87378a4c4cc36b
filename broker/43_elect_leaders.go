package broker

// ElectLeaders (key 43), v0-v2.
//
// Behavior:
//   - ElectionType 0 (preferred; the only kind in v0): the partition's
//     first replica becomes leader, with the next leader epoch, if it is
//     live and in the ISR. It already leads: ELECTION_NOT_NEEDED; not live
//     or not in the ISR: PREFERRED_LEADER_NOT_AVAILABLE.
//   - ElectionType 1 (unclean, v1+): a partition whose leader is live gets
//     ELECTION_NOT_NEEDED; otherwise a live ISR member leads, chosen as the
//     controller chooses, or else the first live replica, with an ISR of
//     itself (what only the old ISR held is lost); no live replica:
//     ELIGIBLE_LEADERS_NOT_AVAILABLE. The epoch moves on either way.
//     Any other ElectionType: INVALID_REQUEST for every partition (and at
//     the top level).
//   - Null Topics means every partition of every topic the controller has
//     placed; as in Kafka, partitions that needed no election are left
//     out of that answer.
//   - A named topic or partition that does not exist:
//     UNKNOWN_TOPIC_OR_PARTITION; one not yet placed: LEADER_NOT_AVAILABLE.
//     A partition named twice is answered once; topics are answered in the
//     order first named.
//   - The handling broker first brings its metadata cache up to the
//     store's current revision (metadata.Store.Sync), so it decides on
//     the ISR and live brokers as they are, not as its watch last
//     delivered them (a client that saw the preferred replica back in
//     the ISR through another broker gets its election). A store it
//     cannot reach: REQUEST_TIMED_OUT for every partition.
//   - The handling broker writes the new state itself, compare-and-swap
//     (metadata.ElectPreferredLeader / ElectUncleanLeader), deciding again
//     on a lost race a few times (then REQUEST_TIMED_OUT). The new leader
//     learns of its leadership from the store, as from the controller.
//   - TimeoutMillis > 0 bounds the writes (REQUEST_TIMED_OUT).
//   - v1+ have the top-level ErrorCode (0 unless the election type is
//     invalid); v2 is the flexible form.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

// Election types of ElectLeadersRequest.ElectionType.
const (
	electPreferred int8 = 0
	electUnclean   int8 = 1
)

func (b *Broker) electLeadersHandler() handler {
	return handle(kmsg.ElectLeaders.Int16(), 0, 2, b.handleElectLeaders)
}

func (b *Broker) handleElectLeaders(c *conn, req *kmsg.ElectLeadersRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	ctx, cancel := adminRequestContext(c, req.TimeoutMillis)
	defer cancel()

	how := req.ElectionType
	if req.Version == 0 {
		how = electPreferred
	}
	// failAll is every named partition's answer when the request cannot
	// be served at all.
	var failAll error
	if how != electPreferred && how != electUnclean {
		failAll = adminErrorf(kerr.InvalidRequest, "Unknown election type %d.", how)
		resp.ErrorCode = kerr.InvalidRequest.Code
	} else {
		// Decide on the cluster's state as of now, not this broker's
		// cache of it: the client may have seen the preferred replica
		// join the ISR through another broker a moment ago.
		failAll = b.syncMetadata(ctx)
	}

	all := req.Topics == nil
	var order []string
	wanted := map[string][]int32{}
	if all {
		for _, t := range b.store.Topics() {
			order = append(order, t.Name)
			for _, st := range b.store.PartitionStates(t.Name) {
				if st.TopicID == t.ID {
					wanted[t.Name] = append(wanted[t.Name], st.Partition)
				}
			}
		}
	} else {
		seen := map[string]map[int32]bool{}
		for _, rt := range req.Topics {
			if seen[rt.Topic] == nil {
				seen[rt.Topic] = map[int32]bool{}
				order = append(order, rt.Topic)
			}
			for _, p := range rt.Partitions {
				if !seen[rt.Topic][p] {
					seen[rt.Topic][p] = true
					wanted[rt.Topic] = append(wanted[rt.Topic], p)
				}
			}
		}
	}

	live := b.liveBrokerIDs()
	for _, topic := range order {
		rt := kmsg.NewElectLeadersResponseTopic()
		rt.Topic = topic
		for _, p := range wanted[topic] {
			err := failAll
			if err == nil {
				err = b.electLeader(ctx, topic, p, how, live)
			}
			if all && errCode(err) == kerr.ElectionNotNeeded.Code {
				continue
			}
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition = p
			if err != nil {
				rp.ErrorCode = errCode(err)
				rp.ErrorMessage = adminMessage(err)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		if all && len(rt.Partitions) == 0 {
			continue
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// electLeader runs one partition's election and writes its outcome.
func (b *Broker) electLeader(ctx context.Context, topic string, partition int32, how int8, live map[int32]bool) error {
	elect := metadata.ElectPreferredLeader
	kind := "preferred"
	if how == electUnclean {
		elect, kind = metadata.ElectUncleanLeader, "unclean"
	}
	var old metadata.PartitionState
	st, err := b.changePartition(ctx, topic, partition, func(st metadata.PartitionState) (metadata.PartitionState, error) {
		old = st
		return elect(st, live)
	})
	if err != nil {
		return err
	}
	lvl := b.log.Info()
	if how == electUnclean && len(st.ISR) == 1 && !slices.Contains(old.ISR, st.ISR[0]) {
		lvl = b.log.Warn() // records only the old ISR held may be lost
	}
	lvl.Str("topic", topic).Int32("partition", partition).Str("election", kind).
		Int32("old_leader", old.Leader).Int32("leader", st.Leader).Int32("leader_epoch", st.LeaderEpoch).
		Ints32("isr", st.ISR).Msg("elected partition leader on request")
	return nil
}
