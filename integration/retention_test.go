package integration

// Retention (cleanup.policy=delete) with real clients: by time
// (retention.ms, by each segment's largest timestamp) and by size
// (retention.bytes), changed at run time through IncrementalAlterConfigs
// on the topic and on the cluster-wide broker default; the active segment
// rolled by segment.ms; consumers below the log start resetting by their
// policy (franz-go, sarama, kcat); ListOffsets earliest and
// DescribeLogDirs sizes following; followers dropping the same segments;
// kill -9 in the middle of deletions losing nothing above the start.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// retCheckEvery is the retention check interval the tests run brokers with.
var retCheckEvery = []string{"--config", "log.retention.check.interval.ms=100"}

// retProduceAt writes n records, one batch each, with timestamp ts, to
// partition 0; values are "v<offset-from-first>".
func retProduceAt(ctx context.Context, t *testing.T, seeds []string, topic string, first, n int, ts time.Time) {
	t.Helper()
	cl := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(1))
	defer cl.Close()
	for i := first; i < first+n; i++ {
		r := &kgo.Record{Topic: topic, Partition: 0, Timestamp: ts, Value: []byte(fmt.Sprintf("v%03d-%s", i, strings.Repeat("x", 90)))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
}

// retWaitStart waits until partition 0's earliest offset satisfies ok.
func retWaitStart(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, what string, ok func(int64) bool) int64 {
	t.Helper()
	var start int64
	fzWaitFor(t, 30*time.Second, what, func() error {
		offs, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return err
		}
		o, _ := offs.Lookup(topic, 0)
		if o.Err != nil {
			return o.Err
		}
		start = o.Offset
		if !ok(start) {
			return fmt.Errorf("earliest offset %d", start)
		}
		return nil
	})
	return start
}

// retLogDirSize is DescribeLogDirs' size of partition 0.
func retLogDirSize(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	dirs, err := adm.DescribeAllLogDirs(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatalf("describe log dirs: %v", err)
	}
	var size int64 = -1
	dirs.Each(func(d kadm.DescribedLogDir) {
		if p, ok := d.Topics[topic][0]; ok {
			size = p.Size
		}
	})
	if size < 0 {
		t.Fatalf("describe log dirs: no %s-0", topic)
	}
	return size
}

func TestRetentionByTime(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	b := startBroker(t, retCheckEvery...)
	adm := fzAdmin(t, b.Addr)
	topic := fzTopic(t, "rett")
	fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"segment.bytes": kadm.StringPtr("1024"), "file.delete.delay.ms": kadm.StringPtr("100")})
	retProduceAt(ctx, t, []string{b.Addr}, topic, 0, 40, time.Now().Add(-2*time.Hour))
	retProduceAt(ctx, t, []string{b.Addr}, topic, 40, 10, time.Now())
	sizeBefore := retLogDirSize(ctx, t, adm, topic)

	// A franz-go consumer reads all along, from the start.
	var mu sync.Mutex
	var seen []int64
	reader := fzClient(t, b.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	readCtx, stopReading := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for readCtx.Err() == nil {
			fs := reader.PollFetches(readCtx)
			mu.Lock()
			for _, r := range fs.Records() {
				seen = append(seen, r.Offset)
			}
			mu.Unlock()
		}
	}()

	// So do a sarama partition consumer and kcat (which exits after 60
	// records: the 50 there now and 10 produced after the deletion).
	scfg := saramaConfig(sarama.V2_8_0_0)
	sconsumer, err := sarama.NewConsumer([]string{b.Addr}, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sconsumer.Close()
	spc, err := sconsumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer spc.Close()
	// kcat's bound is the test's: the steps before its last record each
	// have their own, which add up to more than a minute under load.
	// -u: unbuffered, so that what kcat has read shows as it reads.
	kcat := exec.CommandContext(ctx, kcatBin(t), "-C", "-u", "-b", b.Addr, "-t", topic, "-p", "0", "-o", "beginning", "-c", "60", "-f", "%o\n")
	var kcatOut, kcatErr lockedBuffer
	kcat.Stdout, kcat.Stderr = &kcatOut, &kcatErr
	if err := kcat.Start(); err != nil {
		t.Fatal(err)
	}
	kcatDone := make(chan error, 1)
	go func() { kcatDone <- kcat.Wait() }()
	saramaSeen := func(upTo int64) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case m := <-spc.Messages():
				if m.Offset == upTo {
					return
				}
			case e := <-spc.Errors():
				t.Fatalf("sarama consumer: %v", e)
			case <-timeout:
				t.Fatalf("sarama consumer: offset %d not reached", upTo)
			}
		}
	}
	saramaSeen(49)
	// kcat too must have read the old records before they go (it starts
	// slowly under load: started later, "beginning" would be past them).
	fzWaitFor(t, 60*time.Second, "kcat to read offset 49", func() error {
		if lines := strings.Fields(kcatOut.String()); len(lines) < 50 {
			return fmt.Errorf("%d offsets", len(lines))
		}
		return nil
	})

	// The default (7 days) keeps everything; an hour, set at run time,
	// deletes the segments whose records are all two hours old.
	if s := drStart(ctx, t, adm, topic, 0); s != 0 {
		t.Fatalf("earliest offset %d before retention, want 0", s)
	}
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("3600000")}}, topic)
	if err != nil || resp[0].Err != nil {
		t.Fatalf("alter retention.ms: %v %v", err, resp)
	}
	start := retWaitStart(ctx, t, adm, topic, "old segments deleted", func(s int64) bool { return s > 0 })
	// The segment holding offset 40 (new records) stays, and so does
	// every record of it: the start is its base.
	if start > 40 || start < 30 {
		t.Fatalf("earliest offset %d, want the base of the segment holding 40", start)
	}
	if got := fzLogFiles(t, fzPartitionDir(b, topic, 0))[0]; got != fmt.Sprintf("%020d.log", start) {
		t.Fatalf("first segment %s, want base %d", got, start)
	}
	if size := retLogDirSize(ctx, t, adm, topic); size >= sizeBefore || size <= 0 {
		t.Fatalf("DescribeLogDirs size %d, before %d", size, sizeBefore)
	}
	retProduceAt(ctx, t, []string{b.Addr}, topic, 50, 10, time.Now())
	fzWaitFor(t, 20*time.Second, "the running consumer at offset 59", func() error {
		mu.Lock()
		defer mu.Unlock()
		if n := len(seen); n == 0 || seen[n-1] != 59 {
			return fmt.Errorf("%d records", n)
		}
		return nil
	})
	saramaSeen(59)
	if err := <-kcatDone; err != nil {
		t.Fatalf("kcat reading across the deletion: %v (offsets read: %q)\n%s", err, kcatOut.String(), kcatErr.String())
	}
	lines := strings.Fields(kcatOut.String())
	if len(lines) != 60 || lines[0] != "0" || lines[59] != "59" {
		t.Fatalf("kcat read %d offsets (%v ... ), want 0 to 59", len(lines), lines[:min(3, len(lines))])
	}
	stopReading()
	wg.Wait()
	reader.Close()
	mu.Lock()
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Fatalf("running consumer: offset %d after %d", seen[i], seen[i-1])
		}
	}
	mu.Unlock()

	// Consumers below the start reset by their policy.
	if off := drFirstOffset(ctx, t, b.Addr, topic, 0, 3, kgo.NewOffset().AtStart()); off != start {
		t.Fatalf("franz-go reset to earliest: %d, want %d", off, start)
	}
	latest := fzClient(t, b.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(3)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	fzWaitFor(t, 20*time.Second, "the latest-reset consumer to skip to the end", func() error {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		fs := latest.PollFetches(pctx)
		if recs := fs.Records(); len(recs) > 0 {
			t.Fatalf("latest reset read offset %d of the old data", recs[0].Offset)
		}
		retProduceAt(ctx, t, []string{b.Addr}, topic, 60, 1, time.Now())
		pctx2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
		defer cancel2()
		if recs := latest.PollFetches(pctx2).Records(); len(recs) == 0 || recs[0].Offset < 60 {
			return fmt.Errorf("no new record yet (%d)", len(recs))
		}
		return nil
	})
	latest.Close()
	out, _ := kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", topic, "-p", "0", "-o", "2", "-X", "auto.offset.reset=earliest", "-c", "1", "-f", "%o\n")
	if got := strings.TrimSpace(out); got != strconv.FormatInt(start, 10) {
		t.Fatalf("kcat from offset 2 with auto.offset.reset=earliest: %q, want %d", got, start)
	}
	consumer, err := sarama.NewConsumer([]string{b.Addr}, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	if _, err := consumer.ConsumePartition(topic, 0, 1); !errors.Is(err, sarama.ErrOffsetOutOfRange) {
		t.Fatalf("sarama below the start: %v, want OFFSET_OUT_OF_RANGE", err)
	}
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if m.Offset != start {
			t.Fatalf("sarama oldest: %d, want %d", m.Offset, start)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sarama: no message from the oldest offset")
	}
	// A restart keeps the start (and everything above it).
	b.Stop()
	b.start()
	adm = fzAdmin(t, b.Addr)
	if s := drStart(ctx, t, adm, topic, 0); s != start {
		t.Fatalf("after a restart: earliest %d, want %d", s, start)
	}
	drConsumeRange(ctx, t, b.Addr, topic, 0, start, 61)
	fzCheckLogs(t, b)
}

func TestRetentionBySizeDynamicBrokerDefault(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	b := startBroker(t, retCheckEvery...)
	adm := fzAdmin(t, b.Addr)
	topic := fzTopic(t, "rets")
	fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"segment.bytes": kadm.StringPtr("1024"), "file.delete.delay.ms": kadm.StringPtr("0")})
	retProduceAt(ctx, t, []string{b.Addr}, topic, 0, 60, time.Now())
	before := retLogDirSize(ctx, t, adm, topic)
	if before < 4096 {
		t.Fatalf("size %d, want several segments", before)
	}
	// The cluster-wide default log.retention.bytes, changed at run time,
	// reaches a topic that does not set retention.bytes itself.
	resp, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.retention.bytes", Value: kadm.StringPtr("2048")}})
	if err != nil || resp[0].Err != nil {
		t.Fatalf("alter log.retention.bytes: %v %v", err, resp)
	}
	start := retWaitStart(ctx, t, adm, topic, "segments beyond 2048 bytes deleted", func(s int64) bool { return s > 0 })
	fzWaitFor(t, 10*time.Second, "size at most 2048 bytes plus a segment", func() error {
		size := retLogDirSize(ctx, t, adm, topic)
		if size < 2048 || size > 2048+1024 {
			return fmt.Errorf("size %d", size)
		}
		return nil
	})
	recs := drConsumeRange(ctx, t, b.Addr, topic, 0, start, 60)
	if !strings.HasPrefix(string(recs[len(recs)-1].Value), "v059-") {
		t.Fatalf("last record %q", recs[len(recs)-1].Value)
	}
	// Cleaner, segment and retention broker defaults are dynamic too, per
	// broker and cluster-wide, as in Kafka.
	for _, c := range []struct{ name, value string }{{"log.cleaner.backoff.ms", "5000"}, {"log.cleaner.threads", "2"}, {"log.segment.bytes", "1048576"},
		{"log.retention.ms", "86400000"}, {"log.retention.minutes", "600"}, {"log.retention.hours", "48"}, {"log.roll.ms", "3600000"}} {
		if resp, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: c.name, Value: kadm.StringPtr(c.value)}}, 1); err != nil || resp[0].Err != nil {
			t.Fatalf("alter %s on broker 1: %v %v", c.name, err, resp)
		}
		if resp, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: c.name, Value: kadm.StringPtr(c.value)}}); err != nil || resp[0].Err != nil {
			t.Fatalf("alter %s cluster-wide: %v %v", c.name, err, resp)
		}
	}
	fzCheckLogs(t, b)
}

// TestRetentionRollsOnSegmentMs: a partition nobody writes to any more
// still loses its old data: the retention check rolls the active segment
// once segment.ms passed, then deletes it by retention.ms.
func TestRetentionRollsOnSegmentMs(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	b := startBroker(t, retCheckEvery...)
	adm := fzAdmin(t, b.Addr)
	topic := fzTopic(t, "retr")
	fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"segment.ms": kadm.StringPtr("1000"), "retention.ms": kadm.StringPtr("1000")})
	retProduceAt(ctx, t, []string{b.Addr}, topic, 0, 5, time.Now())
	retWaitStart(ctx, t, adm, topic, "every record gone", func(s int64) bool { return s == 5 })
	if end := fzEndOffsets(ctx, t, adm, topic)[0]; end != 5 {
		t.Fatalf("end offset %d, want 5", end)
	}
	retProduceAt(ctx, t, []string{b.Addr}, topic, 5, 1, time.Now())
	if recs := drConsumeRange(ctx, t, b.Addr, topic, 0, 5, 6); !strings.HasPrefix(string(recs[0].Value), "v005-") {
		t.Fatalf("record %q", recs[0].Value)
	}
	fzCheckLogs(t, b)
}

// TestRetentionReplicated: on three brokers, every replica deletes the
// same old segments and a new leader starts where the old one did.
func TestRetentionReplicated(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	brokers := startQuorumCluster(t, 3, append([]string{"--etcd-lease-ttl", "3s"}, retCheckEvery...)...)
	seeds := replAddrs(brokers, -1)
	adm := fzAdmin(t, seeds[0])
	topic := fzTopic(t, "retrep")
	replCreateTopic(ctx, t, adm, topic, 1, 3, map[string]*string{"segment.bytes": kadm.StringPtr("1024"), "file.delete.delay.ms": kadm.StringPtr("0")})
	replWaitISR(ctx, t, adm, topic, 3, time.Minute)
	retProduceAt(ctx, t, seeds, topic, 0, 40, time.Now().Add(-2*time.Hour))
	retProduceAt(ctx, t, seeds, topic, 40, 10, time.Now())
	td := replWaitISR(ctx, t, adm, topic, 3, time.Minute)
	leader := td.Partitions[0].Leader
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("3600000")}}, topic)
	if err != nil || resp[0].Err != nil {
		t.Fatalf("alter retention.ms: %v %v", err, resp)
	}
	start := retWaitStart(ctx, t, adm, topic, "old segments deleted", func(s int64) bool { return s > 0 })
	want := fmt.Sprintf("%020d.log", start)
	for _, b := range brokers {
		fzWaitFor(t, 20*time.Second, "old segments deleted on "+b.Addr, func() error {
			if segs := fzLogFiles(t, fzPartitionDir(b, topic, 0)); len(segs) == 0 || segs[0] != want {
				return fmt.Errorf("segments %v, want the first at %d", segs, start)
			}
			return nil
		})
	}
	brokers[leader-1].Kill()
	adm = fzAdmin(t, replAddrs(brokers, leader)[0])
	fzWaitFor(t, time.Minute, "a new leader", func() error {
		if p := replPartition(ctx, t, adm, topic, 0); p.Leader == leader || p.Leader < 0 {
			return fmt.Errorf("leader %d", p.Leader)
		}
		return nil
	})
	retWaitStart(ctx, t, adm, topic, "the new leader's start", func(s int64) bool { return s == start })
	drConsumeRange(ctx, t, replAddrs(brokers, leader)[0], topic, 0, start, 50)
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// TestRetentionKill9: kill -9 while retention deletes segments: after the
// restart the log starts at or above where it was seen last, and every
// record from there on is there, in order.
func TestRetentionKill9(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	b := startBroker(t, "--config", "log.retention.check.interval.ms=10")
	adm := fzAdmin(t, b.Addr)
	topic := fzTopic(t, "retk")
	fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"segment.bytes": kadm.StringPtr("1024"), "retention.bytes": kadm.StringPtr("4096"), "file.delete.delay.ms": kadm.StringPtr("0")})
	cl := fzClient(t, b.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1))
	// Produce until the log start has moved several times, then kill the
	// broker while the producer (and so retention) is still going.
	var acked int64
	var seen int64
	for i := 0; ; i++ {
		r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("v%03d-%s", i, strings.Repeat("x", 90)))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		acked = int64(i + 1)
		if i%20 == 0 {
			seen = drStart(ctx, t, adm, topic, 0)
		}
		if seen > 100 || i > 2000 {
			break
		}
	}
	var more atomic.Int64
	done := make(chan struct{})
	go func() { // more appends, and deletions, as the broker dies
		defer close(done)
		for i := acked; i < acked+2000; i++ {
			r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("v%03d-%s", i, strings.Repeat("x", 90)))}
			if cl.ProduceSync(ctx, r).FirstErr() != nil {
				return
			}
			more.Add(1)
		}
	}()
	fzWaitFor(t, 30*time.Second, "30 more records acknowledged", func() error {
		if n := more.Load(); n < 30 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})
	b.Kill()
	cl.Close()
	<-done
	acked += more.Load()
	b.start()
	adm = fzAdmin(t, b.Addr)
	// Stop retention (the start would move under the reader), then read.
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.bytes", Value: kadm.StringPtr("-1")}}, topic)
	if err != nil || resp[0].Err != nil {
		t.Fatalf("alter retention.bytes: %v %v", err, resp)
	}
	start := drStart(ctx, t, adm, topic, 0)
	end := fzEndOffsets(ctx, t, adm, topic)[0]
	if start < seen || end < acked || start >= end {
		t.Fatalf("after kill -9: log %d to %d; seen start %d, %d acknowledged", start, end, seen, acked)
	}
	n := end
	recs := drConsumeRange(ctx, t, b.Addr, topic, 0, start, n)
	for i, r := range recs {
		if want := fmt.Sprintf("v%03d-", start+int64(i)); !strings.HasPrefix(string(r.Value), want) {
			t.Fatalf("offset %d: %q, want %s...", r.Offset, r.Value, want)
		}
	}
	fzCheckLogs(t, b)
}

// TestRetentionInternalTopicFollowers: __consumer_offsets is compacted by
// the log cleaner of every replica, leader and followers alike (as in
// Kafka), so the followers' logs shrink as the leader's does, offsets and
// log start kept, instead of keeping every segment.
func TestRetentionInternalTopicFollowers(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	brokers := startQuorumCluster(t, 3,
		"--config", "offsets.topic.num.partitions=1",
		"--config", "offsets.topic.segment.bytes=8192",
		"--config", "log.cleaner.backoff.ms=200",
	)
	seeds := replAddrs(brokers, -1)
	adm := fzAdmin(t, seeds[0])
	topic, group := fzTopic(t, "reti"), fzTopic(t, "reti-group")
	replCreateTopic(ctx, t, adm, topic, 1, 3, nil)
	replWaitISR(ctx, t, adm, "__consumer_offsets", 3, time.Minute)
	for i := range 600 {
		grpAdminCommit(ctx, t, adm, group, topic, map[int32]int64{0: int64(i)})
	}
	for _, b := range brokers {
		fzWaitFor(t, 60*time.Second, "__consumer_offsets compacted on "+b.Addr, func() error {
			segs := fzLogFiles(t, fzPartitionDir(b, "__consumer_offsets", 0))
			if len(segs) == 0 || len(segs) > 4 {
				return fmt.Errorf("segments %v", segs)
			}
			return nil
		})
	}
	starts, err := adm.ListStartOffsets(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := starts.Lookup("__consumer_offsets", 0); !ok || o.Err != nil || o.Offset != 0 {
		t.Errorf("log start of the compacted __consumer_offsets-0: %+v, want 0 (compaction keeps offsets)", o)
	}
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, map[int32]int64{0: 599})
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// lockedBuffer is a bytes.Buffer safe for a process writing to it while
// the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
