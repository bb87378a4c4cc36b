package storage

// The two sparse indexes of a segment, in memory and in their files. The
// layouts are drawn in doc.go.

import (
	"encoding/binary"
	"sort"
)

const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

// offsetEntry is one .index entry: the batch whose last offset is
// base+rel starts at pos.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry is one .timeindex entry: ts is the largest max timestamp of
// the segment's batches up to and including the batch whose last offset is
// base+rel.
type timeEntry struct {
	ts  int64
	rel uint32
}

func appendOffsetEntry(dst []byte, e offsetEntry) []byte {
	dst = binary.BigEndian.AppendUint32(dst, e.rel)
	return binary.BigEndian.AppendUint32(dst, e.pos)
}

func appendTimeEntry(dst []byte, e timeEntry) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
	return binary.BigEndian.AppendUint32(dst, e.rel)
}

// decodeOffsetEntries decodes the whole entries in b (a partial entry at
// the end is ignored).
func decodeOffsetEntries(b []byte) []offsetEntry {
	out := make([]offsetEntry, 0, len(b)/offsetEntrySize)
	for ; len(b) >= offsetEntrySize; b = b[offsetEntrySize:] {
		out = append(out, offsetEntry{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])})
	}
	return out
}

// decodeTimeEntries decodes the whole entries in b (a partial entry at the
// end is ignored).
func decodeTimeEntries(b []byte) []timeEntry {
	out := make([]timeEntry, 0, len(b)/timeEntrySize)
	for ; len(b) >= timeEntrySize; b = b[timeEntrySize:] {
		out = append(out, timeEntry{int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint32(b[8:])})
	}
	return out
}

// encodeOffsetEntries is the file image of es.
func encodeOffsetEntries(es []offsetEntry) []byte {
	b := make([]byte, 0, len(es)*offsetEntrySize)
	for _, e := range es {
		b = appendOffsetEntry(b, e)
	}
	return b
}

// encodeTimeEntries is the file image of es.
func encodeTimeEntries(es []timeEntry) []byte {
	b := make([]byte, 0, len(es)*timeEntrySize)
	for _, e := range es {
		b = appendTimeEntry(b, e)
	}
	return b
}

// validOffsetPrefix returns how many leading entries are well formed for a
// .log of logSize bytes: relative offsets and positions strictly
// increasing, positions past the first batch and leaving room for a batch
// header before logSize.
func validOffsetPrefix(es []offsetEntry, logSize int64) int {
	for i, e := range es {
		if e.pos == 0 || int64(e.pos)+batchHeaderSize > logSize {
			return i
		}
		if i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos) {
			return i
		}
	}
	return len(es)
}

// validTimePrefix returns how many leading entries are well formed:
// timestamps strictly increasing, relative offsets not decreasing and
// below relLimit.
func validTimePrefix(es []timeEntry, relLimit uint64) int {
	for i, e := range es {
		if uint64(e.rel) >= relLimit {
			return i
		}
		if i > 0 && (e.ts <= es[i-1].ts || e.rel < es[i-1].rel) {
			return i
		}
	}
	return len(es)
}

// floorPos returns the position to start reading headers from to find the
// batch holding relative offset rel: the position of the last entry whose
// batch ends at or before rel, or 0.
func floorPos(es []offsetEntry, rel uint32) int64 {
	i := sort.Search(len(es), func(i int) bool { return es[i].rel > rel })
	if i == 0 {
		return 0
	}
	return int64(es[i-1].pos)
}

// floorTime returns the last entry whose timestamp is <= ts.
func floorTime(es []timeEntry, ts int64) (timeEntry, bool) {
	i := sort.Search(len(es), func(i int) bool { return es[i].ts > ts })
	if i == 0 {
		return timeEntry{}, false
	}
	return es[i-1], true
}
