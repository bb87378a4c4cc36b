package coordinator

// Server-side assignors of the KIP-848 protocol.
//
//   - uniform (Kafka's default): every member gets as close to the same
//     number of partitions as its subscriptions allow, keeping the
//     partitions it was already assigned where that does not unbalance
//     the group (sticky), so a membership change moves few partitions.
//   - range: for each topic, the members subscribed to it (sorted by id)
//     get contiguous ranges of its partitions, the first ones one more
//     when the count does not divide evenly.

import "slices"

// computeAssignment returns the target assignment of every member.
func computeAssignment(assignor string, members map[string]*consumerMember, prev map[string]assignment, topics Topics) map[string]assignment {
	ids := sortedKeys(members)
	out := make(map[string]assignment, len(ids))
	for _, id := range ids {
		out[id] = assignment{}
	}
	// Partitions of each subscribed topic and who may have them.
	eligible := map[tp][]string{}
	var all []tp
	byTopic := map[string][]string{} // topic name -> subscribed member ids
	for _, id := range ids {
		for _, name := range members[id].effective {
			byTopic[name] = append(byTopic[name], id)
		}
	}
	for _, name := range sortedKeys(byTopic) {
		info, ok := topics.TopicByName(name)
		if !ok {
			continue
		}
		for p := range info.Partitions {
			k := tp{info.ID, p}
			eligible[k] = byTopic[name]
			all = append(all, k)
		}
		if assignor == "range" {
			subs := byTopic[name]
			n, m := int(info.Partitions), len(subs)
			next := int32(0)
			for i, id := range subs {
				count := n / m
				if i < n%m {
					count++
				}
				for range count {
					out[id][tp{info.ID, next}] = struct{}{}
					next++
				}
			}
		}
	}
	if assignor == "range" {
		return out
	}

	// uniform: keep previous partitions still eligible, hand out the rest
	// to the least loaded eligible member, then even out.
	owner := map[tp]string{}
	for _, id := range ids {
		for p := range prev[id] {
			if slices.Contains(eligible[p], id) {
				if _, taken := owner[p]; !taken {
					owner[p] = id
					out[id][p] = struct{}{}
				}
			}
		}
	}
	least := func(cands []string) string {
		best := ""
		for _, id := range cands {
			if best == "" || len(out[id]) < len(out[best]) {
				best = id
			}
		}
		return best
	}
	for _, p := range all {
		if _, ok := owner[p]; ok {
			continue
		}
		id := least(eligible[p])
		owner[p] = id
		out[id][p] = struct{}{}
	}
	// Move partitions from a member with at least two more than an
	// eligible other, until no such move exists. Each move lowers the sum
	// of squared counts, so this ends.
	for moved := true; moved; {
		moved = false
		for _, p := range all {
			from := owner[p]
			to := least(eligible[p])
			if to != from && len(out[from]) > len(out[to])+1 {
				delete(out[from], p)
				out[to][p] = struct{}{}
				owner[p] = to
				moved = true
			}
		}
	}
	return out
}
