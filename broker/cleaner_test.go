package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// TestThrottlerRate: the shared bucket lets through rate bytes a second,
// with at most a tenth of a second of burst.
func TestThrottlerRate(t *testing.T) {
	var th throttler
	now := time.Unix(0, 0)
	var slept time.Duration
	for range 100 {
		d := th.take(10_000, 1_000_000, now) // 1 MB/s, 10 kB at a time
		slept += d
		now = now.Add(d)
	}
	// 1 MB at 1 MB/s: about a second, less the first tenth's allowance
	// (the bucket starts empty, so no allowance: one second).
	if slept < 900*time.Millisecond || slept > 1100*time.Millisecond {
		t.Fatalf("slept %v for 1 MB at 1 MB/s", slept)
	}
	// A long quiet spell allows no more than a tenth of a second at once.
	now = now.Add(time.Hour)
	if d := th.take(200_000, 1_000_000, now); d < 90*time.Millisecond {
		t.Fatalf("a 200 kB burst after an hour slept %v, want about 100ms", d)
	}
}

// TestLogCleanerCleansCompactedTopics: the broker's cleaner compacts a
// compacted topic's partition (and leaves a delete-policy one alone),
// records its checkpoint, and takes the dynamic cleaner configs.
func TestLogCleanerCleansCompactedTopics(t *testing.T) {
	b, c := newAdminBroker(t, map[string]string{"log.cleaner.backoff.ms": "20"})
	for _, tc := range []struct{ name, policy string }{{"comp", "compact"}, {"plain", "delete"}} {
		adminMustCreate(t, b, c, adminTopic(tc.name, 1, 1, "cleanup.policy", tc.policy, "min.cleanable.dirty.ratio", "0.01"))
	}
	ir := adminIncAlter(t, b, c, false, adminIncResource(adminResBroker, "",
		opSet("log.cleaner.dedupe.buffer.size", "1048576"), opSet("log.cleaner.io.max.bytes.per.second", "100000000")))
	adminWantCode(t, "alter cleaner configs", ir[0].ErrorCode, ir[0].ErrorMessage, nil, "")
	if got := b.brokerConfigInt("log.cleaner.dedupe.buffer.size"); got != 1048576 {
		t.Fatalf("dedupe buffer %d after the alter", got)
	}
	fill := func(name string) *partition {
		part, err := b.parts.get(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 3 {
			var recs []kmsg.Record
			for k := range 10 {
				recs = append(recs, kmsg.Record{Key: []byte(fmt.Sprint("k", k)), Value: []byte(fmt.Sprint(round))})
			}
			batch, err := b.codecs.BuildBatch(protocol.CodecNone, b.now().UnixMilli(), recs)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := part.log.Append(batch, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := part.log.Roll(); err != nil {
				t.Fatal(err)
			}
		}
		part.log.SetHighWatermark(part.log.LogEndOffset())
		return part
	}
	comp, plain := fill("comp"), fill("plain")
	deadline := time.Now().Add(20 * time.Second)
	for comp.log.Size() >= plain.log.Size() || comp.log.SegmentCount() > 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not cleaned: %d bytes in %d segments, the delete-policy topic %d bytes", comp.log.Size(), comp.log.SegmentCount(), plain.log.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if plain.log.SegmentCount() != 4 {
		t.Fatalf("the delete-policy topic has %d segments, want its 4", plain.log.SegmentCount())
	}
	fzDeadline := time.Now().Add(10 * time.Second)
	for {
		cp, ok, err := storage.ReadOffsetCheckpoint(storage.OSFS{}, b.cfg.DataDir, storage.CleanerOffsetCheckpoint)
		if err == nil && ok && cp[storage.TopicPartition{Topic: "comp", Partition: 0}] == 30 {
			if _, has := cp[storage.TopicPartition{Topic: "plain", Partition: 0}]; has {
				t.Fatalf("checkpoint has the delete-policy topic: %v", cp)
			}
			break
		}
		if time.Now().After(fzDeadline) {
			t.Fatalf("cleaner checkpoint: %v %v %v", cp, ok, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLogCleanerMaxCompactionLag: a partition whose dirty part is below
// min.cleanable.dirty.ratio waits, until max.compaction.lag.ms makes its
// old dirty records due.
func TestLogCleanerMaxCompactionLag(t *testing.T) {
	b, c := newAdminBroker(t, map[string]string{"log.cleaner.backoff.ms": "20"})
	adminMustCreate(t, b, c, adminTopic("lag", 1, 1, "cleanup.policy", "compact", "min.cleanable.dirty.ratio", "0.9"))
	part, err := b.parts.get("lag", 0)
	if err != nil {
		t.Fatal(err)
	}
	old := b.now().Add(-time.Hour).UnixMilli()
	write := func(keys int, value string, roll bool) {
		var recs []kmsg.Record
		for k := range keys {
			recs = append(recs, kmsg.Record{Key: []byte(fmt.Sprint("k", k)), Value: []byte(value)})
		}
		batch, err := b.codecs.BuildBatch(protocol.CodecNone, old, recs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := part.log.Append(batch, 0); err != nil {
			t.Fatal(err)
		}
		if !roll {
			return
		}
		if _, err := part.log.Roll(); err != nil {
			t.Fatal(err)
		}
		part.log.SetHighWatermark(part.log.LogEndOffset())
	}
	checkpoint := func() int64 {
		b.cleaner.mu.Lock()
		defer b.cleaner.mu.Unlock()
		return b.cleaner.checkpoints[storage.TopicPartition{Topic: "lag", Partition: 0}]
	}
	waitCheckpoint := func(what string, want int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for checkpoint() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: cleaner checkpoint %d, want %d", what, checkpoint(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	write(50, "first", false)
	write(50, "second", true) // one dirty segment: cleaned to the 50 latest
	waitCheckpoint("first pass", 100)
	write(1, "third", true) // a small dirty part: not due by the ratio
	// Five more looks over the partitions change nothing.
	from := b.cleaner.picks.Load()
	deadline := time.Now().Add(20 * time.Second)
	for b.cleaner.picks.Load() < from+5 {
		if time.Now().After(deadline) {
			t.Fatal("the cleaner stopped looking")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cp := checkpoint(); cp != 100 {
		t.Fatalf("cleaned below min.cleanable.dirty.ratio: checkpoint %d", cp)
	}
	ir := adminIncAlter(t, b, c, false, adminIncResource(kmsg.ConfigResourceTypeTopic, "lag", opSet("max.compaction.lag.ms", "1000")))
	adminWantCode(t, "set max.compaction.lag.ms", ir[0].ErrorCode, ir[0].ErrorMessage, nil, "")
	waitCheckpoint("after max.compaction.lag.ms", 101)
}

// TestLogCleanerThreadsDynamic: raising log.cleaner.threads at run time
// starts more cleaner threads within a backoff; lowering it idles them.
func TestLogCleanerThreadsDynamic(t *testing.T) {
	b, c := newAdminBroker(t, map[string]string{"log.cleaner.backoff.ms": "20"})
	started := func() int {
		b.cleaner.mu.Lock()
		defer b.cleaner.mu.Unlock()
		return b.cleaner.started
	}
	if n := started(); n != 1 {
		t.Fatalf("%d cleaner threads at start, want log.cleaner.threads' default 1", n)
	}
	ir := adminIncAlter(t, b, c, false, adminIncResource(adminResBroker, "", opSet("log.cleaner.threads", "3")))
	adminWantCode(t, "raise log.cleaner.threads", ir[0].ErrorCode, ir[0].ErrorMessage, nil, "")
	deadline := time.Now().Add(10 * time.Second)
	for started() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d cleaner threads after raising log.cleaner.threads to 3", started())
		}
		time.Sleep(5 * time.Millisecond) // polling interval of a loop with a deadline
	}
	ir = adminIncAlter(t, b, c, false, adminIncResource(adminResBroker, "", opSet("log.cleaner.threads", "1")))
	adminWantCode(t, "lower log.cleaner.threads", ir[0].ErrorCode, ir[0].ErrorMessage, nil, "")
	if got := b.cleaner.threads(); got != 1 {
		t.Fatalf("threads() = %d after lowering to 1", got)
	}
	ir = adminIncAlter(t, b, c, false, adminIncResource(adminResBroker, "", opSet("log.cleaner.threads", "65")))
	if ir[0].ErrorCode == 0 {
		t.Fatal("log.cleaner.threads above its bound was accepted")
	}
}
