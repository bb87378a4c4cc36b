package storage

// Swapping a cleaned segment in for the segments it replaces, and
// finishing (or undoing) a swap a crash interrupted. The protocol is
// drawn in doc.go ("Compaction"); the marker's format is here.
//
// Swap marker (cleaner-swap in the log's directory), text, written with
// writeFileAtomic (fsynced, with the directory) before the append lock is
// taken, so before any .swap file exists, and removed after the swap or
// when the swap is abandoned:
//
//	gregor-cleaner-swap v1
//	base: 0
//	end: 1234567
//
// base is the base offset of the cleaned segment (that of the first
// segment it replaces), end the base offset of the first segment it does
// not replace. Version rule as for the clean-shutdown marker: a reader of
// version N accepts N and N-1 and ignores unknown keys; this code is v1.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	cleanedSuffix = ".cleaned"
	swapSuffix    = ".swap"

	swapMarkerName    = "cleaner-swap"
	swapMarkerMagic   = "gregor-cleaner-swap"
	swapMarkerVersion = 1
	swapMarkerMaxSize = 4 << 10
)

var segmentSuffixes = []string{indexSuffix, timeIndexSuffix, logSuffix} // the .log last

func swapMarkerBytes(base, end int64) []byte {
	return fmt.Appendf(nil, "%s v%d\nbase: %d\nend: %d\n", swapMarkerMagic, swapMarkerVersion, base, end)
}

// parseSwapMarker returns the range a swap marker records.
func parseSwapMarker(b []byte) (base, end int64, err error) {
	lines := strings.Split(string(b), "\n")
	v, ok := strings.CutPrefix(lines[0], swapMarkerMagic+" v")
	if !ok {
		return 0, 0, fmt.Errorf("first line %q is not a cleaner swap marker", lines[0])
	}
	if ver, err := strconv.Atoi(v); err != nil || ver < 1 || ver > swapMarkerVersion {
		return 0, 0, fmt.Errorf("cleaner swap marker version %q, this code reads v1 to v%d", v, swapMarkerVersion)
	}
	base, end = -1, -1
	for _, line := range lines[1:] {
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("bad %s %q in cleaner swap marker", key, val)
		}
		switch key {
		case "base":
			base = n
		case "end":
			end = n
		}
	}
	if base < 0 || end <= base {
		return 0, 0, fmt.Errorf("cleaner swap marker has range %d to %d", base, end)
	}
	return base, end, nil
}

// removeCleaned removes the .cleaned files of a segment, if any.
func removeCleaned(fsys FS, dir string, base int64) {
	for _, suffix := range segmentSuffixes {
		_ = fsys.Remove(segmentPath(dir, base, suffix) + cleanedSuffix)
	}
}

// swapIn replaces the segments g (ending where the segment at end
// begins) with the cleaned segment w, fsynced aside:
//
//  1. before the append lock, write the swap marker (base, end), fsynced
//     with the directory: its content is known, and a marker with no
//     .log.swap decides nothing (Open removes it), so an abandoned swap
//     only has to remove it again;
//
// then under the append lock:
//
//  2. check that g is still in the log, unchanged, and that the log was
//     not truncated since the pass began (gen; a truncation, a deletion
//     of segments, a close or a failure makes it give up);
//  3. rename the cleaned files to .swap, the .log last, and fsync the
//     directory: from here on the swap is decided;
//  4. rename the replaced segments' files to .deleted (delete.go), and
//     fsync the directory once;
//  5. rename the .swap files to their segment names, the .log last, and
//     fsync the directory;
//  6. publish the new segment list, release the lock, remove the marker.
//
// Three directory fsyncs happen under the lock, whatever the number of
// replaced segments. A failure before 3 leaves the log as it was; from 3
// on, the log fails (sticky, as a failed deletion does) and the next Open
// finishes the swap.
func (l *Log) swapIn(g []*segment, end int64, w *cleaned, gen uint64) error {
	base := w.base
	markerPath := filepath.Join(l.dir, swapMarkerName)
	removeMarker := func() {
		if err := l.fs.Remove(markerPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn().Err(err).Msg("cannot remove the cleaner swap marker; the next open removes it")
		}
	}
	if l.closed.Load() {
		removeCleaned(l.fs, l.dir, base)
		return ErrCleanAborted
	}
	if err := writeFileAtomic(l.fs, l.dir, markerPath, swapMarkerBytes(base, end)); err != nil {
		removeCleaned(l.fs, l.dir, base)
		removeMarker()
		return fmt.Errorf("swap segment %d: %w", base, err)
	}
	decided, err := l.swapLocked(g, end, w, gen)
	switch {
	case !decided:
		// Abandoned (or failed) before step 3: the log is as it was.
		removeCleaned(l.fs, l.dir, base)
		removeMarker()
	case err == nil:
		removeMarker()
	}
	// Decided but failed: the log failed; the next Open finishes the
	// swap, with the marker.
	return err
}

// swapLocked is steps 2 to 6 of swapIn, under the append lock, which it
// takes. decided reports that step 3 renamed the .log to .swap: from
// then on a failure leaves the swap to the next Open.
func (l *Log) swapLocked(g []*segment, end int64, w *cleaned, gen uint64) (decided bool, err error) {
	base := w.base
	l.mu.Lock()
	defer l.mu.Unlock()
	segs := l.segments()
	i := segmentFor(segs, base)
	if !l.mu.closed && l.mu.truncations != gen {
		l.log.Info().Int64("segment", base).Msg("log truncated during the clean pass; abandoning its swap")
		return false, ErrCleanAborted
	}
	if l.mu.closed || i < 0 || i+len(g) >= len(segs) || !slices.Equal(segs[i:i+len(g)], g) || segs[i+len(g)].base != end {
		return false, ErrCleanAborted
	}
	if err := l.failure(); err != nil {
		return false, err
	}
	fail := func(step string, err error) (bool, error) {
		return true, l.setFailed(fmt.Errorf("swap cleaned segment %d: %s: %w", base, step, err))
	}
	for _, suffix := range segmentSuffixes {
		p := segmentPath(l.dir, base, suffix)
		if err := l.fs.Rename(p+cleanedSuffix, p+swapSuffix); err != nil {
			if suffix != logSuffix {
				// Not decided yet: undo.
				for _, sfx := range segmentSuffixes {
					_ = l.fs.Remove(segmentPath(l.dir, base, sfx) + swapSuffix)
				}
				return false, fmt.Errorf("swap segment %d: %w", base, err)
			}
			return fail("rename to .swap", err)
		}
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return fail("fsync directory", err)
	}
	for _, s := range g {
		if _, err := l.renameDeletedLocked(s); err != nil {
			return fail("retire replaced segment", err)
		}
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return fail("fsync directory", err)
	}
	for _, suffix := range segmentSuffixes {
		p := segmentPath(l.dir, base, suffix)
		if err := l.fs.Rename(p+swapSuffix, p); err != nil {
			return fail("rename .swap", err)
		}
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return fail("fsync directory", err)
	}
	s, size, fresh, err := openSegment(l.fs, l.dir, base, l.now())
	if err != nil {
		return fail("open cleaned segment", err)
	}
	if fresh || size != w.size {
		_ = s.close()
		return fail("open cleaned segment", fmt.Errorf("found %d bytes (index files missing: %v), wrote %d", size, fresh, w.size))
	}
	w.b.install(s)
	s.size.Store(size)
	s.syncedSize, s.indexSynced = size, true
	next := slices.Concat(segs[:i], []*segment{s}, segs[i+len(g):])
	var old int64
	for _, o := range g {
		old += o.size.Load()
	}
	l.segs.Store(&next)
	l.bytes.Add(size - old)
	l.removeLater(g, time.Duration(l.cfg.Load().FileDeleteDelayMs)*time.Millisecond)
	return true, nil
}

// recoverCleanerSwap, at Open before the segments are read, finishes a
// swap a crash interrupted after it was decided (a <base>.log.swap
// exists) and removes whatever a clean left before that: .cleaned files,
// .swap index files without their .log.swap, the swap marker.
func (l *Log) recoverCleanerSwap() error {
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var swapLog int64 = -1
	var swaps []string
	markerPresent := false
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == swapMarkerName:
			markerPresent = true
		case strings.HasSuffix(name, cleanedSuffix):
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		case strings.HasSuffix(name, swapSuffix):
			swaps = append(swaps, name)
			if base, suffix, ok := parseSegmentName(strings.TrimSuffix(name, swapSuffix)); ok && suffix == logSuffix {
				swapLog = base
			}
		}
	}
	if !markerPresent && len(swaps) == 0 {
		return nil
	}
	if swapLog < 0 {
		// Never decided, so the replaced segments are all there; or
		// finished but for index renames a crash lost (step 5 renames
		// the .log last; the old indexes went in step 4, durably): a
		// missing index is rebuilt from the .log.
		for _, name := range swaps {
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	} else {
		end := swapLog + 1
		b, err := readSmallFile(l.fs, filepath.Join(l.dir, swapMarkerName), swapMarkerMaxSize)
		if err == nil {
			var mb int64
			if mb, end, err = parseSwapMarker(b); err == nil && mb != swapLog {
				err = fmt.Errorf("cleaner swap marker names segment %d, the swap file %d", mb, swapLog)
			}
		}
		if err != nil {
			// The marker is written before any .swap file: this is not a
			// state the cleaner leaves. Keep the old segments if the first
			// is whole; otherwise the cleaned one replaces just it.
			l.log.Warn().Err(err).Int64("segment", swapLog).Msg("cleaner swap without a readable marker")
			if hasEntry(ents, filepath.Base(segmentPath(l.dir, swapLog, logSuffix))) {
				for _, name := range swaps {
					_ = l.fs.Remove(filepath.Join(l.dir, name))
				}
				return l.removeSwapMarker()
			}
			end = swapLog + 1
		}
		if err := l.finishSwap(ents, swapLog, end, swaps); err != nil {
			return err
		}
		l.log.Warn().Int64("segment", swapLog).Int64("end", end).Msg("finished a cleaner swap interrupted by a crash")
	}
	return l.removeSwapMarker()
}

// finishSwap removes the segments in [base, end) the swap replaces and
// renames the .swap files of base into place, the .log last.
func (l *Log) finishSwap(ents []os.DirEntry, base, end int64, swaps []string) error {
	hasSwap := make(map[string]bool)
	for _, name := range swaps {
		hasSwap[strings.TrimSuffix(name, swapSuffix)] = true
	}
	for _, e := range ents {
		name := e.Name()
		b, _, ok := parseSegmentName(name)
		if !ok || b < base || b >= end {
			continue
		}
		// Every file in the range goes. For base's .log that is the old
		// one (its .log.swap is here). An index of base without its .swap
		// was either renamed into place already (step 5) or is the old
		// segment's, the cleaned index's rename to .swap lost (step 3's
		// renames become durable together, in any order): either way it
		// is removed and rebuilt from the .log when the log is read.
		if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return err
	}
	for _, suffix := range segmentSuffixes {
		p := segmentPath(l.dir, base, suffix)
		if !hasSwap[filepath.Base(p)] {
			continue
		}
		if err := l.fs.Rename(p+swapSuffix, p); err != nil {
			return err
		}
	}
	return syncDir(l.fs, l.dir)
}

func (l *Log) removeSwapMarker() error {
	err := l.fs.Remove(filepath.Join(l.dir, swapMarkerName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(l.fs, l.dir)
}

func hasEntry(ents []os.DirEntry, name string) bool {
	for _, e := range ents {
		if e.Name() == name {
			return true
		}
	}
	return false
}
