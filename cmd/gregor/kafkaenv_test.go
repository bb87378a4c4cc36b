package main

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/gregorbroker/gregor/broker"
)

func TestKafkaConfigName(t *testing.T) {
	for in, want := range map[string]string{
		"LOG_RETENTION_MS":                   "log.retention.ms",
		"NODE_ID":                            "node.id",
		"LISTENER_NAME_INTERNAL_SSL__CLIENT": "listener.name.internal.ssl_client",
		"CLIENT___ID":                        "client-id",
		"A____B":                             "a-.b",
		"A_____B":                            "a-_b",
		"A______B":                           "a--b",
		"X":                                  "x",
	} {
		if got := kafkaConfigName(in); got != want {
			t.Errorf("kafkaConfigName(%q) = %q, want %q", in, got, want)
		}
	}
}

// testcontainersEnv is the environment testcontainers-java's KafkaContainer
// gives apache/kafka, with the KAFKA_ADVERTISED_LISTENERS its start script
// exports.
var testcontainersEnv = []string{
	"CLUSTER_ID=4L6g3nShT-eMCtK--X86sw",
	"KAFKA_LISTENERS=PLAINTEXT://:9092,BROKER://:9093,CONTROLLER://:9094",
	"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
	"KAFKA_INTER_BROKER_LISTENER_NAME=BROKER",
	"KAFKA_PROCESS_ROLES=broker,controller",
	"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
	"KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9094",
	"KAFKA_NODE_ID=1",
	"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1",
	"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS=1",
	"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1",
	"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1",
	"KAFKA_LOG_FLUSH_INTERVAL_MESSAGES=9223372036854775807",
	"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
	"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:32768,BROKER://c0ffee:9093",
	"PATH=/bin",
}

func TestReadKafkaEnv(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      []string
		flags    map[string]string
		configs  map[string]string
		ignored  []string
		unknown  []string
		warnings int
		err      string
	}{
		{
			name: "rack and booleans",
			env: []string{"KAFKA_BROKER_RACK=eu-west-1a", "KAFKA_AUTO_CREATE_TOPICS_ENABLE=FALSE",
				"KAFKA_LOG_PREALLOCATE=True", "KAFKA_LOG_CLEANUP_POLICY=compact"},
			flags:   map[string]string{"rack": "eu-west-1a"},
			configs: map[string]string{"auto.create.topics.enable": "false", "log.preallocate": "true", "log.cleanup.policy": "compact"},
		},
		{
			name: "testcontainers",
			env:  testcontainersEnv,
			flags: map[string]string{
				"cluster-id":           "4L6g3nShT-eMCtK--X86sw",
				"node-id":              "1",
				"listeners":            "BROKER://:9093,PLAINTEXT://:9092",
				"advertised-listeners": "PLAINTEXT://localhost:32768,BROKER://c0ffee:9093",
			},
			configs: map[string]string{
				"offsets.topic.replication.factor":         "1",
				"offsets.topic.num.partitions":             "1",
				"transaction.state.log.replication.factor": "1",
				"transaction.state.log.min.isr":            "1",
				"log.flush.interval.messages":              "9223372036854775807",
				"group.initial.rebalance.delay.ms":         "0",
			},
			ignored: []string{"KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_PROCESS_ROLES", "listener CONTROLLER"},
		},
		{
			// The apache/kafka docs' single-node compose file.
			name: "listeners derived from advertised",
			env: []string{
				"KAFKA_NODE_ID=1",
				"KAFKA_PROCESS_ROLES=broker,controller",
				"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
				"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
				"KAFKA_LOG_DIRS=/var/lib/kafka/data",
			},
			flags: map[string]string{
				"node-id":              "1",
				"data-dir":             "/var/lib/kafka/data",
				"listeners":            "PLAINTEXT://0.0.0.0:9092",
				"advertised-listeners": "PLAINTEXT://localhost:9092",
			},
			configs: map[string]string{},
			ignored: []string{"KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_PROCESS_ROLES"},
		},
		{
			name: "Bitnami form, weaker than the apache form",
			env: []string{
				"KAFKA_CFG_NODE_ID=3",
				"KAFKA_CFG_NUM_PARTITIONS=6",
				"KAFKA_NUM_PARTITIONS=4",
				"KAFKA_CFG_LISTENERS=PLAINTEXT://:9092,CONTROLLER://:9093",
				"KAFKA_CFG_ADVERTISED_LISTENERS=PLAINTEXT://kafka:9092",
				"KAFKA_CFG_CONTROLLER_LISTENER_NAMES=CONTROLLER",
				"KAFKA_KRAFT_CLUSTER_ID=abcdefghijklmnopqrstuv",
				"KAFKA_ENABLE_KRAFT=yes",
				"KAFKA_HEAP_OPTS=-Xmx1G",
				"KAFKA_CFG_LOG_DIRS=/bitnami/kafka/data,/second",
			},
			flags: map[string]string{
				"node-id":              "3",
				"cluster-id":           "abcdefghijklmnopqrstuv",
				"data-dir":             "/bitnami/kafka/data",
				"listeners":            "PLAINTEXT://:9092",
				"advertised-listeners": "PLAINTEXT://kafka:9092",
			},
			configs:  map[string]string{"num.partitions": "4"},
			ignored:  []string{"KAFKA_CFG_CONTROLLER_LISTENER_NAMES", "listener CONTROLLER"},
			warnings: 1, // two log dirs
		},
		{
			name: "unknown and ignored settings, broker.id, topic defaults",
			env: []string{
				"KAFKA_BROKER_ID=7",
				"KAFKA_ZOOKEEPER_CONNECT=zk:2181",
				"KAFKA_NUM_NETWORK_THREADS=3",
				"KAFKA_AUTHORIZER_CLASS_NAME=kafka.security.authorizer.AclAuthorizer",
				"KAFKA_NO_SUCH_THING=1",
				"KAFKA_LOG_RETENTION_HOURS=1",
				"KAFKA_LOG_CLEANUP_POLICY=compact",
				"KAFKA_MIN_INSYNC_REPLICAS=2",
				"KAFKA_EMPTY=",
			},
			flags: map[string]string{"node-id": "7"},
			configs: map[string]string{
				"log.retention.hours": "1",
				"log.cleanup.policy":  "compact",
				"min.insync.replicas": "2",
			},
			ignored: []string{"KAFKA_NUM_NETWORK_THREADS", "KAFKA_ZOOKEEPER_CONNECT"},
			unknown: []string{"KAFKA_AUTHORIZER_CLASS_NAME", "KAFKA_NO_SUCH_THING"},
		},
		{
			name: "SASL listener refused",
			env: []string{
				"KAFKA_LISTENERS=SASL_PLAINTEXT://:9092",
			},
			err: "SASL_PLAINTEXT: Gregor serves PLAINTEXT only",
		},
		{
			name: "mapped to SSL refused",
			env: []string{
				"KAFKA_LISTENERS=EXTERNAL://:9092,CONTROLLER://:9093",
				"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=EXTERNAL:SSL,CONTROLLER:SSL",
				"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
			},
			err: "listener EXTERNAL uses security protocol SSL",
		},
		{
			name: "unmapped listener name warned about",
			env:  []string{"KAFKA_LISTENERS=INTERNAL://:29092"},
			flags: map[string]string{
				"listeners": "INTERNAL://:29092",
			},
			configs:  map[string]string{},
			warnings: 1,
		},
		{
			name: "inter-broker listener must exist",
			env: []string{
				"KAFKA_LISTENERS=PLAINTEXT://:9092",
				"KAFKA_INTER_BROKER_LISTENER_NAME=BROKER",
			},
			err: "names no listener",
		},
		{
			name: "only a controller listener",
			env: []string{
				"KAFKA_LISTENERS=CONTROLLER://:9093",
				"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
			},
			err: "no listener but the controller's",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ke, err := readKafkaEnv(tc.env, broker.IsBrokerConfig, true)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.flags == nil {
				tc.flags = map[string]string{}
			}
			if !maps.Equal(ke.flags, tc.flags) {
				t.Errorf("flags = %v, want %v", ke.flags, tc.flags)
			}
			if !maps.Equal(ke.configs, tc.configs) {
				t.Errorf("configs = %v, want %v", ke.configs, tc.configs)
			}
			if !reflect.DeepEqual(ke.ignored, tc.ignored) {
				t.Errorf("ignored = %q, want %q", ke.ignored, tc.ignored)
			}
			if !reflect.DeepEqual(ke.unknown, tc.unknown) {
				t.Errorf("unknown = %q, want %q", ke.unknown, tc.unknown)
			}
			if len(ke.warnings) != tc.warnings {
				t.Errorf("warnings = %q, want %d", ke.warnings, tc.warnings)
			}
		})
	}
}

// TestApplyKafkaEnvPrecedence runs serve's flags through the cli package:
// flags and GREGOR_* variables beat KAFKA_*, which beat the defaults, and
// --config beats a KAFKA_* broker config.
func TestApplyKafkaEnvPrecedence(t *testing.T) {
	kafka := []string{
		"GREGOR_KAFKA_ENV=1",
		"KAFKA_NODE_ID=5",
		"KAFKA_LOG_DIRS=/kafka/data",
		"KAFKA_LISTENERS=PLAINTEXT://:19092",
		"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://kafka:19092",
		"KAFKA_NUM_PARTITIONS=3",
		"KAFKA_LOG_SEGMENT_BYTES=1048576",
		"KAFKA_LOG_ROLL_MS=1000",
		"CLUSTER_ID=4L6g3nShT-eMCtK--X86sw",
	}
	type result struct {
		nodeID                                 int
		dataDir, listeners, advertised, listen string
		clusterID                              string
		static                                 map[string]string
	}
	runEnv := func(t *testing.T, environ, args []string, gregorEnv map[string]string) (result, string) {
		t.Helper()
		for k, v := range gregorEnv {
			t.Setenv(k, v)
		}
		var got result
		var logs bytes.Buffer
		app := &cli.App{Name: "gregor", Commands: []*cli.Command{{
			Name:  "serve",
			Flags: serveFlags(),
			Action: func(c *cli.Context) error {
				configs, err := applyKafkaEnv(c, environ, zerolog.New(&logs))
				if err != nil {
					return err
				}
				static, err := staticConfigs(c)
				if err != nil {
					return err
				}
				for k, v := range configs {
					if _, set := static[k]; !set {
						static[k] = v
					}
				}
				got = result{c.Int("node-id"), c.String("data-dir"), c.String("listeners"), c.String("advertised-listeners"),
					c.String("listen"), c.String("cluster-id"), static}
				return nil
			},
		}}}
		if err := app.Run(append([]string{"gregor", "serve"}, args...)); err != nil {
			t.Fatal(err)
		}
		return got, logs.String()
	}
	run := func(t *testing.T, args []string, gregorEnv map[string]string) (result, string) {
		return runEnv(t, kafka, args, gregorEnv)
	}

	t.Run("kafka only", func(t *testing.T) {
		got, _ := run(t, nil, nil)
		want := result{5, "/kafka/data", "PLAINTEXT://:19092", "PLAINTEXT://kafka:19092", "0.0.0.0:9092", "4L6g3nShT-eMCtK--X86sw",
			map[string]string{"num.partitions": "3", "log.segment.bytes": "1048576", "log.roll.ms": "1000"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("off without GREGOR_KAFKA_ENV", func(t *testing.T) {
		// A CLUSTER_ID or KAFKA_* variable in a shell outside the image
		// changes nothing.
		for _, sw := range []string{"GREGOR_KAFKA_ENV=0", "GREGOR_KAFKA_ENV=", ""} {
			env := append([]string{sw}, kafka[1:]...)
			got, logs := runEnv(t, env, nil, nil)
			want := result{1, "./data", "", "", "0.0.0.0:9092", "", map[string]string{}}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: got %+v\nwant %+v", sw, got, want)
			}
			if logs != "" {
				t.Fatalf("%q: logs:\n%s", sw, logs)
			}
		}
	})
	t.Run("unapplied listener settings unchecked", func(t *testing.T) {
		// The Kafka listener settings that GREGOR_* ones replace are not
		// checked: an SSL listener or an unknown inter-broker listener
		// name does not fail the start.
		env := append(slices.Clone(kafka),
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=PLAINTEXT:SSL",
			"KAFKA_INTER_BROKER_LISTENER_NAME=NOSUCH",
			"KAFKA_SECURITY_INTER_BROKER_PROTOCOL=SSL")
		got, logs := runEnv(t, env, nil, map[string]string{"GREGOR_LISTEN": "127.0.0.1:9999"})
		if got.listen != "127.0.0.1:9999" || got.listeners != "" || got.nodeID != 5 {
			t.Fatalf("got %+v", got)
		}
		if !strings.Contains(logs, "KAFKA_INTER_BROKER_LISTENER_NAME") || !strings.Contains(logs, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP") {
			t.Fatalf("the warning does not name the ignored settings; logs:\n%s", logs)
		}
		// Applied, the same settings fail.
		if _, err := readKafkaEnv(env, broker.IsBrokerConfig, true); err == nil {
			t.Fatal("applied SSL listener accepted")
		}
	})
	t.Run("gregor wins", func(t *testing.T) {
		got, logs := run(t, []string{"--node-id", "9", "--num-partitions", "8", "--config", "log.segment.bytes=2097152"}, map[string]string{
			"GREGOR_DATA_DIR":   "/gregor/data",
			"GREGOR_LISTEN":     "127.0.0.1:9999",
			"GREGOR_CLUSTER_ID": "MkU3OEVBNTcwNTJENDM2Qk",
		})
		want := result{9, "/gregor/data", "", "", "127.0.0.1:9999", "MkU3OEVBNTcwNTJENDM2Qk",
			map[string]string{"num.partitions": "8", "log.segment.bytes": "2097152", "log.roll.ms": "1000"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
		if !strings.Contains(logs, "GREGOR_* listener settings win") {
			t.Fatalf("no warning that the Kafka listeners were ignored; logs:\n%s", logs)
		}
	})
}

// TestKafkaVoters checks controller.quorum.voters: several voters become
// the embedded etcd cluster, one is ignored, a malformed one fails.
func TestKafkaVoters(t *testing.T) {
	ke, err := readKafkaEnv([]string{"KAFKA_CONTROLLER_QUORUM_VOTERS=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}, broker.IsBrokerConfig, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ke.ignored) != 0 || len(ke.voters) != 3 {
		t.Fatalf("voters %+v, ignored %q", ke.voters, ke.ignored)
	}
	flags, err := ke.etcdFlags(2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"etcd-initial-cluster": "1=http://kafka-1:9093,2=http://kafka-2:9093,3=http://kafka-3:9093",
		"etcd-peer-addr":       "kafka-2:9093",
		"etcd-client-addr":     "kafka-2:2379",
	}
	if !maps.Equal(flags, want) {
		t.Fatalf("etcd flags %v, want %v", flags, want)
	}
	if _, err := ke.etcdFlags(4); err == nil || !strings.Contains(err.Error(), "does not name node 4") {
		t.Fatalf("node 4: err = %v", err)
	}

	// Voters on one host would share the etcd client address host:2379.
	same, err := readKafkaEnv([]string{"KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093,2@localhost:9094"}, broker.IsBrokerConfig, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := same.etcdFlags(1); err == nil || !strings.Contains(err.Error(), "voters 1 and 2 are both on host localhost") {
		t.Fatalf("voters on one host: err = %v", err)
	}

	one, err := readKafkaEnv([]string{"KAFKA_CONTROLLER_QUORUM_VOTERS=1@broker:29093"}, broker.IsBrokerConfig, true)
	if err != nil || len(one.voters) != 0 || !reflect.DeepEqual(one.ignored, []string{"KAFKA_CONTROLLER_QUORUM_VOTERS"}) {
		t.Fatalf("one voter: %+v, %v", one, err)
	}
	for _, bad := range []string{"kafka-1:9093", "x@kafka-1:9093", "1@kafka-1", "1@:9093"} {
		if _, err := readKafkaEnv([]string{"KAFKA_CONTROLLER_QUORUM_VOTERS=" + bad + ",2@b:9093"}, broker.IsBrokerConfig, true); err == nil {
			t.Errorf("voters %q accepted", bad)
		}
	}
}

// TestKafkaQuorumBootstrap checks controller.quorum.bootstrap.servers:
// several servers with neither voters nor GREGOR_ETCD_* settings refuse to
// start (each node would be a one-member etcd cluster of its own); with
// voters, GREGOR_ETCD_* settings, or one server, it is ignored.
func TestKafkaQuorumBootstrap(t *testing.T) {
	apply := func(t *testing.T, environ, args []string) error {
		t.Helper()
		app := &cli.App{Name: "gregor", Commands: []*cli.Command{{
			Name:  "serve",
			Flags: serveFlags(),
			Action: func(c *cli.Context) error {
				_, err := applyKafkaEnv(c, environ, zerolog.Nop())
				return err
			},
		}}}
		return app.Run(append([]string{"gregor", "serve"}, args...))
	}
	three := []string{"GREGOR_KAFKA_ENV=1", "KAFKA_NODE_ID=1", "KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS=kafka-1:9093,kafka-2:9093,kafka-3:9093"}
	err := apply(t, three, nil)
	if err == nil || !strings.Contains(err.Error(), "set KAFKA_CONTROLLER_QUORUM_VOTERS") || !strings.Contains(err.Error(), "GREGOR_ETCD_") {
		t.Fatalf("bootstrap servers alone: err = %v", err)
	}
	if err := apply(t, three, []string{"--etcd-endpoints", "http://127.0.0.1:2379"}); err != nil {
		t.Fatalf("with --etcd-endpoints: %v", err)
	}
	withVoters := append(slices.Clone(three), "KAFKA_CONTROLLER_QUORUM_VOTERS=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093")
	if err := apply(t, withVoters, nil); err != nil {
		t.Fatalf("with voters: %v", err)
	}
	if err := apply(t, []string{"GREGOR_KAFKA_ENV=1", "KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS=kafka:9093"}, nil); err != nil {
		t.Fatalf("one bootstrap server: %v", err)
	}
}

// TestKafkaIsolatedController checks that a controller-only node (KRaft's
// isolated mode) is refused with a message saying so.
func TestKafkaIsolatedController(t *testing.T) {
	_, err := readKafkaEnv([]string{"KAFKA_PROCESS_ROLES=controller", "KAFKA_LISTENERS=CONTROLLER://:9093", "KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER"},
		broker.IsBrokerConfig, true)
	if err == nil || !strings.Contains(err.Error(), "no controller-only nodes") {
		t.Fatalf("controller-only node: err = %v", err)
	}
	if _, err := readKafkaEnv([]string{"KAFKA_PROCESS_ROLES=broker", "KAFKA_LISTENERS=PLAINTEXT://:9092"}, broker.IsBrokerConfig, true); err != nil {
		t.Fatalf("broker-only node: %v", err)
	}
}
