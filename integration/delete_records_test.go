package integration

// DeleteRecords (key 21) through kadm and sarama, on one broker and on
// three: the log start moves, consumers below it reset by their policy,
// ListOffsets earliest follows, segments below it go, and the start
// survives a clean restart and a kill -9 (log-start-offset-checkpoint).
// kafka-delete-records.sh (Java) cannot run here; it sends DeleteRecords
// v0-v2 as kadm and sarama do, and TestDeleteRecordsVersions checks each.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// drProduce writes n records of ~100 bytes to one partition, one batch
// each, so that a small segment.bytes makes many segments.
func drProduce(ctx context.Context, t *testing.T, seeds []string, topic string, partition int32, n int) {
	t.Helper()
	cl := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(1))
	for i := range n {
		r := &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprintf("v%03d-%s", i, strings.Repeat("x", 90)))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
}

// drStart is ListOffsets earliest of one partition.
func drStart(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, partition int32) int64 {
	t.Helper()
	offs, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list start offsets: %v", err)
	}
	o, ok := offs.Lookup(topic, partition)
	if !ok || o.Err != nil {
		t.Fatalf("start offset of %s-%d: %v %v", topic, partition, ok, o.Err)
	}
	return o.Offset
}

// drConsumeRange reads partition from offset from up to end-1 and checks
// the offsets are dense from from on.
func drConsumeRange(ctx context.Context, t *testing.T, addr, topic string, partition int32, from, end int64) []*kgo.Record {
	t.Helper()
	cl := fzClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}))
	defer cl.Close()
	var out []*kgo.Record
	for from+int64(len(out)) < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s[%d]: read %d offsets from %d to %d before %v", topic, partition, len(out), from, end, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
		}
		for _, r := range fs.Records() {
			if want := from + int64(len(out)); r.Offset != want {
				t.Fatalf("%s[%d]: offset %d, want %d", topic, partition, r.Offset, want)
			}
			out = append(out, r)
		}
	}
	return out
}

// drFirstOffset consumes partition from offset with the given reset
// policy and returns the offset of the first record it gets.
func drFirstOffset(ctx context.Context, t *testing.T, addr, topic string, partition int32, from int64, reset kgo.Offset) int64 {
	t.Helper()
	cl := fzClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.ConsumeResetOffset(reset))
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s-%d from %d: no record: %v", topic, partition, from, ctx.Err())
		}
		for _, e := range fs.Errors() {
			t.Fatalf("consume %s-%d from %d: %v", topic, partition, from, e.Err)
		}
		if recs := fs.Records(); len(recs) > 0 {
			return recs[0].Offset
		}
	}
}

func TestDeleteRecordsKadm(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	b := startBroker(t)
	adm := fzAdmin(t, b.Addr)
	topic := fzTopic(t, "dr")
	fzCreateTopic(ctx, t, adm, topic, 2, map[string]*string{"segment.bytes": kadm.StringPtr("1024"), "file.delete.delay.ms": kadm.StringPtr("0")})
	drProduce(ctx, t, []string{b.Addr}, topic, 0, 60)
	drProduce(ctx, t, []string{b.Addr}, topic, 1, 10)
	segsBefore := fzLogFiles(t, fzPartitionDir(b, topic, 0))
	if len(segsBefore) < 4 {
		t.Fatalf("segments before: %v, want several", segsBefore)
	}

	resp, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {
		0: {Topic: topic, Partition: 0, At: 35},
		1: {Topic: topic, Partition: 1, At: -1},
	}})
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	if r, _ := resp.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 35 {
		t.Fatalf("partition 0: %+v, want low watermark 35", r)
	}
	if r, _ := resp.Lookup(topic, 1); r.Err != nil || r.LowWatermark != 10 {
		t.Fatalf("partition 1 (-1, the high watermark): %+v, want low watermark 10", r)
	}
	if s := drStart(ctx, t, adm, topic, 0); s != 35 {
		t.Fatalf("earliest offset %d, want 35", s)
	}
	// A consumer below the start resets by its policy: earliest lands on
	// the new start, latest on the end.
	if off := drFirstOffset(ctx, t, b.Addr, topic, 0, 5, kgo.NewOffset().AtStart()); off != 35 {
		t.Fatalf("reset to earliest: first offset %d, want 35", off)
	}
	// Reading at the start itself works even inside a segment.
	if off := drFirstOffset(ctx, t, b.Addr, topic, 0, 35, kgo.NewOffset().AtStart()); off != 35 {
		t.Fatalf("read at the start: first offset %d, want 35", off)
	}
	// Whole segments below the start are gone; the one holding 35 stays.
	fzWaitFor(t, 10*time.Second, "segments below 35 deleted", func() error {
		segs := fzLogFiles(t, fzPartitionDir(b, topic, 0))
		if len(segs) >= len(segsBefore) || segs[0] > fmt.Sprintf("%020d.log", 35) {
			return fmt.Errorf("segments %v (before %v)", segs, segsBefore)
		}
		return nil
	})
	// Errors: beyond the high watermark, negative, backwards (a no-op).
	resp, err = adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 61}}})
	if r, _ := resp.Lookup(topic, 0); err != nil || !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("beyond the high watermark: %v %+v, want OFFSET_OUT_OF_RANGE", err, r)
	}
	resp, err = adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 20}}})
	if r, _ := resp.Lookup(topic, 0); err != nil || r.Err != nil || r.LowWatermark != 35 {
		t.Fatalf("below the start: %v %+v, want low watermark 35", err, r)
	}
	compacted := fzTopic(t, "drc")
	fzCreateTopic(ctx, t, adm, compacted, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
	resp, err = adm.DeleteRecords(ctx, kadm.Offsets{compacted: {0: {Topic: compacted, Partition: 0, At: 0}}})
	if r, _ := resp.Lookup(compacted, 0); err != nil || !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Fatalf("compacted topic: %v %+v, want POLICY_VIOLATION", err, r)
	}
	both := fzTopic(t, "drcd")
	fzCreateTopic(ctx, t, adm, both, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact,delete")})
	resp, err = adm.DeleteRecords(ctx, kadm.Offsets{both: {0: {Topic: both, Partition: 0, At: 0}}})
	if r, _ := resp.Lookup(both, 0); err != nil || r.Err != nil {
		t.Fatalf("compact,delete topic: %v %+v, want no error", err, r)
	}

	// The start survives a kill -9 (the checkpoint is written before the
	// answer) and a clean restart.
	resp, err = adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 41}}})
	if r, _ := resp.Lookup(topic, 0); err != nil || r.Err != nil || r.LowWatermark != 41 {
		t.Fatalf("delete to 41: %v %+v", err, r)
	}
	b.Kill()
	b.start()
	adm = fzAdmin(t, b.Addr)
	if s := drStart(ctx, t, adm, topic, 0); s != 41 {
		t.Fatalf("after kill -9: earliest offset %d, want 41", s)
	}
	if s := drStart(ctx, t, adm, topic, 1); s != 10 {
		t.Fatalf("after kill -9: partition 1 earliest offset %d, want 10", s)
	}
	b.Stop()
	b.start()
	adm = fzAdmin(t, b.Addr)
	if s := drStart(ctx, t, adm, topic, 0); s != 41 {
		t.Fatalf("after a restart: earliest offset %d, want 41", s)
	}
	recs := drConsumeRange(ctx, t, b.Addr, topic, 0, 41, 60)
	if !strings.HasPrefix(string(recs[0].Value), "v041-") || !strings.HasPrefix(string(recs[18].Value), "v059-") {
		t.Fatalf("after restarts: records %q .. %q, want v041 .. v059", recs[0].Value, recs[18].Value)
	}
	raw, err := os.ReadFile(filepath.Join(b.DataDir, "log-start-offset-checkpoint"))
	if err != nil || !strings.Contains(string(raw), topic+" 0 41\n") {
		t.Fatalf("checkpoint: %v\n%s", err, raw)
	}
	fzCheckLogs(t, b)
}

// TestDeleteRecordsVersions sends DeleteRecords at every version it
// serves (what kafka-delete-records.sh sends is one of them).
func TestDeleteRecordsVersions(t *testing.T) {
	ctx := testContext(t, time.Minute)
	b := startBroker(t)
	adm := fzAdmin(t, b.Addr)
	topic := fzTopic(t, "drv")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	drProduce(ctx, t, []string{b.Addr}, topic, 0, 5)
	raw := fzDial(t, b.Addr)
	for v := int16(0); v <= 2; v++ {
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.SetVersion(v)
		req.TimeoutMillis = 5000
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Offset = int64(v + 1)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := raw.roundTrip(req).(*kmsg.DeleteRecordsResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.LowWatermark != int64(v+1) {
			t.Fatalf("v%d: error %s, low watermark %d; want %d", v, fzErrCode(p.ErrorCode), p.LowWatermark, v+1)
		}
	}
}

func TestDeleteRecordsSarama(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	b := startBroker(t)
	adm := fzAdmin(t, b.Addr)
	topic := fzTopic(t, "drs")
	fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"segment.bytes": kadm.StringPtr("1024")})
	drProduce(ctx, t, []string{b.Addr}, topic, 0, 30)

	cfg := saramaAdminConfig(sarama.V2_8_0_0)
	client, err := sarama.NewClient([]string{b.Addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteRecords(topic, map[int32]int64{0: 17}); err != nil {
		t.Fatalf("sarama DeleteRecords: %v", err)
	}
	if off, err := client.GetOffset(topic, 0, sarama.OffsetOldest); err != nil || off != 17 {
		t.Fatalf("oldest offset %d, %v; want 17", off, err)
	}
	// A sarama consumer asking for an offset below the start gets
	// OFFSET_OUT_OF_RANGE, which sarama reports for ConsumePartition.
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	if _, err := consumer.ConsumePartition(topic, 0, 3); !errors.Is(err, sarama.ErrOffsetOutOfRange) {
		t.Fatalf("consume below the start: %v, want OFFSET_OUT_OF_RANGE", err)
	}
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if m.Offset != 17 {
			t.Fatalf("first message at %d, want 17", m.Offset)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no message from the oldest offset")
	}
	if err := admin.DeleteRecords(topic, map[int32]int64{0: 31}); err == nil || !strings.Contains(err.Error(), "outside the range") {
		t.Fatalf("sarama DeleteRecords beyond the high watermark: %v, want offset out of range", err)
	}
	fzCheckLogs(t, b)
}

// TestDeleteRecordsReplicated: on three brokers, the answer comes once
// every ISR member moved its log start (REQUEST_TIMED_OUT while one is
// stopped); the followers delete the same segments, and a new leader
// after the old one dies keeps the start.
func TestDeleteRecordsReplicated(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	brokers := startQuorumCluster(t, 3, "--etcd-lease-ttl", "3s")
	seeds := replAddrs(brokers, -1)
	adm := fzAdmin(t, seeds[0])
	topic := fzTopic(t, "drr")
	replCreateTopic(ctx, t, adm, topic, 1, 3, map[string]*string{"segment.bytes": kadm.StringPtr("1024"), "file.delete.delay.ms": kadm.StringPtr("0")})
	replWaitISR(ctx, t, adm, topic, 3, time.Minute)
	drProduce(ctx, t, seeds, topic, 0, 50)
	td := replWaitISR(ctx, t, adm, topic, 3, time.Minute)
	leader := td.Partitions[0].Leader

	resp, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 30}}})
	if r, _ := resp.Lookup(topic, 0); err != nil || r.Err != nil || r.LowWatermark != 30 {
		t.Fatalf("delete records: %v %+v, want low watermark 30", err, r)
	}
	// The low watermark is the ISR's: every replica's log start is 30
	// already, so every replica has dropped the segments wholly below it.
	for _, b := range brokers {
		fzWaitFor(t, 20*time.Second, "segments below 30 deleted on "+b.Addr, func() error {
			segs := fzLogFiles(t, fzPartitionDir(b, topic, 0))
			if len(segs) == 0 || segs[0] > fmt.Sprintf("%020d.log", 30) || segs[0] == fmt.Sprintf("%020d.log", 0) {
				return fmt.Errorf("segments %v", segs)
			}
			return nil
		})
	}
	// With a follower stopped (still in the ISR: replica.lag.time.max.ms
	// is 30 s) the answer waits for it and times out; the leader's own
	// start has moved. Once it runs again, the same request is answered.
	follower := td.Partitions[0].Replicas[0]
	if follower == leader {
		follower = td.Partitions[0].Replicas[1]
	}
	raw := fzDial(t, brokers[leader-1].Addr)
	drRaw := func(offset int64, timeoutMs int32) kmsg.DeleteRecordsResponseTopicPartition {
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.SetVersion(2)
		req.TimeoutMillis = timeoutMs
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Offset = offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return raw.roundTrip(req).(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0]
	}
	brokers[follower-1].Pause()
	if p := drRaw(40, 1500); p.ErrorCode != kerr.RequestTimedOut.Code || p.LowWatermark != -1 {
		t.Fatalf("with follower %d stopped: %s, low watermark %d; want REQUEST_TIMED_OUT", follower, fzErrCode(p.ErrorCode), p.LowWatermark)
	}
	if s := drStart(ctx, t, fzAdmin(t, brokers[leader-1].Addr), topic, 0); s != 40 {
		t.Fatalf("leader's earliest offset %d, want 40", s)
	}
	brokers[follower-1].Resume()
	// Asked of whoever leads now: on a loaded machine the leader may have
	// lost its lease meanwhile (NOT_LEADER_FOR_PARTITION from it, as in
	// Kafka, and the client asks the new leader, which holds the start it
	// learned from the old one).
	fzWaitFor(t, time.Minute, fmt.Sprintf("DeleteRecords answered with follower %d running again", follower), func() error {
		if cur := replPartition(ctx, t, adm, topic, 0).Leader; cur > 0 && cur != leader {
			leader = cur
			raw = fzDial(t, brokers[leader-1].Addr)
		}
		p := drRaw(40, 20000)
		switch {
		case p.ErrorCode == kerr.NotLeaderForPartition.Code || p.ErrorCode == kerr.RequestTimedOut.Code:
			return fmt.Errorf("broker %d: %s", leader, fzErrCode(p.ErrorCode))
		case p.ErrorCode != 0 || p.LowWatermark != 40:
			t.Fatalf("with follower %d running again: %s, low watermark %d; want 40", follower, fzErrCode(p.ErrorCode), p.LowWatermark)
		}
		return nil
	})

	// The leader dies: its successor starts at 40 too.
	brokers[leader-1].Kill()
	adm = fzAdmin(t, replAddrs(brokers, leader)[0])
	fzWaitFor(t, time.Minute, "a new leader", func() error {
		p := replPartition(ctx, t, adm, topic, 0)
		if p.Leader == leader || p.Leader < 0 {
			return fmt.Errorf("leader %d", p.Leader)
		}
		return nil
	})
	fzWaitFor(t, 30*time.Second, "earliest offset 40 on the new leader", func() error {
		offs, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return err
		}
		o, _ := offs.Lookup(topic, 0)
		if o.Err != nil || o.Offset != 40 {
			return fmt.Errorf("earliest %d, %v", o.Offset, o.Err)
		}
		return nil
	})
	recs := drConsumeRange(ctx, t, replAddrs(brokers, leader)[0], topic, 0, 40, 50)
	if !strings.HasPrefix(string(recs[0].Value), "v040-") {
		t.Fatalf("after failover: first record %q, want v030", recs[0].Value)
	}
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// TestDeleteRecordsInsideABatch: DeleteRecords to an offset inside a
// batch: consumers start at that offset (the batch's earlier records are
// not handed out as records of the log), and ListOffsets by timestamp
// never answers an offset below the start.
func TestDeleteRecordsInsideABatch(t *testing.T) {
	ctx := testContext(t, time.Minute)
	b := startBroker(t)
	adm := fzAdmin(t, b.Addr)
	topic := fzTopic(t, "drb")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	raw := fzDial(t, b.Addr)
	t0 := time.Now().UnixMilli() - 60_000
	var recs []fzRecord
	for i := range 10 { // one batch, offsets 0..9, timestamps t0 .. t0+9
		recs = append(recs, fzRecord{value: []byte(fmt.Sprintf("r%d", i)), tsDelta: int64(i)})
	}
	if code, base := fzRawProduce(t, raw, 9, topic, 0, fzBatch(t0, recs...)); code != 0 || base != 0 {
		t.Fatalf("produce: %s at %d", fzErrCode(code), base)
	}
	resp, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 6}}})
	if r, _ := resp.Lookup(topic, 0); err != nil || r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("delete records to 6: %v %+v", err, r)
	}
	for _, c := range []struct{ ts, want int64 }{{t0, 6}, {t0 + 3, 6}, {t0 + 6, 6}, {t0 + 8, 8}, {t0 + 10, 10}} { // past every record: kadm answers the end offset
		offs, err := adm.ListOffsetsAfterMilli(ctx, c.ts, topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := offs.Lookup(topic, 0); o.Err != nil || o.Offset != c.want {
			t.Errorf("offset for time t0+%d: %d, %v; want %d", c.ts-t0, o.Offset, o.Err, c.want)
		}
	}
	got := drConsumeRange(ctx, t, b.Addr, topic, 0, 6, 10)
	if string(got[0].Value) != "r6" {
		t.Fatalf("first record %q, want r6", got[0].Value)
	}
	if off := drFirstOffset(ctx, t, b.Addr, topic, 0, 0, kgo.NewOffset().AtStart()); off != 6 {
		t.Fatalf("reset to earliest: first record %d, want 6", off)
	}
	fzCheckLogs(t, b)
}
