package metadata

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// EmbeddedConfig configures an etcd member run inside the broker process.
type EmbeddedConfig struct {
	// NodeID is the broker's node id; it names the member when Name is empty.
	NodeID int32
	// Name is the member's name in etcd; default "gregor-<NodeID>".
	Name string
	// DataDir holds etcd's WAL and database, e.g. "<data-dir>/etcd". Required.
	DataDir string
	// ClientAddr is the host:port clients (EtcdStore) connect to; default
	// "127.0.0.1:2379". It is also what the member advertises, so it must be
	// an address other members and brokers can reach, not 0.0.0.0. With a
	// host name rather than an IP (a container's name), the member listens
	// on every interface at that port.
	ClientAddr string
	// PeerAddr is the host:port other members connect to; default
	// "127.0.0.1:2380". Advertised and bound as ClientAddr is.
	PeerAddr string
	// InitialCluster lists the members of a new cluster as
	// "<name>=<peer URL>,..." (e.g. "1=http://h1:2380,2=http://h2:2380").
	// A name that is a plain node id ("1") stands for the member named
	// "gregor-1", the default Name of node 1; other names are used as is.
	// Empty: a cluster of this member alone. Only read when DataDir is new;
	// afterwards the membership stored in DataDir rules.
	InitialCluster string
	// ReadyTimeout bounds the wait for the member to join its cluster and
	// serve; default 60 s. A multi-member cluster is ready only once a
	// quorum of members is up.
	ReadyTimeout time.Duration
	// Logger receives etcd's own warnings and errors (its info chatter is
	// dropped) and one line when the member is ready.
	Logger zerolog.Logger
}

// EmbeddedEtcd is an etcd member running in this process. Close stops it.
type EmbeddedEtcd struct {
	etcd      *embed.Etcd // owned by this value; stopped by Close
	endpoints []string    // client URLs, read-only after start
	closeOnce sync.Once
	// closing is set when Close begins; from then on etcd's complaints
	// about its own listeners closing are logged at debug level.
	closing *atomic.Bool
}

// StartEmbeddedEtcd starts an etcd member and returns once it is ready to
// serve clients, or fails when it is not ready within cfg.ReadyTimeout or
// ctx ends first.
func StartEmbeddedEtcd(ctx context.Context, cfg EmbeddedConfig) (*EmbeddedEtcd, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout(cfg)) // one deadline, whatever starts it takes
	defer cancel()
	fast := singleMember(cfg.InitialCluster) && aloneInDataDir(cfg.DataDir)
	ee, members, err := startEmbedded(ctx, cfg, fast)
	if err == nil && fast && members > 1 {
		// Peers joined after the last start (etcd's own member API): a
		// 10 ms heartbeat would flood them with elections. Start again
		// with etcd's own timing.
		cfg.Logger.Info().Str("component", "etcd").Int("members", members).
			Msg("embedded etcd has peers in its data dir; restarting it with etcd's default raft timing")
		ee.Close()
		ee, members, err = startEmbedded(ctx, cfg, false)
	}
	if err == nil {
		noteMembers(cfg.DataDir, members, cfg.Logger)
	}
	return ee, err
}

// membersFile, in the member's data dir, holds how many members its
// cluster had when it last started: the data dir's membership, which
// rules over InitialCluster once the cluster exists, known before etcd
// starts. A hint only: missing or unreadable, etcd's default timing is
// used.
const membersFile = "gregor-members"

// aloneInDataDir reports whether the member in dataDir is alone in its
// cluster: the data dir is new, or it says so (membersFile).
func aloneInDataDir(dataDir string) bool {
	if _, err := os.Stat(filepath.Join(dataDir, "member")); errors.Is(err, os.ErrNotExist) {
		return true // a new member: InitialCluster rules
	}
	b, err := os.ReadFile(filepath.Join(dataDir, membersFile))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// noteMembers records the cluster's member count in dataDir.
func noteMembers(dataDir string, members int, log zerolog.Logger) {
	path := filepath.Join(dataDir, membersFile)
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, []byte(strconv.Itoa(members)+"\n"), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		log.Warn().Str("component", "etcd").Err(err).Msg("cannot record the embedded etcd's member count; its next start uses etcd's default raft timing")
	}
}

// singleMember reports whether initialCluster (EmbeddedConfig's form)
// describes a new cluster of one member.
func singleMember(initialCluster string) bool {
	return initialCluster == "" || !strings.Contains(initialCluster, ",")
}

// A member alone has no heartbeats to send and no peer to lose, so its
// raft tick only paces its first election: etcd's 100 ms tick and 1 s
// election timeout leave a new or restarted single-node cluster 100 ms
// to 1 s without a leader (most of Gregor's start-up, README
// "Start-up"); 10 ms and 100 ms make that 10-100 ms. Members with peers
// keep etcd's defaults.
const (
	fastTickMs     = 10
	fastElectionMs = 100
)

// readyTimeout is cfg.ReadyTimeout or its default.
func readyTimeout(cfg EmbeddedConfig) time.Duration {
	if cfg.ReadyTimeout > 0 {
		return cfg.ReadyTimeout
	}
	return 60 * time.Second
}

// startEmbedded starts the member once and waits until it is ready or
// ctx ends; it also returns how many members its cluster has. fast
// selects the raft timing of a member alone (fastTickMs).
func startEmbedded(ctx context.Context, cfg EmbeddedConfig, fast bool) (*EmbeddedEtcd, int, error) {
	closing := new(atomic.Bool)
	ecfg, err := embedConfig(cfg, closing)
	if err != nil {
		return nil, 0, err
	}
	if fast {
		ecfg.TickMs, ecfg.ElectionMs = fastTickMs, fastElectionMs
	}
	log := cfg.Logger.With().Str("component", "etcd").Logger()

	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, 0, fmt.Errorf("metadata: start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	// abort stops a member that is not ready. Close alone would wait
	// forever for client servers that only start once the member is
	// ready; stopping the server first lets them give up.
	abort := func() {
		closing.Store(true)
		e.Server.HardStop()
		e.Close()
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		abort()
		return nil, 0, fmt.Errorf("metadata: embedded etcd %s failed while starting: %w", ecfg.Name, err)
	case <-ctx.Done():
		abort()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, 0, fmt.Errorf("metadata: embedded etcd %s not ready after %s (is a quorum of its cluster up? initial cluster %q, or the members in its data dir)",
				ecfg.Name, readyTimeout(cfg), ecfg.InitialCluster)
		}
		return nil, 0, fmt.Errorf("metadata: starting embedded etcd %s: %w", ecfg.Name, ctx.Err())
	}

	ee := &EmbeddedEtcd{etcd: e, closing: closing}
	for _, u := range ecfg.AdvertiseClientUrls {
		ee.endpoints = append(ee.endpoints, u.String())
	}
	members := len(e.Server.Cluster().Members())
	log.Info().
		Str("name", ecfg.Name).
		Str("data_dir", ecfg.Dir).
		Strs("client_urls", ee.endpoints).
		Str("peer_url", ecfg.AdvertisePeerUrls[0].String()).
		Str("member_id", e.Server.MemberID().String()).
		Int("members", members).
		Msg("embedded etcd ready")
	return ee, members, nil
}

// embedConfig turns cfg into etcd's own configuration. Once closing is
// set, etcd's log entries are written at debug level.
func embedConfig(cfg EmbeddedConfig, closing *atomic.Bool) (*embed.Config, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("metadata: embedded etcd: DataDir is required")
	}
	name := cfg.Name
	if name == "" {
		name = memberName(cfg.NodeID)
	}
	clientURL, err := addrURL(cfg.ClientAddr, "127.0.0.1:2379")
	if err != nil {
		return nil, fmt.Errorf("metadata: embedded etcd client address: %w", err)
	}
	peerURL, err := addrURL(cfg.PeerAddr, "127.0.0.1:2380")
	if err != nil {
		return nil, fmt.Errorf("metadata: embedded etcd peer address: %w", err)
	}
	initial := name + "=" + peerURL.String()
	if cfg.InitialCluster != "" {
		initial, err = initialCluster(cfg.InitialCluster)
		if err != nil {
			return nil, err
		}
	}

	ec := embed.NewConfig()
	ec.Name = name
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{bindURL(clientURL)}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{bindURL(peerURL)}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialCluster = initial
	ec.InitialClusterToken = "gregor"
	ec.ClusterState = embed.ClusterStateFlagNew
	// Nothing else binds a port: no metrics listener (ListenMetricsUrls
	// stays empty, metrics are only served on the client URL), no pprof, no
	// HTTP gateway.
	ec.ListenMetricsUrls = nil
	ec.EnablePprof = false
	ec.EnableGRPCGateway = false
	// Metadata is small and rewritten rarely; keeping the last 1000
	// revisions bounds the database while leaving a lagging watch room to
	// catch up (it reads the prefix again if it falls further behind).
	ec.AutoCompactionMode = "revision"
	ec.AutoCompactionRetention = "1000"
	// etcd's info logs (dozens of lines per start) are dropped; its warnings
	// and errors go to the broker's log, but for the expected ones below.
	ec.LogLevel = "warn"
	started := time.Now()
	demote := func(e zapcore.Entry, fields map[string]any) bool {
		return closing.Load() || expectedEtcdWarning(e.Message, fields, time.Since(started))
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(
		newZapLogger(cfg.Logger.With().Str("component", "etcd").Logger(), zapcore.WarnLevel, demote))
	return ec, nil
}

// expectedEtcdWarning reports the warnings and errors a start of an
// embedded member prints that say nothing about this deployment:
//   - gRPC and HTTP share the client port by design here: Gregor uses
//     gRPC, and a second port would be one more thing to configure;
//   - the "simple" auth token type is etcd's default, and irrelevant
//     while etcd auth is off, as it is for Gregor;
//   - in its first seconds, a new cluster's storage version monitor can
//     run before the backend has committed its first raft term ("missing
//     term information"), more often with the fast election of a member
//     alone; etcd retries 4 s later (etcd-io/etcd#18978 is the same race).
//     Later, the same error is news, and logged.
//
// since is the time since the member started.
func expectedEtcdWarning(msg string, fields map[string]any, since time.Duration) bool {
	if msg == "failed to update storage version" {
		err, _ := fields["error"].(string)
		return since < 15*time.Second && strings.HasSuffix(err, "missing term information")
	}
	return strings.HasPrefix(msg, "Running http and grpc server on single port") ||
		strings.HasPrefix(msg, "simple token is not cryptographically signed")
}

// memberName is the etcd member name of a broker's embedded member.
func memberName(nodeID int32) string {
	return "gregor-" + strconv.FormatInt(int64(nodeID), 10)
}

// addrURL makes the http URL for host:port addr, or def when addr is empty.
func addrURL(addr, def string) (*url.URL, error) {
	if addr == "" {
		addr = def
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return nil, fmt.Errorf("%q: port must be 1-65535 (etcd cannot advertise a port picked by the kernel)", addr)
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}, nil
}

// bindURL is what the member listens on for an advertised URL: the same
// address when its host is an IP, and every interface (0.0.0.0) on that
// port when it is a name (etcd binds IPs only; a name such as a
// container's is what the other members and brokers resolve).
func bindURL(u *url.URL) url.URL {
	host, port, _ := net.SplitHostPort(u.Host)
	if net.ParseIP(host) != nil {
		return *u
	}
	return url.URL{Scheme: u.Scheme, Host: net.JoinHostPort("0.0.0.0", port)}
}

// initialCluster checks s ("name=url,...") and writes plain node ids as
// member names.
func initialCluster(s string) (string, error) {
	var out []string
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		name, rawURL, ok := strings.Cut(entry, "=")
		if !ok || name == "" || rawURL == "" {
			return "", fmt.Errorf("metadata: embedded etcd initial cluster %q: entry %q is not name=url", s, entry)
		}
		if _, err := url.Parse(rawURL); err != nil {
			return "", fmt.Errorf("metadata: embedded etcd initial cluster %q: %w", s, err)
		}
		if id, err := strconv.ParseInt(name, 10, 32); err == nil {
			name = memberName(int32(id))
		}
		out = append(out, name+"="+rawURL)
	}
	return strings.Join(out, ","), nil
}

// Endpoints returns the member's client URLs, for EtcdConfig.Endpoints.
func (e *EmbeddedEtcd) Endpoints() []string {
	return append([]string(nil), e.endpoints...)
}

// Err reports a fatal error of the running member; the broker should stop
// when it yields an error. It is closed once Close has finished.
func (e *EmbeddedEtcd) Err() <-chan error {
	return e.etcd.Err()
}

// Close stops the member and waits for it to finish. It is safe to call
// more than once.
func (e *EmbeddedEtcd) Close() {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
	})
}
