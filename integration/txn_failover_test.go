package integration

// The transaction coordinator fails over: __transaction_state is
// replicated (replication factor 3), so when the broker coordinating a
// transactional id is killed with SIGKILL, the new leader of its partition
// takes the transactions over. An open transaction can still be ended
// there; a transaction whose EndTxn was answered (PrepareCommit stored)
// gets its markers from the new coordinator.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txfCluster is a 3-broker cluster with a topic of 3 partitions
// (replication factor 3) and a transactional id whose coordinator is
// known.
type txfCluster struct {
	brokers []*brokerProc
	seeds   []string
	adm     *kadm.Client
	topic   string
	id      string
	coord   int32 // node id of id's coordinator
}

func txfStart(ctx context.Context, t *testing.T, prefix string) *txfCluster {
	t.Helper()
	c := &txfCluster{brokers: startQuorumCluster(t, 3, "--etcd-lease-ttl", "2s")}
	c.seeds = replAddrs(c.brokers, -1)
	c.adm = kadm.NewClient(fzClient(t, c.seeds[0], kgo.SeedBrokers(c.seeds...)))
	c.adm.SetTimeoutMillis(15000)
	c.topic = fzTopic(t, prefix)
	c.id = prefix + "-" + c.topic
	replCreateTopic(ctx, t, c.adm, c.topic, 3, 3, nil)
	replWaitISR(ctx, t, c.adm, c.topic, 3, 30*time.Second)
	fzWaitFor(t, 30*time.Second, "a coordinator for "+c.id, func() error {
		r := c.adm.FindTxnCoordinators(ctx, c.id)[c.id]
		if r.Err != nil || r.NodeID <= 0 {
			return fmt.Errorf("coordinator %d: %v %s", r.NodeID, r.Err, r.ErrMessage)
		}
		c.coord = r.NodeID
		return nil
	})
	// Every replica of __transaction_state in sync, so the coordinator's
	// successor has everything it stored.
	replWaitISR(ctx, t, c.adm, "__transaction_state", 3, 30*time.Second)
	return c
}

// survivors are the seeds of the brokers still running after the
// coordinator was killed.
func (c *txfCluster) survivors() []string { return replAddrs(c.brokers, c.coord) }

// survivorAdmin waits until a survivor names another broker as c.id's
// coordinator (FindCoordinator, key type 1, asked on a bare connection so
// no client cache answers) and returns a kadm client on the survivors.
// (Created before, a kgo client may keep the dead coordinator it looked up
// and keep dialing it.)
func (c *txfCluster) survivorAdmin(t *testing.T) *kadm.Client {
	t.Helper()
	s := c.survivors()
	raw := fzDial(t, s[0])
	start := time.Now()
	fzWaitFor(t, 30*time.Second, "a survivor naming a new coordinator for "+c.id, func() error {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(4)
		req.CoordinatorType = 1
		req.CoordinatorKeys = []string{c.id}
		resp := raw.roundTrip(req).(*kmsg.FindCoordinatorResponse)
		if len(resp.Coordinators) != 1 {
			return fmt.Errorf("%d coordinators in the answer", len(resp.Coordinators))
		}
		rc := resp.Coordinators[0]
		if rc.ErrorCode != 0 || rc.NodeID == c.coord || rc.NodeID <= 0 {
			return fmt.Errorf("coordinator %d, error %s", rc.NodeID, fzErrCode(rc.ErrorCode))
		}
		return nil
	})
	t.Logf("a new coordinator after %v", time.Since(start).Round(time.Millisecond))
	adm := kadm.NewClient(fzClient(t, s[0], kgo.SeedBrokers(s...)))
	adm.SetTimeoutMillis(15000)
	return adm
}

// killCoordinator kills the broker coordinating c.id with SIGKILL.
func (c *txfCluster) killCoordinator(t *testing.T) {
	t.Helper()
	c.brokers[c.coord-1].Kill()
	t.Logf("killed broker %d, the coordinator of %s", c.coord, c.id)
}

// produceEach produces n records to each of the topic's partitions in the
// producer's open transaction, with values tag-p<partition>-<i>, and
// returns the values.
func (c *txfCluster) produceEach(ctx context.Context, t *testing.T, cl *kgo.Client, tag string, n int) []string {
	t.Helper()
	var recs []*kgo.Record
	var vals []string
	for p := range int32(3) {
		for i := range n {
			v := fmt.Sprintf("%s-p%d-%d", tag, p, i)
			recs = append(recs, &kgo.Record{Topic: c.topic, Partition: p, Value: []byte(v)})
			vals = append(vals, v)
		}
	}
	fzProduceSync(ctx, t, cl, recs...)
	return vals
}

// txfCheckCommitted reads the topic with read_committed from seeds (which
// must reach the high watermark of every partition: no transaction left
// open) and fails the test unless it sees exactly want, each once.
func txfCheckCommitted(ctx context.Context, t *testing.T, seeds []string, topic string, want []string) {
	t.Helper()
	got := txxValues(txxReadAll(ctx, t, seeds, topic, kgo.ReadCommitted(), 40*time.Second))
	sort.Strings(got)
	want = slices.Clone(want)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed consumer got %d records, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
}

// TestTxnCoordinatorKilledMidTransaction: the coordinator dies with a
// transaction open (its partitions stored, records produced, no EndTxn
// yet). The producer's EndTxn(commit) then either commits at the new
// coordinator (each record visible once to read_committed consumers) or
// fails; after a failure a new producer of the same id initializes, the
// open transaction is aborted, and read_committed consumers reach the end
// of every partition without any of its records.
func TestTxnCoordinatorKilledMidTransaction(t *testing.T) {
	ctx := testContext(t, 150*time.Second)
	c := txfStart(ctx, t, "txfmid")
	prod := txnProducer(t, c.seeds[0], c.id, kgo.SeedBrokers(c.seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgoFailureLog(t, "producer"))

	// A first transaction, committed before the failover.
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	pre := c.produceEach(ctx, t, prod, "pre", 3)
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit before the failover: %v", err)
	}
	pid, epoch, err := prod.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The second is open when its coordinator dies.
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	open := c.produceEach(ctx, t, prod, "open", 10)
	d, err := txxDescribe(ctx, c.adm, c.id)
	if err != nil || d.State != "Ongoing" || len(d.Topics[c.topic]) != 3 {
		t.Fatalf("before the kill: %+v %v, want Ongoing over 3 partitions", d, err)
	}
	c.killCoordinator(t)

	ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
	start := time.Now()
	endErr := prod.EndTransaction(ectx, kgo.TryCommit)
	cancel()
	t.Logf("EndTransaction(commit) after the coordinator's death: %v (after %v)", endErr, time.Since(start).Round(time.Millisecond))
	adm := c.survivorAdmin(t)

	if endErr == nil {
		// Committed at the new coordinator.
		d := txxWaitState(ctx, t, adm, c.id, "CompleteCommit", 30*time.Second)
		if d.Coordinator == c.coord || d.ProducerID != pid || d.ProducerEpoch != epoch {
			t.Fatalf("after the commit: %+v, want a new coordinator (not %d), producer %d epoch %d", d, c.coord, pid, epoch)
		}
		txfCheckCommitted(ctx, t, c.survivors(), c.topic, append(slices.Clone(pre), open...))
		// The producer carries on at the new coordinator.
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		after := c.produceEach(ctx, t, prod, "after", 2)
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit after the failover: %v", err)
		}
		txfCheckCommitted(ctx, t, c.survivors(), c.topic, slices.Concat(pre, open, after))
	} else {
		// A clean failure: a new producer of the id takes over, and the
		// open transaction is aborted.
		s := c.survivors()
		fresh := txnProducer(t, s[0], c.id, kgo.SeedBrokers(s...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		fpid, fepoch, err := fresh.ProducerID(ctx)
		if err != nil {
			t.Fatalf("a new producer of %s after the failed commit: %v", c.id, err)
		}
		if fpid != pid || fepoch <= epoch {
			t.Fatalf("new producer got %d epoch %d, want producer %d with an epoch above %d", fpid, fepoch, pid, epoch)
		}
		txfCheckCommitted(ctx, t, s, c.topic, pre)
		if err := fresh.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		after := c.produceEach(ctx, t, fresh, "after", 2)
		if err := fresh.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit by the new producer: %v", err)
		}
		txfCheckCommitted(ctx, t, s, c.topic, slices.Concat(pre, after))
	}
	for i, b := range c.brokers {
		if int32(i+1) != c.coord {
			fzCheckLogs(t, b)
		}
	}
}

// TestTxnCoordinatorKilledAfterCommit: the coordinator dies right after it
// answered EndTxn(commit), when its markers may not all be written yet.
// The new coordinator finds the transaction prepared and writes them:
// read_committed consumers see every record of the transaction, once,
// and reach the end of every partition; the producer then commits another
// transaction at the new coordinator.
func TestTxnCoordinatorKilledAfterCommit(t *testing.T) {
	ctx := testContext(t, 150*time.Second)
	c := txfStart(ctx, t, "txfafter")
	prod := txnProducer(t, c.seeds[0], c.id, kgo.SeedBrokers(c.seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgoFailureLog(t, "producer"))
	pid, epoch, err := prod.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	first := c.produceEach(ctx, t, prod, "first", 10)
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("EndTransaction(commit): %v", err)
	}
	c.killCoordinator(t)
	adm := c.survivorAdmin(t)

	d := txxWaitState(ctx, t, adm, c.id, "CompleteCommit", 40*time.Second)
	if d.Coordinator == c.coord || d.ProducerID != pid || d.ProducerEpoch != epoch {
		t.Fatalf("after the failover: %+v, want a new coordinator (not %d), producer %d epoch %d", d, c.coord, pid, epoch)
	}
	txfCheckCommitted(ctx, t, c.survivors(), c.topic, first)

	// The producer still has the dead broker cached as its coordinator.
	// Its AddPartitionsToTxn there fails to dial (retried), and once a
	// metadata refresh no longer lists that broker kgo takes the next
	// failure ("unknown broker") as fatal for the transaction, not as a
	// reason to look the coordinator up again; it says the client "can
	// recover after EndTransaction", but its abort then meets
	// INVALID_TXN_STATE (the new coordinator has no transaction open, as
	// Kafka answers). Against Kafka the same happens once the dead broker
	// is fenced out of the metadata. So, as an application does after a
	// fatal producer error, the test closes the producer and runs the
	// transaction again with a new one of the same transactional id,
	// once; anything else, or a second failure, fails it.
	var second []string
	for attempt := 1; ; attempt++ {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		second = second[:0]
		for p := range int32(3) {
			for i := range 3 {
				v := fmt.Sprintf("second-p%d-%d", p, i)
				recs = append(recs, &kgo.Record{Topic: c.topic, Partition: p, Value: []byte(v)})
				second = append(second, v)
			}
		}
		produceErr := prod.ProduceSync(ctx, recs...).FirstErr()
		if produceErr != nil && attempt == 1 && strings.Contains(produceErr.Error(), "unknown broker") {
			actx, acancel := context.WithTimeout(ctx, 60*time.Second)
			abortErr := prod.EndTransaction(actx, kgo.TryAbort)
			acancel()
			t.Logf("first attempt of the second transaction: %v (kgo gave up on the dead coordinator; abort: %v); again with a new producer", produceErr, abortErr)
			prod.Close()
			prod = txnProducer(t, c.survivors()[0], c.id, kgo.SeedBrokers(c.survivors()...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgoFailureLog(t, "second producer"))
			continue
		}
		if produceErr != nil {
			t.Fatalf("produce the second transaction (attempt %d): %v", attempt, produceErr)
		}
		break
	}
	ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = prod.EndTransaction(ectx, kgo.TryCommit)
	cancel()
	if err != nil {
		t.Fatalf("commit at the new coordinator: %v", err)
	}
	txfCheckCommitted(ctx, t, c.survivors(), c.topic, slices.Concat(first, second))
	for i, b := range c.brokers {
		if int32(i+1) != c.coord {
			fzCheckLogs(t, b)
		}
	}
}

// TestTxnCoordinatorKilledWithMarkersPending makes sure the coordinator
// dies with its markers not all written: one partition of the transaction
// (replication factor 1) is on a broker that is killed before EndTxn, so
// no marker can reach it. EndTxn(commit) is still answered (PrepareCommit
// stored) and the transaction stays PrepareCommit; then the coordinator
// is killed too, and the partition's broker restarted. The new
// coordinator must find the prepared transaction and write the missing
// marker: read_committed consumers see every record of the transaction
// once, in both topics, and the transaction ends CompleteCommit.
//
// The cluster runs on the first broker's etcd (startSharedEtcdCluster),
// so that two brokers (neither of them the first) can be down at once.
func TestTxnCoordinatorKilledWithMarkersPending(t *testing.T) {
	ctx := testContext(t, 150*time.Second)
	brokers := startSharedEtcdCluster(t, 3)
	seeds := replAddrs(brokers, -1)
	cl := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...))
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(15000)
	topic := fzTopic(t, "txfpend")
	replCreateTopic(ctx, t, adm, topic, 3, 3, nil)
	replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)

	// A transactional id coordinated by broker 2 or 3 (broker 1 holds the
	// etcd and stays up).
	var id string
	var coord int32
	for i := 0; coord == 0 || coord == 1; i++ {
		if i == 64 {
			t.Fatalf("no transactional id among 64 coordinated by broker 2 or 3")
		}
		id = fmt.Sprintf("txfpend-%s-%d", topic, i)
		fzWaitFor(t, 30*time.Second, "a coordinator for "+id, func() error {
			r := adm.FindTxnCoordinators(ctx, id)[id]
			if r.Err != nil || r.NodeID <= 0 {
				return fmt.Errorf("coordinator %d: %v %s", r.NodeID, r.Err, r.ErrMessage)
			}
			coord = r.NodeID
			return nil
		})
	}
	other := 5 - coord // the one of brokers 2 and 3 that does not coordinate id
	replWaitISR(ctx, t, adm, "__transaction_state", 3, 30*time.Second)

	// A second topic, one replica, on the other broker (moved there by a
	// reassignment if the controller placed it elsewhere).
	single := topic + "-single"
	replCreateTopic(ctx, t, adm, single, 1, 1, nil)
	if r := replPartition(ctx, t, adm, single, 0).Replicas; !slices.Equal(r, []int32{other}) {
		if err := rsAlter(ctx, t, adm, single, 0, []int32{other}); err != nil {
			t.Fatalf("reassign %s to broker %d: %v", single, other, err)
		}
	}
	fzWaitFor(t, 30*time.Second, single+" on broker "+strconv.Itoa(int(other))+" only", func() error {
		if pd := replPartition(ctx, t, adm, single, 0); pd.Leader != other || !slices.Equal(pd.Replicas, []int32{other}) {
			return fmt.Errorf("leader %d, replicas %v", pd.Leader, pd.Replicas)
		}
		return nil
	})

	prod := txnProducer(t, seeds[0], id, kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var want, wantSingle []string
	var recs []*kgo.Record
	for i := range 10 {
		for p := range int32(3) {
			v := fmt.Sprintf("multi-p%d-%d", p, i)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
			want = append(want, v)
		}
		v := fmt.Sprintf("single-%d", i)
		recs = append(recs, &kgo.Record{Topic: single, Partition: 0, Value: []byte(v)})
		wantSingle = append(wantSingle, v)
	}
	fzProduceSync(ctx, t, prod, recs...)

	// The broker of the single-replica partition dies: no marker can
	// reach that partition until it is back.
	brokers[other-1].Kill()
	t.Logf("killed broker %d, the only replica of %s", other, single)
	live := replAddrs(brokers, other)
	ladm := kadm.NewClient(fzClient(t, live[0], kgo.SeedBrokers(live...)))
	ladm.SetTimeoutMillis(15000)
	fzWaitFor(t, 30*time.Second, single+" offline", func() error {
		if l := replPartition(ctx, t, ladm, single, 0).Leader; l >= 0 {
			return fmt.Errorf("leader %d", l)
		}
		return nil
	})
	ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err := prod.EndTransaction(ectx, kgo.TryCommit)
	cancel()
	if err != nil {
		t.Fatalf("EndTransaction(commit) with one partition offline: %v (it is answered once PrepareCommit is stored)", err)
	}
	d, err := txxDescribe(ctx, ladm, id)
	if err != nil || d.State != "PrepareCommit" || d.Coordinator != coord {
		t.Fatalf("after EndTxn with a partition offline: %+v %v, want PrepareCommit at broker %d", d, err, coord)
	}
	time.Sleep(time.Second) // time passing is what is tested: the commit must stay pending
	if d, err := txxDescribe(ctx, ladm, id); err != nil || d.State != "PrepareCommit" {
		t.Fatalf("a second later: %+v %v, want still PrepareCommit (a partition is offline)", d, err)
	}
	// The partitions that are up have their commit marker already.
	txfCheckCommitted(ctx, t, live, topic, want)

	// The coordinator dies with the transaction prepared; the single
	// replica comes back.
	brokers[coord-1].Kill()
	t.Logf("killed broker %d, the coordinator of %s", coord, id)
	brokers[other-1].Restart()
	t.Logf("restarted broker %d", other)
	live = replAddrs(brokers, coord)
	ladm = kadm.NewClient(fzClient(t, live[0], kgo.SeedBrokers(live...)))
	ladm.SetTimeoutMillis(15000)

	// kadm clients made earlier may keep the dead coordinator: ask until
	// a fresh lookup names a live one.
	raw := fzDial(t, brokers[0].Addr)
	fzWaitFor(t, 40*time.Second, "the transaction completed by a new coordinator", func() error {
		freq := kmsg.NewPtrFindCoordinatorRequest()
		freq.SetVersion(4)
		freq.CoordinatorType = 1
		freq.CoordinatorKeys = []string{id}
		rc := raw.roundTrip(freq).(*kmsg.FindCoordinatorResponse).Coordinators[0]
		if rc.ErrorCode != 0 || rc.NodeID == coord {
			return fmt.Errorf("coordinator %d, error %s", rc.NodeID, fzErrCode(rc.ErrorCode))
		}
		d, err := txxDescribe(ctx, ladm, id)
		if err != nil {
			return err
		}
		if d.State != "CompleteCommit" {
			return fmt.Errorf("state %s at broker %d", d.State, d.Coordinator)
		}
		return nil
	})
	txfCheckCommitted(ctx, t, live, single, wantSingle)
	txfCheckCommitted(ctx, t, live, topic, want)
	for i, b := range brokers {
		if int32(i+1) != coord {
			fzCheckLogs(t, b)
		}
	}
}

// txfFindCoordinator asks raw (FindCoordinator v4) for the coordinator of
// key (typ 0: group, 1: transaction) and returns its node id, or an error.
func txfFindCoordinator(raw *fzRaw, typ int8, key string) (int32, error) {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.SetVersion(4)
	req.CoordinatorType = typ
	req.CoordinatorKeys = []string{key}
	resp := raw.roundTrip(req).(*kmsg.FindCoordinatorResponse)
	if len(resp.Coordinators) != 1 {
		return -1, fmt.Errorf("%d coordinators in the answer", len(resp.Coordinators))
	}
	rc := resp.Coordinators[0]
	if rc.ErrorCode != 0 || rc.NodeID <= 0 {
		return -1, fmt.Errorf("coordinator %d, error %s", rc.NodeID, fzErrCode(rc.ErrorCode))
	}
	return rc.NodeID, nil
}

// TestTxnOffsetsGroupCoordinatorKilled: offsets committed in a
// transaction are pending in the group's partition of __consumer_offsets
// (replication factor 3). When the group's coordinator is killed with the
// transaction open, the new leader of that partition replays them as
// pending: require_stable OffsetFetch still answers
// UNSTABLE_OFFSET_COMMIT and a plain one the previous offset. The
// transaction coordinator (alive) then commits: its marker reaches the new
// leader, and the offsets become the group's.
func TestTxnOffsetsGroupCoordinatorKilled(t *testing.T) {
	ctx := testContext(t, 150*time.Second)
	brokers := startQuorumCluster(t, 3, "--etcd-lease-ttl", "2s", "--config", "group.initial.rebalance.delay.ms=0")
	seeds := replAddrs(brokers, -1)
	adm := kadm.NewClient(fzClient(t, seeds[0], kgo.SeedBrokers(seeds...)))
	adm.SetTimeoutMillis(15000)
	topic, group := fzTopic(t, "txfgc"), fzTopic(t, "txfgc-g")
	replCreateTopic(ctx, t, adm, topic, 2, 3, nil)
	replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)

	raw := fzDial(t, brokers[0].Addr)
	var gc int32
	fzWaitFor(t, 30*time.Second, "the coordinator of "+group, func() error {
		var err error
		gc, err = txfFindCoordinator(raw, 0, group)
		return err
	})
	// A transactional id coordinated by another broker than the group.
	var id string
	var tc int32
	for i := 0; tc == 0 || tc == gc; i++ {
		if i == 64 {
			t.Fatalf("no transactional id among 64 coordinated elsewhere than broker %d", gc)
		}
		id = fmt.Sprintf("txfgc-%s-%d", topic, i)
		fzWaitFor(t, 30*time.Second, "the coordinator of "+id, func() error {
			var err error
			tc, err = txfFindCoordinator(raw, 1, id)
			return err
		})
	}
	replWaitISR(ctx, t, adm, "__consumer_offsets", 3, 30*time.Second)
	replWaitISR(ctx, t, adm, "__transaction_state", 3, 30*time.Second)
	t.Logf("group coordinator %d, transaction coordinator %d", gc, tc)

	var base kadm.Offsets
	base.AddOffset(topic, 0, 3, -1)
	base.AddOffset(topic, 1, 4, -1)
	if resp, err := adm.CommitOffsets(ctx, group, base); err != nil || resp.Error() != nil {
		t.Fatalf("CommitOffsets: %v %v", err, resp.Error())
	}
	txnConn := fzDial(t, brokers[tc-1].Addr)
	groupConn := fzDial(t, brokers[gc-1].Addr)
	pid, epoch := txoInit(t, txnConn, id)
	if code := txoAddOffsets(t, txnConn, id, pid, epoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %s", fzErrCode(code))
	}
	if codes := txoCommit(t, groupConn, id, pid, epoch, group, topic, map[int32]int64{0: 10, 1: 11}); codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("TxnOffsetCommit: %v", codes)
	}
	txoExpect(t, "open transaction", groupConn, 7, true, group, topic, map[int32]int64{0: -88, 1: -88})

	brokers[gc-1].Kill()
	t.Logf("killed broker %d, the coordinator of %s", gc, group)
	var ngc int32
	fzWaitFor(t, 30*time.Second, "a new coordinator of "+group, func() error {
		n, err := txfFindCoordinator(txnConn, 0, group)
		if err != nil {
			return err
		}
		if n == gc {
			return fmt.Errorf("still %d", n)
		}
		ngc = n
		return nil
	})
	newConn := fzDial(t, brokers[ngc-1].Addr)
	// The new coordinator may still be loading the partition.
	fzWaitFor(t, 30*time.Second, "OffsetFetch at the new coordinator", func() error {
		_, top := txoFetch(t, newConn, 7, false, group, topic)
		if top != 0 {
			return fmt.Errorf("%s", fzErrCode(top))
		}
		return nil
	})
	txoExpect(t, "open transaction at the new group coordinator, require_stable", newConn, 7, true, group, topic, map[int32]int64{0: -88, 1: -88})
	txoExpect(t, "open transaction at the new group coordinator", newConn, 7, false, group, topic, map[int32]int64{0: 3, 1: 4})

	if code := txoEnd(t, txnConn, id, pid, epoch, true); code != 0 {
		t.Fatalf("EndTxn(commit): %s", fzErrCode(code))
	}
	txoWait(t, "the committed offsets at the new group coordinator", newConn, 7, true, group, topic, map[int32]int64{0: 10, 1: 11})
	txxWaitState(ctx, t, adm, id, "CompleteCommit", 20*time.Second)

	// Another transaction, aborted, at the new coordinator.
	if code := txoAddOffsets(t, txnConn, id, pid, epoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %s", fzErrCode(code))
	}
	if codes := txoCommit(t, newConn, id, pid, epoch, group, topic, map[int32]int64{0: 20}); codes[0] != 0 {
		t.Fatalf("TxnOffsetCommit at the new coordinator: %v", codes)
	}
	if code := txoEnd(t, txnConn, id, pid, epoch, false); code != 0 {
		t.Fatalf("EndTxn(abort): %s", fzErrCode(code))
	}
	txoWait(t, "the aborted offsets dropped at the new group coordinator", newConn, 7, true, group, topic, map[int32]int64{0: 10, 1: 11})
	for i, b := range brokers {
		if int32(i+1) != gc {
			fzCheckLogs(t, b)
		}
	}
}
