package coordinator

// Expiry of idle transactional ids. TxnStateTopic is compacted by the
// broker's log cleaner, like OffsetsTopic (compact.go): the coordinator
// writes each transactional id's latest state and a tombstone when it
// forgets one.
//
// A transactional id with no open transaction whose state has not changed
// for transactional.id.expiration.ms (7 days) is forgotten: a tombstone
// is written and its producer id is not kept, as in Kafka.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

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
