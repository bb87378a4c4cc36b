// Package broker accepts Kafka client connections, decodes requests,
// dispatches them to one handler per API (files named by api key, e.g.
// 00_produce.go) and writes responses back in request order.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/coordinator"
	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/replication"
	"github.com/gregorbroker/gregor/storage"
)

// Config is what a broker is started with.
type Config struct {
	// NodeID is this broker's id (node.id).
	NodeID int32
	// AdvertisedHost and AdvertisedPort are what Metadata tells clients.
	AdvertisedHost string
	AdvertisedPort int32
	// Listeners are the advertised endpoints of named listeners (Kafka's
	// advertised.listeners), for a broker reached under several names
	// (inside and outside a container network): a client is told the
	// endpoints of the listener it connected to (ServeListener). The
	// first is AdvertisedHost:AdvertisedPort. Empty: one listener.
	Listeners []metadata.Endpoint
	// Rack is this broker's rack (broker.rack), or empty.
	Rack string
	// DataDir holds the partition directories.
	DataDir string
	// StaticConfigs are broker configs given on the command line, by Kafka name
	// (num.partitions, log.segment.bytes, ...). They are validated by New.
	StaticConfigs map[string]string
	// Logger receives the broker's logs.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// IdleTimeout closes connections idle this long when
	// connections.max.idle.ms is not among StaticConfigs (which wins); 0
	// means Kafka's default, 10 minutes.
	IdleTimeout time.Duration
	// LogFS is the filesystem the partition logs are on; nil is the
	// operating system's. Tests inject disk faults through it.
	LogFS storage.FS
	// Metrics is the Prometheus registry the broker registers its metrics
	// in (metrics.go); nil gives it a registry of its own that nothing
	// serves. A registry serves one broker.
	Metrics *prometheus.Registry
}

// Broker serves the Kafka protocol for one node.
type Broker struct {
	cfg   Config
	log   zerolog.Logger
	now   func() time.Time
	store metadata.Store
	// producerIDs is this broker's block of producer ids (InitProducerId).
	producerIDs producerIDBlock
	configs     *configTable
	static      map[string]string // immutable after New
	maxReq      int32             // socket.request.max.bytes, immutable after New
	// verifyTxns is transaction.partition.verification.enable, immutable
	// after New.
	verifyTxns bool

	// files is the segment descriptor cache (log.segment.files.open.max)
	// the logs share, nil when unbounded; safe for concurrent use, closed
	// after the logs.
	files *storage.FileCache

	codecs *protocol.Codecs // safe for concurrent use
	bufs   bufferPool       // Fetch buffers (buffers.go); safe for concurrent use
	// reqBudget is queued.max.request.bytes: request frames read and not
	// yet handled; respBudget is queued.max.response.bytes: record bytes
	// fetched for consumers and not yet written; replicaBudget is
	// queued.max.replica.response.bytes, the same for followers, apart so
	// that consumers cannot starve replication. All safe for concurrent use.
	reqBudget, respBudget, replicaBudget *byteBudget
	// fetchMaxBytes is fetch.max.bytes, immutable after New.
	fetchMaxBytes int32
	handlers      *registry
	metrics       *brokerMetrics // set in New before the partitions open; safe for concurrent use
	parts         *partitionSet
	coord         *coordinator.Coordinator    // safe for concurrent use
	txn           *coordinator.TxnCoordinator // safe for concurrent use
	markers       *markerWriter               // safe for concurrent use
	peers         *peerPool                   // safe for concurrent use
	// lagPeers asks other leaders for high watermarks when /metrics is
	// scraped (metrics.go), apart from peers so that a scrape never
	// delays a marker write; safe for concurrent use.
	lagPeers *peerPool
	cleaner  *logCleaner // set by startLogCleaner in New; safe for concurrent use

	// ctx is cancelled when Close starts; handlers that wait (Fetch) stop early.
	ctx    context.Context
	cancel context.CancelFunc

	// mu protects listeners, conns, limits and closed; wg counts
	// connection goroutines.
	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	limits    connLimits
	closed    bool
	wg        sync.WaitGroup

	unsubscribe func()
	ctrl        *metadata.Controller // this broker's controller candidacy
	// repl fetches the partitions this broker follows (replicas.go).
	repl *replication.Manager
	// bg counts background work (ISR writes, the ISR shrink loop); Close
	// waits for it after cancelling ctx.
	bg sync.WaitGroup
}

// New creates a broker over a metadata store. It opens the partition logs
// of every existing topic.
func New(cfg Config, store metadata.Store) (*Broker, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Broker{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		store:   store,
		configs: newConfigTable(),
		static:  make(map[string]string, len(cfg.StaticConfigs)),
		conns:   make(map[*conn]struct{}),
		codecs:  protocol.NewCodecs(),
		cleaner: newLogCleaner(),
	}
	for k, v := range cfg.StaticConfigs {
		d, ok := b.configs.brokerIdx[k]
		if !ok {
			return nil, fmt.Errorf("broker: unknown config %q", k)
		}
		if d.check != nil {
			if err := d.check(v); err != nil {
				return nil, fmt.Errorf("broker: config %s: %w", k, err)
			}
		}
		b.static[k] = v
	}
	b.static["node.id"] = strconv.Itoa(int(cfg.NodeID))
	b.static["broker.id"] = strconv.Itoa(int(cfg.NodeID))
	b.static["log.dirs"] = cfg.DataDir
	b.static["advertised.listeners"] = "PLAINTEXT://" + net.JoinHostPort(cfg.AdvertisedHost, strconv.Itoa(int(cfg.AdvertisedPort)))
	if len(cfg.Listeners) > 0 {
		var ls []string
		for _, e := range cfg.Listeners {
			ls = append(ls, e.Name+"://"+net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port))))
		}
		b.static["advertised.listeners"] = strings.Join(ls, ",")
	}
	b.maxReq = protocol.DefaultMaxRequestSize
	if v, ok := b.static["socket.request.max.bytes"]; ok {
		n, _ := strconv.ParseInt(v, 10, 32)
		b.maxReq = int32(n)
	}
	if _, ok := b.static["connections.max.idle.ms"]; !ok && cfg.IdleTimeout > 0 {
		b.static["connections.max.idle.ms"] = strconv.FormatInt(cfg.IdleTimeout.Milliseconds(), 10)
	}
	b.cfg.IdleTimeout = time.Duration(b.brokerConfigInt("connections.max.idle.ms")) * time.Millisecond
	b.fetchMaxBytes = int32(b.brokerConfigInt("fetch.max.bytes"))
	b.reqBudget = newByteBudget(b.brokerConfigInt("queued.max.request.bytes"))
	b.respBudget = newByteBudget(b.brokerConfigInt("queued.max.response.bytes"))
	b.replicaBudget = newByteBudget(b.brokerConfigInt("queued.max.replica.response.bytes"))
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.verifyTxns = b.brokerConfig("transaction.partition.verification.enable") == "true"

	reg, err := b.buildRegistry()
	if err != nil {
		return nil, err
	}
	b.handlers = reg
	promReg := cfg.Metrics
	if promReg == nil {
		promReg = prometheus.NewRegistry()
	}
	if b.metrics, err = b.newBrokerMetrics(reg, promReg); err != nil {
		return nil, fmt.Errorf("broker: metrics: %w", err)
	}

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	if n := b.brokerConfigInt("log.segment.files.open.max"); n > 0 {
		b.files = storage.NewFileCache(int(n), b.log)
	}
	b.parts = newPartitionSet(b)
	b.repl = b.newReplicaManager()
	b.unsubscribe = store.Subscribe(b.parts.onEvent)
	regCtx, cancel := context.WithTimeout(b.ctx, startTimeout)
	defer cancel()
	if err := store.RegisterBroker(regCtx, b.self()); err != nil {
		b.unsubscribe()
		b.closeFiles()
		return nil, fmt.Errorf("broker: register: %w", err)
	}
	// Every broker is a candidate; the elected one places partitions and
	// moves leadership (metadata.Controller).
	b.ctrl = metadata.StartController(store, cfg.NodeID, controllerInterval, b.log)
	fail := func(err error) (*Broker, error) {
		b.ctrl.Close()
		b.unsubscribe()
		b.cancel()
		b.bg.Wait()
		b.repl.Close()
		b.parts.closeAll()
		b.closeFiles()
		return nil, err
	}
	// Metadata names the controller, and some admin clients (sarama's)
	// send requests to it: serve once one is known.
	for {
		if _, ok := store.Controller(); ok {
			break
		}
		select {
		case <-regCtx.Done():
			return fail(fmt.Errorf("broker: no controller elected: %w", regCtx.Err()))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := b.parts.openAll(); err != nil {
		return fail(err)
	}
	b.leaveISRsAfterCrash(regCtx)
	// The coordinator reads __consumer_offsets at start: its partitions
	// must have leaders first (on a first start after an upgrade, the
	// controller is placing them now).
	if t, ok := store.Topic(coordinator.OffsetsTopic); ok {
		if err := b.waitPlaced(regCtx, t); err != nil {
			return fail(fmt.Errorf("broker: %s: %w", coordinator.OffsetsTopic, err))
		}
	}
	b.coord = coordinator.New(b.coordinatorConfig(), b.offsetsLogs(), b.offsetsLogs(), b.codecs, b.log, b.now)
	if err := b.coord.Start(); err != nil {
		return fail(fmt.Errorf("broker: group coordinator: %w", err))
	}
	b.peers = &peerPool{b: b}
	b.lagPeers = &peerPool{b: b, clientID: "gregor-metrics"}
	b.markers = &markerWriter{b: b, peers: b.peers}
	b.txn = coordinator.NewTxn(b.txnCoordinatorConfig(), b.txnLogs(), b.markers, b.nextProducerID, b.offsetsLogs(), b.codecs, b.log, b.now)
	b.txn.Start()
	b.startISRChecks()
	b.startLogCleaner()
	b.startProducerExpiry()
	b.startRetention()
	b.startPeerLiveness()
	b.startFailedLogHandOff()
	b.startRecoveryCheckpoints()
	b.metrics.collector.ready.Store(true)
	return b, nil
}

// startISRChecks runs the ISR shrink check every half
// replica.lag.time.max.ms until Close.
func (b *Broker) startISRChecks() {
	maxLag := 30 * time.Second
	if n, err := strconv.ParseInt(b.brokerConfig("replica.lag.time.max.ms"), 10, 64); err == nil {
		maxLag = time.Duration(n) * time.Millisecond
	}
	b.every(maxLag/2, func() { b.parts.shrinkISRs(maxLag) })
}

// startProducerExpiry forgets idle producers' state in every local
// partition every producer.id.expiration.check.interval.ms until Close.
func (b *Broker) startProducerExpiry() {
	b.every(time.Duration(b.brokerConfigInt("producer.id.expiration.check.interval.ms"))*time.Millisecond, func() {
		// Read each time: the expiration is a dynamic broker config.
		before := b.now().UnixMilli() - b.brokerConfigInt("producer.id.expiration.ms")
		for _, part := range b.parts.all() {
			if n := part.log.ExpireProducers(before); n > 0 {
				b.log.Debug().Str("topic", part.topic).Int32("partition", part.index).Int("producers", n).Msg("expired idle producers")
			}
		}
	})
}

// every runs fn every interval (at least 10 ms) on a goroutine of its own
// until Close.
func (b *Broker) every(interval time.Duration, fn func()) {
	safe.Go(&b.bg, b.log, "periodic task", func() {
		t := time.NewTicker(max(interval, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-b.ctx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	})
}

// controlledShutdownTimeout bounds the leadership hand-off at Close.
const controlledShutdownTimeout = 10 * time.Second

// startTimeout bounds what New waits for: the registration, and the
// placement of __consumer_offsets.
const startTimeout = 30 * time.Second

// controllerInterval is how often the controller looks at the cluster
// when no metadata change wakes it: it bounds how late a dead broker's
// partitions move, after its registration lease expired.
const controllerInterval = 250 * time.Millisecond

// controllerID is the node id of the elected controller, or -1 while
// there is none (Kafka's value for "unknown").
func (b *Broker) controllerID() int32 {
	if id, ok := b.store.Controller(); ok {
		return id
	}
	return -1
}

// waitPlaced waits until every partition of t has a leader, as the
// controller records them, or ctx ends.
func (b *Broker) waitPlaced(ctx context.Context, t metadata.Topic) error {
	wake := make(chan struct{}, 1)
	unsubscribe := b.store.Subscribe(func(metadata.Event) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer unsubscribe()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		led := 0
		for _, st := range b.store.PartitionStates(t.Name) {
			if st.TopicID == t.ID && st.Leader != metadata.NoLeader {
				led++
			}
		}
		if led >= int(t.Partitions) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d partitions have a leader: %w", led, t.Partitions, ctx.Err())
		case <-wake:
		case <-tick.C:
		}
		if cur, ok := b.store.Topic(t.Name); !ok || cur.ID != t.ID {
			return fmt.Errorf("topic %s was deleted", t.Name)
		} else {
			t = cur // the partition count may have grown
		}
	}
}

// layers returns the broker-level config layers as of now.
func (b *Broker) layers() brokerLayers {
	return brokerLayers{
		dynamic:        b.store.BrokerConfigs(b.cfg.NodeID),
		dynamicDefault: b.store.BrokerConfigs(-1),
		static:         b.static,
	}
}

// brokerConfig resolves one broker config to its value ("" if null).
func (b *Broker) brokerConfig(name string) string {
	d, ok := b.configs.brokerIdx[name]
	if !ok {
		return ""
	}
	v := b.configs.resolveBroker(d, b.layers()).value
	if v == nil {
		return ""
	}
	return *v
}

func (b *Broker) brokerConfigInt(name string) int64 {
	n, _ := strconv.ParseInt(b.brokerConfig(name), 10, 64)
	return n
}

// self is this broker's registration.
func (b *Broker) self() metadata.Broker {
	return metadata.Broker{NodeID: b.cfg.NodeID, Host: b.cfg.AdvertisedHost, Port: b.cfg.AdvertisedPort, Rack: b.cfg.Rack, Listeners: b.cfg.Listeners}
}

// Serve accepts connections on l, the first listener, until Close. It
// returns nil after Close.
func (b *Broker) Serve(l net.Listener) error {
	name := ""
	if len(b.cfg.Listeners) > 0 {
		name = b.cfg.Listeners[0].Name
	}
	return b.ServeListener(l, name)
}

// ServeListener accepts connections on l for the named listener (one of
// Config.Listeners) until Close: clients connected there are told the
// endpoints of that listener. It returns nil after Close.
func (b *Broker) ServeListener(l net.Listener, listener string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errors.New("broker: closed")
	}
	b.listeners = append(b.listeners, l)
	b.mu.Unlock()
	var tempDelay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			b.mu.Lock()
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("broker: accept: %w", err)
			}
			// Anything else (out of file descriptors, a connection reset
			// before it was accepted) passes: a live broker keeps its
			// listener open, which peers take as proof of life
			// (peer_liveness.go).
			if tempDelay == 0 {
				b.log.Warn().Err(err).Msg("accept failed; retrying")
			}
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			time.Sleep(tempDelay)
			continue
		}
		tempDelay = 0
		ip := connAddr(nc)
		caps := b.connCapsFor(ip)
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			nc.Close()
			return nil
		}
		if !b.admitLocked(ip, caps) {
			b.mu.Unlock()
			nc.Close() // over max.connections or max.connections.per.ip
			continue
		}
		c := newConn(b, nc, listener)
		b.conns[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go func() {
			defer b.wg.Done()
			if safe.Run(b.log, "connection", c.serve) {
				// Outside a handler (those are recovered by dispatch):
				// this connection ends, the broker serves on.
				c.stop()
				c.nc.Close()
			}
			b.mu.Lock()
			delete(b.conns, c)
			b.releaseLocked(ip)
			b.mu.Unlock()
		}()
	}
}

// Close stops accepting, lets in-flight requests finish and their responses
// be written, closes every connection, then flushes and closes the logs.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	// Controlled shutdown: leadership moves to in-sync followers while
	// this broker still answers, so its clients are redirected at once.
	ctx, cancel := context.WithTimeout(context.Background(), controlledShutdownTimeout)
	if n := b.handOffLeadership(ctx); n > 0 {
		b.log.Info().Int("partitions", n).Msg("controlled shutdown: moved leadership to in-sync followers")
	}
	cancel()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, l := range b.listeners {
		l.Close()
	}
	for c := range b.conns {
		c.stopReading()
	}
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	b.txn.Close()
	b.peers.close()
	b.lagPeers.close()
	b.coord.Close()
	b.ctrl.Close()
	b.unsubscribe()
	b.bg.Wait()
	b.repl.Close()
	if err := b.checkpointLogStarts(); err != nil {
		b.log.Warn().Err(err).Msg("cannot write the log start offset checkpoint at shutdown")
	}
	err := b.parts.closeAll()
	b.closeFiles()
	return err
}

// Ready reports whether the broker is serving: a listener is open, Close
// has not begun, and every metadata value reads well. It backs /readyz;
// an unreadable value names its key (the broker goes on serving the last
// good state it read, but an operator must repair the value).
func (b *Broker) Ready() error {
	b.mu.Lock()
	closed, listening := b.closed, len(b.listeners) > 0
	b.mu.Unlock()
	switch {
	case closed:
		return errors.New("broker: shutting down")
	case !listening:
		return errors.New("broker: not listening yet")
	}
	if faults := b.store.Faults(); len(faults) > 0 {
		var lines []string
		for _, f := range faults {
			lines = append(lines, f.Key+": "+f.Err.Error())
		}
		return fmt.Errorf("broker: unreadable metadata values (repair them in etcd):\n%s", strings.Join(lines, "\n"))
	}
	return nil
}
