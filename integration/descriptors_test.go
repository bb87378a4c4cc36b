package integration

// Bounded descriptors: a broker with many partitions and many small
// segments keeps its open files under log.segment.files.open.max (plus
// what etcd and sockets take) while it starts and while consumers read
// every old segment. Without the bound it would need three descriptors a
// segment.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerPid is the running broker process's id.
func brokerPid(p *brokerProc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// procFDs counts a process's open descriptors, and those that are
// segment files.
func procFDs(t testing.TB, pid int) (all, segments int) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if strings.HasSuffix(target, ".log") || strings.HasSuffix(target, ".index") || strings.HasSuffix(target, ".timeindex") ||
			strings.HasSuffix(target, ".deleted") {
			segments++
		}
	}
	return len(ents), segments
}

// procRSS is a process's resident memory in bytes.
func procRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// descriptorScale is the test's size: partitions, batches (one segment
// each) per partition, and whether the restart follows a kill -9 (every
// segment is then checked) or a clean stop.
// GREGOR_DESCRIPTOR_SCALE=partitions,batches[,term] changes it for a
// one-off measurement (README: 10000,10,term).
func descriptorScale(t *testing.T) (partitions, perPartition int, kill bool) {
	partitions, perPartition, kill = 80, 40, true
	if v := os.Getenv("GREGOR_DESCRIPTOR_SCALE"); v != "" {
		f := strings.Split(v, ",")
		var err1, err2 error
		partitions, err1 = strconv.Atoi(f[0])
		if len(f) > 1 {
			perPartition, err2 = strconv.Atoi(f[1])
		}
		if err1 != nil || err2 != nil || len(f) < 2 {
			t.Fatalf("GREGOR_DESCRIPTOR_SCALE=%q: want partitions,batches[,term]", v)
		}
		kill = len(f) < 3 || f[2] != "term"
	}
	return partitions, perPartition, kill
}

func TestDescriptorsBounded(t *testing.T) {
	partitions, perPartition, kill := descriptorScale(t)
	const bound = 256
	p := startBroker(t, "--config", "log.segment.files.open.max="+strconv.Itoa(bound),
		"--max-broker-partitions", strconv.Itoa(max(partitions, 10000)))
	ctx := testContext(t, 1500*time.Second)
	adm := fzAdmin(t, p.Addr)
	adm.SetTimeoutMillis(600000) // placing 10,000 partitions takes a while
	topic := fzTopic(t, "fd")
	// Every batch is larger than segment.bytes, so each goes alone into a
	// segment of its own.
	segBytes := "100"
	fzCreateTopic(ctx, t, adm, topic, int32(partitions), map[string]*string{"segment.bytes": &segBytes})

	prod := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(partitions*2))
	began := time.Now()
	pid := brokerPid(p)
	peak := 0
	for round := range perPartition {
		recs := make([]*kgo.Record, partitions)
		for part := range recs {
			recs[part] = &kgo.Record{Topic: topic, Partition: int32(part), Value: []byte(fmt.Sprintf("round %d partition %d", round, part))}
		}
		fzProduceSync(ctx, t, prod, recs...)
		_, segs := procFDs(t, pid)
		peak = max(peak, segs)
	}
	produced := time.Since(began)
	prod.Close()
	segments := partitions * perPartition
	t.Logf("produced %d segments in %d partitions in %v; peak %d segment descriptors", segments, partitions, produced, peak)
	// Files with unsynced writes close only after their fsync: while
	// more partitions are written at once than the bound holds, the
	// cache runs over it, by at most the bound again plus one file per
	// running operation (the README says so). Here they fit.
	if 3*partitions <= bound && peak > bound+32 {
		t.Fatalf("%d segment descriptors open while producing, bound %d", peak, bound)
	}

	// A crash, then a restart that checks every segment (no checkpoint
	// covers the last minute) and opens every log; or a clean stop.
	how := "kill -9"
	var stopped time.Duration
	if kill {
		p.Kill()
	} else {
		// Closing (and later opening) 10,000 logs takes longer than
		// the harness's Stop and Restart wait.
		how = "a clean stop"
		began = time.Now()
		p.mu.Lock()
		cmd, done, logf := p.cmd, p.done, p.logf
		p.mu.Unlock()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Minute):
			t.Fatal("no exit 15 minutes after SIGTERM")
		}
		logf.Close()
		stopped = time.Since(began)
		if code := p.ExitCode(); code != 0 {
			t.Fatalf("SIGTERM: exit code %d", code)
		}
	}
	began = time.Now()
	p.spawn()
	p.waitReady(15 * time.Minute)
	restart := time.Since(began)
	t.Logf("stop took %v", stopped)
	pid = brokerPid(p)
	all, segs := procFDs(t, pid)
	t.Logf("restart after %s took %v: %d descriptors, %d segment files, RSS %d MiB", how, restart, all, segs, procRSS(t, pid)>>20)
	if segs > bound+32 {
		t.Fatalf("%d segment descriptors open after start, bound %d", segs, bound)
	}

	// Consumers read every old segment of every partition while the
	// descriptors are sampled.
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, s := procFDs(t, pid)
			mu.Lock()
			peak = max(peak, s)
			mu.Unlock()
		}
	}()
	peak = 0
	offsets := map[int32]kgo.Offset{}
	for part := range partitions {
		offsets[int32(part)] = kgo.NewOffset().At(0)
	}
	began = time.Now()
	cl := fzClient(t, p.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxPartitionBytes(1<<10))
	got := map[int32]int{}
	n := 0
	for n < segments {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", n, segments, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if fe.Err != context.Canceled {
				t.Fatalf("fetch %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
			}
		}
		for _, r := range fs.Records() {
			if want := fmt.Sprintf("round %d partition %d", got[r.Partition], r.Partition); string(r.Value) != want || r.Offset != int64(got[r.Partition]) {
				t.Fatalf("%s[%d]@%d is %q, want %q at %d", topic, r.Partition, r.Offset, r.Value, want, got[r.Partition])
			}
			got[r.Partition]++
			n++
		}
	}
	consumed := time.Since(began)
	close(stop)
	<-sampled
	cl.Close()
	all, segs = procFDs(t, pid)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("consumed %d records from %d segments in %v: peak %d segment descriptors; now %d descriptors, %d segment files, RSS %d MiB",
		n, segments, consumed, peak, all, segs, procRSS(t, pid)>>20)
	if peak > bound+32 {
		t.Fatalf("%d segment descriptors open while consumers read old segments, bound %d", peak, bound)
	}
	fzCheckLogs(t, p)
}
