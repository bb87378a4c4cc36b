package broker

// OffsetFetch (key 9), v0-v10.
//
// Behavior:
//   - Returns a group's committed offsets for the partitions asked for
//     (-1 and an empty metadata where there is none), or every committed
//     offset when the topic list is null (v2+). An unknown group has no
//     offsets and no error.
//   - v8+ asks for several groups at once; v10 names topics by id (offsets
//     of topics that no longer exist are left out of a null-list answer).
//   - v9+ member id and epoch (KIP-848) are accepted. With v7+
//     require_stable, a partition whose offset is pending in an open
//     transaction (TxnOffsetCommit) gets UNSTABLE_OFFSET_COMMIT, which
//     clients retry until the transaction ends (KIP-447); without it,
//     the last committed offset is returned.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
	"github.com/gregorbroker/gregor/metadata"
)

func (b *Broker) offsetFetchHandler() handler {
	return handle(kmsg.OffsetFetch.Int16(), 0, 10, b.handleOffsetFetch)
}

func (b *Broker) handleOffsetFetch(c *conn, req *kmsg.OffsetFetchRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version <= 7 {
		var topics []coordinator.FetchTopic
		if req.Topics != nil || req.Version < 2 {
			topics = []coordinator.FetchTopic{}
			for _, t := range req.Topics {
				topics = append(topics, coordinator.FetchTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
		}
		offsets, err := b.coord.FetchOffsetsStable(c.ctx, req.Group, topics, req.RequireStable)
		if err != nil {
			resp.ErrorCode = err.Code
			// Before v2 the error goes in every partition.
			for _, t := range req.Topics {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, err.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp, nil
		}
		for _, o := range offsets {
			if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != o.Topic {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = o.Topic
				resp.Topics = append(resp.Topics, rt)
			}
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = o.Partition, o.Offset, o.LeaderEpoch
			rp.Metadata = kmsg.StringPtr(o.Metadata)
			if o.Unstable {
				rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			}
			rt := &resp.Topics[len(resp.Topics)-1]
			rt.Partitions = append(rt.Partitions, rp)
		}
		return resp, nil
	}
	for _, rg := range req.Groups {
		sg := kmsg.NewOffsetFetchResponseGroup()
		sg.Group = rg.Group
		var topics []coordinator.FetchTopic
		var missing []kmsg.OffsetFetchResponseGroupTopic // v10 topic ids we do not know
		if rg.Topics != nil {
			topics = []coordinator.FetchTopic{}
			for _, t := range rg.Topics {
				name := t.Topic
				if req.Version >= 10 {
					tt, ok := b.store.TopicByID(t.TopicID)
					if !ok {
						mt := kmsg.NewOffsetFetchResponseGroupTopic()
						mt.TopicID = t.TopicID
						for _, p := range t.Partitions {
							mp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
							mp.Partition, mp.Offset, mp.LeaderEpoch, mp.ErrorCode = p, -1, -1, kerr.UnknownTopicID.Code
							mt.Partitions = append(mt.Partitions, mp)
						}
						missing = append(missing, mt)
						continue
					}
					name = tt.Name
				}
				topics = append(topics, coordinator.FetchTopic{Topic: name, Partitions: t.Partitions})
			}
		}
		offsets, err := b.coord.FetchOffsetsStable(c.ctx, rg.Group, topics, req.RequireStable)
		if err != nil {
			sg.ErrorCode = err.Code
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		for _, o := range offsets {
			var t metadata.Topic
			if req.Version >= 10 {
				var ok bool
				if t, ok = b.store.Topic(o.Topic); !ok {
					continue
				}
			}
			if n := len(sg.Topics); n == 0 || sg.Topics[n-1].Topic != o.Topic {
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic = o.Topic
				if req.Version >= 10 {
					st.TopicID = t.ID
				}
				sg.Topics = append(sg.Topics, st)
			}
			sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			sp.Partition, sp.Offset, sp.LeaderEpoch = o.Partition, o.Offset, o.LeaderEpoch
			sp.Metadata = kmsg.StringPtr(o.Metadata)
			if o.Unstable {
				sp.ErrorCode = kerr.UnstableOffsetCommit.Code
			}
			st := &sg.Topics[len(sg.Topics)-1]
			st.Partitions = append(st.Partitions, sp)
		}
		sg.Topics = append(sg.Topics, missing...)
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
