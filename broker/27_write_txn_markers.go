package broker

// WriteTxnMarkers (key 27), v0-v2: the transaction coordinator's request
// to a partition leader to end a transaction there.
//
// Behavior: for each marker and each partition this broker leads, a
// control batch (commit or abort, with the coordinator epoch) is appended
// with the producer's id and epoch, and the answer waits until the ISR has
// it (as acks=all would), at most writeMarkersTimeout. The partition's
// open transaction for that producer ends: read_committed readers move
// past it, and an abort joins the partition's aborted transactions. A
// producer epoch older than the partition's gets INVALID_PRODUCER_EPOCH;
// a partition led elsewhere NOT_LEADER_OR_FOLLOWER. Internal topics take
// markers too (offsets committed in a transaction live in
// __consumer_offsets).

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
	"github.com/gregorbroker/gregor/storage"
)

// writeMarkersTimeout bounds the wait for the ISR to have a marker.
const writeMarkersTimeout = 30 * time.Second

func (b *Broker) writeTxnMarkersHandler() handler {
	return handle(kmsg.WriteTxnMarkers.Int16(), 0, 2, b.handleWriteTxnMarkers)
}

func (b *Broker) handleWriteTxnMarkers(c *conn, req *kmsg.WriteTxnMarkersRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	deadline := time.Now().Add(writeMarkersTimeout) // bounds every marker's wait
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = p
				rp.ErrorCode = errCode(b.writeMarker(t.Topic, p, m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch, deadline))
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp, nil
}

// writeMarker appends one marker to a partition this broker leads and
// waits until it is committed. A marker in __consumer_offsets ends the
// producer's pending transactional offsets there.
func (b *Broker) writeMarker(topic string, partition int32, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, deadline time.Time) error {
	part, err := b.parts.get(topic, partition)
	if err != nil {
		return err
	}
	res, err := part.log.AppendMarker(producerID, epoch, commit, coordinatorEpoch, part.leaderEpoch(), b.now().UnixMilli())
	switch {
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch
	case err != nil:
		b.log.Error().Err(err).Str("topic", topic).Int32("partition", partition).Msg("writing a transaction marker failed")
		return kerr.KafkaStorageError
	}
	part.metrics.appended(1, res.Size) // one control record, counted as Kafka counts a marker append
	b.parts.appended(part)
	if err := part.waitCommitted(b.ctx, deadline, res.LastOffset+1, 1); err != nil {
		return err
	}
	if topic == coordinator.OffsetsTopic {
		b.coord.CompleteTxn(partition, producerID, commit)
	}
	return nil
}
