package broker

// The broker's side of the group coordinator: the partitions of
// __consumer_offsets, reached through coordinator.Logs.

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
	cfg.CompactionCheckInterval = ms("log.cleaner.backoff.ms")
	cfg.MaxMetadataBytes = int(b.brokerConfigInt("offset.metadata.max.bytes"))
	cfg.ConsumerSessionTimeout = ms("group.consumer.session.timeout.ms")
	cfg.ConsumerHeartbeatInterval = ms("group.consumer.heartbeat.interval.ms")
	return cfg
}

// offsetsLogs implements coordinator.Logs over the broker's partitions.
type offsetsLogs struct{ b *Broker }

var (
	_ coordinator.Logs   = offsetsLogs{}
	_ coordinator.Topics = offsetsLogs{}
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

func (o offsetsLogs) OffsetsPartitions() int32 {
	if t, ok := o.b.store.Topic(coordinator.OffsetsTopic); ok {
		return t.Partitions
	}
	return 0
}

func (o offsetsLogs) EnsureOffsetsTopic(ctx context.Context, partitions int32) (int32, error) {
	if n := o.OffsetsPartitions(); n > 0 {
		return n, nil
	}
	configs := map[string]string{
		"cleanup.policy":   "compact",
		"compression.type": "producer",
		"segment.bytes":    strconv.FormatInt(o.b.brokerConfigInt("offsets.topic.segment.bytes"), 10),
	}
	// offsets.topic.replication.factor (3), or every live broker when
	// there are fewer: a single node gets 1, a cluster the factor.
	rf := min(int(o.b.brokerConfigInt("offsets.topic.replication.factor")), len(o.b.store.Brokers()))
	t, err := o.b.store.CreateTopic(ctx, metadata.Topic{Name: coordinator.OffsetsTopic, Partitions: partitions, ReplicationFactor: int16(max(rf, 1)), Configs: configs})
	if errors.Is(err, metadata.ErrTopicExists) {
		// Another request created it; our view of the store may lag the
		// write by a moment.
		for range 50 {
			if t, ok := o.b.store.Topic(coordinator.OffsetsTopic); ok {
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
		return 0, fmt.Errorf("create %s: %w", coordinator.OffsetsTopic, err)
	}
	o.b.log.Info().Str("topic", t.Name).Int32("partitions", t.Partitions).Msg("created the offsets topic")
	wctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := o.b.waitPlaced(wctx, t); err != nil {
		return 0, fmt.Errorf("place %s: %w", coordinator.OffsetsTopic, err)
	}
	return t.Partitions, nil
}

func (o offsetsLogs) Append(partition int32, batch []byte) error {
	part, err := o.b.parts.get(coordinator.OffsetsTopic, partition)
	if err != nil {
		return fmt.Errorf("open %s-%d: %w", coordinator.OffsetsTopic, partition, err)
	}
	res, err := part.log.Append(batch, part.leaderEpoch())
	if err != nil {
		return err
	}
	o.b.parts.appended(part)
	// A commit is acknowledged once the ISR has it, as with acks=all
	// (offsets.commit.timeout.ms, 5 s, bounds the wait).
	deadline := time.NewTimer(offsetsCommitTimeout)
	defer deadline.Stop()
	if err := part.waitCommitted(o.b.ctx, deadline.C, res.LastOffset+1, 1); err != nil {
		return fmt.Errorf("commit to %s-%d: %w", coordinator.OffsetsTopic, partition, err)
	}
	return nil
}

// offsetsCommitTimeout is Kafka's offsets.commit.timeout.ms default.
const offsetsCommitTimeout = 5 * time.Second

func (o offsetsLogs) Leadership(partition int32) (bool, int32) {
	st, ok := o.b.store.Partition(coordinator.OffsetsTopic, partition)
	return ok && st.Leader == o.b.cfg.NodeID, st.LeaderEpoch
}

func (o offsetsLogs) Size(partition int32) (int64, int) {
	part, err := o.b.parts.get(coordinator.OffsetsTopic, partition)
	if err != nil {
		return 0, 0
	}
	return part.log.Size(), part.log.SegmentCount()
}

func (o offsetsLogs) Roll(partition int32) (int64, error) {
	part, err := o.b.parts.get(coordinator.OffsetsTopic, partition)
	if err != nil {
		return 0, fmt.Errorf("open %s-%d: %w", coordinator.OffsetsTopic, partition, err)
	}
	return part.log.Roll()
}

func (o offsetsLogs) DeleteBelow(partition int32, offset int64) (int, error) {
	part, err := o.b.parts.get(coordinator.OffsetsTopic, partition)
	if err != nil {
		return 0, fmt.Errorf("open %s-%d: %w", coordinator.OffsetsTopic, partition, err)
	}
	return part.log.DeleteSegmentsBelow(offset)
}

func (o offsetsLogs) Scan(partition int32, fn func(batch []byte) error) error {
	part, err := o.b.parts.get(coordinator.OffsetsTopic, partition)
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil
		}
		return fmt.Errorf("open %s-%d: %w", coordinator.OffsetsTopic, partition, err)
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
				return fmt.Errorf("%s-%d: bad batch at offset %d", coordinator.OffsetsTopic, partition, offset)
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
