package broker

// DeleteRecords (key 21), v0-v2 (v2 is flexible; the bodies are the same).
//
// Behavior:
//   - Moves the log start offset of each partition, on its leader, to the
//     given offset; -1 means the high watermark. Segments wholly below the
//     new start are deleted (renamed .deleted, removed after
//     file.delete.delay.ms); reads below it get OFFSET_OUT_OF_RANGE at once.
//     A start at or below the current one changes nothing.
//   - Offsets above the high watermark, or negative other than -1:
//     OFFSET_OUT_OF_RANGE. A topic whose cleanup.policy lacks delete
//     (compact only): POLICY_VIOLATION, as Kafka. The usual leadership
//     errors (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, ...).
//   - The answer waits, at most TimeoutMillis, until every ISR member's
//     log start offset has reached the offset (followers move theirs from
//     the leader's, which fetch responses carry, and report it in their
//     next fetch), then gives the low watermark: the lowest log start in
//     the ISR. Past the timeout: REQUEST_TIMED_OUT, low watermark -1.
//   - The log-start-offset-checkpoint is written before the answer, so a
//     start moved by DeleteRecords survives a crash.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) deleteRecordsHandler() handler {
	return handle(kmsg.DeleteRecords.Int16(), 0, 2, b.handleDeleteRecords)
}

// deleteWait is one partition whose answer waits for its ISR.
type deleteWait struct {
	part   *partition
	offset int64
	ti, pi int // indexes of its topic and partition in the response
}

func (b *Broker) handleDeleteRecords(c *conn, req *kmsg.DeleteRecordsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	deadline := time.Now().Add(time.Duration(max(req.TimeoutMillis, 0)) * time.Millisecond)
	var waits []deleteWait
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			part, offset, err := b.deleteRecords(rt.Topic, rp.Partition, rp.Offset)
			if err != nil {
				sp.ErrorCode = errCode(err)
			} else {
				waits = append(waits, deleteWait{part: part, offset: offset, ti: len(resp.Topics), pi: len(st.Partitions)})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(waits) > 0 {
		if err := b.checkpointLogStarts(); err != nil {
			b.log.Warn().Err(err).Msg("cannot write the log start offset checkpoint after DeleteRecords")
		}
	}
	for _, w := range waits {
		sp := &resp.Topics[w.ti].Partitions[w.pi]
		lw, err := w.part.waitLowWatermark(c.ctx, deadline, w.offset)
		if err != nil {
			sp.ErrorCode = errCode(err)
			continue
		}
		sp.LowWatermark = lw
	}
	return resp, nil
}

// deleteRecords moves one partition's log start offset; it returns the
// offset the answer waits for.
func (b *Broker) deleteRecords(topic string, p int32, offset int64) (*partition, int64, error) {
	part, err := b.parts.get(topic, p)
	if err != nil {
		return nil, 0, err
	}
	if !part.settings.Load().deletePolicy {
		return nil, 0, kerr.PolicyViolation
	}
	hw := part.log.HighWatermark()
	switch {
	case offset == -1:
		offset = hw
	case offset < 0 || offset > hw:
		return nil, 0, kerr.OffsetOutOfRange
	}
	moved, err := part.log.AdvanceLogStart(offset)
	if err != nil {
		b.log.Error().Err(err).Str("topic", topic).Int32("partition", p).Int64("offset", offset).Msg("DeleteRecords failed")
		return nil, 0, kerr.KafkaStorageError
	}
	if moved {
		b.log.Info().Str("topic", topic).Int32("partition", p).Int64("log_start_offset", offset).Msg("DeleteRecords moved the log start offset")
	}
	return part, offset, nil
}

// waitLowWatermark waits until the partition's low watermark reaches
// offset and returns it; REQUEST_TIMED_OUT past the deadline,
// NOT_LEADER_OR_FOLLOWER when leadership moves meanwhile.
func (part *partition) waitLowWatermark(ctx context.Context, deadline time.Time, offset int64) (int64, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		role := part.roleWatch()
		lw, moved := part.lowWatermark()
		if lw >= offset {
			return lw, nil
		}
		if !part.leading.Load() {
			return -1, kerr.NotLeaderForPartition
		}
		select {
		case <-moved:
		case <-role:
		case <-timer.C:
			return -1, kerr.RequestTimedOut
		case <-ctx.Done():
			return -1, kerr.RequestTimedOut
		}
	}
}
