package broker

// Produce (key 0), v3-v13.
//
// Behavior:
//   - acks must be 0, 1 or -1 (INVALID_REQUIRED_ACKS otherwise); acks=0 gets
//     no response at all. acks=1 is answered once the batch is in the
//     leader's log (and fsynced first when flush.messages / flush.ms ask
//     for it); acks=-1 (all) once the high watermark passes it, i.e. every
//     ISR member has it, or REQUEST_TIMED_OUT after the request's timeout.
//     acks=-1 with fewer in-sync replicas than min.insync.replicas gets
//     NOT_ENOUGH_REPLICAS (nothing is appended), and
//     NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below it
//     before the batch was committed. While one acks=-1 request waits, the
//     next requests on the connection are read and appended; responses
//     still leave in request order.
//   - Each partition takes exactly one magic-2 batch, validated as Kafka's
//     LogValidator does before anything is appended (protocol/validate.go
//     lists every check): size against max.message.bytes
//     (MESSAGE_TOO_LARGE), CRC-32C and undecodable compression
//     (CORRUPT_MESSAGE), codec (UNSUPPORTED_COMPRESSION_TYPE; zstd needs
//     v7+), the header's counts and every record's structure, compressed
//     records decompressed as a bounded stream and not kept
//     (INVALID_RECORD), keys on compacted topics (INVALID_RECORD) and each
//     record's timestamp against message.timestamp.before/after.max.ms
//     (INVALID_TIMESTAMP, CreateTime topics). v8+ responses carry the
//     reason in ErrorMessage and the records at fault in RecordErrors.
//   - CreateTime batches get their max timestamp set to the largest record
//     timestamp, as Kafka does.
//   - LogAppendTime topics get the broker's time stamped into the batch and
//     returned in the response.
//   - Internal topics cannot be produced to (INVALID_TOPIC_EXCEPTION).
//   - A partition this broker does not lead gets NOT_LEADER_OR_FOLLOWER;
//     v10+ also carry the current leader and its endpoint (KIP-951), so
//     the client can go there without a metadata request. With acks=0 any
//     error closes the connection instead, as Kafka does, since there is no
//     response to carry it and the client must refresh its metadata.
//   - v13 names topics by id (UNKNOWN_TOPIC_ID when unknown).
//   - Idempotent batches (a producer id and a sequence number) are checked
//     against the partition's producer state (storage/producers.go): a
//     retry of one of the producer's last five batches is answered with
//     the original's base offset and not written again; a sequence gap
//     gets OUT_OF_ORDER_SEQUENCE_NUMBER, an epoch older than the
//     partition's INVALID_PRODUCER_EPOCH.
//   - A transactional batch that would open a transaction in the
//     partition is first verified with the transaction coordinator
//     (KIP-890, transaction.partition.verification.enable, on by
//     default): a partition that AddPartitionsToTxn did not add to the
//     producer's open transaction gets INVALID_TXN_STATE, a fenced epoch
//     INVALID_PRODUCER_EPOCH, a coordinator that cannot answer
//     NOT_ENOUGH_REPLICAS (retriable).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

func (b *Broker) produceHandler() handler {
	return handle(kmsg.Produce.Int16(), 3, 13, b.handleProduce)
}

func (b *Broker) handleProduce(c *conn, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	validAcks := req.Acks == 0 || req.Acks == 1 || req.Acks == -1
	hints := leaderHints{listener: c.listener}
	var firstErr error
	var waits []commitWait
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name, topicErr := rt.Topic, error(nil)
		if req.Version >= 13 {
			if t, ok := b.store.TopicByID(rt.TopicID); ok {
				name = t.Name
			} else {
				topicErr = kerr.UnknownTopicID
			}
		}
		if topicErr == nil && isInternalTopic(name) {
			topicErr = kerr.InvalidTopicException
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			var err error
			switch {
			case !validAcks:
				err = kerr.InvalidRequiredAcks
			case topicErr != nil:
				err = topicErr
			default:
				var w *commitWait
				w, err = b.producePartition(c.ctx, req.TransactionID, name, rp, &sp, req.Acks, req.Version)
				if w != nil {
					w.topic, w.index = len(resp.Topics), len(st.Partitions)
					waits = append(waits, *w)
				}
			}
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				sp.ErrorCode = errCode(err)
				if req.Version >= 8 && !errors.As(err, new(*kerr.Error)) {
					msg := err.Error()
					sp.ErrorMessage = &msg
					sp.ErrorRecords = recordErrors(err)
				}
				if req.Version >= 10 && errors.Is(err, kerr.NotLeaderForPartition) {
					sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = hints.leader(b, name, rp.Partition)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		if firstErr != nil {
			return nil, fmt.Errorf("acks=0 produce failed (%v); closing the connection so the client refreshes its metadata", firstErr)
		}
		return nil, nil
	}
	for _, br := range hints.brokers {
		pb := kmsg.NewProduceResponseBroker()
		pb.NodeID, pb.Rack = br.NodeID, rackPtr(br.Rack)
		pb.Host, pb.Port = hints.endpoint(br)
		resp.Brokers = append(resp.Brokers, pb)
	}
	if len(waits) == 0 {
		return resp, nil
	}
	timeout := time.Duration(max(req.TimeoutMillis, 0)) * time.Millisecond
	return &deferredResponse{Response: resp, wait: func() {
		// One deadline for the request: every partition's wait ends by it.
		deadline := time.Now().Add(timeout)
		for _, w := range waits {
			sp := &resp.Topics[w.topic].Partitions[w.index]
			if err := w.part.waitCommitted(c.ctx, deadline, w.end, w.minISR); err != nil {
				sp.ErrorCode = errCode(err)
				sp.BaseOffset = -1
			}
		}
	}}, nil
}

// commitWait is an acks=all batch in the log whose response waits until
// the ISR has it.
type commitWait struct {
	part         *partition
	end          int64 // the batch's last offset + 1
	minISR       int
	topic, index int // of its partition in the response
}

// waitCommitted waits until the high watermark reaches end (every ISR
// member has the batch), the deadline passes (REQUEST_TIMED_OUT, counted
// as an expiry as Kafka's DelayedProduce counts one, not as a failed
// produce) or ctx ends (also REQUEST_TIMED_OUT, not counted: the client
// has gone). A batch committed by an ISR smaller than minISR gets
// NOT_ENOUGH_REPLICAS_AFTER_APPEND, as in Kafka. A request waiting for
// several partitions passes each the same deadline, so the request's
// timeout bounds the whole wait.
func (part *partition) waitCommitted(ctx context.Context, deadline time.Time, end int64, minISR int) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		moved, role := part.log.Changed(), part.roleWatch()
		if part.log.HighWatermark() >= end {
			if len(part.isr()) < minISR {
				return kerr.NotEnoughReplicasAfterAppend
			}
			return nil
		}
		if !part.leading.Load() {
			return kerr.NotLeaderForPartition
		}
		select {
		case <-moved:
		case <-role:
		case <-timer.C:
			part.expires.Add(1)
			part.allExpires.Add(1)
			return kerr.RequestTimedOut
		case <-ctx.Done():
			return kerr.RequestTimedOut
		}
	}
}

// producePartition appends one partition's batch and fills in the
// response. For acks=-1 it returns what to wait for when the batch is not
// committed yet.
func (b *Broker) producePartition(ctx context.Context, txnID *string, topic string, rp *kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition, acks, version int16) (_ *commitWait, err error) {
	part, err := b.parts.get(topic, rp.Partition)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && countsAsFailedProduce(err) {
			part.metrics.failedProduce.Add(1)
		}
	}()
	settings := part.settings.Load()
	records := rp.Records
	if len(records) > int(settings.maxMessageBytes) {
		return nil, kerr.MessageTooLarge
	}
	nowMs := b.now().UnixMilli()
	v, err := b.codecs.ValidateProduceBatch(records, protocol.ValidateConfig{
		Version:              version,
		NowMs:                nowMs,
		LogAppendTime:        settings.logAppendTime,
		TimestampBeforeMaxMs: settings.timestampBeforeMs,
		TimestampAfterMaxMs:  settings.timestampAfterMs,
		Compacted:            settings.compacted,
	})
	if err != nil {
		b.log.Debug().Err(err).Str("topic", topic).Int32("partition", rp.Partition).Msg("produced batch refused")
		return nil, batchError{err}
	}
	h := v.Header
	if acks == -1 && len(part.isr()) < settings.minInsyncReplicas {
		return nil, kerr.NotEnoughReplicas
	}
	if h.Attributes&protocol.AttrTransactional != 0 && h.ProducerID >= 0 && txnID != nil &&
		b.verifyTxns && !part.log.HasOpenTxn(h.ProducerID) {
		if err := b.verifyTxn(ctx, *txnID, h.ProducerID, h.ProducerEpoch, topic, rp.Partition); err != nil {
			return nil, err
		}
	}
	if settings.logAppendTime {
		protocol.SetLogAppendTime(records, nowMs)
		sp.LogAppendTime = nowMs
	} else {
		protocol.SetMaxTimestamp(records, v.MaxTimestamp) // as Kafka does
	}
	res, err := part.log.Append(records, part.leaderEpoch())
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return nil, kerr.OutOfOrderSequenceNumber
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return nil, kerr.InvalidProducerEpoch
	case err != nil:
		b.log.Error().Err(err).Str("topic", topic).Int32("partition", rp.Partition).Msg("append failed")
		return nil, kerr.KafkaStorageError
	}
	if res.Duplicate {
		// A retry of a batch in the log: answered as the original was
		// (acks=-1 waits for the original to be committed); its
		// LogAppendTime is not known here, so the broker's now stands.
		b.log.Debug().Str("topic", topic).Int32("partition", rp.Partition).Int64("base_offset", res.BaseOffset).Msg("duplicate idempotent batch")
	} else {
		part.metrics.appended(int64(h.NumRecords), len(records))
		b.parts.appended(part)
	}
	sp.BaseOffset = res.BaseOffset
	sp.LogStartOffset = part.log.LogStartOffset()
	if acks == -1 && part.log.HighWatermark() <= res.LastOffset {
		return &commitWait{part: part, end: res.LastOffset + 1, minISR: settings.minInsyncReplicas}, nil
	}
	return nil, nil
}

// countsAsFailedProduce reports whether an append error on a partition
// this broker leads counts in failedproducerequests. As in Kafka, a batch
// too large or corrupt does not (Kafka counts those apart); every other
// refusal does, including KAFKA_STORAGE_ERROR, which Kafka counts as an
// offline log dir instead, a metric Gregor does not have.
func countsAsFailedProduce(err error) bool {
	return !errors.Is(err, kerr.MessageTooLarge) && !errors.Is(err, protocol.ErrCorruptBatch)
}

// batchError carries a protocol validation error and its Kafka code.
type batchError struct{ err error }

func (e batchError) Error() string { return e.err.Error() }
func (e batchError) Unwrap() error { return e.err }

// recordErrors lists the records a validation failure names (Produce v8+).
func recordErrors(err error) []kmsg.ProduceResponseTopicPartitionErrorRecord {
	var ve *protocol.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	out := make([]kmsg.ProduceResponseTopicPartitionErrorRecord, 0, len(ve.Records))
	for _, re := range ve.Records {
		r := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		r.RelativeOffset, r.ErrorMessage = re.BatchIndex, kmsg.StringPtr(re.Message)
		out = append(out, r)
	}
	return out
}

// errCode maps an error from the data path to a Kafka error code.
func errCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, protocol.ErrCorruptBatch):
		return kerr.CorruptMessage.Code
	case errors.Is(err, protocol.ErrUnsupportedCodec):
		return kerr.UnsupportedCompressionType.Code
	case errors.Is(err, protocol.ErrInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, protocol.ErrInvalidBatch):
		return kerr.InvalidRecord.Code
	default:
		return kerr.UnknownServerError.Code
	}
}
