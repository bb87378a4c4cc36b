package integration

// What sarama sees across broker restarts, and topic configs Gregor enforces
// (message.timestamp.type, max.message.bytes, segment.bytes) as a sarama
// application meets them.

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaProduceAll sends recs (indexes from base) with a SyncProducer in
// chunks of 50 and records where each landed.
func saramaProduceAll(t *testing.T, addr string, cfg *sarama.Config, topic string, recs []*saramaRecord, base int) {
	t.Helper()
	ctx := testContext(t, 60*time.Second)
	producer, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	for start := 0; start < len(recs); start += 50 {
		end := min(start+50, len(recs))
		msgs := make([]*sarama.ProducerMessage, 0, end-start)
		for i := start; i < end; i++ {
			msgs = append(msgs, recs[i].producerMessage(topic, base+i))
		}
		if err := saramaSendMessages(ctx, t, producer, msgs); err != nil {
			t.Fatalf("SendMessages [%d,%d): %v", base+start, base+end, err)
		}
		for _, m := range msgs {
			r := recs[m.Metadata.(int)-base]
			r.partition, r.offset = m.Partition, m.Offset
		}
	}
}

// saramaVerifyTopic reads every partition of topic from the start and
// compares with byPart, and checks OffsetNewest of each partition.
func saramaVerifyTopic(t *testing.T, addr string, cfg *sarama.Config, topic string, byPart map[int32][]*saramaRecord, partitions int32) {
	t.Helper()
	ctx := testContext(t, 60*time.Second)
	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer client.Close()
	for p := int32(0); p < partitions; p++ {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil || newest != int64(len(byPart[p])) {
			t.Fatalf("partition %d: newest offset %d, %v; want %d", p, newest, err, len(byPart[p]))
		}
		got := saramaConsumePartition(ctx, t, addr, cfg, topic, p, len(byPart[p]))
		saramaCompare(t, p, byPart[p], got)
	}
}

// TestSaramaDataSurvivesRestart writes compressed batches into small
// segments (segment.bytes=4096, so the log has many), kills the broker with
// SIGKILL, restarts it and reads everything back, from the start and from
// the middle; writes more, which must continue the offsets; then stops it
// cleanly with SIGTERM and reads everything again.
func TestSaramaDataSurvivesRestart(t *testing.T) {
	b := startBroker(t)
	cfg := saramaConfig(sarama.V2_8_0_0)
	cfg.Producer.Compression = sarama.CompressionSnappy
	cfg.Producer.Flush.Messages = 20
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	topic := saramaTopic(t, "sarama-restart")
	const partitions = 3
	segment := "4096"
	admin := saramaAdmin(t, b.Addr, cfg)
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: map[string]*string{"segment.bytes": &segment}}, false); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}

	first := saramaRecords(600, 21)
	saramaProduceAll(t, b.Addr, cfg, topic, first, 0)
	byPart := saramaCheckOffsets(t, topic, first, partitions)

	b.Kill()
	b.Restart()
	saramaVerifyTopic(t, b.Addr, cfg, topic, byPart, partitions)

	// Consume from the middle of each partition: the offset index must find
	// the right segment and batch after recovery.
	ctx := testContext(t, 60*time.Second)
	consumer, err := sarama.NewConsumer([]string{b.Addr}, cfg)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	for p := int32(0); p < partitions; p++ {
		for _, off := range []int64{int64(len(byPart[p]) / 3), int64(len(byPart[p]) - 1)} {
			pc, err := consumer.ConsumePartition(topic, p, off)
			if err != nil {
				t.Fatalf("ConsumePartition(%d, %d) after restart: %v", p, off, err)
			}
			select {
			case m := <-pc.Messages():
				if m.Offset != off || !bytes.Equal(m.Value, byPart[p][off].value) {
					t.Fatalf("partition %d from %d after restart: first message at %d value %.20q, want %.20q", p, off, m.Offset, m.Value, byPart[p][off].value)
				}
			case err := <-pc.Errors():
				t.Fatalf("partition %d from %d after restart: %v", p, off, err)
			case <-ctx.Done():
				t.Fatalf("partition %d from %d after restart: no message before the deadline", p, off)
			}
			pc.Close()
		}
	}
	consumer.Close()

	// More writes continue each partition's offsets.
	second := saramaRecords(300, 22)
	saramaProduceAll(t, b.Addr, cfg, topic, second, len(first))
	all := append(append([]*saramaRecord{}, first...), second...)
	byPart = saramaCheckOffsets(t, topic, all, partitions)

	b.Stop()
	if code := b.ExitCode(); code != 0 {
		t.Errorf("gregor exited with code %d on SIGTERM, want 0\n%s", code, saramaTail(b.Logs(), 40))
	}
	b.Restart()
	saramaVerifyTopic(t, b.Addr, cfg, topic, byPart, partitions)
}

// saramaTail returns the last n lines of s.
func saramaTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestSaramaTopicConfigs: message.timestamp.type=LogAppendTime replaces the
// producer's timestamps with the broker's clock, and max.message.bytes
// rejects larger batches with MESSAGE_TOO_LARGE while smaller ones pass.
func TestSaramaTopicConfigs(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	cfg := saramaConfig(sarama.V3_6_0_0)
	admin := saramaAdmin(t, b.Addr, cfg)
	producer, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()

	t.Run("LogAppendTime", func(t *testing.T) {
		topic := saramaTopic(t, "sarama-lat")
		lat := "LogAppendTime"
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"message.timestamp.type": &lat}}, false); err != nil {
			t.Fatalf("CreateTopic: %v", err)
		}
		old := time.Now().Add(-48 * time.Hour).Truncate(time.Millisecond)
		before := time.Now().Add(-time.Second)
		for i := 0; i < 3; i++ {
			if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("stamped"), Timestamp: old}); err != nil {
				t.Fatalf("SendMessage: %v", err)
			}
		}
		after := time.Now().Add(time.Second)
		for _, m := range saramaConsumePartition(ctx, t, b.Addr, cfg, topic, 0, 3) {
			if m.Timestamp.Before(before) || m.Timestamp.After(after) {
				t.Errorf("offset %d: timestamp %v, want the broker's append time in [%v, %v] (producer sent %v)", m.Offset, m.Timestamp, before, after, old)
			}
		}
	})

	t.Run("MaxMessageBytes", func(t *testing.T) {
		topic := saramaTopic(t, "sarama-maxbytes")
		limit := "2048"
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"max.message.bytes": &limit}}, false); err != nil {
			t.Fatalf("CreateTopic: %v", err)
		}
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(bytes.Repeat([]byte("x"), 4000))})
		if !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
			t.Errorf("4000-byte message to a topic with max.message.bytes=2048: err = %v, want %v", err, sarama.ErrMessageSizeTooLarge)
		}
		p, off, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(bytes.Repeat([]byte("y"), 1000))})
		if err != nil || p != 0 || off != 0 {
			t.Fatalf("1000-byte message after the rejected one: partition %d offset %d err %v; want 0, 0, nil", p, off, err)
		}
	})

	t.Run("SmallFetchSize", func(t *testing.T) {
		// A consumer whose fetch size is smaller than one batch still makes
		// progress: Fetch v3+ returns the first batch whole (KIP-74).
		topic := saramaTopic(t, "sarama-smallfetch")
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
			t.Fatalf("CreateTopic: %v", err)
		}
		var want []*saramaRecord
		for i := 0; i < 5; i++ {
			r := &saramaRecord{key: []byte{byte('a' + i)}, value: bytes.Repeat([]byte{byte('0' + i)}, 5000), ts: time.Now().Truncate(time.Millisecond), offset: int64(i)}
			if _, _, err := producer.SendMessage(r.producerMessage(topic, i)); err != nil {
				t.Fatalf("SendMessage: %v", err)
			}
			want = append(want, r)
		}
		ccfg := saramaConfig(sarama.V3_6_0_0)
		ccfg.Consumer.Fetch.Min = 1
		ccfg.Consumer.Fetch.Default = 512
		ccfg.Consumer.Fetch.Max = 0
		saramaCompare(t, 0, want, saramaConsumePartition(ctx, t, b.Addr, ccfg, topic, 0, len(want)))
	})
}
