package integration

// The three-broker docker-compose stack (docker-compose.yml): the
// image is built FROM scratch from the static binary (make image), the
// stack is started on free host ports, and clients on the host use every
// broker. It needs docker and docker-compose (or the compose plugin); it
// is skipped without them unless GREGOR_REQUIRE_DOCKER is set (make test
// sets it).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// composeCommand returns how to run compose here: docker-compose, or
// docker's compose plugin.
func composeCommand(t *testing.T) []string {
	t.Helper()
	missing := func(why string) []string {
		if os.Getenv("GREGOR_REQUIRE_DOCKER") != "" {
			t.Fatalf("GREGOR_REQUIRE_DOCKER is set but %s", why)
		}
		t.Skipf("%s; set GREGOR_REQUIRE_DOCKER=1 to make this a failure", why)
		return nil
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		return missing(fmt.Sprintf("no docker engine (docker info: %v)", err))
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	return missing("neither docker-compose nor the docker compose plugin is installed")
}

// runID is 8 random hex digits naming one test run's docker objects
// (image tags, compose projects, containers), so that concurrent runs do
// not collide.
func runID(t testing.TB) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// dockerCleanupTimeout bounds each docker command of a test's cleanup,
// which runs on context.Background(): the test's own deadline may have
// passed, and containers must not outlive the test.
const dockerCleanupTimeout = 2 * time.Minute

// cleanupCommand runs a docker or compose command of a test's cleanup
// under its own timeout.
func cleanupCommand(env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCleanupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	return cmd.CombinedOutput()
}

// buildImage builds the image with make image and returns its tag:
// GREGOR_IMAGE when set (kept after the test), otherwise gregor:test-<id>
// of this test alone, removed when the test ends, so that concurrent runs
// and the developer's gregor:dev (make image's default) do not collide.
func buildImage(ctx context.Context, t *testing.T) string {
	t.Helper()
	image := os.Getenv("GREGOR_IMAGE")
	if image == "" {
		image = "gregor:test-" + runID(t)
		t.Cleanup(func() {
			if out, err := cleanupCommand(nil, "docker", "rmi", image); err != nil {
				t.Logf("docker rmi %s: %v\n%s", image, err, out)
			}
		})
	}
	if out, err := exec.CommandContext(ctx, "make", "-C", "..", "image", "IMAGE="+image).CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	return image
}

func TestDockerComposeCluster(t *testing.T) {
	compose := composeCommand(t)
	ctx := testContext(t, 5*time.Minute)
	image := buildImage(ctx, t)
	project := "gregortest" + runID(t)
	ports := []int{freePort(t), freePort(t), freePort(t)}
	env := append(os.Environ(), "GREGOR_IMAGE="+image)
	for i, p := range ports {
		env = append(env, fmt.Sprintf("GREGOR_PORT_%d=%d", i+1, p))
	}
	composeArgs := func(args ...string) []string {
		return append(append(compose[1:len(compose):len(compose)], "-p", project, "-f", "../docker-compose.yml"), args...)
	}
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, compose[0], composeArgs(args...)...)
		cmd.Env = env
		return cmd.CombinedOutput()
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
	if out, err := run("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}

	addr := func(i int) string { return "localhost:" + strconv.Itoa(ports[i]) }
	adm := fzAdmin(t, addr(0))
	fzWaitFor(t, 90*time.Second, "three brokers in Metadata from the host", func() error {
		brokers, err := fzBrokersNow(ctx, addr(0))
		if err != nil {
			return err
		}
		if len(brokers) != 3 {
			return fmt.Errorf("%d brokers (%s)", len(brokers), composeViews(ports))
		}
		for _, b := range brokers {
			if b.Host != "localhost" || b.Port != int32(ports[b.NodeID-1]) {
				return fmt.Errorf("broker %d advertised at %s:%d, want localhost:%d", b.NodeID, b.Host, b.Port, ports[b.NodeID-1])
			}
		}
		return nil
	})
	topic := fzTopic(t, "compose")
	replCreateTopic(ctx, t, adm, topic, 3, 3, nil)
	replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
	cl := fzClient(t, addr(1), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(strconv.Itoa(i))})
	}
	fzProduceSync(ctx, t, cl, recs...)
	if got := fzConsume(ctx, t, addr(2), topic, 30); len(got) != 30 {
		t.Fatalf("consumed %d records, want 30", len(got))
	}

	// kcat (librdkafka) from the host sees the cluster too. It asks broker
	// 1, whose metadata cache may be a moment behind the broker that
	// showed every ISR full above: wait for it.
	bin := kcatBin(t)
	fzWaitFor(t, 30*time.Second, "kcat -L to show three brokers and three full ISRs", func() error {
		out, err := exec.CommandContext(ctx, bin, "-b", addr(0), "-L", "-t", topic).CombinedOutput()
		if err != nil || bytes.Count(out, []byte("broker ")) < 3 || !strings.Contains(string(out), "3 partitions") ||
			bytes.Count(out, []byte("isrs: ")) != 3 || bytes.Count(out, []byte(",")) < 12 {
			return fmt.Errorf("kcat -L: %v\n%s", err, out)
		}
		return nil
	})
	// And produces through librdkafka with acks=all.
	produce := exec.CommandContext(ctx, bin, "-b", addr(2), "-P", "-t", topic, "-p", "1", "-X", "acks=all")
	produce.Stdin = strings.NewReader("from-kcat\n")
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P acks=all: %v\n%s", err, out)
	}
}

// composeViews says which brokers each broker of the stack lists in its
// Metadata, to tell a broker missing from etcd from one missing from a
// single broker's cache.
func composeViews(ports []int) string {
	var views []string
	for i, p := range ports {
		view := fmt.Sprintf("gregor-%d: ", i+1)
		nc, err := net.DialTimeout("tcp", "localhost:"+strconv.Itoa(p), 2*time.Second)
		if err != nil {
			views = append(views, view+err.Error())
			continue
		}
		raw := &fzRaw{c: nc}
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(12)
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		_, werr := nc.Write(fzRequestFrame(1, req))
		frame, err := raw.readFrame(5 * time.Second)
		nc.Close()
		if werr != nil || err != nil {
			views = append(views, fmt.Sprintf("%s%v %v", view, werr, err))
			continue
		}
		_, resp, err := fzParseResponse(frame, req.Key(), req.Version)
		if err != nil {
			views = append(views, view+err.Error())
			continue
		}
		md := resp.(*kmsg.MetadataResponse)
		var ids []string
		for _, b := range md.Brokers {
			ids = append(ids, strconv.Itoa(int(b.NodeID)))
		}
		views = append(views, view+"["+strings.Join(ids, " ")+"]")
	}
	return strings.Join(views, "; ")
}
