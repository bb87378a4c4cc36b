package integration

// Offsets committed in a transaction (AddOffsetsToTxn, TxnOffsetCommit),
// driven with raw requests so every step and answer is checked: while the
// transaction is open they are pending (OffsetFetch with require_stable
// answers UNSTABLE_OFFSET_COMMIT for their partitions; without it the
// previous committed offset), an abort drops them, a commit makes them
// the group's offsets, and pending offsets survive a kill -9 of the
// broker until a new producer of the transactional id fences the old one
// (which aborts them). A zombie's commit after the fence is refused.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txoRetriable are the codes a client retries on these requests:
// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
// NOT_COORDINATOR, CONCURRENT_TRANSACTIONS.
func txoRetriable(code int16) bool {
	return code == 14 || code == 15 || code == 16 || code == 51
}

// txoRetry runs req until its code is not a retriable one, for up to 30s.
func txoRetry(t *testing.T, what string, req func() int16) int16 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := req()
		if !txoRetriable(code) {
			return code
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after 30s", what, fzErrCode(code))
		}
		time.Sleep(100 * time.Millisecond) // polling interval of a loop with a deadline
	}
}

// txoInit is InitProducerId v4 for transactional id id.
func txoInit(t *testing.T, raw *fzRaw, id string) (int64, int16) {
	t.Helper()
	var resp *kmsg.InitProducerIDResponse
	code := txoRetry(t, "InitProducerId", func() int16 {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(4)
		req.TransactionalID = kmsg.StringPtr(id)
		req.TransactionTimeoutMillis = 60000
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp = raw.roundTrip(req).(*kmsg.InitProducerIDResponse)
		return resp.ErrorCode
	})
	if code != 0 {
		t.Fatalf("InitProducerId(%s): %s", id, fzErrCode(code))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// txoAddOffsets is AddOffsetsToTxn v3.
func txoAddOffsets(t *testing.T, raw *fzRaw, id string, pid int64, epoch int16, group string) int16 {
	t.Helper()
	return txoRetry(t, "AddOffsetsToTxn", func() int16 {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.SetVersion(3)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = id, pid, epoch, group
		return raw.roundTrip(req).(*kmsg.AddOffsetsToTxnResponse).ErrorCode
	})
}

// txoCommit is TxnOffsetCommit v3 (no group member: generation -1) of
// offsets for topic's partitions; it returns each partition's code.
func txoCommit(t *testing.T, raw *fzRaw, id string, pid int64, epoch int16, group, topic string, offsets map[int32]int64) map[int32]int16 {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.SetVersion(3)
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = id, group, pid, epoch
	req.Generation, req.MemberID = -1, ""
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	for p, o := range offsets {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, o, -1
		rp.Metadata = kmsg.StringPtr(fmt.Sprintf("txn-%d", o))
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := raw.roundTrip(req).(*kmsg.TxnOffsetCommitResponse)
	out := map[int32]int16{}
	for _, st := range resp.Topics {
		if st.Topic != topic {
			t.Fatalf("TxnOffsetCommit: answer for topic %q", st.Topic)
		}
		for _, sp := range st.Partitions {
			out[sp.Partition] = sp.ErrorCode
		}
	}
	if len(out) != len(offsets) {
		t.Fatalf("TxnOffsetCommit of %v: answered %v", offsets, out)
	}
	return out
}

// txoEnd is EndTxn v3.
func txoEnd(t *testing.T, raw *fzRaw, id string, pid int64, epoch int16, commit bool) int16 {
	t.Helper()
	return txoRetry(t, "EndTxn", func() int16 {
		req := kmsg.NewPtrEndTxnRequest()
		req.SetVersion(3)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
		return raw.roundTrip(req).(*kmsg.EndTxnResponse).ErrorCode
	})
}

// txoFetched is one partition of an OffsetFetch answer.
type txoFetched struct {
	offset int64
	code   int16
}

func (f txoFetched) String() string { return fmt.Sprintf("%d/%s", f.offset, fzErrCode(f.code)) }

// txoFetch sends OffsetFetch at version (v5-v7: one group; v8+: the
// groups array) for topic's partitions 0 and 1. It returns each
// partition's offset and code, and the top-level (or group) code.
func txoFetch(t *testing.T, raw *fzRaw, version int16, stable bool, group, topic string) (map[int32]txoFetched, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.SetVersion(version)
	req.RequireStable = stable
	out := map[int32]txoFetched{}
	if version < 8 {
		req.Group = group
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0, 1}
		req.Topics = append(req.Topics, rt)
		resp := raw.roundTrip(req).(*kmsg.OffsetFetchResponse)
		for _, st := range resp.Topics {
			for _, sp := range st.Partitions {
				out[sp.Partition] = txoFetched{sp.Offset, sp.ErrorCode}
			}
		}
		return out, resp.ErrorCode
	}
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic, rt.Partitions = topic, []int32{0, 1}
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)
	resp := raw.roundTrip(req).(*kmsg.OffsetFetchResponse)
	if len(resp.Groups) != 1 {
		t.Fatalf("OffsetFetch v%d: %d groups in the answer", version, len(resp.Groups))
	}
	for _, st := range resp.Groups[0].Topics {
		for _, sp := range st.Partitions {
			out[sp.Partition] = txoFetched{sp.Offset, sp.ErrorCode}
		}
	}
	return out, resp.Groups[0].ErrorCode
}

// txoExpect checks an OffsetFetch: want maps each partition to its
// offset, or to -88 for UNSTABLE_OFFSET_COMMIT (whatever the offset).
func txoExpect(t *testing.T, what string, raw *fzRaw, version int16, stable bool, group, topic string, want map[int32]int64) {
	t.Helper()
	if err := txoCheck(t, raw, version, stable, group, topic, want); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func txoCheck(t *testing.T, raw *fzRaw, version int16, stable bool, group, topic string, want map[int32]int64) error {
	t.Helper()
	got, top := txoFetch(t, raw, version, stable, group, topic)
	if top != 0 {
		return fmt.Errorf("OffsetFetch v%d (require_stable %v): %s", version, stable, fzErrCode(top))
	}
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			return fmt.Errorf("OffsetFetch v%d (require_stable %v): partition %d missing from %v", version, stable, p, got)
		case w == -88 && g.code != 88:
			return fmt.Errorf("OffsetFetch v%d (require_stable %v): partition %d is %v, want UNSTABLE_OFFSET_COMMIT (88); all: %v", version, stable, p, g, got)
		case w != -88 && (g.code != 0 || g.offset != w):
			return fmt.Errorf("OffsetFetch v%d (require_stable %v): partition %d is %v, want offset %d; all: %v", version, stable, p, g, w, got)
		}
	}
	return nil
}

// txoWait waits until the OffsetFetch answer is want (markers are written
// after EndTxn is answered).
func txoWait(t *testing.T, what string, raw *fzRaw, version int16, stable bool, group, topic string, want map[int32]int64) {
	t.Helper()
	fzWaitFor(t, 20*time.Second, what, func() error {
		return txoCheck(t, raw, version, stable, group, topic, want)
	})
}

// txoKadm checks what kadm's FetchOffsets (no require_stable) says.
func txoKadm(ctx context.Context, t *testing.T, adm *kadm.Client, what, group, topic string, want map[int32]int64) {
	t.Helper()
	got := grpCommitted(ctx, t, adm, group, topic)
	for p, w := range want {
		if got[p] != w {
			t.Fatalf("%s: kadm FetchOffsets gives %v, want %v", what, got, want)
		}
	}
}

func TestTxnOffsetCommit(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := fzTopic(t, "txo"), fzTopic(t, "txo-g")
	id := "txo-" + topic
	fzCreateTopic(ctx, t, adm, topic, 2, nil)
	prod := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 40 {
		for part := range int32(2) {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: fmt.Appendf(nil, "p%d-%d", part, i)})
		}
	}
	fzProduceSync(ctx, t, prod, recs...)

	// The group's offsets before any transaction, committed plainly.
	var base kadm.Offsets
	base.AddOffset(topic, 0, 5, -1)
	base.AddOffset(topic, 1, 7, -1)
	if resp, err := adm.CommitOffsets(ctx, group, base); err != nil || resp.Error() != nil {
		t.Fatalf("CommitOffsets: %v %v", err, resp.Error())
	}
	raw := fzDial(t, p.Addr)
	txoExpect(t, "before any transaction", raw, 7, true, group, topic, map[int32]int64{0: 5, 1: 7})

	pid, epoch := txoInit(t, raw, id)

	// 1. Aborted: pending while open, gone after the abort.
	if code := txoAddOffsets(t, raw, id, pid, epoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %s", fzErrCode(code))
	}
	if codes := txoCommit(t, raw, id, pid, epoch, group, topic, map[int32]int64{0: 10}); codes[0] != 0 {
		t.Fatalf("TxnOffsetCommit: %v", codes)
	}
	for _, v := range []int16{7, 8, 9} {
		txoExpect(t, "open transaction, require_stable", raw, v, true, group, topic, map[int32]int64{0: -88, 1: 7})
		txoExpect(t, "open transaction, no require_stable", raw, v, false, group, topic, map[int32]int64{0: 5, 1: 7})
	}
	txoExpect(t, "open transaction, OffsetFetch v5", raw, 5, false, group, topic, map[int32]int64{0: 5, 1: 7})
	txoKadm(ctx, t, adm, "open transaction", group, topic, map[int32]int64{0: 5, 1: 7})
	d, err := txxDescribe(ctx, adm, id)
	if err != nil || d.State != "Ongoing" || len(d.Topics["__consumer_offsets"]) != 1 {
		t.Fatalf("open transaction: %+v %v, want Ongoing over one partition of __consumer_offsets", d, err)
	}
	if code := txoEnd(t, raw, id, pid, epoch, false); code != 0 {
		t.Fatalf("EndTxn(abort): %s", fzErrCode(code))
	}
	txoWait(t, "the aborted offsets dropped", raw, 7, true, group, topic, map[int32]int64{0: 5, 1: 7})
	txoKadm(ctx, t, adm, "after the abort", group, topic, map[int32]int64{0: 5, 1: 7})

	// 2. Committed: the group's offsets once the marker is in.
	if code := txoAddOffsets(t, raw, id, pid, epoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %s", fzErrCode(code))
	}
	if codes := txoCommit(t, raw, id, pid, epoch, group, topic, map[int32]int64{0: 20, 1: 21}); codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("TxnOffsetCommit: %v", codes)
	}
	txoExpect(t, "second transaction open, require_stable", raw, 8, true, group, topic, map[int32]int64{0: -88, 1: -88})
	if code := txoEnd(t, raw, id, pid, epoch, true); code != 0 {
		t.Fatalf("EndTxn(commit): %s", fzErrCode(code))
	}
	txoWait(t, "the committed offsets visible", raw, 7, true, group, topic, map[int32]int64{0: 20, 1: 21})
	txoKadm(ctx, t, adm, "after the commit", group, topic, map[int32]int64{0: 20, 1: 21})

	// 3. Pending across a kill -9, until a new producer fences the old one.
	if code := txoAddOffsets(t, raw, id, pid, epoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %s", fzErrCode(code))
	}
	if codes := txoCommit(t, raw, id, pid, epoch, group, topic, map[int32]int64{0: 30}); codes[0] != 0 {
		t.Fatalf("TxnOffsetCommit: %v", codes)
	}
	txoExpect(t, "third transaction open", raw, 7, true, group, topic, map[int32]int64{0: -88, 1: 21})
	p.Kill()
	p.Restart()
	raw = fzDial(t, p.Addr)
	adm = fzAdmin(t, p.Addr)
	// The group coordinator may still be loading its partition.
	fzWaitFor(t, 30*time.Second, "OffsetFetch after the restart", func() error {
		_, top := txoFetch(t, raw, 7, false, group, topic)
		if top != 0 {
			return fmt.Errorf("%s", fzErrCode(top))
		}
		return nil
	})
	txoExpect(t, "after the restart, require_stable", raw, 7, true, group, topic, map[int32]int64{0: -88, 1: 21})
	txoExpect(t, "after the restart, no require_stable", raw, 7, false, group, topic, map[int32]int64{0: 20, 1: 21})
	d = txrDescribeRetry(ctx, t, adm, id)
	if d.State != "Ongoing" || d.ProducerID != pid || d.ProducerEpoch != epoch {
		t.Fatalf("after the restart: %+v, want Ongoing with producer %d epoch %d", d, pid, epoch)
	}
	// Still pending a while later: nothing ends the transaction but its
	// producer, a fence or its (60 s) timeout.
	time.Sleep(time.Second) // time passing is what is tested: nothing may end the transaction
	txoExpect(t, "a second after the restart", raw, 7, true, group, topic, map[int32]int64{0: -88, 1: 21})

	pid2, epoch2 := txoInit(t, raw, id)
	if pid2 != pid || epoch2 <= epoch {
		t.Fatalf("InitProducerId by a new producer: %d epoch %d, want %d above epoch %d", pid2, epoch2, pid, epoch)
	}
	txoWait(t, "the fenced transaction's offsets dropped", raw, 7, true, group, topic, map[int32]int64{0: 20, 1: 21})

	// The old producer is fenced: it cannot end its transaction, nor
	// commit offsets again.
	if code := txoEnd(t, raw, id, pid, epoch, true); code != 90 && code != 47 {
		t.Fatalf("EndTxn(commit) by the fenced producer: %s, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", fzErrCode(code))
	}
	if codes := txoCommit(t, raw, id, pid, epoch, group, topic, map[int32]int64{0: 40}); codes[0] == 0 {
		t.Errorf("TxnOffsetCommit by the fenced producer accepted, want an error")
	}
	if err := txoCheck(t, raw, 7, true, group, topic, map[int32]int64{0: 20, 1: 21}); err != nil {
		t.Fatalf("after the fenced producer's commit attempt: %v", err)
	}

	// The new producer commits offsets.
	if code := txoAddOffsets(t, raw, id, pid2, epoch2, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn by the new producer: %s", fzErrCode(code))
	}
	if codes := txoCommit(t, raw, id, pid2, epoch2, group, topic, map[int32]int64{0: 25, 1: 26}); codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("TxnOffsetCommit by the new producer: %v", codes)
	}
	if code := txoEnd(t, raw, id, pid2, epoch2, true); code != 0 {
		t.Fatalf("EndTxn(commit) by the new producer: %s", fzErrCode(code))
	}
	txoWait(t, "the new producer's offsets", raw, 8, true, group, topic, map[int32]int64{0: 25, 1: 26})

	// A consumer of the group starts where the transactions left it.
	cons := fzClient(t, p.Addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	first := map[int32]int64{}
	for len(first) < 2 {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		fs := cons.PollFetches(pctx)
		cancel()
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) {
				t.Fatalf("group consumer: nothing within 20s (first offsets so far %v)", first)
			}
			t.Fatalf("group consumer: %v", fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if _, ok := first[r.Partition]; !ok {
				first[r.Partition] = r.Offset
			}
		})
	}
	if first[0] != 25 || first[1] != 26 {
		t.Fatalf("group consumer started at %v, want {0:25 1:26}", first)
	}
	fzCheckLogs(t, p)
}

// TestTxnOffsetCommitOutsideTransaction: a TxnOffsetCommit from a producer
// whose open transaction does not hold the group's offsets partition (no
// AddOffsetsToTxn: none open at all, or a late commit after the
// transaction ended) must be refused, as Gregor refuses a transactional
// produce to a partition outside the transaction
// (transaction.partition.verification.enable, KIP-890) and as Kafka's
// group coordinator verifies it. Accepted, its offsets would be pending
// with no transaction to end them: the partition would answer
// UNSTABLE_OFFSET_COMMIT to every require_stable OffsetFetch (kgo and
// Java read_committed group consumers) even after a fence and a restart,
// or be committed by the marker of a later, unrelated transaction of the
// producer.
func TestTxnOffsetCommitOutsideTransaction(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 60*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "txoout")
	fzCreateTopic(ctx, t, adm, topic, 2, nil)

	t.Run("no transaction open", func(t *testing.T) {
		group, id := fzTopic(t, "txoout-g"), fzTopic(t, "txoout-id")
		raw := fzDial(t, p.Addr)
		pid, epoch := txoInit(t, raw, id)
		codes := txoCommit(t, raw, id, pid, epoch, group, topic, map[int32]int64{1: 99})
		if codes[1] == 0 {
			t.Errorf("TxnOffsetCommit with no transaction open (no AddOffsetsToTxn): accepted, want an error such as INVALID_TXN_STATE")
		}
		// A new producer of the id: whatever the first one left must not
		// stay pending.
		txoInit(t, raw, id)
		fzWaitFor(t, 10*time.Second, "partition 1 stable after the fence", func() error {
			return txoCheck(t, raw, 7, true, group, topic, map[int32]int64{0: -1, 1: -1})
		})
	})

	t.Run("late commit after the end", func(t *testing.T) {
		group, id := fzTopic(t, "txoout-g"), fzTopic(t, "txoout-id")
		raw := fzDial(t, p.Addr)
		pid, epoch := txoInit(t, raw, id)
		if code := txoAddOffsets(t, raw, id, pid, epoch, group); code != 0 {
			t.Fatalf("AddOffsetsToTxn: %s", fzErrCode(code))
		}
		if codes := txoCommit(t, raw, id, pid, epoch, group, topic, map[int32]int64{0: 5}); codes[0] != 0 {
			t.Fatalf("TxnOffsetCommit in the transaction: %v", codes)
		}
		if code := txoEnd(t, raw, id, pid, epoch, true); code != 0 {
			t.Fatalf("EndTxn(commit): %s", fzErrCode(code))
		}
		txoWait(t, "the committed offset", raw, 7, true, group, topic, map[int32]int64{0: 5, 1: -1})
		codes := txoCommit(t, raw, id, pid, epoch, group, topic, map[int32]int64{0: 77})
		if codes[0] == 0 {
			t.Errorf("TxnOffsetCommit after the transaction ended: accepted, want an error such as INVALID_TXN_STATE")
		}
		if err := txoCheck(t, raw, 7, true, group, topic, map[int32]int64{0: 5, 1: -1}); err != nil {
			t.Errorf("after the late commit, with no transaction open: %v", err)
		}
		// The next transaction commits offsets of partition 1 only:
		// partition 0 must keep the offset of the transaction that
		// committed it.
		if code := txoAddOffsets(t, raw, id, pid, epoch, group); code != 0 {
			t.Fatalf("AddOffsetsToTxn: %s", fzErrCode(code))
		}
		if codes := txoCommit(t, raw, id, pid, epoch, group, topic, map[int32]int64{1: 50}); codes[1] != 0 {
			t.Fatalf("TxnOffsetCommit in the next transaction: %v", codes)
		}
		if code := txoEnd(t, raw, id, pid, epoch, true); code != 0 {
			t.Fatalf("EndTxn(commit): %s", fzErrCode(code))
		}
		fzWaitFor(t, 10*time.Second, "partition 1 committed by the next transaction", func() error {
			got, _ := txoFetch(t, raw, 7, false, group, topic)
			if got[1].offset != 50 {
				return fmt.Errorf("offsets %v", got)
			}
			return nil
		})
		if err := txoCheck(t, raw, 7, true, group, topic, map[int32]int64{0: 5, 1: 50}); err != nil {
			t.Errorf("after the next transaction: %v (the late commit went in with another transaction's marker)", err)
		}
	})
	fzCheckLogs(t, p)
}
