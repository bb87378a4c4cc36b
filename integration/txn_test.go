package integration

// Transactions end to end with franz-go's transactional producer: the
// coordinator (FindCoordinator type 1, InitProducerId, AddPartitionsToTxn,
// EndTxn, markers), read_committed and read_uncommitted consumers,
// fencing of an older producer, and the transaction timeout.

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnProducer is a franz-go transactional producer for id.
func txnProducer(t *testing.T, addr, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return fzClient(t, addr, append([]kgo.Opt{kgo.TransactionalID(id), kgo.TransactionTimeout(30 * time.Second)}, opts...)...)
}

// txnRun produces values to topic in one transaction and commits or
// aborts it.
func txnRun(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("BeginTransaction: %v", err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("EndTransaction(commit=%v): %v", commit, err)
	}
}

// txnConsumeAll reads topic partition 0 from the start up to its end
// offset with the given isolation level and returns the values.
func txnConsumeAll(ctx context.Context, t *testing.T, addr, topic string, end int64, iso kgo.IsolationLevel) []string {
	t.Helper()
	cl := fzClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords())
	var out []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("fetch: %v", e.Err)
			}
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out = append(out, string(r.Value))
			}
			if r.Offset >= end-1 {
				done = true
			}
		})
		if done {
			return out
		}
	}
	t.Fatalf("consuming %s to offset %d (%v): timed out with %v", topic, end, iso, out)
	return nil
}

func TestTxnCommitAbort(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 2*time.Minute)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "txn")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)

	cl := txnProducer(t, p.Addr, "txn-"+topic)
	txnRun(ctx, t, cl, topic, true, "c1", "c2")
	txnRun(ctx, t, cl, topic, false, "a1", "a2")
	txnRun(ctx, t, cl, topic, true, "c3")

	end := fzEndOffsets(ctx, t, adm, topic)[0]
	// 5 records and 3 markers.
	if end != 8 {
		t.Fatalf("end offset %d, want 8 (5 records, 3 markers)", end)
	}
	if got := txnConsumeAll(ctx, t, p.Addr, topic, end, kgo.ReadCommitted()); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("read_committed consumer got %v, want [c1 c2 c3]", got)
	}
	if got := txnConsumeAll(ctx, t, p.Addr, topic, end, kgo.ReadUncommitted()); !slices.Equal(got, []string{"c1", "c2", "a1", "a2", "c3"}) {
		t.Fatalf("read_uncommitted consumer got %v, want every record", got)
	}

	// kadm sees the transactional id.
	described, err := adm.DescribeTransactions(ctx, "txn-"+topic)
	if err != nil {
		t.Fatalf("DescribeTransactions: %v", err)
	}
	d, ok := described["txn-"+topic]
	if !ok || d.Err != nil || d.State != "CompleteCommit" || d.ProducerID < 0 {
		t.Fatalf("DescribeTransactions: %+v", described)
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"CompleteCommit"})
	if err != nil {
		t.Fatalf("ListTransactions: %v", err)
	}
	if _, ok := listed["txn-"+topic]; !ok {
		t.Fatalf("ListTransactions(CompleteCommit) = %+v, want txn-%s", listed, topic)
	}
	fzCheckLogs(t, p)
}

func TestTxnZombieFenced(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 2*time.Minute)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "txnfence")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	id := "fence-" + topic

	old := txnProducer(t, p.Addr, id)
	if err := old.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := old.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("zombie-1")}).FirstErr(); err != nil {
		t.Fatalf("zombie produce: %v", err)
	}
	// A new producer of the same id fences the old one and aborts its
	// open transaction.
	fresh := txnProducer(t, p.Addr, id)
	txnRun(ctx, t, fresh, topic, true, "fresh-1")

	err := old.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("zombie-2")}).FirstErr()
	if err == nil {
		err = old.EndTransaction(ctx, kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie after fencing: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	end := fzEndOffsets(ctx, t, adm, topic)[0]
	if got := txnConsumeAll(ctx, t, p.Addr, topic, end, kgo.ReadCommitted()); !slices.Equal(got, []string{"fresh-1"}) {
		t.Fatalf("read_committed consumer got %v, want [fresh-1]", got)
	}
	fzCheckLogs(t, p)
}

func TestTxnTimeoutAborts(t *testing.T) {
	p := startBroker(t, "--config", "transaction.abort.timed.out.transaction.cleanup.interval.ms=200")
	ctx := testContext(t, 2*time.Minute)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "txntimeout")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)

	cl := txnProducer(t, p.Addr, "timeout-"+topic, kgo.TransactionTimeout(2*time.Second))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("open-" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	// The transaction is left open: the last stable offset (what
	// read_committed ListOffsets answers) stays at its first record until
	// the coordinator aborts it.
	lso := func() int64 {
		offs, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			t.Fatalf("ListCommittedOffsets: %v", err)
		}
		o, _ := offs.Lookup(topic, 0)
		return o.Offset
	}
	if got := lso(); got != 0 {
		t.Fatalf("last stable offset %d with the transaction open, want 0", got)
	}
	fzWaitFor(t, 30*time.Second, "the open transaction aborted by its timeout", func() error {
		d, err := adm.DescribeTransactions(ctx, "timeout-"+topic)
		if err != nil {
			return err
		}
		if s := d["timeout-"+topic].State; s != "CompleteAbort" {
			return errors.New("state " + s)
		}
		return nil
	})
	end := fzEndOffsets(ctx, t, adm, topic)[0]
	if end != 4 {
		t.Fatalf("end offset %d, want 4 (3 records and the abort marker)", end)
	}
	if got := lso(); got != 4 {
		t.Fatalf("last stable offset %d after the abort, want 4", got)
	}
	if got := txnConsumeAll(ctx, t, p.Addr, topic, end, kgo.ReadCommitted()); len(got) != 0 {
		t.Fatalf("read_committed consumer got %v after the abort, want nothing", got)
	}
	// The producer was fenced by the abort's epoch bump.
	err := cl.EndTransaction(ctx, kgo.TryCommit)
	if err == nil {
		t.Fatalf("commit after the timeout abort succeeded")
	}
	fzCheckLogs(t, p)
}

// TestTxnProduceVerified: a transactional batch for a partition the
// producer's transaction did not add (a hanging transaction in the
// making, KIP-890) is refused with INVALID_TXN_STATE; once
// AddPartitionsToTxn added it, the same batch is taken.
func TestTxnProduceVerified(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, time.Minute)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "txnverify")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	raw := fzDial(t, p.Addr)
	id := "verify-" + topic

	init := kmsg.NewPtrInitProducerIDRequest()
	init.SetVersion(4)
	init.TransactionalID, init.TransactionTimeoutMillis = &id, 60000
	var ir *kmsg.InitProducerIDResponse
	fzWaitFor(t, 30*time.Second, "InitProducerId with a transactional id", func() error {
		ir = raw.roundTrip(init).(*kmsg.InitProducerIDResponse)
		return kerr.ErrorForCode(ir.ErrorCode)
	})
	produce := func() int16 {
		req := fzProduceRequest(9, fzProducePart{topic: topic, partition: 0, records: txmBatch(ir.ProducerID, ir.ProducerEpoch, 0, true, "v")})
		req.TransactionID = &id
		return raw.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	if code := produce(); code != kerr.InvalidTxnState.Code {
		t.Fatalf("transactional produce to a partition not in the transaction: %s, want INVALID_TXN_STATE", fzErrCode(code))
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.SetVersion(3)
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, ir.ProducerID, ir.ProducerEpoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = topic, []int32{0}
	add.Topics = append(add.Topics, at)
	if code := raw.roundTrip(add).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("AddPartitionsToTxn: %s", fzErrCode(code))
	}
	if code := produce(); code != 0 {
		t.Fatalf("transactional produce after AddPartitionsToTxn: %s", fzErrCode(code))
	}
	// The open transaction holds the last stable offset at its batch.
	offs, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup(topic, 0); o.Offset != 0 {
		t.Fatalf("last stable offset %d with the transaction open, want 0", o.Offset)
	}
}
