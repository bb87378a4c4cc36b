package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/protocol"
)

// Errors callers branch on.
var (
	// ErrOffsetOutOfRange means a read asked for an offset below the log
	// start offset or above the log end offset (OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrClosed means the log was closed or deleted.
	ErrClosed = errors.New("storage: log closed")
	// ErrCorrupt means bytes of a .log are not the batches the log
	// expects; recovery cuts them off, a read reports them.
	ErrCorrupt = errors.New("storage: corrupt log")
	// ErrStorage means the log failed on a disk error (a write, fsync,
	// truncation, file creation or rename that did not happen, or whose
	// effect on the files is unknown): it is sticky, every later append,
	// read, roll and truncation returns it, and only reopening the log
	// (recovery) clears it. The broker answers KAFKA_STORAGE_ERROR and
	// hands the partition's leadership to another in-sync replica, as
	// Kafka does with a log directory that went offline. The error also
	// wraps the disk error itself.
	ErrStorage = errors.New("storage: log failed on a disk error")
)

// Log is one partition's log.
//
// Concurrency: Append may be called from many goroutines; appends are
// serialized by mu (the append lock), which is held while the batch is
// written and indexed but never across an fsync. Everything else is safe
// for concurrent use and takes no lock that Append holds across I/O:
// readers load the published segment list and log end offset atomically
// and read immutable bytes below each segment's published size.
type Log struct {
	dir string
	fs  FS
	log zerolog.Logger
	now func() time.Time

	cfg atomic.Pointer[Config] // replaced whole by SetConfig; normalized

	// mu is the append lock: it serializes Append, rolls and Close, and
	// protects the fields in it and the append-path fields of segments.
	mu struct {
		sync.Mutex
		closed bool
		// truncations counts the truncations of the log (TruncateTo's
		// cuts, and every start over): a Clean pass reads it when it
		// begins and abandons its swaps if it changed, since a cut and
		// re-appends may leave segments that look the same as before.
		truncations uint64
	}
	// pstate is the idempotent and transactional producers' state
	// (producers.go, txns.go), owned by mu; firstUnstable and abortedPub
	// publish its transactions to readers (publishTxnsLocked).
	pstate producerLog
	// producersExpired is set, under mu, when ExpireProducers forgot
	// some: a change to the producer state that writes nothing, so a
	// clean close still writes the snapshot for it.
	producersExpired bool
	firstUnstable    atomic.Int64
	abortedPub       atomic.Pointer[[]AbortedTxn]
	closed           atomic.Bool // set with mu.closed, for readers
	failed           atomic.Bool // set with fl.err, for readers

	// segs is the segment list, oldest first, never empty. It is copied
	// and replaced (under mu) when a segment is added; readers Load it.
	segs atomic.Pointer[[]*segment]
	// leo is the log end offset. Stored by the append path after the
	// batch's bytes are published in its segment, so a reader that loads
	// leo, then segs, then a segment's size sees every batch below leo.
	leo atomic.Int64
	// start is the log start offset: at or above the first segment's
	// base offset, at most the log end offset. It is its own value (a
	// DeleteRecords or the leader's log start may put it inside a
	// segment); stored under mu (AdvanceLogStart, segment deletion,
	// truncation), loaded by anyone. The broker persists it in the data
	// directory's log-start-offset-checkpoint and passes it back to Open.
	start atomic.Int64
	bytes atomic.Int64 // total size of the .log files

	hw   atomic.Int64 // high watermark; only grows, written under hwMu
	hwMu sync.Mutex
	// Protected by hwMu: hwCh is closed when hw grows (nil until Changed
	// asks for it) and, for good, when the log closes (hwDone).
	hwCh   chan struct{}
	hwDone bool
	// endCh, protected by hwMu too, is closed when the log end offset
	// grows (nil until EndChanged asks for it); endWaited says a caller
	// may be waiting on it, so appends skip hwMu when nobody is.
	endCh     chan struct{}
	endWaited atomic.Bool

	// epochs is the leader epoch cache (epochs.go); appended to by the
	// append path under mu, read by anyone.
	epochs struct {
		sync.Mutex
		entries []EpochEntry
		// stale is set when the checkpoint could not be rewritten after
		// entries went (truncateEpochs*): the file holds entries the log
		// no longer has, so a clean close writes it again before the
		// clean-shutdown marker, or writes no marker.
		stale bool
	}

	fl flushState
	bg sync.WaitGroup // background work (roll fsyncs, flush.ms timer, delayed deletes), waited for by Close
	// done is closed when the log closes: delayed deletes then happen at
	// once.
	done chan struct{}

	// cleanMu serializes Clean passes (cleaner.go); held across a whole
	// pass, never by the append path.
	cleanMu sync.Mutex

	// testBeforeSwap, when set (by tests, before any Clean: export_test.go),
	// is called by a Clean pass between writing a cleaned image and
	// swapping it in, without any lock held.
	testBeforeSwap func()

	scanBufs sync.Pool // *[]byte of scanChunk bytes for header scanners; see scanBuf

	// marker is the clean-shutdown marker's state (marker_guard.go); set
	// by Open.
	marker *pendingMarker
	// crashRecovered is set by Open when the log was not shut down
	// cleanly and its tail was recovered; read-only afterwards.
	crashRecovered bool
	// recovery is what Open checked; set by Open, read-only afterwards.
	recovery RecoveryStats
	// onTruncate is Options.OnTruncate; set by Open, read-only afterwards.
	onTruncate func(recoveryPoint int64) error
}

// CrashRecovered reports whether Open found the log not shut down cleanly
// (no valid clean-shutdown marker) and recovered its tail: whatever was
// not fsynced may be gone, so the replica must not count as in sync until
// it has caught up with the leader again (KIP-966).
func (l *Log) CrashRecovered() bool { return l.crashRecovered }

// scanBuf returns a header scanner buffer; put it back in l.scanBufs.
func (l *Log) scanBuf() *[]byte {
	if b, ok := l.scanBufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, scanChunk)
	return &b
}

// AppendResult is where Append put a batch.
type AppendResult struct {
	BaseOffset, LastOffset int64
	// Size is the bytes of the batch written (0 for a duplicate).
	Size int
	// Duplicate says the batch was a producer's retry of a batch already
	// in the log: nothing was written, and the offsets are the original's.
	Duplicate bool
}

// ReadResult is what Read found: ranges of whole batches, in offset order.
type ReadResult struct {
	Ranges []FileRange
	Size   int64 // sum of the ranges' Len
}

// FileRange is a run of whole batches in one segment file.
//
// Read hands out ranges instead of copies so that Fetch can later move the
// bytes from the file to the socket with sendfile; for now the broker
// copies them with AppendTo. File is nil when the log runs on an FS
// whose files are not *os.File, or with its segment files in a descriptor
// cache (Options.Files: the descriptor may be closed when idle, and
// AppendTo reopens it); AppendTo works either way. A range stays readable
// until the log is closed or deleted.
type FileRange struct {
	File     *os.File
	Pos, Len int64

	r io.ReaderAt // the segment's .log; File when the FS is the OS's
}

// AppendTo reads the range (pread) onto the end of dst.
func (r FileRange) AppendTo(dst []byte) ([]byte, error) {
	src := r.r
	if src == nil {
		if r.File == nil {
			return dst, errors.New("storage: file range has no file")
		}
		src = r.File
	}
	n := len(dst)
	dst = slices.Grow(dst, int(r.Len))[:n+int(r.Len)]
	if err := readFull(src, dst[n:], r.Pos); err != nil {
		return dst[:n], fmt.Errorf("storage: read %d bytes at %d: %w", r.Len, r.Pos, err)
	}
	return dst, nil
}

// segments returns the published segment list.
func (l *Log) segments() []*segment { return *l.segs.Load() }

// segmentFor returns the index in segs of the segment that holds offset:
// the last one whose base offset is <= offset.
func segmentFor(segs []*segment, offset int64) int {
	return sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
}

// Append writes one record batch (validated by the caller, CRC included)
// at the end of the log. It sets the batch's base offset to the log end
// offset and its partition leader epoch, in place, and moves the log end
// offset past the batch. It does not move the high watermark. When the
// flush policy asks for it, Append returns only after an fsync covering
// the batch (shared with concurrent appends).
//
// An idempotent batch (one with a producer id and sequence number) is
// checked against the producer state first: a retry of one of the
// producer's last five batches is not written again (the result has
// Duplicate set and the original offsets); ErrOutOfOrderSequence and
// ErrInvalidProducerEpoch refuse it. A batch with a producer id but no
// sequence (a transactional offset commit) is refused only for an old
// epoch.
func (l *Log) Append(batch []byte, leaderEpoch int32) (AppendResult, error) {
	l.settleMarker() // its fsync before the append lock, not under it
	h, err := checkAppendBatch(batch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: append to %s: %w", l.dir, err)
	}
	l.mu.Lock()
	if h.producerID >= 0 && !h.idempotent() && !l.mu.closed {
		// A transactional batch without sequence numbers (offsets
		// committed in a transaction): only its epoch is checked.
		if e := l.pstate.producers[h.producerID]; e != nil && h.producerEpoch < e.epoch {
			l.mu.Unlock()
			return AppendResult{}, fmt.Errorf("storage: append to %s: %w: producer %d epoch %d, partition has epoch %d", l.dir, ErrInvalidProducerEpoch, h.producerID, h.producerEpoch, e.epoch)
		}
	}
	if h.idempotent() && !l.mu.closed {
		dup, err := l.pstate.producers.check(&h)
		if err != nil {
			l.mu.Unlock()
			return AppendResult{}, fmt.Errorf("storage: append to %s: %w", l.dir, err)
		}
		if dup != nil {
			l.mu.Unlock()
			return AppendResult{BaseOffset: dup.FirstOffset, LastOffset: dup.LastOffset, Duplicate: true}, nil
		}
	}
	res, wait, err := l.appendLocked(batch, leaderEpoch, &h)
	l.mu.Unlock()
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: append to %s: %w", l.dir, err)
	}
	if wait {
		if err := l.waitSynced(res.LastOffset + 1); err != nil {
			return res, fmt.Errorf("storage: append to %s: fsync: %w", l.dir, err)
		}
	}
	return res, nil
}

// checkAppendBatch checks what Append relies on: one whole magic-2 batch
// with a sane last offset delta. The CRC is the caller's business.
func checkAppendBatch(batch []byte) (batchHeader, error) {
	if _, err := protocol.ParseBatchHeader(batch); err != nil {
		return batchHeader{}, err
	}
	if n := protocol.BatchSize(batch); n != len(batch) {
		return batchHeader{}, fmt.Errorf("%w: %d bytes after the batch", protocol.ErrInvalidBatch, len(batch)-n)
	}
	h := decodeHeader(batch, 0)
	if h.lastDelta < 0 {
		return h, fmt.Errorf("%w: last offset delta %d", protocol.ErrInvalidBatch, h.lastDelta)
	}
	return h, nil
}

// appendLocked is Append under the append lock.
func (l *Log) appendLocked(batch []byte, leaderEpoch int32, h *batchHeader) (res AppendResult, wait bool, err error) {
	if l.mu.closed {
		return res, false, ErrClosed
	}
	if err := l.failure(); err != nil {
		return res, false, err
	}
	cfg := l.cfg.Load()
	now := l.now()
	segs := l.segments()
	seg := segs[len(segs)-1]
	base := l.leo.Load()
	h.base = base
	if reason := seg.rollReason(cfg, int64(len(batch)), h.last(), now); reason != "" {
		if seg, err = l.rollLocked(base, now, reason); err != nil {
			return res, false, err
		}
	}
	if err := l.noteEpochLocked(leaderEpoch, base); err != nil {
		return res, false, err
	}
	protocol.SetBaseOffset(batch, base)
	protocol.SetPartitionLeaderEpoch(batch, leaderEpoch)
	if _, err := seg.appendLocked(batch, h, cfg.IndexIntervalBytes); err != nil {
		// The files were cut back where that worked (a reopen finds
		// exactly the acknowledged batches); either way the disk is not
		// taking writes, so the log fails, as Kafka fails its log dir.
		return res, false, l.setFailed(err)
	}
	l.bytes.Add(int64(len(batch)))
	if h.producerID >= 0 {
		ctl, err := controlType(h, batch)
		if err != nil {
			ctl = -1
			// Unreadable markers come only from a leader's log; the batch
			// is in, so the state notes it as the end of no transaction.
			l.log.Warn().Err(err).Int64("offset", base).Msg("control batch with no readable marker")
		}
		if l.pstate.apply(h, ctl) {
			l.publishTxnsLocked() // only when a transaction opens or ends
		}
	}
	l.leo.Store(h.last() + 1)
	l.notifyEnd()
	wait = l.noteAppendLocked(cfg, h.last()+1, now)
	return AppendResult{BaseOffset: base, LastOffset: h.last(), Size: len(batch)}, wait, nil
}

// rollLocked closes the active segment to appends and starts a new one at
// base, then fsyncs the old one in the background. Called by the append
// path.
func (l *Log) rollLocked(base int64, now time.Time, reason string) (*segment, error) {
	segs := l.segments()
	old := segs[len(segs)-1]
	if _, err := old.finishLocked(); err != nil {
		return nil, l.setFailed(fmt.Errorf("roll: %w", err))
	}
	seg, err := createSegment(l.fs, l.dir, base, now)
	if err != nil {
		return nil, l.setFailed(fmt.Errorf("roll: %w", err))
	}
	// The producer state as of the new segment's start, so that recovery
	// reads at most the active segment's headers.
	if err := l.writeProducerSnapshotLocked(base); err != nil {
		l.log.Warn().Err(err).Msg("cannot save the producer state at a roll; a restart will rebuild it from the log")
	}
	next := append(slices.Clip(segs), seg)
	l.segs.Store(&next)
	l.fl.mu.Lock()
	l.fl.dirDirty = true
	l.fl.mu.Unlock()
	l.log.Debug().Int64("segment", base).Int64("previous_segment", old.base).
		Int64("previous_bytes", old.size.Load()).Str("reason", reason).Msg("rolled segment")
	// Kafka, too, flushes a segment when it stops being active, off the
	// append path. Close waits for this through l.bg.
	safe.Go(&l.bg, l.log, "segment flush", func() {
		_ = l.waitSynced(base) // an error is sticky and logged by the pass
	})
	return seg, nil
}

// Read returns the batches from the one holding offset on, as file ranges:
// whole batches, in order, that end below maxOffset (callers pass the high
// watermark), at most maxBytes in all, except that with minOneBatch a
// first batch larger than maxBytes is returned alone. Ranges may span
// segments. Reading at maxOffset or the log end offset returns nothing;
// offsets below the log start offset or above the log end offset are
// ErrOffsetOutOfRange.
//
// Read takes no lock that Append holds across I/O and never waits for an
// fsync: it reads the published segment list and each segment's published
// size, then batch headers (pread) from the index position on. The ranges
// are what a sendfile-based Fetch would hand the kernel.
func (l *Log) Read(offset, maxBytes int64, minOneBatch bool, maxOffset int64) (ReadResult, error) {
	var rr ReadResult
	if l.closed.Load() {
		return rr, ErrClosed
	}
	if l.failed.Load() {
		return rr, l.failure()
	}
	leo := l.leo.Load() // before segs: see Log.leo
	segs := l.segments()
	if start := l.start.Load(); offset < start || offset > leo {
		return rr, fmt.Errorf("%w: offset %d, log %s has %d to %d", ErrOffsetOutOfRange, offset, l.dir, start, leo)
	}
	maxOffset = min(maxOffset, leo)
	buf := l.scanBuf()
	defer l.scanBufs.Put(buf)
	for i := max(segmentFor(segs, offset), 0); i < len(segs) && offset < maxOffset; i++ {
		s := segs[i]
		sc, h, found, err := l.locate(s, offset, s.size.Load(), *buf)
		for err == nil && found {
			if h.last() >= maxOffset {
				return rr, nil
			}
			if rr.Size+h.size > maxBytes && (rr.Size > 0 || !minOneBatch) {
				return rr, nil
			}
			rr.add(s, &h)
			if rr.Size >= maxBytes {
				return rr, nil
			}
			if h, err = sc.next(); errors.Is(err, io.EOF) {
				err, found = nil, false
			}
		}
		if err != nil {
			return ReadResult{}, fmt.Errorf("storage: read %s segment %d: %w", l.dir, s.base, err)
		}
	}
	return rr, nil
}

// locate is segment.locate, saying once per segment when the offset index
// led a lookup astray.
func (l *Log) locate(s *segment, offset, end int64, buf []byte) (*headerScanner, batchHeader, bool, error) {
	sc, h, found, astray, err := s.locate(offset, end, buf)
	if astray && !s.astrayLogged.Swap(true) {
		l.log.Warn().Int64("segment", s.base).Int64("offset", offset).
			Msg("offset index entry points at the wrong place; reading the segment from its start")
	}
	return sc, h, found, err
}

// add appends the batch h of s to the result, extending the last range
// when the batch follows it in the same file.
func (rr *ReadResult) add(s *segment, h *batchHeader) {
	rr.Size += h.size
	if n := len(rr.Ranges); n > 0 {
		last := &rr.Ranges[n-1]
		if last.r == s.log && last.Pos+last.Len == h.pos {
			last.Len += h.size
			return
		}
	}
	rr.Ranges = append(rr.Ranges, FileRange{File: osFile(s.log), Pos: h.pos, Len: h.size, r: s.log})
}

// BatchAtTime returns a copy of the first batch below the high watermark
// whose max timestamp is >= ts, found through the time and offset
// indexes and then a header scan. ok is false when there is none.
func (l *Log) BatchAtTime(ts int64) (batch []byte, ok bool, err error) {
	return l.BatchAtTimeFrom(ts, 0)
}

// BatchAtTimeFrom is BatchAtTime among the batches that end at or after
// offset minOffset (ListOffsets passes the log start offset, then, when
// the batch found holds the start and every record that qualified lay
// below it, the next offset).
func (l *Log) BatchAtTimeFrom(ts, minOffset int64) (batch []byte, ok bool, err error) {
	if l.closed.Load() {
		return nil, false, ErrClosed
	}
	hw := l.hw.Load() // hw <= leo, so every batch below it is published
	buf := l.scanBuf()
	defer l.scanBufs.Put(buf)
	segs := l.segments()
	for i, s := range segs {
		if s.base >= hw {
			break
		}
		if i+1 < len(segs) && segs[i+1].base <= minOffset {
			continue // wholly below minOffset
		}
		s.mu.RLock()
		segMax := s.maxTs
		from := s.base
		if e, found := floorTime(s.times, ts); found {
			// Batches up to e's reach at most e.ts; the batch at e.rel
			// is the first that reached it.
			from = s.base + int64(e.rel)
		}
		s.mu.RUnlock()
		if segMax < ts {
			continue
		}
		from = max(from, minOffset)
		sc, h, found, err := l.locate(s, from, s.size.Load(), *buf)
		for ; err == nil && found; h, err = sc.next() {
			if h.last() >= hw {
				return nil, false, nil
			}
			if h.maxTs < ts {
				continue
			}
			b, err := s.readBatch(&h)
			if err != nil {
				return nil, false, fmt.Errorf("storage: %w", err)
			}
			return b, true, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, fmt.Errorf("storage: find timestamp %d in %s segment %d: %w", ts, l.dir, s.base, err)
		}
	}
	return nil, false, nil
}

// MaxTimestamp returns the largest batch max timestamp in the log and the
// base offset of the first batch that has it, or (-1, -1) when no batch
// has a timestamp.
func (l *Log) MaxTimestamp() (ts int64, batchBaseOffset int64) {
	var best *segment
	ts = -1
	for _, s := range l.segments() {
		s.mu.RLock()
		if s.maxTs > ts {
			ts, best = s.maxTs, s
		}
		s.mu.RUnlock()
	}
	if best == nil {
		return -1, -1
	}
	best.mu.RLock()
	ts, base, last := best.maxTs, best.maxTsBase, best.maxTsLast
	best.mu.RUnlock()
	if base >= 0 {
		return ts, base
	}
	// Loaded from the time index, which names the batch by its last
	// offset: find the batch to learn its base offset, and remember it.
	_, h, found, err := l.locate(best, last, best.size.Load(), nil)
	if err != nil || !found || h.last() != last {
		return ts, last // an offset inside the batch still finds it
	}
	best.mu.Lock()
	if best.maxTsLast == last {
		best.maxTsBase = h.base
	}
	best.mu.Unlock()
	return ts, h.base
}

// HighWatermark returns the high watermark.
func (l *Log) HighWatermark() int64 { return l.hw.Load() }

// SetHighWatermark moves the high watermark up to off (clamped to the log
// end offset); it never moves it down. Waiters on Changed wake when it
// moves.
func (l *Log) SetHighWatermark(off int64) {
	off = min(off, l.leo.Load())
	if off <= l.hw.Load() {
		return
	}
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	if off <= l.hw.Load() || l.hwDone {
		return
	}
	l.hw.Store(off)
	if l.hwCh != nil {
		close(l.hwCh)
		l.hwCh = nil
	}
}

// ResetHighWatermark sets the high watermark to off (clamped to the log),
// lower or not: for a replica that cannot know, at start, how much of its
// log the ISR had, and learns it again from the leader (or, leading, from
// its followers' fetches). Call it before the log is read.
func (l *Log) ResetHighWatermark(off int64) {
	off = max(min(off, l.leo.Load()), l.start.Load())
	l.hwMu.Lock()
	l.hw.Store(off)
	l.hwMu.Unlock()
}

// Changed returns a channel that is closed when the high watermark next
// moves (or the log closes). Call it before reading the high watermark
// so that no move is missed; each move needs a new call.
func (l *Log) Changed() <-chan struct{} {
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	if l.hwCh == nil {
		l.hwCh = make(chan struct{})
	}
	return l.hwCh
}

// EndChanged returns a channel that is closed when the log end offset
// next grows (or the log closes): what a follower's fetch waits on, since
// the high watermark waits for followers. Call it before reading the log
// end offset.
func (l *Log) EndChanged() <-chan struct{} {
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	if l.hwDone {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if l.endCh == nil {
		l.endCh = make(chan struct{})
		l.endWaited.Store(true)
	}
	return l.endCh
}

// notifyEnd wakes EndChanged waiters after the log end offset moved.
func (l *Log) notifyEnd() {
	if !l.endWaited.Load() {
		return
	}
	l.hwMu.Lock()
	if l.endCh != nil {
		close(l.endCh)
		l.endCh = nil
		l.endWaited.Store(false)
	}
	l.hwMu.Unlock()
}

// AssignEpoch starts leader epoch epoch at the log end offset in the
// leader epoch cache, as a broker does when it becomes the partition's
// leader, before any batch of that epoch is written.
func (l *Log) AssignEpoch(epoch int32) error {
	if l.opensEpoch(epoch) {
		l.settleMarker() // its fsync before the append lock, not under it
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if err := l.noteEpochLocked(epoch, l.leo.Load()); err != nil {
		return fmt.Errorf("storage: assign epoch %d in %s: %w", epoch, l.dir, err)
	}
	return nil
}

// LogStartOffset returns the log start offset: the first offset a
// reader may read. It may lie inside the first segment, whose batches
// below it stay on disk until the whole segment is deleted.
func (l *Log) LogStartOffset() int64 { return l.start.Load() }

// LogEndOffset returns the offset the next batch will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// Size returns the total size of the log's .log files in bytes.
func (l *Log) Size() int64 { return l.bytes.Load() }

// SegmentCount returns the number of segments, the active one included.
func (l *Log) SegmentCount() int { return len(l.segments()) }

// SetConfig replaces the configuration. It applies from the next append;
// a shorter flush.ms reaches an armed timer when it next fires.
func (l *Log) SetConfig(cfg Config) {
	n := cfg.normalized()
	l.cfg.Store(&n)
}

// Flush fsyncs everything appended so far.
func (l *Log) Flush() error {
	if l.closed.Load() {
		return ErrClosed
	}
	if err := l.waitSynced(l.leo.Load()); err != nil {
		return fmt.Errorf("storage: flush %s: %w", l.dir, err)
	}
	return nil
}

// Close fsyncs the log, appends the active segment's last time index
// entry, writes the clean-shutdown marker and closes the files. Ranges
// returned by Read stop being readable. Closing a closed log does nothing.
func (l *Log) Close() error {
	if err := l.close(true); err != nil {
		return fmt.Errorf("storage: close %s: %w", l.dir, err)
	}
	return nil
}

// Discard closes the log without making it durable and without writing
// anything more into its directory (no producer snapshot, no clean-shutdown
// marker), for a log whose directory is about to be renamed aside and
// removed. Readers of ranges handed out before see the files closed.
func (l *Log) Discard() error {
	if err := l.close(false); err != nil {
		return fmt.Errorf("storage: discard %s: %w", l.dir, err)
	}
	return nil
}

// Delete closes the log, without fsyncing it, and removes its directory.
func (l *Log) Delete() error {
	_ = l.close(false) // the files are going away
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("storage: delete %s: %w", l.dir, err)
	}
	return nil
}

// close stops appends and background work, and closes the files; clean
// also makes everything durable and writes the clean-shutdown marker.
func (l *Log) close(clean bool) error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.closed = true
	l.closed.Store(true)
	close(l.done)
	var errs []error
	if clean && l.failure() == nil {
		segs := l.segments()
		if _, err := segs[len(segs)-1].finishLocked(); err != nil {
			errs = append(errs, l.setFailed(err)) // no clean-shutdown marker
		}
		// Nothing changed since a clean start (the marker is still on
		// disk) and no producer expired: the snapshot read at Open is
		// still the log's.
		if !l.marker.pending() || l.producersExpired {
			if err := l.writeProducerSnapshotLocked(l.leo.Load()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	l.mu.Unlock()

	// A Clean pass under way sees the log closed between batches and
	// stops; wait for it, so that no pass writes files in the directory
	// once Close returned (a log reopened on it may run its own).
	l.cleanMu.Lock()
	//lint:ignore SA2001 an empty critical section: waiting for the pass is the point
	l.cleanMu.Unlock()
	l.stopFlusher()
	l.bg.Wait()
	if clean && !l.marker.pending() { // else the marker on disk still says it all
		if err := l.syncFinal(); err != nil {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			if err := l.rewriteStaleEpochs(); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			if err := writeMarker(l.fs, l.dir, l.leo.Load()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	l.closeFilesFlusher()
	for _, s := range l.segments() {
		if err := s.close(); err != nil {
			errs = append(errs, fmt.Errorf("close segment %d: %w", s.base, err))
		}
	}
	l.hwMu.Lock()
	if l.hwCh == nil {
		l.hwCh = make(chan struct{})
	}
	close(l.hwCh) // stays closed: Changed on a closed log returns at once
	if l.endCh != nil {
		close(l.endCh)
		l.endCh = nil
	}
	l.hwDone = true
	l.hwMu.Unlock()
	return errors.Join(errs...)
}
