package integration

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
)

// idemProducers returns the producers DescribeProducers reports on
// partition 0 of topic.
func idemProducers(t *testing.T, adm *kadm.Client, topic string) []kadm.DescribedProducer {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []kadm.DescribedProducer
	described.EachProducer(func(d kadm.DescribedProducer) { out = append(out, d) })
	return out
}

// TestIdempotentSaramaAndKcat: sarama (Producer.Idempotent) and
// librdkafka through kcat (enable.idempotence=true) get producer ids from
// InitProducerId and write sequence-numbered batches that Gregor accepts
// in order: the partition's producer state ends at the last record's
// sequence number, and every record is there once.
func TestIdempotentSaramaAndKcat(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, p.Addr)

	for _, v := range []sarama.KafkaVersion{sarama.V2_8_0_0, sarama.V4_0_0_0} {
		t.Run("sarama-"+v.String(), func(t *testing.T) {
			topic := fzTopic(t, "idem-sarama")
			fzCreateTopic(ctx, t, adm, topic, 1, nil)
			cfg := saramaConfig(v)
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.Partitioner = sarama.NewManualPartitioner
			prod, err := sarama.NewSyncProducer([]string{p.Addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			const n = 150
			var msgs []*sarama.ProducerMessage
			for i := range n {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(strconv.Itoa(i))})
			}
			if err := prod.SendMessages(msgs[:n/2]); err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs[n/2:] {
				if _, _, err := prod.SendMessage(m); err != nil {
					t.Fatal(err)
				}
			}
			ps := idemProducers(t, adm, topic)
			if len(ps) != 1 || ps[0].ProducerID < 0 || ps[0].LastSequence != n-1 {
				t.Fatalf("producer state %+v, want one producer at sequence %d", ps, n-1)
			}
			got := fzConsumePartitionTo(ctx, t, p.Addr, topic, 0, n)
			seen := map[string]bool{}
			for _, r := range got {
				if seen[string(r.Value)] {
					t.Fatalf("value %q twice", r.Value)
				}
				seen[string(r.Value)] = true
			}
			if len(seen) != n {
				t.Fatalf("%d distinct values, want %d", len(seen), n)
			}
		})
	}

	t.Run("kcat", func(t *testing.T) {
		topic := fzTopic(t, "idem-kcat")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		var lines []string
		for i := range 100 {
			lines = append(lines, fmt.Sprintf("line-%d", i))
		}
		kcatProduce(ctx, t, p.Addr, topic, lines, "-p", "0", "-X", "enable.idempotence=true")
		ps := idemProducers(t, adm, topic)
		if len(ps) != 1 || ps[0].ProducerID < 0 || ps[0].LastSequence != 99 {
			t.Fatalf("producer state %+v, want one producer at sequence 99", ps)
		}
		if got := fzConsumePartitionTo(ctx, t, p.Addr, topic, 0, 100); string(got[99].Value) != "line-99" {
			t.Fatalf("last record %q", got[99].Value)
		}
	})
	fzCheckLogs(t, p)
}
