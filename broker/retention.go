package broker

// Retention on the broker side: the periodic pass that applies every
// local partition's retention (storage.Log.EnforceRetention), and the data
// directory's log-start-offset-checkpoint (Kafka's format, see
// storage/checkpoint.go), which carries each log's start offset across
// restarts now that it may lie inside a segment.
//
// The checkpoint is written every log.flush.start.offset.checkpoint.
// interval.ms when a start moved, after a retention pass that moved one,
// before a DeleteRecords answer, and at Close. It is read once, when the
// first partition opens; Open starts each log at its entry (never below
// the log's first segment). An entry whose partition is not open is kept
// while the partition's directory exists; a partition created afresh
// (no directory) drops its entry at once, so that a stale entry of a
// deleted topic of the same name never hides a new topic's records.

import (
	"errors"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/gregorbroker/gregor/storage"
)

// logStarts is the broker's view of its log-start-offset-checkpoint.
type logStarts struct {
	// mu protects the fields and serializes writes of the file. Lock
	// order: partitionSet.mu before mu; no log lock is taken under it.
	mu      sync.Mutex
	loaded  bool
	offsets map[storage.TopicPartition]int64 // as last read or written
}

// loadLocked reads the checkpoint once. mu held.
func (ls *logStarts) loadLocked(b *Broker) {
	if ls.loaded {
		return
	}
	ls.loaded = true
	offs, _, err := storage.ReadOffsetCheckpoint(b.cfg.LogFS, b.cfg.DataDir, storage.LogStartOffsetCheckpoint)
	if err != nil {
		// Safe without it: every log starts at its first segment's base.
		b.log.Warn().Err(err).Msg("cannot read the log start offset checkpoint; logs start at their first segment")
		offs = map[storage.TopicPartition]int64{}
	}
	ls.offsets = offs
}

// startFor returns the checkpointed log start of a partition about to be
// opened; fresh says its directory did not exist, so an entry left by
// an older topic of that name is dropped (and the file rewritten) instead.
func (s *partitionSet) startFor(topic string, p int32, fresh bool) int64 {
	ls := &s.starts
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.loadLocked(s.b)
	tp := storage.TopicPartition{Topic: topic, Partition: p}
	off, ok := ls.offsets[tp]
	if !fresh || !ok {
		return off
	}
	next := maps.Clone(ls.offsets)
	delete(next, tp)
	if err := storage.WriteOffsetCheckpoint(s.b.cfg.LogFS, s.b.cfg.DataDir, storage.LogStartOffsetCheckpoint, next); err != nil {
		s.b.log.Warn().Err(err).Str("topic", topic).Int32("partition", p).Msg("cannot drop a stale log start offset from the checkpoint")
		return 0
	}
	ls.offsets = next
	return 0
}

// checkpointLogStarts writes the log start offset of every local log to
// the data directory's checkpoint, if any changed since the last write.
func (b *Broker) checkpointLogStarts() error {
	parts := b.parts.all()
	ls := &b.parts.starts
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.loadLocked(b)
	next := make(map[storage.TopicPartition]int64, len(parts))
	open := make(map[storage.TopicPartition]bool, len(parts))
	for _, part := range parts {
		tp := storage.TopicPartition{Topic: part.topic, Partition: part.index}
		open[tp] = true
		if start := part.log.LogStartOffset(); start > 0 {
			next[tp] = start
		}
	}
	for tp, off := range ls.offsets {
		if open[tp] {
			continue
		}
		if _, err := os.Stat(b.parts.partitionDir(tp.Topic, tp.Partition)); err == nil {
			next[tp] = off // closed for now, kept on disk
		} else if !errors.Is(err, os.ErrNotExist) {
			next[tp] = off
		}
	}
	if maps.Equal(next, ls.offsets) {
		return nil
	}
	if err := storage.WriteOffsetCheckpoint(b.cfg.LogFS, b.cfg.DataDir, storage.LogStartOffsetCheckpoint, next); err != nil {
		return err
	}
	ls.offsets = next
	return nil
}

// retentionStats is what one retention pass did.
type retentionStats struct {
	partitions int
	segments   int
	bytes      int64
	rolled     int
}

// retentionPass applies retention to every local partition once, then
// checkpoints the log starts if any moved.
func (b *Broker) retentionPass() retentionStats {
	var st retentionStats
	now := b.now()
	moved := false
	for _, part := range b.parts.all() {
		st.partitions++
		before := part.log.LogStartOffset()
		res, err := part.log.EnforceRetention(now, part.settings.Load().deletePolicy)
		if err != nil {
			// A closed log is being replaced; a failed one said so when it
			// failed (and hands its leadership off).
			if !errors.Is(err, storage.ErrClosed) && !errors.Is(err, storage.ErrStorage) {
				b.log.Warn().Err(err).Str("topic", part.topic).Int32("partition", part.index).Msg("retention pass failed")
			}
			continue
		}
		st.segments += res.Segments
		st.bytes += res.Bytes
		if res.Rolled {
			st.rolled++
		}
		moved = moved || res.LogStartOffset != before
	}
	if moved {
		if err := b.checkpointLogStarts(); err != nil {
			b.log.Warn().Err(err).Msg("cannot write the log start offset checkpoint")
		}
	}
	if st.segments > 0 {
		b.log.Info().Int("segments", st.segments).Int64("bytes", st.bytes).Msg("retention deleted old segments")
	}
	return st
}

// startRetention runs the retention pass every
// log.retention.check.interval.ms and the checkpoint every
// log.flush.start.offset.checkpoint.interval.ms (0: only at the other
// occasions) until Close.
func (b *Broker) startRetention() {
	b.every(time.Duration(b.brokerConfigInt("log.retention.check.interval.ms"))*time.Millisecond, func() { b.retentionPass() })
	if ms := b.brokerConfigInt("log.flush.start.offset.checkpoint.interval.ms"); ms > 0 {
		b.every(time.Duration(ms)*time.Millisecond, func() {
			if err := b.checkpointLogStarts(); err != nil {
				b.log.Warn().Err(err).Msg("cannot write the log start offset checkpoint")
			}
		})
	}
}
