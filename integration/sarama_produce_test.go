package integration

// Produce and consume through IBM/sarama: a SyncProducer with acks=all and
// an AsyncProducer with every compression codec, read back with plain
// partition consumers (no consumer groups: Gregor has no group coordinator
// yet) and compared byte for byte, offset for offset.
//
// Each test runs once per sarama protocol version in saramaVersions, because
// sarama picks request versions from Config.Version rather than from
// ApiVersions: V0_11_0_0 exercises the lowest versions Gregor serves
// (Produce v3, Fetch v5, ListOffsets v2), V4_0_0_0 the newest sarama knows.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaVersions are the sarama Config.Version values every sarama test runs
// under, from the oldest that Gregor's minimum request versions allow to the
// newest sarama defines.
var saramaVersions = []sarama.KafkaVersion{
	sarama.V0_11_0_0, // Produce v3, Fetch v5, Metadata v5, ListOffsets v2
	sarama.V2_8_0_0,  // Produce v9, Fetch v12, flexible versions
	sarama.V3_6_0_0,
	sarama.V4_0_0_0,
}

// saramaConfig is a sarama config with sarama's default of no idempotence
// (idempotent_clients_test.go turns it on), acks=all, every result
// reported, short timeouts so a hung broker fails the test instead of the
// test binary.
func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "gregor-it-sarama"
	c.Version = v
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Idempotent = false
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Timeout = 10 * time.Second
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 3
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.MaxWaitTime = 250 * time.Millisecond
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Admin.Timeout = 10 * time.Second
	c.Admin.Retry.Max = 5
	c.Admin.Retry.Backoff = 100 * time.Millisecond
	return c
}

// saramaTopic is a topic name unique to the running (sub)test.
func saramaTopic(t *testing.T, prefix string) string {
	t.Helper()
	r := strings.NewReplacer("/", "-", "_", "-", ".", "-")
	name := prefix + "-" + strings.ToLower(r.Replace(t.Name()))
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}

// saramaAdmin opens a ClusterAdmin closed when the test ends.
func saramaAdmin(t *testing.T, addr string, cfg *sarama.Config) sarama.ClusterAdmin {
	t.Helper()
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama.NewClusterAdmin(%s, version %s): %v", addr, cfg.Version, err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

// saramaCreateTopic creates topic with the given partition count through
// ClusterAdmin.CreateTopic (CreateTopics) and fails the test on any error.
func saramaCreateTopic(t *testing.T, addr string, cfg *sarama.Config, topic string, partitions int32) {
	t.Helper()
	admin := saramaAdmin(t, addr, cfg)
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("CreateTopic(%q, %d partitions) with sarama %s: %v", topic, partitions, cfg.Version, err)
	}
}

// saramaRecord is what the test sent and what it expects to read back.
type saramaRecord struct {
	key, value []byte
	headers    []sarama.RecordHeader
	ts         time.Time // millisecond precision, as Kafka stores it
	partition  int32
	offset     int64
}

// saramaRecords builds n keyed records with binary, varied-length values, a
// header on every seventh record and strictly increasing millisecond
// timestamps. Keys repeat so one key lands many times on one partition.
func saramaRecords(n int, seed int64) []*saramaRecord {
	rng := rand.New(rand.NewSource(seed))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	recs := make([]*saramaRecord, n)
	for i := range recs {
		v := make([]byte, rng.Intn(300))
		rng.Read(v)
		// A readable, compressible prefix so codecs have work to do and a
		// mismatch is easy to read in a failure message.
		v = append([]byte(fmt.Sprintf("value-%05d|%s|", i, strings.Repeat("gregor", i%5))), v...)
		r := &saramaRecord{
			key:       []byte(fmt.Sprintf("key-%03d", i%41)),
			value:     v,
			ts:        base.Add(time.Duration(i) * time.Millisecond),
			partition: -1,
			offset:    -1,
		}
		if i%7 == 0 {
			r.headers = []sarama.RecordHeader{
				{Key: []byte("idx"), Value: []byte(fmt.Sprint(i))},
				{Key: []byte("empty"), Value: []byte{}},
			}
		}
		recs[i] = r
	}
	return recs
}

func (r *saramaRecord) producerMessage(topic string, idx int) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic:     topic,
		Key:       sarama.ByteEncoder(r.key),
		Value:     sarama.ByteEncoder(r.value),
		Headers:   r.headers,
		Timestamp: r.ts,
		Metadata:  idx,
	}
}

// saramaCheckOffsets checks that every record was acknowledged, that the
// offsets of each partition are exactly 0..n-1 in the order the records were
// sent, and that each record went to the partition sarama's hash partitioner
// picks for its key. It returns the records grouped by partition.
func saramaCheckOffsets(t *testing.T, topic string, recs []*saramaRecord, partitions int32) map[int32][]*saramaRecord {
	t.Helper()
	hp := sarama.NewHashPartitioner(topic)
	byPart := map[int32][]*saramaRecord{}
	for i, r := range recs {
		if r.partition < 0 {
			t.Fatalf("record %d (key %q) was never acknowledged", i, r.key)
		}
		want, err := hp.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(r.key)}, partitions)
		if err != nil {
			t.Fatalf("hash partitioner: %v", err)
		}
		if r.partition != want {
			t.Errorf("record %d key %q went to partition %d, hash partitioner says %d", i, r.key, r.partition, want)
		}
		byPart[r.partition] = append(byPart[r.partition], r)
	}
	for p, rs := range byPart {
		for i, r := range rs {
			if r.offset != int64(i) {
				t.Fatalf("partition %d: record #%d in send order was acknowledged at offset %d, want %d (offsets must be dense and in produce order)", p, i, r.offset, i)
			}
		}
	}
	if len(byPart) != int(partitions) {
		t.Errorf("records landed on %d partitions, want all %d used (41 distinct keys)", len(byPart), partitions)
	}
	return byPart
}

// saramaConsumePartition reads want messages from partition p of topic,
// starting at the oldest offset, with a plain partition consumer.
func saramaConsumePartition(ctx context.Context, t *testing.T, addr string, cfg *sarama.Config, topic string, p int32, want int) []*sarama.ConsumerMessage {
	t.Helper()
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama.NewConsumer: %v", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("ConsumePartition(%s, %d, oldest) with sarama %s: %v", topic, p, cfg.Version, err)
	}
	defer pc.AsyncClose()
	var got []*sarama.ConsumerMessage
	for len(got) < want {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case err := <-pc.Errors():
			t.Fatalf("partition consumer %s/%d after %d of %d messages: %v", topic, p, len(got), want, err)
		case <-ctx.Done():
			t.Fatalf("partition consumer %s/%d: got %d of %d messages before the deadline (high water mark %d)", topic, p, len(got), want, pc.HighWaterMarkOffset())
		}
	}
	if hwm := pc.HighWaterMarkOffset(); hwm != int64(want) {
		t.Errorf("partition %s/%d: high water mark %d after consuming, want %d", topic, p, hwm, want)
	}
	return got
}

// saramaCompare checks that got is exactly want, in order: offsets, keys,
// values, headers and timestamps.
func saramaCompare(t *testing.T, p int32, want []*saramaRecord, got []*sarama.ConsumerMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("partition %d: consumed %d messages, want %d", p, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Partition != p || g.Offset != w.offset {
			t.Fatalf("partition %d message %d: at %d/%d, want %d/%d", p, i, g.Partition, g.Offset, p, w.offset)
		}
		if !bytes.Equal(g.Key, w.key) {
			t.Fatalf("partition %d offset %d: key %q, want %q", p, g.Offset, g.Key, w.key)
		}
		if !bytes.Equal(g.Value, w.value) {
			t.Fatalf("partition %d offset %d: value differs\n got %q\nwant %q", p, g.Offset, g.Value, w.value)
		}
		if !g.Timestamp.Equal(w.ts) {
			t.Errorf("partition %d offset %d: timestamp %v, want %v (CreateTime)", p, g.Offset, g.Timestamp, w.ts)
		}
		if len(g.Headers) != len(w.headers) {
			t.Fatalf("partition %d offset %d: %d headers, want %d", p, g.Offset, len(g.Headers), len(w.headers))
		}
		for j, h := range w.headers {
			if !bytes.Equal(g.Headers[j].Key, h.Key) || !bytes.Equal(g.Headers[j].Value, h.Value) {
				t.Fatalf("partition %d offset %d header %d: %q=%q, want %q=%q", p, g.Offset, j, g.Headers[j].Key, g.Headers[j].Value, h.Key, h.Value)
			}
		}
	}
}

// TestSaramaSyncProducerKeyed sends 1000 keyed messages one at a time with a
// SyncProducer (acks=all) to a 3-partition topic made with
// ClusterAdmin.CreateTopic, then reads every partition back.
func TestSaramaSyncProducerKeyed(t *testing.T) {
	b := startBroker(t)
	for _, v := range saramaVersions {
		t.Run(v.String(), func(t *testing.T) {
			ctx := testContext(t, 60*time.Second)
			cfg := saramaConfig(v)
			topic := saramaTopic(t, "sarama-sync")
			const partitions = 3
			saramaCreateTopic(t, b.Addr, cfg, topic, partitions)

			producer, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
			if err != nil {
				t.Fatalf("NewSyncProducer: %v", err)
			}
			defer producer.Close()

			recs := saramaRecords(1000, 1)
			for i, r := range recs {
				if ctx.Err() != nil {
					t.Fatalf("deadline passed after %d of %d sends", i, len(recs))
				}
				p, off, err := producer.SendMessage(r.producerMessage(topic, i))
				if err != nil {
					t.Fatalf("SendMessage %d: %v", i, err)
				}
				r.partition, r.offset = p, off
			}

			byPart := saramaCheckOffsets(t, topic, recs, partitions)
			for p := int32(0); p < partitions; p++ {
				got := saramaConsumePartition(ctx, t, b.Addr, cfg, topic, p, len(byPart[p]))
				saramaCompare(t, p, byPart[p], got)
			}
		})
	}
}

// TestSaramaSyncProducerSendMessages sends a batch of messages to several
// partitions in one SendMessages call, so one Produce request carries
// batches for more than one partition.
func TestSaramaSyncProducerSendMessages(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	cfg := saramaConfig(sarama.V3_6_0_0)
	// Up to 100 messages per partition in one request; a half-full buffer
	// goes out after 5ms (without a frequency, sarama waits for a full one).
	cfg.Producer.Flush.Messages = 100
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	topic := saramaTopic(t, "sarama-batch")
	const partitions = 3
	saramaCreateTopic(t, b.Addr, cfg, topic, partitions)

	producer, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	recs := saramaRecords(1000, 2)
	for start := 0; start < len(recs); start += 250 {
		msgs := make([]*sarama.ProducerMessage, 0, 250)
		for i := start; i < start+250; i++ {
			msgs = append(msgs, recs[i].producerMessage(topic, i))
		}
		if err := saramaSendMessages(ctx, t, producer, msgs); err != nil {
			var perrs sarama.ProducerErrors
			if errors.As(err, &perrs) && len(perrs) > 0 {
				t.Fatalf("SendMessages [%d,%d): %d failed, first: %v", start, start+250, len(perrs), perrs[0].Err)
			}
			t.Fatalf("SendMessages [%d,%d): %v", start, start+250, err)
		}
		for _, m := range msgs {
			r := recs[m.Metadata.(int)]
			r.partition, r.offset = m.Partition, m.Offset
		}
	}
	byPart := saramaCheckOffsets(t, topic, recs, partitions)
	for p := int32(0); p < partitions; p++ {
		got := saramaConsumePartition(ctx, t, b.Addr, cfg, topic, p, len(byPart[p]))
		saramaCompare(t, p, byPart[p], got)
	}
}

// saramaSendMessages is SyncProducer.SendMessages bounded by ctx: sarama's
// call has no deadline of its own beyond its network timeouts.
func saramaSendMessages(ctx context.Context, t *testing.T, p sarama.SyncProducer, msgs []*sarama.ProducerMessage) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.SendMessages(msgs) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatalf("SendMessages of %d messages did not return before the deadline", len(msgs))
		return nil
	}
}

// saramaCodecs are the compression codecs sarama can produce with.
var saramaCodecs = []sarama.CompressionCodec{
	sarama.CompressionNone,
	sarama.CompressionGZIP,
	sarama.CompressionSnappy,
	sarama.CompressionLZ4,
	sarama.CompressionZSTD,
}

// TestSaramaAsyncProducerCompression produces 1000 keyed messages with an
// AsyncProducer in multi-record batches compressed with each codec, and
// reads them back with partition consumers, which must decompress what
// Gregor stored (Gregor keeps producer batches as they came).
func TestSaramaAsyncProducerCompression(t *testing.T) {
	b := startBroker(t)
	for _, v := range []sarama.KafkaVersion{sarama.V0_11_0_0, sarama.V2_8_0_0, sarama.V4_0_0_0} {
		for _, codec := range saramaCodecs {
			if codec == sarama.CompressionZSTD && !v.IsAtLeast(sarama.V2_1_0_0) {
				continue // sarama refuses zstd below Kafka 2.1 (Produce v7)
			}
			t.Run(v.String()+"/"+codec.String(), func(t *testing.T) {
				ctx := testContext(t, 60*time.Second)
				cfg := saramaConfig(v)
				cfg.Producer.Compression = codec
				cfg.Producer.Flush.Messages = 100
				cfg.Producer.Flush.Frequency = 5 * time.Millisecond
				// One request in flight per broker, so the order within a
				// partition is the send order even if a request is retried.
				cfg.Net.MaxOpenRequests = 1
				topic := saramaTopic(t, "sarama-async")
				const partitions = 3
				saramaCreateTopic(t, b.Addr, cfg, topic, partitions)

				producer, err := sarama.NewAsyncProducer([]string{b.Addr}, cfg)
				if err != nil {
					t.Fatalf("NewAsyncProducer: %v", err)
				}
				// Close drains Successes and Errors, so the producer's
				// goroutines end even when the test stops early.
				defer producer.Close()

				recs := saramaRecords(1000, int64(codec)+10)
				go func() {
					for i, r := range recs {
						select {
						case producer.Input() <- r.producerMessage(topic, i):
						case <-ctx.Done():
							return
						}
					}
				}()
				// Acks for one partition arrive in offset order; record them.
				lastOff := map[int32]int64{}
				for acked := 0; acked < len(recs); acked++ {
					select {
					case m := <-producer.Successes():
						r := recs[m.Metadata.(int)]
						r.partition, r.offset = m.Partition, m.Offset
						if prev, ok := lastOff[m.Partition]; ok && m.Offset <= prev {
							t.Fatalf("partition %d acked offset %d after %d", m.Partition, m.Offset, prev)
						}
						lastOff[m.Partition] = m.Offset
					case perr := <-producer.Errors():
						t.Fatalf("async produce (%s, %s) of record %v: %v", v, codec, perr.Msg.Metadata, perr.Err)
					case <-ctx.Done():
						t.Fatalf("only %d of %d records acknowledged before the deadline", acked, len(recs))
					}
				}
				byPart := saramaCheckOffsets(t, topic, recs, partitions)
				for p := int32(0); p < partitions; p++ {
					got := saramaConsumePartition(ctx, t, b.Addr, cfg, topic, p, len(byPart[p]))
					saramaCompare(t, p, byPart[p], got)
				}
			})
		}
	}
}

// TestSaramaConsumeFromMiddle starts partition consumers at an offset inside
// a compressed multi-record batch: the broker returns the whole batch and the
// client must skip the records before the requested offset, so the first
// message seen is exactly the one asked for.
func TestSaramaConsumeFromMiddle(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	cfg := saramaConfig(sarama.V2_8_0_0)
	cfg.Producer.Compression = sarama.CompressionLZ4
	cfg.Producer.Flush.Messages = 50
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	topic := saramaTopic(t, "sarama-mid")
	saramaCreateTopic(t, b.Addr, cfg, topic, 1)

	producer, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	recs := saramaRecords(200, 3)
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		msgs[i] = r.producerMessage(topic, i)
	}
	if err := saramaSendMessages(ctx, t, producer, msgs); err != nil {
		t.Fatalf("SendMessages: %v", err)
	}

	consumer, err := sarama.NewConsumer([]string{b.Addr}, cfg)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	for _, start := range []int64{1, 77, 199} {
		pc, err := consumer.ConsumePartition(topic, 0, start)
		if err != nil {
			t.Fatalf("ConsumePartition at %d: %v", start, err)
		}
		for want := start; want < int64(len(recs)); want++ {
			select {
			case m := <-pc.Messages():
				if m.Offset != want || !bytes.Equal(m.Value, recs[want].value) {
					t.Fatalf("consuming from %d: got offset %d value %.20q, want offset %d value %.20q", start, m.Offset, m.Value, want, recs[want].value)
				}
			case err := <-pc.Errors():
				t.Fatalf("consuming from %d: %v", start, err)
			case <-ctx.Done():
				t.Fatalf("consuming from %d: deadline before offset %d", start, want)
			}
		}
		pc.Close()
	}

	// An offset past the end is out of range: sarama reports it as an error.
	if _, err := consumer.ConsumePartition(topic, 0, int64(len(recs))+10); !errors.Is(err, sarama.ErrOffsetOutOfRange) {
		t.Fatalf("ConsumePartition past the end: err = %v, want %v", err, sarama.ErrOffsetOutOfRange)
	}
}
