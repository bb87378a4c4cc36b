package broker

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/storage"
)

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

// partition is one local partition replica: its log, the resolved topic
// settings the data path reads, and its leadership as the controller last
// recorded it.
type partition struct {
	topic   string
	index   int32
	topicID metadata.TopicID
	log     *storage.Log // safe for concurrent use; see storage.Log
	// metrics are the topic's counters (metrics.go), set at open; safe
	// for concurrent use.
	metrics *topicMetrics
	// expires counts the acks=all waits on this replica that timed out
	// (Kafka's DelayedProduceMetrics ExpiresPerSec of the partition);
	// allExpires is the broker's count over every partition, set at open.
	expires    atomic.Uint64
	allExpires *atomic.Uint64
	// settings is replaced whole when the topic's or broker's configs change.
	settings atomic.Pointer[topicSettings]
	// leading and epoch follow the partition's state in the metadata store
	// (set by partitionSet.applyState, read by the data path): whether this
	// broker is its leader, and the leader epoch.
	leading atomic.Bool
	epoch   atomic.Int32
	// repl protects replState, the partition's replication state
	// (replicas.go).
	repl      sync.Mutex
	replState replState
	// roleChanged is closed and replaced (under repl) whenever the
	// partition's leadership state changes, waking acks=all waiters.
	roleChanged chan struct{}
}

// leaderEpoch is the partition's current leader epoch.
func (p *partition) leaderEpoch() int32 { return p.epoch.Load() }

// partitionSet holds the partitions this broker hosts: those whose
// partition state (placed by the controller, see metadata.Controller)
// lists it as a replica. Their logs are opened at start and when a state
// naming this broker arrives (or, after a failure to open, on first use).
//
// Data goes only on an explicit deletion of its topic id (a deletion
// record, metadata.TopicDeleted) or when the replica is reassigned away:
// the directory is renamed <topic>-<p>.<topic id>-delete at once and
// removed file.delete.delay.ms later by a goroutine of its own, never
// under mu. A topic that merely leaves the metadata (TopicUnavailable) is
// closed and its directory kept, to be opened again when the same topic
// id returns; a directory of a topic id the metadata does not know is set
// aside as <topic>-<p>.<topic id>-stray (partition_dirs.go).
type partitionSet struct {
	b *Broker
	// mu protects parts and the renames of partition directories.
	// Lookups take the read lock only; opening, closing and renaming take
	// the write lock.
	mu    sync.RWMutex
	parts map[topicPartition]*partition
	// starts is the log-start-offset-checkpoint (retention.go).
	starts logStarts
	// rp is the recovery point checkpoint (checkpoint_recovery.go).
	rp recoveryPoints
}

func newPartitionSet(b *Broker) *partitionSet {
	return &partitionSet{b: b, parts: make(map[topicPartition]*partition)}
}

// partitionDir is where a partition's log lives: <data-dir>/<topic>-<partition>.
func (s *partitionSet) partitionDir(topic string, p int32) string {
	return filepath.Join(s.b.cfg.DataDir, topic+"-"+strconv.Itoa(int(p)))
}

// get returns the partition if this broker leads it, opening its log on
// first use. A broker whose registration may have expired leads nothing
// (NOT_LEADER_OR_FOLLOWER) until it is renewed. The error is a Kafka
// error for the client:
// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE (not placed yet, no
// live in-sync replica, or the topic's metadata value unreadable),
// NOT_LEADER_OR_FOLLOWER (another broker leads it) or KAFKA_STORAGE_ERROR.
func (s *partitionSet) get(topic string, p int32) (*partition, error) {
	key := topicPartition{topic, p}
	s.mu.RLock()
	part := s.parts[key]
	s.mu.RUnlock()
	if !s.b.store.RegistrationAlive() {
		// Fenced: our lease may have expired, and the controller may
		// have elected another leader that we have not heard of.
		return nil, kerr.NotLeaderForPartition
	}
	if part != nil && part.leading.Load() {
		return part, nil
	}
	t, ok := s.b.store.Topic(topic)
	if !ok && s.b.store.TopicFault(topic) != nil {
		// It exists, but its metadata cannot be read: retriable.
		return nil, kerr.LeaderNotAvailable
	}
	if !ok || p < 0 || p >= t.Partitions {
		return nil, kerr.UnknownTopicOrPartition
	}
	st, ok := s.b.store.Partition(topic, p)
	switch {
	case !ok || st.Leader == metadata.NoLeader:
		return nil, kerr.LeaderNotAvailable
	case st.Leader != s.b.cfg.NodeID:
		return nil, kerr.NotLeaderForPartition
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	part = s.parts[key]
	if part == nil || part.topicID != t.ID {
		if !s.stillKnownLocked(t) {
			// The topic left the metadata since it was read: its
			// event closes what is open, so nothing opens after it.
			return nil, kerr.LeaderNotAvailable
		}
		var err error
		if part, err = s.openLocked(t, p); err != nil {
			s.b.log.Error().Err(err).Str("topic", topic).Int32("partition", p).Msg("cannot open partition log")
			return nil, kerr.KafkaStorageError
		}
	}
	s.setLeadership(part, st)
	return part, nil
}

// setLeadership records st's leadership in part and makes its
// replication follow (replicas.go). s.mu held.
func (s *partitionSet) setLeadership(part *partition, st metadata.PartitionState) {
	s.followState(part, st)
}

// hosts reports whether st lists this broker as a replica.
func (s *partitionSet) hosts(st metadata.PartitionState) bool {
	return slices.Contains(st.Replicas, s.b.cfg.NodeID)
}

// lookup returns an open partition without opening it.
func (s *partitionSet) lookup(topic string, p int32) *partition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.parts[topicPartition{topic, p}]
}

// openLocked opens (creating if needed) the log of one partition, or
// returns it when it is open already. A log of another topic id of the
// same name, open or left in the directory, is first set aside: for
// deletion if that id was deleted, else as stray. A stray directory of
// this very topic id is moved back. s.mu must be held.
func (s *partitionSet) openLocked(t metadata.Topic, p int32) (*partition, error) {
	part, pend, err := s.prepareOpenLocked(t, p)
	if err != nil || part != nil {
		return part, err
	}
	l, err := pend.open()
	if err != nil {
		return nil, err
	}
	return s.finishOpenLocked(pend, l), nil
}

// pendingOpen is a partition log prepareOpenLocked has made ready to
// open: its directory is in place and its storage settings chosen. Its
// open touches nothing of the partitionSet, so the logs of many
// partitions can be opened at once (openAll).
type pendingOpen struct {
	t        metadata.Topic
	p        int32
	dir      string
	settings topicSettings
	opts     storage.Options
}

// prepareOpenLocked does openLocked's work up to opening the log: it
// returns the open partition when there is one, else what open needs.
// s.mu must be held.
func (s *partitionSet) prepareOpenLocked(t metadata.Topic, p int32) (*partition, *pendingOpen, error) {
	key := topicPartition{t.Name, p}
	// same says the directory holds the log, of this topic id, that the
	// recovery point checkpoint's entry (if any) is for; see
	// checkpoint_recovery.go.
	same := true
	if old := s.parts[key]; old != nil && old.topicID == t.ID {
		return old, nil, nil
	} else if old != nil {
		same = false
		delete(s.parts, key)
		s.b.repl.Unfollow(old.topic, old.index)
		if err := old.log.Close(); err != nil {
			s.b.log.Warn().Err(err).Str("topic", old.topic).Int32("partition", old.index).Msg("closing the log of a replaced topic id")
		}
	}
	dir := s.partitionDir(t.Name, p)
	id, metaErr := readPartitionMetadata(dir)
	if metaErr == nil && id != t.ID {
		if err := s.setAsideLocked(t.Name, p, id); err != nil {
			return nil, nil, err
		}
	}
	same = same && metaErr == nil && id == t.ID
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := s.restoreStrayLocked(t.Name, p, t.ID); err != nil {
			return nil, nil, err
		}
	}
	_, statErr := os.Stat(dir)
	start := s.startFor(t.Name, p, errors.Is(statErr, os.ErrNotExist))
	tp := storage.TopicPartition{Topic: t.Name, Partition: p}
	var point int64 // none: every segment is checked after a crash
	if same {
		point = s.recoveryPoint(tp)
	} else if err := s.forgetRecoveryPoints(tp); err != nil {
		// Before Open creates anything in the directory.
		return nil, nil, err
	}
	return nil, &pendingOpen{
		t: t, p: p, dir: dir,
		settings: s.b.configs.settings(t.Configs, s.b.layers()),
		opts: storage.Options{Logger: s.b.log, Now: s.b.now, FS: s.b.cfg.LogFS,
			LogStartOffset: start, RecoveryPoint: point, Files: s.b.files,
			OnTruncate: func(rp int64) error { return s.lowerRecoveryPoint(tp, rp) }},
	}, nil
}

// open opens the log (recovering it after a crash) and records its topic
// id in its directory. Safe to run beside other pendingOpens' open, with
// or without s.mu.
func (o *pendingOpen) open() (*storage.Log, error) {
	l, err := storage.Open(o.dir, o.settings.storage, o.opts)
	if err != nil {
		return nil, err
	}
	if err := writePartitionMetadata(o.dir, o.t.ID); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// finishOpenLocked makes the log o opened the partition's. s.mu must be
// held (since prepareOpenLocked: nobody else can have opened it).
func (s *partitionSet) finishOpenLocked(o *pendingOpen, l *storage.Log) *partition {
	s.ownRecoveryPoint(storage.TopicPartition{Topic: o.t.Name, Partition: o.p}, l)
	if o.t.ReplicationFactor > 1 {
		// The log end may hold records the ISR never had (Gregor keeps no
		// high watermark checkpoint): consumers see nothing until the
		// leader's followers, or the leader, say again what is committed.
		l.ResetHighWatermark(l.LogStartOffset())
	}
	part := &partition{topic: o.t.Name, index: o.p, topicID: o.t.ID, log: l, metrics: s.b.metrics.topics.forTopic(o.t.Name), allExpires: &s.b.metrics.produceExpires, roleChanged: make(chan struct{})}
	part.settings.Store(&o.settings)
	s.parts[topicPartition{o.t.Name, o.p}] = part
	return part
}

// stillKnownLocked reports whether the store still has topic id t.ID
// under t.Name. The store drops a topic before it publishes the event that
// closes the topic's partitions (which takes s.mu), so a partition opened
// under s.mu after this check is closed by that event, never left open.
// s.mu must be held.
func (s *partitionSet) stillKnownLocked(t metadata.Topic) bool {
	cur, ok := s.b.store.Topic(t.Name)
	return ok && cur.ID == t.ID
}

// openAll opens, at start, every partition this broker hosts, after
// setting aside the directories of topic ids the metadata does not know
// and removing those left for deletion (scanDataDirLocked).
func (s *partitionSet) openAll() error {
	s.loadRecoveryPoints()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.scanDataDirLocked(); err != nil {
		return err
	}
	began := time.Now()
	var opened []*partition
	defer func() { s.logRecoveries(opened, time.Since(began)) }()
	type hosted struct {
		st   metadata.PartitionState
		part *partition   // open already
		pend *pendingOpen // or to open
		log  *storage.Log // what pend.open returned
		err  error
	}
	var all []*hosted
	for _, t := range s.b.store.Topics() {
		for _, st := range s.b.store.PartitionStates(t.Name) {
			if st.TopicID != t.ID || !s.hosts(st) {
				continue
			}
			part, pend, err := s.prepareOpenLocked(t, st.Partition)
			if err != nil {
				return fmt.Errorf("broker: open %s-%d: %w", t.Name, st.Partition, err)
			}
			all = append(all, &hosted{st: st, part: part, pend: pend})
		}
	}
	// The logs open at once: each open waits mostly on fsyncs (the clean
	// shutdown marker's removal, a recovered segment's), which a disk
	// serves together; one after another they were most of a start with
	// many partitions (README, "Start-up").
	atOnce(len(all), func(i int) {
		h := all[i]
		if h.pend == nil {
			return
		}
		if h.log, h.err = h.pend.open(); h.err != nil {
			return
		}
		// A log this broker leads at a newer epoch is written below
		// (setLeadership records the epoch), one after another under
		// s.mu: its clean-shutdown marker goes here, at once with the
		// others. An error is the epoch write's, which meets it again.
		if es := h.log.Epochs(); h.st.Leader == s.b.cfg.NodeID && (len(es) == 0 || es[len(es)-1].Epoch < h.st.LeaderEpoch) {
			_ = h.log.SettleMarker()
		}
	})
	var firstErr error
	for _, h := range all {
		if h.err != nil && firstErr == nil {
			firstErr = fmt.Errorf("broker: open %s-%d: %w", h.st.Topic, h.st.Partition, h.err)
		}
	}
	for _, h := range all {
		if h.err != nil {
			continue
		}
		if h.pend != nil {
			h.part = s.finishOpenLocked(h.pend, h.log) // closed with the others if this start fails
		}
		opened = append(opened, h.part)
		if firstErr == nil {
			s.setLeadership(h.part, h.st)
		}
	}
	return firstErr
}

// openParallelism bounds how many logs openAll opens, and closeAll
// closes, at once.
const openParallelism = 32

// atOnce calls f(0), ..., f(n-1) on up to openParallelism goroutines and
// returns once every call has.
func atOnce(n int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(openParallelism, n) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// remove closes the partitions of an explicitly deleted topic id and
// renames every directory of that id (open or not, stray or not) for
// deletion, removed after the topic's file.delete.delay.ms.
func (s *partitionSet) remove(t metadata.Topic) {
	delay := s.deleteDelay(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []storage.TopicPartition
	defer func() {
		// In one write: a topic recreated under the name then opens its
		// partitions without a write each.
		if err := s.forgetRecoveryPoints(gone...); err != nil {
			s.b.log.Warn().Err(err).Str("topic", t.Name).Msg("cannot remove a deleted topic's recovery points; they are removed when the name is used again")
		}
	}()
	for key, part := range s.parts {
		if key.topic == t.Name && part.topicID == t.ID {
			gone = append(gone, storage.TopicPartition{Topic: part.topic, Partition: part.index})
			delete(s.parts, key)
			s.b.cleaner.forget(part.topic, part.index)
			s.b.repl.Unfollow(part.topic, part.index)
			if err := part.log.Discard(); err != nil {
				s.b.log.Warn().Err(err).Str("topic", part.topic).Int32("partition", part.index).Msg("closing the log of a deleted topic")
			}
		}
	}
	s.retireTopicLocked(t.Name, t.ID, delay)
}

// closeTopic closes, keeping their data, the open partitions of a topic
// id that left the metadata without being deleted: they are opened again
// if it returns.
func (s *partitionSet) closeTopic(t metadata.Topic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for key, part := range s.parts {
		if key.topic == t.Name && part.topicID == t.ID {
			delete(s.parts, key)
			s.b.repl.Unfollow(part.topic, part.index)
			if err := part.log.Close(); err != nil {
				s.b.log.Warn().Err(err).Str("topic", part.topic).Int32("partition", part.index).Msg("closing the log of an unavailable topic")
			}
			n++
		}
	}
	s.b.log.Error().Str("topic", t.Name).Stringer("topic_id", t.ID).Int("partitions_closed", n).Err(s.b.store.TopicFault(t.Name)).
		Msg("topic left the metadata without being deleted: no longer served; its data is kept and served again if the metadata is repaired")
}

// openHosted opens the partitions of t that this broker hosts and has not
// open yet, as a topic (back) in the metadata needs: a topic repaired, or
// partitions added.
func (s *partitionSet) openHosted(t metadata.Topic) {
	for _, st := range s.b.store.PartitionStates(t.Name) {
		if st.TopicID == t.ID && s.hosts(st) {
			if part := s.lookup(t.Name, st.Partition); part == nil || part.topicID != t.ID {
				s.applyState(st)
			}
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

// onEvent applies a metadata change to local partitions: a partition
// placed on this broker gets its log at once (as Kafka creates them at
// topic creation, so DescribeLogDirs and the data directory show them),
// and leadership changes reach the data path.
func (s *partitionSet) onEvent(ev metadata.Event) {
	switch ev.Kind {
	case metadata.TopicDeleted:
		s.remove(ev.Topic)
	case metadata.TopicUnavailable:
		s.closeTopic(ev.Topic)
	case metadata.TopicCreated:
		s.openHosted(ev.Topic)
	case metadata.TopicUpdated:
		s.refreshSettings()
		s.openHosted(ev.Topic)
	case metadata.PartitionChanged:
		s.applyState(ev.Partition)
	}
}

// applyState follows a partition's new state: a partition this broker
// hosts is opened if it is not yet, and its leadership updated. A failure
// to open is logged; the partition is retried on first use.
func (s *partitionSet) applyState(st metadata.PartitionState) {
	t, ok := s.b.store.Topic(st.Topic)
	if !ok || t.ID != st.TopicID || st.Partition >= t.Partitions {
		return
	}
	delay := s.deleteDelay(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stillKnownLocked(t) {
		return
	}
	key := topicPartition{st.Topic, st.Partition}
	part := s.parts[key]
	if part != nil && part.topicID == t.ID {
		s.setLeadership(part, st)
		if !s.hosts(st) {
			// Reassigned away: this replica's log goes, as in Kafka,
			// renamed for deletion now and removed after the delay.
			delete(s.parts, key)
			s.b.cleaner.forget(st.Topic, st.Partition)
			if err := part.log.Discard(); err != nil {
				s.b.log.Warn().Err(err).Str("topic", st.Topic).Int32("partition", st.Partition).Msg("closing the log of a replica moved away")
			}
			if err := s.retireDirLocked(st.Topic, st.Partition, t.ID, delay); err != nil {
				s.b.log.Error().Err(err).Str("topic", st.Topic).Int32("partition", st.Partition).Msg("cannot rename the log of a replica moved away for deletion")
			} else {
				s.b.log.Info().Str("topic", st.Topic).Int32("partition", st.Partition).Dur("delete_delay", delay).Msg("replica moved to other brokers: its log is renamed for deletion")
			}
		}
		return
	}
	if !s.hosts(st) {
		return
	}
	part, err := s.openLocked(t, st.Partition)
	if err != nil {
		s.b.log.Error().Err(err).Str("topic", st.Topic).Int32("partition", st.Partition).Msg("cannot open partition log")
		return
	}
	s.setLeadership(part, st)
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
	closed := make([]*partition, 0, len(s.parts))
	for key, part := range s.parts {
		closed = append(closed, part)
		delete(s.parts, key)
	}
	// At once, as openAll opens them: a clean close is a few fsyncs a log
	// (its data, the clean-shutdown marker), which one after another took
	// ~10 s for 1,000 partitions here, past `docker stop`'s grace period.
	closeErrs := make([]error, len(closed))
	atOnce(len(closed), func(i int) {
		if err := closed[i].log.Close(); err != nil {
			closeErrs[i] = fmt.Errorf("close %s-%d: %w", closed[i].topic, closed[i].index, err)
		}
	})
	errs := slices.DeleteFunc(closeErrs, func(err error) bool { return err == nil })
	if s.rp.loaded() {
		// After the logs: their recovery points are their ends now.
		if err := s.writeRecoveryPoints(closed); err != nil {
			errs = append(errs, err)
		}
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
