package coordinator

// Compaction of TxnStateTopic and expiry of idle transactional ids.
//
// Like OffsetsTopic (compact.go), TxnStateTopic holds nothing but state
// the coordinator has in memory, so the coordinator compacts it the same
// way: roll the partition's log to base offset B, append the current
// record of every transactional id of the partition (each under its
// transaction's lock, so a concurrent change lands after it), then delete
// the segments below B. A partition is compacted when it has rolled a
// segment and at most half of its bytes are live.
//
// A transactional id with no open transaction whose state has not changed
// for transactional.id.expiration.ms (7 days) is forgotten: a tombstone
// is written and its producer id is not kept, as in Kafka.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

// compactTxnsDue compacts every partition of TxnStateTopic this broker
// leads that is due. liveBytes (owned by the caller's goroutine) holds
// what each partition's last compaction wrote.
func (c *TxnCoordinator) compactTxnsDue(liveBytes map[int32]int64) {
	for p := range c.logs.TxnPartitions() {
		if c.ctx.Err() != nil {
			return
		}
		if !c.owns(p) {
			continue
		}
		size, segments := c.logs.Size(p)
		if segments < 2 || size < 2*liveBytes[p] {
			continue
		}
		written, err := c.CompactPartition(p)
		if err != nil {
			c.log.Error().Err(err).Int32("partition", p).Msg("cannot compact the transaction state topic")
			continue
		}
		liveBytes[p] = written
	}
}

// CompactPartition rewrites the live records of partition p of
// TxnStateTopic at its head and deletes the segments before them. It
// returns the bytes it wrote.
func (c *TxnCoordinator) CompactPartition(p int32) (int64, error) {
	start := time.Now()
	base, err := c.logs.Roll(p)
	if err != nil {
		return 0, fmt.Errorf("coordinator: compact %s-%d: roll: %w", TxnStateTopic, p, err)
	}
	var txns []*txn
	for _, t := range c.ownedTxns() {
		if t.partition == p {
			txns = append(txns, t)
		}
	}
	slices.SortFunc(txns, func(a, b *txn) int { return strings.Compare(a.id, b.id) })
	var written int64
	for len(txns) > 0 {
		chunk := txns[:min(len(txns), compactionBatchRecords)]
		txns = txns[len(chunk):]
		// Each transaction's lock is held until the batch holding its
		// record is written, so no newer record of it precedes this one.
		var size int
		err = lockedAll(chunk, func() error {
			var recs []kmsg.Record
			for _, t := range chunk {
				if !t.deleted && t.producerID >= 0 {
					key, val := txnRecord(t.id, t.value())
					recs = append(recs, kmsg.Record{Key: key, Value: val})
				}
			}
			if len(recs) == 0 {
				return nil
			}
			batch, err := c.codecs.BuildBatch(protocol.CodecNone, c.now().UnixMilli(), recs)
			if err != nil {
				return err
			}
			size = len(batch)
			return c.logs.Append(p, batch)
		})
		if err != nil {
			return written, fmt.Errorf("coordinator: compact %s-%d: rewrite: %w", TxnStateTopic, p, err)
		}
		written += int64(size)
	}
	deleted, err := c.logs.DeleteBelow(p, base)
	if err != nil {
		return written, fmt.Errorf("coordinator: compact %s-%d: delete old segments: %w", TxnStateTopic, p, err)
	}
	c.log.Info().Int32("partition", p).Int("segments_deleted", deleted).Int64("bytes_written", written).
		Dur("took", time.Since(start)).Msg("compacted the transaction state topic")
	return written, nil
}

// expireIdle forgets transactional ids without an open transaction whose
// state is older than cfg.IDExpiration.
func (c *TxnCoordinator) expireIdle() {
	if c.cfg.IDExpiration <= 0 {
		return
	}
	before := c.now().Add(-c.cfg.IDExpiration).UnixMilli()
	for _, t := range c.ownedTxns() {
		locked(&t.mu, func() {
			idle := !t.deleted && !t.finishing && t.producerID >= 0 && t.updateMs < before &&
				(t.state == txnEmpty || t.state == txnCompleteCommit || t.state == txnCompleteAbort)
			if idle {
				key, _ := txnRecord(t.id, nil)
				batch, err := c.codecs.BuildBatch(protocol.CodecNone, c.now().UnixMilli(), []kmsg.Record{{Key: key}})
				if err == nil {
					err = c.logs.Append(t.partition, batch)
				}
				if err != nil {
					c.log.Warn().Err(err).Str("transactional_id", t.id).Msg("cannot expire an idle transactional id")
				} else {
					t.deleted = true
					c.mu.Lock()
					if c.txns[t.id] == t {
						delete(c.txns, t.id)
					}
					c.mu.Unlock()
					c.log.Info().Str("transactional_id", t.id).Msg("expired an idle transactional id")
				}
			}
		})
	}
}
