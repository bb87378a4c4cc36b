package broker

// KIP-951: NOT_LEADER_OR_FOLLOWER answers of Produce (v10+) and Fetch
// (v16+) carry the partition's current leader and epoch, and the
// endpoints of those leaders, so clients move without a Metadata round
// trip.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/metadata"
)

// leaderHints collects, for one response, the leaders named in it and
// their endpoints (each broker once).
type leaderHints struct {
	listener string // whose endpoints to name
	brokers  []metadata.Broker
}

// endpoint is a named leader's endpoint on the hints' listener.
func (h *leaderHints) endpoint(br metadata.Broker) (string, int32) { return br.EndpointFor(h.listener) }

// leader returns the leader and leader epoch of a partition as this
// broker knows them (-1, -1 when unknown) and remembers the leader's
// endpoint for the response.
func (h *leaderHints) leader(b *Broker, topic string, partition int32) (int32, int32) {
	st, ok := b.store.Partition(topic, partition)
	if !ok || st.Leader == metadata.NoLeader {
		return -1, -1
	}
	if !slices.ContainsFunc(h.brokers, func(br metadata.Broker) bool { return br.NodeID == st.Leader }) {
		for _, br := range b.liveBrokers() {
			if br.NodeID == st.Leader {
				h.brokers = append(h.brokers, br)
				break
			}
		}
	}
	return st.Leader, st.LeaderEpoch
}

// checkLeaderEpoch compares the leader epoch a client believes current
// (-1: it does not say) with the partition's, as Kafka does for Fetch,
// ListOffsets and OffsetForLeaderEpoch (KIP-320): an older one is
// FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.
func checkLeaderEpoch(claimed, current int32) error {
	switch {
	case claimed < 0 || claimed == current:
		return nil
	case claimed < current:
		return kerr.FencedLeaderEpoch
	default:
		return kerr.UnknownLeaderEpoch
	}
}

// rackPtr is a rack for the wire: nil when there is none.
func rackPtr(rack string) *string {
	if rack == "" {
		return nil
	}
	return &rack
}
