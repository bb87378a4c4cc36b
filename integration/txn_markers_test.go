package integration

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txmBatch is an idempotent batch of values from producer pid at epoch,
// first sequence seq (idemNewBatch), with the transactional bit set when
// txn.
func txmBatch(pid int64, epoch int16, seq int32, txn bool, values ...string) []byte {
	b := idemNewBatch(pid, epoch, seq, values...).raw
	if txn {
		binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|0x10)
		fzFixCRC(b)
	}
	return b
}

// txmProduce sends one batch and returns its base offset, failing on an error.
func txmProduce(t *testing.T, raw *fzRaw, topic string, batch []byte) int64 {
	t.Helper()
	resp := raw.roundTrip(fzProduceRequest(9, fzProducePart{topic: topic, partition: 0, records: batch})).(*kmsg.ProduceResponse)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("produce: %s", fzErrCode(p.ErrorCode))
	}
	return p.BaseOffset
}

// txmMarker sends WriteTxnMarkers for one partition and returns its code.
func txmMarker(t *testing.T, raw *fzRaw, topic string, pid int64, epoch int16, commit bool) int16 {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, []int32{0}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp := raw.roundTrip(req).(*kmsg.WriteTxnMarkersResponse)
	return resp.Markers[0].Topics[0].Partitions[0].ErrorCode
}

func txmProducerID(t *testing.T, raw *fzRaw) int64 {
	t.Helper()
	id, _ := idemInitPID(t, raw, 4, -1, -1)
	return id
}

func txmValues(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

// TestTransactionMarkersAndReadCommitted drives the partition side of
// transactions with raw requests (transactional batches, WriteTxnMarkers
// as a coordinator would send them) and checks what real consumers see:
// read_committed franz-go stops at the last stable offset while a
// transaction is open, then drops the aborted transaction's records;
// read_uncommitted sees everything. It all holds after a kill -9.
func TestTransactionMarkersAndReadCommitted(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "txn-markers")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	raw := fzDial(t, p.Addr)
	a, b := txmProducerID(t, raw), txmProducerID(t, raw)

	txmProduce(t, raw, topic, fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("plain-0")})) // 0
	if off := txmProduce(t, raw, topic, txmBatch(a, 0, 0, true, "a-0", "a-1")); off != 1 {         // 1-2
		t.Fatalf("txn A at %d, want 1", off)
	}
	txmProduce(t, raw, topic, txmBatch(b, 0, 0, true, "b-0")) // 3
	txmProduce(t, raw, topic, txmBatch(a, 0, 2, true, "a-2")) // 4
	txmProduce(t, raw, topic, fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("plain-1")}))

	committedEnd := func() int64 {
		t.Helper()
		ends, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := ends.Lookup(topic, 0)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		return o.Offset
	}
	if got := committedEnd(); got != 1 {
		t.Fatalf("read_committed end offset %d with A open from 1, want 1", got)
	}
	// DescribeProducers shows the open transactions.
	described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	starts := map[int64]int64{}
	described.EachProducer(func(d kadm.DescribedProducer) { starts[d.ProducerID] = d.CurrentTxnStartOffset })
	if starts[a] != 1 || starts[b] != 3 {
		t.Fatalf("open transactions %v, want A from 1 and B from 3", starts)
	}
	// A read_committed consumer gets only what is below the LSO.
	rc := fzClient(t, p.Addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if got := txmValues(fzPoll(ctx, t, rc, 1)); !slices.Equal(got, []string{"plain-0"}) {
		t.Fatalf("read_committed before the markers: %v", got)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	if fs := rc.PollFetches(short); len(fs.Records()) != 0 {
		t.Fatalf("read_committed read past the open transactions: %v", txmValues(fs.Records()))
	}
	cancel()

	if code := txmMarker(t, raw, topic, a, 0, false); code != 0 { // abort A: 6
		t.Fatalf("abort marker: %s", fzErrCode(code))
	}
	if code := txmMarker(t, raw, topic, b, 0, true); code != 0 { // commit B: 7
		t.Fatalf("commit marker: %s", fzErrCode(code))
	}
	txmProduce(t, raw, topic, fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("plain-2")})) // 8
	// A marker from an older epoch than the partition has seen is refused.
	txmProduce(t, raw, topic, txmBatch(a, 1, 0, false, "a-new-epoch")) // 9
	if code := txmMarker(t, raw, topic, a, 0, false); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old-epoch marker: %s, want INVALID_PRODUCER_EPOCH", fzErrCode(code))
	}

	check := func(when string) {
		t.Helper()
		if got := committedEnd(); got != 10 {
			t.Fatalf("%s: read_committed end offset %d, want 10 (nothing open)", when, got)
		}
		committed := []string{"plain-0", "b-0", "plain-1", "plain-2", "a-new-epoch"}
		if got := txmValues(fzConsume(ctx, t, p.Addr, topic, len(committed), kgo.FetchIsolationLevel(kgo.ReadCommitted()))); !slices.Equal(got, committed) {
			t.Fatalf("%s: read_committed: %v, want %v", when, got, committed)
		}
		all := []string{"plain-0", "a-0", "a-1", "b-0", "a-2", "plain-1", "plain-2", "a-new-epoch"}
		if got := txmValues(fzConsume(ctx, t, p.Addr, topic, len(all))); !slices.Equal(got, all) {
			t.Fatalf("%s: read_uncommitted: %v, want %v", when, got, all)
		}
	}
	// The consumer that waited carries on past the markers.
	if got := txmValues(fzPoll(ctx, t, rc, 4)); !slices.Equal(got, []string{"b-0", "plain-1", "plain-2", "a-new-epoch"}) {
		t.Fatalf("read_committed after the markers: %v", got)
	}
	check("before the restart")
	p.Kill()
	p.Restart()
	check("after kill -9 and a restart")
	fzCheckLogs(t, p)
}
