package storage

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// File name suffixes of a segment.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

// segmentPath names a segment file: the base offset in 20 zero-padded
// digits, then the suffix.
func segmentPath(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, suffix))
}

// parseSegmentName returns the base offset and suffix of a segment file
// name, or ok false for any other name.
func parseSegmentName(name string) (base int64, suffix string, ok bool) {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		digits, found := cutSuffix(name, suf)
		if !found || len(digits) != 20 {
			continue
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n < 0 {
			return 0, "", false
		}
		return n, suf, true
	}
	return 0, "", false
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) < len(suffix) || s[len(s)-len(suffix):] != suffix {
		return s, false
	}
	return s[:len(s)-len(suffix)], true
}

// segment is one .log with its .index and .timeindex.
//
// Its bytes below size are immutable once written, which is what lets
// readers go without locks: they read size, then read anything below it.
type segment struct {
	base int64
	// The files are opened when the segment is created or loaded and
	// closed by Log.Close; written only by the append path, read by anyone.
	log, idx, tidx File

	// size is the readable end of the .log: every byte below it belongs to
	// a whole, written batch. Stored by the append path after the write,
	// before the log end offset moves; loaded by readers.
	size atomic.Int64

	// Owned by the append path (Log.mu held).
	created         time.Time // when the segment was created or, if loaded, opened (segment.ms)
	bytesSinceIndex int64     // bytes appended since the batch of the last offset index entry began
	jitterSeed      uint64    // random, fixed at creation: picks the segment's segment.jitter.ms (rollJitterMs)

	// Owned by the flusher: the goroutine that holds flushState.syncing.
	syncedSize  int64 // bytes of the .log known to be fsynced
	indexSynced bool  // the index files were fsynced after the segment stopped being active

	astrayLogged atomic.Bool // a lookup found the offset index wrong and said so

	// mu protects the in-memory indexes and the largest timestamp. The
	// append path changes them under Log.mu and mu; readers take mu's
	// read lock for in-memory lookups only, never across I/O.
	mu      sync.RWMutex
	offsets []offsetEntry
	times   []timeEntry
	// maxTs is the largest batch max timestamp in the segment (-1: none),
	// reached first by the batch with offsets maxTsBase..maxTsLast.
	// maxTsBase is -1 until known when maxTs came from the time index.
	maxTs, maxTsBase, maxTsLast int64
}

func newSegment(base int64) *segment {
	return &segment{base: base, maxTs: -1, maxTsBase: -1, maxTsLast: -1, jitterSeed: rand.Uint64()}
}

// createSegment creates the three files of a new, empty segment. The .log
// must not exist; stale index files are replaced.
func createSegment(fsys FS, dir string, base int64, now time.Time) (*segment, error) {
	s := newSegment(base)
	s.created = now
	var err error
	if s.log, err = fsys.OpenFile(segmentPath(dir, base, logSuffix), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	if s.idx, err = fsys.OpenFile(segmentPath(dir, base, indexSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err == nil {
		s.tidx, err = fsys.OpenFile(segmentPath(dir, base, timeIndexSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	if err != nil {
		_ = s.close()
		_ = fsys.Remove(segmentPath(dir, base, logSuffix))
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	return s, nil
}

// openSegment opens the files of an existing segment, creating missing
// index files (reported by fresh so the caller rebuilds them).
func openSegment(fsys FS, dir string, base int64, now time.Time) (s *segment, logSize int64, fresh bool, err error) {
	s = newSegment(base)
	s.created = now
	defer func() {
		if err != nil {
			_ = s.close()
			err = fmt.Errorf("open segment %d: %w", base, err)
		}
	}()
	if s.log, err = fsys.OpenFile(segmentPath(dir, base, logSuffix), os.O_RDWR, 0); err != nil {
		return s, 0, false, err
	}
	fi, err := s.log.Stat()
	if err != nil {
		return s, 0, false, err
	}
	open := func(suffix string) (File, error) {
		f, err := fsys.OpenFile(segmentPath(dir, base, suffix), os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			fresh = true
			f, err = fsys.OpenFile(segmentPath(dir, base, suffix), os.O_RDWR|os.O_CREATE, 0o644)
		}
		return f, err
	}
	if s.idx, err = open(indexSuffix); err != nil {
		return s, 0, false, err
	}
	if s.tidx, err = open(timeIndexSuffix); err != nil {
		return s, 0, false, err
	}
	return s, fi.Size(), fresh, nil
}

// close closes the segment's open files.
func (s *segment) close() error {
	var errs []error
	for _, f := range []File{s.log, s.idx, s.tidx} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// lastTimeTs is the timestamp of the last time index entry, or -1.
// Called by the append path or with mu held.
func (s *segment) lastTimeTs() int64 {
	if len(s.times) == 0 {
		return -1
	}
	return s.times[len(s.times)-1].ts
}

// rollReason says why a batch of n bytes ending at offset last must go
// into a new segment, or "" when it fits in s. An empty segment takes any
// batch. Called by the append path.
func (s *segment) rollReason(c *Config, n, last int64, now time.Time) string {
	size := s.size.Load()
	switch {
	case size == 0:
		return ""
	case size+n > c.SegmentBytes:
		return "segment.bytes"
	case s.timeToRoll(c, now):
		return "segment.ms"
	case last-s.base > math.MaxInt32:
		return "relative offset range"
	case s.bytesSinceIndex >= c.IndexIntervalBytes &&
		(int64(len(s.offsets)+1)*offsetEntrySize > c.SegmentIndexBytes || int64(len(s.times)+1)*timeEntrySize > c.SegmentIndexBytes):
		return "segment.index.bytes"
	}
	return ""
}

// appendLocked writes batch (h describes it, with its final base offset)
// at the end of the .log and adds index entries as index.interval.bytes
// asks. On error the files are cut back to what they were; fatal reports
// that cutting back failed too, so the files no longer match memory.
// Called by the append path.
func (s *segment) appendLocked(batch []byte, h *batchHeader, interval int64) (fatal bool, err error) {
	pos := s.size.Load()
	h.pos = pos
	nOff, nTime := len(s.offsets), len(s.times)
	undo := func(err error) (bool, error) {
		terr := errors.Join(
			s.log.Truncate(pos),
			s.idx.Truncate(int64(nOff)*offsetEntrySize),
			s.tidx.Truncate(int64(nTime)*timeEntrySize),
		)
		if terr != nil {
			return true, fmt.Errorf("%w (and cutting back failed: %v)", err, terr)
		}
		return false, err
	}
	if _, err := s.log.WriteAt(batch, pos); err != nil {
		return undo(fmt.Errorf("write batch: %w", err))
	}
	maxTs, maxBase, maxLast := s.maxTs, s.maxTsBase, s.maxTsLast
	if h.maxTs > maxTs {
		maxTs, maxBase, maxLast = h.maxTs, h.base, h.last()
	}
	var addOff, addTime bool
	var oe offsetEntry
	var te timeEntry
	if pos > 0 && s.bytesSinceIndex >= interval {
		addOff = true
		oe = offsetEntry{rel: uint32(h.last() - s.base), pos: uint32(pos)}
		if _, err := s.idx.WriteAt(appendOffsetEntry(nil, oe), int64(nOff)*offsetEntrySize); err != nil {
			return undo(fmt.Errorf("write offset index: %w", err))
		}
		if maxTs > s.lastTimeTs() {
			addTime = true
			te = timeEntry{ts: maxTs, rel: uint32(maxLast - s.base)}
			if _, err := s.tidx.WriteAt(appendTimeEntry(nil, te), int64(nTime)*timeEntrySize); err != nil {
				return undo(fmt.Errorf("write time index: %w", err))
			}
		}
	}
	// Publish the bytes before the index entries that point at them.
	s.size.Store(pos + int64(len(batch)))
	s.mu.Lock()
	if addOff {
		s.offsets = append(s.offsets, oe)
		s.bytesSinceIndex = 0
	}
	if addTime {
		s.times = append(s.times, te)
	}
	s.maxTs, s.maxTsBase, s.maxTsLast = maxTs, maxBase, maxLast
	s.mu.Unlock()
	s.bytesSinceIndex += int64(len(batch))
	return false, nil
}

// finishLocked appends the segment's largest timestamp to its time index
// if the index does not end with it yet, as Kafka does when a segment
// stops being active (roll, clean close). Called by the append path.
func (s *segment) finishLocked() (fatal bool, err error) {
	if s.maxTs <= s.lastTimeTs() {
		return false, nil
	}
	te := timeEntry{ts: s.maxTs, rel: uint32(s.maxTsLast - s.base)}
	at := int64(len(s.times)) * timeEntrySize
	if _, err := s.tidx.WriteAt(appendTimeEntry(nil, te), at); err != nil {
		if terr := s.tidx.Truncate(at); terr != nil {
			return true, fmt.Errorf("write time index: %w (and cutting back failed: %v)", err, terr)
		}
		return false, fmt.Errorf("write time index: %w", err)
	}
	s.mu.Lock()
	s.times = append(s.times, te)
	s.mu.Unlock()
	return false, nil
}

// scanFrom returns a header scanner positioned, by the offset index, at or
// before the batch holding offset. end is the readable end the caller
// loaded; buf (may be nil) is memory for the scanner to reuse.
func (s *segment) scanFrom(offset, end int64, buf []byte) *headerScanner {
	var pos int64
	if rel := offset - s.base; rel > 0 {
		s.mu.RLock()
		pos = floorPos(s.offsets, uint32(min(rel, math.MaxUint32)))
		s.mu.RUnlock()
	}
	sc := newHeaderScanner(s.log, pos, end)
	sc.buf = buf[:0]
	return sc
}

// scanTo reads headers until the first batch that ends at or after
// offset; found is false at the end of the scanner's range.
func scanTo(sc *headerScanner, offset int64) (h batchHeader, found bool, err error) {
	for {
		h, err := sc.next()
		if errors.Is(err, io.EOF) {
			return h, false, nil
		}
		if err != nil {
			return h, false, err
		}
		if h.last() >= offset {
			return h, true, nil
		}
	}
}

// locate finds the batch holding offset, or the first one after it, below
// end, and returns a scanner positioned after it. The offset index only
// says where to start reading headers; if it leads astray (to bytes that
// are not a batch header, or past the batch holding offset) locate reads
// the segment from its start, so that a damaged index entry costs time but
// never returns wrong data. astray reports that it happened.
func (s *segment) locate(offset, end int64, buf []byte) (sc *headerScanner, h batchHeader, found, astray bool, err error) {
	sc = s.scanFrom(offset, end, buf)
	from := sc.pos
	h, found, err = scanTo(sc, offset)
	if from == 0 || (err == nil && found && h.base <= offset) || (err != nil && !errors.Is(err, ErrCorrupt)) {
		return sc, h, found, false, err
	}
	sc = s.scanFrom(s.base, end, sc.buf)
	h, found, err = scanTo(sc, offset)
	return sc, h, found, true, err
}

// offsetEntryHolds reports whether the batch at e.pos, below size, ends at
// offset base+e.rel. Only I/O errors are errors.
func (s *segment) offsetEntryHolds(e offsetEntry, size int64) (bool, error) {
	h, err := readHeaderAt(s.log, int64(e.pos), size)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return false, err
	}
	return err == nil && h.last() == s.base+int64(e.rel), nil
}

// timeEntryHolds reports whether the batch ending at base+e.rel, below
// size, has max timestamp e.ts. It finds the batch through s.offsets, which
// the caller has checked. Only I/O errors are errors.
func (s *segment) timeEntryHolds(e timeEntry, size int64) (bool, error) {
	last := s.base + int64(e.rel)
	h, found, err := scanTo(s.scanFrom(last, size, nil), last)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return false, err
	}
	return err == nil && found && h.last() == last && h.maxTs == e.ts, nil
}

// readBatch returns a copy of the batch h describes.
func (s *segment) readBatch(h *batchHeader) ([]byte, error) {
	b := make([]byte, h.size)
	if err := readFull(s.log, b, h.pos); err != nil {
		return nil, fmt.Errorf("read batch at %d of segment %d: %w", h.pos, s.base, err)
	}
	return b, nil
}
