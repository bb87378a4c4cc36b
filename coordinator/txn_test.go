package coordinator

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/protocol"
)

// memTxnLogs is an in-memory TxnStateTopic over memLogs.
type memTxnLogs struct{ *memLogs }

func (m memTxnLogs) EnsureTxnTopic(ctx context.Context, n int32) (int32, error) {
	return m.EnsureOffsetsTopic(ctx, n)
}
func (m memTxnLogs) TxnPartitions() int32 { return m.OffsetsPartitions() }

// fakeMarkers records the markers written; while hold is set, every
// partition is refused (to be tried again).
type fakeMarkers struct {
	mu      sync.Mutex
	written []Marker
	hold    bool
}

func (f *fakeMarkers) WriteMarkers(_ context.Context, m Marker) []TopicPartition {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hold {
		return m.Partitions
	}
	f.written = append(f.written, m)
	return nil
}

func (f *fakeMarkers) setHold(h bool) { f.mu.Lock(); f.hold = h; f.mu.Unlock() }

func (f *fakeMarkers) all() []Marker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.written)
}

// txnHarness is a transaction coordinator over in-memory logs.
type txnHarness struct {
	logs    *memLogs
	markers *fakeMarkers
	clk     *clock
	c       *TxnCoordinator
	nextPID int64
}

var txnTopics = fakeTopics{"t": {Name: "t", Partitions: 3}, "u": {Name: "u", Partitions: 1}}

func newTxnHarness(t *testing.T) *txnHarness {
	h := &txnHarness{logs: &memLogs{batches: map[int32][][]byte{}}, markers: &fakeMarkers{}, clk: &clock{now: t0}, nextPID: 1000}
	h.start(t)
	return h
}

// start (re)starts the coordinator over the same logs.
func (h *txnHarness) start(t *testing.T) {
	cfg := DefaultTxnConfig()
	cfg.Partitions = 3
	cfg.AbortInterval = time.Hour // abortTimedOut is called by hand
	var mu sync.Mutex
	ids := func(context.Context) (int64, error) {
		mu.Lock()
		defer mu.Unlock()
		h.nextPID++
		return h.nextPID, nil
	}
	h.c = NewTxn(cfg, memTxnLogs{h.logs}, h.markers, ids, txnTopics, protocol.NewCodecs(), zerolog.Nop(), h.clk.Now)
	t.Cleanup(h.c.Close)
}

func (h *txnHarness) init(t *testing.T, id string, pid int64, epoch int16) (int64, int16, *kerr.Error) {
	t.Helper()
	return h.c.InitProducerID(context.Background(), InitProducerIDArgs{TransactionalID: id, TimeoutMs: 60000, ProducerID: pid, ProducerEpoch: epoch, FencedError: true})
}

func (h *txnHarness) add(id string, pid int64, epoch int16, parts ...TopicPartition) []*kerr.Error {
	return h.c.AddPartitions(context.Background(), AddPartitionsArgs{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, Partitions: parts, FencedError: true})
}

func (h *txnHarness) end(id string, pid int64, epoch int16, commit bool) *kerr.Error {
	return h.c.EndTxn(context.Background(), EndTxnArgs{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, Commit: commit, FencedError: true})
}

// state returns id's description, waiting up to 5 s for want.
func (h *txnHarness) waitState(t *testing.T, id, want string) TxnDescription {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := h.c.Describe(context.Background(), []string{id})[0]
		if d.State == want || time.Now().After(deadline) {
			if d.State != want {
				t.Fatalf("%s: state %s (err %v), want %s", id, d.State, d.Err, want)
			}
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func allNil(errs []*kerr.Error) bool {
	for _, e := range errs {
		if e != nil {
			return false
		}
	}
	return true
}

func TestTxnCommitLifecycle(t *testing.T) {
	h := newTxnHarness(t)
	pid, epoch, err := h.init(t, "a", -1, -1)
	if err != nil || pid < 0 || epoch != 0 {
		t.Fatalf("init: %d/%d %v", pid, epoch, err)
	}
	tp0, tp1 := TopicPartition{"t", 0}, TopicPartition{"t", 1}
	if errs := h.add("a", pid, epoch, tp0, tp1); !allNil(errs) {
		t.Fatalf("add: %v", errs)
	}
	d := h.waitState(t, "a", "Ongoing")
	if len(d.Partitions) != 2 || d.StartMs != t0.UnixMilli() {
		t.Fatalf("ongoing: %+v", d)
	}
	// Unknown topics are refused, and the rest are not attempted.
	if errs := h.add("a", pid, epoch, TopicPartition{"t", 2}, TopicPartition{"nope", 0}); errs[0] != kerr.OperationNotAttempted || errs[1] != kerr.UnknownTopicOrPartition {
		t.Fatalf("add unknown topic: %v", errs)
	}
	// Verify-only (KIP-890) checks membership without adding.
	v := h.c.AddPartitions(context.Background(), AddPartitionsArgs{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch, VerifyOnly: true,
		Partitions: []TopicPartition{tp0, {"t", 2}}})
	if v[0] != nil || v[1] != kerr.InvalidTxnState {
		t.Fatalf("verify: %v", v)
	}
	h.markers.setHold(true)
	if err := h.end("a", pid, epoch, true); err != nil {
		t.Fatalf("end: %v", err)
	}
	h.waitState(t, "a", "PrepareCommit")
	// While the markers are pending, the producer must wait.
	if errs := h.add("a", pid, epoch, tp0); errs[0] != kerr.ConcurrentTransactions {
		t.Fatalf("add while preparing: %v", errs)
	}
	if err := h.end("a", pid, epoch, true); err != kerr.ConcurrentTransactions {
		t.Fatalf("end retry while preparing: %v", err)
	}
	if err := h.end("a", pid, epoch, false); err != kerr.InvalidTxnState {
		t.Fatalf("abort while committing: %v", err)
	}
	h.markers.setHold(false)
	h.waitState(t, "a", "CompleteCommit")
	ms := h.markers.all()
	if len(ms) != 1 || !ms[0].Commit || ms[0].ProducerID != pid || ms[0].ProducerEpoch != epoch || !slices.Equal(ms[0].Partitions, []TopicPartition{tp0, tp1}) {
		t.Fatalf("markers: %+v", ms)
	}
	// A retried commit succeeds; an abort of it is refused.
	if err := h.end("a", pid, epoch, true); err != nil {
		t.Fatalf("commit retry: %v", err)
	}
	if err := h.end("a", pid, epoch, false); err != kerr.InvalidTxnState {
		t.Fatalf("abort after commit: %v", err)
	}
	// Wrong producer id or epoch.
	if errs := h.add("a", pid+1, epoch, tp0); errs[0] != kerr.InvalidProducerIDMapping {
		t.Fatalf("wrong pid: %v", errs)
	}
	if errs := h.add("a", pid, epoch-1, tp0); errs[0] != kerr.ProducerFenced {
		t.Fatalf("old epoch: %v", errs)
	}
	if errs := h.add("unknown", pid, epoch, tp0); errs[0] != kerr.InvalidProducerIDMapping {
		t.Fatalf("unknown id: %v", errs)
	}
}

func TestTxnInitFencesAndAborts(t *testing.T) {
	h := newTxnHarness(t)
	pid, e0, _ := h.init(t, "f", -1, -1)
	if errs := h.add("f", pid, e0, TopicPartition{"u", 0}); !allNil(errs) {
		t.Fatalf("add: %v", errs)
	}
	// A new producer of the id: the open transaction is aborted with a
	// bumped epoch, and the new producer retries.
	if _, _, err := h.init(t, "f", -1, -1); err != kerr.ConcurrentTransactions {
		t.Fatalf("init with a transaction open: %v", err)
	}
	h.waitState(t, "f", "CompleteAbort")
	ms := h.markers.all()
	if len(ms) != 1 || ms[0].Commit || ms[0].ProducerEpoch != e0+1 {
		t.Fatalf("abort markers: %+v", ms)
	}
	pid2, e2, err := h.init(t, "f", -1, -1)
	if err != nil || pid2 != pid || e2 != e0+2 {
		t.Fatalf("init after abort: %d/%d %v, want %d/%d", pid2, e2, err, pid, e0+2)
	}
	// The zombie is fenced everywhere.
	if err := h.end("f", pid, e0, true); err != kerr.ProducerFenced {
		t.Fatalf("zombie end: %v", err)
	}
	if _, _, err := h.init(t, "f", pid, e0); err != kerr.ProducerFenced {
		t.Fatalf("zombie KIP-360 init: %v", err)
	}
	// KIP-360: the current producer bumps its own epoch, and a retry of
	// that bump (its answer lost) gets the same epoch.
	pid3, e3, err := h.init(t, "f", pid2, e2)
	if err != nil || pid3 != pid || e3 != e2+1 {
		t.Fatalf("KIP-360 bump: %d/%d %v", pid3, e3, err)
	}
	if p, e, err := h.init(t, "f", pid2, e2); err != nil || p != pid || e != e3 {
		t.Fatalf("KIP-360 retry: %d/%d %v, want %d/%d", p, e, err, pid, e3)
	}
	if _, _, err := h.c.InitProducerID(context.Background(), InitProducerIDArgs{TransactionalID: "f", TimeoutMs: int32((16 * time.Minute).Milliseconds())}); err != kerr.InvalidTransactionTimeout {
		t.Fatalf("timeout above transaction.max.timeout.ms: %v", err)
	}
}

func TestTxnTimeoutAbortsWithEpochBump(t *testing.T) {
	h := newTxnHarness(t)
	pid, e0, _ := h.init(t, "slow", -1, -1)
	if errs := h.add("slow", pid, e0, TopicPartition{"t", 2}); !allNil(errs) {
		t.Fatalf("add: %v", errs)
	}
	h.clk.Add(59 * time.Second)
	h.c.abortTimedOut()
	h.waitState(t, "slow", "Ongoing")
	h.clk.Add(2 * time.Second)
	h.c.abortTimedOut()
	d := h.waitState(t, "slow", "CompleteAbort")
	if d.ProducerEpoch != e0+1 {
		t.Fatalf("epoch after timeout abort %d, want %d", d.ProducerEpoch, e0+1)
	}
	if err := h.end("slow", pid, e0, true); err != kerr.ProducerFenced {
		t.Fatalf("commit after timeout: %v", err)
	}
	// The timed-out producer may bump its epoch again (KIP-360) and go on.
	p, e, err := h.init(t, "slow", pid, e0)
	if err != nil || p != pid || e != e0+1 {
		t.Fatalf("KIP-360 init after timeout: %d/%d %v", p, e, err)
	}
}

func TestTxnStateSurvivesReload(t *testing.T) {
	h := newTxnHarness(t)
	pid, e0, _ := h.init(t, "r", -1, -1)
	if errs := h.add("r", pid, e0, TopicPartition{"t", 0}); !allNil(errs) {
		t.Fatalf("add: %v", errs)
	}
	h.markers.setHold(true)
	if err := h.end("r", pid, e0, true); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "r", "PrepareCommit")
	pidB, eB, _ := h.init(t, "b", -1, -1)
	h.add("b", pidB, eB, TopicPartition{"u", 0})
	h.c.Close()

	// A new coordinator (a restart, or the next leader) replays the log:
	// the prepared commit is finished, the open transaction kept.
	h.markers.setHold(false)
	h.logs.setLeader(0, true, 1)
	h.start(t)
	for p := range int32(3) {
		if err := h.c.ensureOwned(p); err != nil {
			t.Fatalf("load %d: %v", p, err)
		}
	}
	d := h.waitState(t, "r", "CompleteCommit")
	if d.ProducerID != pid || d.ProducerEpoch != e0 {
		t.Fatalf("reloaded: %+v", d)
	}
	ms := h.markers.all()
	if len(ms) != 1 || !ms[0].Commit || ms[0].CoordinatorEpoch != 1 {
		t.Fatalf("markers after reload: %+v", ms)
	}
	if d := h.waitState(t, "b", "Ongoing"); len(d.Partitions) != 1 {
		t.Fatalf("open transaction after reload: %+v", d)
	}
	listed, _ := h.c.List(ListFilter{States: []string{"Ongoing"}, MinDurationMs: -1})
	if len(listed) != 1 || listed[0].TransactionalID != "b" {
		t.Fatalf("list ongoing: %+v", listed)
	}
	if _, unknown := h.c.List(ListFilter{States: []string{"Bogus"}, MinDurationMs: -1}); !slices.Equal(unknown, []string{"Bogus"}) {
		t.Fatalf("unknown state filter: %v", unknown)
	}
}

func TestTxnNotCoordinator(t *testing.T) {
	h := newTxnHarness(t)
	h.init(t, "x", -1, -1)
	p := PartitionForTxn("x", 3)
	h.logs.setLeader(p, false, 2)
	if _, _, err := h.init(t, "x", -1, -1); err != kerr.NotCoordinator {
		t.Fatalf("init on a partition led elsewhere: %v", err)
	}
	if d := h.c.Describe(context.Background(), []string{"x"}); d[0].Err != kerr.NotCoordinator {
		t.Fatalf("describe: %+v", d)
	}
}

func TestTxnRecordRoundTrip(t *testing.T) {
	v := &txnRecordValue{producerID: 7, epoch: 3, timeoutMs: 60000, state: txnOngoing, updateMs: 5, startMs: 4,
		parts: []TopicPartition{{"b", 1}, {"a", 2}, {"a", 0}}}
	key, val := txnRecord("id", v)
	id, got, err := decodeTxnRecord(key, val)
	if err != nil || id != "id" {
		t.Fatalf("decode: %q %v", id, err)
	}
	want := []TopicPartition{{"a", 0}, {"a", 2}, {"b", 1}}
	if got.producerID != 7 || got.epoch != 3 || got.timeoutMs != 60000 || got.state != txnOngoing || got.startMs != 4 || !slices.Equal(got.parts, want) {
		t.Fatalf("decoded %+v", got)
	}
	if _, tomb, err := decodeTxnRecord(key, nil); err != nil || tomb != nil {
		t.Fatalf("tombstone: %v %v", tomb, err)
	}
}

// FuzzDecodeTxnRecord: records of __transaction_state come from disk and
// from leaders replicated over the network; no bytes make decoding panic.
func FuzzDecodeTxnRecord(f *testing.F) {
	k, v := txnRecord("id", &txnRecordValue{producerID: 1, epoch: 2, timeoutMs: 3, state: txnOngoing, parts: []TopicPartition{{"t", 0}}})
	f.Add(k, v)
	f.Add(k, []byte(nil))
	f.Add([]byte{0, 0}, []byte{0, 1, 0xff})
	f.Add([]byte{0, 1}, []byte{})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		_, _, _ = decodeTxnRecord(key, value)
	})
}

func TestTxnCompactionAndExpiry(t *testing.T) {
	h := newTxnHarness(t)
	ids := []string{"c1", "c2", "c3", "c4"}
	pids := map[string]int64{}
	for round := range 5 {
		for _, id := range ids {
			pid, _, err := h.init(t, id, -1, -1)
			if err != nil {
				t.Fatalf("init %s round %d: %v", id, round, err)
			}
			pids[id] = pid
		}
	}
	open := "c4"
	_, e, _ := h.init(t, open, -1, -1)
	if errs := h.add(open, pids[open], e, TopicPartition{"t", 1}); !allNil(errs) {
		t.Fatal(errs)
	}
	for p := range int32(3) {
		before := h.logs.batchCount(p)
		if before == 0 {
			continue
		}
		if recsBefore, recsAfter := compactMem(t, h.logs, p); recsAfter >= recsBefore {
			t.Fatalf("partition %d: %d records after compaction, %d before", p, recsAfter, recsBefore)
		}
	}
	// The compacted log alone gives the same state.
	h.c.Close()
	h.start(t)
	for _, id := range ids {
		d := h.c.Describe(context.Background(), []string{id})[0]
		if d.Err != nil || d.ProducerID != pids[id] {
			t.Fatalf("%s after compaction: %+v, want producer id %d", id, d, pids[id])
		}
	}
	h.waitState(t, open, "Ongoing")

	// Idle ids expire after transactional.id.expiration.ms; the one with
	// an open transaction is kept (its timeout aborts it first).
	h.clk.Add(8 * 24 * time.Hour)
	h.c.expireIdle()
	for _, id := range ids {
		d := h.c.Describe(context.Background(), []string{id})[0]
		if id == open {
			if d.Err != nil {
				t.Fatalf("open %s expired: %+v", id, d)
			}
			continue
		}
		if d.Err != kerr.TransactionalIDNotFound {
			t.Fatalf("%s after expiry: %+v, want TRANSACTIONAL_ID_NOT_FOUND", id, d)
		}
	}
	h.c.Close()
	h.start(t)
	if d := h.c.Describe(context.Background(), []string{"c1"})[0]; d.Err != kerr.TransactionalIDNotFound {
		t.Fatalf("expired id back after a reload: %+v", d)
	}
}

// TestTxnKIP360BumpWithTransactionOpen: a producer that asks for a new
// epoch (naming its current one) while its transaction is open has the
// transaction aborted, and its retry gets the bumped epoch; a new producer
// of the id fences the old one for good.
func TestTxnKIP360BumpWithTransactionOpen(t *testing.T) {
	h := newTxnHarness(t)
	pid, e0, _ := h.init(t, "k", -1, -1)
	if errs := h.add("k", pid, e0, TopicPartition{"u", 0}); !allNil(errs) {
		t.Fatal(errs)
	}
	if _, _, err := h.init(t, "k", pid, e0); err != kerr.ConcurrentTransactions {
		t.Fatalf("KIP-360 init with a transaction open: %v", err)
	}
	h.waitState(t, "k", "CompleteAbort")
	p, e, err := h.init(t, "k", pid, e0)
	if err != nil || p != pid || e != e0+1 {
		t.Fatalf("KIP-360 retry: %d/%d %v, want %d/%d", p, e, err, pid, e0+1)
	}
	if errs := h.add("k", pid, e, TopicPartition{"u", 0}); !allNil(errs) {
		t.Fatal(errs)
	}
	// A fresh producer: the open transaction is aborted and the old
	// producer cannot come back with either of its epochs.
	if _, _, err := h.init(t, "k", -1, -1); err != kerr.ConcurrentTransactions {
		t.Fatalf("fresh init with a transaction open: %v", err)
	}
	h.waitState(t, "k", "CompleteAbort")
	if _, _, err := h.init(t, "k", pid, e); err != kerr.ProducerFenced {
		t.Fatalf("zombie KIP-360 init after a fresh producer fenced it: %v", err)
	}
}
