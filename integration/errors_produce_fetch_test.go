package integration

// Error paths of Produce and Fetch, driven with raw kmsg requests over a
// bare connection so each request goes out exactly as built: corrupt CRCs,
// oversized batches, unknown codecs, two batches in one partition, unknown
// topics and partitions, bad acks, and fetches out of range. Every rejected
// produce must leave the log untouched.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestErrorsProduceFetch(t *testing.T) {
	p := startBroker(t, "--message-max-bytes", "100000")
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "fz")
	fzCreateTopic(ctx, t, adm, topic, 2, nil)
	small := fzTopic(t, "fz-small")
	fzCreateTopic(ctx, t, adm, small, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("1000")})
	raw := fzDial(t, p.Addr)
	now := time.Now().UnixMilli()

	// hw is what the test expects each partition's high watermark to be.
	hw := map[string]int64{}
	checkHW := func(t *testing.T) {
		t.Helper()
		for _, tp := range []struct {
			topic string
			part  int32
		}{{topic, 0}, {topic, 1}, {small, 0}} {
			end := fzEndOffsets(ctx, t, adm, tp.topic)[tp.part]
			if want := hw[fmt.Sprintf("%s/%d", tp.topic, tp.part)]; end != want {
				t.Fatalf("%s[%d]: end offset %d, want %d (a rejected produce was appended?)", tp.topic, tp.part, end, want)
			}
		}
	}
	valid := func(n int) []byte {
		var recs []fzRecord
		for i := 0; i < n; i++ {
			recs = append(recs, fzRecord{key: []byte(fmt.Sprint("k", i)), value: []byte(fmt.Sprint("v", i)), tsDelta: int64(i),
				headers: []kmsg.Header{{Key: "h", Value: []byte{byte(i)}}}})
		}
		return fzBatch(now, recs...)
	}

	t.Run("ValidStoredVerbatim", func(t *testing.T) {
		sent := valid(3)
		code, off := fzRawProduce(t, raw, 9, topic, 0, sent)
		if code != 0 || off != 0 {
			t.Fatalf("produce v9: %s at %d, want success at 0", fzErrCode(code), off)
		}
		hw[topic+"/0"] = 3
		code, off = fzRawProduce(t, raw, 3, topic, 0, valid(2))
		if code != 0 || off != 3 {
			t.Fatalf("produce v3: %s at %d, want success at 3", fzErrCode(code), off)
		}
		hw[topic+"/0"] = 5
		id := fzTopicID(t, raw, topic)
		req := fzProduceRequest(13, fzProducePart{topicID: id, partition: 0, records: valid(1)})
		res := fzProduceResults(t, raw.roundTrip(req).(*kmsg.ProduceResponse))
		if rp, ok := res[fmt.Sprintf("%x/0", id)]; !ok || rp.ErrorCode != 0 || rp.BaseOffset != 5 {
			t.Fatalf("produce v13 by topic id: %+v", res)
		}
		hw[topic+"/0"] = 6

		fp := fzRawFetch(t, raw, fzFetchRequest(12, topic, [16]byte{}, 0, 0, 0))
		if fp.ErrorCode != 0 || fp.HighWatermark != 6 || fp.LogStartOffset != 0 {
			t.Fatalf("fetch: %s hw %d log start %d, want none/6/0", fzErrCode(fp.ErrorCode), fp.HighWatermark, fp.LogStartOffset)
		}
		if len(fp.RecordBatches) < len(sent) {
			t.Fatalf("fetch returned %d bytes, the first batch alone is %d", len(fp.RecordBatches), len(sent))
		}
		got := fp.RecordBatches[:len(sent)]
		if base := binary.BigEndian.Uint64(got); base != 0 {
			t.Fatalf("first batch base offset %d", base)
		}
		if !bytes.Equal(got[16:], sent[16:]) {
			t.Fatalf("stored batch differs from the produced one after the leader epoch:\n got %x\nsent %x", got[16:], sent[16:])
		}
		// And through v18 by topic id, from the middle of the log.
		fp = fzRawFetch(t, raw, fzFetchRequest(18, "", id, 0, 4, 0))
		if fp.ErrorCode != 0 || fp.HighWatermark != 6 || len(fp.RecordBatches) == 0 {
			t.Fatalf("fetch v18 by id from 4: %s hw %d, %d bytes", fzErrCode(fp.ErrorCode), fp.HighWatermark, len(fp.RecordBatches))
		}
		if base := int64(binary.BigEndian.Uint64(fp.RecordBatches)); base != 3 {
			t.Fatalf("fetch from offset 4 starts with the batch at %d, want the batch at 3 that holds it", base)
		}
	})

	cases := []struct {
		name    string
		topic   string
		part    int32
		records func() []byte
		want    *kerr.Error
	}{
		{"CorruptCRC", topic, 0, func() []byte {
			b := valid(3)
			b[len(b)-2] ^= 0x40 // a byte in the last record; CRC left as it was
			return b
		}, kerr.CorruptMessage},
		{"CorruptCRCField", topic, 0, func() []byte {
			b := valid(3)
			b[18] ^= 0x01
			return b
		}, kerr.CorruptMessage},
		{"TruncatedBatch", topic, 0, func() []byte {
			b := valid(3)
			return b[:len(b)-5] // length field now claims 5 bytes more than present
		}, kerr.InvalidRecord}, // as in Kafka: no whole batch at all
		{"TooLargeForTopic", small, 0, func() []byte {
			return fzBatch(now, fzRecord{value: bytes.Repeat([]byte("x"), 2000)})
		}, kerr.MessageTooLarge},
		{"TooLargeForBroker", topic, 1, func() []byte {
			return fzBatch(now, fzRecord{value: bytes.Repeat([]byte("y"), 150000)})
		}, kerr.MessageTooLarge},
		{"CodecFive", topic, 0, func() []byte {
			b := valid(3)
			binary.BigEndian.PutUint16(b[21:], 5)
			fzFixCRC(b) // only the codec is wrong
			return b
		}, kerr.UnsupportedCompressionType},
		{"CodecSeven", topic, 0, func() []byte {
			b := valid(3)
			binary.BigEndian.PutUint16(b[21:], 7)
			fzFixCRC(b)
			return b
		}, kerr.UnsupportedCompressionType},
		{"TwoBatches", topic, 0, func() []byte {
			return append(valid(2), valid(2)...)
		}, kerr.InvalidRecord},
		{"UnknownPartition", topic, 9, func() []byte { return valid(1) }, kerr.UnknownTopicOrPartition},
		{"UnknownTopic", topic + "-missing", 0, func() []byte { return valid(1) }, kerr.UnknownTopicOrPartition},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []int16{3, 9, 12} {
				code, _ := fzRawProduce(t, raw, v, c.topic, c.part, c.records())
				if code != c.want.Code {
					t.Errorf("produce v%d: %s, want %s", v, fzErrCode(code), fzErrCode(c.want.Code))
				}
			}
			checkHW(t)
		})
	}

	t.Run("UnknownTopicID", func(t *testing.T) {
		req := fzProduceRequest(13, fzProducePart{topicID: [16]byte{1, 2, 3}, partition: 0, records: valid(1)})
		res := fzProduceResults(t, raw.roundTrip(req).(*kmsg.ProduceResponse))
		rp, ok := res[fmt.Sprintf("%x/0", [16]byte{1, 2, 3})]
		if !ok || (rp.ErrorCode != kerr.UnknownTopicID.Code && rp.ErrorCode != kerr.UnknownTopicOrPartition.Code) {
			t.Fatalf("produce v13 to an unknown topic id: %+v, want UNKNOWN_TOPIC_ID", res)
		}
		checkHW(t)
	})

	t.Run("MixedPartitions", func(t *testing.T) {
		bad := valid(2)
		bad[len(bad)-1] ^= 0xFF
		req := fzProduceRequest(9,
			fzProducePart{topic: topic, partition: 0, records: bad},
			fzProducePart{topic: topic, partition: 1, records: valid(4)},
		)
		res := fzProduceResults(t, raw.roundTrip(req).(*kmsg.ProduceResponse))
		if rp := res[topic+"/0"]; rp.ErrorCode != kerr.CorruptMessage.Code {
			t.Fatalf("partition 0 (corrupt): %s, want CORRUPT_MESSAGE", fzErrCode(rp.ErrorCode))
		}
		if rp := res[topic+"/1"]; rp.ErrorCode != 0 || rp.BaseOffset != 0 {
			t.Fatalf("partition 1 (valid, same request): %s at %d, want success at 0", fzErrCode(rp.ErrorCode), rp.BaseOffset)
		}
		hw[topic+"/1"] = 4
		checkHW(t)
	})

	t.Run("InvalidAcks", func(t *testing.T) {
		for _, acks := range []int16{2, -2, 5} {
			req := fzProduceRequest(9,
				fzProducePart{topic: topic, partition: 0, records: valid(1)},
				fzProducePart{topic: topic, partition: 1, records: valid(1)},
			)
			req.Acks = acks
			res := fzProduceResults(t, raw.roundTrip(req).(*kmsg.ProduceResponse))
			if len(res) != 2 {
				t.Fatalf("acks=%d: %d partition results, want 2", acks, len(res))
			}
			for k, rp := range res {
				if rp.ErrorCode != kerr.InvalidRequiredAcks.Code {
					t.Errorf("acks=%d, %s: %s, want INVALID_REQUIRED_ACKS", acks, k, fzErrCode(rp.ErrorCode))
				}
			}
		}
		checkHW(t)
	})

	t.Run("FetchOutOfRange", func(t *testing.T) {
		id := fzTopicID(t, raw, topic)
		for _, v := range []int16{4, 11, 12, 13, 18} {
			for _, off := range []int64{7, 1000, -5} {
				name, tid := topic, [16]byte{}
				if v >= 13 {
					name, tid = "", id
				}
				fp := fzRawFetch(t, raw, fzFetchRequest(v, name, tid, 0, off, 0))
				if fp.ErrorCode != kerr.OffsetOutOfRange.Code {
					t.Errorf("fetch v%d at %d (hw 6): %s, want OFFSET_OUT_OF_RANGE", v, off, fzErrCode(fp.ErrorCode))
				}
				if fp.HighWatermark != 6 {
					t.Errorf("fetch v%d at %d: out-of-range response carries hw %d, want 6", v, off, fp.HighWatermark)
				}
				if v >= 5 && fp.LogStartOffset != 0 {
					t.Errorf("fetch v%d at %d: log start offset %d, want 0", v, off, fp.LogStartOffset)
				}
				if len(fp.RecordBatches) != 0 {
					t.Errorf("fetch v%d at %d: %d record bytes with OFFSET_OUT_OF_RANGE", v, off, len(fp.RecordBatches))
				}
			}
		}
		// At the high watermark: no error, no records, a short wait.
		fp := fzRawFetch(t, raw, fzFetchRequest(12, topic, [16]byte{}, 0, 6, 100))
		if fp.ErrorCode != 0 || fp.HighWatermark != 6 || len(fp.RecordBatches) != 0 {
			t.Fatalf("fetch at the hw: %s hw %d, %d bytes", fzErrCode(fp.ErrorCode), fp.HighWatermark, len(fp.RecordBatches))
		}
		// A franz-go consumer asked to start past the end resets per its policy.
		cl := fzClient(t, p.Addr,
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(1000)}}),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		got := fzPoll(ctx, t, cl, 6)
		if got[0].Offset != 0 || got[5].Offset != 5 {
			t.Fatalf("consumer reset after OFFSET_OUT_OF_RANGE read offsets %d..%d", got[0].Offset, got[len(got)-1].Offset)
		}
	})

	t.Run("FetchUnknown", func(t *testing.T) {
		fp := fzRawFetch(t, raw, fzFetchRequest(12, topic+"-missing", [16]byte{}, 0, 0, 0))
		if fp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("fetch v12 of an unknown topic: %s, want UNKNOWN_TOPIC_OR_PARTITION", fzErrCode(fp.ErrorCode))
		}
		fp = fzRawFetch(t, raw, fzFetchRequest(12, topic, [16]byte{}, 9, 0, 0))
		if fp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("fetch v12 of partition 9: %s, want UNKNOWN_TOPIC_OR_PARTITION", fzErrCode(fp.ErrorCode))
		}
		fp = fzRawFetch(t, raw, fzFetchRequest(13, "", [16]byte{9, 9, 9}, 0, 0, 0))
		if fp.ErrorCode != kerr.UnknownTopicID.Code {
			t.Errorf("fetch v13 of an unknown topic id: %s, want UNKNOWN_TOPIC_ID", fzErrCode(fp.ErrorCode))
		}
	})

	// The broker still serves franz-go normally, and the log is intact.
	cl := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte("after the errors")}
	fzProduceSync(ctx, t, cl, r)
	if r.Offset != 6 {
		t.Fatalf("next offset after the rejected produces: %d, want 6", r.Offset)
	}
	recs := fzConsumePartitionTo(ctx, t, p.Addr, topic, 0, 7)
	if string(recs[0].Value) != "v0" || string(recs[6].Value) != "after the errors" {
		t.Fatalf("log reads %q ... %q", recs[0].Value, recs[6].Value)
	}
	fzCheckLogs(t, p)
}
