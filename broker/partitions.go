package broker

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/storage"
)

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

// partition is one local partition replica: its log and the resolved
// topic settings the data path reads.
type partition struct {
	topic   string
	index   int32
	topicID metadata.TopicID
	log     *storage.Log // safe for concurrent use; see storage.Log
	// settings is replaced whole when the topic's or broker's configs change.
	settings atomic.Pointer[topicSettings]
}

// partitionSet holds the partitions this broker hosts. Partitions are
// opened at start and when their topic or partition is created (or, after
// a failure to open, on first use), and closed and removed when their
// topic is deleted.
type partitionSet struct {
	b *Broker
	// mu protects parts. Lookups take the read lock only; opening and
	// removing take the write lock.
	mu    sync.RWMutex
	parts map[topicPartition]*partition
}

func newPartitionSet(b *Broker) *partitionSet {
	return &partitionSet{b: b, parts: make(map[topicPartition]*partition)}
}

// partitionDir is where a partition's log lives: <data-dir>/<topic>-<partition>.
func (s *partitionSet) partitionDir(topic string, p int32) string {
	return filepath.Join(s.b.cfg.DataDir, topic+"-"+strconv.Itoa(int(p)))
}

// get returns the partition, opening its log on first use. The error is a
// Kafka error for the client (UNKNOWN_TOPIC_OR_PARTITION or KAFKA_STORAGE_ERROR).
func (s *partitionSet) get(topic string, p int32) (*partition, error) {
	key := topicPartition{topic, p}
	s.mu.RLock()
	part := s.parts[key]
	s.mu.RUnlock()
	if part != nil {
		return part, nil
	}
	t, ok := s.b.store.Topic(topic)
	if !ok || p < 0 || p >= t.Partitions {
		return nil, kerr.UnknownTopicOrPartition
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if part := s.parts[key]; part != nil && part.topicID == t.ID {
		return part, nil
	}
	part, err := s.openLocked(t, p)
	if err != nil {
		s.b.log.Error().Err(err).Str("topic", topic).Int32("partition", p).Msg("cannot open partition log")
		return nil, kerr.KafkaStorageError
	}
	return part, nil
}

// lookup returns an open partition without opening it.
func (s *partitionSet) lookup(topic string, p int32) *partition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.parts[topicPartition{topic, p}]
}

// openLocked opens (creating if needed) the log of one partition. A
// directory left by an earlier topic of the same name (another topic id)
// is removed first. s.mu must be held.
func (s *partitionSet) openLocked(t metadata.Topic, p int32) (*partition, error) {
	key := topicPartition{t.Name, p}
	if old := s.parts[key]; old != nil {
		delete(s.parts, key)
		if err := old.log.Delete(); err != nil {
			return nil, fmt.Errorf("remove log of replaced topic: %w", err)
		}
	}
	dir := s.partitionDir(t.Name, p)
	if id, err := readPartitionMetadata(dir); err == nil && id != t.ID {
		s.b.log.Warn().Str("dir", dir).Msg("removing log of an earlier topic with the same name")
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove stale log: %w", err)
		}
	}
	settings := s.b.configs.settings(t.Configs, s.b.layers())
	l, err := storage.Open(dir, settings.storage, storage.Options{Logger: s.b.log, Now: s.b.now})
	if err != nil {
		return nil, err
	}
	if err := writePartitionMetadata(dir, t.ID); err != nil {
		l.Close()
		return nil, err
	}
	part := &partition{topic: t.Name, index: p, topicID: t.ID, log: l}
	part.settings.Store(&settings)
	s.parts[key] = part
	return part, nil
}

// openAll opens every partition of every topic, at start.
func (s *partitionSet) openAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.b.store.Topics() {
		for p := int32(0); p < t.Partitions; p++ {
			if _, err := s.openLocked(t, p); err != nil {
				return fmt.Errorf("broker: open %s-%d: %w", t.Name, p, err)
			}
		}
	}
	return nil
}

// remove closes and deletes the partitions of a deleted topic, if they
// still belong to that topic id.
func (s *partitionSet) remove(t metadata.Topic) {
	s.mu.Lock()
	var doomed []*partition
	for key, part := range s.parts {
		if key.topic == t.Name && part.topicID == t.ID {
			doomed = append(doomed, part)
			delete(s.parts, key)
		}
	}
	s.mu.Unlock()
	for _, part := range doomed {
		if err := part.log.Delete(); err != nil {
			s.b.log.Error().Err(err).Str("topic", part.topic).Int32("partition", part.index).Msg("cannot delete partition log")
		}
	}
}

// refreshSettings re-resolves the configs of every open partition (after a
// topic or broker config change).
func (s *partitionSet) refreshSettings() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	layers := s.b.layers()
	cache := make(map[string]*topicSettings)
	for _, part := range s.parts {
		st, ok := cache[part.topic]
		if !ok {
			t, exists := s.b.store.Topic(part.topic)
			if !exists {
				continue
			}
			v := s.b.configs.settings(t.Configs, layers)
			st = &v
			cache[part.topic] = st
		}
		part.settings.Store(st)
		part.log.SetConfig(st.storage)
	}
}

// onEvent applies a metadata change to local partitions: a new topic, or
// new partitions of one, get their logs at once (as Kafka creates them at
// topic creation, so DescribeLogDirs and the data directory show them).
func (s *partitionSet) onEvent(ev metadata.Event) {
	switch ev.Kind {
	case metadata.TopicCreated:
		s.openTopic(ev.Topic)
	case metadata.TopicDeleted:
		s.remove(ev.Topic)
	case metadata.TopicUpdated:
		s.openTopic(ev.Topic)
		s.refreshSettings()
	}
}

// openTopic opens the logs of t's partitions that are not open yet. A
// failure is logged; the partition is retried on first use.
func (s *partitionSet) openTopic(t metadata.Topic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := int32(0); p < t.Partitions; p++ {
		if part := s.parts[topicPartition{t.Name, p}]; part != nil && part.topicID == t.ID {
			continue
		}
		if _, err := s.openLocked(t, p); err != nil {
			s.b.log.Error().Err(err).Str("topic", t.Name).Int32("partition", p).Msg("cannot open partition log")
		}
	}
}

// all returns the open partitions.
func (s *partitionSet) all() []*partition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*partition, 0, len(s.parts))
	for _, p := range s.parts {
		out = append(out, p)
	}
	return out
}

// closeAll flushes and closes every log, leaving clean-shutdown markers.
func (s *partitionSet) closeAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for key, part := range s.parts {
		if err := part.log.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s-%d: %w", key.topic, key.partition, err))
		}
		delete(s.parts, key)
	}
	return errors.Join(errs...)
}

// partition.metadata is Kafka's per-partition file naming the topic id:
//
//	version: 0
//	topic_id: <base64url topic id, no padding>
const partitionMetadataFile = "partition.metadata"

func writePartitionMetadata(dir string, id metadata.TopicID) error {
	body := "version: 0\ntopic_id: " + base64.RawURLEncoding.EncodeToString(id[:]) + "\n"
	path := filepath.Join(dir, partitionMetadataFile)
	if cur, err := os.ReadFile(path); err == nil && string(cur) == body {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

func readPartitionMetadata(dir string) (metadata.TopicID, error) {
	var id metadata.TopicID
	raw, err := os.ReadFile(filepath.Join(dir, partitionMetadataFile))
	if err != nil {
		return id, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "topic_id: "); ok {
			b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(v))
			if err != nil || len(b) != 16 {
				return id, fmt.Errorf("bad topic_id in %s", dir)
			}
			copy(id[:], b)
			return id, nil
		}
	}
	return id, fmt.Errorf("no topic_id in %s", dir)
}
