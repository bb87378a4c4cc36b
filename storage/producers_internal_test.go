package storage

import (
	"math"
	"reflect"
	"testing"
)

func TestSequenceWrap(t *testing.T) {
	for _, tc := range []struct{ first, delta, last int32 }{
		{0, 0, 0},
		{5, 3, 8},
		{math.MaxInt32, 0, math.MaxInt32},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32 - 1, 4, 2},
	} {
		if got := lastSeq(tc.first, tc.delta); got != tc.last {
			t.Errorf("lastSeq(%d, %d) = %d, want %d", tc.first, tc.delta, got, tc.last)
		}
	}
	if nextSeq(math.MaxInt32) != 0 || nextSeq(4) != 5 {
		t.Error("nextSeq does not wrap at MaxInt32")
	}
	// A producer whose sequence wrapped is in order.
	ps := producerStates{}
	h := batchHeader{base: 0, lastDelta: 1, producerID: 1, baseSeq: math.MaxInt32 - 1}
	_, _, _ = ps.update(&h, -1)
	next := batchHeader{base: 2, producerID: 1, baseSeq: 0}
	if dup, err := ps.check(&next); dup != nil || err != nil {
		t.Fatalf("sequence after the wrap: %v %v", dup, err)
	}
}

func TestProducerSnapshotRoundTrip(t *testing.T) {
	ps := producerStates{}
	for i := range 7 {
		h := batchHeader{base: int64(10 * i), lastDelta: 2, maxTs: int64(1000 + i), producerID: int64(i % 3), producerEpoch: 4, baseSeq: int32(3 * (i / 3))}
		_, _, _ = ps.update(&h, -1)
	}
	b := encodeProducerSnapshot(ps, []AbortedTxn{{1, 2, 3}, {4, 5, 9}}, 70)
	got, aborted, off, err := decodeProducerSnapshot(b)
	if err != nil || off != 70 || !reflect.DeepEqual(aborted, []AbortedTxn{{1, 2, 3}, {4, 5, 9}}) {
		t.Fatalf("decode: %v, offset %d", err, off)
	}
	norm := func(ps producerStates) map[int64][]ProducerBatch {
		out := map[int64][]ProducerBatch{}
		for id, e := range ps {
			for i := range e.n {
				out[id] = append(out[id], *e.batch(i))
			}
		}
		return out
	}
	if !reflect.DeepEqual(norm(got), norm(ps)) {
		t.Fatalf("round trip: %v, want %v", norm(got), norm(ps))
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		if _, _, _, err := decodeProducerSnapshot(c); err == nil {
			t.Fatalf("a flipped bit at %d decoded", i)
		}
	}
}

// FuzzDecodeProducerSnapshot: any file content decodes or fails cleanly,
// and what decodes encodes back to a file that decodes the same.
func FuzzDecodeProducerSnapshot(f *testing.F) {
	ps := producerStates{}
	h := batchHeader{base: 3, lastDelta: 1, producerID: 8, producerEpoch: 1, baseSeq: 0}
	_, _, _ = ps.update(&h, -1)
	f.Add(encodeProducerSnapshot(ps, []AbortedTxn{{8, 0, 4}}, 5))
	f.Add(encodeProducerSnapshot(producerStates{}, nil, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, aborted, off, err := decodeProducerSnapshot(b)
		if err != nil {
			return
		}
		again, aborted2, off2, err := decodeProducerSnapshot(encodeProducerSnapshot(got, aborted, off))
		if err != nil || off2 != off || len(again) != len(got) || !reflect.DeepEqual(aborted, aborted2) {
			t.Fatalf("re-encoded snapshot: %v, offset %d vs %d, %d vs %d producers", err, off2, off, len(again), len(got))
		}
	})
}
