// Package integration drives real Kafka clients (franz-go, sarama,
// kafka-go, kcat) against the real gregor binary over TCP.
package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gregorBin is the binary built once by TestMain.
var gregorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gregor-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gregorBin = filepath.Join(dir, "gregor")
	build := exec.Command("go", "build", "-race", "-o", gregorBin, "github.com/gregorbroker/gregor/cmd/gregor")
	if os.Getenv("GREGOR_NO_RACE") != "" {
		build = exec.Command("go", "build", "-o", gregorBin, "github.com/gregorbroker/gregor/cmd/gregor")
	}
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gregor:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// portAllocator hands out loopback ports for the servers tests start. It
// picks them below Linux's ephemeral range (32768-60999), where the kernel
// never puts the source port of an outgoing connection, and never hands the
// same port out twice in one test binary, so one broker's etcd peer port
// cannot turn up again as another's Kafka port. Owned by its mutex.
type portAllocator struct {
	mu   sync.Mutex
	next int
	used map[int]bool
}

const (
	portRangeLow  = 20000
	portRangeHigh = 32767
)

// testPorts is the integration package's allocator.
var testPorts = &portAllocator{used: map[int]bool{}}

// take returns a port no earlier call returned that can be bound right now.
func (a *portAllocator) take() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == 0 {
		// Start at a different place in each run, so two test binaries that
		// run at once (go test over several packages) rarely compete.
		a.next = portRangeLow + (os.Getpid()*7919)%(portRangeHigh-portRangeLow)
	}
	for tries := 0; tries <= portRangeHigh-portRangeLow; tries++ {
		port := a.next
		a.next++
		if a.next > portRangeHigh {
			a.next = portRangeLow
		}
		if a.used[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // held by someone else
		}
		l.Close()
		a.used[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port left in %d-%d", portRangeLow, portRangeHigh)
}

// freePort returns a loopback port that was free a moment ago and that no
// other test in this binary has been given.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := testPorts.take()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return port
}

// brokerProc is one gregor process started by a test.
type brokerProc struct {
	t       testing.TB
	Addr    string // Kafka listener, 127.0.0.1:port
	HTTP    string
	Etcd    string // client URL of its embedded etcd (unused with --etcd-endpoints)
	Peer    string // peer URL of its embedded etcd
	DataDir string
	args    []string
	bin     string // the binary to run; "" is gregorBin

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logf *os.File
}

// startBroker starts gregor with an embedded etcd on free loopback ports
// and a fresh data dir, plus any extra flags, and waits until /readyz says
// ready. The process is killed when the test ends.
func startBroker(t testing.TB, extra ...string) *brokerProc {
	t.Helper()
	p := newBrokerProc(t, extra...)
	p.start()
	return p
}

// newBrokerProc prepares what startBroker starts: free loopback ports, a
// fresh data dir, the flags. The process is killed when the test ends.
func newBrokerProc(t testing.TB, extra ...string) *brokerProc {
	t.Helper()
	p := &brokerProc{t: t, DataDir: t.TempDir()}
	if keep := os.Getenv("GREGOR_KEEP_FAILED"); keep != "" {
		// Debugging aid: copy the data dir of a failed test under $GREGOR_KEEP_FAILED.
		t.Cleanup(func() {
			if t.Failed() {
				dst := filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
				if out, err := exec.Command("cp", "-a", p.DataDir, dst).CombinedOutput(); err != nil {
					t.Logf("keep data dir: %v: %s", err, out)
				} else {
					t.Logf("data dir kept in %s", dst)
				}
			}
		})
	}
	kafkaPort := freePort(t)
	p.Addr = "127.0.0.1:" + strconv.Itoa(kafkaPort)
	p.HTTP = "127.0.0.1:" + strconv.Itoa(freePort(t))
	etcdClient := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p.Etcd = "http://" + etcdClient
	peer := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p.Peer = "http://" + peer
	p.args = append([]string{"serve",
		"--data-dir", p.DataDir,
		"--listen", p.Addr,
		"--http-addr", p.HTTP,
		"--etcd-client-addr", etcdClient,
		"--etcd-peer-addr", peer,
		"--log-level", "info",
	}, extra...)
	t.Cleanup(p.Kill)
	return p
}

func (p *brokerProc) start() {
	p.t.Helper()
	p.spawn()
	p.waitReady(60 * time.Second)
}

// spawn starts the process without waiting for it to be ready.
func (p *brokerProc) spawn() {
	p.t.Helper()
	logf, err := os.OpenFile(filepath.Join(p.DataDir, "gregor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("log file: %v", err)
	}
	bin := gregorBin
	if p.bin != "" {
		bin = p.bin
	}
	cmd := exec.Command(bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start gregor: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done, p.logf = cmd, done, logf
	p.mu.Unlock()
}

// waitReady polls /readyz until it answers 200, the process exits, or the timeout passes.
func (p *brokerProc) waitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			p.t.Fatalf("gregor exited during start:\n%s", p.Logs())
		default:
		}
		resp, err := client.Get("http://" + p.HTTP + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("gregor not ready after %v:\n%s", timeout, p.Logs())
}

// Logs returns what the process has logged so far.
func (p *brokerProc) Logs() string {
	b, _ := os.ReadFile(filepath.Join(p.DataDir, "gregor.log"))
	return string(b)
}

// Kill sends SIGKILL and waits for the process to go.
func (p *brokerProc) Kill() { p.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits for a clean exit.
func (p *brokerProc) Stop() { p.signal(syscall.SIGTERM) }

func (p *brokerProc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done, logf := p.cmd, p.done, p.logf
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
	default:
		cmd.Process.Signal(sig)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			p.t.Errorf("gregor did not exit within 30s of %v", sig)
		}
	}
	logf.Close()
}

// Pause stops the process (SIGSTOP) without ending it: to the rest of
// the cluster it looks cut off. Resume continues it.
func (p *brokerProc) Pause() { p.sendOnly(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *brokerProc) Resume() { p.sendOnly(syscall.SIGCONT) }

func (p *brokerProc) sendOnly(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
}

// Restart starts the process again with the same flags and data dir.
func (p *brokerProc) Restart() {
	p.t.Helper()
	p.start()
}

// ExitCode is the exit code of the last run (-1 if killed by a signal).
func (p *brokerProc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.ProcessState.ExitCode()
}

// testContext is a context bounded by d and by the end of the test.
func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
