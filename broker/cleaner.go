package broker

// The log cleaner manager: compaction of every local replica of a topic
// whose cleanup.policy includes compact (the internal topics
// __consumer_offsets and __transaction_state included), leader or
// follower alike, as each Kafka broker cleans its own logs.
//
// log.cleaner.threads goroutines (dynamic) each take, in turn, the dirtiest
// partition that is due and not being cleaned, and run storage.Log.Clean
// on it. A partition is due when
//   - its dirty ratio (bytes of segments not cleaned yet over all bytes
//     of its closed segments below the first uncleanable offset) is at
//     least min.cleanable.dirty.ratio, or
//   - its first dirty batch is older than max.compaction.lag.ms, or
//   - a tombstone or transaction marker the last pass kept has passed
//     delete.retention.ms.
//
// When none is due a thread waits log.cleaner.backoff.ms. Each pass's end
// (CleanStats.CleanedTo) goes into the cleaner-offset-checkpoint file of
// the data directory (storage/checkpoint.go's format), so a restart goes
// on where the cleaning stopped. All threads share one throttle of
// log.cleaner.io.max.bytes.per.second, and divide
// log.cleaner.dedupe.buffer.size among themselves.

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/storage"
)

// logCleaner schedules the cleaning of compacted partitions.
type logCleaner struct {
	b *Broker
	// mu protects the fields below it.
	mu sync.Mutex
	// checkpoints is the cleaner checkpoint of each partition: the offset
	// below which it is clean (loaded at start, updated after each pass).
	checkpoints map[storage.TopicPartition]int64
	// busy holds the partitions a thread is cleaning.
	busy map[*partition]bool
	// horizon is when (Unix ms) a partition's kept tombstones or markers
	// may go.
	horizon map[*partition]int64
	// retryAt is when (Unix ms) a partition whose last pass failed may be
	// tried again.
	retryAt map[*partition]int64
	// dirtyCheckpoint says checkpoints changed since the file was written.
	dirtyCheckpoint bool
	// writeMu serializes writes of the checkpoint file.
	writeMu sync.Mutex

	throttle throttler
	// started is how many cleaner threads run, protected by mu; it only
	// grows. Threads numbered log.cleaner.threads and above stay idle, so
	// the config can go down and up again at run time.
	started int
	fsys    storage.FS   // set at start
	picks   atomic.Int64 // partitions looked over so far (tests wait on it)
}

func newLogCleaner() *logCleaner {
	return &logCleaner{
		checkpoints: make(map[storage.TopicPartition]int64),
		busy:        make(map[*partition]bool),
		horizon:     make(map[*partition]int64),
		retryAt:     make(map[*partition]int64),
	}
}

// startLogCleaner starts the cleaner threads, unless log.cleaner.enable
// is false.
func (b *Broker) startLogCleaner() {
	c := b.cleaner
	c.b = b
	if b.brokerConfig("log.cleaner.enable") == "false" {
		return
	}
	fsys := b.cfg.LogFS
	if fsys == nil {
		fsys = storage.OSFS{}
	}
	if cp, ok, err := storage.ReadOffsetCheckpoint(fsys, b.cfg.DataDir, storage.CleanerOffsetCheckpoint); err != nil {
		b.log.Warn().Err(err).Msg("cannot read the cleaner checkpoint; cleaning every compacted log from its start")
	} else if ok {
		c.mu.Lock()
		for tp, off := range cp {
			if _, forgotten := c.checkpoints[tp]; !forgotten {
				c.checkpoints[tp] = off
			}
		}
		c.mu.Unlock()
	}
	c.fsys = fsys
	c.ensureThreads()
}

// threads is log.cleaner.threads now (dynamic).
func (c *logCleaner) threads() int {
	return int(min(max(c.b.brokerConfigInt("log.cleaner.threads"), 1), maxCleanerThreads))
}

// maxCleanerThreads bounds log.cleaner.threads (its config check too).
const maxCleanerThreads = 64

// ensureThreads starts threads until log.cleaner.threads of them run.
// Thread 0 calls it on each round, so raising the config takes effect
// within log.cleaner.backoff.ms.
func (c *logCleaner) ensureThreads() {
	want := c.threads()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.started < want {
		i := c.started
		c.started++
		safe.Go(&c.b.bg, c.b.log, "log cleaner", func() { c.run(i, c.fsys) })
	}
}

// backoff is log.cleaner.backoff.ms (0 stops cleaning until it changes;
// a thread looks again every second).
func (c *logCleaner) backoff() (time.Duration, bool) {
	ms := c.b.brokerConfigInt("log.cleaner.backoff.ms")
	if ms <= 0 {
		return time.Second, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// run is one cleaner thread.
func (c *logCleaner) run(thread int, fsys storage.FS) {
	b := c.b
	for {
		wait, on := c.backoff()
		if thread == 0 {
			c.ensureThreads()
		}
		worked := false
		if on && thread < c.threads() {
			if p := c.pick(); p != nil {
				worked = true
				c.clean(p)
				c.release(p)
				c.writeCheckpoint(fsys)
			}
		}
		if worked {
			select {
			case <-b.ctx.Done():
				return
			default:
				continue
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// pick returns the dirtiest due partition and marks it busy, or nil.
func (c *logCleaner) pick() *partition {
	now := c.b.now().UnixMilli()
	var best *partition
	bestRatio := -1.0
	parts := c.b.parts.all()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Partitions that left the broker (deleted, moved away) leave the maps.
	hosted := make(map[*partition]bool, len(parts))
	for _, p := range parts {
		hosted[p] = true
	}
	for _, m := range []map[*partition]int64{c.horizon, c.retryAt} {
		for p := range m {
			if !hosted[p] {
				delete(m, p)
			}
		}
	}
	for _, p := range parts {
		st := p.settings.Load()
		if st == nil || !st.compacted || c.busy[p] || c.retryAt[p] > now {
			continue
		}
		cp := c.checkpoints[storage.TopicPartition{Topic: p.topic, Partition: p.index}]
		cl := p.log.Cleanable(cp, st.minCompactionLagMs)
		ratio := cl.DirtyRatio()
		// Something to map: a pass that cannot move the checkpoint is
		// not due for its dirt (the rest of a segment past the last
		// stable offset, say), or it would run again at once.
		dirty := cl.DirtyBytes > 0 && cl.FirstUncleanable > cl.FirstDirty
		due := dirty && ratio >= st.minCleanableRatio
		if !due && dirty && cl.FirstDirtyTimestamp >= 0 && st.maxCompactionLagMs < math.MaxInt64 &&
			now-cl.FirstDirtyTimestamp > st.maxCompactionLagMs {
			due, ratio = true, math.Max(ratio, 1) // overdue: first
		}
		if h, ok := c.horizon[p]; !due && ok && h <= now {
			due = true
		}
		if due && ratio > bestRatio {
			best, bestRatio = p, ratio
		}
	}
	if best != nil {
		c.busy[best] = true
	}
	c.picks.Add(1)
	return best
}

func (c *logCleaner) release(p *partition) {
	c.mu.Lock()
	delete(c.busy, p)
	c.mu.Unlock()
}

// clean runs one pass over p.
func (c *logCleaner) clean(p *partition) {
	b := c.b
	st := p.settings.Load()
	tp := storage.TopicPartition{Topic: p.topic, Partition: p.index}
	c.mu.Lock()
	cp := c.checkpoints[tp]
	c.mu.Unlock()
	lf, _ := strconv.ParseFloat(b.brokerConfig("log.cleaner.io.buffer.load.factor"), 64)
	cfg := storage.CleanConfig{
		Codecs:             b.codecs,
		DeleteRetentionMs:  st.deleteRetentionMs,
		MinCompactionLagMs: st.minCompactionLagMs,
		MapBytes:           b.brokerConfigInt("log.cleaner.dedupe.buffer.size") / int64(c.threads()),
		MapLoadFactor:      lf,
		Throttle:           c.throttleFn(),
		Stop:               b.ctx.Done(),
	}
	res, err := p.log.Clean(cp, cfg)
	if err != nil {
		if errors.Is(err, storage.ErrCleanAborted) {
			// The log changed under the pass (a truncation, a deletion of
			// segments) or the broker is stopping: nothing was swapped
			// past that point; the next pass starts over.
			b.log.Info().Err(err).Str("topic", p.topic).Int32("partition", p.index).Msg("log cleaner pass abandoned")
		} else {
			b.log.Warn().Err(err).Str("topic", p.topic).Int32("partition", p.index).Msg("log cleaner pass failed")
		}
		// A failed or abandoned pass is tried again after the backoff,
		// not at once.
		wait, _ := c.backoff()
		c.mu.Lock()
		delete(c.horizon, p)
		c.retryAt[p] = b.now().UnixMilli() + wait.Milliseconds()
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	if res.CleanedTo != cp {
		c.checkpoints[tp] = res.CleanedTo
		c.dirtyCheckpoint = true
	}
	delete(c.retryAt, p)
	if res.NextDeleteHorizonMs >= 0 {
		// At most ten passes a delete.retention.ms for tombstones alone:
		// each rewrites the clean part of the log.
		c.horizon[p] = max(res.NextDeleteHorizonMs, b.now().UnixMilli()+st.deleteRetentionMs/10)
	} else {
		delete(c.horizon, p)
	}
	c.mu.Unlock()
	if res.SegmentsIn > 0 {
		mbps := 0.0
		if s := res.Elapsed.Seconds(); s > 0 {
			mbps = float64(res.BytesRead) / s / (1 << 20)
		}
		b.log.Info().Str("topic", p.topic).Int32("partition", p.index).
			Int64("cleaned_to", res.CleanedTo).Int("segments_in", res.SegmentsIn).Int("segments_out", res.SegmentsOut).
			Int64("bytes_read", res.BytesRead).Int64("bytes_written", res.BytesWritten).
			Float64("mb_per_sec", mbps).Msg("cleaned log")
	}
}

// writeCheckpoint writes the cleaner checkpoint file if it changed,
// leaving out partitions this broker no longer hosts.
func (c *logCleaner) writeCheckpoint(fsys storage.FS) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	hosted := make(map[storage.TopicPartition]bool)
	for _, p := range c.b.parts.all() {
		hosted[storage.TopicPartition{Topic: p.topic, Partition: p.index}] = true
	}
	c.mu.Lock()
	if !c.dirtyCheckpoint {
		c.mu.Unlock()
		return
	}
	c.dirtyCheckpoint = false
	out := make(map[storage.TopicPartition]int64, len(c.checkpoints))
	for tp, off := range c.checkpoints {
		if hosted[tp] {
			out[tp] = off
		}
	}
	c.mu.Unlock()
	if err := storage.WriteOffsetCheckpoint(fsys, c.b.cfg.DataDir, storage.CleanerOffsetCheckpoint, out); err != nil {
		c.b.log.Warn().Err(err).Msg("cannot write the cleaner checkpoint")
		c.mu.Lock()
		c.dirtyCheckpoint = true
		c.mu.Unlock()
	}
}

// forget drops a partition's checkpoint (its log was deleted or
// truncated below it); the next pass starts at the log start.
func (c *logCleaner) forget(topic string, partition int32) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.checkpoints, storage.TopicPartition{Topic: topic, Partition: partition})
	c.dirtyCheckpoint = true
	c.mu.Unlock()
}

// throttleFn returns the throttle for one pass: every thread's bytes
// count against log.cleaner.io.max.bytes.per.second, read at each call.
func (c *logCleaner) throttleFn() func(int64) {
	return func(n int64) {
		rate, err := strconv.ParseFloat(c.b.brokerConfig("log.cleaner.io.max.bytes.per.second"), 64)
		if err != nil || rate <= 0 || rate >= math.MaxFloat64/2 {
			return
		}
		if d := c.throttle.take(n, rate, time.Now()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-c.b.ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// throttler is a token bucket of bytes shared by the cleaner threads.
type throttler struct {
	mu     sync.Mutex // protects the fields below
	tokens float64    // bytes that may pass now; negative is debt
	at     time.Time  // when tokens was last refilled
}

// take spends n bytes at rate bytes/s and returns how long the caller
// must sleep to stay under the rate. The bucket holds at most a tenth of
// a second of bytes, so a quiet spell does not allow a burst.
func (t *throttler) take(n int64, rate float64, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.at.IsZero() {
		t.tokens += now.Sub(t.at).Seconds() * rate
	}
	t.at = now
	t.tokens = math.Min(t.tokens, rate/10)
	t.tokens -= float64(n)
	if t.tokens >= 0 {
		return 0
	}
	return time.Duration(-t.tokens / rate * float64(time.Second))
}
