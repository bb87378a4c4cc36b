package storage_test

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// idemBatch is a batch of n records from producer pid at epoch, first
// sequence seq.
func idemBatch(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	b := makeBatch(t, batchSpec{records: n, firstTs: 1_700_000_000_000, valueSize: 8})
	binary.BigEndian.PutUint64(b[43:], uint64(pid))
	binary.BigEndian.PutUint16(b[51:], uint16(epoch))
	binary.BigEndian.PutUint32(b[53:], uint32(seq))
	binary.BigEndian.PutUint32(b[17:], protocol.BatchCRC(b))
	return b
}

// appendIdem appends a copy of b and returns the result.
func appendIdem(l *storage.Log, b []byte) (storage.AppendResult, error) {
	return l.Append(append([]byte(nil), b...), 3)
}

func mustAppend(t *testing.T, l *storage.Log, b []byte, wantBase int64, wantDup bool) {
	t.Helper()
	res, err := appendIdem(l, b)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if res.BaseOffset != wantBase || res.Duplicate != wantDup {
		t.Fatalf("append: base %d duplicate %v, want %d %v", res.BaseOffset, res.Duplicate, wantBase, wantDup)
	}
}

func TestIdempotentAppendRules(t *testing.T) {
	e := newEnv(t, storage.Config{})
	l := e.open()
	const pid = 42
	b0 := idemBatch(t, pid, 0, 0, 3) // seq 0-2
	b1 := idemBatch(t, pid, 0, 3, 2) // seq 3-4
	mustAppend(t, l, simple(t, 1, 1), 0, false)
	mustAppend(t, l, b0, 1, false)
	mustAppend(t, l, b1, 4, false)
	// Retries of either: nothing written, the original offsets.
	mustAppend(t, l, b0, 1, true)
	mustAppend(t, l, b1, 4, true)
	if got := l.LogEndOffset(); got != 6 {
		t.Fatalf("log end %d after duplicates, want 6", got)
	}
	// A gap, and a sequence that is neither next nor a recent batch.
	if _, err := appendIdem(l, idemBatch(t, pid, 0, 6, 1)); !errors.Is(err, storage.ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v, want ErrOutOfOrderSequence", err)
	}
	if _, err := appendIdem(l, idemBatch(t, pid, 0, 1, 1)); !errors.Is(err, storage.ErrOutOfOrderSequence) {
		t.Fatalf("old sequence: %v, want ErrOutOfOrderSequence", err)
	}
	// A new epoch must start at 0, then the old epoch is fenced.
	if _, err := appendIdem(l, idemBatch(t, pid, 1, 5, 1)); !errors.Is(err, storage.ErrOutOfOrderSequence) {
		t.Fatalf("new epoch at sequence 5: %v, want ErrOutOfOrderSequence", err)
	}
	mustAppend(t, l, idemBatch(t, pid, 1, 0, 1), 6, false)
	if _, err := appendIdem(l, idemBatch(t, pid, 0, 5, 1)); !errors.Is(err, storage.ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch: %v, want ErrInvalidProducerEpoch", err)
	}
	// Another producer id is independent, and starts at any sequence.
	mustAppend(t, l, idemBatch(t, 7, 0, 100, 1), 7, false)
	// Only the last five batches are remembered.
	seq := int32(1)
	for i := range 6 {
		mustAppend(t, l, idemBatch(t, pid, 1, seq, 1), int64(8+i), false)
		seq++
	}
	mustAppend(t, l, idemBatch(t, pid, 1, 6, 1), 13, true) // the last one
	mustAppend(t, l, idemBatch(t, pid, 1, 2, 1), 9, true)  // the oldest of five
	if _, err := appendIdem(l, idemBatch(t, pid, 1, 1, 1)); !errors.Is(err, storage.ErrOutOfOrderSequence) {
		t.Fatalf("sixth-newest batch again: %v, want ErrOutOfOrderSequence", err)
	}
}

// TestProducerStateSurvivesRestart: after a clean close (snapshot), after
// a crash (no marker: snapshot of the last roll plus the active segment's
// headers) and without any snapshot (every header), retries are still
// recognised and the next sequence is still expected.
func TestProducerStateSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(t *testing.T, e *env, l *storage.Log)
	}{
		{"clean", func(t *testing.T, e *env, l *storage.Log) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"crash", func(t *testing.T, e *env, l *storage.Log) { l.Crash() }},
		{"no snapshot", func(t *testing.T, e *env, l *storage.Log) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(e.path("producer-state.snapshot")); err != nil {
				t.Fatal(err)
			}
		}},
		{"corrupt snapshot", func(t *testing.T, e *env, l *storage.Log) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			editFile(t, e.path("producer-state.snapshot"), func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Small segments, so the state spans rolls.
			e := newEnv(t, storage.Config{SegmentBytes: 300})
			l := e.open()
			var seq int32
			var last []byte
			var lastBase int64
			for i := range 12 {
				last = idemBatch(t, 5, 2, seq, 2)
				lastBase = int64(2 * i)
				mustAppend(t, l, last, lastBase, false)
				seq += 2
			}
			if len(l.SegmentBases()) < 3 {
				t.Fatalf("segments %v: the test wants several", l.SegmentBases())
			}
			tc.close(t, e, l)
			l = e.open()
			mustAppend(t, l, last, lastBase, true)
			if _, err := appendIdem(l, idemBatch(t, 5, 2, seq+1, 1)); !errors.Is(err, storage.ErrOutOfOrderSequence) {
				t.Fatalf("gap after restart: %v", err)
			}
			if _, err := appendIdem(l, idemBatch(t, 5, 1, 0, 1)); !errors.Is(err, storage.ErrInvalidProducerEpoch) {
				t.Fatalf("old epoch after restart: %v", err)
			}
			mustAppend(t, l, idemBatch(t, 5, 2, seq, 1), 24, false)
		})
	}
}

// TestProducerStateAfterTruncation: cutting the log forgets the batches
// cut, so the producer's retry of a cut batch is written again, and a
// restart after the cut does not bring them back.
func TestProducerStateAfterTruncation(t *testing.T) {
	e := newEnv(t, storage.Config{SegmentBytes: 300})
	l := e.open()
	var batches [][]byte
	for i := range 8 {
		b := idemBatch(t, 9, 0, int32(2*i), 2)
		batches = append(batches, b)
		mustAppend(t, l, b, int64(2*i), false)
	}
	if err := l.Close(); err != nil { // a snapshot at offset 16
		t.Fatal(err)
	}
	l = e.open()
	if _, err := l.TruncateTo(10); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, batches[4], 8, true)   // still there
	mustAppend(t, l, batches[5], 10, false) // cut: written again
	l.Crash()
	l = e.open()
	mustAppend(t, l, batches[5], 10, true)
	mustAppend(t, l, batches[6], 12, false)
	states := l.Producers()
	if len(states) != 1 || states[0].ProducerID != 9 || len(states[0].Batches) != 5 ||
		states[0].Batches[4] != (storage.ProducerBatch{FirstSeq: 12, LastSeq: 13, FirstOffset: 12, LastOffset: 13}) {
		t.Fatalf("producer state %+v", states)
	}
}

// TestReplicaAppendsKeepProducerState: a follower's log, built only from
// AppendReplica, deduplicates like the leader's once it leads.
func TestReplicaAppendsKeepProducerState(t *testing.T) {
	leader := newEnv(t, storage.Config{}).open()
	follower := newEnv(t, storage.Config{}).open()
	for i := range 3 {
		b := idemBatch(t, 11, 0, int32(i), 1)
		if _, err := appendIdem(leader, b); err != nil {
			t.Fatal(err)
		}
	}
	rr, err := leader.Read(0, 1<<20, true, leader.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	var copied []byte
	for _, r := range rr.Ranges {
		if copied, err = r.AppendTo(copied); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range splitBatches(t, copied) {
		if _, err := follower.AppendReplica(b); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, follower, idemBatch(t, 11, 0, 2, 1), 2, true)
	mustAppend(t, follower, idemBatch(t, 11, 0, 3, 1), 3, false)
}

// TestExpireProducers: an idle producer's state goes (its retry is then a
// new producer's first batch, written again); one with an open
// transaction stays.
func TestExpireProducers(t *testing.T) {
	l := newEnv(t, storage.Config{}).open()
	idle := idemBatch(t, 1, 0, 0, 1) // timestamp 1_700_000_000_000
	mustAppend(t, l, idle, 0, false)
	open := idemBatch(t, 2, 0, 0, 1)
	binary.BigEndian.PutUint16(open[21:], binary.BigEndian.Uint16(open[21:])|protocol.AttrTransactional)
	binary.BigEndian.PutUint32(open[17:], protocol.BatchCRC(open))
	mustAppend(t, l, open, 1, false)
	if n := l.ExpireProducers(1_600_000_000_000); n != 0 {
		t.Fatalf("expired %d producers newer than the cutoff", n)
	}
	if n := l.ExpireProducers(1_800_000_000_000); n != 1 {
		t.Fatalf("expired %d producers, want the idle one", n)
	}
	mustAppend(t, l, idle, 2, false) // no longer known: written as new
	if ps := l.Producers(); len(ps) != 2 {
		t.Fatalf("producers %+v", ps)
	}
}

// Producers expired after a clean start stay expired across a clean
// restart: expiry writes nothing, so the clean close still writes the
// snapshot (it would otherwise keep the marker and the old snapshot).
func TestExpiredProducersAcrossCleanRestart(t *testing.T) {
	e := newEnv(t, storage.Config{})
	l := e.open()
	mustAppend(t, l, idemBatch(t, 1, 0, 0, 1), 0, false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if n := l.ExpireProducers(1_800_000_000_000); n != 1 {
		t.Fatalf("expired %d producers, want 1", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if ps := l.Producers(); len(ps) != 0 {
		t.Fatalf("producers after a clean restart: %+v, want none", ps)
	}
}
