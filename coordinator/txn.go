package coordinator

// The transaction coordinator.
//
// A transactional id lives in partition abs(javaHashCode(id)) % partitions
// of TxnStateTopic, and the broker that leads that partition coordinates
// it, as in Kafka. Its state follows Kafka's machine:
//
//	Empty ──AddPartitions──▶ Ongoing ──EndTxn──▶ PrepareCommit ──markers──▶ CompleteCommit
//	  ▲                        │                 PrepareAbort  ──markers──▶ CompleteAbort
//	  └──InitProducerId────────┴─(fence or timeout: epoch bump, abort)
//
// Every change is written to TxnStateTopic (and replicated to its ISR)
// before the request that caused it is answered. EndTxn is answered once
// Prepare* is stored; the markers then go to every partition's leader
// (WriteTxnMarkers, through Markers), retried until each partition has
// its marker, and only then is Complete* stored. Requests arriving in
// between get CONCURRENT_TRANSACTIONS, which clients retry.
//
// # Ownership and recovery
//
// The coordinator serves the transactions of the partitions of
// TxnStateTopic this broker leads. A partition is replayed when a request
// needs it or when the periodic scan (every second) finds this broker
// leading it, and again when its leader epoch moves; the leader epoch is
// the coordinator epoch sent with markers. A replayed transaction in
// Prepare* has its markers sent again (partitions ignore a marker for a
// transaction they no longer have open), so a coordinator that dies
// between Prepare* and Complete* leaves the transaction to its successor.
//
// # Locks
//
// TxnCoordinator.mu protects txns, owned and closed; each txn's fields
// are protected by its own mu, which is held across the write of its
// state (so one transactional id's requests are serialized). loadMu
// serializes loading and releasing partitions and is taken before mu.
// The marker goroutine of a transaction (finish) holds no lock while the
// markers are in flight.

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/protocol"
)

// TxnStateTopic is the internal topic holding transaction state.
const TxnStateTopic = "__transaction_state"

// TxnLogs is how the transaction coordinator reaches the partitions of
// TxnStateTopic. The broker implements it over its partition logs.
type TxnLogs interface {
	// EnsureTxnTopic creates TxnStateTopic with the given number of
	// partitions when it does not exist and returns its partition count.
	EnsureTxnTopic(ctx context.Context, partitions int32) (int32, error)
	// TxnPartitions returns the partition count of TxnStateTopic, or 0
	// when it does not exist.
	TxnPartitions() int32
	// Append writes one record batch to a partition and returns once the
	// partition's ISR has it.
	Append(partition int32, batch []byte) error
	// Scan calls fn with each batch of a partition, in offset order.
	Scan(partition int32, fn func(batch []byte) error) error
	// Leadership reports whether this broker leads a partition, and at
	// which leader epoch.
	Leadership(partition int32) (leader bool, epoch int32)
}

// Marker is one transaction marker to write to a set of partitions.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool
	CoordinatorEpoch int32
	Partitions       []TopicPartition
}

// Markers writes transaction markers to the partitions' leaders. The
// broker implements it (WriteTxnMarkers to other brokers, a local append
// for its own partitions).
type Markers interface {
	// WriteMarkers writes m to each of its partitions and returns those
	// that must be tried again (no leader, a leader that moved, an
	// unreachable broker). Partitions of topics that no longer exist, and
	// partitions that refuse the marker for good, count as done.
	WriteMarkers(ctx context.Context, m Marker) (retry []TopicPartition)
}

// TxnConfig holds the broker configs the transaction coordinator follows,
// with Kafka's names and defaults.
type TxnConfig struct {
	Partitions int32         // transaction.state.log.num.partitions (50)
	MaxTimeout time.Duration // transaction.max.timeout.ms (15 min)
	// AbortInterval is
	// transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s):
	// how often open transactions are checked against their timeouts.
	AbortInterval time.Duration
	// IDExpiration is transactional.id.expiration.ms (7 days): how long an
	// id without an open transaction is kept after its last change.
	IDExpiration time.Duration
}

// DefaultTxnConfig is Kafka's defaults.
func DefaultTxnConfig() TxnConfig {
	return TxnConfig{Partitions: 50, MaxTimeout: 15 * time.Minute, AbortInterval: 10 * time.Second,
		IDExpiration: 7 * 24 * time.Hour}
}

// ProducerIDs hands out producer ids unique in the cluster.
type ProducerIDs func(ctx context.Context) (int64, error)

// txnData is the stored part of a transaction's state.
type txnData struct {
	producerID int64 // -1 until the first InitProducerId is stored
	epoch      int16
	// lastEpoch is the epoch before the last bump that a producer of this
	// id may still retry InitProducerId with (KIP-360), or -1.
	lastEpoch int16
	timeoutMs int32
	state     txnStatus
	parts     map[TopicPartition]struct{}
	startMs   int64 // -1 when no transaction is open
	updateMs  int64
}

// txn is one transactional id's state; every field after mu is protected
// by mu.
type txn struct {
	id        string
	partition int32 // of TxnStateTopic

	mu sync.Mutex
	txnData
	// coordEpoch is the leader epoch of the partition when it was loaded.
	coordEpoch int32
	// finishing is set while a goroutine sends this transaction's markers.
	finishing bool
	deleted   bool // dropped from the coordinator; look it up again
}

// value is the stored form of d.
func (d *txnData) value() *txnRecordValue {
	v := &txnRecordValue{producerID: d.producerID, epoch: d.epoch, timeoutMs: d.timeoutMs, state: d.state, updateMs: d.updateMs, startMs: d.startMs}
	for tp := range d.parts {
		v.parts = append(v.parts, tp)
	}
	return v
}

// TxnCoordinator is the transaction coordinator of one broker.
type TxnCoordinator struct {
	cfg     TxnConfig
	logs    TxnLogs
	markers Markers
	ids     ProducerIDs
	topics  Topics
	codecs  *protocol.Codecs
	log     zerolog.Logger
	now     func() time.Time

	mu     sync.Mutex
	txns   map[string]*txn
	owned  map[int32]int32 // partition -> leader epoch it was loaded at
	closed bool
	loadMu sync.Mutex

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewTxn returns a transaction coordinator; Start starts its loops.
func NewTxn(cfg TxnConfig, logs TxnLogs, markers Markers, ids ProducerIDs, topics Topics, codecs *protocol.Codecs, log zerolog.Logger, now func() time.Time) *TxnCoordinator {
	if now == nil {
		now = time.Now
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 50
	}
	if cfg.AbortInterval <= 0 {
		cfg.AbortInterval = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &TxnCoordinator{
		cfg: cfg, logs: logs, markers: markers, ids: ids, topics: topics, codecs: codecs,
		log: log.With().Str("component", "txn-coordinator").Logger(), now: now,
		txns: make(map[string]*txn), owned: make(map[int32]int32),
		ctx: ctx, cancel: cancel,
	}
}

// ownershipScanInterval is how often the partitions this broker leads are
// loaded (and those it no longer leads released) without a request.
const ownershipScanInterval = time.Second

// Start starts the loop that loads led partitions, finishes prepared
// transactions, aborts timed-out ones, expires idle ids and compacts.
func (c *TxnCoordinator) Start() {
	safe.Go(&c.wg, c.log, "transaction coordinator loop", func() {
		scan := time.NewTicker(ownershipScanInterval)
		defer scan.Stop()
		abort := time.NewTicker(c.cfg.AbortInterval)
		defer abort.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-scan.C:
				c.scanOwnership()
			case <-abort.C:
				c.abortTimedOut()
				c.expireIdle()
			}
		}
	})
}

// Close stops the loops and the marker goroutines.
func (c *TxnCoordinator) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// scanOwnership loads the partitions this broker leads and releases the
// others, and restarts the markers of prepared transactions that have no
// goroutine (after a load, or a failed write of their completion).
func (c *TxnCoordinator) scanOwnership() {
	n := c.logs.TxnPartitions()
	for p := range n {
		if c.ctx.Err() != nil {
			return
		}
		leader, _ := c.logs.Leadership(p)
		if leader || c.owns(p) {
			_ = c.ensureOwned(p) // logs its own failures
		}
	}
	for _, t := range c.ownedTxns() {
		locked(&t.mu, func() {
			if !t.deleted && !t.finishing && (t.state == txnPrepareCommit || t.state == txnPrepareAbort) {
				c.startFinishLocked(t)
			}
		})
	}
}

func (c *TxnCoordinator) owns(p int32) bool {
	_, ok := c.loadedEpoch(p)
	return ok
}

// ownedTxns returns every transaction in memory.
func (c *TxnCoordinator) ownedTxns() []*txn {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*txn, 0, len(c.txns))
	for _, t := range c.txns {
		out = append(out, t)
	}
	return out
}

// ensureOwned makes sure partition p's transactions are in memory and
// current, or says why this broker does not serve them.
func (c *TxnCoordinator) ensureOwned(p int32) *kerr.Error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return kerr.CoordinatorNotAvailable
	}
	return ensureLoaded(&c.loadMu, func() (bool, int32) { return c.logs.Leadership(p) },
		func() (int32, bool) { return c.loadedEpoch(p) },
		func() { c.releaseLocked(p) },
		func(epoch int32) *kerr.Error { return c.loadOwned(p, epoch) })
}

// loadedEpoch is the leader epoch partition p was loaded at.
func (c *TxnCoordinator) loadedEpoch(p int32) (int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.owned[p]
	return e, ok
}

// loadOwned replays partition p, publishes its transactions and resumes
// the prepared ones; c.loadMu held.
func (c *TxnCoordinator) loadOwned(p, epoch int32) *kerr.Error {
	txns, err := c.loadPartition(p, epoch)
	if err != nil {
		c.log.Error().Err(err).Int32("partition", p).Msg("cannot load transactions")
		return kerr.CoordinatorLoadInProgress
	}
	c.mu.Lock()
	for id, t := range txns {
		c.txns[id] = t
	}
	c.owned[p] = epoch
	c.mu.Unlock()
	for _, t := range txns {
		locked(&t.mu, func() {
			if t.state == txnPrepareCommit || t.state == txnPrepareAbort {
				c.startFinishLocked(t)
			}
		})
	}
	return nil
}

// releaseLocked drops partition p's transactions. c.loadMu must be held.
func (c *TxnCoordinator) releaseLocked(p int32) {
	c.mu.Lock()
	var doomed []*txn
	for id, t := range c.txns {
		if t.partition == p {
			doomed = append(doomed, t)
			delete(c.txns, id)
		}
	}
	delete(c.owned, p)
	c.mu.Unlock()
	for _, t := range doomed {
		locked(&t.mu, func() { t.deleted = true })
	}
	c.log.Info().Int32("partition", p).Int("transactions", len(doomed)).Msg("released transactions: this broker no longer leads their partition")
}

// loadPartition replays partition p of TxnStateTopic.
func (c *TxnCoordinator) loadPartition(p, epoch int32) (map[string]*txn, error) {
	start := time.Now()
	last := make(map[string]*txnRecordValue)
	records := 0
	err := c.logs.Scan(p, func(batch []byte) error {
		h, err := protocol.ParseBatchHeader(batch)
		if err != nil {
			return fmt.Errorf("decode batch: %w", err)
		}
		if h.Attributes&protocol.AttrControl != 0 {
			return nil
		}
		recs, err := c.codecs.Records(batch)
		if err != nil {
			return fmt.Errorf("decode batch: %w", err)
		}
		for _, r := range recs {
			records++
			id, v, err := decodeTxnRecord(r.Key, r.Value)
			if err != nil {
				c.log.Warn().Err(err).Int32("partition", p).Msg("skipping a transaction record that does not decode")
				continue
			}
			if v == nil {
				delete(last, id)
				continue
			}
			last[id] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coordinator: load %s-%d: %w", TxnStateTopic, p, err)
	}
	out := make(map[string]*txn, len(last))
	for id, v := range last {
		t := &txn{id: id, partition: p, coordEpoch: epoch, txnData: txnData{producerID: v.producerID, epoch: v.epoch, lastEpoch: -1,
			timeoutMs: v.timeoutMs, state: v.state, startMs: v.startMs, updateMs: v.updateMs, parts: make(map[TopicPartition]struct{})}}
		for _, tp := range v.parts {
			t.parts[tp] = struct{}{}
		}
		out[id] = t
	}
	c.log.Info().Int32("partition", p).Int("transactions", len(out)).Int("records", records).
		Dur("took", time.Since(start)).Msg("loaded transactions")
	return out, nil
}

// lookup returns the transaction of id, creating an empty one (producer
// id -1) when create is set. It creates TxnStateTopic when create is set
// and the topic does not exist.
func (c *TxnCoordinator) lookup(ctx context.Context, id string, create bool) (*txn, *kerr.Error) {
	n := c.logs.TxnPartitions()
	if n == 0 {
		if !create {
			return nil, nil // no transaction was ever initialized
		}
		var err error
		if n, err = c.logs.EnsureTxnTopic(ctx, c.cfg.Partitions); err != nil {
			c.log.Error().Err(err).Msg("cannot create the transaction state topic")
			return nil, kerr.CoordinatorNotAvailable
		}
	}
	p := partitionFor(id, n)
	if err := c.ensureOwned(p); err != nil {
		return nil, err
	}
	_, epoch := c.logs.Leadership(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, kerr.CoordinatorNotAvailable
	}
	t := c.txns[id]
	if t == nil && create {
		t = &txn{id: id, partition: p, coordEpoch: epoch, txnData: txnData{producerID: -1, epoch: -1, lastEpoch: -1, startMs: -1, parts: make(map[TopicPartition]struct{})}}
		c.txns[id] = t
	}
	if t == nil {
		return nil, nil
	}
	return t, nil
}

// withTxn runs fn on id's transaction under its lock, looking it up again
// if it was dropped meanwhile. fn gets nil when id is unknown (and create
// is not set).
func (c *TxnCoordinator) withTxn(ctx context.Context, id string, create bool, fn func(t *txn, now time.Time) *kerr.Error) *kerr.Error {
	for range 2 {
		t, err := c.lookup(ctx, id, create)
		if err != nil {
			return err
		}
		if t == nil {
			return fn(nil, c.now())
		}
		var deleted bool
		locked(&t.mu, func() {
			if deleted = t.deleted; !deleted {
				err = fn(t, c.now())
			}
		})
		if !deleted {
			return err
		}
	}
	return kerr.NotCoordinator
}

// storeLocked writes next as t's state and, once stored, makes it t's.
// A failure leaves t as it was.
func (c *TxnCoordinator) storeLocked(t *txn, next txnData, now time.Time) *kerr.Error {
	next.updateMs = now.UnixMilli()
	key, val := txnRecord(t.id, next.value())
	batch, err := c.codecs.BuildBatch(protocol.CodecNone, now.UnixMilli(), []kmsg.Record{{Key: key, Value: val}})
	if err == nil {
		err = c.logs.Append(t.partition, batch)
	}
	if err != nil {
		c.log.Error().Err(err).Str("transactional_id", t.id).Msg("cannot store transaction state")
		if leader, epoch := c.logs.Leadership(t.partition); !leader || epoch != t.coordEpoch {
			return kerr.NotCoordinator
		}
		return kerr.CoordinatorNotAvailable
	}
	t.txnData = next
	return nil
}

// copyState is t's stored state, to modify and store.
func (t *txn) copyState() txnData {
	d := t.txnData
	d.parts = make(map[TopicPartition]struct{}, len(t.parts))
	for tp := range t.parts {
		d.parts[tp] = struct{}{}
	}
	return d
}

// fenced is the error for a request with a stale epoch: PRODUCER_FENCED,
// or INVALID_PRODUCER_EPOCH for clients that predate it (KIP-588).
func fenced(newErr bool) *kerr.Error {
	if newErr {
		return kerr.ProducerFenced
	}
	return kerr.InvalidProducerEpoch
}

// InitProducerIDArgs is an InitProducerId with a transactional id.
type InitProducerIDArgs struct {
	TransactionalID string
	TimeoutMs       int32
	// ProducerID and ProducerEpoch are the producer's current ones when
	// it asks for an epoch bump (KIP-360), else -1.
	ProducerID    int64
	ProducerEpoch int16
	// FencedError: the client knows PRODUCER_FENCED (InitProducerId v4+).
	FencedError bool
}

// InitProducerID gives a transactional producer its producer id and a new
// epoch, fencing every older producer of its id; an open transaction is
// aborted first (the client is told CONCURRENT_TRANSACTIONS and retries).
func (c *TxnCoordinator) InitProducerID(ctx context.Context, a InitProducerIDArgs) (int64, int16, *kerr.Error) {
	if a.TimeoutMs <= 0 || time.Duration(a.TimeoutMs)*time.Millisecond > c.cfg.MaxTimeout {
		return -1, -1, kerr.InvalidTransactionTimeout
	}
	var pid int64 = -1
	var epoch int16 = -1
	err := c.withTxn(ctx, a.TransactionalID, true, func(t *txn, now time.Time) *kerr.Error {
		next := t.copyState()
		next.timeoutMs = a.TimeoutMs
		switch {
		case t.producerID < 0:
			id, err := c.ids(ctx)
			if err != nil {
				c.log.Warn().Err(err).Msg("cannot allocate a producer id")
				return kerr.CoordinatorNotAvailable
			}
			next.producerID, next.epoch, next.lastEpoch, next.state, next.startMs = id, 0, -1, txnEmpty, -1
		case a.ProducerID >= 0 && (a.ProducerID != t.producerID || a.ProducerEpoch != t.epoch && a.ProducerEpoch != t.lastEpoch):
			return fenced(a.FencedError)
		case t.state == txnPrepareCommit || t.state == txnPrepareAbort:
			return kerr.ConcurrentTransactions
		case t.state == txnOngoing:
			// Fence the current producer and abort its transaction with
			// the new epoch; the client retries and gets one more bump.
			c.log.Info().Str("transactional_id", t.id).Int64("producer_id", t.producerID).Int16("epoch", t.epoch).
				Msg("a new producer of this transactional id: aborting the open transaction")
			// A producer bumping its own epoch (KIP-360) may retry with its
			// old one; a new producer's zombie may not.
			last := int16(-1)
			if a.ProducerID >= 0 {
				last = t.epoch
			}
			if err := c.bumpAndAbortLocked(t, now, last); err != nil {
				return err
			}
			return kerr.ConcurrentTransactions
		case a.ProducerID >= 0 && a.ProducerEpoch == t.lastEpoch && t.lastEpoch >= 0:
			// A retry of the bump already stored (its answer was lost),
			// or the producer of an epoch bumped by a timeout: it gets
			// the current epoch.
			pid, epoch = t.producerID, t.epoch
			return nil
		default:
			next.state, next.parts, next.startMs = txnEmpty, map[TopicPartition]struct{}{}, -1
			next.lastEpoch = -1
			if a.ProducerID >= 0 {
				next.lastEpoch = t.epoch
			}
			if t.epoch >= math.MaxInt16-1 {
				id, err := c.ids(ctx)
				if err != nil {
					c.log.Warn().Err(err).Msg("cannot allocate a producer id")
					return kerr.CoordinatorNotAvailable
				}
				next.producerID, next.epoch, next.lastEpoch = id, 0, -1
			} else {
				next.epoch = t.epoch + 1
			}
		}
		if err := c.storeLocked(t, next, now); err != nil {
			return err
		}
		pid, epoch = t.producerID, t.epoch
		return nil
	})
	if err != nil {
		return -1, -1, err
	}
	return pid, epoch, nil
}

// bumpAndAbortLocked fences t's producer (epoch + 1) and aborts its open
// transaction: PrepareAbort is stored and the markers go out with the new
// epoch. lastEpoch is what a producer may retry InitProducerId with.
func (c *TxnCoordinator) bumpAndAbortLocked(t *txn, now time.Time, lastEpoch int16) *kerr.Error {
	next := t.copyState()
	if t.epoch < math.MaxInt16 {
		next.epoch = t.epoch + 1
	}
	next.lastEpoch = lastEpoch
	next.state = txnPrepareAbort
	if err := c.storeLocked(t, next, now); err != nil {
		return err
	}
	c.startFinishLocked(t)
	return nil
}

// checkProducerLocked checks a request's producer id and epoch against t.
func checkProducerLocked(t *txn, producerID int64, epoch int16, newErr bool) *kerr.Error {
	switch {
	case t == nil || t.producerID < 0 || t.producerID != producerID:
		return kerr.InvalidProducerIDMapping
	case epoch != t.epoch:
		return fenced(newErr)
	}
	return nil
}

// AddPartitionsArgs is one transaction of an AddPartitionsToTxn (or the
// offsets partition of an AddOffsetsToTxn).
type AddPartitionsArgs struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	Partitions      []TopicPartition
	// VerifyOnly (KIP-890, from brokers) checks that the partitions are
	// in the open transaction without adding them.
	VerifyOnly  bool
	FencedError bool // the client knows PRODUCER_FENCED (v2+)
}

// AddPartitions adds partitions to the producer's transaction, opening
// it when none is open, and returns each partition's error (in order).
func (c *TxnCoordinator) AddPartitions(ctx context.Context, a AddPartitionsArgs) []*kerr.Error {
	out := make([]*kerr.Error, len(a.Partitions))
	fill := func(err *kerr.Error) *kerr.Error {
		for i := range out {
			out[i] = err
		}
		return err
	}
	err := c.withTxn(ctx, a.TransactionalID, false, func(t *txn, now time.Time) *kerr.Error {
		if err := checkProducerLocked(t, a.ProducerID, a.ProducerEpoch, a.FencedError); err != nil {
			return fill(err)
		}
		if a.VerifyOnly {
			for i, tp := range a.Partitions {
				if _, ok := t.parts[tp]; !ok || t.state != txnOngoing {
					out[i] = kerr.InvalidTxnState
				}
			}
			return nil
		}
		if t.state == txnPrepareCommit || t.state == txnPrepareAbort {
			return fill(kerr.ConcurrentTransactions)
		}
		unknown := false
		for i, tp := range a.Partitions {
			ti, ok := c.topics.TopicByName(tp.Topic)
			if !ok || tp.Partition < 0 || tp.Partition >= ti.Partitions {
				out[i] = kerr.UnknownTopicOrPartition
				unknown = true
			}
		}
		if unknown {
			for i := range out {
				if out[i] == nil {
					out[i] = kerr.OperationNotAttempted
				}
			}
			return nil
		}
		next := t.copyState()
		if t.state != txnOngoing {
			next.state, next.startMs, next.parts = txnOngoing, now.UnixMilli(), map[TopicPartition]struct{}{}
		}
		added := t.state != txnOngoing
		for _, tp := range a.Partitions {
			if _, ok := next.parts[tp]; !ok {
				next.parts[tp] = struct{}{}
				added = true
			}
		}
		if !added {
			return nil
		}
		return fill(c.storeLocked(t, next, now))
	})
	if err != nil {
		for i := range out {
			if out[i] == nil {
				out[i] = err
			}
		}
	}
	return out
}

// EndTxnArgs is an EndTxn.
type EndTxnArgs struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	Commit          bool
	FencedError     bool // the client knows PRODUCER_FENCED (v2+)
}

// EndTxn commits or aborts the producer's open transaction: it is
// answered once PrepareCommit or PrepareAbort is stored; the markers
// follow.
func (c *TxnCoordinator) EndTxn(ctx context.Context, a EndTxnArgs) *kerr.Error {
	return c.withTxn(ctx, a.TransactionalID, false, func(t *txn, now time.Time) *kerr.Error {
		if err := checkProducerLocked(t, a.ProducerID, a.ProducerEpoch, a.FencedError); err != nil {
			return err
		}
		switch t.state {
		case txnOngoing:
			next := t.copyState()
			next.state = txnPrepareAbort
			if a.Commit {
				next.state = txnPrepareCommit
			}
			if err := c.storeLocked(t, next, now); err != nil {
				return err
			}
			c.startFinishLocked(t)
			return nil
		case txnCompleteCommit:
			if a.Commit {
				return nil // a retry of a commit that went through
			}
		case txnCompleteAbort:
			if !a.Commit {
				return nil
			}
		case txnPrepareCommit:
			if a.Commit {
				return kerr.ConcurrentTransactions
			}
		case txnPrepareAbort:
			if !a.Commit {
				return kerr.ConcurrentTransactions
			}
		}
		return kerr.InvalidTxnState
	})
}

// markerBackoff is the pause between rounds of markers that must be tried
// again.
const markerBackoff = 100 * time.Millisecond

// startFinishLocked starts the goroutine that sends t's markers and then
// stores its completion. t.mu held; t is in Prepare*.
func (c *TxnCoordinator) startFinishLocked(t *txn) {
	if t.finishing {
		return
	}
	t.finishing = true
	m := Marker{ProducerID: t.producerID, ProducerEpoch: t.epoch, Commit: t.state == txnPrepareCommit, CoordinatorEpoch: t.coordEpoch}
	for tp := range t.parts {
		m.Partitions = append(m.Partitions, tp)
	}
	sort.Slice(m.Partitions, func(i, j int) bool {
		a, b := m.Partitions[i], m.Partitions[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	safe.Go(&c.wg, c.log, "transaction markers", func() { c.finish(t, m) })
}

// finish sends m until every partition has it, then stores t's
// completion. It gives up when this broker stops coordinating t (its
// successor sends the markers again).
func (c *TxnCoordinator) finish(t *txn, m Marker) {
	log := c.log.With().Str("transactional_id", t.id).Int64("producer_id", m.ProducerID).Int16("epoch", m.ProducerEpoch).Bool("commit", m.Commit).Logger()
	start := time.Now()
	rounds := 0
	for len(m.Partitions) > 0 {
		if c.ctx.Err() != nil || !c.stillCoordinates(t.partition, m.CoordinatorEpoch) {
			locked(&t.mu, func() { t.finishing = false })
			return
		}
		if rounds > 0 {
			select {
			case <-c.ctx.Done():
			case <-time.After(min(markerBackoff*time.Duration(rounds), 2*time.Second)):
			}
		}
		rounds++
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		m.Partitions = c.markers.WriteMarkers(ctx, m)
		cancel()
		if len(m.Partitions) > 0 && rounds%20 == 0 {
			log.Warn().Int("partitions_left", len(m.Partitions)).Int("rounds", rounds).Msg("transaction markers still not written everywhere")
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishing = false
	if t.deleted || t.coordEpoch != m.CoordinatorEpoch || t.producerID != m.ProducerID || t.epoch != m.ProducerEpoch {
		return
	}
	next := t.copyState()
	next.state = txnCompleteAbort
	if m.Commit {
		next.state = txnCompleteCommit
	}
	next.parts, next.startMs = map[TopicPartition]struct{}{}, -1
	if err := c.storeLocked(t, next, c.now()); err != nil {
		// Still prepared: the ownership scan starts the markers again.
		log.Warn().Str("error", err.Error()).Msg("cannot store the end of a transaction; trying again")
		return
	}
	log.Debug().Dur("took", time.Since(start)).Int("rounds", rounds).Msg("transaction ended")
}

// stillCoordinates reports whether this broker still leads partition p at
// leader epoch epoch.
func (c *TxnCoordinator) stillCoordinates(p, epoch int32) bool {
	leader, e := c.logs.Leadership(p)
	return leader && e == epoch
}

// abortTimedOut aborts, with an epoch bump, every open transaction older
// than its timeout (transaction.timeout.ms).
func (c *TxnCoordinator) abortTimedOut() {
	for _, t := range c.ownedTxns() {
		locked(&t.mu, func() {
			now := c.now()
			if !t.deleted && t.state == txnOngoing && now.UnixMilli() > t.startMs+int64(t.timeoutMs) {
				c.log.Info().Str("transactional_id", t.id).Int64("producer_id", t.producerID).Int16("epoch", t.epoch).
					Int32("timeout_ms", t.timeoutMs).Msg("aborting a transaction open longer than its timeout")
				if err := c.bumpAndAbortLocked(t, now, t.epoch); err != nil {
					c.log.Warn().Str("transactional_id", t.id).Str("error", err.Error()).Msg("cannot abort a timed-out transaction")
				}
			}
		})
	}
}

// TxnDescription is one DescribeTransactions entry.
type TxnDescription struct {
	TransactionalID string
	Err             *kerr.Error
	State           string
	TimeoutMs       int32
	StartMs         int64
	ProducerID      int64
	ProducerEpoch   int16
	Partitions      []TopicPartition
}

// Describe describes transactional ids this broker coordinates.
func (c *TxnCoordinator) Describe(ctx context.Context, ids []string) []TxnDescription {
	out := make([]TxnDescription, 0, len(ids))
	for _, id := range ids {
		d := TxnDescription{TransactionalID: id, ProducerID: -1, ProducerEpoch: -1, StartMs: -1}
		err := c.withTxn(ctx, id, false, func(t *txn, _ time.Time) *kerr.Error {
			if t == nil || t.producerID < 0 {
				return kerr.TransactionalIDNotFound
			}
			d.State, d.TimeoutMs, d.StartMs = t.state.String(), t.timeoutMs, t.startMs
			d.ProducerID, d.ProducerEpoch = t.producerID, t.epoch
			for tp := range t.parts {
				d.Partitions = append(d.Partitions, tp)
			}
			sort.Slice(d.Partitions, func(i, j int) bool {
				a, b := d.Partitions[i], d.Partitions[j]
				return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
			})
			return nil
		})
		if err != nil {
			d.Err = err
		}
		out = append(out, d)
	}
	return out
}

// TxnListing is one ListTransactions entry.
type TxnListing struct {
	TransactionalID string
	ProducerID      int64
	State           string
}

// ListFilter is ListTransactions' filters; empty ones match everything.
type ListFilter struct {
	States      []string
	ProducerIDs []int64
	// MinDurationMs lists only transactions open at least this long
	// (-1: any).
	MinDurationMs int64
	// Pattern is a regular expression the transactional id must match.
	Pattern *regexp.Regexp
}

// List lists the transactions this broker coordinates, and the state
// filters that name no state.
func (c *TxnCoordinator) List(f ListFilter) (out []TxnListing, unknownStates []string) {
	want := make(map[string]bool)
	for _, s := range f.States {
		known := false
		for _, n := range txnStatusNames {
			if n == s {
				known = true
			}
		}
		if !known {
			unknownStates = append(unknownStates, s)
			continue
		}
		want[s] = true
	}
	if len(f.States) > 0 && len(want) == 0 {
		return nil, unknownStates
	}
	pids := make(map[int64]bool)
	for _, id := range f.ProducerIDs {
		pids[id] = true
	}
	now := c.now().UnixMilli()
	for _, t := range c.ownedTxns() {
		var l TxnListing
		var ok bool
		locked(&t.mu, func() {
			l = TxnListing{TransactionalID: t.id, ProducerID: t.producerID, State: t.state.String()}
			ok = !t.deleted && t.producerID >= 0 &&
				(len(want) == 0 || want[l.State]) &&
				(len(pids) == 0 || pids[t.producerID]) &&
				(f.MinDurationMs < 0 || t.startMs >= 0 && now-t.startMs >= f.MinDurationMs) &&
				(f.Pattern == nil || f.Pattern.MatchString(t.id))
		})
		if ok {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out, unknownStates
}

// PartitionForTxn is the TxnStateTopic partition of a transactional id.
func PartitionForTxn(id string, partitions int32) int32 { return partitionFor(id, partitions) }
