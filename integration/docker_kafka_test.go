package integration

// The image as a drop-in for apache/kafka's: the single-node and
// three-node compose files of that image's documentation
// (examples/single-node and examples/cluster, only their image lines
// changed) and the exact environment and start-up of testcontainers-java's
// KafkaContainer (org.testcontainers.kafka.KafkaContainer: a `sh -c` loop
// waiting for a script, a bash script exporting KAFKA_ADVERTISED_LISTENERS
// and running /etc/kafka/docker/run, and a wait for the log line
// "Transitioning from RECOVERY to RUNNING"). The examples name their
// containers and fix host ports (9092, 29092, ...): the test runs
// temporary copies with per-run container names and free host ports
// (rewriteExample), and its image is gregor:test-<id>, removed at the end
// (buildImage). Like TestDockerComposeCluster it needs docker and compose,
// and is skipped without them unless GREGOR_REQUIRE_DOCKER is set.

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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

// example is a temporary copy of an examples/ compose file made safe to
// run beside anything else: container names get a per-run suffix and
// host ports are free ones (the advertised host listeners follow).
type example struct {
	file       string
	containers map[string]string // the example's container name -> the copy's
	ports      map[int]int       // the example's host port -> the copy's
}

// rewriteExample writes the copy of src. It fails the test unless exactly
// the container_name lines, the host port lines and the
// KAFKA_ADVERTISED_LISTENERS lines changed, one of each per service: the
// examples stay apache/kafka's files but for the image line.
func rewriteExample(t *testing.T, src, id string) example {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	ex := example{file: filepath.Join(t.TempDir(), "docker-compose.yml"), containers: map[string]string{}, ports: map[int]int{}}
	lines := strings.Split(string(data), "\n")
	out := slices.Clone(lines)
	inPorts := false
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		switch {
		case strings.HasPrefix(trimmed, "container_name:"):
			name := strings.TrimSpace(strings.TrimPrefix(trimmed, "container_name:"))
			ex.containers[name] = name + "-" + id
			out[i] = indent + "container_name: " + ex.containers[name]
		case trimmed == "ports:":
			inPorts = true
			continue
		case inPorts && strings.HasPrefix(trimmed, "- "):
			mapping := strings.Trim(strings.TrimPrefix(trimmed, "- "), `'"`)
			host, container, ok := strings.Cut(mapping, ":")
			old, err := strconv.Atoi(host)
			if !ok || err != nil {
				t.Fatalf("%s: port line %q is not HOST:CONTAINER", src, line)
			}
			ex.ports[old] = freePort(t)
			out[i] = fmt.Sprintf("%s- '%d:%s'", indent, ex.ports[old], container)
		}
		inPorts = false
	}
	hostPort := regexp.MustCompile(`localhost:[0-9]+`)
	for i, line := range out {
		if strings.HasPrefix(strings.TrimSpace(line), "KAFKA_ADVERTISED_LISTENERS:") {
			out[i] = hostPort.ReplaceAllStringFunc(line, func(m string) string {
				old, _ := strconv.Atoi(strings.TrimPrefix(m, "localhost:"))
				if port, ok := ex.ports[old]; ok {
					return "localhost:" + strconv.Itoa(port)
				}
				return m
			})
		}
	}
	changed := map[string]int{}
	for i := range lines {
		if lines[i] == out[i] {
			continue
		}
		key, _, _ := strings.Cut(strings.TrimSpace(lines[i]), ":")
		if strings.HasPrefix(key, "- ") {
			key = "ports"
		}
		changed[key]++
	}
	want := map[string]int{"container_name": len(ex.containers), "ports": len(ex.containers), "KAFKA_ADVERTISED_LISTENERS": len(ex.containers)}
	if len(ex.containers) == 0 || len(ex.ports) != len(ex.containers) || !maps.Equal(changed, want) {
		t.Fatalf("%s: the rewrite changed %v, want %v (one container name, host port and advertised listener per service)", src, changed, want)
	}
	if err := os.WriteFile(ex.file, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return ex
}

// composeUp starts a copy of an examples/ compose file (rewriteExample)
// with image under a new project name, taken down (with its volumes) when
// the test ends, under its own timeout even when the test's context has
// expired; it returns the copy and the project's network.
func composeUp(ctx context.Context, t *testing.T, compose []string, image, src string) (example, string) {
	t.Helper()
	id := runID(t)
	ex := rewriteExample(t, src, id)
	project := "gregorkafka" + id
	env := append(os.Environ(), "GREGOR_IMAGE="+image)
	composeArgs := func(args ...string) []string {
		return append(append(compose[1:len(compose):len(compose)], "-p", project, "-f", ex.file), args...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := cleanupCommand(env, compose[0], composeArgs("logs", "--no-color")...)
			t.Logf("compose logs:\n%s", logs)
		}
		if out, err := cleanupCommand(env, compose[0], composeArgs("down", "-v", "--timeout", "20")...); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	cmd := exec.CommandContext(ctx, compose[0], composeArgs("up", "-d")...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	return ex, project + "_default"
}

// checkStackClient runs kclient in a container of network through
// bootstrap and checks that it worked and was told every broker in want
// ("broker <id> <host:port>" lines).
func checkStackClient(ctx context.Context, t *testing.T, image, kclient, network, bootstrap string, want ...string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--network", network,
		"-v", kclient+":/kclient:ro", image, "/kclient/kclient", bootstrap, "from-the-stack", "5").CombinedOutput()
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
	image := buildImage(ctx, t)
	kclient := buildKclient(ctx, t)

	t.Run("single-node", func(t *testing.T) {
		ex, network := composeUp(ctx, t, compose, image, "../examples/single-node/docker-compose.yml")
		checkRunningAndHealth(ctx, t, ex.containers["broker"])
		checkHostClients(ctx, t, "localhost:"+strconv.Itoa(ex.ports[9092]))
		// Another container of the stack uses broker:19092 and is told it.
		checkStackClient(ctx, t, image, kclient, network, "broker:19092", "broker 1 broker:19092")
	})

	t.Run("cluster", func(t *testing.T) {
		ex, network := composeUp(ctx, t, compose, image, "../examples/cluster/docker-compose.yml")
		for i := 1; i <= 3; i++ {
			checkRunningAndHealth(ctx, t, ex.containers[fmt.Sprintf("kafka-%d", i)])
		}
		ports := []int32{int32(ex.ports[29092]), int32(ex.ports[39092]), int32(ex.ports[49092])}
		host := func(i int) string { return "localhost:" + strconv.Itoa(int(ports[i])) }
		fzWaitFor(t, 90*time.Second, "three brokers in Metadata from the host", func() error {
			brokers, err := fzBrokersNow(ctx, host(0))
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
		adm := fzAdmin(t, host(0))
		topic := fzTopic(t, "kafkacluster")
		replCreateTopic(ctx, t, adm, topic, 3, 3, nil)
		replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
		cl := fzClient(t, host(1), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		var recs []*kgo.Record
		for i := range 30 {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(strconv.Itoa(i))})
		}
		fzProduceSync(ctx, t, cl, recs...)
		if got := fzConsume(ctx, t, host(2), topic, 30); len(got) != 30 {
			t.Fatalf("consumed %d records, want 30", len(got))
		}
		checkStackClient(ctx, t, image, kclient, network, "kafka-2:19092",
			"broker 1 kafka-1:19092", "broker 2 kafka-2:19092", "broker 3 kafka-3:19092")
	})

	t.Run("testcontainers", func(t *testing.T) {
		name := "gregor-tc-" + runID(t)
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
		args = append(args, image, "sh", "-c", "while [ ! -f "+script+" ]; do sleep 0.1; done; "+script)
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := cleanupCommand(nil, "docker", "logs", name)
				t.Logf("container logs:\n%s", logs)
			}
			if out, err := cleanupCommand(nil, "docker", "rm", "-f", "-v", name); err != nil {
				t.Logf("docker rm %s: %v\n%s", name, err, out)
			}
		})
		if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
			t.Fatalf("docker run: %v\n%s", err, out)
		}
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

// TestKafkaExampleRewrite checks, without docker, that the copies
// TestDockerKafkaExamples runs differ from the examples only in container
// names and host ports (rewriteExample fails the test otherwise), and that
// the advertised host listeners name the new ports.
func TestKafkaExampleRewrite(t *testing.T) {
	for _, src := range []string{"../examples/single-node/docker-compose.yml", "../examples/cluster/docker-compose.yml"} {
		ex := rewriteExample(t, src, "abcd1234")
		raw, err := os.ReadFile(ex.file)
		if err != nil {
			t.Fatal(err)
		}
		// The comments (which describe the example) are kept as they are.
		var data strings.Builder
		for line := range strings.Lines(string(raw)) {
			if !strings.HasPrefix(line, "#") {
				data.WriteString(line)
			}
		}
		for old, port := range ex.ports {
			if strings.Contains(data.String(), "localhost:"+strconv.Itoa(old)) && old != port {
				t.Errorf("%s: the copy still advertises localhost:%d", src, old)
			}
			if !strings.Contains(data.String(), "localhost:"+strconv.Itoa(port)) {
				t.Errorf("%s: the copy does not advertise localhost:%d", src, port)
			}
		}
		for _, name := range ex.containers {
			if !strings.HasSuffix(name, "-abcd1234") || !strings.Contains(data.String(), "container_name: "+name+"\n") {
				t.Errorf("%s: container %s not in the copy", src, name)
			}
		}
	}
}
