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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A target is one broker, or one cluster of brokers, under test, reachable
// through seeds. Every kind runs in its own process(es) by default, so the
// benchmark's clients, and the garbage they make, never share a heap or a
// scheduler with the broker they measure.
type target struct {
	name     string
	seeds    []string // Kafka bootstrap host:port of every broker
	replicas int      // replication factor of the benchmark's topics
	dataDir  string   // where the brokers write their logs; "" when kept in memory
	logPaths []string // each broker's stderr, for diagnosis (none in-process)

	stop func() error // stops the broker(s); safe to call more than once
}

// logTail returns the last n lines of each of the target's logs, for error
// messages, each headed by its path.
func (t *target) logTail(n int) string {
	if t == nil {
		return ""
	}
	var parts []string
	for _, p := range t.logPaths {
		if tail := tailFile(p, n); tail != "" {
			parts = append(parts, "--- "+p+" ---\n"+tail)
		}
	}
	return strings.Join(parts, "\n")
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

// gregorNode is one running `gregor serve` process.
type gregorNode struct {
	label    string // "gregor", or "gregor-rf3 node 2"
	httpAddr string // its /readyz server
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the process has been reaped
	waitErr  error         // the process's exit status; read after exited closes
	signaled bool          // SIGTERM sent
}

// startGregorNode starts `bin serve args...` with its output in logPath. It
// does not wait for the broker to be ready (see waitGregorReady).
func startGregorNode(bin, label, httpAddr, logPath string, args []string) (*gregorNode, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", label, err)
	}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	bindToParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", label, bin, err)
	}
	n := &gregorNode{label: label, httpAddr: httpAddr, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		n.waitErr = cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()
	return n, nil
}

// gregorArgs are the `gregor serve` flags every node gets: its data dir,
// the Kafka listener, the HTTP server and the embedded etcd's two addresses
// (picked from ports, in that order), and the topic defaults.
func gregorArgs(dataDir string, ports []int, partitions int) (kafkaAddr, httpAddr string, args []string) {
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	kafkaAddr, httpAddr = addr(ports[0]), addr(ports[1])
	return kafkaAddr, httpAddr, []string{
		"--data-dir", dataDir,
		"--listen", kafkaAddr,
		"--http-addr", httpAddr,
		"--etcd-client-addr", addr(ports[2]),
		"--etcd-peer-addr", addr(ports[3]),
		"--log-level", "warn",
		// Topics are created with CreateTopics; this only matters if
		// Gregor falls back to auto-creation (see createTopic).
		"--num-partitions", strconv.Itoa(partitions),
	}
}

// stopGregorNodes sends SIGTERM to every node at once (a cluster member
// stopped alone would wait on a quorum that is leaving too), then waits up
// to 15s for each and kills what is left. Nodes already stopped are skipped;
// a node that had exited on its own is reported.
func stopGregorNodes(nodes []*gregorNode) error {
	var errs []error
	var pending []*gregorNode
	for _, n := range nodes {
		if n.signaled {
			continue
		}
		n.signaled = true
		select {
		case <-n.exited:
			errs = append(errs, fmt.Errorf("%s had already exited: %v", n.label, n.waitErr))
			continue
		default:
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
		pending = append(pending, n)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range pending {
		select {
		case <-n.exited:
		default:
			select {
			case <-n.exited:
			case <-time.After(time.Until(deadline)):
				n.cmd.Process.Kill()
				<-n.exited
				errs = append(errs, fmt.Errorf("%s did not exit within 15s of SIGTERM; killed", n.label))
				continue
			}
		}
		if n.waitErr != nil {
			errs = append(errs, fmt.Errorf("%s exited uncleanly after SIGTERM: %w", n.label, n.waitErr))
		}
	}
	return errors.Join(errs...)
}

// waitGregorReady polls every node's /readyz until all answer 200, bounded
// by readyTimeout, and fails at once if any node exits.
func waitGregorReady(ctx context.Context, nodes []*gregorNode, readyTimeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	ready := make([]bool, len(nodes))
	last := make([]string, len(nodes))
	for i := range last {
		last[i] = "no answer"
	}
	for {
		for i, n := range nodes {
			select {
			case <-n.exited:
				return fmt.Errorf("%s exited before it was ready (%v)%s", n.label, n.waitErr, logTailNote(n.logPath))
			default:
			}
			if ready[i] {
				continue
			}
			resp, err := hc.Get("http://" + n.httpAddr + "/readyz")
			if err != nil {
				last[i] = err.Error()
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready[i] = true
				continue
			}
			last[i] = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		if !slices.Contains(ready, false) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			var b strings.Builder
			for i, n := range nodes {
				if !ready[i] {
					fmt.Fprintf(&b, "%s not ready after %s (last /readyz: %s)%s\n", n.label, readyTimeout, last[i], logTailNote(n.logPath))
				}
			}
			return errors.New(strings.TrimSpace(b.String()))
		case <-tick.C:
		}
	}
}

// logTailNote is "; log tail:" and the last lines of the log at path, or ""
// when the log is empty.
func logTailNote(path string) string {
	if tail := tailFile(path, 30); tail != "" {
		return "; log tail:\n" + tail
	}
	return ""
}

// gregorTarget wraps started nodes as a target: stop stops them all.
func gregorTarget(name string, seeds []string, replicas int, dataDir string, nodes []*gregorNode) *target {
	t := &target{name: name, seeds: seeds, replicas: replicas, dataDir: dataDir}
	for _, n := range nodes {
		t.logPaths = append(t.logPaths, n.logPath)
	}
	t.stop = func() error { return stopGregorNodes(nodes) }
	return t
}

// startGregor runs `gregor serve` on free loopback ports with its data under
// workDir/gregor-data, and waits until /readyz answers 200.
func startGregor(ctx context.Context, bin, workDir string, partitions int, readyTimeout time.Duration) (*target, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(workDir, "gregor-data")
	kafkaAddr, httpAddr, args := gregorArgs(dataDir, ports, partitions)
	n, err := startGregorNode(bin, "gregor", httpAddr, filepath.Join(workDir, "gregor.log"), args)
	if err != nil {
		return nil, err
	}
	t := gregorTarget("gregor", []string{kafkaAddr}, 1, dataDir, []*gregorNode{n})
	if err := waitGregorReady(ctx, []*gregorNode{n}, readyTimeout); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

// rf3Brokers is the size of the replicated target's cluster, and the
// replication factor of its topics.
const rf3Brokers = 3

// startGregorRF3 runs a three-broker Gregor cluster on free loopback ports:
// three `gregor serve` processes, node ids 1..3, each with its own data dir
// under workDir/gregor-rf3-data and its own embedded etcd member, the three
// forming one etcd quorum through --etcd-initial-cluster. It starts all
// three (a member is ready only once a quorum is up), waits for every
// /readyz, and then until Metadata lists all three brokers, so topics with
// three replicas can be created.
func startGregorRF3(ctx context.Context, bin, workDir string, partitions int, readyTimeout time.Duration) (*target, error) {
	started := time.Now()
	ports, err := freePorts(4 * rf3Brokers)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(workDir, "gregor-rf3-data")
	var members []string
	for i := range rf3Brokers {
		members = append(members, fmt.Sprintf("%d=http://%s", i+1, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4*i+3]))))
	}
	initialCluster := strings.Join(members, ",")

	var (
		nodes []*gregorNode
		seeds []string
	)
	for i := range rf3Brokers {
		id := strconv.Itoa(i + 1)
		kafkaAddr, httpAddr, args := gregorArgs(filepath.Join(dataDir, "node-"+id), ports[4*i:4*i+4], partitions)
		args = append(args, "--node-id", id, "--etcd-initial-cluster", initialCluster,
			// Only for the auto-creation fallback, as --num-partitions.
			"--default-replication-factor", strconv.Itoa(rf3Brokers))
		n, err := startGregorNode(bin, "gregor-rf3 node "+id, httpAddr, filepath.Join(workDir, "gregor-rf3-node-"+id+".log"), args)
		if err != nil {
			stopGregorNodes(nodes)
			return nil, err
		}
		nodes = append(nodes, n)
		seeds = append(seeds, kafkaAddr)
	}
	t := gregorTarget("gregor-rf3", seeds, rf3Brokers, dataDir, nodes)
	if err := waitGregorReady(ctx, nodes, readyTimeout); err != nil {
		t.stop()
		return nil, err
	}
	left := readyTimeout - time.Since(started)
	if err := waitBrokers(ctx, seeds, rf3Brokers, left); err != nil {
		t.stop()
		return nil, fmt.Errorf("gregor-rf3: %w; log tail:\n%s", err, t.logTail(10))
	}
	return t, nil
}

// waitBrokers polls Metadata through seeds until it lists want brokers,
// bounded by timeout.
func waitBrokers(parent context.Context, seeds []string, want int, timeout time.Duration) error {
	cl, err := newAdmin(seeds)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(parent, max(timeout, time.Second))
	defer cancel()
	last := "no answer"
	for {
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		switch {
		case err != nil:
			last = err.Error()
		case len(resp.Brokers) >= want:
			return nil
		default:
			last = fmt.Sprintf("%d brokers", len(resp.Brokers))
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return err
			}
			return fmt.Errorf("metadata did not list %d brokers within %s (last: %s)", want, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
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
		return &target{name: "kfake", seeds: c.ListenAddrs(), replicas: 1, dataDir: dataDir, stop: func() error {
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

	t := &target{name: "kfake", replicas: 1, dataDir: dataDir, logPaths: []string{logPath}}
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
	case addr := <-addrCh:
		t.seeds = []string{addr}
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
