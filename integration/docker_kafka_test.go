package integration

// The image as a drop-in for apache/kafka's: the single-node compose file
// of that image's documentation (examples/single-node, only its image line
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

func TestDockerKafkaExamples(t *testing.T) {
	compose := composeCommand(t)
	ctx := testContext(t, 8*time.Minute)
	buildImage(ctx, t)
	kclient := buildKclient(ctx, t)

	t.Run("single-node", func(t *testing.T) {
		project := fmt.Sprintf("gregorkafka%d", time.Now().UnixNano()%1_000_000)
		run := func(args ...string) ([]byte, error) {
			cmd := exec.CommandContext(ctx, compose[0], append(append(compose[1:], "-p", project, "-f", "../examples/single-node/docker-compose.yml"), args...)...)
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
		checkRunningAndHealth(ctx, t, "broker")
		checkHostClients(ctx, t, "localhost:9092")

		// Another container of the stack uses broker:19092 and is told it.
		out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--network", project+"_default",
			"-v", kclient+":/kclient:ro", dockerImage(), "/kclient/kclient", "broker:19092", "from-the-stack", "5").CombinedOutput()
		if err != nil {
			t.Fatalf("kclient in the stack: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "broker 1 broker:19092\n") || !strings.Contains(string(out), "consumed 5\n") {
			t.Fatalf("kclient in the stack:\n%s", out)
		}
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
