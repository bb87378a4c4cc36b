package integration

// Produce and consume through segmentio/kafka-go: kafka.Writer (the
// negotiated-version protocol client) with every compression codec, read
// back by one kafka.Reader per partition without a GroupID (Gregor has no
// consumer groups yet); kafka.Conn's own produce and fetch paths; and a
// reader that waits on an empty partition until a message arrives.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// kafkagoTopic is a topic name unique to the running (sub)test.
func kafkagoTopic(t *testing.T, prefix string) string {
	t.Helper()
	r := strings.NewReplacer("/", "-", "_", "-", ".", "-")
	name := prefix + "-" + strings.ToLower(r.Replace(t.Name()))
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}

// kafkagoClient is a kafka.Client for the broker at addr.
func kafkagoClient(addr string) *kafka.Client {
	return &kafka.Client{
		Addr:    kafka.TCP(addr),
		Timeout: 15 * time.Second,
		Transport: &kafka.Transport{
			ClientID:    "gregor-it-kafkago",
			DialTimeout: 5 * time.Second,
		},
	}
}

// kafkagoCreateTopic creates topic with n partitions through
// kafka.Client.CreateTopics and fails the test on any error.
func kafkagoCreateTopic(ctx context.Context, t *testing.T, addr, topic string, n int) {
	t.Helper()
	resp, err := kafkagoClient(addr).CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: n, ReplicationFactor: 1}},
	})
	if err != nil {
		t.Fatalf("CreateTopics(%q, %d partitions): %v", topic, n, err)
	}
	if err := resp.Errors[topic]; err != nil {
		t.Fatalf("CreateTopics(%q, %d partitions): topic error %v", topic, n, err)
	}
}

// kafkagoMessages builds n keyed messages with binary values of varied
// length, headers on every fifth and millisecond timestamps.
func kafkagoMessages(n int, seed int64) []kafka.Message {
	rng := rand.New(rand.NewSource(seed))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		v := make([]byte, rng.Intn(400))
		rng.Read(v)
		v = append([]byte(fmt.Sprintf("value-%05d|%s|", i, strings.Repeat("kafka-go ", i%6))), v...)
		m := kafka.Message{
			Key:   []byte(fmt.Sprintf("key-%03d", i%53)),
			Value: v,
			Time:  base.Add(time.Duration(i) * time.Millisecond),
		}
		if i%5 == 0 {
			m.Headers = []kafka.Header{{Key: "idx", Value: []byte(fmt.Sprint(i))}, {Key: "nil-value", Value: nil}}
		}
		msgs[i] = m
	}
	return msgs
}

// kafkagoByPartition splits msgs by the partition kafka.Hash gives their keys
// among n partitions, keeping send order.
func kafkagoByPartition(msgs []kafka.Message, n int) map[int][]kafka.Message {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	out := map[int][]kafka.Message{}
	for _, m := range msgs {
		p := (&kafka.Hash{}).Balance(m, parts...)
		out[p] = append(out[p], m)
	}
	return out
}

// kafkagoReadPartition reads want messages from the start of partition p
// with a group-less kafka.Reader.
func kafkagoReadPartition(ctx context.Context, t *testing.T, addr, topic string, p, want int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   []string{addr},
		Topic:     topic,
		Partition: p,
		MinBytes:  1,
		MaxBytes:  4 << 20,
		MaxWait:   250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatalf("Reader.SetOffset(FirstOffset): %v", err)
	}
	got := make([]kafka.Message, 0, want)
	for len(got) < want {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reader %s/%d: after %d of %d messages: %v", topic, p, len(got), want, err)
		}
		got = append(got, m)
	}
	return got
}

// kafkagoCompare checks that got holds want in order at offsets 0..n-1.
func kafkagoCompare(t *testing.T, topic string, p int, want, got []kafka.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s/%d: read %d messages, want %d", topic, p, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Topic != topic || g.Partition != p || g.Offset != int64(i) {
			t.Fatalf("%s/%d message %d: at %s/%d offset %d, want offset %d", topic, p, i, g.Topic, g.Partition, g.Offset, i)
		}
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) {
			t.Fatalf("%s/%d offset %d: key %q value %.40q, want key %q value %.40q", topic, p, i, g.Key, g.Value, w.Key, w.Value)
		}
		if !g.Time.Equal(w.Time) {
			t.Errorf("%s/%d offset %d: time %v, want %v", topic, p, i, g.Time, w.Time)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("%s/%d offset %d: headers %v, want %v", topic, p, i, g.Headers, w.Headers)
		}
		for j, h := range w.Headers {
			if g.Headers[j].Key != h.Key || !bytes.Equal(g.Headers[j].Value, h.Value) {
				t.Fatalf("%s/%d offset %d header %d: %q=%q, want %q=%q", topic, p, i, j, g.Headers[j].Key, g.Headers[j].Value, h.Key, h.Value)
			}
		}
	}
}

// TestKafkaGoWriterCompression writes 1000 keyed messages with a kafka.Writer
// (Hash balancer, acks=all) in batches compressed with each codec, checks the
// offsets reported per batch, and reads every partition back.
func TestKafkaGoWriterCompression(t *testing.T) {
	b := startBroker(t)
	codecs := []struct {
		name  string
		codec kafka.Compression
	}{
		{"none", 0},
		{"gzip", kafka.Gzip},
		{"snappy", kafka.Snappy},
		{"lz4", kafka.Lz4},
		{"zstd", kafka.Zstd},
	}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			ctx := testContext(t, 60*time.Second)
			topic := kafkagoTopic(t, "kafkago-writer")
			const partitions = 3
			kafkagoCreateTopic(ctx, t, b.Addr, topic, partitions)

			var mu sync.Mutex
			acked := map[int][]kafka.Message{}
			var werrs []error
			w := &kafka.Writer{
				Addr:         kafka.TCP(b.Addr),
				Topic:        topic,
				Balancer:     &kafka.Hash{},
				RequiredAcks: kafka.RequireAll,
				Compression:  c.codec,
				BatchSize:    100,
				BatchTimeout: 5 * time.Millisecond,
				MaxAttempts:  3,
				WriteTimeout: 10 * time.Second,
				ReadTimeout:  10 * time.Second,
				Transport:    &kafka.Transport{ClientID: "gregor-it-kafkago", DialTimeout: 5 * time.Second},
				Completion: func(msgs []kafka.Message, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						werrs = append(werrs, err)
						return
					}
					for _, m := range msgs {
						acked[m.Partition] = append(acked[m.Partition], m)
					}
				},
			}
			defer w.Close()

			msgs := kafkagoMessages(1000, int64(len(c.name)))
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				var werr kafka.WriteErrors
				if errors.As(err, &werr) {
					t.Fatalf("WriteMessages (%s): %d of %d failed, e.g. %v", c.name, werr.Count(), len(msgs), kafkagoFirstErr(werr))
				}
				t.Fatalf("WriteMessages (%s): %v", c.name, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(werrs) > 0 {
				t.Fatalf("%d batches failed, first: %v", len(werrs), werrs[0])
			}

			want := kafkagoByPartition(msgs, partitions)
			if len(want) != partitions {
				t.Fatalf("53 keys hashed to only %d of %d partitions", len(want), partitions)
			}
			for p := 0; p < partitions; p++ {
				// The offsets the writer was told for each batch: dense from 0,
				// in the order it sent them.
				a := acked[p]
				sort.SliceStable(a, func(i, j int) bool { return a[i].Offset < a[j].Offset })
				if len(a) != len(want[p]) {
					t.Fatalf("partition %d: %d messages acknowledged, want %d", p, len(a), len(want[p]))
				}
				for i := range a {
					if a[i].Offset != int64(i) || !bytes.Equal(a[i].Value, want[p][i].Value) {
						t.Fatalf("partition %d: acked #%d at offset %d with value %.20q, want offset %d value %.20q", p, i, a[i].Offset, a[i].Value, i, want[p][i].Value)
					}
				}
				got := kafkagoReadPartition(ctx, t, b.Addr, topic, p, len(want[p]))
				kafkagoCompare(t, topic, p, want[p], got)
			}
		})
	}
}

func kafkagoFirstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestKafkaGoWriterAutoCreate writes to a topic that does not exist with
// AllowAutoTopicCreation: Metadata creates it with num.partitions (1).
func TestKafkaGoWriterAutoCreate(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	topic := kafkagoTopic(t, "kafkago-auto")
	w := &kafka.Writer{
		Addr:                   kafka.TCP(b.Addr),
		Topic:                  topic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		BatchTimeout:           5 * time.Millisecond,
		MaxAttempts:            10,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        500 * time.Millisecond,
	}
	defer w.Close()
	msgs := kafkagoMessages(20, 7)
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("WriteMessages to new topic %q with auto-creation: %v", topic, err)
	}
	md, err := kafkagoClient(b.Addr).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != 1 {
		t.Fatalf("auto-created %q: metadata %+v, want 1 partition (num.partitions default)", topic, md.Topics)
	}
	got := kafkagoReadPartition(ctx, t, b.Addr, topic, 0, len(msgs))
	kafkagoCompare(t, topic, 0, msgs, got)
}

// TestKafkaGoConnRoundTrip uses kafka.Conn's own request code (Produce v7,
// Fetch v10 or v5, ListOffsets v1, Metadata v6), which differs from the
// Writer's protocol package: plain and compressed writes, ReadBatch from an
// offset in the middle of a compressed batch, first/last offsets and seeks.
func TestKafkaGoConnRoundTrip(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	topic := kafkagoTopic(t, "kafkago-conn")
	kafkagoCreateTopic(ctx, t, b.Addr, topic, 2)

	conn, err := kafka.DialLeader(ctx, "tcp", b.Addr, topic, 1)
	if err != nil {
		t.Fatalf("DialLeader(%s, 1): %v", topic, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}

	if first, err := conn.ReadFirstOffset(); err != nil || first != 0 {
		t.Fatalf("empty partition: ReadFirstOffset = %d, %v; want 0", first, err)
	}
	if last, err := conn.ReadLastOffset(); err != nil || last != 0 {
		t.Fatalf("empty partition: ReadLastOffset = %d, %v; want 0", last, err)
	}

	msgs := kafkagoMessages(120, 11)
	if _, err := conn.WriteMessages(msgs[:40]...); err != nil {
		t.Fatalf("Conn.WriteMessages: %v", err)
	}
	if _, err := conn.WriteCompressedMessages(kafka.Snappy.Codec(), msgs[40:80]...); err != nil {
		t.Fatalf("Conn.WriteCompressedMessages(snappy): %v", err)
	}
	if _, err := conn.WriteCompressedMessages(kafka.Zstd.Codec(), msgs[80:]...); err != nil {
		t.Fatalf("Conn.WriteCompressedMessages(zstd): %v", err)
	}
	first, last, err := conn.ReadOffsets()
	if err != nil || first != 0 || last != int64(len(msgs)) {
		t.Fatalf("ReadOffsets = %d, %d, %v; want 0, %d", first, last, err, len(msgs))
	}
	// ListOffsets by time: the message at index 57 has timestamp base+57ms.
	if off, err := conn.ReadOffset(msgs[57].Time); err != nil || off != 57 {
		t.Errorf("ReadOffset(time of message 57) = %d, %v; want 57", off, err)
	}

	for _, start := range []int64{0, 55, 100} {
		if _, err := conn.Seek(start, kafka.SeekAbsolute); err != nil {
			t.Fatalf("Seek(%d): %v", start, err)
		}
		var got []kafka.Message
		for len(got) < len(msgs)-int(start) {
			batch := conn.ReadBatch(1, 1<<20)
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				got = append(got, m)
			}
			if err := batch.Close(); err != nil {
				t.Fatalf("reading from %d after %d messages: %v", start, len(got), err)
			}
		}
		for i, g := range got {
			w := msgs[int(start)+i]
			if g.Offset != start+int64(i) || g.Partition != 1 || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) {
				t.Fatalf("from %d, message %d: partition %d offset %d key %q value %.20q; want partition 1 offset %d key %q value %.20q",
					start, i, g.Partition, g.Offset, g.Key, g.Value, start+int64(i), w.Key, w.Value)
			}
		}
	}

	// Partition 0 was never written.
	conn0, err := kafka.DialLeader(ctx, "tcp", b.Addr, topic, 0)
	if err != nil {
		t.Fatalf("DialLeader(%s, 0): %v", topic, err)
	}
	defer conn0.Close()
	if first, last, err := conn0.ReadOffsets(); err != nil || first != 0 || last != 0 {
		t.Errorf("partition 0: ReadOffsets = %d, %d, %v; want 0, 0", first, last, err)
	}
}

// TestKafkaGoReaderWaitsForData starts a reader on an empty partition, lets
// it long-poll at least once (so its Fetch found nothing and it is waiting),
// then writes: the blocked ReadMessage must return the new message.
func TestKafkaGoReaderWaitsForData(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	topic := kafkagoTopic(t, "kafkago-wait")
	kafkagoCreateTopic(ctx, t, b.Addr, topic, 1)

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   []string{b.Addr},
		Topic:     topic,
		Partition: 0,
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   500 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatalf("SetOffset: %v", err)
	}

	type result struct {
		m   kafka.Message
		err error
	}
	readCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results := make(chan result, 2)
	go func() {
		for i := 0; i < 2; i++ {
			m, err := r.ReadMessage(readCtx)
			results <- result{m, err}
			if err != nil {
				return
			}
		}
	}()

	// Wait until the reader has issued at least two fetches: the first came
	// back empty and it is polling again.
	var fetches int64
	deadline := time.Now().Add(15 * time.Second)
	for fetches < 2 {
		fetches += r.Stats().Fetches
		select {
		case res := <-results:
			t.Fatalf("ReadMessage on an empty partition returned before any write: %+v, %v", res.m, res.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader made %d fetches in 15s on an empty partition, want >= 2", fetches)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a correctness wait
	}

	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	for i, v := range []string{"late arrival", "second arrival"} {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte(v)}); err != nil {
			t.Fatalf("WriteMessages: %v", err)
		}
		select {
		case res := <-results:
			if res.err != nil {
				t.Fatalf("blocked ReadMessage: %v", res.err)
			}
			if string(res.m.Value) != v || res.m.Offset != int64(i) {
				t.Fatalf("blocked ReadMessage got %q at offset %d, want %q at %d", res.m.Value, res.m.Offset, v, i)
			}
		case <-ctx.Done():
			t.Fatalf("blocked reader did not get message %d (%q) before the deadline", i, v)
		}
	}
}

// TestKafkaGoTopicLimits: a batch over the topic's max.message.bytes is
// refused with MESSAGE_TOO_LARGE (and nothing is stored); a reader whose
// MaxBytes is smaller than one message still reads it, since Fetch returns
// the first batch whole (KIP-74).
func TestKafkaGoTopicLimits(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	topic := kafkagoTopic(t, "kafkago-limits")
	resp, err := kafkagoClient(b.Addr).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "8192"}},
	}}})
	if err != nil || resp.Errors[topic] != nil {
		t.Fatalf("CreateTopics: %v %v", err, resp.Errors)
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, MaxAttempts: 1}
	defer w.Close()

	err = w.WriteMessages(ctx, kafka.Message{Value: bytes.Repeat([]byte("x"), 20000)})
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != 1 || !errors.Is(werrs[0], kafka.MessageSizeTooLarge) {
		t.Fatalf("20000-byte message with max.message.bytes=8192: err = %v, want MessageSizeTooLarge", err)
	}

	var want []kafka.Message
	for i := 0; i < 4; i++ {
		want = append(want, kafka.Message{Key: []byte{byte('a' + i)}, Value: bytes.Repeat([]byte{byte('0' + i)}, 6000), Time: time.Now().Truncate(time.Millisecond)})
		if err := w.WriteMessages(ctx, want[i]); err != nil {
			t.Fatalf("6000-byte message %d: %v", i, err)
		}
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   []string{b.Addr},
		Topic:     topic,
		Partition: 0,
		MinBytes:  1,
		MaxBytes:  1000, // smaller than any one message
		MaxWait:   250 * time.Millisecond,
	})
	defer r.Close()
	var got []kafka.Message
	for len(got) < len(want) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reader with MaxBytes 1000 after %d of %d 6000-byte messages: %v", len(got), len(want), err)
		}
		got = append(got, m)
	}
	kafkagoCompare(t, topic, 0, want, got)
}
