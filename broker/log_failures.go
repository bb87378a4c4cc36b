package broker

// A log that failed on a disk error (storage.ErrStorage: a write, fsync,
// truncation or rename did not happen) answers every append and read with
// KAFKA_STORAGE_ERROR until the broker restarts and recovers it. As Kafka
// does for a log directory that went offline, the broker then gives the
// partition up: it leaves the ISR and, if it leads, hands leadership to
// the next live in-sync replica (stepAside), so clients move there at the
// next epoch. A partition with no other in-sync replica keeps this broker
// as its leader and stays unavailable (KAFKA_STORAGE_ERROR), which is
// what Kafka's offline partition is to clients; no replica that may lack
// acknowledged records is elected in its place. A failed log is not
// followed either (followState): it cannot take the leader's records.

import (
	"time"
)

// failedLogScanInterval is how often the logs are checked for a failure;
// failedLogRetry is how long after a hand-off that did not happen (no
// other live in-sync replica, or the metadata store unreachable) it is
// tried again.
const (
	failedLogScanInterval = 250 * time.Millisecond
	failedLogRetry        = 10 * time.Second
)

// startFailedLogHandOff checks the local logs for failures until Close.
func (b *Broker) startFailedLogHandOff() {
	tried := map[*partition]time.Time{} // owned by the periodic task's goroutine
	b.every(failedLogScanInterval, func() { b.handOffFailedLogs(tried, time.Now()) })
}

// handOffFailedLogs gives up the partitions whose logs failed. tried
// holds when each was last given up, or tried to be.
func (b *Broker) handOffFailedLogs(tried map[*partition]time.Time, now time.Time) {
	open := map[*partition]bool{}
	for _, part := range b.parts.all() {
		open[part] = true
		err := part.log.Failed()
		if err == nil {
			continue
		}
		if last, ok := tried[part]; ok && now.Sub(last) < failedLogRetry {
			continue
		}
		if _, ok := tried[part]; !ok {
			b.log.Error().Err(err).Str("topic", part.topic).Int32("partition", part.index).
				Msg("partition log failed on a disk error; giving up the partition (KAFKA_STORAGE_ERROR until restart)")
		}
		tried[part] = now
		if b.stepAside(b.ctx, part, "log failed on a disk error") == stepStayed {
			b.log.Warn().Str("topic", part.topic).Int32("partition", part.index).
				Msg("failed log: no other live in-sync replica; staying in the isr")
		}
		b.repl.Unfollow(part.topic, part.index)
	}
	for part := range tried {
		if !open[part] {
			delete(tried, part)
		}
	}
}
