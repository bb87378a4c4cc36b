package storage

// The leader epoch cache: for each leader epoch, the first offset written
// in it (Kafka's LeaderEpochFileCache), kept in the partition directory
// as leader-epoch-checkpoint in Kafka's format:
//
//	0            version
//	2            number of entries
//	0 0          epoch, start offset
//	3 1200
//
// Append adds an entry when a batch arrives with a leader epoch newer
// than the last one, and rewrites the file (atomically, fsynced) then:
// once per leadership change. Open reads it, drops entries past the
// recovered log end, and rebuilds it from the batch headers when the file
// is missing or unreadable. DeleteSegmentsBelow moves the first entry up
// to the new log start, rewriting the file only when entries below it go
// (a file whose first entry starts lower says the same: Open moves it up
// to the first segment's base, and no answer depends on the first
// entry's start). Version 0 is the only version; another is read as
// missing (and rebuilt).

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	epochCheckpointName    = "leader-epoch-checkpoint"
	epochCheckpointMaxSize = 1 << 20
)

// EpochEntry is one leader epoch and the first offset written in it.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// Epochs returns the leader epoch cache, oldest first.
func (l *Log) Epochs() []EpochEntry {
	l.epochs.Lock()
	defer l.epochs.Unlock()
	return append([]EpochEntry(nil), l.epochs.entries...)
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch (KIP-101, KIP-320) for
// a consumer: for the requested epoch, the largest known epoch not above
// it and the offset where the epoch after that began; for the current
// epoch (current), the high watermark. (-1, -1) when the epoch is newer
// than every known one.
func (l *Log) EndOffsetForEpoch(requested, current int32) (int32, int64) {
	return l.endOffsetForEpoch(requested, current, l.HighWatermark())
}

// ReplicaEndOffsetForEpoch is EndOffsetForEpoch for a follower replica:
// the current epoch ends at the log end offset, since the follower
// compares logs, not what consumers may read.
func (l *Log) ReplicaEndOffsetForEpoch(requested, current int32) (int32, int64) {
	return l.endOffsetForEpoch(requested, current, l.LogEndOffset())
}

func (l *Log) endOffsetForEpoch(requested, current int32, currentEnd int64) (int32, int64) {
	if requested == current {
		return current, currentEnd
	}
	entries := l.Epochs()
	if len(entries) == 0 {
		if requested > current {
			return -1, -1
		}
		return current, l.LogStartOffset()
	}
	for i, e := range entries {
		if e.Epoch > requested {
			if i == 0 {
				return requested, l.LogStartOffset()
			}
			return entries[i-1].Epoch, e.StartOffset
		}
	}
	if requested > current {
		return -1, -1
	}
	// requested is at or past the last epoch in the cache but below the
	// current one (no batch written in the current epoch yet).
	return entries[len(entries)-1].Epoch, l.LogEndOffset()
}

// opensEpoch reports whether epoch is newer than every epoch in the
// cache: noting it would write the checkpoint.
func (l *Log) opensEpoch(epoch int32) bool {
	l.epochs.Lock()
	defer l.epochs.Unlock()
	n := len(l.epochs.entries)
	return epoch >= 0 && (n == 0 || epoch > l.epochs.entries[n-1].Epoch)
}

// noteEpochLocked records that a batch of epoch starts at base, and
// persists the cache when that opens a new epoch. Called under l.mu.
func (l *Log) noteEpochLocked(epoch int32, base int64) error {
	if epoch < 0 {
		return nil
	}
	l.epochs.Lock()
	n := len(l.epochs.entries)
	if n > 0 && epoch <= l.epochs.entries[n-1].Epoch {
		l.epochs.Unlock()
		return nil
	}
	l.epochs.entries = append(l.epochs.entries, EpochEntry{Epoch: epoch, StartOffset: base})
	data := encodeEpochs(l.epochs.entries)
	l.epochs.Unlock()
	return l.writeEpochs(data)
}

// writeEpochs writes data, the encoded cache, as the checkpoint; on
// success the file is no longer stale. Writers of the checkpoint are
// serialized by the append lock or by Close.
func (l *Log) writeEpochs(data []byte) error {
	if err := writeFileAtomic(l.fs, l.dir, filepath.Join(l.dir, epochCheckpointName), data); err != nil {
		l.epochs.Lock()
		l.epochs.stale = true
		l.epochs.Unlock()
		return fmt.Errorf("write %s: %w", epochCheckpointName, err)
	}
	l.epochs.Lock()
	l.epochs.stale = false
	l.epochs.Unlock()
	return nil
}

// rewriteStaleEpochs writes the checkpoint again when a rewrite failed
// since: a clean-shutdown marker must not vouch for a file that holds
// epochs the log no longer has (after a clean start, loadEpochs trusts
// an entry at the log end).
func (l *Log) rewriteStaleEpochs() error {
	l.epochs.Lock()
	stale, data := l.epochs.stale, encodeEpochs(l.epochs.entries)
	l.epochs.Unlock()
	if !stale {
		return nil
	}
	return l.writeEpochs(data)
}

// truncateEpochsBelow drops what lies below a new log start offset: the
// last entry at or below it is kept, starting at it. The checkpoint is
// rewritten only when an entry went: moving the first entry's start up
// needs no write (and no fsyncs under the append lock at every
// retention deletion), as loadEpochs clamps the first entry to the first
// segment's base.
func (l *Log) truncateEpochsBelow(start int64) {
	l.epochs.Lock()
	es := l.epochs.entries
	i := 0
	for i+1 < len(es) && es[i+1].StartOffset <= start {
		i++
	}
	if len(es) > 0 {
		es = es[i:]
		es[0].StartOffset = max(es[0].StartOffset, start)
	}
	l.epochs.entries = es
	data := encodeEpochs(es)
	l.epochs.Unlock()
	if i == 0 {
		return
	}
	if err := l.writeEpochs(data); err != nil {
		l.log.Warn().Err(err).Msg("cannot rewrite the leader epoch checkpoint; written again at close, else rebuilt at the next start")
	}
}

// truncateEpochsFrom drops the entries of epochs that start at or after a
// new log end offset, after a truncation. A checkpoint that cannot be
// rewritten is an error the caller fails the log on, as Kafka does: the
// log would otherwise grow back over the dropped entries (a batch of an
// older epoch writes nothing), and a crash would bring them back naming
// the wrong epoch for those offsets.
func (l *Log) truncateEpochsFrom(leo int64) error {
	l.epochs.Lock()
	es := l.epochs.entries
	n := len(es)
	for n > 0 && es[n-1].StartOffset >= leo {
		n--
	}
	if n == len(es) {
		l.epochs.Unlock()
		return nil
	}
	l.epochs.entries = es[:n:n]
	data := encodeEpochs(l.epochs.entries)
	l.epochs.Unlock()
	return l.writeEpochs(data)
}

// loadEpochs fills the cache at Open: from the checkpoint, cut at the log
// end offset, or rebuilt from the batch headers. clean says the log was
// shut down cleanly and nothing was recovered.
func (l *Log) loadEpochs(segs []*segment, leo int64, clean bool) error {
	b, err := readSmallFile(l.fs, filepath.Join(l.dir, epochCheckpointName), epochCheckpointMaxSize)
	var entries []EpochEntry
	if err == nil {
		entries, err = parseEpochs(b)
		if err != nil {
			l.log.Warn().Err(err).Msg("unreadable leader epoch checkpoint; rebuilding it from the log")
		}
	}
	if err != nil {
		if entries, err = rebuildEpochs(segs); err != nil {
			return err
		}
	}
	// After a clean shutdown, a last entry that starts exactly at the
	// log end is an epoch assigned with no batch yet (AssignEpoch), as it
	// was before the shutdown: kept aside, so that a leader elected again
	// at that epoch writes nothing at start (an fsync a partition, serial
	// under the partition set's lock, was most of a start with many quiet
	// partitions). Kafka's LogLoader cuts it, and writes it again at the
	// election. Everything else follows the rules for any start.
	var assigned []EpochEntry
	if n := len(entries); clean && n > 0 && entries[n-1].StartOffset == leo {
		assigned, entries = entries[n-1:], entries[:n-1]
	}
	for len(entries) > 0 && entries[len(entries)-1].StartOffset >= leo && leo > segs[0].base {
		entries = entries[:len(entries)-1] // cut off by recovery
	}
	// Entries below the first segment, which deleted segments leave
	// (truncateEpochsBelow does not always rewrite the file), go as
	// truncateEpochsBelow would have them go.
	for len(entries) > 1 && entries[1].StartOffset <= segs[0].base {
		entries = entries[1:]
	}
	if len(entries) > 0 && entries[0].StartOffset < segs[0].base {
		entries[0].StartOffset = segs[0].base
	}
	if leo == segs[0].base {
		entries = nil // an empty log has no epochs
	}
	l.epochs.entries = append(entries, assigned...)
	return nil
}

// rebuildEpochs reads every batch header for its leader epoch.
func rebuildEpochs(segs []*segment) ([]EpochEntry, error) {
	var out []EpochEntry
	for _, s := range segs {
		sc := s.scanFrom(s.base, s.size.Load(), nil)
		for {
			h, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("rebuild leader epochs: segment %d: %w", s.base, err)
			}
			if h.epoch >= 0 && (len(out) == 0 || h.epoch > out[len(out)-1].Epoch) {
				out = append(out, EpochEntry{Epoch: h.epoch, StartOffset: h.base})
			}
		}
	}
	return out, nil
}

func encodeEpochs(es []EpochEntry) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "0\n%d\n", len(es))
	for _, e := range es {
		fmt.Fprintf(&sb, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return []byte(sb.String())
}

// parseEpochs reads Kafka's checkpoint format, version 0: epochs and
// start offsets must both grow.
func parseEpochs(b []byte) ([]EpochEntry, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "0" {
		return nil, fmt.Errorf("%s: not a version 0 checkpoint", epochCheckpointName)
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n < 0 || n != len(lines)-2 {
		return nil, fmt.Errorf("%s: entry count %q for %d lines", epochCheckpointName, lines[1], len(lines)-2)
	}
	out := make([]EpochEntry, 0, n)
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s: line %q", epochCheckpointName, line)
		}
		epoch, err1 := strconv.ParseInt(f[0], 10, 32)
		start, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || epoch < 0 || start < 0 {
			return nil, fmt.Errorf("%s: line %q", epochCheckpointName, line)
		}
		if k := len(out); k > 0 && (int32(epoch) <= out[k-1].Epoch || start < out[k-1].StartOffset) {
			return nil, fmt.Errorf("%s: line %q does not follow the one before", epochCheckpointName, line)
		}
		out = append(out, EpochEntry{Epoch: int32(epoch), StartOffset: start})
	}
	return out, nil
}
