package integration

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDescribeProducers: kadm's DescribeProducers reports the idempotent
// producer franz-go used (its id and epoch from InitProducerId, its last
// sequence number per partition), and a second producer gets another id.
func TestDescribeProducers(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "describe-producers")
	fzCreateTopic(ctx, t, adm, topic, 2, nil)

	first := fzClient(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 7 { // one batch per record: 7 sequence numbers on partition 1
		fzProduceSync(ctx, t, first, &kgo.Record{Partition: 1, Value: []byte(strconv.Itoa(i))})
	}
	id, epoch, err := first.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := fzClient(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fzProduceSync(ctx, t, second, &kgo.Record{Partition: 1, Value: []byte("other")})
	id2, _, err := second.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id || id < 0 || id2 < 0 {
		t.Fatalf("producer ids %d and %d: want two distinct ids", id, id2)
	}

	described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}, 1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]kadm.DescribedProducer{}
	described.EachProducer(func(d kadm.DescribedProducer) {
		got[fmt.Sprintf("%d/%d", d.Partition, d.ProducerID)] = d
	})
	if len(got) != 2 {
		t.Fatalf("described producers %v, want two on partition 1", got)
	}
	d, ok := got[fmt.Sprintf("1/%d", id)]
	if !ok || d.ProducerEpoch != epoch || d.LastSequence != 6 || d.CurrentTxnStartOffset != -1 || d.LastTimestamp <= 0 {
		t.Errorf("first producer on partition 1: %+v (found %v), want epoch %d, last sequence 6, no transaction", d, ok, epoch)
	}
	if d := got[fmt.Sprintf("1/%d", id2)]; d.LastSequence != 0 {
		t.Errorf("second producer: %+v, want last sequence 0", d)
	}
	fzCheckLogs(t, p)
}
