package integration

// sarama's transactional producer against Gregor's transaction
// coordinator: commits and aborts (records and offsets committed in the
// transaction with AddOffsetsToTxn), checked with franz-go read_committed
// and read_uncommitted consumers and kadm; a second sarama producer of the
// same transactional id fences the first.

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTxnSaramaProducer(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)

	for _, v := range []sarama.KafkaVersion{sarama.V2_6_0_0, sarama.V4_0_0_0} {
		t.Run(v.String(), func(t *testing.T) {
			topic, group := fzTopic(t, "txsarama"), fzTopic(t, "txsarama-g")
			id := "txsarama-" + topic
			fzCreateTopic(ctx, t, adm, topic, 2, nil)
			newProducer := func() sarama.SyncProducer {
				t.Helper()
				cfg := saramaConfig(v)
				cfg.Producer.Idempotent = true
				cfg.Net.MaxOpenRequests = 1
				cfg.Producer.Partitioner = sarama.NewManualPartitioner
				cfg.Producer.Transaction.ID = id
				cfg.Producer.Transaction.Timeout = 30 * time.Second
				cfg.Producer.Transaction.Retry.Max = 50
				cfg.Producer.Transaction.Retry.Backoff = 100 * time.Millisecond
				prod, err := sarama.NewSyncProducer([]string{p.Addr}, cfg)
				if err != nil {
					t.Fatalf("sarama transactional producer (%s): %v", v, err)
				}
				t.Cleanup(func() { prod.Close() })
				if !prod.IsTransactional() {
					t.Fatalf("producer is not transactional")
				}
				return prod
			}
			msgs := func(vals ...string) []*sarama.ProducerMessage {
				var out []*sarama.ProducerMessage
				for i, val := range vals {
					out = append(out, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Value: sarama.StringEncoder(val)})
				}
				return out
			}
			offsets := func(o int64) map[string][]*sarama.PartitionOffsetMetadata {
				return map[string][]*sarama.PartitionOffsetMetadata{topic: {{Partition: 0, Offset: o, LeaderEpoch: -1}}}
			}
			prod := newProducer()
			run := func(commit bool, offset int64, vals ...string) {
				t.Helper()
				if err := prod.BeginTxn(); err != nil {
					t.Fatalf("BeginTxn: %v", err)
				}
				if err := prod.SendMessages(msgs(vals...)); err != nil {
					t.Fatalf("SendMessages %v: %v", vals, err)
				}
				if offset >= 0 {
					if err := prod.AddOffsetsToTxn(offsets(offset), group); err != nil {
						t.Fatalf("AddOffsetsToTxn: %v", err)
					}
				}
				var err error
				if commit {
					err = prod.CommitTxn()
				} else {
					err = prod.AbortTxn()
				}
				if err != nil {
					t.Fatalf("end transaction (commit %v): %v", commit, err)
				}
				if s := prod.TxnStatus(); s&sarama.ProducerTxnFlagReady == 0 {
					t.Fatalf("transaction status %v after ending, want ready", s)
				}
			}
			run(true, 3, "c1", "c2", "c3", "c4")
			run(false, 9, "a1", "a2", "a3", "a4")
			run(true, -1, "c5", "c6")

			// The group's offset is the committed transaction's, not the
			// aborted one's.
			fzWaitFor(t, 20*time.Second, "the committed offset", func() error {
				if got := grpCommitted(ctx, t, adm, group, topic); got[0] != 3 {
					return fmt.Errorf("committed %v, want {0:3}", got)
				}
				return nil
			})
			seeds := []string{p.Addr}
			byPart := txxReadAll(ctx, t, seeds, topic, kgo.ReadCommitted(), 30*time.Second)
			if got, want := txxValues(byPart), []string{"c1", "c3", "c5", "c2", "c4", "c6"}; !slices.Equal(got, want) {
				t.Fatalf("read_committed consumer got %v (partition 0, then 1), want %v", got, want)
			}
			all := txxValues(txxReadAll(ctx, t, seeds, topic, kgo.ReadUncommitted(), 30*time.Second))
			if want := []string{"c1", "c3", "a1", "a3", "c5", "c2", "c4", "a2", "a4", "c6"}; !slices.Equal(all, want) {
				t.Fatalf("read_uncommitted consumer got %v, want %v", all, want)
			}
			d := txxWaitState(ctx, t, adm, id, "CompleteCommit", 20*time.Second)

			// A second producer of the id fences the first.
			fresh := newProducer()
			if d2, err := txxDescribe(ctx, adm, id); err != nil || d2.ProducerID != d.ProducerID || d2.ProducerEpoch <= d.ProducerEpoch {
				t.Fatalf("after the second producer's InitProducerId: %+v %v, want producer %d above epoch %d", d2, err, d.ProducerID, d.ProducerEpoch)
			}
			var zombieErr error
			if zombieErr = prod.BeginTxn(); zombieErr == nil {
				if _, _, zombieErr = prod.SendMessage(msgs("zombie")[0]); zombieErr == nil {
					zombieErr = prod.CommitTxn()
				}
			}
			if !errors.Is(zombieErr, sarama.ErrProducerFenced) && !errors.Is(zombieErr, sarama.ErrInvalidProducerEpoch) {
				t.Fatalf("the fenced producer: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", zombieErr)
			}
			t.Logf("fenced producer: %v", zombieErr)
			prod = fresh
			run(true, 12, "c7")
			fzWaitFor(t, 20*time.Second, "the new producer's offset", func() error {
				if got := grpCommitted(ctx, t, adm, group, topic); got[0] != 12 {
					return fmt.Errorf("committed %v, want {0:12}", got)
				}
				return nil
			})
			byPart = txxReadAll(ctx, t, seeds, topic, kgo.ReadCommitted(), 30*time.Second)
			if got, want := txxValues(byPart), []string{"c1", "c3", "c5", "c7", "c2", "c4", "c6"}; !slices.Equal(got, want) {
				t.Fatalf("read_committed consumer at the end got %v, want %v", got, want)
			}
		})
	}
	fzCheckLogs(t, p)
}
