package coordinator

// Compaction of OffsetsTopic.
//
// The offsets topic is compacted (cleanup.policy=compact), and since every
// record in it is state the coordinator holds in memory, the coordinator
// compacts it itself instead of running a general log cleaner: for one
// partition it
//
//  1. rolls the log, so that a new segment starts at base offset B;
//  2. appends, group by group and under each group's lock, the live
//     records of every group of the partition: the latest offset commit
//     of each topic-partition and, for classic groups, the group metadata;
//  3. deletes every segment below B.
//
// After step 2 the log from B on holds the whole state of the partition,
// so the segments below B hold nothing a replay needs. A crash anywhere
// leaves a log whose replay gives the same state: before step 3 the old
// records are only superseded by the new ones, and step 3 removes a prefix
// of the log, oldest segment first (storage.Log.DeleteSegmentsBelow). A
// commit concurrent with the compaction either lands before the group's
// lock is taken in step 2 (then the rewrite includes it) or after (then it
// follows the rewrite in the log); both are at or above B, since B was
// fixed first.
//
// A partition is compacted when it has rolled at least one segment (the
// offsets topic's segment.bytes, offsets.topic.segment.bytes, bounds the
// garbage before anything happens, as in Kafka, where the active segment
// is never cleaned) and at most half of its bytes are live (Kafka's default
// min.cleanable.dirty.ratio of 0.5). The live size is what the previous
// compaction wrote; before the first one it is taken as zero. Partitions
// are looked at every log.cleaner.backoff.ms.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// compactionBatchRecords bounds the records in one rewritten batch, so that
// a group with very many committed partitions writes several batches of
// ordinary size rather than one huge one.
const compactionBatchRecords = 1000

// compactDue compacts every partition that is due; Start runs it every
// CompactionCheckInterval. liveBytes holds the bytes each partition's last
// compaction wrote.
func (c *Coordinator) compactDue(liveBytes map[int32]int64) {
	for p := range c.logs.OffsetsPartitions() {
		select {
		case <-c.stopRetention:
			return
		default:
		}
		if !c.owns(p) {
			continue // another broker leads it, and compacts it
		}
		if c.hasPendingTxn(p) {
			continue // rewriting would drop the open transactions' offsets
		}
		size, segments := c.logs.Size(p)
		if segments < 2 || size < 2*liveBytes[p] {
			continue
		}
		written, err := c.CompactPartition(p)
		if err != nil {
			c.log.Error().Err(err).Int32("partition", p).Msg("cannot compact the offsets topic")
			continue
		}
		liveBytes[p] = written
	}
}

// CompactPartition rewrites the live records of one partition of
// OffsetsTopic at its head and deletes the segments before them (see the
// top of this file). It returns the bytes it wrote.
func (c *Coordinator) CompactPartition(p int32) (int64, error) {
	start := time.Now()
	sizeBefore, _ := c.logs.Size(p)
	base, err := c.logs.Roll(p)
	if err != nil {
		return 0, fmt.Errorf("coordinator: compact %s-%d: roll: %w", OffsetsTopic, p, err)
	}
	// The groups are listed after the roll: any group with a record below
	// base was in c.groups before that record was written.
	c.mu.Lock()
	var groups []*group
	for _, g := range c.groups {
		if g.partition == p {
			groups = append(groups, g)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(groups, func(a, b *group) int { return strings.Compare(a.id, b.id) })
	var written int64
	records := 0
	for _, g := range groups {
		var n int64
		var recs []kmsg.Record
		locked(&g.mu, func() {
			if !g.deleted {
				recs = g.liveRecordsLocked()
				n, err = c.appendChunked(p, c.now(), recs)
			}
		})
		if err != nil {
			return written, fmt.Errorf("coordinator: compact %s-%d: rewrite group %s: %w", OffsetsTopic, p, g.id, err)
		}
		written += n
		records += len(recs)
	}
	deleted, err := c.logs.DeleteBelow(p, base)
	if err != nil {
		return written, fmt.Errorf("coordinator: compact %s-%d: delete old segments: %w", OffsetsTopic, p, err)
	}
	sizeAfter, _ := c.logs.Size(p)
	c.log.Info().Int32("partition", p).Int("groups", len(groups)).Int("records", records).
		Int("segments_deleted", deleted).Int64("bytes_before", sizeBefore).Int64("bytes_after", sizeAfter).
		Dur("took", time.Since(start)).Msg("compacted the offsets topic")
	return written, nil
}

// appendChunked appends records in batches of at most
// compactionBatchRecords and returns the bytes written.
func (c *Coordinator) appendChunked(p int32, now time.Time, recs []kmsg.Record) (int64, error) {
	var n int64
	for len(recs) > 0 {
		chunk := recs[:min(len(recs), compactionBatchRecords)]
		recs = recs[len(chunk):]
		size, err := c.appendRecords(p, now, chunk)
		if err != nil {
			return n, err
		}
		n += int64(size)
	}
	return n, nil
}

// liveRecordsLocked is the group's state as OffsetsTopic records: its
// committed offsets and its classic metadata or KIP-848 records. Replaying them
// alone rebuilds the group. Called with g.mu held.
func (g *group) liveRecordsLocked() []kmsg.Record {
	var recs []kmsg.Record
	if g.kind == kindClassic {
		key, val := groupRecord(g.id, g.metadataValue())
		recs = append(recs, kmsg.Record{Key: key, Value: val})
	}
	recs = append(recs, g.storedConsumerRecords()...)
	for _, t := range sortedKeys(g.offsets) {
		for _, part := range sortedKeys(g.offsets[t]) {
			oc := g.offsets[t][part]
			key, val := offsetRecord(g.id, t, part, &oc)
			recs = append(recs, kmsg.Record{Key: key, Value: val})
		}
	}
	return recs
}
