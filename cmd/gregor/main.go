// Command gregor runs a Kafka-compatible broker. `gregor serve` with no
// flags starts a single-node cluster on localhost:9092 with an embedded etcd.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/gregorbroker/gregor/broker"
	"github.com/gregorbroker/gregor/metadata"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := &cli.App{
		Name:    "gregor",
		Usage:   "a Kafka wire-compatible broker",
		Version: version,
		Commands: []*cli.Command{
			{
				Name:   "serve",
				Usage:  "run a broker",
				Flags:  serveFlags(),
				Action: serve,
			},
			healthCommand(),  // health.go
			topicCommand(),   // cli_topic.go
			groupCommand(),   // cli_group.go
			produceCommand(), // cli_produce.go
			consumeCommand(), // cli_produce.go
			clusterCommand(), // cli_cluster.go
		},
	}
	if err := app.Run(permuteArgs(app, os.Args)); err != nil { // cli_common.go
		fmt.Fprintln(os.Stderr, "gregor:", err)
		os.Exit(1)
	}
}

// env names the environment variable of a flag: GREGOR_<FLAG_IN_CAPS>.
func env(flag string) []string {
	return []string{"GREGOR_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

// brokerConfigFlags maps flags to the Kafka broker configs they set.
var brokerConfigFlags = []struct {
	flag, config, def, usage string
}{
	{"num-partitions", "num.partitions", "1", "partitions of topics created without a count"},
	{"auto-create-topics-enable", "auto.create.topics.enable", "true", "create unknown topics on Metadata requests"},
	{"default-replication-factor", "default.replication.factor", "1", "replication factor of topics created without one"},
	{"log-segment-bytes", "log.segment.bytes", "1073741824", "segment size at which a new segment is rolled"},
	{"log-roll-ms", "log.roll.ms", "604800000", "segment age at which a new segment is rolled"},
	{"message-max-bytes", "message.max.bytes", "1048588", "largest record batch accepted"},
	{"log-retention-ms", "log.retention.ms", "604800000", "age at which segments are deleted (stored, not yet enforced)"},
	{"log-retention-bytes", "log.retention.bytes", "-1", "partition size limit (stored, not yet enforced)"},
	{"log-message-timestamp-type", "log.message.timestamp.type", "CreateTime", "CreateTime or LogAppendTime"},
	{"log-flush-interval-messages", "log.flush.interval.messages", "9223372036854775807", "fsync after this many messages; acks wait for it"},
	{"log-flush-interval-ms", "log.flush.interval.ms", "9223372036854775807", "fsync when unflushed data is this old; acks wait for it"},
	{"socket-request-max-bytes", "socket.request.max.bytes", "104857600", "largest request frame accepted"},
	{"fetch-max-bytes", "fetch.max.bytes", "57671680", "most record bytes in one Fetch response"},
	{"queued-max-request-bytes", "queued.max.request.bytes", "134217728", "bytes of requests read and not yet handled before reading stops; -1 unbounded"},
	{"queued-max-response-bytes", "queued.max.response.bytes", "268435456", "bytes of fetched records for consumers not yet written to sockets; -1 unbounded"},
	{"queued-max-replica-response-bytes", "queued.max.replica.response.bytes", "67108864", "bytes of fetched records for followers not yet written to sockets; -1 unbounded"},
	{"max-connections", "max.connections", "4096", "connections accepted at once"},
	{"max-connections-per-ip", "max.connections.per.ip", "2147483647", "connections accepted at once from one IP"},
	{"max-connections-per-ip-overrides", "max.connections.per.ip.overrides", "", "per-IP exceptions, as ip:count,..."},
	{"connections-max-idle-ms", "connections.max.idle.ms", "600000", "close connections idle this long"},
	{"max-partitions", "max.partitions", "100000", "partitions the cluster may hold"},
	{"max-broker-partitions", "max.broker.partitions", "10000", "partition replicas per live broker"},
}

func serveFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Value: "./data", Usage: "directory for partition logs and the embedded etcd", EnvVars: env("data-dir")},
		&cli.StringFlag{Name: "listen", Value: "0.0.0.0:9092", Usage: "address the Kafka listener binds", EnvVars: env("listen")},
		&cli.StringFlag{Name: "advertise", Usage: "host:port put in Metadata (default: the listen address, localhost for 0.0.0.0)", EnvVars: env("advertise")},
		&cli.StringFlag{Name: "listeners", Usage: "named listeners instead of --listen, as NAME://host:port,... (Kafka's listeners)", EnvVars: env("listeners")},
		&cli.StringFlag{Name: "advertised-listeners", Usage: "what each named listener advertises, as NAME://host:port,... (default: its bind address)", EnvVars: env("advertised-listeners")},
		&cli.IntFlag{Name: "node-id", Value: 1, Usage: "this broker's node id", EnvVars: env("node-id")},
		&cli.StringFlag{Name: "cluster-id", Usage: "the cluster id a new cluster is created with (22 characters of base64url, Kafka's CLUSTER_ID); empty: random", EnvVars: env("cluster-id")},
		&cli.StringFlag{Name: "rack", Usage: "this broker's rack (broker.rack)", EnvVars: env("rack")},
		&cli.StringFlag{Name: "http-addr", Value: defaultHTTPAddr, Usage: "address of the HTTP server (the console on /, /healthz, /readyz, /metrics); empty disables it", EnvVars: env("http-addr")},
		&cli.StringFlag{Name: "etcd-endpoints", Usage: "comma-separated external etcd endpoints; empty runs an embedded etcd", EnvVars: env("etcd-endpoints")},
		&cli.StringFlag{Name: "etcd-client-addr", Value: "127.0.0.1:2379", Usage: "client address of the embedded etcd", EnvVars: env("etcd-client-addr")},
		&cli.StringFlag{Name: "etcd-peer-addr", Value: "127.0.0.1:2380", Usage: "peer address of the embedded etcd", EnvVars: env("etcd-peer-addr")},
		&cli.StringFlag{Name: "etcd-initial-cluster", Usage: "members of a new embedded etcd cluster, as id=peer URL,... (e.g. 1=http://h1:2380,2=http://h2:2380,3=http://h3:2380); empty: this node alone", EnvVars: env("etcd-initial-cluster")},
		&cli.StringFlag{Name: "etcd-prefix", Value: "/gregor", Usage: "key prefix of this cluster in etcd", EnvVars: env("etcd-prefix")},
		&cli.DurationFlag{Name: "etcd-lease-ttl", Value: 3 * time.Second, Usage: "lease TTL of the broker registration", EnvVars: env("etcd-lease-ttl")},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: env("log-level")},
		&cli.StringFlag{Name: "log-format", Value: "console", Usage: "console or json", EnvVars: env("log-format")},
		&cli.StringSliceFlag{Name: "config", Usage: "any broker config by its Kafka name, as name=value (repeatable)", EnvVars: env("config")},
	}
	for _, f := range brokerConfigFlags {
		flags = append(flags, &cli.StringFlag{Name: f.flag, Value: f.def, Usage: f.usage + " (" + f.config + ")", EnvVars: env(f.flag)})
	}
	return flags
}

// logTimeFormat is RFC 3339 with milliseconds.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func newLogger(level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("--log-level: %w", err)
	}
	// Timestamps to the millisecond, in both formats (failovers and
	// elections take fractions of a second). zerolog reads this
	// process-wide setting; the binary sets it once, before any logging.
	zerolog.TimeFieldFormat = logTimeFormat
	var log zerolog.Logger
	switch format {
	case "json":
		log = zerolog.New(os.Stderr)
	case "console":
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: logTimeFormat})
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format: %q is not console or json", format)
	}
	return log.Level(lvl).With().Timestamp().Logger(), nil
}

// advertised returns the host and port clients are told.
func advertised(listen, advertise string) (string, int32, error) {
	addr := advertise
	if addr == "" {
		addr = listen
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("advertised address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("advertised address %q: bad port", addr)
	}
	if advertise == "" && (host == "" || host == "0.0.0.0" || host == "::") {
		host = "localhost"
	}
	return host, int32(port), nil
}

func staticConfigs(c *cli.Context) (map[string]string, error) {
	out := make(map[string]string)
	for _, f := range brokerConfigFlags {
		if c.IsSet(f.flag) {
			out[f.config] = c.String(f.flag)
		}
	}
	for _, kv := range c.StringSlice("config") {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--config %q: want name=value", kv)
		}
		out[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	return out, nil
}

func serve(c *cli.Context) error {
	log, err := newLogger(c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	kafkaConfigs, err := applyKafkaEnv(c, os.Environ(), log) // kafkaenv.go
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(c.String("data-dir"))
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	var specs []listenerSpec
	if ls := c.String("listeners"); ls != "" {
		if c.IsSet("listen") || c.IsSet("advertise") {
			return fmt.Errorf("--listeners replaces --listen and --advertise; give one or the other")
		}
		if specs, err = parseListeners(ls, c.String("advertised-listeners")); err != nil {
			return err
		}
	} else {
		if c.String("advertised-listeners") != "" {
			return fmt.Errorf("--advertised-listeners needs --listeners")
		}
		host, port, err := advertised(c.String("listen"), c.String("advertise"))
		if err != nil {
			return err
		}
		specs = []listenerSpec{{bind: c.String("listen"), host: host, port: port}}
	}
	host, port := specs[0].host, specs[0].port
	var advertisedEndpoints []metadata.Endpoint
	if specs[0].name != "" {
		for _, s := range specs {
			advertisedEndpoints = append(advertisedEndpoints, metadata.Endpoint{Name: s.name, Host: s.host, Port: s.port})
		}
	}
	static, err := staticConfigs(c)
	if err != nil {
		return err
	}
	for k, v := range kafkaConfigs {
		if _, set := static[k]; !set {
			static[k] = v
		}
	}
	nodeID := int32(c.Int("node-id"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// etcd: external, or embedded under <data-dir>/etcd.
	var endpoints []string
	etcdWhere := ""
	var embedded *metadata.EmbeddedEtcd
	if e := c.String("etcd-endpoints"); e != "" {
		for _, ep := range strings.Split(e, ",") {
			if ep = strings.TrimSpace(ep); ep != "" {
				endpoints = append(endpoints, ep)
			}
		}
		etcdWhere = "etcd at " + strings.Join(endpoints, ",")
	} else {
		embedded, err = metadata.StartEmbeddedEtcd(ctx, metadata.EmbeddedConfig{
			NodeID:         nodeID,
			DataDir:        filepath.Join(dataDir, "etcd"),
			ClientAddr:     c.String("etcd-client-addr"),
			PeerAddr:       c.String("etcd-peer-addr"),
			InitialCluster: c.String("etcd-initial-cluster"),
			Logger:         log,
		})
		if err != nil {
			return fmt.Errorf("start embedded etcd: %w", err)
		}
		defer embedded.Close()
		endpoints = embedded.Endpoints()
		etcdWhere = "etcd embedded at " + strings.Join(endpoints, ",")
	}
	store, err := metadata.OpenEtcd(ctx, metadata.EtcdConfig{
		Endpoints: endpoints,
		Prefix:    c.String("etcd-prefix"),
		LeaseTTL:  c.Duration("etcd-lease-ttl"),
		ClusterID: c.String("cluster-id"),
		Logger:    log,
	})
	if err != nil {
		return fmt.Errorf("connect to etcd: %w", err)
	}
	defer store.Close()

	metricsReg := newMetricsRegistry()
	b, err := broker.New(broker.Config{
		NodeID:         nodeID,
		AdvertisedHost: host,
		AdvertisedPort: port,
		Listeners:      advertisedEndpoints,
		Rack:           c.String("rack"),
		DataDir:        dataDir,
		StaticConfigs:  static,
		Logger:         log,
		LogFS:          logFS(),
		Metrics:        metricsReg,
	}, store)
	if err != nil {
		return err
	}
	var lns []net.Listener
	for _, s := range specs {
		l, err := net.Listen("tcp", s.bind)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			b.Close()
			return fmt.Errorf("listen on %s: %w", s.bind, err)
		}
		lns = append(lns, l)
	}
	ln := lns[0]

	var httpSrv *http.Server
	if addr := c.String("http-addr"); addr != "" {
		hl, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			b.Close()
			return fmt.Errorf("--http-addr: %w", err)
		}
		mux := withMetrics(healthMux(b), metricsReg)
		closeConsole, err := withConsole(mux, b, selfAddr(ln), log)
		if err != nil {
			hl.Close()
			for _, l := range lns {
				l.Close()
			}
			b.Close()
			return fmt.Errorf("console: %w", err)
		}
		defer closeConsole()
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go httpSrv.Serve(hl)
	}

	serveErr := make(chan error, len(lns))
	go func() { serveErr <- b.Serve(ln) }()
	for i, l := range lns[1:] {
		name := specs[i+1].name
		go func() { serveErr <- b.ServeListener(l, name) }()
		log.Info().Str("listener", name).Str("listen", l.Addr().String()).
			Str("advertise", net.JoinHostPort(specs[i+1].host, strconv.Itoa(int(specs[i+1].port)))).Msg("listening")
	}
	log.Info().Str("listen", ln.Addr().String()).Str("advertise", net.JoinHostPort(host, strconv.Itoa(int(port)))).
		Str("data_dir", dataDir).Str("etcd", strings.Join(endpoints, ",")).Int32("node_id", nodeID).
		Msgf("listening on %s (advertised as %s:%d), data in %s, %s", ln.Addr(), host, port, dataDir, etcdWhere)

	running := announceRunning(ctx, b, log) // running.go

	var etcdErr <-chan error // nil (never ready) with an external etcd
	if embedded != nil {
		etcdErr = embedded.Err()
	}
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
	case err := <-etcdErr:
		log.Error().Err(err).Msg("embedded etcd stopped; shutting down")
	case err := <-serveErr:
		if err != nil {
			log.Error().Err(err).Msg("listener failed; shutting down")
		}
	}
	running.stop()
	if httpSrv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		httpSrv.Shutdown(shutdownCtx)
		cancel()
	}
	if err := b.Close(); err != nil {
		log.Error().Err(err).Msg("closing logs")
		return err
	}
	log.Info().Msg("stopped cleanly")
	return nil
}

func healthMux(b *broker.Broker) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := b.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}
