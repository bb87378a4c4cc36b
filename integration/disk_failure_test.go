package integration

// A partition leader whose disk fails hands the partition to another
// in-sync replica. The brokers run a binary built with the faultinject
// tag (cmd/gregor/faultinject.go): a partition's disk fails while its
// directory holds a file named FAIL-DISK.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	faultBinOnce sync.Once
	faultBin     string
	faultBinErr  error
)

// faultInjectBin builds, once per test binary, gregor with the
// faultinject tag (with -race unless GREGOR_NO_RACE is set).
func faultInjectBin(t *testing.T) string {
	t.Helper()
	faultBinOnce.Do(func() {
		faultBin = filepath.Join(filepath.Dir(gregorBin), "gregor-faultinject")
		args := []string{"build", "-tags", "faultinject", "-o", faultBin}
		if os.Getenv("GREGOR_NO_RACE") == "" {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/gregorbroker/gregor/cmd/gregor")...).CombinedOutput()
		if err != nil {
			faultBinErr = fmt.Errorf("build with -tags faultinject: %v: %s", err, out)
		}
	})
	if faultBinErr != nil {
		t.Fatal(faultBinErr)
	}
	return faultBin
}

// TestDiskFailureHandsOffLeadership: three brokers, a topic with
// replication factor 3 under acks=all load. The leader's disk fails
// (writes return EIO): it answers KAFKA_STORAGE_ERROR, leaves the ISR
// and leadership moves to another in-sync replica, where the producer
// carries on; every acknowledged record is there afterwards.
func TestDiskFailureHandsOffLeadership(t *testing.T) {
	bin := faultInjectBin(t)
	var brokers []*brokerProc
	for id := 1; id <= 3; id++ {
		p := newBrokerProc(t, "--node-id", strconv.Itoa(id), "--etcd-lease-ttl", "3s")
		p.bin = bin
		brokers = append(brokers, p)
	}
	var members []string
	for i, b := range brokers {
		members = append(members, fmt.Sprintf("%d=%s", i+1, b.Peer))
	}
	for _, b := range brokers {
		b.args = append(b.args, "--etcd-initial-cluster", strings.Join(members, ","))
		b.spawn()
	}
	for _, b := range brokers {
		b.waitReady(90 * time.Second)
	}
	ctx := testContext(t, 150*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "disk")
	two := "2"
	replCreateTopic(ctx, t, adm, topic, 1, 3, map[string]*string{"min.insync.replicas": &two})
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	before := td.Partitions[0]
	leader := before.Leader
	seeds := replAddrs(brokers, 0)

	load := replStartLoad(ctx, t, seeds, topic, 1)
	load.waitMore(t, 50, 30*time.Second)
	trigger := filepath.Join(brokers[leader-1].DataDir, topic+"-0", "FAIL-DISK")
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fzWaitFor(t, 20*time.Second, "leadership moved off the failed disk", func() error {
		p := replPartition(ctx, t, adm, topic, 0)
		if p.Leader == leader || p.Leader < 0 || slices.Contains(p.ISR, leader) || p.LeaderEpoch <= before.LeaderEpoch {
			return fmt.Errorf("leader %d epoch %d isr %v", p.Leader, p.LeaderEpoch, p.ISR)
		}
		return nil
	})
	load.waitMore(t, 50, 30*time.Second)
	acks, _, _ := load.finish()
	replCheckAcked(ctx, t, replAddrs(brokers, leader), topic, 1, acks)
	if logs := brokers[leader-1].Logs(); !strings.Contains(logs, "log failed") || !strings.Contains(logs, "left the isr") {
		t.Errorf("the failed broker's log does not tell of the failed log and the hand-off")
	}
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}
