package integration

// Durability across restarts: a clean stop keeps every record and the next
// produce continues at the right offset; repeated SIGKILLs in the middle
// of acks=all production lose no acknowledged record, leave no gaps, and
// the broker comes back each time without panicking.

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCrashCleanRestartKeepsRecords(t *testing.T) {
	p := startBroker(t, "--log-segment-bytes", "65536")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "fz")
	fzCreateTopic(ctx, t, adm, topic, 2, nil)

	const n = 5000
	want := fzMakeRecords(topic, n, 99)
	for i, r := range want {
		r.Key = []byte(fmt.Sprintf("key-%d", i%97)) // keyed: spread over both partitions
	}
	prod := fzClient(t, p.Addr, kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()))
	fzProduceAsync(ctx, t, prod, want)
	byPart := map[int32][]*kgo.Record{}
	for _, r := range want {
		if r.Offset != int64(len(byPart[r.Partition])) {
			t.Fatalf("record acknowledged at %d[%d], want offset %d", r.Partition, r.Offset, len(byPart[r.Partition]))
		}
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	if len(byPart) != 2 {
		t.Fatalf("records landed in %d partitions, want 2", len(byPart))
	}
	prod.Close()

	p.Stop()
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0:\n%s", code, p.Logs())
	}
	p.Restart()

	ends := fzEndOffsets(ctx, t, adm, topic)
	for part, recs := range byPart {
		if ends[part] != int64(len(recs)) {
			t.Fatalf("after restart %s[%d] ends at %d, want %d", topic, part, ends[part], len(recs))
		}
		got := fzConsumePartitionTo(ctx, t, p.Addr, topic, part, int64(len(recs)))
		for i := range got {
			fzCompareRecord(t, i, recs[i], got[i])
		}
	}

	// New records continue each partition's offsets.
	prod2 := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for part, recs := range byPart {
		r := &kgo.Record{Topic: topic, Partition: part, Value: []byte("after restart")}
		fzProduceSync(ctx, t, prod2, r)
		if r.Offset != int64(len(recs)) {
			t.Fatalf("first record after restart in %s[%d] at offset %d, want %d", topic, part, r.Offset, len(recs))
		}
		got := fzConsumePartitionTo(ctx, t, p.Addr, topic, part, int64(len(recs))+1)
		if string(got[len(recs)].Value) != "after restart" {
			t.Fatalf("record after restart reads %q", got[len(recs)].Value)
		}
	}
	fzCheckLogs(t, p)
}

// fzAck is one acknowledged record.
type fzAck struct {
	partition int32
	offset    int64
	value     string
}

func TestCrashKillDuringAcksAll(t *testing.T) {
	p := startBroker(t, "--log-segment-bytes", "32768")
	ctx := testContext(t, 170*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "fz")
	const partitions = 3
	fzCreateTopic(ctx, t, adm, topic, partitions, nil)

	const (
		kills     = 3
		producers = 4
		perRound  = 400 // acknowledgements to see before each kill
	)
	var (
		mu   sync.Mutex
		acks []fzAck
	)
	minEnd := make(map[int32]int64) // every partition must end at least here after a restart

	for round := 0; round <= kills; round++ {
		roundCtx, cancel := context.WithCancel(ctx)
		var roundAcks atomic.Int64
		var wg sync.WaitGroup
		var clients []*kgo.Client
		for g := 0; g < producers; g++ {
			cl, err := kgo.NewClient(
				kgo.SeedBrokers(p.Addr),
				kgo.DisableIdempotentWrite(),
				kgo.RequiredAcks(kgo.AllISRAcks()),
				kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.RecordDeliveryTimeout(20*time.Second),
				kgo.RetryTimeout(20*time.Second),
				kgo.DialTimeout(2*time.Second),
				kgo.ProducerBatchCompression(kgo.NoCompression()),
				kgo.ProducerLinger(2*time.Millisecond),
				kgo.MaxBufferedRecords(500),
			)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, cl)
			record := func(r *kgo.Record) {
				mu.Lock()
				acks = append(acks, fzAck{r.Partition, r.Offset, string(r.Value)})
				mu.Unlock()
				roundAcks.Add(1)
			}
			wg.Add(1)
			if g%2 == 0 {
				// Synchronous: three small records per call, one per partition.
				go func() {
					defer wg.Done()
					for i := 0; roundCtx.Err() == nil; i++ {
						var recs []*kgo.Record
						for part := int32(0); part < partitions; part++ {
							recs = append(recs, &kgo.Record{Topic: topic, Partition: part,
								Value: []byte(fmt.Sprintf("r%d-g%d-%05d-p%d-%s", round, g, i, part, strings.Repeat("x", 40)))})
						}
						for _, res := range cl.ProduceSync(roundCtx, recs...) {
							if res.Err == nil { // unacknowledged records may or may not be in the log
								record(res.Record)
							}
						}
					}
				}()
				continue
			}
			// Asynchronous: large random records, so the broker is often
			// in the middle of writing a big batch when it is killed.
			go func() {
				defer wg.Done()
				var inflight sync.WaitGroup
				defer inflight.Wait()
				rng := rand.New(rand.NewSource(int64(round*100 + g)))
				for i := 0; roundCtx.Err() == nil; i++ {
					part := int32(i % partitions)
					pad := make([]byte, 1000+rng.Intn(3000))
					rng.Read(pad)
					r := &kgo.Record{Topic: topic, Partition: part,
						Value: append([]byte(fmt.Sprintf("r%d-g%d-%05d-p%d-", round, g, i, part)), pad...)}
					inflight.Add(1)
					cl.Produce(roundCtx, r, func(r *kgo.Record, err error) {
						defer inflight.Done()
						if err == nil {
							record(r)
						}
					})
				}
			}()
		}

		fzWaitFor(t, 60*time.Second, fmt.Sprintf("round %d: %d acknowledgements", round, perRound), func() error {
			if n := roundAcks.Load(); n < perRound {
				return fmt.Errorf("%d so far", n)
			}
			return nil
		})
		if round < kills {
			p.Kill() // while the producers are still producing
		}
		cancel()
		for _, cl := range clients {
			cl.Close()
		}
		wg.Wait()
		if round == kills {
			// Requests the producers sent before closing may still be
			// appended; a clean stop and start settles the end offsets
			// before they are measured (and checks a clean restart too).
			p.Stop()
			if code := p.ExitCode(); code != 0 {
				t.Fatalf("clean stop exited with %d", code)
			}
			p.Restart()
			break
		}

		p.Restart()
		// Every acknowledged offset must still be below the high watermark.
		mu.Lock()
		for _, a := range acks {
			minEnd[a.partition] = max(minEnd[a.partition], a.offset+1)
		}
		mu.Unlock()
		ends := fzEndOffsets(ctx, t, adm, topic)
		for part := int32(0); part < partitions; part++ {
			if ends[part] < minEnd[part] {
				t.Fatalf("after kill %d, %s[%d] ends at %d but offset %d was acknowledged", round+1, topic, part, ends[part], minEnd[part]-1)
			}
		}
		t.Logf("kill %d: %d acknowledgements so far, end offsets %v", round+1, len(acks), ends)
	}

	// Read every partition in full and check every acknowledgement.
	ends := fzEndOffsets(ctx, t, adm, topic)
	logs := make(map[int32][]*kgo.Record)
	for part := int32(0); part < partitions; part++ {
		logs[part] = fzConsumePartitionTo(ctx, t, p.Addr, topic, part, ends[part]) // dense offsets checked inside
	}
	seen := make(map[string]bool)
	for _, a := range acks {
		l := logs[a.partition]
		if a.offset >= int64(len(l)) {
			t.Fatalf("acknowledged %q at %d[%d], but the partition ends at %d", a.value, a.partition, a.offset, len(l))
		}
		if got := string(l[a.offset].Value); got != a.value {
			t.Fatalf("acknowledged %q at %d[%d], the log has %q there", a.value, a.partition, a.offset, got)
		}
		if seen[a.value] {
			t.Fatalf("%q acknowledged twice", a.value)
		}
		seen[a.value] = true
	}
	for part, l := range logs {
		for off, r := range l {
			if !strings.HasPrefix(string(r.Value), "r") || !strings.Contains(string(r.Value), fmt.Sprintf("-p%d-", part)) {
				t.Fatalf("%s[%d] offset %d holds %q, which no producer sent to this partition", topic, part, off, r.Value)
			}
		}
	}
	t.Logf("%d acknowledged records checked; end offsets %v", len(acks), ends)

	// Start consumers in the middle of the recovered logs (offset index
	// lookups across the segments written before each kill).
	rng := rand.New(rand.NewSource(1))
	for probe := 0; probe < 5; probe++ {
		at := make(map[int32]kgo.Offset)
		want := make(map[int32]int64)
		for part := int32(0); part < partitions; part++ {
			off := rng.Int63n(ends[part])
			at[part], want[part] = kgo.NewOffset().At(off), off
		}
		cl := fzClient(t, p.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: at}))
		first := make(map[int32]*kgo.Record)
		for len(first) < partitions {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("probe %d: first records of %d partitions before %v", probe, len(first), ctx.Err())
			}
			if err := fs.Err(); err != nil {
				t.Fatalf("probe %d: %v", probe, err)
			}
			for _, r := range fs.Records() {
				if _, ok := first[r.Partition]; !ok {
					first[r.Partition] = r
				}
			}
		}
		cl.Close()
		for part, r := range first {
			if r.Offset != want[part] || string(r.Value) != string(logs[part][r.Offset].Value) {
				t.Fatalf("consuming %s[%d] from %d: first record at %d reads %q, want %q", topic, part, want[part], r.Offset, r.Value, logs[part][want[part]].Value)
			}
		}
	}

	// The broker still takes writes at the end of each partition.
	cl := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for part := int32(0); part < partitions; part++ {
		r := &kgo.Record{Topic: topic, Partition: part, Value: []byte("final")}
		fzProduceSync(ctx, t, cl, r)
		if r.Offset != ends[part] {
			t.Fatalf("%s[%d]: record after the kills at offset %d, want %d", topic, part, r.Offset, ends[part])
		}
	}
	fzCheckLogs(t, p)
}
