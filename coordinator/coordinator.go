package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/protocol"
)

// OffsetsTopic is the internal topic holding committed offsets and group
// metadata.
const OffsetsTopic = "__consumer_offsets"

// Logs is how the coordinator reaches the partitions of OffsetsTopic. The
// broker implements it over its partition logs.
type Logs interface {
	// EnsureOffsetsTopic creates OffsetsTopic with the given number of
	// partitions when it does not exist and returns its partition count.
	EnsureOffsetsTopic(ctx context.Context, partitions int32) (int32, error)
	// OffsetsPartitions returns the partition count of OffsetsTopic, or 0
	// when it does not exist.
	OffsetsPartitions() int32
	// Append writes one record batch to a partition of OffsetsTopic and
	// returns once it is in the log and readable.
	Append(partition int32, batch []byte) error
	// Scan calls fn with each batch of a partition of OffsetsTopic, in
	// offset order, from the log start to the high watermark.
	Scan(partition int32, fn func(batch []byte) error) error
	// Leadership reports whether this broker leads a partition of
	// OffsetsTopic, and at which leader epoch: the coordinator serves the
	// groups of the partitions it leads (ownership.go).
	Leadership(partition int32) (leader bool, epoch int32)
}

// Config holds the broker configs the coordinator follows, with Kafka's
// names and defaults.
type Config struct {
	OffsetsTopicPartitions int32         // offsets.topic.num.partitions (50)
	MinSessionTimeout      time.Duration // group.min.session.timeout.ms (6 s)
	MaxSessionTimeout      time.Duration // group.max.session.timeout.ms (30 min)
	InitialRebalanceDelay  time.Duration // group.initial.rebalance.delay.ms (3 s)
	MaxGroupSize           int           // group.max.size (unbounded)
	OffsetsRetention       time.Duration // offsets.retention.minutes (7 days)
	RetentionCheckInterval time.Duration // offsets.retention.check.interval.ms (10 min)
	MaxMetadataBytes       int           // offset.metadata.max.bytes (4096)
	// ConsumerSessionTimeout and ConsumerHeartbeatInterval are the KIP-848
	// group.consumer.session.timeout.ms (45 s) and
	// group.consumer.heartbeat.interval.ms (5 s).
	ConsumerSessionTimeout    time.Duration
	ConsumerHeartbeatInterval time.Duration
}

// DefaultConfig is Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		OffsetsTopicPartitions:    50,
		MinSessionTimeout:         6 * time.Second,
		MaxSessionTimeout:         30 * time.Minute,
		InitialRebalanceDelay:     3 * time.Second,
		OffsetsRetention:          7 * 24 * time.Hour,
		RetentionCheckInterval:    10 * time.Minute,
		MaxMetadataBytes:          4096,
		ConsumerSessionTimeout:    45 * time.Second,
		ConsumerHeartbeatInterval: 5 * time.Second,
	}
}

// groupKind says which protocol a group speaks.
type groupKind int8

const (
	kindNone     groupKind = iota // offsets only, no members ever
	kindClassic                   // JoinGroup/SyncGroup
	kindConsumer                  // KIP-848 ConsumerGroupHeartbeat
)

// group is one group: its protocol state and committed offsets. Every
// field is protected by mu; the Coordinator's timer for the group calls
// back under mu as well.
type group struct {
	id        string
	partition int32 // of OffsetsTopic

	mu      sync.Mutex
	kind    groupKind
	c       classicState
	k       consumerState
	offsets map[string]map[int32]offsetCommit
	// txnOffsets holds the offsets of open transactions, by producer id
	// (txn_offsets.go).
	txnOffsets map[int64]pendingOffsets
	// dirty is set when the classic group's metadata changed in a way that
	// must be stored (a new generation, an assignment, emptiness).
	dirty   bool
	timer   *time.Timer
	timerAt time.Time
	deleted bool // removed from the Coordinator; requests must look it up again
}

// Coordinator is the group coordinator of one broker.
type Coordinator struct {
	cfg    Config
	logs   Logs
	topics Topics
	log    zerolog.Logger
	now    func() time.Time
	codecs *protocol.Codecs

	// mu protects groups, owned, loaded and closed.
	mu     sync.Mutex
	groups map[string]*group
	// owned maps each partition of OffsetsTopic whose groups are in
	// memory to the leader epoch it was loaded at (ownership.go).
	owned map[int32]int32
	// pending maps each partition of OffsetsTopic to the producers with
	// transactional offsets pending there, and those to their groups.
	pending map[int32]map[int64]map[string]struct{}
	loaded  bool
	closed  bool
	// loadMu serializes loading and releasing partitions; taken before mu.
	loadMu sync.Mutex

	stopRetention chan struct{}
	wg            sync.WaitGroup
}

// New returns a coordinator; Start loads its state.
func New(cfg Config, logs Logs, topics Topics, codecs *protocol.Codecs, log zerolog.Logger, now func() time.Time) *Coordinator {
	if now == nil {
		now = time.Now
	}
	if cfg.OffsetsTopicPartitions <= 0 {
		cfg.OffsetsTopicPartitions = 50
	}
	return &Coordinator{
		cfg:           cfg,
		logs:          logs,
		topics:        topics,
		log:           log.With().Str("component", "coordinator").Logger(),
		now:           now,
		codecs:        codecs,
		groups:        make(map[string]*group),
		owned:         make(map[int32]int32),
		pending:       make(map[int32]map[int64]map[string]struct{}),
		stopRetention: make(chan struct{}),
	}
}

// Start loads groups and offsets from OffsetsTopic, if it exists, and
// starts the offset expiry loop.
func (c *Coordinator) Start() error {
	n := c.logs.OffsetsPartitions()
	for p := range n {
		if leader, _ := c.logs.Leadership(p); leader {
			if err := c.ensureOwned(p, n); err != nil {
				return fmt.Errorf("coordinator: load %s-%d: %w", OffsetsTopic, p, err)
			}
		}
	}
	c.mu.Lock()
	c.loaded = true
	c.mu.Unlock()
	c.wg.Add(1)
	go c.runEvery("offsets-expiry", c.cfg.RetentionCheckInterval, c.ExpireOffsets)
	return nil
}

// Close stops the timers. Requests waiting in JoinGroup or SyncGroup
// return when their connections close.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	groups := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	close(c.stopRetention)
	c.wg.Wait()
	for _, g := range groups {
		locked(&g.mu, func() {
			if g.timer != nil {
				g.timer.Stop()
			}
		})
	}
}

func (c *Coordinator) limits() limits {
	return limits{
		minSession:            c.cfg.MinSessionTimeout,
		maxSession:            c.cfg.MaxSessionTimeout,
		initialRebalanceDelay: c.cfg.InitialRebalanceDelay,
		maxSize:               c.cfg.MaxGroupSize,
	}
}

// newMemberID is a member id as Kafka makes them: client id, a dash, a
// random UUID-like suffix.
func newMemberID(clientID string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:6]) + "-" +
		hex.EncodeToString(b[6:8]) + "-" + hex.EncodeToString(b[8:10]) + "-" + hex.EncodeToString(b[10:])
}

// lookup returns the group, creating it when create is set. It ensures
// OffsetsTopic exists first, since the group must be able to store.
func (c *Coordinator) lookup(ctx context.Context, id string, create bool) (*group, *kerr.Error) {
	if id == "" {
		return nil, kerr.InvalidGroupID
	}
	n := c.logs.OffsetsPartitions()
	if n == 0 && create {
		var err error
		if n, err = c.logs.EnsureOffsetsTopic(ctx, c.cfg.OffsetsTopicPartitions); err != nil {
			c.log.Error().Err(err).Msg("cannot create the offsets topic")
			return nil, kerr.CoordinatorNotAvailable
		}
	}
	c.mu.Lock()
	ready := !c.closed && c.loaded
	c.mu.Unlock()
	if !ready {
		return nil, kerr.CoordinatorLoadInProgress
	}
	if n > 0 {
		if err := c.ensureOwned(partitionFor(id, n), n); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, kerr.CoordinatorLoadInProgress
	}
	g := c.groups[id]
	if g == nil && create {
		if n == 0 {
			return nil, kerr.CoordinatorNotAvailable
		}
		now := c.now()
		g = &group{id: id, partition: partitionFor(id, n), c: newClassicState(now), k: newConsumerState(), offsets: make(map[string]map[int32]offsetCommit)}
		c.groups[id] = g
	}
	if g == nil {
		return nil, kerr.GroupIDNotFound
	}
	return g, nil
}

// withGroup runs fn on the group under its lock, retrying once if the
// group was deleted meanwhile, then stores dirty metadata and re-arms the
// group's timer.
func (c *Coordinator) withGroup(ctx context.Context, id string, create bool, fn func(g *group, now time.Time)) *kerr.Error {
	for range 2 {
		g, err := c.lookup(ctx, id, create)
		if err != nil {
			return err
		}
		var deleted bool
		locked(&g.mu, func() {
			if deleted = g.deleted; deleted {
				return
			}
			now := c.now()
			fn(g, now)
			c.afterLocked(g, now)
		})
		if !deleted {
			return nil
		}
	}
	return kerr.CoordinatorNotAvailable
}

// afterLocked persists what changed of the group (a dirty classic group's
// metadata, a consumer group's records) and re-arms its timer.
func (c *Coordinator) afterLocked(g *group, now time.Time) {
	if g.dirty {
		g.dirty = false
		key, val := groupRecord(g.id, g.metadataValue())
		if _, err := c.appendRecords(g.partition, now, []kmsg.Record{{Key: key, Value: val}}); err != nil {
			c.log.Error().Err(err).Str("group", g.id).Msg("cannot store group metadata")
		}
	}
	if err := c.persistConsumerLocked(g, now); err != nil {
		c.log.Error().Err(err).Str("group", g.id).Msg("cannot store consumer group state")
	}
	c.armLocked(g, now)
}

// armLocked sets the group's timer for its next deadline.
func (c *Coordinator) armLocked(g *group, now time.Time) {
	next := g.classicDeadline()
	if k := g.consumerDeadline(); !k.IsZero() && (next.IsZero() || k.Before(next)) {
		next = k
	}
	if next.IsZero() {
		if g.timer != nil {
			g.timer.Stop()
		}
		g.timerAt = time.Time{}
		return
	}
	if !g.timerAt.IsZero() && g.timerAt.Equal(next) {
		return
	}
	g.timerAt = next
	d := max(next.Sub(now), 0)
	if g.timer == nil {
		g.timer = time.AfterFunc(d, func() { safe.Run(c.log, "group timer", func() { c.fire(g) }) })
		return
	}
	g.timer.Reset(d)
}

// fire is a group's timer callback.
func (c *Coordinator) fire(g *group) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.deleted {
		return
	}
	now := c.now()
	g.timerAt = time.Time{}
	g.tick(now, c.limits())
	g.consumerTick(now, c)
	c.afterLocked(g, now)
}

// appendRecords writes records to a partition of OffsetsTopic as one batch
// and returns the batch's size.
func (c *Coordinator) appendRecords(partition int32, now time.Time, records []kmsg.Record) (int, error) {
	batch, err := c.codecs.BuildBatch(protocol.CodecNone, now.UnixMilli(), records)
	if err != nil {
		return 0, fmt.Errorf("coordinator: build batch: %w", err)
	}
	if err := c.logs.Append(partition, batch); err != nil {
		return 0, fmt.Errorf("coordinator: append to %s-%d: %w", OffsetsTopic, partition, err)
	}
	return len(batch), nil
}

// loadPartition replays one partition of OffsetsTopic into groups, which
// it returns; nothing else reads or writes them until they are published.
func (c *Coordinator) loadPartition(p, partitions int32) (map[string]*group, error) {
	now := c.now()
	l := &partitionLoad{
		groups:    make(map[string]*group),
		metas:     make(map[string]*kmsg.GroupMetadataValue),
		metaSeq:   make(map[string]int),
		consumers: make(map[string]*consumerLoad),
		txnGroups: make(map[int64]map[string]struct{}),
	}
	start := time.Now()
	records := 0
	err := c.logs.Scan(p, func(batch []byte) error {
		h, err := protocol.ParseBatchHeader(batch)
		if err != nil {
			return fmt.Errorf("decode batch: %w", err)
		}
		if h.Attributes&protocol.AttrControl != 0 {
			typ, err := protocol.ParseControlBatch(batch)
			if err != nil {
				c.log.Warn().Err(err).Int32("partition", p).Msg("skipping a control batch that is not a transaction marker")
				return nil
			}
			l.completeTxn(h.ProducerID, typ == protocol.ControlCommit, now)
			return nil
		}
		txn := int64(-1) // the producer whose open transaction holds these records
		if h.Attributes&protocol.AttrTransactional != 0 {
			txn = h.ProducerID
		}
		recs, err := c.codecs.Records(batch)
		if err != nil {
			return fmt.Errorf("decode batch: %w", err)
		}
		for _, r := range recs {
			records++
			d, err := decodeRecord(r.Key, r.Value)
			if errors.Is(err, errUnknownRecord) {
				c.log.Warn().Err(err).Int32("partition", p).Msg("skipping record of an unknown kind")
				continue
			}
			if err != nil {
				c.log.Warn().Err(err).Int32("partition", p).Msg("skipping undecodable record")
				continue
			}
			if txn >= 0 {
				l.applyTxn(d, txn, partitions, now)
				continue
			}
			l.apply(d, partitions, now, records)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coordinator: load %s-%d: %w", OffsetsTopic, p, err)
	}
	groups := l.groups
	for id, g := range groups {
		meta, cl := l.metas[id], l.consumers[id]
		// A group that changed protocol has records of both kinds: the
		// kind written last is the group's.
		switch {
		case cl != nil && cl.exists() && (meta == nil || cl.seq > l.metaSeq[id]):
			g.restoreConsumer(cl, now, c.cfg.ConsumerSessionTimeout, c.topics, func(member string, err error) {
				c.log.Warn().Err(err).Str("group", id).Str("member", member).Msg("ignoring a stored subscription regex that does not compile")
			})
		case meta != nil:
			g.restoreClassic(meta, now)
			if cl != nil {
				g.k.stored = cl.raw // dead records, tombstoned on the group's next change
			}
		case cl != nil:
			g.k.stored = cl.raw
		}
		if len(g.offsets) == 0 && len(g.txnOffsets) == 0 && g.kind == kindNone {
			delete(groups, id)
		}
	}
	c.log.Info().Int32("partition", p).Int("groups", len(groups)).Int("records", records).
		Dur("took", time.Since(start)).Msg("loaded groups and offsets")
	return groups, nil
}

// partitionLoad is the state of one partition's replay.
type partitionLoad struct {
	groups map[string]*group
	// metas holds the last classic group metadata value of each group
	// (nil after a tombstone), metaSeq its replay position.
	metas     map[string]*kmsg.GroupMetadataValue
	metaSeq   map[string]int
	consumers map[string]*consumerLoad // KIP-848 records by group
	// txnGroups maps each producer with offsets pending (its marker not
	// yet replayed) to the groups holding them.
	txnGroups map[int64]map[string]struct{}
}

// group returns the replayed group id, creating it.
func (l *partitionLoad) group(id string, partitions int32, now time.Time) *group {
	g := l.groups[id]
	if g == nil {
		g = &group{id: id, partition: partitionFor(id, partitions), c: newClassicState(now), k: newConsumerState(), offsets: make(map[string]map[int32]offsetCommit)}
		l.groups[id] = g
	}
	return g
}

// applyTxn applies one replayed record of producer's open transaction:
// an offset commit becomes pending; nothing else is written in
// transactions.
func (l *partitionLoad) applyTxn(d decodedRecord, producer int64, partitions int32, now time.Time) {
	if d.kind != offsetKeyV0 && d.kind != offsetKeyV1 || d.offset == nil {
		return
	}
	g := l.group(d.group, partitions, now)
	if g.txnOffsets == nil {
		g.txnOffsets = make(map[int64]pendingOffsets)
	}
	pend := g.txnOffsets[producer]
	if pend == nil {
		pend = make(pendingOffsets)
		g.txnOffsets[producer] = pend
	}
	pend.set(d.topic, d.partition, *d.offset)
	if l.txnGroups[producer] == nil {
		l.txnGroups[producer] = make(map[string]struct{})
	}
	l.txnGroups[producer][d.group] = struct{}{}
}

// completeTxn applies a replayed marker of producer's transaction.
func (l *partitionLoad) completeTxn(producer int64, commit bool, now time.Time) {
	for id := range l.txnGroups[producer] {
		l.groups[id].completeTxnLocked(producer, commit, now)
	}
	delete(l.txnGroups, producer)
}

// apply applies one replayed record, the seq-th of the partition.
func (l *partitionLoad) apply(d decodedRecord, partitions int32, now time.Time, seq int) {
	g := l.group(d.group, partitions, now)
	switch {
	case isConsumerKey(d.kind):
		cl := l.consumers[d.group]
		if cl == nil {
			cl = &consumerLoad{}
			l.consumers[d.group] = cl
		}
		cl.apply(d.consumerKey, d.consumer, d.consumerRaw, seq)
		return
	case d.kind == groupKeyV2:
		if d.groupMeta == nil {
			l.metas[d.group] = nil
			clear(g.offsets) // DeleteGroups writes the offsets' tombstones too; this is belt and braces
			return
		}
		l.metas[d.group] = d.groupMeta
		l.metaSeq[d.group] = seq
		return
	}
	if d.offset == nil {
		if ps := g.offsets[d.topic]; ps != nil {
			delete(ps, d.partition)
			if len(ps) == 0 {
				delete(g.offsets, d.topic)
			}
		}
		return
	}
	ps := g.offsets[d.topic]
	if ps == nil {
		ps = make(map[int32]offsetCommit)
		g.offsets[d.topic] = ps
	}
	ps[d.partition] = *d.offset
}

// Join handles a JoinGroup and waits for its answer (or ctx).
func (c *Coordinator) Join(ctx context.Context, groupID string, a JoinArgs) JoinResult {
	var wait <-chan JoinResult
	if err := c.withGroup(ctx, groupID, true, func(g *group, now time.Time) {
		wait = g.join(a, now, c.limits())
	}); err != nil {
		return JoinResult{Err: err, MemberID: a.MemberID, Generation: -1}
	}
	select {
	case r := <-wait:
		return r
	case <-ctx.Done():
		return JoinResult{Err: kerr.RebalanceInProgress, MemberID: a.MemberID, Generation: -1}
	}
}

// Sync handles a SyncGroup and waits for its answer (or ctx).
func (c *Coordinator) Sync(ctx context.Context, groupID string, a SyncArgs) SyncResult {
	var wait <-chan SyncResult
	if err := c.withGroup(ctx, groupID, false, func(g *group, now time.Time) {
		wait = g.sync(a, now, c.limits())
	}); err != nil {
		if err == kerr.GroupIDNotFound {
			err = kerr.UnknownMemberID
		}
		return SyncResult{Err: err}
	}
	select {
	case r := <-wait:
		return r
	case <-ctx.Done():
		return SyncResult{Err: kerr.RebalanceInProgress}
	}
}

// Heartbeat handles a Heartbeat.
func (c *Coordinator) Heartbeat(ctx context.Context, groupID, memberID string, instanceID *string, generation int32) *kerr.Error {
	var res *kerr.Error
	if err := c.withGroup(ctx, groupID, false, func(g *group, now time.Time) {
		res = g.heartbeat(memberID, instanceID, generation, now)
	}); err != nil {
		if err == kerr.GroupIDNotFound {
			return kerr.UnknownMemberID
		}
		return err
	}
	return res
}

// LeaveMember identifies one member leaving.
type LeaveMember struct {
	MemberID   string
	InstanceID *string
}

// Leave handles a LeaveGroup; it returns each member's error.
func (c *Coordinator) Leave(ctx context.Context, groupID string, members []LeaveMember) ([]*kerr.Error, *kerr.Error) {
	out := make([]*kerr.Error, len(members))
	if err := c.withGroup(ctx, groupID, false, func(g *group, now time.Time) {
		for i, m := range members {
			out[i] = g.leave(m.MemberID, m.InstanceID, now, c.limits())
		}
	}); err != nil {
		if err == kerr.GroupIDNotFound {
			return nil, kerr.UnknownMemberID
		}
		return nil, err
	}
	return out, nil
}

// ConsumerHeartbeat handles a KIP-848 ConsumerGroupHeartbeat.
func (c *Coordinator) ConsumerHeartbeat(ctx context.Context, groupID string, a ConsumerHeartbeatArgs) ConsumerHeartbeatResult {
	if err, msg := validateConsumerHeartbeat(a); err != nil {
		return ConsumerHeartbeatResult{Err: err, Message: msg, MemberID: a.MemberID, Epoch: -1}
	}
	var res ConsumerHeartbeatResult
	if err := c.withGroup(ctx, groupID, true, func(g *group, now time.Time) {
		res = g.consumerHeartbeat(a, now, c)
		g.k.touchConsumerMember(a.MemberID)
		g.k.touchConsumerMember(res.MemberID)
		// The answer goes out only once the state it reflects is in the log.
		if err := c.persistConsumerLocked(g, now); err != nil {
			c.log.Error().Err(err).Str("group", g.id).Msg("cannot store consumer group state")
			res = ConsumerHeartbeatResult{Err: kerr.CoordinatorNotAvailable, MemberID: a.MemberID, Epoch: -1}
		}
	}); err != nil {
		return ConsumerHeartbeatResult{Err: err, MemberID: a.MemberID, Epoch: -1}
	}
	return res
}

// DescribeConsumerGroup describes a KIP-848 group (GROUP_ID_NOT_FOUND for
// unknown groups and classic ones).
func (c *Coordinator) DescribeConsumerGroup(ctx context.Context, groupID string) ConsumerGroupDescription {
	var d ConsumerGroupDescription
	err := c.withGroup(ctx, groupID, false, func(g *group, _ time.Time) {
		if g.kind != kindConsumer {
			d = ConsumerGroupDescription{Err: kerr.GroupIDNotFound, State: "Dead"}
			return
		}
		d = g.describeConsumer(c.topics)
	})
	if err != nil {
		return ConsumerGroupDescription{Err: err, State: "Dead"}
	}
	return d
}

// CommitPartition is one offset to commit.
type CommitPartition struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    *string
}

// CommitArgs identifies who commits.
type CommitArgs struct {
	Version    int16 // OffsetCommit version: v9+ answers GROUP_ID_NOT_FOUND for unknown groups
	MemberID   string
	InstanceID *string
	Generation int32 // -1 (or less) for a commit from outside the group
}

// Commit handles an OffsetCommit: it checks the committer, writes the
// offsets to OffsetsTopic and only then makes them visible. It returns the
// error of each partition (same order as parts).
func (c *Coordinator) Commit(ctx context.Context, groupID string, a CommitArgs, parts []CommitPartition) []*kerr.Error {
	out := make([]*kerr.Error, len(parts))
	fill := func(err *kerr.Error) []*kerr.Error {
		for i := range out {
			out[i] = err
		}
		return out
	}
	var groupErr *kerr.Error
	// Only a commit from outside group management (generation < 0)
	// creates a group, a "simple" one. Otherwise an unknown group is
	// GROUP_ID_NOT_FOUND from v9 on and ILLEGAL_GENERATION before, as in
	// Kafka.
	if err := c.withGroup(ctx, groupID, a.Generation < 0, func(g *group, now time.Time) {
		if groupErr = g.checkCommitter(a, now); groupErr != nil {
			return
		}
		commits, records, ok := c.commitRecords(groupID, parts, now, out)
		if len(records) == 0 {
			return
		}
		if _, err := c.appendRecords(g.partition, now, records); err != nil {
			c.log.Error().Err(err).Str("group", groupID).Msg("cannot store offsets")
			for _, i := range ok {
				out[i] = kerr.CoordinatorNotAvailable
			}
			return
		}
		if g.kind == kindNone && len(g.c.members) == 0 {
			g.c.stateSince = now
		}
		for _, i := range ok {
			ps := g.offsets[parts[i].Topic]
			if ps == nil {
				ps = make(map[int32]offsetCommit)
				g.offsets[parts[i].Topic] = ps
			}
			ps[parts[i].Partition] = commits[i]
		}
	}); err != nil {
		if err == kerr.GroupIDNotFound && a.Version < 9 {
			err = kerr.IllegalGeneration
		}
		return fill(err)
	}
	if groupErr != nil {
		return fill(groupErr)
	}
	return out
}

// commitRecords turns the partitions of a commit into offsets and their
// records: commits[i] is parts[i]'s offset, and ok lists the partitions
// taken, in order, one record each. A partition whose metadata is larger
// than offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE in out.
func (c *Coordinator) commitRecords(groupID string, parts []CommitPartition, now time.Time, out []*kerr.Error) (commits []offsetCommit, records []kmsg.Record, ok []int) {
	commits = make([]offsetCommit, len(parts))
	for i, p := range parts {
		meta := ""
		if p.Metadata != nil {
			meta = *p.Metadata
		}
		if len(meta) > c.cfg.MaxMetadataBytes {
			out[i] = kerr.OffsetMetadataTooLarge
			continue
		}
		commits[i] = offsetCommit{offset: p.Offset, leaderEpoch: p.LeaderEpoch, metadata: meta, commitMs: now.UnixMilli()}
		key, val := offsetRecord(groupID, p.Topic, p.Partition, &commits[i])
		records = append(records, kmsg.Record{Key: key, Value: val})
		ok = append(ok, i)
	}
	return commits, records, ok
}

// checkCommitter decides whether an OffsetCommit may proceed, as Kafka's
// classic coordinator does; it refreshes the member's session.
func (g *group) checkCommitter(a CommitArgs, now time.Time) *kerr.Error {
	if g.kind == kindConsumer {
		return g.checkConsumerCommitter(a)
	}
	cs := &g.c
	if cs.state == stateDead {
		return kerr.CoordinatorNotAvailable
	}
	if a.Generation < 0 && len(cs.members) == 0 {
		return nil // a commit from outside the group (admin tools, assign consumers)
	}
	if a.Generation < 0 && a.MemberID == "" && a.InstanceID == nil {
		return kerr.UnknownMemberID // Kafka: a group with members takes commits from members only
	}
	m, err := g.validateMember(a.MemberID, a.InstanceID)
	if err != nil {
		return err
	}
	if a.Generation != cs.generation {
		return kerr.IllegalGeneration
	}
	if cs.state == stateCompletingRebalance {
		return kerr.RebalanceInProgress
	}
	if m.joinWait == nil && m.syncWait == nil {
		m.sessionDeadline = now.Add(m.sessionTimeout)
	}
	return nil
}

// FetchedOffset is one committed offset (Offset -1 when none).
type FetchedOffset struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	// Unstable is set, with Offset -1, when require_stable was asked and
	// an open transaction has an offset pending for the partition
	// (UNSTABLE_OFFSET_COMMIT).
	Unstable bool
}

// FetchTopic asks for some partitions of a topic.
type FetchTopic struct {
	Topic      string
	Partitions []int32
}

// FetchOffsets returns a group's committed offsets: of the partitions
// asked for, or all when topics is nil. An unknown group has none.
func (c *Coordinator) FetchOffsets(ctx context.Context, groupID string, topics []FetchTopic) ([]FetchedOffset, *kerr.Error) {
	return c.FetchOffsetsStable(ctx, groupID, topics, false)
}

// FetchOffsetsStable is FetchOffsets with OffsetFetch's require_stable:
// when it is set, a partition with an offset pending in an open
// transaction is answered Unstable.
func (c *Coordinator) FetchOffsetsStable(ctx context.Context, groupID string, topics []FetchTopic, requireStable bool) ([]FetchedOffset, *kerr.Error) {
	var out []FetchedOffset
	err := c.withGroup(ctx, groupID, false, func(g *group, _ time.Time) {
		fetched := func(t string, p int32) FetchedOffset {
			f := FetchedOffset{Topic: t, Partition: p, Offset: -1, LeaderEpoch: -1}
			if requireStable && g.unstable(t, p) {
				f.Unstable = true
				return f
			}
			if o, ok := g.offsets[t][p]; ok {
				f.Offset, f.LeaderEpoch, f.Metadata = o.offset, o.leaderEpoch, o.metadata
			}
			return f
		}
		if topics == nil {
			all := make(map[string]map[int32]bool)
			for t, ps := range g.offsets {
				all[t] = make(map[int32]bool, len(ps))
				for p := range ps {
					all[t][p] = true
				}
			}
			if requireStable {
				for _, pend := range g.txnOffsets {
					for t, ps := range pend {
						if all[t] == nil {
							all[t] = make(map[int32]bool)
						}
						for p := range ps {
							all[t][p] = true
						}
					}
				}
			}
			for _, t := range sortedKeys(all) {
				for _, p := range sortedKeys(all[t]) {
					out = append(out, fetched(t, p))
				}
			}
			return
		}
		for _, t := range topics {
			for _, p := range t.Partitions {
				out = append(out, fetched(t.Topic, p))
			}
		}
	})
	switch err {
	case nil:
		return out, nil
	case kerr.GroupIDNotFound:
		for _, t := range topics {
			for _, p := range t.Partitions {
				out = append(out, FetchedOffset{Topic: t.Topic, Partition: p, Offset: -1, LeaderEpoch: -1})
			}
		}
		return out, nil
	default:
		return nil, err
	}
}

// GroupListing is one ListGroups entry.
type GroupListing struct {
	Group        string
	ProtocolType string
	State        string
	Type         string // "classic" or "consumer"
}

// ListGroups lists groups, filtered by state and type names when given
// (case-insensitively, as Kafka does).
func (c *Coordinator) ListGroups(states, types []string) []GroupListing {
	c.mu.Lock()
	groups := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	var out []GroupListing
	for _, g := range groups {
		var l GroupListing
		var deleted bool
		locked(&g.mu, func() { l, deleted = g.listing(), g.deleted })
		if deleted {
			continue
		}
		if len(states) > 0 && !containsFold(states, l.State) {
			continue
		}
		if len(types) > 0 && !containsFold(types, l.Type) {
			continue
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b GroupListing) int { return strings.Compare(a.Group, b.Group) })
	return out
}

func (g *group) listing() GroupListing {
	if g.kind == kindConsumer {
		return GroupListing{Group: g.id, ProtocolType: "consumer", State: g.consumerStateName(), Type: "consumer"}
	}
	return GroupListing{Group: g.id, ProtocolType: g.c.protocolType, State: g.c.state.String(), Type: "classic"}
}

// GroupMember is a member in DescribeGroups.
type GroupMember struct {
	MemberID   string
	InstanceID *string
	ClientID   string
	ClientHost string
	Metadata   []byte
	Assignment []byte
}

// GroupDescription is a DescribeGroups entry.
type GroupDescription struct {
	Err          *kerr.Error
	State        string
	ProtocolType string
	Protocol     string
	Members      []GroupMember
}

// DescribeGroup describes a classic group. An unknown group is "Dead"
// with no members (and GROUP_ID_NOT_FOUND, which the broker reports from
// DescribeGroups v6 on).
func (c *Coordinator) DescribeGroup(ctx context.Context, groupID string) GroupDescription {
	var d GroupDescription
	err := c.withGroup(ctx, groupID, false, func(g *group, _ time.Time) {
		if g.kind == kindConsumer {
			d = GroupDescription{Err: kerr.GroupIDNotFound, State: "Dead"}
			return
		}
		cs := &g.c
		d.State, d.ProtocolType, d.Protocol = cs.state.String(), cs.protocolType, cs.protocol
		for _, id := range g.memberOrder() {
			m := cs.members[id]
			d.Members = append(d.Members, GroupMember{
				MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
				Metadata: m.metadataFor(cs.protocol), Assignment: m.assignment,
			})
		}
	})
	if err != nil {
		return GroupDescription{Err: err, State: "Dead"}
	}
	return d
}

// DeleteGroup deletes an empty group and its offsets.
func (c *Coordinator) DeleteGroup(ctx context.Context, groupID string) *kerr.Error {
	var res *kerr.Error
	err := c.withGroup(ctx, groupID, false, func(g *group, now time.Time) {
		if len(g.c.members) > 0 || g.consumerMembers() > 0 {
			res = kerr.NonEmptyGroup
			return
		}
		var records []kmsg.Record
		for _, t := range sortedKeys(g.offsets) {
			for _, p := range sortedKeys(g.offsets[t]) {
				key, _ := offsetRecord(g.id, t, p, nil)
				records = append(records, kmsg.Record{Key: key})
			}
		}
		key, _ := groupRecord(g.id, nil)
		records = append(records, kmsg.Record{Key: key})
		records = append(records, g.consumerTombstones()...)
		if _, err := c.appendChunked(g.partition, now, records); err != nil {
			c.log.Error().Err(err).Str("group", g.id).Msg("cannot delete group")
			res = kerr.CoordinatorNotAvailable
			return
		}
		g.deleted = true
		g.c.state = stateDead
		if g.timer != nil {
			g.timer.Stop()
		}
		locked(&c.mu, func() {
			if c.groups[g.id] == g {
				delete(c.groups, g.id)
			}
		})
	})
	if err != nil {
		return err
	}
	return res
}

// DeleteOffsets handles OffsetDelete: it returns the group error, or each
// partition's error (same order as topics' partitions, flattened).
func (c *Coordinator) DeleteOffsets(ctx context.Context, groupID string, topics []FetchTopic) ([]*kerr.Error, *kerr.Error) {
	var out []*kerr.Error
	var groupErr *kerr.Error
	err := c.withGroup(ctx, groupID, false, func(g *group, now time.Time) {
		if g.kind == kindClassic && len(g.c.members) > 0 && g.c.protocolType != "consumer" {
			groupErr = kerr.NonEmptyGroup
			return
		}
		subscribed := g.subscribedTopics()
		for t := range g.consumerSubscribedTopics() {
			subscribed[t] = true
		}
		var records []kmsg.Record
		var doomed []FetchTopic
		for _, t := range topics {
			var ps []int32
			for _, p := range t.Partitions {
				if subscribed[t.Topic] {
					out = append(out, kerr.GroupSubscribedToTopic)
					continue
				}
				out = append(out, nil)
				if _, ok := g.offsets[t.Topic][p]; ok {
					key, _ := offsetRecord(g.id, t.Topic, p, nil)
					records = append(records, kmsg.Record{Key: key})
					ps = append(ps, p)
				}
			}
			doomed = append(doomed, FetchTopic{Topic: t.Topic, Partitions: ps})
		}
		if len(records) == 0 {
			return
		}
		if _, err := c.appendRecords(g.partition, now, records); err != nil {
			c.log.Error().Err(err).Str("group", g.id).Msg("cannot delete offsets")
			groupErr = kerr.CoordinatorNotAvailable
			return
		}
		for _, t := range doomed {
			for _, p := range t.Partitions {
				delete(g.offsets[t.Topic], p)
			}
			if len(g.offsets[t.Topic]) == 0 {
				delete(g.offsets, t.Topic)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if groupErr != nil {
		return nil, groupErr
	}
	return out, nil
}

// runEvery calls fn every interval until Close (never, for an interval
// <= 0). It is the body of one of the coordinator's background
// goroutines, counted by c.wg.
// A panic in fn is logged and ends the loop (safe.Run).
func (c *Coordinator) runEvery(name string, interval time.Duration, fn func()) {
	defer c.wg.Done()
	if interval <= 0 {
		return
	}
	safe.Run(c.log, "coordinator "+name, func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-c.stopRetention:
				return
			case <-t.C:
				fn()
			}
		}
	})
}

// ExpireOffsets removes the offsets of groups that have been empty for
// offsets.retention.minutes (for groups that never had members: offsets
// whose commit is that old), as Kafka does since 2.1 (KIP-211).
func (c *Coordinator) ExpireOffsets() {
	c.mu.Lock()
	groups := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for _, g := range groups {
		locked(&g.mu, func() {
			if !g.deleted {
				c.expireLocked(g, c.now())
			}
		})
	}
}

func (c *Coordinator) expireLocked(g *group, now time.Time) {
	if len(g.c.members) > 0 || g.consumerMembers() > 0 {
		return
	}
	cutoff := now.Add(-c.cfg.OffsetsRetention).UnixMilli()
	emptySince := g.c.stateSince.UnixMilli()
	var records []kmsg.Record
	var doomed []FetchTopic
	for _, t := range sortedKeys(g.offsets) {
		var ps []int32
		for _, p := range sortedKeys(g.offsets[t]) {
			o := g.offsets[t][p]
			since := emptySince
			if g.kind == kindNone {
				since = o.commitMs
			}
			if since <= cutoff {
				key, _ := offsetRecord(g.id, t, p, nil)
				records = append(records, kmsg.Record{Key: key})
				ps = append(ps, p)
			}
		}
		if len(ps) > 0 {
			doomed = append(doomed, FetchTopic{Topic: t, Partitions: ps})
		}
	}
	if len(records) == 0 {
		return
	}
	if _, err := c.appendRecords(g.partition, now, records); err != nil {
		c.log.Error().Err(err).Str("group", g.id).Msg("cannot expire offsets")
		return
	}
	for _, t := range doomed {
		for _, p := range t.Partitions {
			delete(g.offsets[t.Topic], p)
		}
		if len(g.offsets[t.Topic]) == 0 {
			delete(g.offsets, t.Topic)
		}
	}
	c.log.Info().Str("group", g.id).Int("offsets", len(records)).Msg("expired committed offsets")
}

func sortedKeys[K string | int32, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// CommittedOffset is one committed offset of a group, for the lag
// metrics.
type CommittedOffset struct {
	Group     string
	Topic     string
	Partition int32
	Offset    int64
}

// Committed returns the committed offsets of the groups in memory (those
// of the OffsetsTopic partitions this broker leads), at most limit of
// them, and whether some were left out: the first limit in (group, topic,
// partition) order, so that the same ones are left out every time.
// Offsets pending in open transactions are not included. Each group's
// lock is held only while its offsets are copied.
func (c *Coordinator) Committed(limit int) ([]CommittedOffset, bool) {
	c.mu.Lock()
	groups := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	slices.SortFunc(groups, func(a, b *group) int { return strings.Compare(a.id, b.id) })
	var out []CommittedOffset
	truncated := false
	for _, g := range groups {
		var mine []CommittedOffset
		locked(&g.mu, func() {
			if g.deleted {
				return
			}
			for t, ps := range g.offsets {
				for p, o := range ps {
					mine = append(mine, CommittedOffset{Group: g.id, Topic: t, Partition: p, Offset: o.offset})
				}
			}
		})
		slices.SortFunc(mine, func(a, b CommittedOffset) int {
			if d := strings.Compare(a.Topic, b.Topic); d != 0 {
				return d
			}
			return int(a.Partition) - int(b.Partition)
		})
		if room := limit - len(out); len(mine) > room {
			out, truncated = append(out, mine[:room]...), true
			break
		}
		out = append(out, mine...)
	}
	return out, truncated
}
