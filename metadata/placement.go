package metadata

// Placement: the controller's decisions as pure functions of the cluster's
// state, so they can be tested without a store or a clock.

import (
	"fmt"
	"slices"
	"sort"
)

// AssignReplicas chooses the replicas of partitions first..first+count-1
// of a topic with replication factor rf over the given brokers, as
// Kafka's assignor does (without its random start): brokers are ordered by
// node id, or, when any has a rack, interleaved rack by rack (a, b, c, a,
// b, c, ...), so that each partition's replicas spread over the racks; the
// first replica (the preferred leader) of partition p is broker p mod n,
// and its followers come after it at a spacing that moves on by one for
// each round over the brokers (p div n), so that followers spread too.
func AssignReplicas(brokers []Broker, first, count int32, rf int) ([][]int32, error) {
	if rf <= 0 {
		return nil, fmt.Errorf("metadata: replication factor %d", rf)
	}
	if rf > len(brokers) {
		return nil, fmt.Errorf("metadata: replication factor %d with %d brokers", rf, len(brokers))
	}
	order := rackInterleaved(brokers)
	n := len(order)
	out := make([][]int32, 0, count)
	for i := range count {
		p := int(first + i)
		lead, shift := p%n, p/n
		replicas := make([]int32, 0, rf)
		replicas = append(replicas, order[lead])
		for j := range rf - 1 {
			// Distinct for j < n-1, and never lead.
			replicas = append(replicas, order[(lead+1+(shift+j)%(n-1))%n])
		}
		out = append(out, replicas)
	}
	return out, nil
}

// rackInterleaved orders brokers by node id, interleaving racks when any
// broker has one: racks sorted by name, the k-th broker of each rack in
// turn.
func rackInterleaved(brokers []Broker) []int32 {
	bs := slices.Clone(brokers)
	sort.Slice(bs, func(i, j int) bool { return bs[i].NodeID < bs[j].NodeID })
	racks := map[string][]int32{}
	var names []string
	for _, b := range bs {
		if _, ok := racks[b.Rack]; !ok {
			names = append(names, b.Rack)
		}
		racks[b.Rack] = append(racks[b.Rack], b.NodeID)
	}
	if len(names) == 1 {
		ids := make([]int32, len(bs))
		for i, b := range bs {
			ids[i] = b.NodeID
		}
		return ids
	}
	sort.Strings(names)
	var ids []int32
	for k := 0; len(ids) < len(bs); k++ {
		for _, r := range names {
			if k < len(racks[r]) {
				ids = append(ids, racks[r][k])
			}
		}
	}
	return ids
}

// NextPartitionState is what the controller makes of a partition given the
// live brokers, and whether that differs from st:
//
//   - brokers that are not live leave the ISR, except that the ISR never
//     becomes empty: one member stays (the last in ISR order), so that it
//     may lead again when it returns, since every ISR member has every
//     acknowledged record and no other replica is known to;
//   - a partition whose leader is not live, or that has none, gets as
//     leader the first replica (preferred first) that is live and in the
//     ISR, with the next leader epoch; with none, it has no leader
//     (unclean leader election is off) and, if it had one, the epoch
//     moves on too, so the old leader's epoch is fenced.
func NextPartitionState(st PartitionState, live map[int32]bool) (PartitionState, bool) {
	next := copyPartition(st)
	var liveISR []int32
	for _, id := range st.ISR {
		if live[id] {
			liveISR = append(liveISR, id)
		}
	}
	leaderLive := st.Leader != NoLeader && live[st.Leader]
	if !leaderLive {
		next.Leader = NoLeader
		for _, id := range st.Replicas {
			if slices.Contains(liveISR, id) {
				next.Leader = id
				break
			}
		}
		if next.Leader != NoLeader || st.Leader != NoLeader {
			next.LeaderEpoch = st.LeaderEpoch + 1
		}
	}
	switch {
	case len(liveISR) > 0:
		next.ISR = liveISR
	case len(st.ISR) > 0:
		next.ISR = st.ISR[len(st.ISR)-1:] // the last one standing; see above
	}
	changed := next.Leader != st.Leader || next.LeaderEpoch != st.LeaderEpoch || !slices.Equal(next.ISR, st.ISR)
	return next, changed
}
