package metadata

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
)

// EtcdConfig configures OpenEtcd.
type EtcdConfig struct {
	// Endpoints are etcd client URLs, e.g. EmbeddedEtcd.Endpoints().
	Endpoints []string
	// Prefix is the root of Gregor's keys; default "/gregor". See doc.go.
	Prefix string
	// LeaseTTL is how long a broker registration outlives the broker's last
	// contact with etcd; default 3 s. etcd counts in whole seconds (and
	// raises very short TTLs to its own minimum), so it is rounded up.
	LeaseTTL time.Duration
	// DialTimeout bounds each attempt to connect to an endpoint; default 5 s.
	DialTimeout time.Duration
	// Logger receives the store's log lines and the etcd client's warnings.
	Logger zerolog.Logger
	// ClusterID is the cluster id to create when no broker has created one
	// yet (Kafka's CLUSTER_ID, 22 characters of base64url); empty means a
	// random one. When the cluster has an id already, that id is kept and a
	// different ClusterID is logged as a warning: Kafka's images format
	// storage with --ignore-formatted, so CLUSTER_ID only names a new
	// cluster and never fails a broker that has one.
	ClusterID string
}

// Retry delays of the watch and keep-alive loops after a failure.
const (
	retryMin = 250 * time.Millisecond
	retryMax = 5 * time.Second
)

// resyncTimeout bounds one read of the whole prefix after the watch lost
// its place; the watch loop tries again after it.
const resyncTimeout = 30 * time.Second

// EtcdStore is the Store kept in etcd. Reads are served from a cache that
// one watch keeps current; see doc.go for keys, values and ordering.
//
// Subscribers are called from the store's watch goroutine; until a
// subscriber returns no further change is applied and every write of this
// store waits, so a subscriber must be quick and must not call the store's
// write methods (that would wait on itself). Reading the store from a
// subscriber is fine and shows the change being delivered.
type EtcdStore struct {
	log       zerolog.Logger
	cli       *clientv3.Client // owned by the store; closed by Close
	prefix    string           // Prefix + "/"; every key starts with it
	ttl       time.Duration    // lease TTL, whole seconds
	clusterID string           // set by OpenEtcd, then read-only
	// wantClusterID is EtcdConfig.ClusterID, set before load, then read-only.
	wantClusterID string

	// ctx is canceled by Close. The watch goroutine and the keep-alive
	// goroutine run under it and are counted by wg; in-flight writes are
	// aborted by it.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    chan struct{} // closed when Close begins
	closeOnce sync.Once
	closeErr  error // set once inside closeOnce

	subs subscribers

	// mu protects the cache. Only the watch goroutine writes it (and
	// OpenEtcd, before that goroutine starts); anyone reads it.
	mu struct {
		sync.Mutex
		// rev is the revision the cache reflects: every change up to it has
		// been applied and delivered to subscribers.
		rev int64
		// advanced is closed and replaced each time rev grows.
		advanced      chan struct{}
		topics        map[string]cachedTopic
		byID          map[TopicID]string // topic id -> name
		brokers       map[int32]Broker
		incarnations  map[int32]BrokerIncarnation // each registered broker's lease, by node id
		brokerConfigs map[int32]map[string]string // maps never mutated once stored
		// partitions holds partition states by topic name and partition,
		// as stored: a state whose TopicID is not the cached topic's
		// (left over from an older incarnation) is never returned.
		// States are never mutated once stored.
		partitions map[string]map[int32]PartitionState
		// controller holds the election's candidates by key.
		controller map[string]controllerCandidate
		// deleted holds the deletion records by topic id.
		deleted map[TopicID]DeletedTopic
		// faults holds the values that cannot be read, by full key.
		faults map[string]Fault
		// suspended holds, by name, the topics taken out of topics
		// because a partition state of theirs is of a newer format
		// (never guessed at); each returns when no such state is left.
		suspended map[string]cachedTopic
		// ownCandidacies are the keys of this store's controller
		// candidacies, each with a channel closed if the key is deleted
		// while its session lives.
		ownCandidacies map[string]chan struct{}
	}
	// ownNodeID is the registered broker's node id plus one (0: none
	// registered), read by the watch goroutine. A registration key that
	// vanishes under a live lease is written again by the keep-alive loop
	// (regCheck, registrationMissing).
	ownNodeID atomic.Int32

	// elect holds the leases of this store's controller candidacies
	// (election.go), revoked by Close.
	elect struct {
		sync.Mutex
		closed bool
		leases []clientv3.LeaseID
	}

	// reg is this store's own broker registration. Network calls made under
	// reg run under a context that Close cancels, so Close never waits long
	// for the lock.
	reg struct {
		sync.Mutex
		closed     bool // set by Close: no new registration or keep-alive
		registered bool
		broker     Broker
		lease      clientv3.LeaseID // 0: none granted yet
		rev        int64            // revision of the last write of the registration
		keeping    bool             // the keep-alive goroutine was started
	}
	// regNode (node id + 1; 0: not registered yet) and regLease mirror
	// s.reg.broker.NodeID and s.reg.lease for the watch goroutine, which
	// must not take s.reg (RegisterBroker holds s.reg while it waits on
	// the cache). Written under s.reg.
	regNode  atomic.Int64
	regLease atomic.Int64
	// regCheck is signalled (never blocking; capacity one) by the watch
	// goroutine when the cache shows this store's registration absent or
	// under a lease other than regLease; the keep-alive loop then checks
	// and registers again (registrationMissing).
	regCheck chan struct{}
	// aliveUntil (unix ns) is when this broker's registration may have
	// expired at the earliest, as its last renewal says; resyncRev is a
	// revision the cache must reach first after a lost lease. Both are
	// written by the registration code and read by RegistrationAlive.
	aliveUntil atomic.Int64
	resyncRev  atomic.Int64
	appliedRev atomic.Int64 // s.mu.rev, for lock-free reads
}

// RegistrationAlive implements Store.
func (s *EtcdStore) RegistrationAlive() bool {
	return time.Now().UnixNano() < s.aliveUntil.Load() && s.appliedRev.Load() >= s.resyncRev.Load()
}

// noteRenewed records a lease renewal seen at now: the lease cannot expire
// before now + TTL minus the time the renewal took to come back, so two
// thirds of the TTL is a safe bound while that is under a third.
func (s *EtcdStore) noteRenewed(now time.Time) {
	s.aliveUntil.Store(now.Add(s.ttl * 2 / 3).UnixNano())
}

// cachedTopic is one topic in the cache.
type cachedTopic struct {
	t         Topic // never mutated once stored; Configs is this entry's own
	modRev    int64 // etcd mod revision of the value t was read from
	createRev int64 // etcd create revision of the key: one per incarnation of the topic
}

var _ Store = (*EtcdStore)(nil)

// OpenEtcd connects to etcd, creates the cluster id if this is the first
// broker ever to start, reads all metadata into the cache and starts
// following changes. ctx bounds only the opening: with etcd unreachable,
// OpenEtcd keeps trying until ctx ends.
func OpenEtcd(ctx context.Context, cfg EtcdConfig) (*EtcdStore, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("metadata: open etcd store: no endpoints")
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "/gregor"
	}
	prefix = strings.TrimRight(prefix, "/") + "/"
	ttl := cfg.LeaseTTL
	if ttl <= 0 {
		ttl = 3 * time.Second
	}
	ttl = time.Duration(math.Ceil(ttl.Seconds())) * time.Second
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = 5 * time.Second
	}
	log := cfg.Logger.With().Str("component", "metadata").Logger()

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: dial,
		Logger:      newZapLogger(cfg.Logger.With().Str("component", "etcd-client").Logger(), zapcore.WarnLevel, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("metadata: connect to etcd %v: %w", cfg.Endpoints, err)
	}
	if cfg.ClusterID != "" {
		if _, err := ParseTopicID(cfg.ClusterID); err != nil {
			_ = cli.Close()
			return nil, fmt.Errorf("metadata: cluster id %q: %w", cfg.ClusterID, err)
		}
	}
	s := newEtcdStore(log, cli, prefix, ttl)
	s.wantClusterID = cfg.ClusterID
	if err := s.load(ctx); err != nil {
		s.cancel()
		_ = cli.Close()
		return nil, err
	}
	s.start()
	s.mu.Lock()
	rev, topics, brokers := s.mu.rev, len(s.mu.topics), len(s.mu.brokers)
	s.mu.Unlock()
	log.Info().
		Str("cluster_id", s.clusterID).
		Str("prefix", prefix).
		Strs("endpoints", cfg.Endpoints).
		Int64("revision", rev).
		Int("topics", topics).
		Int("brokers", brokers).
		Msg("metadata store open")
	return s, nil
}

// newEtcdStore makes a store that has read nothing yet; load and start
// bring it up (tests call them separately).
func newEtcdStore(log zerolog.Logger, cli *clientv3.Client, prefix string, ttl time.Duration) *EtcdStore {
	s := &EtcdStore{
		log:    log,
		subs:   subscribers{log: log},
		cli:    cli,
		prefix: prefix,
		ttl:    ttl,
		closed: make(chan struct{}),

		regCheck: make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.advanced = make(chan struct{})
	s.mu.topics = map[string]cachedTopic{}
	s.mu.byID = map[TopicID]string{}
	s.mu.brokers = map[int32]Broker{}
	s.mu.incarnations = map[int32]BrokerIncarnation{}
	s.mu.brokerConfigs = map[int32]map[string]string{}
	s.mu.partitions = map[string]map[int32]PartitionState{}
	s.mu.controller = map[string]controllerCandidate{}
	s.mu.deleted = map[TopicID]DeletedTopic{}
	s.mu.faults = map[string]Fault{}
	s.mu.suspended = map[string]cachedTopic{}
	s.mu.ownCandidacies = map[string]chan struct{}{}
	return s
}

// load makes sure the cluster id exists and fills the cache.
func (s *EtcdStore) load(ctx context.Context) error {
	id, err := s.ensureClusterID(ctx)
	if err != nil {
		return err
	}
	s.clusterID = id
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("metadata: read %s: %w", s.prefix, err)
	}
	s.mu.Lock()
	_ = s.replaceLocked(resp.Kvs) // no subscriber can exist yet
	s.mu.rev = resp.Header.Revision
	var newer []string
	for key, f := range s.mu.faults {
		if f.Newer {
			newer = append(newer, key)
		}
	}
	s.mu.Unlock()
	if len(newer) > 0 {
		slices.Sort(newer)
		return fmt.Errorf("metadata: %s hold values of a newer format than this Gregor reads (a newer Gregor wrote them): upgrade Gregor: %w",
			strings.Join(newer, ", "), ErrNewerVersion)
	}
	return nil
}

// ensureClusterID reads the cluster id, creating it if no broker has yet.
func (s *EtcdStore) ensureClusterID(ctx context.Context) (string, error) {
	key := s.prefix + clusterIDKey
	id := s.wantClusterID
	if id == "" {
		random, err := newID()
		if err != nil {
			return "", err
		}
		id = random.String()
	}
	val, err := encodeCluster(id)
	if err != nil {
		return "", err
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return "", fmt.Errorf("metadata: read or create cluster id at %s: %w", key, err)
	}
	if resp.Succeeded {
		s.log.Info().Str("cluster_id", id).Str("key", key).Msg("created cluster id")
		return id, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) != 1 {
		return "", fmt.Errorf("metadata: cluster id at %s: key vanished while being read", key)
	}
	existing, err := decodeCluster(kvs[0].Value)
	if err != nil {
		return "", fmt.Errorf("metadata: cluster id at %s: %w", key, err)
	}
	if s.wantClusterID != "" && existing != s.wantClusterID {
		s.log.Warn().Str("cluster_id", existing).Str("given_cluster_id", s.wantClusterID).Str("key", key).
			Msg("the cluster has an id already: keeping it, the given cluster id only names a new cluster")
	}
	return existing, nil
}

// start launches the watch goroutine.
func (s *EtcdStore) start() {
	s.wg.Add(1)
	go s.watchLoop()
}

// watchLoop follows the prefix until Close, reading it whole again when
// the watch has lost its place. It is the only writer of the cache.
func (s *EtcdStore) watchLoop() {
	defer s.wg.Done()
	// A panic in applying or publishing is recovered per watch (safe.Run
	// below), and the cache is read whole again.
	delay := retryMin
	for {
		s.mu.Lock()
		from := s.mu.rev + 1
		s.mu.Unlock()
		var compacted, progressed bool
		var err error
		if safe.Run(s.log, "metadata watch", func() { compacted, progressed, err = s.follow(from) }) {
			// Whatever the watch was applying may be half done: read
			// everything again.
			compacted, err = true, errors.New("metadata watch panicked")
		}
		if s.ctx.Err() != nil {
			return
		}
		if progressed {
			delay = retryMin
		}
		if compacted {
			s.log.Warn().Int64("from_revision", from).Err(err).Msg("metadata watch fell behind compaction; reading all metadata again")
			err := errors.New("reading all metadata panicked")
			safe.Run(s.log, "metadata resync", func() { err = s.resync() })
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				s.log.Warn().Err(err).Dur("retry_in", delay).Msg("reading all metadata failed")
			} else {
				delay = retryMin
				continue
			}
		} else {
			s.log.Warn().Int64("from_revision", from).Err(err).Dur("retry_in", delay).Msg("metadata watch ended; watching again")
		}
		if !s.pause(delay) {
			return
		}
		delay = min(2*delay, retryMax)
	}
}

// follow watches from revision from and applies what arrives until the
// watch ends. compacted: from is no longer available. progressed: at least
// one response was applied.
func (s *EtcdStore) follow(from int64) (compacted, progressed bool, err error) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.ctx))
	defer cancel()
	for resp := range s.cli.Watch(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if resp.CompactRevision != 0 {
			return true, progressed, resp.Err()
		}
		if err := resp.Err(); err != nil {
			return false, progressed, err
		}
		if len(resp.Events) > 0 {
			s.applyEvents(resp.Events)
			progressed = true
		}
	}
	return false, progressed, errors.New("watch channel closed")
}

// resync reads the whole prefix and reports the difference from the cache
// as events.
func (s *EtcdStore) resync() error {
	ctx, cancel := context.WithTimeout(s.ctx, resyncTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("metadata: read %s: %w", s.prefix, err)
	}
	events := func() []Event {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.classifyLocked(s.replaceLocked(resp.Kvs))
	}()
	s.subs.publish(events)
	s.advance(resp.Header.Revision)
	s.checkRegistration()
	return nil
}

// applyEvents applies one watch response, delivers its events and then
// publishes its revision.
func (s *EtcdStore) applyEvents(evs []*clientv3.Event) {
	out, rev := s.applyEventsToCache(evs)
	s.subs.publish(out)
	s.advance(rev)
	s.checkRegistration()
}

// applyEventsToCache applies one watch response to the cache and returns
// its topic events and highest revision.
func (s *EtcdStore) applyEventsToCache(evs []*clientv3.Event) ([]Event, int64) {
	var out []Event
	s.mu.Lock()
	defer s.mu.Unlock()
	applied := s.mu.rev
	rev := applied
	for _, ev := range evs {
		if ev.Kv.ModRevision <= applied {
			continue // already read by a resync
		}
		out = s.applyLocked(out, ev.Kv, ev.Type == clientv3.EventTypeDelete)
		rev = max(rev, ev.Kv.ModRevision)
	}
	// A deletion record and the deletion it records are one transaction,
	// so one response: classify once all of it is applied.
	return s.classifyLocked(out), rev
}

// checkRegistration signals the keep-alive loop when the cache does not
// show this store's registration under the lease it keeps alive. The
// watch goroutine calls it after publishing a revision, so the loop's
// check (registrationMissing) sees at least that revision applied.
func (s *EtcdStore) checkRegistration() {
	node := s.regNode.Load()
	if node == 0 {
		return
	}
	s.mu.Lock()
	inc, ok := s.mu.incarnations[int32(node-1)]
	s.mu.Unlock()
	if ok && inc.lease == s.regLease.Load() {
		return
	}
	select {
	case s.regCheck <- struct{}{}:
	default:
	}
}

// advance publishes rev as applied and wakes writers waiting for it.
func (s *EtcdStore) advance(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.mu.rev {
		return
	}
	s.mu.rev = rev
	s.appliedRev.Store(rev)
	close(s.mu.advanced)
	s.mu.advanced = make(chan struct{})
}

// classifyLocked turns each TopicDeleted of evs whose topic id has no
// deletion record into TopicUnavailable: only an explicit deletion lets a
// broker remove data. s.mu must be held.
func (s *EtcdStore) classifyLocked(evs []Event) []Event {
	for i := range evs {
		if evs[i].Kind == TopicDeleted {
			if _, ok := s.mu.deleted[evs[i].Topic.ID]; !ok {
				evs[i].Kind = TopicUnavailable
			}
		}
	}
	return evs
}

// applyLocked applies one key's new value (or its deletion) to the cache,
// appending the topic events it makes to out; a topic's removal is
// reported as TopicDeleted, which classifyLocked then checks against the
// deletion records. A topic, partition state or dynamic config value that
// does not decode is a fault (logged at error, reported by Faults) and
// leaves the last good value in place; a topic value of a newer format
// takes the topic out of the cache (TopicUnavailable): this Gregor cannot
// know what it means. Other undecodable values are treated as absent, with
// one warning. s.mu must be held.
func (s *EtcdStore) applyLocked(out []Event, kv *mvccpb.KeyValue, deleted bool) []Event {
	key := string(kv.Key)
	rel := strings.TrimPrefix(key, s.prefix)
	if deleted || !strings.HasPrefix(rel, controllerDir) {
		delete(s.mu.faults, key) // set again below if the new value is bad too
	}
	switch {
	case strings.HasPrefix(rel, topicsDir):
		name := rel[len(topicsDir):]
		if err := checkTopicName(name); err != nil {
			s.warnUndecodable(kv, err)
			return out
		}
		if sus, ok := s.mu.suspended[name]; ok {
			// Out of service already (a newer partition state): it
			// stays out, holding the latest readable topic value.
			delete(s.mu.suspended, name)
			if deleted {
				return append(out, Event{Kind: TopicDeleted, Topic: sus.t})
			}
			t, err := decodeTopic(name, kv.Value)
			if err != nil {
				s.noteFaultLocked(kv, err)
				if errors.Is(err, ErrNewerVersion) {
					return out
				}
				t = sus.t
			}
			if t.ID != sus.t.ID {
				out = append(out, Event{Kind: TopicDeleted, Topic: sus.t})
			}
			s.mu.suspended[name] = cachedTopic{t: t, modRev: kv.ModRevision, createRev: kv.CreateRevision}
			return out
		}
		old, had := s.mu.topics[name]
		if deleted {
			if had {
				delete(s.mu.topics, name)
				delete(s.mu.byID, old.t.ID)
				out = append(out, Event{Kind: TopicDeleted, Topic: old.t})
			}
			return out
		}
		t, err := decodeTopic(name, kv.Value)
		if err != nil {
			newer := s.noteFaultLocked(kv, err)
			if newer && had {
				delete(s.mu.topics, name)
				delete(s.mu.byID, old.t.ID)
				out = append(out, Event{Kind: TopicUnavailable, Topic: old.t})
			}
			return out
		}
		if s.newerPartitionFaultLocked(name) != nil {
			if had {
				delete(s.mu.topics, name)
				delete(s.mu.byID, old.t.ID)
				out = append(out, Event{Kind: TopicUnavailable, Topic: old.t})
			}
			s.mu.suspended[name] = cachedTopic{t: t, modRev: kv.ModRevision, createRev: kv.CreateRevision}
			return out
		}
		kind := TopicCreated
		if had {
			if old.t.ID == t.ID {
				kind = TopicUpdated
			} else {
				delete(s.mu.byID, old.t.ID)
				out = append(out, Event{Kind: TopicDeleted, Topic: old.t})
			}
		}
		s.mu.topics[name] = cachedTopic{t: t, modRev: kv.ModRevision, createRev: kv.CreateRevision}
		s.mu.byID[t.ID] = name
		return append(out, Event{Kind: kind, Topic: t})

	case strings.HasPrefix(rel, partitionsDir):
		topic, part, err := parsePartitionRel(rel[len(partitionsDir):])
		if err != nil {
			s.warnUndecodable(kv, err)
			return out
		}
		var st PartitionState
		if !deleted {
			if st, err = decodePartition(topic, part, kv.ModRevision, kv.Value); err != nil {
				if s.noteFaultLocked(kv, err) {
					return s.suspendLocked(out, topic)
				}
				return out // the last good state stays
			}
		}
		out = s.resumeLocked(out, topic)
		if deleted {
			if ps := s.mu.partitions[topic]; ps != nil {
				delete(ps, part)
				if len(ps) == 0 {
					delete(s.mu.partitions, topic)
				}
			}
			return out
		}
		ps := s.mu.partitions[topic]
		if ps == nil {
			ps = map[int32]PartitionState{}
			s.mu.partitions[topic] = ps
		}
		ps[part] = st
		return append(out, Event{Kind: PartitionChanged, Partition: copyPartition(st)})

	case strings.HasPrefix(rel, controllerDir):
		if deleted {
			delete(s.mu.controller, rel)
			if gone, ok := s.mu.ownCandidacies[key]; ok {
				// Our candidacy's key went while its session lives
				// (etcd emptied or restored): the role is lost.
				delete(s.mu.ownCandidacies, key)
				close(gone)
			}
			return out
		}
		id, err := parseNodeID(string(kv.Value))
		if err != nil {
			s.warnUndecodable(kv, err)
			delete(s.mu.controller, rel)
			return out
		}
		s.mu.controller[rel] = controllerCandidate{nodeID: id, createRev: kv.CreateRevision, lease: kv.Lease}
		return out

	case strings.HasPrefix(rel, brokersDir):
		id, err := parseNodeID(rel[len(brokersDir):])
		if err != nil {
			s.warnUndecodable(kv, err)
			return out
		}
		var b Broker
		if !deleted {
			if b, err = decodeBroker(id, kv.Value); err != nil {
				s.warnUndecodable(kv, err)
			}
		}
		if deleted || err != nil {
			delete(s.mu.brokers, id)
			delete(s.mu.incarnations, id)
		} else {
			s.mu.brokers[id] = b
			s.mu.incarnations[id] = BrokerIncarnation{lease: kv.Lease, createRev: kv.CreateRevision}
		}
		return out

	case strings.HasPrefix(rel, brokerConfigsDir):
		id, err := parseNodeID(rel[len(brokerConfigsDir):])
		if err != nil {
			s.warnUndecodable(kv, err)
			return out
		}
		var configs map[string]string
		if !deleted {
			if configs, err = decodeBrokerConfigs(kv.Value); err != nil {
				s.noteFaultLocked(kv, err)
				return out // the last good configs stay
			}
		}
		if deleted {
			delete(s.mu.brokerConfigs, id)
		} else {
			s.mu.brokerConfigs[id] = configs
		}
		return out

	case strings.HasPrefix(rel, deletedTopicsDir):
		idText := rel[len(deletedTopicsDir):]
		if deleted {
			if id, err := ParseTopicID(idText); err == nil {
				delete(s.mu.deleted, id)
			}
			return out
		}
		d, err := decodeDeletedTopic(idText, kv.Value)
		if err != nil {
			s.noteFaultLocked(kv, err)
			return out
		}
		s.mu.deleted[d.ID] = d
		return out
	}
	// The cluster id never changes after it is written; other keys belong
	// to a newer Gregor.
	return out
}

// replaceLocked makes the cache hold exactly kvs (a read of the whole
// prefix) and returns, as events, how the topics changed: deletions first,
// then creations and updates, each in name order. s.mu must be held.
func (s *EtcdStore) replaceLocked(kvs []*mvccpb.KeyValue) []Event {
	oldTopics, oldParts, oldConfigs, oldDeleted := s.mu.topics, s.mu.partitions, s.mu.brokerConfigs, s.mu.deleted
	s.mu.deleted = map[TopicID]DeletedTopic{}
	s.mu.faults = map[string]Fault{}
	s.mu.suspended = map[string]cachedTopic{}
	s.mu.topics = map[string]cachedTopic{}
	s.mu.byID = map[TopicID]string{}
	s.mu.brokers = map[int32]Broker{}
	s.mu.incarnations = map[int32]BrokerIncarnation{}
	s.mu.brokerConfigs = map[int32]map[string]string{}
	s.mu.partitions = map[string]map[int32]PartitionState{}
	s.mu.controller = map[string]controllerCandidate{}
	for _, kv := range kvs {
		// Topic events from a fresh cache are all creations; the
		// comparison with oldTopics below makes the real ones.
		_ = s.applyLocked(nil, kv, false)
	}
	s.keepLastGoodLocked(oldTopics, oldParts, oldConfigs, oldDeleted)
	// Partition keys sort before topic keys, so a topic whose partition
	// state is of a newer format was cached after its fault was noted.
	for name := range s.mu.topics {
		if s.newerPartitionFaultLocked(name) != nil {
			_ = s.suspendLocked(nil, name)
		}
	}
	for key, gone := range s.mu.ownCandidacies {
		if _, ok := s.mu.controller[strings.TrimPrefix(key, s.prefix)]; !ok {
			delete(s.mu.ownCandidacies, key)
			close(gone)
		}
	}

	var deleted, changed []Event
	for name, old := range oldTopics {
		cur, ok := s.mu.topics[name]
		if !ok || cur.t.ID != old.t.ID {
			deleted = append(deleted, Event{Kind: TopicDeleted, Topic: old.t})
		}
	}
	for name, cur := range s.mu.topics {
		old, ok := oldTopics[name]
		switch {
		case !ok || old.t.ID != cur.t.ID:
			changed = append(changed, Event{Kind: TopicCreated, Topic: cur.t})
		case old.modRev != cur.modRev:
			changed = append(changed, Event{Kind: TopicUpdated, Topic: cur.t})
		}
	}
	byName := func(a, b Event) int { return strings.Compare(a.Topic.Name, b.Topic.Name) }
	slices.SortFunc(deleted, byName)
	slices.SortFunc(changed, byName)
	// Partition states written while the watch was away, in key order.
	var parts []Event
	for topic, ps := range s.mu.partitions {
		for part, st := range ps {
			if old, ok := oldParts[topic][part]; !ok || old.Version != st.Version {
				parts = append(parts, Event{Kind: PartitionChanged, Partition: copyPartition(st)})
			}
		}
	}
	slices.SortFunc(parts, func(a, b Event) int {
		if c := strings.Compare(a.Partition.Topic, b.Partition.Topic); c != 0 {
			return c
		}
		return int(a.Partition.Partition) - int(b.Partition.Partition)
	})
	out := append(deleted, changed...)
	return append(out, parts...)
}

// keepLastGoodLocked puts back, after a read of the whole prefix, the last
// good value of every key whose value is now unreadable (but not of a
// newer format: see applyLocked). s.mu must be held.
func (s *EtcdStore) keepLastGoodLocked(oldTopics map[string]cachedTopic, oldParts map[string]map[int32]PartitionState,
	oldConfigs map[int32]map[string]string, oldDeleted map[TopicID]DeletedTopic) {
	for key, f := range s.mu.faults {
		if f.Newer {
			continue
		}
		rel := strings.TrimPrefix(key, s.prefix)
		switch {
		case strings.HasPrefix(rel, topicsDir):
			name := rel[len(topicsDir):]
			if old, ok := oldTopics[name]; ok {
				if _, taken := s.mu.byID[old.t.ID]; !taken {
					s.mu.topics[name] = old
					s.mu.byID[old.t.ID] = name
				}
			}
		case strings.HasPrefix(rel, partitionsDir):
			topic, part, err := parsePartitionRel(rel[len(partitionsDir):])
			if old, ok := oldParts[topic][part]; err == nil && ok {
				ps := s.mu.partitions[topic]
				if ps == nil {
					ps = map[int32]PartitionState{}
					s.mu.partitions[topic] = ps
				}
				ps[part] = old
			}
		case strings.HasPrefix(rel, brokerConfigsDir):
			if id, err := parseNodeID(rel[len(brokerConfigsDir):]); err == nil {
				if old, ok := oldConfigs[id]; ok {
					s.mu.brokerConfigs[id] = old
				}
			}
		case strings.HasPrefix(rel, deletedTopicsDir):
			if id, err := ParseTopicID(rel[len(deletedTopicsDir):]); err == nil {
				if old, ok := oldDeleted[id]; ok {
					s.mu.deleted[id] = old
				}
			}
		}
	}
}

// suspendLocked takes a topic out of service because one of its partition
// states is of a newer format: leading or following on a state this
// Gregor cannot read would be a guess. The topic keeps its data and
// returns (resumeLocked) once no such state is left. s.mu must be held.
func (s *EtcdStore) suspendLocked(out []Event, topic string) []Event {
	cur, ok := s.mu.topics[topic]
	if !ok {
		return out
	}
	delete(s.mu.topics, topic)
	delete(s.mu.byID, cur.t.ID)
	s.mu.suspended[topic] = cur
	return append(out, Event{Kind: TopicUnavailable, Topic: cur.t})
}

// resumeLocked puts a suspended topic back once none of its partition
// states is of a newer format, reporting it as created so brokers open its
// logs again. s.mu must be held.
func (s *EtcdStore) resumeLocked(out []Event, topic string) []Event {
	sus, ok := s.mu.suspended[topic]
	if !ok || s.newerPartitionFaultLocked(topic) != nil {
		return out
	}
	delete(s.mu.suspended, topic)
	if _, taken := s.mu.byID[sus.t.ID]; taken {
		return out
	}
	s.mu.topics[topic] = sus
	s.mu.byID[sus.t.ID] = topic
	return append(out, Event{Kind: TopicCreated, Topic: sus.t})
}

// newerPartitionFaultLocked returns the fault of a partition state of the
// topic that is of a newer format, or nil. s.mu must be held.
func (s *EtcdStore) newerPartitionFaultLocked(topic string) error {
	dir := s.prefix + partitionsDir
	for key, f := range s.mu.faults {
		if !f.Newer || !strings.HasPrefix(key, dir) {
			continue
		}
		if t, _, err := parsePartitionRel(key[len(dir):]); err == nil && t == topic {
			return f.Err
		}
	}
	return nil
}

// noteFaultLocked records an unreadable value and logs it at error (a
// value of a newer format says to upgrade); it reports whether the value
// is of a newer format. s.mu must be held.
func (s *EtcdStore) noteFaultLocked(kv *mvccpb.KeyValue, err error) bool {
	newer := errors.Is(err, ErrNewerVersion)
	key := string(kv.Key)
	s.mu.faults[key] = Fault{Key: key, Err: err, Newer: newer}
	msg := "unreadable metadata value: serving the last good value, if any, until it is repaired"
	if newer {
		msg = "metadata value of a newer format than this Gregor reads: upgrade Gregor; a topic so written is not served (its data is kept)"
	}
	s.log.Error().Str("key", key).Int64("mod_revision", kv.ModRevision).Err(err).Msg(msg)
	return newer
}

// Faults implements Store.
func (s *EtcdStore) Faults() []Fault {
	s.mu.Lock()
	out := make([]Fault, 0, len(s.mu.faults))
	for _, f := range s.mu.faults {
		out = append(out, f)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Fault) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// TopicFault implements Store.
func (s *EtcdStore) TopicFault(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.mu.faults[s.topicKey(name)]; ok {
		return f.Err
	}
	return s.newerPartitionFaultLocked(name)
}

// Deleted implements Store.
func (s *EtcdStore) Deleted(id TopicID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.mu.deleted[id]
	return ok
}

func (s *EtcdStore) warnUndecodable(kv *mvccpb.KeyValue, err error) {
	s.log.Warn().
		Str("key", string(kv.Key)).
		Int64("mod_revision", kv.ModRevision).
		Err(err).
		Msg("skipping undecodable metadata value")
}

// pause waits d, or less if the store closes; false means it closed.
func (s *EtcdStore) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// waitApplied returns once the cache reflects revision rev.
func (s *EtcdStore) waitApplied(ctx context.Context, rev int64) error {
	for {
		s.mu.Lock()
		cur, advanced := s.mu.rev, s.mu.advanced
		s.mu.Unlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return fmt.Errorf("committed at revision %d but the local cache is at %d: %w", rev, cur, ctx.Err())
		case <-s.closed:
			return fmt.Errorf("committed at revision %d: %w", rev, ErrClosed)
		}
	}
}

// opCtx returns a context for one write: ctx, also canceled when the store
// closes.
func (s *EtcdStore) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// opErr wraps err from the write op, as ErrClosed if the store closed
// under it.
func (s *EtcdStore) opErr(op string, err error) error {
	if s.ctx.Err() != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("metadata: %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("metadata: %s: %w", op, err)
}

func (s *EtcdStore) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

func (s *EtcdStore) topicKey(name string) string { return s.prefix + topicsDir + name }

func (s *EtcdStore) brokerKey(id int32) string {
	return s.prefix + brokersDir + strconv.FormatInt(int64(id), 10)
}

func (s *EtcdStore) brokerConfigsKey(id int32) string {
	return s.prefix + brokerConfigsDir + strconv.FormatInt(int64(id), 10)
}

// ClusterID implements Store.
func (s *EtcdStore) ClusterID() string { return s.clusterID }

// Topics implements Store.
func (s *EtcdStore) Topics() []Topic {
	s.mu.Lock()
	out := make([]Topic, 0, len(s.mu.topics))
	for _, ct := range s.mu.topics {
		out = append(out, copyTopic(ct.t))
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic implements Store.
func (s *EtcdStore) Topic(name string) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, ok := s.mu.topics[name]
	if !ok {
		return Topic{}, false
	}
	return copyTopic(ct.t), true
}

// TopicByID implements Store.
func (s *EtcdStore) TopicByID(id TopicID) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ok := s.mu.byID[id]
	if !ok {
		return Topic{}, false
	}
	return copyTopic(s.mu.topics[name].t), true
}

// maxTxnOps is how many operations one etcd transaction may hold: etcd's
// default --max-txn-ops. Writes with more are split (see putChunked).
const maxTxnOps = 128

// CreateTopic implements Store. It also returns ErrInvalidTopicName,
// ErrInvalidPartitions for a count below 1, and ErrInvalidPartitionState
// for an assignment that is not one valid replica list per partition.
//
// The topic key and its partition keys go in one transaction when they
// fit in one (maxTxnOps); a larger topic's partition keys are written
// first, in transactions that each require the topic key to be absent,
// and the topic key last: readers ignore partition keys of a topic they do
// not know, so the topic still appears with all its partitions at once.
func (s *EtcdStore) CreateTopic(ctx context.Context, t Topic, assignment ...[]int32) (Topic, error) {
	op := "create topic " + strconv.Quote(t.Name)
	if s.isClosed() {
		return Topic{}, s.opErr(op, ErrClosed)
	}
	if err := checkTopicName(t.Name); err != nil {
		return Topic{}, err
	}
	if t.Partitions <= 0 {
		return Topic{}, fmt.Errorf("%w: topic %q with %d partitions", ErrInvalidPartitions, t.Name, t.Partitions)
	}
	id, err := newID()
	if err != nil {
		return Topic{}, err
	}
	t = Topic{Name: t.Name, ID: id, Partitions: t.Partitions, Configs: copyConfigs(t.Configs), ReplicationFactor: t.ReplicationFactor}
	val, err := encodeTopic(t)
	if err != nil {
		return Topic{}, err
	}
	parts, err := s.partitionPuts(t, 0, assignment)
	if err != nil {
		return Topic{}, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	key := s.topicKey(t.Name)
	absent := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	ok, err := s.putChunked(ctx, absent, parts)
	if err != nil {
		return Topic{}, s.opErr(op, err)
	}
	if !ok {
		return Topic{}, fmt.Errorf("%w: %q", ErrTopicExists, t.Name)
	}
	if len(parts) >= maxTxnOps {
		parts = nil // written already
	}
	resp, err := s.cli.Txn(ctx).
		If(absent).
		Then(append([]clientv3.Op{clientv3.OpPut(key, string(val))}, parts...)...).
		Commit()
	if err != nil {
		return Topic{}, s.opErr(op, err)
	}
	if !resp.Succeeded {
		return Topic{}, fmt.Errorf("%w: %q", ErrTopicExists, t.Name)
	}
	if err := s.waitApplied(ctx, resp.Header.Revision); err != nil {
		return Topic{}, s.opErr(op, err)
	}
	s.log.Info().Str("topic", t.Name).Stringer("topic_id", t.ID).Int32("partitions", t.Partitions).Bool("placed", len(assignment) > 0).Msg("created topic")
	return copyTopic(t), nil
}

// partitionPuts are the puts of the first states of partitions first..
// of t as assignment places them (none without one). The assignment must
// cover exactly partitions first..t.Partitions-1.
func (s *EtcdStore) partitionPuts(t Topic, first int32, assignment [][]int32) ([]clientv3.Op, error) {
	if len(assignment) == 0 {
		return nil, nil
	}
	if int64(first)+int64(len(assignment)) != int64(t.Partitions) {
		return nil, fmt.Errorf("%w: topic %q: %d replica lists for partitions %d..%d", ErrInvalidPartitionState, t.Name, len(assignment), first, t.Partitions-1)
	}
	states, err := placedStates(t, first, assignment)
	if err != nil {
		return nil, err
	}
	ops := make([]clientv3.Op, 0, len(states))
	for _, st := range states {
		val, err := encodePartition(st)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(s.prefix+partitionRel(t.Name, st.Partition), string(val)))
	}
	return ops, nil
}

// putChunked writes ops ahead of a final write that will not fit them
// (maxTxnOps with the final write's own op), in transactions of at most
// maxTxnOps that each require cond; false when cond failed. With few
// enough ops it writes nothing: the final write carries them.
func (s *EtcdStore) putChunked(ctx context.Context, cond clientv3.Cmp, ops []clientv3.Op) (bool, error) {
	if len(ops) < maxTxnOps {
		return true, nil
	}
	for len(ops) > 0 {
		n := min(len(ops), maxTxnOps)
		resp, err := s.cli.Txn(ctx).If(cond).Then(ops[:n]...).Commit()
		if err != nil {
			return false, err
		}
		if !resp.Succeeded {
			return false, nil
		}
		ops = ops[n:]
	}
	return true, nil
}

// DeleteTopic implements Store.
func (s *EtcdStore) DeleteTopic(ctx context.Context, name string) error {
	op := "delete topic " + strconv.Quote(name)
	if s.isClosed() {
		return s.opErr(op, ErrClosed)
	}
	if err := checkTopicName(name); err != nil {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	key := s.topicKey(name)
	var lease clientv3.LeaseID
	for attempt := 1; ; attempt++ {
		// Without the id there is nothing to record the deletion of, and
		// no broker would remove the data: an unreadable value must be
		// repaired first.
		kv, t, err := s.readTopic(ctx, op, name)
		if err != nil {
			return err
		}
		rec, err := encodeDeletedTopic(DeletedTopic{ID: t.ID, Name: name, Partitions: t.Partitions, DeletedMs: time.Now().UnixMilli()})
		if err != nil {
			return err
		}
		if lease == 0 {
			g, err := s.cli.Grant(ctx, int64(deletionRecordTTL/time.Second))
			if err != nil {
				return s.opErr(op, fmt.Errorf("grant deletion record lease: %w", err))
			}
			lease = g.ID
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(s.prefix+deletedTopicsDir+t.ID.String(), string(rec), clientv3.WithLease(lease)),
				clientv3.OpDelete(key),
				clientv3.OpDelete(s.prefix+partitionsDir+name+"/", clientv3.WithPrefix())).
			Commit()
		if err != nil {
			return s.opErr(op, err)
		}
		if !resp.Succeeded {
			s.log.Debug().Str("topic", name).Int("attempt", attempt).Msg("topic changed concurrently; retrying delete")
			continue
		}
		if err := s.waitApplied(ctx, resp.Header.Revision); err != nil {
			return s.opErr(op, err)
		}
		s.log.Info().Str("topic", name).Stringer("topic_id", t.ID).Msg("deleted topic")
		return nil
	}
}

// readTopic reads a topic's key from etcd (not the cache) for a
// read-change-write of operation op: ErrUnknownTopic if it is absent, an
// error naming the key if its value does not read.
func (s *EtcdStore) readTopic(ctx context.Context, op, name string) (*mvccpb.KeyValue, Topic, error) {
	key := s.topicKey(name)
	got, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, Topic{}, s.opErr(op, err)
	}
	if len(got.Kvs) == 0 {
		return nil, Topic{}, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	kv := got.Kvs[0]
	t, err := decodeTopic(name, kv.Value)
	if err != nil {
		return nil, Topic{}, fmt.Errorf("metadata: %s: stored value at %s is unreadable: %w", op, key, err)
	}
	return kv, t, nil
}

// SetTopicConfigs implements Store.
func (s *EtcdStore) SetTopicConfigs(ctx context.Context, name string, configs map[string]string) error {
	configs = copyConfigs(configs)
	return s.updateTopic(ctx, name, "set configs of topic", func(t *Topic) ([]clientv3.Op, error) {
		t.Configs = configs
		return nil, nil
	})
}

// SetPartitionCount implements Store. The new partitions' states, when
// assigned, are written with the count as CreateTopic writes a topic's.
func (s *EtcdStore) SetPartitionCount(ctx context.Context, name string, n int32, assignment ...[]int32) error {
	return s.updateTopic(ctx, name, "set partition count of topic", func(t *Topic) ([]clientv3.Op, error) {
		if n <= t.Partitions {
			return nil, fmt.Errorf("%w: topic %q has %d partitions, asked for %d", ErrInvalidPartitions, name, t.Partitions, n)
		}
		first := t.Partitions
		t.Partitions = n
		return s.partitionPuts(*t, first, assignment)
	})
}

// updateTopic changes a topic by read, change, compare-and-put, reading
// again when another writer got in between. change may return further
// puts, written with the topic (see CreateTopic for when there are many).
func (s *EtcdStore) updateTopic(ctx context.Context, name, what string, change func(*Topic) ([]clientv3.Op, error)) error {
	op := what + " " + strconv.Quote(name)
	if s.isClosed() {
		return s.opErr(op, ErrClosed)
	}
	if err := checkTopicName(name); err != nil {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	key := s.topicKey(name)
	for attempt := 1; ; attempt++ {
		kv, t, err := s.readTopic(ctx, op, name)
		if err != nil {
			return err
		}
		extra, err := change(&t)
		if err != nil {
			return err
		}
		val, err := encodeTopic(t)
		if err != nil {
			return err
		}
		unchanged := clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)
		ok, err := s.putChunked(ctx, unchanged, extra)
		if err != nil {
			return s.opErr(op, err)
		}
		if !ok {
			s.log.Debug().Str("topic", name).Int("attempt", attempt).Msg("topic changed concurrently; retrying update")
			continue
		}
		if len(extra) >= maxTxnOps {
			extra = nil // written already
		}
		resp, err := s.cli.Txn(ctx).
			If(unchanged).
			Then(append([]clientv3.Op{clientv3.OpPut(key, string(val))}, extra...)...).
			Commit()
		if err != nil {
			return s.opErr(op, err)
		}
		if resp.Succeeded {
			if err := s.waitApplied(ctx, resp.Header.Revision); err != nil {
				return s.opErr(op, err)
			}
			s.log.Info().Str("topic", name).Int32("partitions", t.Partitions).Int("configs", len(t.Configs)).Msg("updated topic")
			return nil
		}
		s.log.Debug().Str("topic", name).Int("attempt", attempt).Msg("topic changed concurrently; retrying update")
	}
}

// Partition implements Store.
func (s *EtcdStore) Partition(topic string, partition int32) (PartitionState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.topics[topic]
	if !ok {
		return PartitionState{}, false
	}
	st, ok := s.mu.partitions[topic][partition]
	if !ok || st.TopicID != t.t.ID || partition >= t.t.Partitions {
		return PartitionState{}, false
	}
	return copyPartition(st), true
}

// PartitionStates implements Store.
func (s *EtcdStore) PartitionStates(topic string) []PartitionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.topics[topic]
	if !ok {
		return nil
	}
	var out []PartitionState
	for part, st := range s.mu.partitions[topic] {
		if st.TopicID == t.t.ID && part < t.t.Partitions {
			out = append(out, copyPartition(st))
		}
	}
	slices.SortFunc(out, func(a, b PartitionState) int { return int(a.Partition) - int(b.Partition) })
	return out
}

// SetPartitionState implements Store. The transaction compares the
// partition key's mod revision with st.Version and the topic key's create
// revision with the cached topic's, so a state never lands on a newer
// incarnation of a topic of the same name.
func (s *EtcdStore) SetPartitionState(ctx context.Context, st PartitionState) (int64, error) {
	op := fmt.Sprintf("set state of partition %s-%d", st.Topic, st.Partition)
	if s.isClosed() {
		return 0, s.opErr(op, ErrClosed)
	}
	if err := checkTopicName(st.Topic); err != nil {
		return 0, fmt.Errorf("%w: %q", ErrUnknownTopic, st.Topic)
	}
	val, err := encodePartition(st)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	t, ok := s.mu.topics[st.Topic]
	s.mu.Unlock()
	if !ok || t.t.ID != st.TopicID || st.Partition >= t.t.Partitions {
		return 0, fmt.Errorf("%w: %s-%d (topic id %s)", ErrUnknownTopic, st.Topic, st.Partition, st.TopicID)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	key := s.prefix + partitionRel(st.Topic, st.Partition)
	topicKey := s.topicKey(st.Topic)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", st.Version),
			clientv3.Compare(clientv3.CreateRevision(topicKey), "=", t.createRev)).
		Then(clientv3.OpPut(key, string(val))).
		Else(clientv3.OpGet(topicKey, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return 0, s.opErr(op, err)
	}
	if !resp.Succeeded {
		if got := resp.Responses[0].GetResponseRange(); got == nil || len(got.Kvs) == 0 || got.Kvs[0].CreateRevision != t.createRev {
			return 0, fmt.Errorf("%w: %s-%d: the topic was deleted", ErrUnknownTopic, st.Topic, st.Partition)
		}
		return 0, fmt.Errorf("%w: %s at version %d", ErrConflict, op, st.Version)
	}
	if err := s.waitApplied(ctx, resp.Header.Revision); err != nil {
		return 0, s.opErr(op, err)
	}
	s.log.Debug().Str("topic", st.Topic).Int32("partition", st.Partition).Int32("leader", st.Leader).
		Int32("leader_epoch", st.LeaderEpoch).Ints32("isr", st.ISR).Msg("set partition state")
	return resp.Header.Revision, nil
}

// BrokerConfigs implements Store.
func (s *EtcdStore) BrokerConfigs(nodeID int32) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyConfigs(s.mu.brokerConfigs[nodeID])
}

// SetBrokerConfigs implements Store.
func (s *EtcdStore) SetBrokerConfigs(ctx context.Context, nodeID int32, configs map[string]string) error {
	op := fmt.Sprintf("set configs of broker %d", nodeID)
	if s.isClosed() {
		return s.opErr(op, ErrClosed)
	}
	val, err := encodeBrokerConfigs(configs)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Put(ctx, s.brokerConfigsKey(nodeID), string(val))
	if err != nil {
		return s.opErr(op, err)
	}
	if err := s.waitApplied(ctx, resp.Header.Revision); err != nil {
		return s.opErr(op, err)
	}
	return nil
}

// RegisterBroker implements Store. The registration is kept alive by a
// goroutine of the store; if the lease is lost anyway (etcd unreachable for
// longer than LeaseTTL), that goroutine registers again with a new lease
// once it can. Calling it again updates the registration; one store
// registers one node id.
func (s *EtcdStore) RegisterBroker(ctx context.Context, b Broker) error {
	op := fmt.Sprintf("register broker %d", b.NodeID)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	s.reg.Lock()
	if s.reg.closed {
		s.reg.Unlock()
		return s.opErr(op, ErrClosed)
	}
	if s.reg.registered && s.reg.broker.NodeID != b.NodeID {
		s.reg.Unlock()
		return fmt.Errorf("metadata: %s: this store already registered broker %d", op, s.reg.broker.NodeID)
	}
	s.reg.broker = b
	start := time.Now()
	rev, err := s.putRegistrationLocked(ctx, false)
	if err != nil {
		s.reg.Unlock()
		return s.opErr(op, err)
	}
	s.reg.registered = true
	s.ownNodeID.Store(b.NodeID + 1)
	s.noteRenewed(start)
	if !s.reg.keeping {
		s.reg.keeping = true
		s.wg.Add(1)
		go func() {
			// A panic here stops renewals: the lease lapses and the
			// cluster counts this broker dead, as it would a crash.
			defer s.wg.Done()
			safe.Run(s.log, "broker registration keep-alive", s.keepAliveLoop)
		}()
	}
	s.reg.Unlock()

	if err := s.waitApplied(ctx, rev); err != nil {
		return s.opErr(op, err)
	}
	s.log.Info().Int32("node_id", b.NodeID).Str("host", b.Host).Int32("port", b.Port).Str("rack", b.Rack).Msg("registered broker")
	return nil
}

// putRegistrationLocked writes s.reg.broker under the lease, granting a new
// lease when there is none, when fresh is set, or when the current one has
// expired. It returns the revision of the write. s.reg must be held.
//
// s.reg.lease becomes a new lease only once the registration is written
// under it: the keep-alive loop renews s.reg.lease, and renewing a lease
// that holds no registration would keep RegistrationAlive true, and the
// loop content, while the registration is gone from the cluster. A lease
// granted for a write that then failed holds nothing and lapses after
// one TTL.
func (s *EtcdStore) putRegistrationLocked(ctx context.Context, fresh bool) (int64, error) {
	val, err := encodeBroker(s.reg.broker)
	if err != nil {
		return 0, err
	}
	key := s.brokerKey(s.reg.broker.NodeID)
	lease := s.reg.lease
	for range 2 {
		if fresh || lease == 0 {
			g, err := s.cli.Grant(ctx, int64(s.ttl/time.Second))
			if err != nil {
				return 0, fmt.Errorf("grant lease: %w", err)
			}
			lease = g.ID
		}
		resp, err := s.cli.Put(ctx, key, string(val), clientv3.WithLease(lease))
		if err == nil {
			s.reg.lease, s.reg.rev = lease, resp.Header.Revision
			s.regLease.Store(int64(lease))
			s.regNode.Store(int64(s.reg.broker.NodeID) + 1)
			return resp.Header.Revision, nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, err
		}
		fresh = true // the lease expired: take a new one, once
	}
	return 0, fmt.Errorf("put %s: a newly granted lease was not found", key)
}

// keepAliveLoop keeps the registration's lease alive until Close, and
// registers again under a new lease when the lease is lost, or when the
// registration is gone while the lease lives (a write of it whose answer
// was lost may have put it under a lease nobody renews).
func (s *EtcdStore) keepAliveLoop() {
	delay := retryMin
	for {
		s.reg.Lock()
		lease, nodeID := s.reg.lease, s.reg.broker.NodeID
		s.reg.Unlock()
		why := "broker registration lease lost; registering again"
		kctx, kcancel := context.WithCancel(s.ctx)
		ch, err := s.cli.KeepAlive(kctx, lease)
	recv:
		for err == nil {
			select {
			case _, ok := <-ch:
				if !ok {
					break recv
				}
				// A response says the lease lives. It is taken as sent
				// now; clientv3 renews every third of the TTL.
				s.noteRenewed(time.Now())
				delay = retryMin
			case <-s.regCheck:
				if s.registrationMissing(lease) {
					// The cluster counts this broker dead: so must
					// fencing, until the registration is back.
					s.aliveUntil.Store(0)
					why = "broker registration gone while its lease lives; registering again"
					break recv
				}
			}
		}
		kcancel()
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn().Int32("node_id", nodeID).Int64("lease", int64(lease)).Err(err).Dur("retry_in", delay).Msg(why)
		if !s.pause(delay) {
			return
		}
		delay = min(2*delay, retryMax)
		if err := s.renewRegistration(lease); err != nil && s.ctx.Err() == nil {
			s.log.Warn().Int32("node_id", nodeID).Err(err).Msg("registering broker again failed")
		}
	}
}

// registrationMissing reports whether the cache, caught up with the last
// write of the registration, shows it absent or under a lease other than
// lease, the one being kept alive.
func (s *EtcdStore) registrationMissing(lease clientv3.LeaseID) bool {
	s.reg.Lock()
	defer s.reg.Unlock()
	if s.reg.closed || s.reg.lease != lease || s.appliedRev.Load() < s.reg.rev {
		return false // replaced meanwhile, or the cache has not seen the write yet
	}
	inc, ok := s.BrokerIncarnation(s.reg.broker.NodeID)
	return !ok || inc.lease != int64(lease)
}

// renewRegistration writes the registration under a new lease, unless
// RegisterBroker already replaced the lost lease.
func (s *EtcdStore) renewRegistration(lost clientv3.LeaseID) error {
	s.reg.Lock()
	defer s.reg.Unlock()
	if s.reg.closed || s.reg.lease != lost {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.ttl)
	defer cancel()
	start := time.Now()
	rev, err := s.putRegistrationLocked(ctx, true)
	if err != nil {
		return fmt.Errorf("metadata: register broker %d again: %w", s.reg.broker.NodeID, err)
	}
	// While the lease was lost another broker may have been elected for
	// our partitions: act on nothing until the cache shows what happened.
	s.resyncRev.Store(rev)
	s.noteRenewed(start)
	s.log.Info().Int32("node_id", s.reg.broker.NodeID).Msg("registered broker again")
	return nil
}

// Brokers implements Store.
func (s *EtcdStore) Brokers() []Broker {
	s.mu.Lock()
	out := make([]Broker, 0, len(s.mu.brokers))
	for _, b := range s.mu.brokers {
		b.Listeners = slices.Clone(b.Listeners)
		out = append(out, b)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// Subscribe implements Store; see EtcdStore for what fn may do. After
// Close, fn is never called.
func (s *EtcdStore) Subscribe(fn func(Event)) (unsubscribe func()) {
	return s.subs.add(fn)
}

// Close implements Store: it stops the watch and the keep-alive, revokes
// the registration's lease (so the broker leaves Brokers() at once) and
// closes the etcd client. Writes in flight fail with ErrClosed. Calling it
// again returns the first call's result.
func (s *EtcdStore) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.closeElections()
		s.cancel()
		s.reg.Lock()
		s.reg.closed = true
		lease, registered := s.reg.lease, s.reg.registered
		s.reg.Unlock()
		s.wg.Wait()
		s.subs.closeAll()

		var errs []error
		if lease != 0 {
			// Past the TTL the lease is gone anyway.
			ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
			_, err := s.cli.Revoke(ctx, lease)
			cancel()
			if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				errs = append(errs, fmt.Errorf("metadata: revoke broker lease %x: %w", int64(lease), err))
			}
		}
		if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("metadata: close etcd client: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info().Bool("registered", registered).Err(s.closeErr).Msg("metadata store closed")
	})
	return s.closeErr
}
