// Command gregor-startup measures how long `gregor serve` takes from exec
// to its first answered ApiVersions request, on a new data directory and
// on one holding a topic with many partitions (README, "Start-up"). Each
// case runs -runs times; it prints the minimum, median and maximum.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	bin := flag.String("gregor-bin", "", "gregor binary (default: go build ./cmd/gregor into the work dir)")
	runs := flag.Int("runs", 5, "starts per case")
	partitions := flag.Int("partitions", 1000, "partitions of the topic in the second case")
	flag.StringVar(&logLevel, "log-level", "error", "the brokers' --log-level (their logs go to stderr)")
	flag.Parse()
	if err := run(*bin, *runs, *partitions); err != nil {
		fmt.Fprintln(os.Stderr, "gregor-startup:", err)
		os.Exit(1)
	}
}

// logLevel is the brokers' --log-level, set once by main.
var logLevel string

func run(bin string, runs, partitions int) error {
	work, err := os.MkdirTemp("", "gregor-startup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if bin == "" {
		bin = filepath.Join(work, "gregor")
		build := exec.Command("go", "build", "-o", bin, "./cmd/gregor")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	var fresh []time.Duration
	for i := range runs {
		d, err := startOnce(bin, filepath.Join(work, "new"+strconv.Itoa(i)), nil)
		if err != nil {
			return err
		}
		fresh = append(fresh, d)
	}
	report("new data dir", fresh)

	dir := filepath.Join(work, "parts")
	if _, err := startOnce(bin, dir, func(addr string) error { return createTopic(addr, partitions) }); err != nil {
		return err
	}
	var full []time.Duration
	for range runs {
		d, err := startOnce(bin, dir, nil)
		if err != nil {
			return err
		}
		full = append(full, d)
	}
	report(fmt.Sprintf("%d partitions", partitions), full)
	return nil
}

func report(what string, ds []time.Duration) {
	slices.Sort(ds)
	fmt.Printf("%-16s min %6.1f ms  median %6.1f ms  max %6.1f ms  (%d starts)\n", what,
		ms(ds[0]), ms(ds[len(ds)/2]), ms(ds[len(ds)-1]), len(ds))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// freePorts returns n loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startOnce starts gregor on dir, waits for its first ApiVersions answer,
// runs then (if any) against it, and stops it with SIGTERM.
func startOnce(bin, dir string, then func(addr string) error) (time.Duration, error) {
	ports, err := freePorts(4)
	if err != nil {
		return 0, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--listen", addr,
		"--http-addr", "127.0.0.1:"+strconv.Itoa(ports[1]),
		"--etcd-client-addr", "127.0.0.1:"+strconv.Itoa(ports[2]),
		"--etcd-peer-addr", "127.0.0.1:"+strconv.Itoa(ports[3]),
		"--log-level", logLevel, "--max-broker-partitions", "100000")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := start.Add(60 * time.Second)
	for {
		err := apiVersions(addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no ApiVersions answer in 60 s: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	if then != nil {
		if err := then(addr); err != nil {
			return 0, err
		}
	}
	return took, nil
}

// apiVersions sends ApiVersions v0 and reads the answer.
func apiVersions(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	const clientID = "gregor-startup"
	req := binary.BigEndian.AppendUint32(nil, uint32(2+2+4+2+len(clientID)))
	req = binary.BigEndian.AppendUint16(req, 18) // ApiVersions
	req = binary.BigEndian.AppendUint16(req, 0)  // v0
	req = binary.BigEndian.AppendUint32(req, 1)  // correlation id
	req = binary.BigEndian.AppendUint16(req, uint16(len(clientID)))
	req = append(req, clientID...)
	if _, err := c.Write(req); err != nil {
		return err
	}
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(head[4:]) != 1 {
		return errors.New("wrong correlation id")
	}
	return nil
}

// createTopic creates a topic of partitions partitions and writes one
// record to each, so that every partition has a log to open at the next
// start.
func createTopic(addr string, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, "startup")
	if err != nil {
		return err
	}
	if resp.Err != nil {
		return fmt.Errorf("create topic: %w", resp.Err)
	}
	recs := make([]*kgo.Record, partitions)
	for p := range recs {
		recs[p] = &kgo.Record{Topic: "startup", Partition: int32(p), Value: []byte("x")}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}
