package storage

// Producer state: what idempotent producers have written to a partition,
// so that a retried batch is recognised and a lost one is noticed.
//
// For each producer id the log keeps its current epoch and its last
// maxProducerBatches batches (first and last sequence number, first and
// last offset), as Kafka's ProducerStateManager does. Append checks a
// client's batch against it (checkProducer); every append, the leader's and
// a follower's, updates it (updateProducer), so a follower that becomes
// leader deduplicates as the old leader did.
//
// The state is saved with the log in producerSnapshotName: at every segment
// roll (covering the batches below the new segment) and at a clean close
// (covering the whole log). Open loads the snapshot when it covers no more
// than the recovered log and reads the batch headers after it; without a
// usable snapshot it reads every batch header of the log. Truncation
// rebuilds it the same way.
//
// Snapshot format, big-endian:
//
//	uint16 version (1)
//	int64  offset: the state covers the batches below it
//	uint32 producer count
//	count times:
//	  int64 producer id, int16 epoch, int64 last timestamp,
//	  int64 first offset of its open transaction (-1: none),
//	  uint8 batch count (<= 5), then per batch, oldest first:
//	    int32 first sequence, int32 last sequence, int64 first offset, int64 last offset
//	uint32 aborted transaction count
//	count times: int64 producer id, int64 first offset, int64 last offset (the marker's)
//	uint32 CRC-32C of everything before it

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/gregorbroker/gregor/protocol"
)

// maxProducerBatches is how many of a producer's latest batches a
// partition remembers: the most a client keeps in flight (Kafka's
// max.in.flight.requests.per.connection limit for idempotence).
const maxProducerBatches = 5

// producerSnapshotName is the producer state snapshot in a log's directory.
const producerSnapshotName = "producer-state.snapshot"

// crcTable is CRC-32C, the checksum of the snapshot.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrOutOfOrderSequence means an idempotent batch's first sequence
	// number is not the one after its producer's last batch (and the batch
	// is not a retry of one of the last ones): a batch was lost between
	// them. Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER.
	ErrOutOfOrderSequence = errors.New("storage: out of order sequence number")
	// ErrInvalidProducerEpoch means a batch's producer epoch is older than
	// the one the partition has seen for its producer id: a zombie
	// producer. Kafka's INVALID_PRODUCER_EPOCH.
	ErrInvalidProducerEpoch = errors.New("storage: producer epoch older than the partition's")
)

// ProducerBatch is one batch a producer wrote.
type ProducerBatch struct {
	FirstSeq, LastSeq       int32
	FirstOffset, LastOffset int64
}

// ProducerState is what a partition knows about one producer id.
type ProducerState struct {
	ProducerID    int64
	Epoch         int16
	LastTimestamp int64
	// TxnFirstOffset is the first offset of the producer's open
	// transaction in this partition; -1 when none is open.
	TxnFirstOffset int64
	// Batches are the latest batches, oldest first, at most five.
	Batches []ProducerBatch
}

// producerEntry is one producer's state in a producerStates.
type producerEntry struct {
	epoch    int16
	lastTs   int64
	txnFirst int64
	batches  [maxProducerBatches]ProducerBatch // a ring; the newest at (head+n-1)%5
	head, n  int
}

func (e *producerEntry) batch(i int) *ProducerBatch {
	return &e.batches[(e.head+i)%maxProducerBatches]
}

func (e *producerEntry) push(b ProducerBatch) {
	if e.n < maxProducerBatches {
		*e.batch(e.n) = b
		e.n++
		return
	}
	e.batches[e.head] = b
	e.head = (e.head + 1) % maxProducerBatches
}

// producerStates is a log's producer state, owned by the append lock
// (Log.mu).
type producerStates map[int64]*producerEntry

// nextSeq is the sequence number after seq: sequences wrap from
// math.MaxInt32 to 0, as Kafka's do.
func nextSeq(seq int32) int32 {
	if seq == math.MaxInt32 {
		return 0
	}
	return seq + 1
}

// lastSeq is the last sequence number of a batch of records records
// starting at first.
func lastSeq(first, lastDelta int32) int32 {
	if first > math.MaxInt32-lastDelta {
		return lastDelta - (math.MaxInt32 - first) - 1
	}
	return first + lastDelta
}

// idempotent reports whether h is an idempotent (or transactional) data
// batch: it carries a producer id and a sequence number.
func (h *batchHeader) idempotent() bool { return h.producerID >= 0 && h.baseSeq >= 0 }

// check decides what becomes of a client's idempotent batch h: a retry of
// one of the producer's latest batches (returned, and not to be written
// again), an error, or neither (append it).
func (ps producerStates) check(h *batchHeader) (*ProducerBatch, error) {
	e := ps[h.producerID]
	if e == nil {
		// An unknown producer id (new, or its state is gone with old
		// segments): any sequence starts it, as in Kafka since KIP-360.
		return nil, nil
	}
	switch {
	case h.producerEpoch < e.epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d, partition has epoch %d", ErrInvalidProducerEpoch, h.producerID, h.producerEpoch, e.epoch)
	case h.producerEpoch > e.epoch:
		if h.baseSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d's new epoch %d starts at sequence %d, not 0", ErrOutOfOrderSequence, h.producerID, h.producerEpoch, h.baseSeq)
		}
		return nil, nil
	}
	last := lastSeq(h.baseSeq, h.lastDelta)
	for i := range e.n {
		if b := e.batch(i); b.FirstSeq == h.baseSeq && b.LastSeq == last {
			return b, nil
		}
	}
	if e.n > 0 {
		if want := nextSeq(e.batch(e.n - 1).LastSeq); h.baseSeq != want {
			return nil, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, expected %d", ErrOutOfOrderSequence, h.producerID, h.producerEpoch, h.baseSeq, want)
		}
	}
	return nil, nil
}

// update records batch h, written at h.base, in the state. For a control
// batch, ctl is its marker type. It returns the transaction a marker
// aborted, if any, and whether a transaction opened or ended here.
func (ps producerStates) update(h *batchHeader, ctl int16) (aborted AbortedTxn, ok, txnChanged bool) {
	if h.producerID < 0 {
		return AbortedTxn{}, false, false
	}
	e := ps[h.producerID]
	if e == nil {
		e = &producerEntry{epoch: h.producerEpoch, txnFirst: -1}
		ps[h.producerID] = e
	}
	if h.producerEpoch != e.epoch {
		// A new epoch restarts the sequence numbers.
		e.epoch, e.head, e.n = h.producerEpoch, 0, 0
	}
	e.lastTs = max(e.lastTs, h.maxTs)
	switch {
	case h.attrs&protocol.AttrControl != 0:
		// A transaction marker ends the producer's open transaction.
		if e.txnFirst >= 0 && ctl == protocol.ControlAbort {
			aborted, ok = AbortedTxn{ProducerID: h.producerID, FirstOffset: e.txnFirst, LastOffset: h.base}, true
		}
		txnChanged = e.txnFirst >= 0
		e.txnFirst = -1
		return aborted, ok, txnChanged
	case h.attrs&protocol.AttrTransactional != 0 && e.txnFirst < 0:
		e.txnFirst = h.base
		txnChanged = true
	}
	if h.baseSeq >= 0 {
		e.push(ProducerBatch{FirstSeq: h.baseSeq, LastSeq: lastSeq(h.baseSeq, h.lastDelta), FirstOffset: h.base, LastOffset: h.last()})
	}
	return AbortedTxn{}, false, txnChanged
}

// Producers returns a copy of the producer state, sorted by nothing in
// particular (DescribeProducers, tests).
func (l *Log) Producers() []ProducerState {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]ProducerState, 0, len(l.pstate.producers))
	for id, e := range l.pstate.producers {
		st := ProducerState{ProducerID: id, Epoch: e.epoch, LastTimestamp: e.lastTs, TxnFirstOffset: e.txnFirst}
		for i := range e.n {
			st.Batches = append(st.Batches, *e.batch(i))
		}
		out = append(out, st)
	}
	return out
}

// encodeProducerSnapshot is the snapshot of ps and aborted covering the
// batches below offset.
func encodeProducerSnapshot(ps producerStates, aborted []AbortedTxn, offset int64) []byte {
	b := make([]byte, 0, 14+len(ps)*(31+maxProducerBatches*24)+4)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps)))
	for id, e := range ps {
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastTs))
		b = binary.BigEndian.AppendUint64(b, uint64(e.txnFirst))
		b = append(b, byte(e.n))
		for i := range e.n {
			pb := e.batch(i)
			b = binary.BigEndian.AppendUint32(b, uint32(pb.FirstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.LastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.FirstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.LastOffset))
		}
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(aborted)))
	for _, a := range aborted {
		b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastOffset))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// errBadSnapshot means a snapshot file does not decode; the state is then
// rebuilt from the log.
var errBadSnapshot = errors.New("storage: bad producer state snapshot")

// decodeProducerSnapshot decodes a snapshot; every count is checked
// against the bytes there are before anything is allocated for it.
func decodeProducerSnapshot(b []byte) (producerStates, []AbortedTxn, int64, error) {
	if len(b) < 22 {
		return nil, nil, 0, fmt.Errorf("%w: %d bytes", errBadSnapshot, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, nil, 0, fmt.Errorf("%w: checksum mismatch", errBadSnapshot)
	}
	if v := binary.BigEndian.Uint16(body); v != 1 {
		return nil, nil, 0, fmt.Errorf("%w: version %d", errBadSnapshot, v)
	}
	offset := int64(binary.BigEndian.Uint64(body[2:]))
	count := binary.BigEndian.Uint32(body[10:])
	body = body[14:]
	const entryMin = 8 + 2 + 8 + 8 + 1
	if offset < 0 || uint64(count) > uint64(len(body)/entryMin) {
		return nil, nil, 0, fmt.Errorf("%w: offset %d, %d producers in %d bytes", errBadSnapshot, offset, count, len(body))
	}
	ps := make(producerStates, count)
	for range count {
		if len(body) < entryMin {
			return nil, nil, 0, fmt.Errorf("%w: cut short", errBadSnapshot)
		}
		id := int64(binary.BigEndian.Uint64(body))
		e := &producerEntry{
			epoch:    int16(binary.BigEndian.Uint16(body[8:])),
			lastTs:   int64(binary.BigEndian.Uint64(body[10:])),
			txnFirst: int64(binary.BigEndian.Uint64(body[18:])),
		}
		n := int(body[26])
		body = body[entryMin:]
		if id < 0 || n > maxProducerBatches || len(body) < n*24 || ps[id] != nil {
			return nil, nil, 0, fmt.Errorf("%w: producer %d with %d batches", errBadSnapshot, id, n)
		}
		for range n {
			e.push(ProducerBatch{
				FirstSeq:    int32(binary.BigEndian.Uint32(body)),
				LastSeq:     int32(binary.BigEndian.Uint32(body[4:])),
				FirstOffset: int64(binary.BigEndian.Uint64(body[8:])),
				LastOffset:  int64(binary.BigEndian.Uint64(body[16:])),
			})
			body = body[24:]
		}
		ps[id] = e
	}
	if len(body) < 4 {
		return nil, nil, 0, fmt.Errorf("%w: no aborted transaction count", errBadSnapshot)
	}
	nAborted := binary.BigEndian.Uint32(body)
	body = body[4:]
	if uint64(len(body)) != uint64(nAborted)*24 {
		return nil, nil, 0, fmt.Errorf("%w: %d aborted transactions in %d bytes", errBadSnapshot, nAborted, len(body))
	}
	aborted := make([]AbortedTxn, nAborted)
	for i := range aborted {
		aborted[i] = AbortedTxn{
			ProducerID:  int64(binary.BigEndian.Uint64(body)),
			FirstOffset: int64(binary.BigEndian.Uint64(body[8:])),
			LastOffset:  int64(binary.BigEndian.Uint64(body[16:])),
		}
		if i > 0 && aborted[i].LastOffset <= aborted[i-1].LastOffset {
			return nil, nil, 0, fmt.Errorf("%w: aborted transactions out of order", errBadSnapshot)
		}
		body = body[24:]
	}
	return ps, aborted, offset, nil
}

// writeProducerSnapshotLocked saves the state as covering the batches
// below offset. l.mu held.
func (l *Log) writeProducerSnapshotLocked(offset int64) error {
	if err := writeFileAtomic(l.fs, l.dir, filepath.Join(l.dir, producerSnapshotName), encodeProducerSnapshot(l.pstate.producers, l.pstate.abortedSince(l.start.Load()), offset)); err != nil {
		return fmt.Errorf("write producer state snapshot: %w", err)
	}
	return nil
}

// loadProducersLocked fills l.pstate for a log that ends at leo: from the
// snapshot when it covers no more than the log, then from the batches
// after it. l.mu held (or the log not yet shared).
func (l *Log) loadProducersLocked(leo int64) error {
	pl, from := producerLog{producers: producerStates{}}, l.segments()[0].base
	if b, err := readSnapshotFile(l.fs, filepath.Join(l.dir, producerSnapshotName)); err == nil {
		snap, aborted, off, err := decodeProducerSnapshot(b)
		switch {
		case err != nil:
			l.log.Warn().Err(err).Msg("producer state snapshot unusable; rebuilding it from the log")
		case off > leo || off < from:
			l.log.Info().Int64("snapshot_offset", off).Int64("log_end_offset", leo).Msg("producer state snapshot does not match the log; rebuilding it from the log")
		default:
			pl, from = producerLog{producers: snap, aborted: aborted}, off
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read producer state snapshot: %w", err)
	}
	if err := l.scanProducers(&pl, from, leo); err != nil {
		return fmt.Errorf("rebuild producer state from offset %d: %w", from, err)
	}
	l.pstate = pl
	l.publishTxnsLocked()
	return nil
}

// resetProducersLocked rebuilds the state after the log was cut to end at
// leo, and saves it: a snapshot beyond the cut would describe batches
// that are gone. l.mu held.
func (l *Log) resetProducersLocked(leo int64) error {
	if err := l.fs.Remove(filepath.Join(l.dir, producerSnapshotName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove producer state snapshot: %w", err)
	}
	if err := l.loadProducersLocked(leo); err != nil {
		return err
	}
	return l.writeProducerSnapshotLocked(leo)
}

// scanProducers adds to pl every batch with offsets in [from, leo), read
// from the batch headers (and, for transaction markers, their record).
func (l *Log) scanProducers(pl *producerLog, from, leo int64) error {
	segs := l.segments()
	for i := max(segmentFor(segs, from), 0); i < len(segs); i++ {
		s := segs[i]
		sc := newHeaderScanner(s.log, 0, s.size.Load())
		for {
			h, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("segment %d: %w", s.base, err)
			}
			if h.last() < from || h.base >= leo {
				continue
			}
			ctl := int16(-1)
			if h.attrs&protocol.AttrControl != 0 && h.producerID >= 0 {
				if ctl, err = readControlType(s.log, &h); err != nil {
					l.log.Warn().Err(err).Int64("offset", h.base).Msg("control batch with no readable marker")
					ctl = -1
				}
			}
			pl.apply(&h, ctl)
		}
	}
	return nil
}

// readSnapshotFile reads a whole small file through fsys.
func readSnapshotFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f)
}

// ExpireProducers forgets the producers whose last batch is older than
// before (a timestamp in ms) and that have no transaction open here, as
// Kafka does after producer.id.expiration.ms: a retry from one of them is
// then taken as a new producer's first batch. It returns how many went.
func (l *Log) ExpireProducers(before int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id, e := range l.pstate.producers {
		if e.txnFirst < 0 && e.lastTs < before {
			delete(l.pstate.producers, id)
			n++
		}
	}
	l.producersExpired = l.producersExpired || n > 0
	return n
}
