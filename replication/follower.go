package replication

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/peer"
	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// Request versions a follower sends: Fetch v12 (topic names, replica id
// in the body, flexible) and OffsetForLeaderEpoch v3 (replica id).
const (
	fetchVersion                = 12
	offsetForLeaderEpochVersion = 3
)

// Config configures a Manager.
type Config struct {
	NodeID int32
	// Resolve returns the host:port other brokers reach a broker at.
	Resolve func(nodeID int32) (string, bool)
	// MaxWait (replica.fetch.wait.max.ms), MinBytes (replica.fetch.min.bytes),
	// PartitionMaxBytes (replica.fetch.max.bytes) and MaxBytes
	// (replica.fetch.response.max.bytes) shape each follower Fetch.
	MaxWait           time.Duration
	MinBytes          int32
	PartitionMaxBytes int32
	MaxBytes          int32
	// Backoff is how long a fetcher waits after an error
	// (replica.fetch.backoff.ms).
	Backoff time.Duration
	Log     zerolog.Logger
	// Appended, when set, is called with the bytes of each batch a
	// follower appends (Kafka's ReplicationBytesInPerSec); it must not
	// block.
	Appended func(bytes int)
}

// Replica is a local replica this broker follows.
type Replica struct {
	Topic     string
	Partition int32
	Log       *storage.Log
}

type tp struct {
	topic     string
	partition int32
}

// Manager runs this broker's follower fetchers: one goroutine per leader
// broker, each fetching every partition it follows from that leader in
// one Fetch request at a time, as Kafka's replica fetcher threads do.
//
// Concurrency: mu protects fetchers and the partition maps inside them;
// each followed partition's appends are serialized by its own mu, which
// Unfollow takes, so that once Unfollow returns no fetch response is
// applied to the log any more.
type Manager struct {
	cfg Config
	ctx context.Context

	mu       sync.Mutex
	fetchers map[int32]*fetcher
	closed   bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewManager returns a Manager with no partitions.
func NewManager(cfg Config) *Manager {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 500 * time.Millisecond
	}
	if cfg.MinBytes <= 0 {
		cfg.MinBytes = 1
	}
	if cfg.PartitionMaxBytes <= 0 {
		cfg.PartitionMaxBytes = 1 << 20
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 10 << 20
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, ctx: ctx, cancel: cancel, fetchers: make(map[int32]*fetcher)}
}

// followed is one partition a fetcher follows.
type followed struct {
	r     Replica
	epoch int32 // the leader's epoch, as the metadata store says
	// mu serializes applying fetch results with Unfollow.
	mu        sync.Mutex
	stopped   bool
	truncated bool // the divergent tail, if any, was cut for this epoch
}

// fetcher fetches from one leader broker.
type fetcher struct {
	m      *Manager
	leader int32
	parts  map[tp]*followed // protected by m.mu
	wake   chan struct{}
	stop   chan struct{}
}

// Follow makes the broker follow r from leader at epoch. Calling it again
// with the same leader and epoch does nothing; a new epoch or leader
// starts over (divergence check first).
func (m *Manager) Follow(r Replica, leader, epoch int32) {
	key := tp{r.Topic, r.Partition}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	for id, f := range m.fetchers {
		if old := f.parts[key]; old != nil {
			if id == leader && old.epoch == epoch && old.r.Log == r.Log {
				m.mu.Unlock()
				return
			}
			delete(f.parts, key)
			m.mu.Unlock()
			old.halt()
			m.mu.Lock()
		}
	}
	f := m.fetchers[leader]
	if f == nil {
		f = &fetcher{m: m, leader: leader, parts: make(map[tp]*followed), wake: make(chan struct{}, 1), stop: make(chan struct{})}
		m.fetchers[leader] = f
		safe.Go(&m.wg, m.cfg.Log, "replica fetcher", f.run)
	}
	f.parts[key] = &followed{r: r, epoch: epoch}
	m.mu.Unlock()
	f.poke()
	m.cfg.Log.Info().Str("topic", r.Topic).Int32("partition", r.Partition).Int32("leader", leader).
		Int32("leader_epoch", epoch).Msg("following the partition leader")
}

// Unfollow stops following a partition; when it returns, no more fetched
// data is written to its log.
func (m *Manager) Unfollow(topic string, partition int32) {
	key := tp{topic, partition}
	m.mu.Lock()
	var doomed []*followed
	for _, f := range m.fetchers {
		if p := f.parts[key]; p != nil {
			delete(f.parts, key)
			doomed = append(doomed, p)
		}
	}
	m.mu.Unlock()
	for _, p := range doomed {
		p.halt()
	}
}

// Following reports the leader and epoch a partition is followed from.
func (m *Manager) Following(topic string, partition int32) (leader, epoch int32, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, f := range m.fetchers {
		if p := f.parts[tp{topic, partition}]; p != nil {
			return id, p.epoch, true
		}
	}
	return -1, -1, false
}

// Close stops every fetcher and waits for them.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	var all []*followed
	for _, f := range m.fetchers {
		for _, p := range f.parts {
			all = append(all, p)
		}
		close(f.stop)
	}
	m.fetchers = map[int32]*fetcher{}
	m.mu.Unlock()
	m.cancel()
	for _, p := range all {
		p.halt()
	}
	m.wg.Wait()
}

func (p *followed) halt() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
}

func (f *fetcher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// snapshot returns the partitions to fetch now.
func (f *fetcher) snapshot() []*followed {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	out := make([]*followed, 0, len(f.parts))
	for _, p := range f.parts {
		out = append(out, p)
	}
	return out
}

func (f *fetcher) run() {
	log := f.m.cfg.Log.With().Int32("leader", f.leader).Logger()
	p := &peer.Conn{ClientID: "gregor-replica-fetcher"}
	defer p.Close()
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		parts := f.snapshot()
		if len(parts) == 0 {
			select {
			case <-f.stop:
				return
			case <-f.wake:
			}
			continue
		}
		addr, ok := f.m.cfg.Resolve(f.leader)
		if !ok {
			f.pause()
			continue
		}
		if p.Addr != addr {
			p.Close()
			p.Addr = addr
		}
		if err := f.fetchOnce(p, parts, log); err != nil {
			if f.m.ctx.Err() != nil {
				return
			}
			log.Debug().Err(err).Msg("follower fetch failed; retrying")
			f.pause()
		}
	}
}

// pause waits out the backoff, a stop, or a new partition to fetch.
func (f *fetcher) pause() { f.pauseFor(f.m.cfg.Backoff) }

// transitionBackoff is the pause while a leadership change settles (the
// leader has not seen the new epoch yet, or no longer leads): much shorter
// than the error backoff, since the next metadata event usually ends it.
const transitionBackoff = 50 * time.Millisecond

func (f *fetcher) pauseFor(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.stop:
	case <-f.wake:
	case <-t.C:
	}
}

// fetchOnce truncates the partitions that need it, then sends one Fetch
// for all of them and applies the answer.
func (f *fetcher) fetchOnce(p *peer.Conn, parts []*followed, log zerolog.Logger) error {
	ctx := f.m.ctx
	var ready []*followed
	for _, fp := range parts {
		if fp.truncated {
			ready = append(ready, fp)
			continue
		}
		if err := f.truncate(ctx, p, fp, log); err != nil {
			return err
		}
		if fp.truncated {
			ready = append(ready, fp)
		}
	}
	if len(ready) == 0 {
		f.pauseFor(transitionBackoff) // the leader is not ready for us yet
		return nil
	}
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(fetchVersion)
	req.ReplicaID = f.m.cfg.NodeID
	req.MaxWaitMillis = int32(f.m.cfg.MaxWait / time.Millisecond)
	req.MinBytes = f.m.cfg.MinBytes
	req.MaxBytes = f.m.cfg.MaxBytes
	req.SessionEpoch = -1 // no fetch session
	byTopic := map[string]int{}
	for _, fp := range ready {
		i, ok := byTopic[fp.r.Topic]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic = fp.r.Topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			byTopic[fp.r.Topic] = i
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = fp.r.Partition
		rp.CurrentLeaderEpoch = fp.epoch
		rp.FetchOffset = fp.r.Log.LogEndOffset()
		rp.LastFetchedEpoch = -1
		rp.LogStartOffset = fp.r.Log.LogStartOffset()
		rp.PartitionMaxBytes = f.m.cfg.PartitionMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	raw, err := p.RoundTrip(ctx, req, f.m.cfg.MaxWait+30*time.Second)
	if err != nil {
		return err
	}
	resp := raw.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	index := make(map[tp]*followed, len(ready))
	for _, fp := range ready {
		index[tp{fp.r.Topic, fp.r.Partition}] = fp
	}
	backoff := false
	for _, rt := range resp.Topics {
		for i := range rt.Partitions {
			rp := &rt.Partitions[i]
			fp := index[tp{rt.Topic, rp.Partition}]
			if fp == nil {
				continue
			}
			if err := f.apply(fp, rp, log); err != nil {
				backoff = true
			}
		}
	}
	if backoff {
		f.pauseFor(transitionBackoff)
	}
	return nil
}

// apply writes one partition's fetched batches to the local log and moves
// its high watermark.
func (f *fetcher) apply(fp *followed, rp *kmsg.FetchResponseTopicPartition, log zerolog.Logger) error {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.stopped {
		return nil
	}
	l := fp.r.Log
	switch err := kerr.ErrorForCode(rp.ErrorCode); {
	case err == nil:
	case errors.Is(err, kerr.OffsetOutOfRange):
		if leo := l.LogEndOffset(); rp.LogStartOffset > leo {
			// The leader no longer has what comes next here: start over
			// at its log start.
			log.Warn().Str("topic", fp.r.Topic).Int32("partition", fp.r.Partition).Int64("log_end_offset", leo).
				Int64("leader_log_start_offset", rp.LogStartOffset).Msg("follower behind the leader's log start; starting over there")
			if err := l.StartAt(rp.LogStartOffset); err != nil {
				return err
			}
			return nil
		}
		fp.truncated = false // our log ends past the leader's: find where they part
		return err
	default:
		// NOT_LEADER_OR_FOLLOWER, FENCED/UNKNOWN_LEADER_EPOCH...: the
		// metadata store will say who leads next; try again meanwhile.
		return err
	}
	b := rp.RecordBatches
	for len(b) > 0 {
		n := protocol.BatchSize(b)
		if n < protocol.BatchHeaderSize || n > len(b) {
			break // a partial batch at the end of a size-limited read
		}
		if _, err := l.AppendReplica(b[:n:n]); err != nil {
			log.Warn().Err(err).Str("topic", fp.r.Topic).Int32("partition", fp.r.Partition).Msg("cannot append fetched batch")
			fp.truncated = false
			return err
		}
		if f.m.cfg.Appended != nil {
			f.m.cfg.Appended(n)
		}
		b = b[n:]
	}
	l.SetHighWatermark(min(rp.HighWatermark, l.LogEndOffset()))
	// The leader's log start (moved by its retention or a DeleteRecords)
	// moves ours, up to what we have committed; the next fetch tells the
	// leader, whose DeleteRecords waits for it.
	if start := min(rp.LogStartOffset, l.HighWatermark()); start > l.LogStartOffset() {
		if _, err := l.AdvanceLogStart(start); err != nil {
			log.Warn().Err(err).Str("topic", fp.r.Topic).Int32("partition", fp.r.Partition).Int64("log_start_offset", start).
				Msg("cannot move the log start offset to the leader's")
			return err
		}
	}
	return nil
}

// truncate cuts the local log where it parts from the leader's (KIP-101,
// KIP-279): it asks the leader where our latest epoch ends there, and cuts
// at that offset or where that epoch ends here, whichever is lower.
func (f *fetcher) truncate(ctx context.Context, p *peer.Conn, fp *followed, log zerolog.Logger) error {
	l := fp.r.Log
	epochs := l.Epochs()
	if len(epochs) == 0 || l.LogEndOffset() == l.LogStartOffset() {
		fp.mu.Lock()
		fp.truncated = !fp.stopped
		fp.mu.Unlock()
		return nil
	}
	ours := epochs[len(epochs)-1].Epoch
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(offsetForLeaderEpochVersion)
	req.ReplicaID = f.m.cfg.NodeID
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = fp.r.Topic
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition = fp.r.Partition
	rp.CurrentLeaderEpoch = fp.epoch
	rp.LeaderEpoch = ours
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	raw, err := p.RoundTrip(ctx, req, 30*time.Second)
	if err != nil {
		return err
	}
	resp := raw.(*kmsg.OffsetForLeaderEpochResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return errors.New("replication: OffsetForLeaderEpoch answered for other partitions")
	}
	sp := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
		return nil // the leader is not ready for us yet; the next round asks again
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.stopped {
		return nil
	}
	cut := l.HighWatermark() // the leader knows no epoch of ours: keep what was committed
	if sp.LeaderEpoch >= 0 {
		_, ourEnd := l.ReplicaEndOffsetForEpoch(sp.LeaderEpoch, ours)
		cut = min(sp.EndOffset, ourEnd)
	}
	if cut < l.LogEndOffset() {
		log.Info().Str("topic", fp.r.Topic).Int32("partition", fp.r.Partition).Int32("our_epoch", ours).
			Int32("leader_epoch", sp.LeaderEpoch).Int64("leader_end_offset", sp.EndOffset).Int64("truncate_to", cut).
			Msg("truncating the divergent tail before following")
		if _, err := l.TruncateTo(cut); err != nil {
			return err
		}
	}
	fp.truncated = true
	return nil
}
