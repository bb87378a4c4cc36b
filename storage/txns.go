package storage

// Transactions in a partition: which producers have a transaction open
// here (from its first transactional batch to its marker), which
// transactions were aborted (for read_committed fetches), and the last
// stable offset.

import (
	"fmt"
	"sort"

	"github.com/gregorbroker/gregor/protocol"
)

// AbortedTxn is one aborted transaction of a partition: its producer and
// its range of offsets, from its first batch to its abort marker.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64 // the abort marker's offset
}

// producerLog is the state a log's batches build: the producers and the
// aborted transactions (by marker offset, ascending). Owned by the
// append lock.
type producerLog struct {
	producers producerStates
	aborted   []AbortedTxn
}

// apply records batch h (ctl: its marker type, for a control batch). It
// reports whether a transaction opened or ended, which changes what
// publishTxnsLocked publishes.
func (pl *producerLog) apply(h *batchHeader, ctl int16) (txnChanged bool) {
	a, aborted, txnChanged := pl.producers.update(h, ctl)
	if aborted {
		pl.aborted = append(pl.aborted, a)
	}
	return txnChanged
}

// abortedSince is the aborted transactions that end at or after start.
func (pl *producerLog) abortedSince(start int64) []AbortedTxn {
	i := sort.Search(len(pl.aborted), func(i int) bool { return pl.aborted[i].LastOffset >= start })
	return pl.aborted[i:]
}

// firstOpen is the first offset of the earliest open transaction; -1 when
// none is open.
func (pl *producerLog) firstOpen() int64 {
	first := int64(-1)
	for _, e := range pl.producers {
		if e.txnFirst >= 0 && (first < 0 || e.txnFirst < first) {
			first = e.txnFirst
		}
	}
	return first
}

// publishTxnsLocked makes the transaction state visible to readers: the
// first unstable offset and the aborted list. Readers share the aborted
// list's array: it is only ever appended to (the elements they can see
// never change) or replaced. l.mu held.
func (l *Log) publishTxnsLocked() {
	l.firstUnstable.Store(l.pstate.firstOpen())
	aborted := l.pstate.aborted
	l.abortedPub.Store(&aborted)
}

// LastStableOffset is the offset below which every transaction is decided:
// the high watermark, or the first offset of the earliest transaction
// still open, if lower. read_committed consumers read up to it.
func (l *Log) LastStableOffset() int64 {
	hw := l.hw.Load()
	if f := l.firstUnstable.Load(); f >= 0 && f < hw {
		return f
	}
	return hw
}

// AbortedTxns returns the aborted transactions with records in
// [from, to): what a read_committed consumer of that range must drop.
func (l *Log) AbortedTxns(from, to int64) []AbortedTxn {
	p := l.abortedPub.Load()
	if p == nil {
		return nil
	}
	all := *p
	i := sort.Search(len(all), func(i int) bool { return all[i].LastOffset >= from })
	var out []AbortedTxn
	for _, a := range all[i:] {
		if a.FirstOffset < to {
			out = append(out, a)
		}
	}
	return out
}

// AppendMarker writes a transaction marker (a control batch) for
// producerID at epoch: commit or abort, written by the transaction
// coordinator (WriteTxnMarkers). An epoch older than the partition's for
// that producer is ErrInvalidProducerEpoch.
func (l *Log) AppendMarker(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, leaderEpoch int32, ts int64) (AppendResult, error) {
	l.settleMarker() // its fsync before the append lock, not under it
	batch := protocol.NewControlBatch(producerID, epoch, commit, coordinatorEpoch, ts)
	h, err := checkAppendBatch(batch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: marker for %s: %w", l.dir, err)
	}
	l.mu.Lock()
	if e := l.pstate.producers[producerID]; e != nil && epoch < e.epoch && !l.mu.closed {
		l.mu.Unlock()
		return AppendResult{}, fmt.Errorf("storage: marker for %s: %w: producer %d epoch %d, partition has %d", l.dir, ErrInvalidProducerEpoch, producerID, epoch, e.epoch)
	}
	res, wait, err := l.appendLocked(batch, leaderEpoch, &h)
	l.mu.Unlock()
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: marker for %s: %w", l.dir, err)
	}
	if wait {
		if err := l.waitSynced(res.LastOffset + 1); err != nil {
			return res, fmt.Errorf("storage: marker for %s: fsync: %w", l.dir, err)
		}
	}
	return res, nil
}

// controlType is the marker type of control batch b (whole, in memory),
// or -1 when b is not a control batch with a producer.
func controlType(h *batchHeader, b []byte) (int16, error) {
	if h.attrs&protocol.AttrControl == 0 || h.producerID < 0 {
		return -1, nil
	}
	return protocol.ParseControlBatch(b)
}

// maxControlBatch bounds what readControlType reads of a control batch.
const maxControlBatch = 4096

// readControlType reads the marker type of the control batch h in f.
func readControlType(f File, h *batchHeader) (int16, error) {
	if h.size > maxControlBatch {
		return 0, fmt.Errorf("control batch at offset %d is %d bytes", h.base, h.size)
	}
	b := make([]byte, h.size)
	if err := readFull(f, b, h.pos); err != nil {
		return 0, fmt.Errorf("read control batch at offset %d: %w", h.base, err)
	}
	return controlType(h, b)
}

// HasOpenTxn reports whether producerID has a transaction open in this
// partition (a transactional batch written and no marker yet).
func (l *Log) HasOpenTxn(producerID int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.pstate.producers[producerID]
	return e != nil && e.txnFirst >= 0
}
