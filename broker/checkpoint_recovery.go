package broker

// The recovery-point-offset-checkpoint of the data directory, as Kafka's:
// for every open partition log, the offset below which it is fsynced
// (storage.Log.RecoveryPoint). Read once at start, before any log is
// opened, and handed to storage.Open so that after a crash only the
// segments past it are checked; written every
// log.flush.offset.checkpoint.interval.ms and after the logs are closed at
// shutdown. The format is storage's (storage/checkpoint.go).
//
// An entry is only as good as the log it was taken from, so the file
// keeps this invariant: it has an entry for a partition name only for the
// log in that name's directory now (the incarnation, topic id, whose bytes
// the entry describes), and the entry is at or below that log's recovery
// point. Two rules keep it:
//
//   - Before a log of another incarnation gets the directory (a topic
//     recreated under the name, a stray directory moved back, a directory
//     set aside at open, one whose partition.metadata cannot be read), the
//     name's entry is removed from the file, durably, before storage.Open
//     creates anything there (openLocked); the new log starts with no
//     recovery point (every segment checked after a crash). A deleted
//     topic's entries go at once, in one write. Neither this process nor
//     the next start can then hand an old incarnation's point to a new log.
//   - A truncation that leaves a log's recovery point below its entry
//     (a follower cutting a diverged tail, a start over at the leader's log
//     start) lowers the entry, durably, before the log takes another byte:
//     storage calls Options.OnTruncate under the log's append lock
//     (lowerRecoveryPoint), as Kafka's LogManager.truncateTo checkpoints
//     before the fetcher appends again. Without it, a crash after the
//     truncated range was written again, but before the next periodic
//     write, would make Open trust segments below the old entry that were
//     never fsynced.
//
// A log opened again in this process (a topic that left the metadata and
// came back) gets the entry the file holds for it, if the periodic writer
// has not dropped it since (the writer writes open logs only), or none.

import (
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/gregorbroker/gregor/storage"
)

// recoveryPoints mirrors the checkpoint file; see the file comment.
type recoveryPoints struct {
	// mu protects the fields below and serializes writes of the file.
	// Lock order: partitionSet.mu, then a log's append lock (held when
	// OnTruncate calls lowerRecoveryPoint), then mu, then a log's flush
	// lock (RecoveryPoint, called by the writer under mu). Writing the
	// file (two fsyncs) under mu is what makes a lowered entry durable
	// before the truncated log appends again.
	mu sync.Mutex
	// written is what the file holds: read at start (nil before),
	// replaced by every write; after a failed write, the entries of
	// both files, the higher of two values, as the file may be either.
	written map[storage.TopicPartition]int64
	// owner is, for each name, the log opened for it last (openLocked):
	// the writer writes a log's point only while it is its name's owner,
	// so a log replaced while the writer collected does not put its
	// point back after the entry was removed.
	owner map[storage.TopicPartition]*storage.Log
}

// loadRecoveryPoints reads the data directory's checkpoint. An unreadable
// one is logged and ignored: every log then recovers whole after a crash,
// which is slow but safe.
func (s *partitionSet) loadRecoveryPoints() {
	rp, _, err := storage.ReadOffsetCheckpoint(s.b.cfg.LogFS, s.b.cfg.DataDir, storage.RecoveryPointCheckpoint)
	if err != nil {
		s.b.log.Warn().Err(err).Msg("ignoring the recovery point checkpoint; logs not shut down cleanly are checked whole")
		rp = map[storage.TopicPartition]int64{}
	}
	s.rp.mu.Lock()
	s.rp.written = rp
	s.rp.owner = map[storage.TopicPartition]*storage.Log{}
	s.rp.mu.Unlock()
}

// loaded reports whether the checkpoint was read: before that, writing
// one would drop the entries of logs not opened yet.
func (r *recoveryPoints) loaded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written != nil
}

// recoveryPoint is the checkpointed recovery point of a partition whose
// directory holds the log the entry is for, or 0 (check every segment)
// when the checkpoint has none.
func (s *partitionSet) recoveryPoint(tp storage.TopicPartition) int64 {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	return s.rp.written[tp]
}

// ownRecoveryPoint records l as the log tp's entry is written from.
func (s *partitionSet) ownRecoveryPoint(tp storage.TopicPartition, l *storage.Log) {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	if s.rp.owner != nil {
		s.rp.owner[tp] = l
	}
}

// forgetRecoveryPoints removes the entries of these partitions from the
// checkpoint, durably, for logs of another incarnation about to take
// their directories (or for a deleted topic). On an error the entries may
// still be in the file: the caller must not create such a log.
func (s *partitionSet) forgetRecoveryPoints(tps ...storage.TopicPartition) error {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	if s.rp.written == nil {
		return nil // nothing read, nothing written yet
	}
	next := maps.Clone(s.rp.written)
	for _, tp := range tps {
		delete(s.rp.owner, tp)
		delete(next, tp)
	}
	if len(next) == len(s.rp.written) {
		return nil
	}
	if err := s.writeCheckpointLocked(next); err != nil {
		return fmt.Errorf("broker: remove the recovery points of %v: %w", tps, err)
	}
	return nil
}

// lowerRecoveryPoint lowers tp's entry to point, durably, when it is
// above: storage.Options.OnTruncate, called under the log's append lock
// after a truncation.
func (s *partitionSet) lowerRecoveryPoint(tp storage.TopicPartition, point int64) error {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	if cur, ok := s.rp.written[tp]; !ok || cur <= point {
		return nil
	}
	next := maps.Clone(s.rp.written)
	next[tp] = point
	if err := s.writeCheckpointLocked(next); err != nil {
		return fmt.Errorf("broker: lower the recovery point of %s-%d to %d: %w", tp.Topic, tp.Partition, point, err)
	}
	s.b.log.Info().Str("topic", tp.Topic).Int32("partition", tp.Partition).Int64("recovery_point", point).
		Msg("lowered the checkpointed recovery point after a truncation")
	return nil
}

// writeRecoveryPoints writes the checkpoint from the given logs, which may
// be open or closed (a closed log's recovery point is its log end offset).
// A log is written only while it is its name's owner. Nothing is written
// before the checkpoint was read.
func (s *partitionSet) writeRecoveryPoints(parts []*partition) error {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	if s.rp.written == nil {
		return nil
	}
	rp := make(map[storage.TopicPartition]int64, len(parts))
	for _, part := range parts {
		tp := storage.TopicPartition{Topic: part.topic, Partition: part.index}
		if s.rp.owner[tp] == part.log {
			// Under rp.mu: a truncation's lowering waits for this
			// write, then sees this value and lowers it again.
			rp[tp] = part.log.RecoveryPoint()
		}
	}
	return s.writeCheckpointLocked(rp)
}

// writeCheckpointLocked writes next as the checkpoint and records it as
// written. s.rp.mu held.
func (s *partitionSet) writeCheckpointLocked(next map[storage.TopicPartition]int64) error {
	err := storage.WriteOffsetCheckpoint(s.b.cfg.LogFS, s.b.cfg.DataDir, storage.RecoveryPointCheckpoint, next)
	if err != nil {
		// The file is the old one or the new one: keep both in mind.
		for tp, off := range s.rp.written {
			if cur, ok := next[tp]; !ok || cur < off {
				next[tp] = off
			}
		}
	}
	s.rp.written = next
	return err
}

// startRecoveryCheckpoints writes the checkpoint every
// log.flush.offset.checkpoint.interval.ms until Close.
func (b *Broker) startRecoveryCheckpoints() {
	interval := time.Duration(b.brokerConfigInt("log.flush.offset.checkpoint.interval.ms")) * time.Millisecond
	b.every(interval, func() {
		if err := b.parts.writeRecoveryPoints(b.parts.all()); err != nil {
			b.log.Warn().Err(err).Msg("cannot write the recovery point checkpoint")
		}
	})
}

// logRecoveries sums up, in one line, what opening the logs at start
// checked after an unclean shutdown.
func (s *partitionSet) logRecoveries(parts []*partition, took time.Duration) {
	var logs, segs int
	var bytes int64
	for _, part := range parts {
		if st := part.log.Recovery(); st.Segments > 0 {
			logs++
			segs += st.Segments
			bytes += st.Bytes
		}
	}
	s.b.log.Info().Int("logs", len(parts)).Int("logs_recovered", logs).Int("segments_checked", segs).
		Int64("bytes_checked", bytes).Dur("duration", took).Msg("opened partition logs")
}

// closeFiles stops the segment descriptor cache, after the logs closed.
func (b *Broker) closeFiles() {
	if b.files != nil {
		b.files.Close()
	}
}
