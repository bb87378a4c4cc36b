package broker

// The broker's side of the group and transaction coordinators: the
// partitions of __consumer_offsets (coordinator.Logs) and of
// __transaction_state (coordinator.TxnLogs), both internal topics written
// through the same partition logs as any other.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/coordinator"
	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// coordinatorConfig reads the group configs (static broker configs).
func (b *Broker) coordinatorConfig() coordinator.Config {
	ms := func(name string) time.Duration { return time.Duration(b.brokerConfigInt(name)) * time.Millisecond }
	cfg := coordinator.DefaultConfig()
	cfg.OffsetsTopicPartitions = int32(b.brokerConfigInt("offsets.topic.num.partitions"))
	cfg.MinSessionTimeout = ms("group.min.session.timeout.ms")
	cfg.MaxSessionTimeout = ms("group.max.session.timeout.ms")
	cfg.InitialRebalanceDelay = ms("group.initial.rebalance.delay.ms")
	cfg.MaxGroupSize = int(b.brokerConfigInt("group.max.size"))
	cfg.OffsetsRetention = time.Duration(b.brokerConfigInt("offsets.retention.minutes")) * time.Minute
	cfg.RetentionCheckInterval = ms("offsets.retention.check.interval.ms")
	cfg.MaxMetadataBytes = int(b.brokerConfigInt("offset.metadata.max.bytes"))
	cfg.ConsumerSessionTimeout = ms("group.consumer.session.timeout.ms")
	cfg.ConsumerHeartbeatInterval = ms("group.consumer.heartbeat.interval.ms")
	return cfg
}

// internalLogs reaches the partitions of one internal topic.
type internalLogs struct {
	b     *Broker
	topic string
}

// offsetsLogs implements coordinator.Logs over the broker's partitions.
type offsetsLogs struct{ internalLogs }

func (b *Broker) offsetsLogs() offsetsLogs {
	return offsetsLogs{internalLogs{b: b, topic: coordinator.OffsetsTopic}}
}

var (
	_ coordinator.Logs    = offsetsLogs{}
	_ coordinator.Topics  = offsetsLogs{}
	_ coordinator.TxnLogs = txnLogs{}
)

func (o offsetsLogs) TopicByName(name string) (coordinator.TopicInfo, bool) {
	t, ok := o.b.store.Topic(name)
	return coordinator.TopicInfo{Name: t.Name, ID: t.ID, Partitions: t.Partitions}, ok
}

func (o offsetsLogs) TopicNames() []string {
	// Internal topics are included: Kafka's broker-side regex resolution
	// (KIP-848) matches every topic, __consumer_offsets among them.
	topics := o.b.store.Topics()
	out := make([]string, 0, len(topics))
	for _, t := range topics {
		out = append(out, t.Name)
	}
	return out
}

func (o offsetsLogs) TopicByID(id [16]byte) (coordinator.TopicInfo, bool) {
	t, ok := o.b.store.TopicByID(id)
	return coordinator.TopicInfo{Name: t.Name, ID: t.ID, Partitions: t.Partitions}, ok
}

func (o offsetsLogs) OffsetsPartitions() int32 { return o.partitions() }

// partitions is the topic's partition count, 0 when it does not exist.
func (o internalLogs) partitions() int32 {
	if t, ok := o.b.store.Topic(o.topic); ok {
		return t.Partitions
	}
	return 0
}

func (o offsetsLogs) EnsureOffsetsTopic(ctx context.Context, partitions int32) (int32, error) {
	configs := map[string]string{
		"cleanup.policy":   "compact",
		"compression.type": "producer",
		"segment.bytes":    strconv.FormatInt(o.b.brokerConfigInt("offsets.topic.segment.bytes"), 10),
	}
	return o.ensure(ctx, partitions, int(o.b.brokerConfigInt("offsets.topic.replication.factor")), 0, configs)
}

// ensure creates the topic, when it does not exist, with partitions
// partitions and replication factor rf, or every live broker when there
// are fewer (a single node gets 1, a cluster the factor); minISR > 0 sets
// min.insync.replicas, capped by the replication factor. It returns the
// partition count once the controller has placed the partitions.
func (o internalLogs) ensure(ctx context.Context, partitions int32, rf, minISR int, configs map[string]string) (int32, error) {
	if n := o.partitions(); n > 0 {
		return n, nil
	}
	rf = max(min(rf, len(o.b.store.Brokers())), 1)
	if minISR > 0 {
		configs["min.insync.replicas"] = strconv.Itoa(min(minISR, rf))
	}
	t, err := o.b.store.CreateTopic(ctx, metadata.Topic{Name: o.topic, Partitions: partitions, ReplicationFactor: int16(rf), Configs: configs},
		o.b.placement(0, partitions, int16(rf))...)
	if errors.Is(err, metadata.ErrTopicExists) {
		// Another request created it; our view of the store may lag the
		// write by a moment.
		for range 50 {
			if t, ok := o.b.store.Topic(o.topic); ok {
				return t.Partitions, nil
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", o.topic, err)
	}
	o.b.log.Info().Str("topic", t.Name).Int32("partitions", t.Partitions).Int("replication_factor", rf).Msg("created an internal topic")
	wctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := o.b.waitPlaced(wctx, t); err != nil {
		return 0, fmt.Errorf("place %s: %w", o.topic, err)
	}
	return t.Partitions, nil
}

func (o internalLogs) Append(partition int32, batch []byte) error {
	part, err := o.b.parts.get(o.topic, partition)
	if err != nil {
		return fmt.Errorf("open %s-%d: %w", o.topic, partition, err)
	}
	res, err := part.log.Append(batch, part.leaderEpoch())
	if errors.Is(err, storage.ErrInvalidProducerEpoch) {
		return fmt.Errorf("%w: %w", kerr.InvalidProducerEpoch, err)
	}
	if err != nil {
		return err
	}
	if !res.Duplicate {
		// Counted as Kafka's appendToLocalLog counts a coordinator's
		// append: in the internal topic's messages and bytes in.
		part.metrics.appended(int64(protocol.BatchRecordCount(batch)), len(batch))
	}
	o.b.parts.appended(part)
	// A commit is acknowledged once the ISR has it, as with acks=all
	// (offsets.commit.timeout.ms, 5 s, bounds the wait).
	if err := part.waitCommitted(o.b.ctx, time.Now().Add(offsetsCommitTimeout), res.LastOffset+1, 1); err != nil {
		return fmt.Errorf("commit to %s-%d: %w", o.topic, partition, err)
	}
	return nil
}

// offsetsCommitTimeout is Kafka's offsets.commit.timeout.ms default.
const offsetsCommitTimeout = 5 * time.Second

func (o internalLogs) Leadership(partition int32) (bool, int32) {
	st, ok := o.b.store.Partition(o.topic, partition)
	return ok && st.Leader == o.b.cfg.NodeID, st.LeaderEpoch
}

func (o internalLogs) Scan(partition int32, fn func(batch []byte) error) error {
	part, err := o.b.parts.get(o.topic, partition)
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil
		}
		return fmt.Errorf("open %s-%d: %w", o.topic, partition, err)
	}
	l := part.log
	// The new leader's whole log: it is what this leader keeps and its
	// followers will copy (its high watermark may lag after a restart or
	// an election until the followers have fetched).
	offset, hw := l.LogStartOffset(), l.LogEndOffset()
	for offset < hw {
		rr, err := l.Read(offset, 1<<20, true, hw)
		if err != nil {
			return err
		}
		if rr.Size == 0 {
			return nil
		}
		// A fresh buffer per read: what fn decodes may alias it.
		buf := make([]byte, 0, rr.Size)
		for _, r := range rr.Ranges {
			if buf, err = r.AppendTo(buf); err != nil {
				return err
			}
		}
		for len(buf) > 0 {
			n := protocol.BatchSize(buf)
			if n <= 0 || n > len(buf) {
				return fmt.Errorf("%s-%d: bad batch at offset %d", o.topic, partition, offset)
			}
			h, err := protocol.ParseBatchHeader(buf[:n])
			if err != nil {
				return err
			}
			if err := fn(buf[:n]); err != nil {
				return err
			}
			offset = h.FirstOffset + int64(h.LastOffsetDelta) + 1
			buf = buf[n:]
		}
	}
	return nil
}
