package coordinator

// Compaction of OffsetsTopic.
//
// The offsets topic is compacted (cleanup.policy=compact) by the broker's
// log cleaner, as every compacted topic is (broker/cleaner.go,
// storage/cleaner.go): every replica, leader or follower, keeps the latest
// record of each key in its closed segments, at its offset, and drops
// tombstones after delete.retention.ms. The coordinator only has to write
// what a replay needs: the latest record of every key it cares about, and
// a tombstone for every key it forgets (an expired or deleted offset, a
// deleted group, a member that left). Replay keeps the last value of each
// key (doc.go), so the log reads the same before and after cleaning.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// compactionBatchRecords bounds the records in one batch the coordinator
// writes at once (a group's tombstones, say), so that a group with very
// many committed partitions writes several batches of ordinary size
// rather than one huge one.
const compactionBatchRecords = 1000

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
