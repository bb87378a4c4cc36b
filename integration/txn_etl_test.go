package integration

// Exactly-once consume-transform-produce with franz-go's
// GroupTransactSession: each member of a consumer group reads an input
// topic (read_committed), produces what it read to an output topic and
// commits the consumed offsets in the same transaction. One member
// crashes in the middle of a transaction, after its offsets went to the
// group coordinator (TxnOffsetCommit) and before EndTxn: the broker has
// its output records and its pending offsets, and nothing else will ever
// arrive from it. A replacement with the same transactional id fences it,
// which aborts the crashed transaction; the group finishes the input, and
// the output holds every input record exactly once.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// etlCrashDialer dials real connections until it is cut: then it closes
// every connection it made and refuses to dial again, so that to the
// brokers its client looks like a process that died (no LeaveGroup, no
// EndTxn, connections gone).
type etlCrashDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (d *etlCrashDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, errors.New("etl test: member crashed")
	}
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	d.conns = append(d.conns, c)
	return c, nil
}

func (d *etlCrashDialer) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// etlCrashHook crashes its dialer when the answer to a TxnOffsetCommit
// (key 28) arrives while it is armed: the transaction's offsets are then
// pending at the group coordinator and its EndTxn is never sent.
type etlCrashHook struct {
	d       *etlCrashDialer
	armed   atomic.Bool
	crashed chan struct{}
	once    sync.Once
}

func (h *etlCrashHook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 28 && err == nil && h.armed.Load() {
		h.once.Do(func() {
			h.d.crash()
			close(h.crashed)
		})
	}
}

// etlMember is one member of the transactional consume-transform-produce
// loop.
type etlMember struct {
	name, txnID string
	sess        *kgo.GroupTransactSession
	cancel      context.CancelFunc
	done        chan struct{}

	committed atomic.Int64 // transactions that committed with records
	produced  atomic.Int64 // records in those transactions
	mu        sync.Mutex
	assigned  map[int32]bool
	errs      []string
}

func (m *etlMember) addErr(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.errs) < 20 {
		m.errs = append(m.errs, fmt.Sprintf(format, args...))
	}
}

func (m *etlMember) owned() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.assigned)
}

// etlStartMember starts a member with its own transactional id; a non-nil
// hook (with its dialer) makes it crashable.
func etlStartMember(t *testing.T, addr, name, txnID, group, in, out string, hook *etlCrashHook) *etlMember {
	t.Helper()
	m := &etlMember{name: name, txnID: txnID, done: make(chan struct{}), assigned: make(map[int32]bool)}
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ClientID("gregor-it-etl-" + name),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
		kgo.ProduceRequestTimeout(15 * time.Second),
		kgo.FetchMaxWait(300 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(60 * time.Second), // longer than the test: only fencing can end a crashed transaction
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range a[in] {
				m.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[in] {
				delete(m.assigned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[in] {
				delete(m.assigned, p)
			}
		}),
	}
	if hook != nil {
		opts = append(opts, kgo.Dialer(hook.d.dial), kgo.WithHooks(hook))
	}
	if os.Getenv("GREGOR_ETL_DEBUG") != "" {
		// Debugging aid: the member's kgo log on stderr.
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return name + ": " })))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		t.Fatalf("NewGroupTransactSession(%s): %v", name, err)
	}
	m.sess = sess
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.loop(ctx, out)
	return m
}

func (m *etlMember) loop(ctx context.Context, out string) {
	defer close(m.done)
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := m.sess.PollRecords(pctx, 40)
		cancel()
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.Canceled) && !errors.Is(fe.Err, context.DeadlineExceeded) {
				m.addErr("fetch %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
			}
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := m.sess.Begin(); err != nil {
			m.addErr("begin: %v", err)
			return
		}
		var perr atomic.Value
		for _, r := range recs {
			m.sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: []byte(string(r.Value) + "|" + m.name)}, func(_ *kgo.Record, err error) {
				if err != nil {
					perr.Store(err)
				}
			})
		}
		committed, err := m.sess.End(ctx, kgo.TryCommit)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.addErr("end: %v (produce error %v)", err, perr.Load())
			continue
		}
		if committed {
			m.committed.Add(1)
			m.produced.Add(int64(len(recs)))
		}
	}
}

// stop ends the loop and closes the client (leaving the group).
func (m *etlMember) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(40 * time.Second):
		t.Errorf("member %s: loop did not stop within 40s", m.name)
	}
	closed := make(chan struct{})
	go func() { m.sess.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Logf("member %s: Close did not return within 20s", m.name)
	}
}

// abandon ends a crashed member's goroutines without waiting for them: its
// client can no longer reach any broker.
func (m *etlMember) abandon() {
	m.cancel()
	go func() {
		<-m.done
		m.sess.Close()
	}()
}

func TestTxnGroupTransactSessionCrash(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 150*time.Second)
	adm := fzAdmin(t, p.Addr)
	in, out, group := fzTopic(t, "etl-in"), fzTopic(t, "etl-out"), fzTopic(t, "etl-g")
	const parts, n = 3, 3000
	fzCreateTopic(ctx, t, adm, in, parts, nil)
	fzCreateTopic(ctx, t, adm, out, parts, nil)
	idA, idB := "etl-a-"+in, "etl-b-"+in

	hook := &etlCrashHook{d: &etlCrashDialer{}, crashed: make(chan struct{})}
	a := etlStartMember(t, p.Addr, "a", idA, group, in, out, nil)
	b := etlStartMember(t, p.Addr, "b", idB, group, in, out, hook)
	members := []*etlMember{a, b}
	defer func() {
		for _, m := range members {
			if t.Failed() {
				m.mu.Lock()
				t.Logf("member %s: %d transactions committed (%d records), errors %v", m.name, m.committed.Load(), m.produced.Load(), m.errs)
				m.mu.Unlock()
			}
		}
	}()
	fzWaitFor(t, 30*time.Second, "both members assigned partitions", func() error {
		if a.owned()+b.owned() != parts || a.owned() == 0 || b.owned() == 0 {
			return fmt.Errorf("a owns %d, b owns %d", a.owned(), b.owned())
		}
		return nil
	})

	prod := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(from, to int) {
		recs := make([]*kgo.Record, 0, to-from)
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: in, Partition: int32(i % parts), Key: fmt.Appendf(nil, "k%05d", i), Value: fmt.Appendf(nil, "v%05d", i)})
		}
		fzProduceAsync(ctx, t, prod, recs)
	}
	// waitCommitted waits until the group's committed offsets of the input
	// add up to total.
	waitCommitted := func(total int64, timeout time.Duration) {
		t.Helper()
		fzWaitFor(t, timeout, fmt.Sprintf("the group's committed offsets of %s add up to %d", in, total), func() error {
			resps, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				return err
			}
			var sum int64
			resps.Each(func(o kadm.OffsetResponse) {
				if o.Topic == in && o.Err == nil && o.At > 0 {
					sum += o.At
				}
			})
			if sum != total {
				return fmt.Errorf("committed offsets add up to %d", sum)
			}
			return nil
		})
	}

	// Phase 1: both members process half the input.
	produce(0, n/2)
	waitCommitted(n/2, 40*time.Second)
	if a.committed.Load() == 0 || b.committed.Load() == 0 {
		t.Fatalf("after the first half: a committed %d transactions, b %d; want both to have committed", a.committed.Load(), b.committed.Load())
	}
	pidB, epochB, err := b.sess.Client().ProducerID(ctx)
	if err != nil {
		t.Fatalf("producer id of b: %v", err)
	}
	t.Logf("phase 1: a committed %d transactions (%d records), b %d (%d records); b is producer %d epoch %d",
		a.committed.Load(), a.produced.Load(), b.committed.Load(), b.produced.Load(), pidB, epochB)

	// Phase 2: b crashes in its next transaction, between TxnOffsetCommit
	// and EndTxn.
	hook.armed.Store(true)
	produce(n/2, n)
	select {
	case <-hook.crashed:
	case <-time.After(30 * time.Second):
		t.Fatalf("member b never reached TxnOffsetCommit in the second half (b committed %d transactions)", b.committed.Load())
	}
	b.abandon()
	members = []*etlMember{a}
	d, err := txxDescribe(ctx, adm, idB)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != "Ongoing" || d.ProducerID != pidB || d.ProducerEpoch != epochB {
		t.Fatalf("crashed member's transaction: %+v, want Ongoing with producer %d epoch %d", d, pidB, epochB)
	}
	var inOffsets bool
	for tp := range d.Topics {
		inOffsets = inOffsets || tp == "__consumer_offsets"
	}
	if !inOffsets || len(d.Topics[out]) == 0 {
		t.Fatalf("crashed member's transaction covers %v, want %s and __consumer_offsets", d.Topics, out)
	}
	t.Logf("b crashed with its transaction open over %v", d.Topics)

	// The replacement takes b's transactional id: its InitProducerId
	// fences b and aborts b's transaction.
	c := etlStartMember(t, p.Addr, "c", idB, group, in, out, nil)
	members = append(members, c)
	pidC, epochC, err := c.sess.Client().ProducerID(ctx)
	if err != nil {
		t.Fatalf("producer id of the replacement: %v", err)
	}
	if pidC != pidB || epochC <= epochB {
		t.Fatalf("replacement got producer %d epoch %d; want producer %d with an epoch above %d", pidC, epochC, pidB, epochB)
	}
	if d, err := txxDescribe(ctx, adm, idB); err != nil || d.State == "Ongoing" && d.ProducerEpoch == epochB {
		t.Fatalf("after the replacement's InitProducerId: %+v %v, want the crashed transaction ended", d, err)
	}

	waitCommitted(n, 60*time.Second)
	a.stop(t)
	c.stop(t)
	t.Logf("a committed %d transactions (%d records); b %d (%d); c %d (%d)", a.committed.Load(), a.produced.Load(),
		b.committed.Load(), b.produced.Load(), c.committed.Load(), c.produced.Load())

	seeds := []string{p.Addr}
	committed := txxReadAll(ctx, t, seeds, out, kgo.ReadCommitted(), 30*time.Second)
	seen := make(map[string]string)
	var dups []string
	for _, rs := range committed {
		for _, r := range rs {
			k := string(r.Key)
			v, _, _ := strings.Cut(string(r.Value), "|")
			if want := "v" + strings.TrimPrefix(k, "k"); v != want {
				t.Errorf("output record %s = %q, want value %s", k, r.Value, want)
			}
			if prev, ok := seen[k]; ok {
				dups = append(dups, fmt.Sprintf("%s (%s and %s)", k, prev, r.Value))
			}
			seen[k] = string(r.Value)
		}
	}
	if len(dups) > 0 {
		t.Errorf("%d keys more than once in the committed output, first: %v", len(dups), dups[:min(len(dups), 10)])
	}
	var missing []string
	for i := range n {
		if k := fmt.Sprintf("k%05d", i); seen[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d input keys missing from the committed output, first: %v", len(missing), missing[:min(len(missing), 10)])
	}
	// The crashed transaction's records are in the log (b flushed them
	// before TxnOffsetCommit), aborted.
	all := txxReadAll(ctx, t, seeds, out, kgo.ReadUncommitted(), 30*time.Second)
	total := 0
	fromB := 0
	for _, rs := range all {
		total += len(rs)
		for _, r := range rs {
			if strings.HasSuffix(string(r.Value), "|b") {
				fromB++
			}
		}
	}
	if total <= n || int64(fromB) <= b.produced.Load() {
		t.Errorf("read_uncommitted output has %d records (%d from b, which committed %d); want more than %d and more from b than it committed: the crashed transaction's records",
			total, fromB, b.produced.Load(), n)
	}
	t.Logf("output: %d committed records, %d in the log (%d from b, %d of them in b's committed transactions)", len(seen), total, fromB, b.produced.Load())
	fzCheckLogs(t, p)
}
