package integration

// Transaction state survives a kill -9 of a single broker: it is replayed
// from __transaction_state on restart, so an open transaction is still
// open (same producer id, epoch, partitions and start time) and can be
// committed by its producer, or aborted by a new producer of its id that
// fences the old one; a transaction's timeout still runs from its start;
// ended transactions keep their producer id.

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txrProduce produces values to partition 0 of topic in cl's open
// transaction.
func txrProduce(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s to %s: %v", v, topic, err)
		}
	}
}

// txrDescribeRetry describes id, retrying while the broker is loading
// its partitions after a restart.
func txrDescribeRetry(ctx context.Context, t *testing.T, adm *kadm.Client, id string) kadm.DescribedTransaction {
	t.Helper()
	var d kadm.DescribedTransaction
	fzWaitFor(t, 30*time.Second, "DescribeTransactions("+id+")", func() error {
		var err error
		d, err = txxDescribe(ctx, adm, id)
		return err
	})
	return d
}

func TestTxnStateSurvivesRestart(t *testing.T) {
	p := startBroker(t, "--config", "transaction.abort.timed.out.transaction.cleanup.interval.ms=200")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	name := fzTopic(t, "txr")
	// One topic and one transactional id per case:
	//   cont:  open at the kill; its producer commits it after the restart.
	//   fence: open at the kill; a new producer of its id aborts it.
	//   done:  committed before the kill.
	//   tmo:   open at the kill with a 4s timeout; aborted by the timeout after the restart.
	topics := map[string]string{}
	ids := map[string]string{}
	for _, c := range []string{"cont", "fence", "done", "tmo"} {
		topics[c] = name + "-" + c
		ids[c] = "txr-" + c + "-" + name
		fzCreateTopic(ctx, t, adm, topics[c], 1, nil)
	}
	prods := map[string]*kgo.Client{}
	for _, c := range []string{"cont", "fence", "done"} {
		prods[c] = txnProducer(t, p.Addr, ids[c])
		txnRun(ctx, t, prods[c], topics[c], true, c+"-c1")
	}
	prods["tmo"] = txnProducer(t, p.Addr, ids["tmo"], kgo.TransactionTimeout(4*time.Second))
	for _, c := range []string{"cont", "fence", "tmo"} {
		if err := prods[c].BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		txrProduce(ctx, t, prods[c], topics[c], c+"-open1", c+"-open2")
	}
	before := map[string]kadm.DescribedTransaction{}
	for c, id := range ids {
		d, err := txxDescribe(ctx, adm, id)
		if err != nil {
			t.Fatal(err)
		}
		wantState := "Ongoing"
		if c == "done" {
			wantState = "CompleteCommit"
		}
		if d.State != wantState || d.ProducerID < 0 {
			t.Fatalf("%s before the kill: %+v, want %s", c, d, wantState)
		}
		before[c] = d
	}

	p.Kill()
	p.Restart()
	adm = fzAdmin(t, p.Addr)

	// The replayed state is what was stored before the kill. (The tmo
	// transaction may already be aborted if the restart was slow.)
	for _, c := range []string{"cont", "fence", "done"} {
		d := txrDescribeRetry(ctx, t, adm, ids[c])
		b := before[c]
		if d.State != b.State || d.ProducerID != b.ProducerID || d.ProducerEpoch != b.ProducerEpoch ||
			d.TimeoutMillis != b.TimeoutMillis || d.StartTimestamp != b.StartTimestamp {
			t.Errorf("%s after the restart: state %s producer %d epoch %d timeout %d start %d; before: state %s producer %d epoch %d timeout %d start %d",
				c, d.State, d.ProducerID, d.ProducerEpoch, d.TimeoutMillis, d.StartTimestamp,
				b.State, b.ProducerID, b.ProducerEpoch, b.TimeoutMillis, b.StartTimestamp)
		}
		if c != "done" {
			if _, ok := d.Topics[topics[c]][0]; !ok || len(d.Topics) != 1 {
				t.Errorf("%s after the restart: partitions %v, want %s[0]", c, d.Topics, topics[c])
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// cont: the same producer carries on and commits.
	txrProduce(ctx, t, prods["cont"], topics["cont"], "cont-open3")
	if err := prods["cont"].EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("cont: commit after the restart: %v", err)
	}

	// fence: a new producer of the id gets the same producer id at a
	// higher epoch, which aborts the open transaction and fences the old
	// producer.
	fresh := txnProducer(t, p.Addr, ids["fence"])
	pid, epoch, err := fresh.ProducerID(ctx)
	if err != nil {
		t.Fatalf("fence: InitProducerId after the restart: %v", err)
	}
	if pid != before["fence"].ProducerID || epoch <= before["fence"].ProducerEpoch {
		t.Fatalf("fence: new producer got %d epoch %d, want producer %d above epoch %d", pid, epoch, before["fence"].ProducerID, before["fence"].ProducerEpoch)
	}
	err = prods["fence"].ProduceSync(ctx, &kgo.Record{Topic: topics["fence"], Value: []byte("fence-zombie")}).FirstErr()
	if err == nil {
		err = prods["fence"].EndTransaction(ctx, kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("fence: old producer after the new one initialized: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	txnRun(ctx, t, fresh, topics["fence"], true, "fence-c2")

	// done: a new producer of a committed id keeps its producer id.
	again := txnProducer(t, p.Addr, ids["done"])
	pid, epoch, err = again.ProducerID(ctx)
	if err != nil {
		t.Fatalf("done: InitProducerId after the restart: %v", err)
	}
	if pid != before["done"].ProducerID || epoch != before["done"].ProducerEpoch+1 {
		t.Fatalf("done: new producer got %d epoch %d, want producer %d epoch %d", pid, epoch, before["done"].ProducerID, before["done"].ProducerEpoch+1)
	}
	txnRun(ctx, t, again, topics["done"], true, "done-c2")

	// tmo: aborted by its timeout, counted from before the restart.
	d := txxWaitState(ctx, t, adm, ids["tmo"], "CompleteAbort", 30*time.Second)
	if d.ProducerID != before["tmo"].ProducerID || d.ProducerEpoch <= before["tmo"].ProducerEpoch {
		t.Fatalf("tmo: after the timeout %+v, want producer %d above epoch %d", d, before["tmo"].ProducerID, before["tmo"].ProducerEpoch)
	}
	if err := prods["tmo"].EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatalf("tmo: commit after the timeout abort succeeded")
	}

	want := map[string][]string{
		"cont":  {"cont-c1", "cont-open1", "cont-open2", "cont-open3"},
		"fence": {"fence-c1", "fence-c2"},
		"done":  {"done-c1", "done-c2"},
		"tmo":   nil,
	}
	for c, w := range want {
		seeds := []string{p.Addr}
		got := txxValues(txxReadAll(ctx, t, seeds, topics[c], kgo.ReadCommitted(), 30*time.Second))
		if !slices.Equal(got, w) {
			t.Errorf("%s: read_committed consumer got %v, want %v", c, got, w)
		}
		all := txxValues(txxReadAll(ctx, t, seeds, topics[c], kgo.ReadUncommitted(), 30*time.Second))
		if c == "fence" || c == "tmo" {
			if !slices.Contains(all, c+"-open1") || !slices.Contains(all, c+"-open2") {
				t.Errorf("%s: read_uncommitted consumer got %v, want the aborted records too", c, all)
			}
		}
	}
	for _, c := range []string{"cont", "fence", "done"} {
		d := txrDescribeRetry(ctx, t, adm, ids[c])
		if d.State != "CompleteCommit" || d.ProducerID != before[c].ProducerID {
			t.Errorf("%s at the end: %+v, want CompleteCommit with producer %d", c, d, before[c].ProducerID)
		}
	}
	fzCheckLogs(t, p)
}
