package integration

// The image as a drop-in for apache/kafka's: the single-node and
// three-node compose files of that image's documentation
// (examples/single-node and examples/cluster, only their image lines
// changed) and the exact environment and start-up of testcontainers-java's
// KafkaContainer (org.testcontainers.kafka.KafkaContainer: a `sh -c` loop
// waiting for a script, a bash script exporting KAFKA_ADVERTISED_LISTENERS
// and running /etc/kafka/docker/run, and a wait for the log line
// "Transitioning from RECOVERY to RUNNING"). Like TestDockerComposeCluster
// it needs docker and compose, and is skipped without them unless
// GREGOR_REQUIRE_DOCKER is set.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runningLine is the line testcontainers waits for.
const runningLine = "Transitioning from RECOVERY to RUNNING"

// buildKclient builds integration/kclient, the client run inside a
// container of a stack, and returns the directory holding it.
func buildKclient(ctx context.Context, t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "kclient"), "./kclient")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kclient: %v\n%s", err, out)
	}
	return dir
}

// dockerStdout is a container's stdout so far (not its stderr).
func dockerStdout(ctx context.Context, name string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", "logs", name)
	cmd.Stdout = &out
	err := cmd.Run()
	return out.String(), err
}

// checkHostClients produces and consumes through addr from the host, and
// checks that Metadata advertises addr.
func checkHostClients(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	fzWaitFor(t, 60*time.Second, "the broker to advertise "+addr, func() error {
		brokers, err := fzBrokersNow(ctx, addr)
		if err != nil {
			return err
		}
		if len(brokers) != 1 || brokers[0].Host+":"+strconv.Itoa(int(brokers[0].Port)) != addr {
			return fmt.Errorf("brokers %+v", brokers)
		}
		return nil
	})
	topic := fzTopic(t, "kafkaimage")
	fzCreateTopic(ctx, t, fzAdmin(t, addr), topic, 2, nil)
	cl := fzClient(t, addr)
	var recs []*kgo.Record
	for i := range 20 {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
	}
	fzProduceSync(ctx, t, cl, recs...)
	if got := fzConsume(ctx, t, addr, topic, 20); len(got) != 20 {
		t.Fatalf("consumed %d records, want 20", len(got))
	}
}

// checkRunningAndHealth checks that the container printed runningLine on
// its stdout and that `gregor health` in it exits 0.
func checkRunningAndHealth(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	fzWaitFor(t, 60*time.Second, name+" to print "+runningLine+" on stdout", func() error {
		out, err := dockerStdout(ctx, name)
		if err != nil {
			return err
		}
		if strings.Count(out, runningLine) != 1 {
			return fmt.Errorf("%d times in stdout:\n%s", strings.Count(out, runningLine), out)
		}
		return nil
	})
	if out, err := exec.CommandContext(ctx, "docker", "exec", name, "gregor", "health").CombinedOutput(); err != nil {
		t.Fatalf("docker exec %s gregor health: %v\n%s", name, err, out)
	}
}

// composeUp starts an examples/ compose file under a new project name,
// taken down (with its volumes) when the test ends; it returns the
// project's network.
func composeUp(ctx context.Context, t *testing.T, compose []string, file string) string {
	t.Helper()
	project := fmt.Sprintf("gregorkafka%d", time.Now().UnixNano()%1_000_000)
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, compose[0], append(append(compose[1:], "-p", project, "-f", file), args...)...)
		cmd.Env = append(os.Environ(), "GREGOR_IMAGE="+dockerImage())
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := run("logs", "--no-color")
			t.Logf("compose logs:\n%s", logs)
		}
		if out, err := run("down", "-v", "--timeout", "20"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	if out, err := run("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	return project + "_default"
}

// checkStackClient runs kclient in a container of network through
// bootstrap and checks that it worked and was told every broker in want
// ("broker <id> <host:port>" lines).
func checkStackClient(ctx context.Context, t *testing.T, kclient, network, bootstrap string, want ...string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--network", network,
		"-v", kclient+":/kclient:ro", dockerImage(), "/kclient/kclient", bootstrap, "from-the-stack", "5").CombinedOutput()
	if err != nil {
		t.Fatalf("kclient in the stack: %v\n%s", err, out)
	}
	for _, w := range append(want, "consumed 5") {
		if !strings.Contains(string(out), w+"\n") {
			t.Fatalf("kclient in the stack: no %q in\n%s", w, out)
		}
	}
}

func TestDockerKafkaExamples(t *testing.T) {
	compose := composeCommand(t)
	ctx := testContext(t, 8*time.Minute)
	buildImage(ctx, t)
	kclient := buildKclient(ctx, t)

	t.Run("single-node", func(t *testing.T) {
		network := composeUp(ctx, t, compose, "../examples/single-node/docker-compose.yml")
		checkRunningAndHealth(ctx, t, "broker")
		checkHostClients(ctx, t, "localhost:9092")
		// Another container of the stack uses broker:19092 and is told it.
		checkStackClient(ctx, t, kclient, network, "broker:19092", "broker 1 broker:19092")
	})

	t.Run("cluster", func(t *testing.T) {
		network := composeUp(ctx, t, compose, "../examples/cluster/docker-compose.yml")
		for i := 1; i <= 3; i++ {
			checkRunningAndHealth(ctx, t, fmt.Sprintf("kafka-%d", i))
		}
		ports := []int32{29092, 39092, 49092}
		fzWaitFor(t, 90*time.Second, "three brokers in Metadata from the host", func() error {
			brokers, err := fzBrokersNow(ctx, "localhost:29092")
			if err != nil {
				return err
			}
			if len(brokers) != 3 {
				return fmt.Errorf("%d brokers: %+v", len(brokers), brokers)
			}
			for _, b := range brokers {
				if b.Host != "localhost" || b.NodeID < 1 || b.NodeID > 3 || b.Port != ports[b.NodeID-1] {
					return fmt.Errorf("broker %d advertised at %s:%d", b.NodeID, b.Host, b.Port)
				}
			}
			return nil
		})
		adm := fzAdmin(t, "localhost:29092")
		topic := fzTopic(t, "kafkacluster")
		replCreateTopic(ctx, t, adm, topic, 3, 3, nil)
		replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
		cl := fzClient(t, "localhost:39092", kgo.RecordPartitioner(kgo.ManualPartitioner()))
		var recs []*kgo.Record
		for i := range 30 {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(strconv.Itoa(i))})
		}
		fzProduceSync(ctx, t, cl, recs...)
		if got := fzConsume(ctx, t, "localhost:49092", topic, 30); len(got) != 30 {
			t.Fatalf("consumed %d records, want 30", len(got))
		}
		checkStackClient(ctx, t, kclient, network, "kafka-2:19092",
			"broker 1 kafka-1:19092", "broker 2 kafka-2:19092", "broker 3 kafka-3:19092")
	})

	t.Run("testcontainers", func(t *testing.T) {
		name := fmt.Sprintf("gregor-tc-%d", time.Now().UnixNano()%1_000_000)
		// KafkaContainer's environment (KafkaHelper.envVars), word for word.
		env := []string{
			"CLUSTER_ID=4L6g3nShT-eMCtK--X86sw",
			"KAFKA_LISTENERS=PLAINTEXT://:9092,BROKER://:9093,CONTROLLER://:9094",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"KAFKA_INTER_BROKER_LISTENER_NAME=BROKER",
			"KAFKA_PROCESS_ROLES=broker,controller",
			"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
			"KAFKA_NODE_ID=1",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1",
			"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS=1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1",
			"KAFKA_LOG_FLUSH_INTERVAL_MESSAGES=9223372036854775807",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
			"KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9094",
		}
		args := []string{"run", "-d", "--name", name, "-p", "127.0.0.1::9092"}
		for _, e := range env {
			args = append(args, "-e", e)
		}
		const script = "/tmp/testcontainers_start.sh"
		args = append(args, dockerImage(), "sh", "-c", "while [ ! -f "+script+" ]; do sleep 0.1; done; "+script)
		if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
			t.Fatalf("docker run: %v\n%s", err, out)
		}
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
				t.Logf("container logs:\n%s", logs)
			}
			exec.Command("docker", "rm", "-f", name).Run()
		})
		portOut, err := exec.CommandContext(ctx, "docker", "port", name, "9092/tcp").Output()
		if err != nil {
			t.Fatalf("docker port: %v", err)
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(portOut)), "\n")
		_, port, ok := strings.Cut(first, ":")
		if !ok {
			t.Fatalf("docker port: %q", portOut)
		}
		hostname, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.Config.Hostname}}", name).Output()
		if err != nil {
			t.Fatalf("docker inspect: %v", err)
		}
		// containerIsStarting: the script, copied with mode 0777.
		addr := "localhost:" + port
		body := "#!/bin/bash\n" +
			"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://" + addr + ",BROKER://" + strings.TrimSpace(string(hostname)) + ":9093\n" +
			"/etc/kafka/docker/run \n"
		local := filepath.Join(t.TempDir(), "testcontainers_start.sh")
		if err := os.WriteFile(local, []byte(body), 0o777); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.CommandContext(ctx, "docker", "cp", local, name+":"+script).CombinedOutput(); err != nil {
			t.Fatalf("docker cp: %v\n%s", err, out)
		}
		checkRunningAndHealth(ctx, t, name)
		checkHostClients(ctx, t, addr)
	})
}
