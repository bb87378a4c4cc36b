package storage

// The log cleaner: compaction of a log's closed segments
// (cleanup.policy=compact), as Kafka's LogCleaner does it. The rules and
// the swap protocol are drawn in doc.go ("Compaction"); the swap itself,
// and its completion at Open, are in cleaner_swap.go.

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/gregorbroker/gregor/protocol"
)

// ErrCleanAborted means Clean stopped early (its Stop channel closed, or
// the log closed or changed under it); nothing of the log changed.
var ErrCleanAborted = errors.New("storage: clean aborted")

// CleanConfig is what one Clean pass acts on.
type CleanConfig struct {
	// Codecs decompresses and recompresses batches; required.
	Codecs *protocol.Codecs
	// DeleteRetentionMs is delete.retention.ms: the first pass that keeps
	// a tombstone (a record with a null value), or a transaction marker
	// with no record of its transaction left, stamps its batch with the
	// delete horizon now + DeleteRetentionMs (KIP-534); a later pass
	// removes them once now has reached the horizon.
	DeleteRetentionMs int64
	// MinCompactionLagMs is min.compaction.lag.ms: a segment whose
	// largest timestamp is younger than this is not cleaned yet, nor is
	// anything after it.
	MinCompactionLagMs int64
	// MapBytes is the memory of the offset map (Kafka's
	// log.cleaner.dedupe.buffer.size divided among the cleaner threads),
	// 24 bytes per key; at most MapLoadFactor of it is filled
	// (log.cleaner.io.buffer.load.factor, 0.9 when 0). A pass maps as many
	// dirty batches as fit and cleans up to there; the next pass goes on.
	MapBytes      int64
	MapLoadFactor float64
	// Throttle, when not nil, is called with the bytes read and written
	// as the pass goes, and may sleep (log.cleaner.io.max.bytes.per.second).
	Throttle func(bytes int64)
	// Stop, when closed, aborts the pass between batches.
	Stop <-chan struct{}
}

// CleanStats says what a Clean pass did.
type CleanStats struct {
	// FirstDirty is where the dirty part began; CleanedTo is the offset
	// below which the log is now clean: the cleaner checkpoint to keep.
	FirstDirty, CleanedTo    int64
	BytesRead, BytesWritten  int64
	SegmentsIn, SegmentsOut  int
	RecordsRead, RecordsKept int64 // by the first round
	Elapsed                  time.Duration
	MapEntries, MapSlots     int
	BatchesDropped, Emptied  int
	// NextDeleteHorizonMs is the earliest delete horizon (Unix ms, by
	// Options.Now) of the batches whose tombstones or transaction marker
	// the pass kept only for delete.retention.ms; -1 when it kept none. A
	// pass then removes them even if nothing new is dirty.
	NextDeleteHorizonMs int64
}

// Cleanable describes how much of a log a Clean pass could work on.
type Cleanable struct {
	// FirstDirty is the first offset not yet cleaned: the cleaner
	// checkpoint, brought into the log (the log start offset when the
	// checkpoint is below it or past the log end).
	FirstDirty int64
	// FirstUncleanable is the first offset no pass may clean yet: the
	// active segment's base offset, the last stable offset, or the base
	// offset of the first segment younger than min.compaction.lag.ms,
	// whichever is lowest.
	FirstUncleanable int64
	// CleanBytes and DirtyBytes are the sizes of the segments below
	// FirstDirty and of those from it to FirstUncleanable: the dirty ratio
	// is DirtyBytes / (CleanBytes + DirtyBytes).
	CleanBytes, DirtyBytes int64
	// FirstDirtyTimestamp is the max timestamp of the first dirty batch
	// (-1 when none): max.compaction.lag.ms is measured from it.
	FirstDirtyTimestamp int64
}

// DirtyRatio is DirtyBytes over all cleanable bytes, 0 for none.
func (c Cleanable) DirtyRatio() float64 {
	if c.CleanBytes+c.DirtyBytes == 0 {
		return 0
	}
	return float64(c.DirtyBytes) / float64(c.CleanBytes+c.DirtyBytes)
}

// Cleanable reports the cleanable part of the log, given the cleaner
// checkpoint (the CleanedTo of the last pass; 0 for none) and
// min.compaction.lag.ms.
func (l *Log) Cleanable(checkpoint, minCompactionLagMs int64) Cleanable {
	segs := l.segments()
	start := segs[0].base
	leo := l.leo.Load()
	c := Cleanable{FirstDirty: checkpoint, FirstDirtyTimestamp: -1}
	if c.FirstDirty < start || c.FirstDirty > leo {
		c.FirstDirty = start
	}
	c.FirstUncleanable = min(segs[len(segs)-1].base, l.LastStableOffset())
	lagFrom := int64(math.MinInt64)
	if minCompactionLagMs > 0 {
		lagFrom = l.now().UnixMilli() - minCompactionLagMs
	}
	for i, s := range segs[:len(segs)-1] {
		s.mu.RLock()
		maxTs := s.maxTs
		s.mu.RUnlock()
		next := segs[i+1].base
		if next <= c.FirstDirty {
			c.CleanBytes += s.size.Load()
			continue
		}
		if s.base >= c.FirstUncleanable {
			break
		}
		if maxTs > lagFrom && minCompactionLagMs > 0 {
			c.FirstUncleanable = min(c.FirstUncleanable, max(s.base, c.FirstDirty))
			break
		}
		c.DirtyBytes += s.size.Load()
	}
	if c.FirstUncleanable < c.FirstDirty {
		c.FirstUncleanable = c.FirstDirty
	}
	if c.DirtyBytes > 0 {
		if i := segmentFor(segs, c.FirstDirty); i >= 0 {
			s := segs[i]
			if _, h, found, err := l.locate(s, c.FirstDirty, s.size.Load(), nil); err == nil && found {
				c.FirstDirtyTimestamp = h.maxTs
			}
		}
	}
	return c
}

// Clean compacts the closed segments of the log: for every key it keeps
// only the latest record below the first uncleanable offset (see
// Cleanable), in place, offsets preserved; it removes records of aborted
// transactions, and tombstones and empty transactions' markers whose
// delete horizon (stamped on their batch by the first pass that kept
// them: that pass's time plus delete.retention.ms, KIP-534) has passed.
// checkpoint is the CleanedTo of the last pass.
//
// It reads the segments without the append lock and writes each group of
// segments it cleans aside, then swaps it in under the append lock with
// the crash-safe protocol of doc.go. One pass at a time runs on a log; a
// second caller waits. Appends and reads go on meanwhile; a truncation or
// deletion of segments during the pass makes the swap of an affected
// group give up (ErrCleanAborted), leaving the log as it was; so does,
// for every later group, a truncation anywhere in the log since the pass
// began (its offset map may hold keys of records that are gone).
func (l *Log) Clean(checkpoint int64, cfg CleanConfig) (CleanStats, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	began := time.Now()
	var st CleanStats
	if l.closed.Load() {
		return st, ErrClosed
	}
	if err := l.failure(); err != nil {
		return st, err
	}
	if cfg.Codecs == nil {
		return st, errors.New("storage: clean: no codecs")
	}
	// The truncation count is read before anything of the log is: a
	// truncation from here on abandons every swap of the pass.
	l.mu.Lock()
	gen := l.mu.truncations
	l.mu.Unlock()
	c := l.Cleanable(checkpoint, cfg.MinCompactionLagMs)
	st.FirstDirty, st.CleanedTo = c.FirstDirty, c.FirstDirty
	st.NextDeleteHorizonMs = -1
	p := &cleanPass{
		l:       l,
		cfg:     &cfg,
		now:     l.now().UnixMilli(),
		gen:     gen,
		txnData: make(map[int64]bool),
		st:      &st,
	}
	p.loadProducers()
	segs := l.segments()
	end := c.FirstDirty
	p.m = newOffsetMap(1, cfg.MapLoadFactor)
	if c.FirstUncleanable > c.FirstDirty {
		slots, err := l.mapSlots(segs, c.FirstDirty, c.FirstUncleanable, &cfg)
		if err != nil {
			return st, fmt.Errorf("storage: clean %s: %w", l.dir, err)
		}
		p.m = newOffsetMap(slots, cfg.MapLoadFactor)
		st.MapSlots = slots
		if end, err = p.buildMap(segs, c.FirstDirty, c.FirstUncleanable); err != nil {
			return st, fmt.Errorf("storage: clean %s: %w", l.dir, err)
		}
		st.MapEntries = p.m.used
	}
	// With nothing dirty, the pass still rewrites the clean segments
	// that hold tombstones or markers past delete.retention.ms.
	p.end = end
	// Every closed segment from the log start up to the end of the map
	// is cleaned: older segments may hold keys the dirty part overwrote.
	// Segments are grouped by their sizes before cleaning, as in Kafka;
	// as cleaning shrinks them, later rounds (at most mergeRounds) merge
	// the runs of cleaned segments that now fit in one. Those rounds only
	// filter again what the first kept, so they leave markers alone (a
	// marker's fate needs the whole log read in order) and tombstones
	// too (a pass decides once, at its start time, as Kafka's does).
	for round := range mergeRounds {
		segs = l.segments()
		var todo []*segment
		for _, s := range segs[:len(segs)-1] {
			if s.base >= end {
				break
			}
			todo = append(todo, s)
		}
		p.txnData = make(map[int64]bool)
		p.merging = round > 0
		merged := false
		for _, g := range l.groupSegments(todo, segs) {
			if round > 0 && len(g.segs) == 1 {
				continue
			}
			merged = true
			if err := p.cleanGroup(g.segs, g.end); err != nil {
				st.Elapsed = time.Since(began)
				return st, fmt.Errorf("storage: clean %s: %w", l.dir, err)
			}
		}
		if !merged {
			break
		}
	}
	st.CleanedTo = end
	st.Elapsed = time.Since(began)
	l.log.Debug().Int64("first_dirty", st.FirstDirty).Int64("cleaned_to", end).
		Int64("bytes_read", st.BytesRead).Int64("bytes_written", st.BytesWritten).
		Int("segments_in", st.SegmentsIn).Int("segments_out", st.SegmentsOut).
		Dur("elapsed", st.Elapsed).Msg("cleaned log")
	return st, nil
}

// cleanPass is the state of one Clean.
type cleanPass struct {
	l   *Log
	cfg *CleanConfig
	m   *offsetMap
	end int64 // the map covers the dirty batches below end
	// now is the pass's time (Unix ms): a delete horizon at or before it
	// has passed; a batch stamped by this pass gets now +
	// delete.retention.ms.
	now int64
	// gen is the log's truncation count when the pass began: a swap
	// under a later count is abandoned.
	gen uint64
	// lastBatch is each idempotent producer's latest batch (its last
	// offset): kept, if only as an empty batch, so that the producer
	// state read back from the log after a restart still knows it.
	lastBatch map[int64]int64
	// aborted holds each producer's aborted transactions, by marker offset.
	aborted map[int64][]AbortedTxn
	// txnData says whether anything of a producer's current transaction
	// was kept so far (reset at its marker): a marker goes only when
	// nothing of its transaction is left.
	txnData map[int64]bool
	// merging is set in the merge rounds, which do not read the log from
	// its start: they keep every marker and tombstone the first round
	// kept.
	merging bool
	st      *CleanStats
}

// mergeRounds bounds the rounds of a pass: the first cleans, the others
// merge segments the first left small.
const mergeRounds = 3

// loadProducers takes what the pass needs of the producer state.
func (p *cleanPass) loadProducers() {
	l := p.l
	l.mu.Lock()
	p.lastBatch = make(map[int64]int64, len(l.pstate.producers))
	for id, e := range l.pstate.producers {
		if e.n > 0 {
			p.lastBatch[id] = e.batch(e.n - 1).LastOffset
		}
	}
	l.mu.Unlock()
	p.aborted = make(map[int64][]AbortedTxn)
	if ab := l.abortedPub.Load(); ab != nil {
		for _, a := range *ab { // sorted by marker offset
			p.aborted[a.ProducerID] = append(p.aborted[a.ProducerID], a)
		}
	}
}

// isAborted reports whether transactional batch h belongs to an aborted
// transaction.
func (p *cleanPass) isAborted(h *batchHeader) bool {
	as := p.aborted[h.producerID]
	i := sort.Search(len(as), func(i int) bool { return as[i].LastOffset >= h.base })
	return i < len(as) && as[i].FirstOffset <= h.base
}

// stopped reports whether the pass must give up.
func (p *cleanPass) stopped() bool {
	if p.l.closed.Load() {
		return true
	}
	select {
	case <-p.cfg.Stop:
		return true
	default:
		return false
	}
}

func (p *cleanPass) throttle(n int64) {
	if p.cfg.Throttle != nil && n > 0 {
		p.cfg.Throttle(n)
	}
}

// mapSlots sizes the offset map: enough for the records of the dirty
// range (counted from the batch headers), at most what MapBytes allows.
func (l *Log) mapSlots(segs []*segment, from, to int64, cfg *CleanConfig) (int, error) {
	limit := cfg.MapBytes / offsetMapSlotSize
	if limit < 1 {
		return 0, fmt.Errorf("offset map of %d bytes holds no key", cfg.MapBytes)
	}
	lf := loadFactor(cfg.MapLoadFactor)
	var records int64
	buf := l.scanBuf()
	defer l.scanBufs.Put(buf)
	for i := max(segmentFor(segs, from), 0); i < len(segs) && segs[i].base < to; i++ {
		s := segs[i]
		sc, h, found, err := l.locate(s, from, s.size.Load(), *buf)
		for ; err == nil && found && h.base < to; h, err = sc.next() {
			records += int64(h.lastDelta) + 1
			if float64(records) > float64(limit)*lf {
				return int(limit), nil
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("count records of segment %d: %w", s.base, err)
		}
	}
	return int(min(limit, int64(float64(records)/lf)+16)), nil
}

// buildMap puts the key of every record of the dirty batches in [from,
// to) into the map, latest offset winning, batch by batch while the map
// has room. It returns where it stopped: to, or the base offset of the
// first batch that did not fit.
func (p *cleanPass) buildMap(segs []*segment, from, to int64) (int64, error) {
	l := p.l
	buf := l.scanBuf()
	defer l.scanBufs.Put(buf)
	mapped := false
	for i := max(segmentFor(segs, from), 0); i < len(segs) && segs[i].base < to; i++ {
		s := segs[i]
		sc, h, found, err := l.locate(s, from, s.size.Load(), *buf)
		for ; err == nil && found; h, err = sc.next() {
			if h.base >= to {
				return to, nil
			}
			if p.stopped() {
				return 0, ErrCleanAborted
			}
			if h.attrs&protocol.AttrControl != 0 {
				continue // markers have no key
			}
			if h.attrs&protocol.AttrTransactional != 0 && h.producerID >= 0 && p.isAborted(&h) {
				continue // an aborted write never shadows anything
			}
			if !p.m.fits(int(h.lastDelta) + 1) {
				if !mapped {
					return 0, fmt.Errorf("offset map of %d slots cannot hold the %d records of the batch at offset %d (raise log.cleaner.dedupe.buffer.size)", p.m.slots, h.lastDelta+1, h.base)
				}
				return h.base, nil
			}
			batch, err := s.readBatch(&h)
			if err != nil {
				return 0, err
			}
			p.throttle(h.size)
			p.st.BytesRead += h.size
			if protocol.BatchCRC(batch) != h.crc {
				return 0, fmt.Errorf("%w: batch at offset %d of segment %d fails its CRC", ErrCorrupt, h.base, s.base)
			}
			recs, err := p.cfg.Codecs.RecordsAt(batch)
			if err != nil {
				return 0, fmt.Errorf("%w: batch at offset %d of segment %d: %v", ErrCorrupt, h.base, s.base, err)
			}
			for j := range recs {
				if r := &recs[j]; r.Record.Key != nil && r.Offset >= from {
					p.m.put(r.Record.Key, r.Offset)
				}
			}
			mapped = true
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("map segment %d: %w", s.base, err)
		}
	}
	return to, nil
}

// filter returns what becomes of batch h: the batch itself, a smaller
// one, an empty one, one stamped with a delete horizon, or nil (dropped).
func (p *cleanPass) filter(batch []byte, h *batchHeader) ([]byte, error) {
	if h.base >= p.end {
		return batch, nil // past the map (and maybe the last stable offset): as it is
	}
	pid := h.producerID
	horizon, stamped := protocol.DeleteHorizon(batch)
	if h.attrs&protocol.AttrControl != 0 {
		if pid < 0 {
			return batch, nil
		}
		kept := p.txnData[pid] || p.merging
		delete(p.txnData, pid)
		if kept {
			return batch, nil
		}
		// The marker of a transaction with nothing left: it goes once
		// its delete horizon has passed; the first pass stamps one.
		if stamped && horizon <= p.now {
			return nil, nil
		}
		return p.stamp(batch, h, horizon, stamped)
	}
	txn := h.attrs&protocol.AttrTransactional != 0 && pid >= 0
	var out []byte
	var kept int
	var err error
	tombstones := false
	if txn && p.isAborted(h) {
		out, kept, err = p.cfg.Codecs.FilterBatch(batch, func(*protocol.RecordAt) bool { return false })
	} else {
		out, kept, err = p.cfg.Codecs.FilterBatch(batch, p.keep(horizon, stamped, &tombstones))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: batch at offset %d: %v", ErrCorrupt, h.base, err)
	}
	if !p.merging { // the first round: the merge rounds read the same records again
		p.st.RecordsRead += int64(protocol.BatchRecordCount(batch))
		p.st.RecordsKept += int64(kept)
	}
	if kept == 0 {
		if last, ok := p.lastBatch[pid]; !ok || pid < 0 || last != h.last() {
			p.st.BatchesDropped++
			return nil, nil
		}
		p.st.Emptied++
	}
	if txn {
		p.txnData[pid] = true
	}
	if tombstones {
		return p.stamp(out, h, horizon, stamped)
	}
	return out, nil
}

// stamp returns batch, which keeps tombstones or is an empty
// transaction's marker, with a delete horizon: the one it has, or now +
// delete.retention.ms, as Kafka's cleaner sets it the first time
// (KIP-534). It notes the horizon for NextDeleteHorizonMs.
func (p *cleanPass) stamp(batch []byte, h *batchHeader, horizon int64, stamped bool) ([]byte, error) {
	if stamped {
		p.noteHorizon(horizon)
		return batch, nil
	}
	if p.merging {
		// The first round stamped every batch below the map's end that
		// needed it; one from before is left for the next pass.
		return batch, nil
	}
	horizon = p.now + p.cfg.DeleteRetentionMs
	out, err := p.cfg.Codecs.SetDeleteHorizon(batch, horizon)
	if err != nil {
		return nil, fmt.Errorf("%w: batch at offset %d: %v", ErrCorrupt, h.base, err)
	}
	p.noteHorizon(horizon)
	return out, nil
}

// keep is the record rule of a batch with delete horizon horizon (if
// stamped): a record stays when it has a key, no later record of that
// key was mapped, and it is not a tombstone whose horizon has passed
// (tombstones is set when one stays). Records without a key cannot be
// compacted and go, as in Kafka.
func (p *cleanPass) keep(horizon int64, stamped bool, tombstones *bool) func(r *protocol.RecordAt) bool {
	expired := stamped && horizon <= p.now && !p.merging
	return func(r *protocol.RecordAt) bool {
		if r.Record.Key == nil {
			return false
		}
		if off, ok := p.m.get(r.Record.Key); ok && r.Offset < off {
			return false
		}
		if r.Record.Value != nil {
			return true
		}
		if !expired {
			*tombstones = true
		}
		return !expired
	}
}

// noteHorizon notes the delete horizon of a batch whose tombstones or
// marker the pass kept for delete.retention.ms.
func (p *cleanPass) noteHorizon(at int64) {
	if p.st.NextDeleteHorizonMs < 0 || at < p.st.NextDeleteHorizonMs {
		p.st.NextDeleteHorizonMs = at
	}
}

// segGroup is a run of segments cleaned into one; end is the base offset
// of the segment after them.
type segGroup struct {
	segs []*segment
	end  int64
}

// groupSegments splits todo (consecutive segments of all) into runs that
// fit in one segment: segment.bytes, segment.index.bytes and relative
// offsets that fit in 32 bits, as Kafka's groupSegmentsBySize.
func (l *Log) groupSegments(todo, all []*segment) []segGroup {
	cfg := l.cfg.Load()
	nextBase := func(s *segment) int64 {
		i := segmentFor(all, s.base)
		return all[i+1].base
	}
	var groups []segGroup
	for i := 0; i < len(todo); {
		g := segGroup{segs: todo[i : i+1]}
		size := todo[i].size.Load()
		idx := l.indexBytes(todo[i])
		j := i + 1
		for ; j < len(todo); j++ {
			s := todo[j]
			n, ix := s.size.Load(), l.indexBytes(s)
			if size+n > cfg.SegmentBytes || idx+ix > cfg.SegmentIndexBytes || nextBase(s)-1-todo[i].base > math.MaxInt32 {
				break
			}
			size, idx = size+n, idx+ix
		}
		g.segs = todo[i:j]
		g.end = nextBase(todo[j-1])
		groups = append(groups, g)
		i = j
	}
	return groups
}

// indexBytes is the larger of s's two index sizes.
func (l *Log) indexBytes(s *segment) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return max(int64(len(s.offsets))*offsetEntrySize, int64(len(s.times))*timeEntrySize)
}

// cleanGroup writes the cleaned image of g aside and swaps it in.
func (p *cleanPass) cleanGroup(g []*segment, end int64) error {
	l := p.l
	base := g[0].base
	w, err := p.writeCleaned(g, base)
	if err != nil {
		removeCleaned(l.fs, l.dir, base)
		return err
	}
	if l.testBeforeSwap != nil {
		l.testBeforeSwap()
	}
	if err := l.swapIn(g, end, w, p.gen); err != nil {
		return err
	}
	p.st.SegmentsIn += len(g)
	p.st.SegmentsOut++
	p.st.BytesWritten += w.size
	return nil
}

// cleaned is a cleaned segment written aside.
type cleaned struct {
	base int64
	size int64
	b    *indexBuilder
}

// writeCleaned writes the cleaned image of g as <base>.{log,index,timeindex}.cleaned, fsynced.
func (p *cleanPass) writeCleaned(g []*segment, base int64) (*cleaned, error) {
	l := p.l
	if p.stopped() {
		return nil, ErrCleanAborted
	}
	f, err := l.fs.OpenFile(segmentPath(l.dir, base, logSuffix)+cleanedSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create cleaned segment %d: %w", base, err)
	}
	defer f.Close()
	w := &cleaned{base: base, b: l.newIndexBuilder(&segment{base: base})}
	buf := l.scanBuf()
	defer l.scanBufs.Put(buf)
	for _, s := range g {
		sc := newHeaderScanner(s.log, 0, s.size.Load())
		sc.buf = (*buf)[:0]
		for {
			h, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read segment %d: %w", s.base, err)
			}
			if p.stopped() {
				return nil, ErrCleanAborted
			}
			batch, err := s.readBatch(&h)
			if err != nil {
				return nil, err
			}
			p.throttle(h.size)
			p.st.BytesRead += h.size
			if protocol.BatchCRC(batch) != h.crc {
				return nil, fmt.Errorf("%w: batch at offset %d of segment %d fails its CRC", ErrCorrupt, h.base, s.base)
			}
			out, err := p.filter(batch, &h)
			if err != nil {
				return nil, err
			}
			if out == nil {
				continue
			}
			if w.size+int64(len(out)) > math.MaxInt32 {
				return nil, fmt.Errorf("cleaned segment %d would pass 2 GiB", base)
			}
			if _, err := f.WriteAt(out, w.size); err != nil {
				return nil, fmt.Errorf("write cleaned segment %d: %w", base, err)
			}
			p.throttle(int64(len(out)))
			nh := decodeHeader(out, w.size)
			w.b.add(&nh)
			w.size += int64(len(out))
		}
	}
	w.b.finish()
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("fsync cleaned segment %d: %w", base, err)
	}
	for _, ix := range []struct {
		suffix string
		data   []byte
	}{{indexSuffix, encodeOffsetEntries(w.b.offs)}, {timeIndexSuffix, encodeTimeEntries(w.b.times)}} {
		if err := writeSynced(l.fs, segmentPath(l.dir, base, ix.suffix)+cleanedSuffix, ix.data); err != nil {
			return nil, fmt.Errorf("write cleaned index of segment %d: %w", base, err)
		}
	}
	return w, nil
}

// writeSynced creates (or replaces) name with data and fsyncs it.
func writeSynced(fsys FS, name string, data []byte) error {
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if len(data) > 0 {
		_, err = f.WriteAt(data, 0)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// offsetMapSlotSize is one slot of the offset map: a 128-bit hash of the
// key and the offset (+1, 0 meaning empty), as Kafka's SkimpyOffsetMap
// keeps a hash and an offset per key.
const offsetMapSlotSize = 24

func loadFactor(f float64) float64 {
	if f <= 0 || f > 1 {
		return 0.9
	}
	return f
}

// offsetMap maps keys (by a 128-bit hash) to the latest offset seen, in a
// fixed table with linear probing: its memory is decided when it is made.
// Two keys with the same 128-bit hash would be taken for one (Kafka takes
// the same risk with MD5).
type offsetMap struct {
	slots int
	limit int // most keys it takes: slots * load factor
	used  int
	h     []uint64 // 2 per slot
	off   []int64  // offset + 1; 0 is empty
	seeds [2]maphash.Seed
}

func newOffsetMap(slots int, lf float64) *offsetMap {
	slots = max(slots, 1)
	return &offsetMap{
		slots: slots,
		limit: max(int(float64(slots)*loadFactor(lf)), 1),
		h:     make([]uint64, 2*slots),
		off:   make([]int64, slots),
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
}

// fits reports whether n more keys surely fit.
func (m *offsetMap) fits(n int) bool { return m.used+n <= m.limit }

// hashKey is the key's 128-bit hash: two 64-bit hashes with independent
// seeds.
func (m *offsetMap) hashKey(key []byte) (uint64, uint64) {
	return maphash.Bytes(m.seeds[0], key), maphash.Bytes(m.seeds[1], key)
}

func (m *offsetMap) find(key []byte) (int, bool) {
	a, b := m.hashKey(key)
	i := int(a % uint64(m.slots))
	for {
		if m.off[i] == 0 {
			return i, false
		}
		if m.h[2*i] == a && m.h[2*i+1] == b {
			return i, true
		}
		if i++; i == m.slots {
			i = 0
		}
	}
}

// put records offset for key (a later offset replaces an earlier one).
// The caller checked fits; a full table (never reached below the limit)
// ignores new keys, which only keeps more records.
func (m *offsetMap) put(key []byte, offset int64) {
	if m.used >= m.slots-1 {
		if _, ok := m.find(key); !ok {
			return
		}
	}
	i, ok := m.find(key)
	if !ok {
		a, b := m.hashKey(key)
		m.h[2*i], m.h[2*i+1] = a, b
		m.used++
	}
	if offset+1 > m.off[i] {
		m.off[i] = offset + 1
	}
}

// get returns the latest offset mapped for key.
func (m *offsetMap) get(key []byte) (int64, bool) {
	i, ok := m.find(key)
	if !ok {
		return 0, false
	}
	return m.off[i] - 1, true
}
