package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// A target is one broker under test, reachable at addr. Both kinds run in
// their own process by default, so the benchmark's clients, and the garbage
// they make, never share a heap or a scheduler with the broker they measure.
type target struct {
	name    string
	addr    string // Kafka bootstrap host:port
	dataDir string // where the broker writes its logs; "" when it keeps them in memory
	logPath string // the broker's stderr, for diagnosis ("" in-process)

	stop func() error // stops the broker; safe to call more than once
}

// logTail returns the last n lines of the target's log, for error messages.
func (t *target) logTail(n int) string {
	if t == nil || t.logPath == "" {
		return ""
	}
	return tailFile(t.logPath, n)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All listeners are held until every port is chosen so the n are distinct.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// moduleRoot returns the directory of the go.mod governing the current
// directory, which is where ./cmd/gregor is built from.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the gregor module: run from the repository or pass -gregor-bin")
	}
	return filepath.Dir(gomod), nil
}

// buildGregor compiles ./cmd/gregor (no -race: we measure speed) into dir.
func buildGregor(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gregor")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gregor")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/gregor: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	return bin, nil
}

// startGregor runs `gregor serve` on free loopback ports with its data under
// workDir/gregor-data, and waits until /readyz answers 200.
func startGregor(ctx context.Context, bin, workDir string, partitions int, readyTimeout time.Duration) (*target, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	var (
		kafkaAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		httpAddr  = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		etcdC     = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2]))
		etcdP     = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3]))
		dataDir   = filepath.Join(workDir, "gregor-data")
		logPath   = filepath.Join(workDir, "gregor.log")
	)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("gregor log: %w", err)
	}
	cmd := exec.Command(bin, "serve",
		"--data-dir", dataDir,
		"--listen", kafkaAddr,
		"--http-addr", httpAddr,
		"--etcd-client-addr", etcdC,
		"--etcd-peer-addr", etcdP,
		"--log-level", "warn",
		// Topics are created with CreateTopics; this only matters if
		// Gregor falls back to auto-creation (see createTopic).
		"--num-partitions", strconv.Itoa(partitions),
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	bindToParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()

	t := &target{name: "gregor", addr: kafkaAddr, dataDir: dataDir, logPath: logPath}
	stopped := false
	t.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		select {
		case <-exited:
			return fmt.Errorf("gregor had already exited: %v", waitErr)
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if waitErr != nil {
				return fmt.Errorf("gregor exited uncleanly after SIGTERM: %w", waitErr)
			}
			return nil
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			return errors.New("gregor did not exit within 15s of SIGTERM; killed")
		}
	}

	// Wait for readiness, bounded, noticing an early exit at once.
	readyURL := "http://" + httpAddr + "/readyz"
	hc := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastStatus := "no answer"
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("gregor exited before it was ready (%v); log tail:\n%s", waitErr, t.logTail(30))
		case <-ctx.Done():
			t.stop()
			return nil, ctx.Err()
		case <-deadline.C:
			t.stop()
			return nil, fmt.Errorf("gregor not ready after %s (last /readyz: %s); log tail:\n%s", readyTimeout, lastStatus, t.logTail(30))
		case <-tick.C:
		}
		resp, err := hc.Get(readyURL)
		if err != nil {
			lastStatus = err.Error()
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return t, nil
		}
		lastStatus = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
}

// kfakeReadyPrefix starts the line a kfake child prints once it listens.
const kfakeReadyPrefix = "KFAKE-LISTENING "

// kfakeOpts is the one place the fake's configuration lives, shared by the
// child process and the -kfake-inprocess mode.
func kfakeOpts(dataDir string) []kfake.Opt {
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	return opts
}

// serveKfake is the body of the child process started by startKfake: it runs
// a one-broker kfake cluster until SIGTERM or until its stdin closes (the
// parent has gone away).
func serveKfake(dataDir string) int {
	c, err := kfake.NewCluster(kfakeOpts(dataDir)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 1
	}
	fmt.Println(kfakeReadyPrefix + c.ListenAddrs()[0])
	done := make(chan os.Signal, 2)
	signal.Notify(done, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		done <- syscall.SIGTERM
	}()
	<-done
	c.Close()
	return 0
}

// startKfake starts kfake in a child process (this same binary, re-executed
// with -kfake-serve) or, with inProcess, inside this process.
func startKfake(ctx context.Context, workDir string, persist, inProcess bool) (*target, error) {
	dataDir := ""
	if persist {
		dataDir = filepath.Join(workDir, "kfake-data")
	}
	if inProcess {
		c, err := kfake.NewCluster(kfakeOpts(dataDir)...)
		if err != nil {
			return nil, fmt.Errorf("kfake: %w", err)
		}
		closed := false
		return &target{name: "kfake", addr: c.ListenAddrs()[0], dataDir: dataDir, stop: func() error {
			if !closed {
				closed = true
				c.Close()
			}
			return nil
		}}, nil
	}

	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary to run kfake: %w", err)
	}
	logPath := filepath.Join(workDir, "kfake.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("kfake log: %w", err)
	}
	args := []string{"-kfake-serve"}
	if dataDir != "" {
		args = append(args, "-kfake-serve-dir", dataDir)
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = logFile
	bindToParent(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start kfake child: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), kfakeReadyPrefix); ok {
				addrCh <- addr
				break
			}
		}
		io.Copy(io.Discard, stdout)
		waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()

	t := &target{name: "kfake", dataDir: dataDir, logPath: logPath}
	stopped := false
	t.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		stdin.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if waitErr != nil {
				return fmt.Errorf("kfake child exited uncleanly: %w", waitErr)
			}
			return nil
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			return errors.New("kfake child did not exit within 15s of SIGTERM; killed")
		}
	}
	select {
	case t.addr = <-addrCh:
		return t, nil
	case <-exited:
		return nil, fmt.Errorf("kfake child exited before listening (%v); log tail:\n%s", waitErr, t.logTail(30))
	case <-ctx.Done():
		t.stop()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		t.stop()
		return nil, errors.New("kfake child did not start listening within 30s")
	}
}

// dirBytes sums the sizes of the regular files under dir, skipping skip
// (Gregor's embedded etcd lives inside its data dir).
func dirBytes(dir, skip string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && skip != "" && d.Name() == skip && path != dir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
