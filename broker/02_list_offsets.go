package broker

// ListOffsets (key 2), v1-v11.
//
// Behavior:
//   - -1 (latest): the high watermark (read_uncommitted) or last stable offset (read_committed).
//   - -2 (earliest) and -5 (earliest local, v8+): the log start offset.
//   - -3 (max timestamp, v7+): the first record with the largest timestamp.
//   - -4 (latest tiered, v9+): -1, as there is no tiered storage.
//   - t >= 0: the first record at or above the log start offset whose
//     timestamp is >= t, found through the time index and then by reading
//     that batch's records; -1 when none.
//   - The leader epoch returned is the partition's current one, as the
//     controller recorded it; current leader epoch checks as Fetch.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

// ListOffsets special timestamps.
const (
	listLatest       = -1
	listEarliest     = -2
	listMaxTimestamp = -3
	listLatestTiered = -4
	listEarliestLocl = -5
)

func (b *Broker) listOffsetsHandler() handler {
	return handle(kmsg.ListOffsets.Int16(), 1, 11, b.handleListOffsets)
}

func (b *Broker) handleListOffsets(_ *conn, req *kmsg.ListOffsetsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Offset, sp.Timestamp, sp.LeaderEpoch = -1, -1, -1
			if err := b.listOffset(rt.Topic, rp, &sp, req.IsolationLevel == 1); err != nil {
				sp.ErrorCode = errCode(err)
				sp.LeaderEpoch = -1
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) listOffset(topic string, rp *kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition, readCommitted bool) error {
	part, err := b.parts.get(topic, rp.Partition)
	if err != nil {
		return err
	}
	epoch := part.leaderEpoch()
	if err := checkLeaderEpoch(rp.CurrentLeaderEpoch, epoch); err != nil {
		return err
	}
	sp.LeaderEpoch = epoch
	l := part.log
	switch ts := rp.Timestamp; {
	case ts == listLatest:
		sp.Offset = l.HighWatermark()
		if readCommitted {
			sp.Offset = l.LastStableOffset()
		}
	case ts == listEarliest || ts == listEarliestLocl:
		sp.Offset = l.LogStartOffset()
	case ts == listLatestTiered:
		sp.Offset = -1
	case ts == listMaxTimestamp:
		maxTs, base := l.MaxTimestamp()
		if base < 0 {
			return nil
		}
		rr, err := l.Read(base, 1, true, l.HighWatermark())
		if err != nil || len(rr.Ranges) == 0 {
			return nil // the batch is no longer readable (deleted or beyond the high watermark)
		}
		batch, err := rr.Ranges[0].AppendTo(nil)
		if err != nil {
			return kerr.KafkaStorageError
		}
		recs, err := b.codecs.RecordsAt(batch[:min(len(batch), protocol.BatchSize(batch))])
		if err != nil {
			return kerr.CorruptMessage
		}
		for _, r := range recs {
			if r.Timestamp == maxTs {
				sp.Offset, sp.Timestamp = r.Offset, r.Timestamp
				break
			}
		}
	case ts >= 0:
		// Records below the log start do not count; only the batch
		// holding the start can have any, so a second look past it ends
		// the search.
		start := l.LogStartOffset()
		for from, tries := start, 0; tries < 2; tries++ {
			batch, ok, err := l.BatchAtTimeFrom(ts, from)
			if err != nil {
				return kerr.KafkaStorageError
			}
			if !ok {
				return nil
			}
			recs, err := b.codecs.RecordsAt(batch)
			if err != nil {
				return kerr.CorruptMessage
			}
			for _, r := range recs {
				if r.Timestamp >= ts && r.Offset >= start {
					sp.Offset, sp.Timestamp = r.Offset, r.Timestamp
					return nil
				}
			}
			if len(recs) == 0 {
				return nil
			}
			from = recs[len(recs)-1].Offset + 1
		}
	default:
		return kerr.InvalidRequest
	}
	return nil
}
