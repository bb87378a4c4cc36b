package broker

// Partition directories set aside rather than removed. A partition's log
// lives in <data-dir>/<topic>-<p>, its topic id in partition.metadata.
// Two other names hold a log that is no longer served, as Kafka names
// them:
//
//	<topic>-<p>.<topic id>-stray    a log of a topic id the metadata does
//	                                not know (etcd lost or restored, a
//	                                value unreadable when the broker
//	                                started, the name taken by another
//	                                topic id): kept, and moved back when
//	                                that topic id returns
//	<topic>-<p>.<topic id>-delete   a log of a topic id deleted explicitly
//	                                (DeleteTopics, its deletion record in
//	                                etcd) or of a replica reassigned away:
//	                                removed file.delete.delay.ms later,
//	                                and at start-up if still there
//
// e.g. orders-2.nLtr0Hn1QCmqcSBvmXqTWA-stray. The topic id is the 22
// characters Kafka prints (base64url, no padding; it may hold '-' and
// '_'), so a name is read from its end. When such a name is taken already,
// a counter goes before the suffix: orders-2.nLtr0Hn1QCmqcSBvmXqTWA.1-delete.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gregorbroker/gregor/metadata"
)

const (
	straySuffix  = "-stray"
	deleteSuffix = "-delete"
)

// asideName is the first free name for dir set aside with suffix.
func asideName(dir string, id metadata.TopicID, suffix string) string {
	name := dir + "." + id.String() + suffix
	for n := 1; ; n++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = dir + "." + id.String() + "." + strconv.Itoa(n) + suffix
	}
}

// setAsideLocked moves the directory of partition p of topic, which holds
// a log of topic id id, out of the way: for deletion if id was deleted
// explicitly, else as stray. s.mu must be held.
func (s *partitionSet) setAsideLocked(topic string, p int32, id metadata.TopicID) error {
	if s.b.store.Deleted(id) {
		return s.retireDirLocked(topic, p, id, 0)
	}
	dir := s.partitionDir(topic, p)
	to := asideName(dir, id, straySuffix)
	if err := renameDir(dir, to); err != nil {
		return fmt.Errorf("broker: set aside %s: %w", dir, err)
	}
	s.b.log.Warn().Str("dir", dir).Str("to", to).Stringer("topic_id", id).
		Msg("set aside the log of a topic id the metadata does not know; it is kept, and served again if that topic id returns")
	return nil
}

// restoreStrayLocked moves a stray directory of topic id id back to be
// partition p of topic again, if there is one. s.mu must be held.
func (s *partitionSet) restoreStrayLocked(topic string, p int32, id metadata.TopicID) error {
	dir := s.partitionDir(topic, p)
	stray := dir + "." + id.String() + straySuffix
	if _, err := os.Stat(stray); err != nil {
		return nil
	}
	if err := renameDir(stray, dir); err != nil {
		return fmt.Errorf("broker: move back %s: %w", stray, err)
	}
	s.b.log.Warn().Str("dir", dir).Str("from", stray).Stringer("topic_id", id).Msg("topic id is back in the metadata: moved its stray log back")
	return nil
}

// retireDirLocked renames the directory of partition p of topic for
// deletion, if it holds topic id id, and removes it after delay. s.mu
// must be held.
func (s *partitionSet) retireDirLocked(topic string, p int32, id metadata.TopicID, delay time.Duration) error {
	dir := s.partitionDir(topic, p)
	if got, err := readPartitionMetadata(dir); err != nil || got != id {
		return nil // not there, or another topic id's
	}
	to := asideName(dir, id, deleteSuffix)
	if err := renameDir(dir, to); err != nil {
		return fmt.Errorf("broker: rename %s for deletion: %w", dir, err)
	}
	s.removeLater(to, delay)
	return nil
}

// retireTopicLocked renames for deletion every directory of a deleted
// topic id: <topic>-<p> holding it, and its stray ones. s.mu must be held.
func (s *partitionSet) retireTopicLocked(topic string, id metadata.TopicID, delay time.Duration) {
	entries, err := os.ReadDir(s.b.cfg.DataDir)
	if err != nil {
		s.b.log.Error().Err(err).Str("topic", topic).Msg("cannot list the data directory to delete a topic's logs")
		return
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		if p, ok := parsePartitionDirName(name, topic); ok {
			if err := s.retireDirLocked(topic, p, id, delay); err != nil {
				s.b.log.Error().Err(err).Str("topic", topic).Int32("partition", p).Msg("cannot rename a deleted topic's log for deletion")
			} else {
				n++
			}
			continue
		}
		if strayTopic, _, strayID, ok := parseAsideName(name, straySuffix); ok && strayTopic == topic && strayID == id {
			from := filepath.Join(s.b.cfg.DataDir, name)
			to := asideName(strings.TrimSuffix(from, "."+id.String()+straySuffix), id, deleteSuffix)
			if err := renameDir(from, to); err != nil {
				s.b.log.Error().Err(err).Str("dir", from).Msg("cannot rename a deleted topic's stray log for deletion")
				continue
			}
			s.removeLater(to, delay)
			n++
		}
	}
	s.b.log.Info().Str("topic", topic).Stringer("topic_id", id).Int("dirs", n).Dur("delete_delay", delay).Msg("renamed a deleted topic's logs for deletion")
}

// scanDataDirLocked looks at the data directory at start: directories
// left for deletion are removed (in the background), and the partition
// directories of topic ids the metadata does not know are set aside
// (stray, or for deletion when a deletion record names the id). s.mu must
// be held.
func (s *partitionSet) scanDataDirLocked() error {
	entries, err := os.ReadDir(s.b.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("broker: list data dir: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		if _, _, _, ok := parseAsideName(name, deleteSuffix); ok {
			s.removeLater(filepath.Join(s.b.cfg.DataDir, name), 0)
			continue
		}
		dir := filepath.Join(s.b.cfg.DataDir, name)
		id, err := readPartitionMetadata(dir)
		if err != nil {
			continue // not a partition directory (the embedded etcd's, a stray one...)
		}
		i := strings.LastIndexByte(name, '-')
		if i <= 0 {
			continue
		}
		topic := name[:i]
		p, ok := parsePartitionDirName(name, topic)
		if !ok {
			continue
		}
		if _, known := s.b.store.TopicByID(id); known {
			continue
		}
		if err := s.setAsideLocked(topic, p, id); err != nil {
			return err
		}
	}
	return nil
}

// parsePartitionDirName reports whether name is <topic>-<p> for this
// topic, and p.
func parsePartitionDirName(name, topic string) (int32, bool) {
	num, ok := strings.CutPrefix(name, topic+"-")
	if !ok || num == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != num {
		return 0, false
	}
	return int32(n), true
}

// parseAsideName reads <topic>-<p>.<topic id>[.<n>]<suffix>.
func parseAsideName(name, suffix string) (string, int32, metadata.TopicID, bool) {
	rest, ok := strings.CutSuffix(name, suffix)
	if !ok {
		return "", 0, metadata.TopicID{}, false
	}
	if i := strings.LastIndexByte(rest, '.'); i > 0 && len(rest)-i-1 != 22 {
		if _, err := strconv.Atoi(rest[i+1:]); err == nil {
			rest = rest[:i] // the counter
		}
	}
	const idLen = 22
	if len(rest) < idLen+2 || rest[len(rest)-idLen-1] != '.' {
		return "", 0, metadata.TopicID{}, false
	}
	id, err := metadata.ParseTopicID(rest[len(rest)-idLen:])
	if err != nil {
		return "", 0, metadata.TopicID{}, false
	}
	base := rest[:len(rest)-idLen-1]
	i := strings.LastIndexByte(base, '-')
	if i <= 0 {
		return "", 0, metadata.TopicID{}, false
	}
	p, ok := parsePartitionDirName(base, base[:i])
	if !ok {
		return "", 0, metadata.TopicID{}, false
	}
	return base[:i], p, id, true
}

// deleteDelay is t's file.delete.delay.ms.
func (s *partitionSet) deleteDelay(t metadata.Topic) time.Duration {
	settings := s.b.configs.settings(t.Configs, s.b.layers())
	return time.Duration(settings.storage.FileDeleteDelayMs) * time.Millisecond
}

// removeLater removes dir after delay on a goroutine of its own, owned by
// the broker (Close stops the wait; the next start removes what is left).
func (s *partitionSet) removeLater(dir string, delay time.Duration) {
	s.b.bg.Add(1)
	go func() {
		defer s.b.bg.Done()
		if delay > 0 {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-s.b.ctx.Done():
				return
			case <-t.C:
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			s.b.log.Error().Err(err).Str("dir", dir).Msg("cannot remove a log left for deletion")
			return
		}
		s.b.log.Info().Str("dir", dir).Msg("removed a log left for deletion")
	}()
}

// renameDir renames a directory and makes the rename durable.
func renameDir(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(to))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
