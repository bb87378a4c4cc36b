package storage

// Open: loading segments, trusting them after a clean shutdown, recovering
// those past the recovery point after a crash. The rules are in doc.go.

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gregorbroker/gregor/protocol"
)

// The clean-shutdown marker; see doc.go.
const (
	markerName       = ".gregor-clean-shutdown"
	markerMagic      = "gregor-clean-shutdown"
	markerVersion    = 1 // written by this code
	markerMinVersion = 1 // oldest version read: N-1, but there was no version 0
	markerMaxSize    = 4 << 10
)

func markerBytes(leo int64) []byte {
	return fmt.Appendf(nil, "%s v%d\nlog-end-offset: %d\n", markerMagic, markerVersion, leo)
}

// parseMarker returns the log end offset a marker records.
func parseMarker(b []byte) (int64, error) {
	lines := strings.Split(string(b), "\n")
	v, ok := strings.CutPrefix(lines[0], markerMagic+" v")
	if !ok {
		return 0, fmt.Errorf("first line %q is not a marker version line", lines[0])
	}
	ver, err := strconv.Atoi(v)
	if err != nil || ver < markerMinVersion || ver > markerVersion {
		return 0, fmt.Errorf("marker version %q, this code reads v%d to v%d", v, markerMinVersion, markerVersion)
	}
	for _, line := range lines[1:] {
		if val, ok := strings.CutPrefix(line, "log-end-offset: "); ok {
			leo, err := strconv.ParseInt(val, 10, 64)
			if err != nil || leo < 0 {
				return 0, fmt.Errorf("bad log-end-offset %q", val)
			}
			return leo, nil
		}
	}
	return 0, errors.New("no log-end-offset line")
}

// writeMarker durably writes the clean-shutdown marker.
func writeMarker(fsys FS, dir string, leo int64) error {
	return writeFileAtomic(fsys, dir, filepath.Join(dir, markerName), markerBytes(leo))
}

// Open opens the log in dir, creating dir and a first segment if needed.
// After a clean shutdown it trusts the files; otherwise it checks every
// segment past Options.RecoveryPoint, cutting a torn or corrupt one and
// dropping the segments after it. The high watermark starts at the log end
// offset.
func Open(dir string, cfg Config, opts Options) (*Log, error) {
	l := &Log{dir: dir, fs: opts.FS, now: opts.Now, onTruncate: opts.OnTruncate}
	l.recovery.Point = max(opts.RecoveryPoint, 0)
	if l.fs == nil {
		l.fs = OSFS{}
	}
	guard := newMarkerGuard(l.fs, dir) // marker_guard.go
	l.fs, l.marker = guard, guard.m
	if opts.Files != nil {
		l.fs = cachingFS{FS: l.fs, c: opts.Files}
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.log = opts.Logger.With().Str("dir", dir).Logger()
	l.SetConfig(cfg)
	l.fl.cond.L = &l.fl.mu
	l.done = make(chan struct{})
	if err := l.load(); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	l.startFromCheckpoint(opts.LogStartOffset)
	return l, nil
}

// load reads the directory and sets up the segments and offsets.
func (l *Log) load() (err error) {
	if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	if err := l.recoverCleanerSwap(); err != nil { // cleaner_swap.go
		return fmt.Errorf("finish cleaner swap: %w", err)
	}
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	type files struct{ log, idx, tidx bool }
	found := make(map[int64]*files)
	markerPresent := false
	var intents []string     // deletion intents (delete.go)
	deleteBelow := int64(-1) // the highest offset they name
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		switch name {
		case markerName:
			markerPresent = true
			continue
		case markerName + ".tmp":
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil {
				return err
			}
			continue
		}
		if below, ok := parseDeleteIntent(name); ok {
			intents = append(intents, name)
			deleteBelow = max(deleteBelow, below)
			continue
		}
		if strings.HasSuffix(name, deletedSuffix) {
			// A segment DeleteSegmentsBelow removed from the log; its
			// delayed removal did not happen before the process stopped.
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			continue
		}
		base, suffix, ok := parseSegmentName(name)
		if !ok {
			continue
		}
		f := found[base]
		if f == nil {
			f = &files{}
			found[base] = f
		}
		switch suffix {
		case logSuffix:
			f.log = true
		case indexSuffix:
			f.idx = true
		case timeIndexSuffix:
			f.tidx = true
		}
	}
	if len(intents) > 0 {
		var doomed []int64
		for base := range found {
			if base < deleteBelow {
				doomed = append(doomed, base)
				delete(found, base)
			}
		}
		if err := l.finishDeletion(doomed, deleteBelow, intents); err != nil {
			return fmt.Errorf("finish segment deletion below %d: %w", deleteBelow, err)
		}
	}
	var bases []int64
	for base, f := range found {
		if f.log {
			bases = append(bases, base)
			continue
		}
		// An index without its .log indexes nothing (Kafka removes them too).
		for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
			if err := l.fs.Remove(segmentPath(l.dir, base, suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		l.log.Warn().Int64("segment", base).Msg("removed index files that have no .log")
	}
	slices.Sort(bases)

	markerLEO, clean := int64(-1), false
	if markerPresent {
		b, err := readSmallFile(l.fs, filepath.Join(l.dir, markerName), markerMaxSize)
		if err == nil {
			markerLEO, err = parseMarker(b)
		}
		if err != nil {
			l.log.Warn().Err(err).Msg("ignoring unreadable clean-shutdown marker; recovering as after a crash")
		} else {
			clean = true
		}
	}

	var segs []*segment
	defer func() {
		if err != nil {
			for _, s := range segs {
				_ = s.close()
			}
		}
	}()
	now := l.now()
	var leo int64
	dirDirty, recovered := false, false
	recoverStart := time.Now() // wall time: a measurement, not a rule
	for i, base := range bases {
		s, size, fresh, err := openSegment(l.fs, l.dir, base, now)
		if err != nil {
			return err
		}
		segs = append(segs, s)
		if i < len(bases)-1 && !clean && bases[i+1] > l.recovery.Point {
			// Past the recovery point after a crash: not known to be
			// fsynced, so checked whole.
			recovered = true
			cut, err := l.recoverInactive(s, size)
			if err != nil {
				return err
			}
			if cut == nil {
				continue
			}
			// Kafka's rule: a segment cut short ends the log; the ones
			// after it are dropped, before the cut, so that a crash
			// meanwhile leaves a prefix that recovers the same way.
			if err := l.dropSegments(bases[i+1:]); err != nil {
				return err
			}
			if leo, err = cut(); err != nil {
				return err
			}
			dirDirty = true
			break
		}
		if i < len(bases)-1 {
			if err := l.loadIndexes(s, size, fresh, uint64(bases[i+1]-base), true); err != nil {
				return err
			}
			// Written before this process started: fsynced at roll, or
			// past saving.
			s.syncedSize, s.indexSynced = size, true
			continue
		}
		ok := false
		if clean {
			if leo, ok, err = l.openTrusted(s, size, fresh, markerLEO); err != nil {
				return err
			}
			if !ok {
				l.log.Warn().Int64("marker_log_end_offset", markerLEO).Int64("segment", base).
					Msg("clean-shutdown marker does not match the log; recovering as after a crash")
			}
		}
		if !ok {
			recovered = true
			l.recovery.Segments++
			l.recovery.Bytes += size
			if leo, err = l.recoverLast(s, size, fresh); err != nil {
				return err
			}
		}
	}
	if recovered {
		l.recovery.Duration = time.Since(recoverStart)
		l.log.Info().Int64("recovery_point", l.recovery.Point).Int("segments_checked", l.recovery.Segments).
			Int64("bytes_checked", l.recovery.Bytes).Int("segments_dropped", l.recovery.Dropped).
			Dur("duration", l.recovery.Duration).Msg("recovered the log after an unclean shutdown")
	}
	if len(segs) == 0 {
		base := max(markerLEO, deleteBelow, 0) // keep offsets moving forward if only the marker (or an intent) survived
		s, err := createSegment(l.fs, l.dir, base, now)
		if err != nil {
			return err
		}
		segs = append(segs, s)
		leo = base
		dirDirty = true
	}
	l.crashRecovered = recovered
	active := segs[len(segs)-1]
	if recovered {
		// Make the cut tail and rewritten indexes durable before the
		// marker goes, and before new appends land after them.
		if err := errors.Join(active.log.Sync(), active.idx.Sync(), active.tidx.Sync()); err != nil {
			return fmt.Errorf("fsync recovered segment %d: %w", active.base, err)
		}
	}
	active.syncedSize = active.size.Load()
	// A marker that still describes the files stays until the first
	// change (marker_guard.go); any other goes now, for good, before
	// anything is appended: left behind, it would make a crash after this
	// look like a clean shutdown.
	keepMarker := markerPresent && clean && !recovered && !dirDirty && !l.marker.changed.Load()
	if markerPresent && !keepMarker {
		if err := l.fs.Remove(filepath.Join(l.dir, markerName)); err != nil {
			return fmt.Errorf("remove clean-shutdown marker: %w", err)
		}
		dirDirty = true
	}
	if dirDirty {
		if err := syncDir(l.fs, l.dir); err != nil {
			return err
		}
	}
	l.marker.loaded(keepMarker)

	var total int64
	for _, s := range segs {
		total += s.size.Load()
	}
	if err := l.loadEpochs(segs, leo, clean && !recovered); err != nil {
		return err
	}
	l.segs.Store(&segs)
	l.leo.Store(leo)
	l.hw.Store(leo)
	l.start.Store(segs[0].base)
	l.bytes.Store(total)
	l.fl.synced = leo
	l.fl.syncedBelow = active.base
	return l.loadProducersLocked(leo)
}

// readAll reads a whole file.
func readAll(f File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	if err := readFull(f, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// readIndexes reads s's index files and checks them against a .log of size
// bytes. reason is not empty when they are malformed: a partial entry,
// entries out of order, an offset entry that does not point at the batch
// it names, a time entry at relative offset relLimit or beyond.
func readIndexes(s *segment, size int64, relLimit uint64) (offs []offsetEntry, times []timeEntry, reason string, err error) {
	ib, err := readAll(s.idx)
	if err != nil {
		return nil, nil, "", fmt.Errorf("read offset index of segment %d: %w", s.base, err)
	}
	tb, err := readAll(s.tidx)
	if err != nil {
		return nil, nil, "", fmt.Errorf("read time index of segment %d: %w", s.base, err)
	}
	if len(ib)%offsetEntrySize != 0 || len(tb)%timeEntrySize != 0 {
		return nil, nil, "partial index entry", nil
	}
	offs, times = decodeOffsetEntries(ib), decodeTimeEntries(tb)
	if n := validOffsetPrefix(offs, size); n < len(offs) {
		return nil, nil, fmt.Sprintf("offset index entry %d out of order or past the end of the log", n), nil
	}
	if n := validTimePrefix(times, relLimit); n < len(times) {
		return nil, nil, fmt.Sprintf("time index entry %d out of order or past the end of the segment", n), nil
	}
	if n := len(offs); n > 0 {
		if ok, err := s.offsetEntryHolds(offs[n-1], size); err != nil || !ok {
			return nil, nil, "last offset index entry does not point at its batch", err
		}
	}
	if n := len(times); n > 0 {
		s.offsets = offs // for the lookup; the caller installs them anyway
		if ok, err := s.timeEntryHolds(times[n-1], size); err != nil || !ok {
			return nil, nil, "last time index entry does not match its batch", err
		}
	}
	return offs, times, "", nil
}

// loadIndexes installs s's indexes from its files, or rebuilds both from
// the .log's batch headers when either file was missing (fresh) or is
// malformed. finished says the segment is not active (its time index
// ends with its largest timestamp).
func (l *Log) loadIndexes(s *segment, size int64, fresh bool, relLimit uint64, finished bool) error {
	s.size.Store(size)
	if !fresh {
		offs, times, reason, err := readIndexes(s, size, relLimit)
		if err != nil {
			return err
		}
		if reason == "" {
			b := l.newIndexBuilder(s)
			b.offs, b.times = offs, times
			b.fromTimeIndex()
			b.bytesSince = size
			if len(offs) > 0 {
				b.bytesSince = size - int64(offs[len(offs)-1].pos)
			}
			b.install(s)
			return nil
		}
		l.log.Warn().Int64("segment", s.base).Str("reason", reason).Msg("rebuilding malformed segment indexes")
	} else if size > 0 {
		l.log.Warn().Int64("segment", s.base).Msg("rebuilding missing segment indexes")
	}
	return l.rebuildIndexes(s, size, finished)
}

// rebuildIndexes rewrites both index files of s from the batch headers of
// its .log (the CRCs are not checked: this is for segments Open trusts).
func (l *Log) rebuildIndexes(s *segment, size int64, finished bool) error {
	b := l.newIndexBuilder(s)
	sc := newHeaderScanner(s.log, 0, size)
	for {
		h, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrCorrupt) {
			l.log.Warn().Int64("segment", s.base).Int64("position", sc.pos).Str("reason", reasonOf(err)).
				Msg("segment has bytes that are not batches; its indexes stop before them")
			break
		}
		if err != nil {
			return fmt.Errorf("rebuild indexes of segment %d: %w", s.base, err)
		}
		b.add(&h)
	}
	if finished {
		b.finish()
	}
	if err := b.write(s); err != nil {
		return err
	}
	b.install(s)
	return nil
}

// openTrusted opens the active segment after a clean shutdown: it loads
// (or rebuilds) the indexes and walks the batch headers after the last
// offset index entry to find the log end offset, which must be the
// marker's and end exactly at the end of the file. ok false means they
// disagree and the caller must recover instead.
func (l *Log) openTrusted(s *segment, size int64, fresh bool, markerLEO int64) (leo int64, ok bool, err error) {
	if markerLEO < s.base {
		return 0, false, nil
	}
	if err := l.loadIndexes(s, size, fresh, uint64(markerLEO-s.base), false); err != nil {
		return 0, false, err
	}
	var pos int64
	want := s.base // the next batch's base offset; -1 while checking the indexed batch by wantLast
	wantLast := int64(-1)
	if n := len(s.offsets); n > 0 {
		e := s.offsets[n-1]
		pos, want, wantLast = int64(e.pos), -1, s.base+int64(e.rel)
	}
	sc := newHeaderScanner(s.log, pos, size)
	leo = s.base
	for {
		h, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrCorrupt) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		if (want >= 0 && h.base != want) || (want < 0 && h.last() != wantLast) {
			return 0, false, nil
		}
		if h.maxTs > s.maxTs {
			s.maxTs, s.maxTsBase, s.maxTsLast = h.maxTs, h.base, h.last()
		}
		want, leo = h.last()+1, h.last()+1
	}
	return leo, leo == markerLEO, nil
}

// recoverLast checks the active segment after a crash: batch by batch
// (header, length, CRC-32C, contiguous offsets) from its last offset index
// entry that points at a real batch ending below the recovery point (from
// the start when there is none or an index file is missing), cutting the
// .log at the first bad byte and rewriting both indexes. Bytes past the
// recovery point were not fsynced, so none of them is trusted on an index
// entry's word: writeback may have saved a later page and an entry naming
// it while losing an earlier page. It returns the log end offset.
func (l *Log) recoverLast(s *segment, size int64, fresh bool) (int64, error) {
	b := l.newIndexBuilder(s)
	var start int64
	if !fresh {
		ib, err := readAll(s.idx)
		if err != nil {
			return 0, fmt.Errorf("read offset index of segment %d: %w", s.base, err)
		}
		tb, err := readAll(s.tidx)
		if err != nil {
			return 0, fmt.Errorf("read time index of segment %d: %w", s.base, err)
		}
		// Entries are checked one by one (a header read each, cheaper than
		// the full scan Kafka does after a crash); the good ones up to the
		// first bad one are kept.
		offs := decodeOffsetEntries(ib)
		offs = offs[:validOffsetPrefix(offs, size)]
		for i, e := range offs {
			if s.base+int64(e.rel) >= l.recovery.Point {
				offs = offs[:i] // its batch and what precedes it may not be on disk
				break
			}
			if ok, err := s.offsetEntryHolds(e, size); err != nil {
				return 0, err
			} else if !ok {
				offs = offs[:i]
				break
			}
		}
		if n := len(offs); n > 0 {
			e := offs[n-1]
			s.offsets = offs // for timeEntryHolds
			times := decodeTimeEntries(tb)
			// Time entries written after e's were written with later
			// offset entries, which are gone: they name later batches.
			times = times[:validTimePrefix(times, uint64(e.rel)+1)]
			for i, te := range times {
				if ok, err := s.timeEntryHolds(te, size); err != nil {
					return 0, err
				} else if !ok {
					times = times[:i]
					break
				}
			}
			b.offs, b.times = offs, times
			b.fromTimeIndex()
			start = int64(e.pos)
			b.skipPos = start // e's batch has its entry already
		}
	}
	leo, good, reason, err := l.scanValid(s, start, size, b, false)
	if err != nil {
		return 0, err
	}
	if start > 0 && good == start {
		// The batch of the last good-looking entry is bad itself; what
		// the index says about it cannot be trusted either.
		b = l.newIndexBuilder(s)
		if leo, good, reason, err = l.scanValid(s, 0, size, b, false); err != nil {
			return 0, err
		}
	}
	if good < size {
		if err := s.log.Truncate(good); err != nil {
			return 0, fmt.Errorf("cut segment %d at %d: %w", s.base, good, err)
		}
		l.log.Warn().Int64("segment", s.base).Int64("position", good).Int64("bytes_dropped", size-good).
			Str("reason", reason).Int64("log_end_offset", leo).Msg("cut torn or corrupt tail of the log")
	}
	if err := b.write(s); err != nil {
		return 0, err
	}
	s.size.Store(good)
	b.install(s)
	return leo, nil
}

// scanValid checks the batches of s from pos (a batch boundary) to size,
// feeding each good one to b. It returns the log end offset after the
// last good batch, where the good bytes end, and why they end there ("" at
// size). With pos 0 the first batch must start at the segment's base
// offset; later, each batch must follow the previous one.
//
// With gaps, a batch may start past the previous one's end (a segment the
// cleaner wrote, doc.go Compaction); the active segment never has gaps,
// which lets recovery catch a damaged base offset, which no CRC covers.
func (l *Log) scanValid(s *segment, pos, size int64, b *indexBuilder, gaps bool) (leo, good int64, reason string, err error) {
	want := int64(-1)
	if pos == 0 {
		want = s.base
	}
	leo = s.base
	var hb [batchHeaderSize]byte
	var buf []byte
	for ; pos < size; pos += int64(len(buf)) {
		if size-pos < batchHeaderSize {
			return leo, pos, fmt.Sprintf("%d bytes left, too few for a batch header", size-pos), nil
		}
		if err := readFull(s.log, hb[:], pos); err != nil {
			return 0, 0, "", fmt.Errorf("read segment %d at %d: %w", s.base, pos, err)
		}
		h := decodeHeader(hb[:], pos)
		if err := checkHeader(&h, size); err != nil {
			return leo, pos, reasonOf(err), nil
		}
		switch {
		case want >= 0 && (h.base < want || (h.base > want && !gaps)):
			return leo, pos, fmt.Sprintf("base offset %d where %d was expected", h.base, want), nil
		case h.last()-s.base > math.MaxInt32:
			return leo, pos, fmt.Sprintf("offset %d too far from segment base", h.last()), nil
		case pos > math.MaxUint32:
			return leo, pos, "position beyond what an index entry can hold", nil
		}
		buf = slices.Grow(buf[:0], int(h.size))[:h.size]
		if err := readFull(s.log, buf, pos); err != nil {
			return 0, 0, "", fmt.Errorf("read segment %d at %d: %w", s.base, pos, err)
		}
		if _, err := protocol.ParseBatchHeader(buf); err != nil {
			return leo, pos, err.Error(), nil
		}
		if got := protocol.BatchCRC(buf); got != h.crc {
			return leo, pos, fmt.Sprintf("crc %08x, computed %08x", h.crc, got), nil
		}
		b.add(&h)
		want, leo = h.last()+1, h.last()+1
	}
	return leo, pos, "", nil
}

// indexBuilder recomputes a segment's indexes batch by batch with the
// append path's rules (segment.appendLocked).
type indexBuilder struct {
	base       int64
	interval   int64
	offs       []offsetEntry
	times      []timeEntry
	bytesSince int64
	skipPos    int64 // the batch at this position already has its entry (-1: none)

	maxTs, maxBase, maxLast int64
}

func (l *Log) newIndexBuilder(s *segment) *indexBuilder {
	return &indexBuilder{base: s.base, interval: l.cfg.Load().IndexIntervalBytes, skipPos: -1, maxTs: -1, maxBase: -1, maxLast: -1}
}

// fromTimeIndex takes the largest timestamp from the last time entry.
func (b *indexBuilder) fromTimeIndex() {
	if n := len(b.times); n > 0 {
		e := b.times[n-1]
		b.maxTs, b.maxBase, b.maxLast = e.ts, -1, b.base+int64(e.rel)
	}
}

func (b *indexBuilder) lastTimeTs() int64 {
	if len(b.times) == 0 {
		return -1
	}
	return b.times[len(b.times)-1].ts
}

// add indexes the next batch.
func (b *indexBuilder) add(h *batchHeader) {
	if h.maxTs > b.maxTs {
		b.maxTs, b.maxBase, b.maxLast = h.maxTs, h.base, h.last()
	}
	switch {
	case h.pos == b.skipPos:
		b.bytesSince = 0
	case h.pos > 0 && b.bytesSince >= b.interval:
		b.offs = append(b.offs, offsetEntry{rel: uint32(h.last() - b.base), pos: uint32(h.pos)})
		if b.maxTs > b.lastTimeTs() {
			b.times = append(b.times, timeEntry{ts: b.maxTs, rel: uint32(b.maxLast - b.base)})
		}
		b.bytesSince = 0
	}
	b.bytesSince += h.size
}

// finish adds the closing time entry of a segment that is not active.
func (b *indexBuilder) finish() {
	if b.maxTs > b.lastTimeTs() {
		b.times = append(b.times, timeEntry{ts: b.maxTs, rel: uint32(b.maxLast - b.base)})
	}
}

// write replaces s's index files with b's entries.
func (b *indexBuilder) write(s *segment) error {
	for _, w := range []struct {
		f    File
		data []byte
	}{{s.idx, encodeOffsetEntries(b.offs)}, {s.tidx, encodeTimeEntries(b.times)}} {
		if err := w.f.Truncate(0); err != nil {
			return fmt.Errorf("rewrite index of segment %d: %w", s.base, err)
		}
		if len(w.data) == 0 {
			continue
		}
		if _, err := w.f.WriteAt(w.data, 0); err != nil {
			return fmt.Errorf("rewrite index of segment %d: %w", s.base, err)
		}
	}
	return nil
}

// install puts b's state into s. Open only: s is not published yet.
func (b *indexBuilder) install(s *segment) {
	s.offsets, s.times = b.offs, b.times
	s.maxTs, s.maxTsBase, s.maxTsLast = b.maxTs, b.maxBase, b.maxLast
	s.bytesSinceIndex = b.bytesSince
}

// RecoveryStats says what Open checked after an unclean shutdown; zero
// after a clean one.
type RecoveryStats struct {
	Point    int64         // the recovery point Open was given
	Segments int           // segments checked batch by batch
	Bytes    int64         // bytes of those segments
	Dropped  int           // segments removed after a segment cut short
	Duration time.Duration // wall time of the checks
}

// Recovery returns what Open checked (see RecoveryStats).
func (l *Log) Recovery() RecoveryStats {
	st := l.recovery
	if !l.crashRecovered {
		st = RecoveryStats{Point: st.Point}
	}
	return st
}

// RecoveryPoint returns the offset below which every batch is fsynced,
// with the indexes and directory entries of the segments that hold them:
// what the broker writes to the recovery-point-offset-checkpoint. After a
// crash, Open trusts the segments that end at or below it.
func (l *Log) RecoveryPoint() int64 {
	l.fl.mu.Lock()
	defer l.fl.mu.Unlock()
	return min(l.fl.synced, l.leo.Load())
}

// recoverInactive checks, after a crash, a segment that is not the last
// and lies past the recovery point: every batch from its start (header,
// length, CRC-32C, offsets increasing). A good segment gets both indexes
// rewritten and is fsynced, so that the recovery point can move past it;
// cut is nil. For a segment with a bad byte, cut cuts it there, rewrites
// its indexes as those of the active segment it becomes, and returns the
// offset after its last good batch.
func (l *Log) recoverInactive(s *segment, size int64) (cut func() (int64, error), err error) {
	l.recovery.Segments++
	l.recovery.Bytes += size
	b := l.newIndexBuilder(s)
	leo, good, reason, err := l.scanValid(s, 0, size, b, true)
	if err != nil {
		return nil, err
	}
	if good < size {
		return func() (int64, error) {
			if err := s.log.Truncate(good); err != nil {
				return 0, fmt.Errorf("cut segment %d at %d: %w", s.base, good, err)
			}
			l.log.Warn().Int64("segment", s.base).Int64("position", good).Int64("bytes_dropped", size-good).
				Str("reason", reason).Int64("log_end_offset", leo).
				Msg("cut torn or corrupt segment past the recovery point; the segments after it are dropped")
			if err := b.write(s); err != nil {
				return 0, err
			}
			s.size.Store(good)
			b.install(s)
			return leo, nil
		}, nil
	}
	b.finish()
	if err := b.write(s); err != nil {
		return nil, err
	}
	s.size.Store(good)
	b.install(s)
	if err := errors.Join(s.log.Sync(), s.idx.Sync(), s.tidx.Sync()); err != nil {
		return nil, fmt.Errorf("fsync recovered segment %d: %w", s.base, err)
	}
	s.syncedSize, s.indexSynced = good, true
	return nil, nil
}

// dropSegments removes the files of the segments with these base offsets,
// the newest first and each .log before its indexes, so that a crash
// meanwhile leaves a prefix of the log (and orphan indexes Open removes).
func (l *Log) dropSegments(bases []int64) error {
	for i := len(bases) - 1; i >= 0; i-- {
		for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			if err := l.fs.Remove(segmentPath(l.dir, bases[i], suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("drop segment %d after a cut: %w", bases[i], err)
			}
		}
		l.recovery.Dropped++
	}
	l.log.Warn().Int("segments", len(bases)).Int64("first_dropped", bases[0]).Msg("dropped the segments after a cut segment")
	return nil
}

// finishDeletion completes the deletions that deletion intents (delete.go)
// announced and a crash interrupted: it removes the files of the segments
// below the intents' offset (bases), makes that durable, then removes the
// intents.
func (l *Log) finishDeletion(bases []int64, below int64, intents []string) error {
	slices.Sort(bases)
	for _, base := range bases {
		for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			if err := l.fs.Remove(segmentPath(l.dir, base, suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if len(bases) > 0 {
		l.log.Warn().Int("segments", len(bases)).Int64("first", bases[0]).Int64("below", below).
			Msg("removed the segments an interrupted deletion had not removed yet")
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return err
	}
	for _, name := range intents {
		if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return syncDir(l.fs, l.dir)
}
