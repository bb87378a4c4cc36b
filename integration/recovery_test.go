package integration

// Recovery after kill -9 with the recovery-point-offset-checkpoint: every
// record acknowledged with acks=all reads back, only the segments past the
// checkpointed recovery point are checked, and a clean restart checks
// none.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorbroker/gregor/storage"
)

// lastOpenedLogs returns the numeric fields of the last "opened partition
// logs" line the broker logged (it runs with --log-format json).
func lastOpenedLogs(t *testing.T, p *brokerProc) map[string]int64 {
	t.Helper()
	var last map[string]any
	for _, line := range strings.Split(p.Logs(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "opened partition logs" {
			last = m
		}
	}
	if last == nil {
		t.Fatalf("no %q line in the broker log:\n%s", "opened partition logs", p.Logs())
	}
	out := map[string]int64{}
	for k, v := range last {
		if n, ok := v.(float64); ok {
			out[k] = int64(n)
		}
	}
	for _, k := range []string{"logs", "logs_recovered", "segments_checked"} {
		if _, ok := out[k]; !ok {
			t.Fatalf("no %s in %v", k, last)
		}
	}
	return out
}

func TestRecoveryPointKill9(t *testing.T) {
	p := startBroker(t, "--log-segment-bytes", "16384", "--log-format", "json",
		"--config", "log.flush.offset.checkpoint.interval.ms=100")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "rp")
	const partitions = 2
	fzCreateTopic(ctx, t, adm, topic, partitions, nil)

	prod := fzClient(t, p.Addr, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(8192))
	first := fzMakeRecords(topic, 4000, 7)
	fzProduceAsync(ctx, t, prod, first)

	// The checkpoint catches up with the rolled, fsynced segments.
	segs := map[int32]int{}
	for part := range int32(partitions) {
		segs[part] = len(fzLogFiles(t, fzPartitionDir(p, topic, part)))
		if segs[part] < 10 {
			t.Fatalf("%s[%d] has %d segments, the test needs 10", topic, part, segs[part])
		}
	}
	ends := fzEndOffsets(ctx, t, adm, topic)
	fzWaitFor(t, 10*time.Second, "recovery points past the rolled segments", func() error {
		rp, _, err := storage.ReadOffsetCheckpoint(nil, p.DataDir, storage.RecoveryPointCheckpoint)
		if err != nil {
			return err
		}
		for part := range int32(partitions) {
			files := fzLogFiles(t, fzPartitionDir(p, topic, part))
			active, _ := strconv.ParseInt(strings.TrimSuffix(files[len(files)-1], ".log"), 10, 64)
			if got := rp[storage.TopicPartition{Topic: topic, Partition: part}]; got < active {
				return fmt.Errorf("%s[%d] recovery point %d, active segment at %d, end %d", topic, part, got, active, ends[part])
			}
		}
		return nil
	})
	// A little more, unflushed, then the crash.
	second := fzMakeRecords(topic, 40, 8)
	for i, r := range second {
		r.Value = []byte(fmt.Sprintf("after checkpoint %d", i))
	}
	fzProduceAsync(ctx, t, prod, second)
	prod.Close()
	p.Kill()
	p.Restart()

	st := lastOpenedLogs(t, p)
	if st["logs_recovered"] < partitions {
		t.Fatalf("after kill -9 %d logs recovered, want at least %d: %v", st["logs_recovered"], partitions, st)
	}
	// Only the segments from the recovery point on: the active one and
	// perhaps the one before, not the 10+ of each partition.
	if limit := 2 * st["logs_recovered"]; st["segments_checked"] > limit {
		t.Fatalf("after kill -9 %d segments checked, want at most %d (of %v on disk): %v", st["segments_checked"], limit, segs, st)
	}
	byPart := map[int32][]*kgo.Record{}
	for _, r := range append(first, second...) {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	for part, recs := range byPart {
		last := recs[len(recs)-1].Offset
		got := fzConsumePartitionTo(ctx, t, p.Addr, topic, part, last+1)
		at := map[int64]*kgo.Record{}
		for _, r := range got {
			at[r.Offset] = r
		}
		for _, want := range recs {
			r := at[want.Offset]
			if r == nil || string(r.Value) != string(want.Value) {
				t.Fatalf("acknowledged %s[%d]@%d %q lost or changed after kill -9 (read %v)", topic, part, want.Offset, want.Value, r)
			}
		}
	}

	// A clean restart checks nothing, and the checkpoint holds the ends.
	ends = fzEndOffsets(ctx, t, adm, topic)
	p.Stop()
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("SIGTERM: exit code %d:\n%s", code, p.Logs())
	}
	rp, ok, err := storage.ReadOffsetCheckpoint(nil, p.DataDir, storage.RecoveryPointCheckpoint)
	if err != nil || !ok {
		t.Fatalf("checkpoint after a clean stop: ok %v, %v", ok, err)
	}
	for part := range int32(partitions) {
		if got := rp[storage.TopicPartition{Topic: topic, Partition: part}]; got != ends[part] {
			t.Fatalf("checkpoint after a clean stop: %s[%d] at %d, want the end %d", topic, part, got, ends[part])
		}
	}
	p.Restart()
	if st := lastOpenedLogs(t, p); st["logs_recovered"] != 0 || st["segments_checked"] != 0 || st["logs"] < partitions {
		t.Fatalf("after a clean restart: %v, want nothing recovered", st)
	}
	fzCheckLogs(t, p)
}
