package broker

// The recovery-point-offset-checkpoint of the data directory, as Kafka's:
// for every open partition log, the offset below which it is fsynced
// (storage.Log.RecoveryPoint). Read once at start, before any log is
// opened, and handed to storage.Open so that after a crash only the
// segments past it are checked; written every
// log.flush.offset.checkpoint.interval.ms and after the logs are closed at
// shutdown. The format is storage's (storage/checkpoint.go).

import (
	"sync"
	"time"

	"github.com/gregorbroker/gregor/storage"
)

// recoveryPoints is the checkpoint as read at start and the writer's lock.
type recoveryPoints struct {
	// mu protects start and serializes writes of the file.
	mu sync.Mutex
	// start is the checkpoint read at start (nil before), consulted by
	// openLocked for logs opened after a crash.
	start map[storage.TopicPartition]int64
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
	s.rp.start = rp
	s.rp.mu.Unlock()
}

// loaded reports whether the checkpoint was read: before that, writing
// one would drop the entries of logs not opened yet.
func (r *recoveryPoints) loaded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.start != nil
}

// recoveryPoint is the checkpointed recovery point of a partition, or 0
// (check every segment) when the checkpoint has none.
func (s *partitionSet) recoveryPoint(topic string, p int32) int64 {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	return s.rp.start[storage.TopicPartition{Topic: topic, Partition: p}]
}

// writeRecoveryPoints writes the checkpoint from the given logs, which may
// be open or closed (a closed log's recovery point is its log end offset).
func (s *partitionSet) writeRecoveryPoints(parts []*partition) error {
	rp := make(map[storage.TopicPartition]int64, len(parts))
	for _, part := range parts {
		rp[storage.TopicPartition{Topic: part.topic, Partition: part.index}] = part.log.RecoveryPoint()
	}
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	return storage.WriteOffsetCheckpoint(s.b.cfg.LogFS, s.b.cfg.DataDir, storage.RecoveryPointCheckpoint, rp)
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
