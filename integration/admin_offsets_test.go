package integration

// ListOffsets through kadm and raw kmsg requests: earliest, latest, by
// timestamp (across batches and inside one batch) and max timestamp (-3).

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fzListOffset sends one ListOffsets request for one partition through
// the kgo client (which picks the highest version both sides know).
func fzListOffset(ctx context.Context, t testing.TB, cl *kgo.Client, topic string, partition int32, ts int64) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("ListOffsets %s[%d] at %d: %v", topic, partition, ts, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("ListOffsets answered %+v", resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

func fzListedOffset(t testing.TB, what string, lo kadm.ListedOffsets, err error, topic string) kadm.ListedOffset {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	o, ok := lo.Lookup(topic, 0)
	if !ok || o.Err != nil {
		t.Fatalf("%s: %s[0] listed %v, err %v", what, topic, ok, o.Err)
	}
	return o
}

func TestAdminListOffsets(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, p.Addr)
	cl := fzClient(t, p.Addr)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()

	t.Run("AcrossBatches", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		for i := int64(0); i < 10; i++ { // one batch per record
			fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Value: []byte{byte(i)}, Timestamp: time.UnixMilli(base + i*1000)})
		}
		lo, err := adm.ListStartOffsets(ctx, topic)
		if o := fzListedOffset(t, "start", lo, err, topic); o.Offset != 0 {
			t.Fatalf("start offset %d, want 0", o.Offset)
		}
		lo, err = adm.ListEndOffsets(ctx, topic)
		if o := fzListedOffset(t, "end", lo, err, topic); o.Offset != 10 {
			t.Fatalf("end offset %d, want 10", o.Offset)
		}
		for _, c := range []struct{ ts, offset, gotTS int64 }{
			{base - 5000, 0, base},
			{base, 0, base},
			{base + 4500, 5, base + 5000},
			{base + 5000, 5, base + 5000},
			{base + 5001, 6, base + 6000},
			{base + 9000, 9, base + 9000},
		} {
			lo, err := adm.ListOffsetsAfterMilli(ctx, c.ts, topic)
			o := fzListedOffset(t, "after milli", lo, err, topic)
			if o.Offset != c.offset || o.Timestamp != c.gotTS {
				t.Errorf("offset for time base%+d: %d at base%+d, want %d at base%+d", c.ts-base, o.Offset, o.Timestamp-base, c.offset, c.gotTS-base)
			}
		}
		// Past the last timestamp: the broker answers -1 and kadm
		// substitutes the end offset.
		if rp := fzListOffset(ctx, t, cl, topic, 0, base+9001); rp.ErrorCode != 0 || rp.Offset != -1 || rp.Timestamp != -1 {
			t.Errorf("offset for time after the last record: %s offset %d ts %d, want -1/-1", fzErrCode(rp.ErrorCode), rp.Offset, rp.Timestamp)
		}
		lo, err = adm.ListOffsetsAfterMilli(ctx, base+9001, topic)
		if o := fzListedOffset(t, "after the last timestamp", lo, err, topic); o.Offset != 10 {
			t.Errorf("kadm offset after the last timestamp: %d, want the end offset 10", o.Offset)
		}
		// Special timestamps through the raw request.
		if rp := fzListOffset(ctx, t, cl, topic, 0, -2); rp.ErrorCode != 0 || rp.Offset != 0 {
			t.Errorf("earliest: %s offset %d", fzErrCode(rp.ErrorCode), rp.Offset)
		}
		if rp := fzListOffset(ctx, t, cl, topic, 0, -1); rp.ErrorCode != 0 || rp.Offset != 10 {
			t.Errorf("latest: %s offset %d", fzErrCode(rp.ErrorCode), rp.Offset)
		}
	})

	t.Run("MaxTimestampAcrossBatches", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		for i := int64(0); i < 10; i++ {
			ts := base + i*10
			if i == 6 {
				ts = base + 100000
			}
			fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Value: []byte{byte(i)}, Timestamp: time.UnixMilli(ts)})
		}
		rp := fzListOffset(ctx, t, cl, topic, 0, -3)
		if rp.ErrorCode != 0 || rp.Offset != 6 || rp.Timestamp != base+100000 {
			t.Fatalf("max timestamp: %s offset %d ts base%+d, want offset 6 at base+100000", fzErrCode(rp.ErrorCode), rp.Offset, rp.Timestamp-base)
		}
		// Same through the lowest version that knows -3.
		raw := fzDial(t, p.Addr)
		req := kmsg.NewPtrListOffsetsRequest()
		req.SetVersion(7)
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rpq := kmsg.NewListOffsetsRequestTopicPartition()
		rpq.Timestamp = -3
		rt.Partitions = append(rt.Partitions, rpq)
		req.Topics = append(req.Topics, rt)
		resp := raw.roundTrip(req).(*kmsg.ListOffsetsResponse)
		if got := resp.Topics[0].Partitions[0]; got.ErrorCode != 0 || got.Offset != 6 || got.Timestamp != base+100000 {
			t.Fatalf("ListOffsets v7 max timestamp: %s offset %d ts base%+d", fzErrCode(got.ErrorCode), got.Offset, got.Timestamp-base)
		}
		lo, err := adm.ListMaxTimestampOffsets(ctx, topic)
		if o := fzListedOffset(t, "kadm max timestamp", lo, err, topic); o.Offset != 6 {
			t.Fatalf("kadm max timestamp offset %d, want 6", o.Offset)
		}
	})

	t.Run("InsideOneBatch", func(t *testing.T) {
		// One raw batch of 10 records: timestamps base+10*i, except
		// record 6 at base+100000. Lookups must resolve to the record,
		// not to the batch (Kafka 3.8+, KAFKA-16310, for -3).
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		var recs []fzRecord
		for i := int64(0); i < 10; i++ {
			d := i * 10
			if i == 6 {
				d = 100000
			}
			recs = append(recs, fzRecord{value: []byte{byte(i)}, tsDelta: d})
		}
		raw := fzDial(t, p.Addr)
		if code, off := fzRawProduce(t, raw, 9, topic, 0, fzBatch(base, recs...)); code != 0 || off != 0 {
			t.Fatalf("raw produce: %s at %d", fzErrCode(code), off)
		}
		rp := fzListOffset(ctx, t, cl, topic, 0, -3)
		if rp.ErrorCode != 0 || rp.Offset != 6 || rp.Timestamp != base+100000 {
			t.Errorf("max timestamp inside one batch: %s offset %d ts base%+d, want offset 6 at base+100000", fzErrCode(rp.ErrorCode), rp.Offset, rp.Timestamp-base)
		}
		rp = fzListOffset(ctx, t, cl, topic, 0, base+45)
		if rp.ErrorCode != 0 || rp.Offset != 5 || rp.Timestamp != base+50 {
			t.Errorf("offset for time base+45 inside one batch: %s offset %d ts base%+d, want offset 5 at base+50", fzErrCode(rp.ErrorCode), rp.Offset, rp.Timestamp-base)
		}
	})

	t.Run("EmptyAndUnknown", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		for _, ts := range []int64{-2, -1} {
			if rp := fzListOffset(ctx, t, cl, topic, 0, ts); rp.ErrorCode != 0 || rp.Offset != 0 {
				t.Errorf("empty partition, timestamp %d: %s offset %d, want 0", ts, fzErrCode(rp.ErrorCode), rp.Offset)
			}
		}
		if rp := fzListOffset(ctx, t, cl, topic, 0, -3); rp.ErrorCode != 0 || rp.Offset != -1 || rp.Timestamp != -1 {
			t.Errorf("empty partition, max timestamp: %s offset %d ts %d, want -1/-1", fzErrCode(rp.ErrorCode), rp.Offset, rp.Timestamp)
		}
		if rp := fzListOffset(ctx, t, cl, topic, 0, base); rp.ErrorCode != 0 || rp.Offset != -1 {
			t.Errorf("empty partition, by time: %s offset %d, want -1", fzErrCode(rp.ErrorCode), rp.Offset)
		}

		raw := fzDial(t, p.Addr)
		for _, c := range []struct {
			topic     string
			partition int32
		}{{topic, 3}, {topic + "-missing", 0}} {
			req := kmsg.NewPtrListOffsetsRequest()
			req.SetVersion(9)
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = c.topic
			rpq := kmsg.NewListOffsetsRequestTopicPartition()
			rpq.Partition = c.partition
			rpq.Timestamp = -1
			rt.Partitions = append(rt.Partitions, rpq)
			req.Topics = append(req.Topics, rt)
			resp := raw.roundTrip(req).(*kmsg.ListOffsetsResponse)
			if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
				t.Fatalf("ListOffsets %s[%d]: %+v", c.topic, c.partition, resp.Topics)
			}
			if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
				t.Errorf("ListOffsets %s[%d]: %s, want UNKNOWN_TOPIC_OR_PARTITION", c.topic, c.partition, fzErrCode(code))
			}
		}
	})

	fzCheckLogs(t, p)
}
