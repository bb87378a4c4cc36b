package storage_test

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// txnBatch is a transactional batch of n records from pid at epoch.
func txnBatch(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	b := idemBatch(t, pid, epoch, seq, n)
	binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|protocol.AttrTransactional)
	binary.BigEndian.PutUint32(b[17:], protocol.BatchCRC(b))
	return b
}

func TestTransactionsLastStableOffsetAndAborted(t *testing.T) {
	e := newEnv(t, storage.Config{SegmentBytes: 400})
	l := e.open()
	mustAppend(t, l, simple(t, 1, 1), 0, false)         // 0
	mustAppend(t, l, txnBatch(t, 1, 0, 0, 2), 1, false) // 1-2: txn A (pid 1)
	mustAppend(t, l, txnBatch(t, 2, 0, 0, 1), 3, false) // 3: txn B (pid 2)
	mustAppend(t, l, txnBatch(t, 1, 0, 2, 1), 4, false) // 4: txn A
	l.SetHighWatermark(l.LogEndOffset())
	if got := l.LastStableOffset(); got != 1 {
		t.Fatalf("LSO %d with A open from 1, want 1", got)
	}
	if res, err := l.AppendMarker(1, 0, false, 0, 3, 1000); err != nil || res.BaseOffset != 5 { // abort A at 5
		t.Fatalf("abort marker: %+v %v", res, err)
	}
	l.SetHighWatermark(l.LogEndOffset())
	if got := l.LastStableOffset(); got != 3 {
		t.Fatalf("LSO %d with B open from 3, want 3", got)
	}
	if _, err := l.AppendMarker(2, 0, true, 0, 3, 1000); err != nil { // commit B at 6
		t.Fatal(err)
	}
	if got := l.LastStableOffset(); got != 6 {
		t.Fatalf("LSO %d before the high watermark moves, want the high watermark 6", got)
	}
	l.SetHighWatermark(l.LogEndOffset())
	if got := l.LastStableOffset(); got != 7 {
		t.Fatalf("LSO %d with nothing open, want the high watermark 7", got)
	}
	wantA := []storage.AbortedTxn{{ProducerID: 1, FirstOffset: 1, LastOffset: 5}}
	if got := l.AbortedTxns(0, 7); !reflect.DeepEqual(got, wantA) {
		t.Fatalf("aborted %+v, want %+v", got, wantA)
	}
	if got := l.AbortedTxns(6, 7); len(got) != 0 {
		t.Fatalf("aborted in [6,7): %+v, want none", got)
	}
	if got := l.AbortedTxns(0, 1); len(got) != 0 {
		t.Fatalf("aborted in [0,1): %+v, want none", got)
	}
	// A marker from an older epoch is refused.
	mustAppend(t, l, idemBatch(t, 1, 3, 0, 1), 7, false)
	if _, err := l.AppendMarker(1, 2, false, 0, 3, 1000); !errors.Is(err, storage.ErrInvalidProducerEpoch) {
		t.Fatalf("old-epoch marker: %v", err)
	}
	// Open again, then restart (clean, crash): the state comes back.
	mustAppend(t, l, txnBatch(t, 2, 0, 1, 1), 8, false) // txn C (pid 2) open from 8
	for _, crash := range []bool{false, true} {
		if crash {
			l.Crash()
		} else if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = e.open()
		if got := l.LastStableOffset(); got != 8 {
			t.Fatalf("crash %v: LSO %d after restart, want 8", crash, got)
		}
		if got := l.AbortedTxns(0, 9); !reflect.DeepEqual(got, wantA) {
			t.Fatalf("crash %v: aborted %+v after restart", crash, got)
		}
	}
	// Truncating below the abort marker forgets the abort and reopens A.
	if _, err := l.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	if got := l.AbortedTxns(0, 9); len(got) != 0 {
		t.Fatalf("aborted after the marker was cut: %+v", got)
	}
	l.SetHighWatermark(l.LogEndOffset())
	if got := l.LastStableOffset(); got != 1 {
		t.Fatalf("LSO %d after the cut reopened A, want 1", got)
	}
	states := map[int64]int64{}
	for _, ps := range l.Producers() {
		states[ps.ProducerID] = ps.TxnFirstOffset
	}
	if !reflect.DeepEqual(states, map[int64]int64{1: 1, 2: 3}) {
		t.Fatalf("open transactions by producer after the cut: %v", states)
	}
}
