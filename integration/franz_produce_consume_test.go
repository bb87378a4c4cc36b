package integration

// Produce and consume through franz-go (kgo) without consumer groups:
// every codec byte for byte, keyed ordering over several partitions,
// acks=0, LogAppendTime topics, segment rolls on disk, long-poll fetches,
// records larger than the fetch limits, and fsync-per-message topics under
// concurrent producers.

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fzMakeRecords builds n records for topic with every shape Kafka allows:
// null and empty keys and values, zero to three headers (some with null
// values), compressible and random payloads, and explicit, slightly
// non-monotonic timestamps an hour in the past.
func fzMakeRecords(topic string, n int, seed int64) []*kgo.Record {
	rng := rand.New(rand.NewSource(seed))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		r := &kgo.Record{Topic: topic}
		switch {
		case i%7 == 0:
			r.Key = nil
		case i%11 == 0:
			r.Key = []byte{}
		default:
			r.Key = []byte("key-" + strconv.Itoa(i))
		}
		switch {
		case i%13 == 0:
			r.Value = nil
		case i%17 == 0:
			r.Value = []byte{}
		case i%5 == 0: // incompressible
			r.Value = make([]byte, rng.Intn(2048))
			rng.Read(r.Value)
		default: // compressible
			r.Value = []byte(strings.Repeat(fmt.Sprintf("value %d of %s; ", i, topic), 1+rng.Intn(40)))
		}
		for h := 0; h < i%4; h++ {
			hv := []byte("hv-" + strconv.Itoa(i*10+h))
			if (i+h)%9 == 0 {
				hv = nil
			}
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "h" + strconv.Itoa(h), Value: hv})
		}
		r.Timestamp = base.Add(time.Duration(i-5*(i%2)) * time.Millisecond)
		recs[i] = r
	}
	return recs
}

func TestFranzProduceConsume(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 150*time.Second)
	adm := fzAdmin(t, p.Addr)

	t.Run("Codecs", func(t *testing.T) {
		codecs := []struct {
			name  string
			codec kgo.CompressionCodec
			attr  uint8
		}{
			{"none", kgo.NoCompression(), 0},
			{"gzip", kgo.GzipCompression(), 1},
			{"snappy", kgo.SnappyCompression(), 2},
			{"lz4", kgo.Lz4Compression(), 3},
			{"zstd", kgo.ZstdCompression(), 4},
		}
		const n = 2000
		for ci, c := range codecs {
			t.Run(c.name, func(t *testing.T) {
				topic := fzTopic(t, "fz")
				fzCreateTopic(ctx, t, adm, topic, 1, nil)
				want := fzMakeRecords(topic, n, int64(ci))
				prod := fzClient(t, p.Addr, kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(5*time.Millisecond))
				fzProduceAsync(ctx, t, prod, want)
				for i, r := range want {
					if r.Offset != int64(i) || r.Partition != 0 {
						t.Fatalf("record %d acknowledged at %d[%d], want offset %d of partition 0", i, r.Offset, r.Partition, i)
					}
				}

				got := fzConsume(ctx, t, p.Addr, topic, n)
				withCodec := 0
				for i := range got {
					if got[i].Offset != int64(i) {
						t.Fatalf("record %d consumed at offset %d", i, got[i].Offset)
					}
					fzCompareRecord(t, i, want[i], got[i])
					if ct := got[i].Attrs.CompressionType(); ct == c.attr {
						withCodec++
					} else if ct != 0 {
						t.Fatalf("record %d came back in a batch with codec %d, produced with %d (or none)", i, ct, c.attr)
					}
					if tt := got[i].Attrs.TimestampType(); tt != 0 {
						t.Fatalf("record %d: timestamp type %d, want 0 (CreateTime)", i, tt)
					}
				}
				if withCodec == 0 {
					t.Fatalf("no consumed batch carries codec %s: the broker recompressed or stripped it", c.name)
				}
				if end := fzEndOffsets(ctx, t, adm, topic)[0]; end != n {
					t.Fatalf("end offset %d, want %d", end, n)
				}
			})
		}
	})

	t.Run("KeyedOrdering", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 3, nil)
		const keys, perKey = 150, 20
		var recs []*kgo.Record
		for s := 0; s < perKey; s++ {
			for k := 0; k < keys; k++ {
				recs = append(recs, &kgo.Record{
					Topic: topic,
					Key:   []byte(fmt.Sprintf("key-%03d", k)),
					Value: []byte(fmt.Sprintf("key-%03d seq %03d", k, s)),
				})
			}
		}
		prod := fzClient(t, p.Addr, kgo.ProducerLinger(2*time.Millisecond))
		fzProduceAsync(ctx, t, prod, recs)

		partOfKey := make(map[string]int32)
		used := make(map[int32]bool)
		for _, r := range recs {
			if pp, ok := partOfKey[string(r.Key)]; ok && pp != r.Partition {
				t.Fatalf("key %s acknowledged in partitions %d and %d", r.Key, pp, r.Partition)
			}
			partOfKey[string(r.Key)] = r.Partition
			used[r.Partition] = true
		}
		if len(used) != 3 {
			t.Fatalf("%d keys landed in %d partitions, want all 3 used", keys, len(used))
		}

		got := fzConsume(ctx, t, p.Addr, topic, len(recs))
		nextSeq := make(map[string]int)
		nextOff := make(map[int32]int64)
		for _, r := range got {
			if r.Offset != nextOff[r.Partition] {
				t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, nextOff[r.Partition])
			}
			nextOff[r.Partition]++
			k := string(r.Key)
			if pp := partOfKey[k]; pp != r.Partition {
				t.Fatalf("key %s consumed from partition %d, acknowledged in %d", k, r.Partition, pp)
			}
			want := fmt.Sprintf("%s seq %03d", k, nextSeq[k])
			if string(r.Value) != want {
				t.Fatalf("partition %d offset %d: %q, want %q (production order broken)", r.Partition, r.Offset, r.Value, want)
			}
			nextSeq[k]++
		}
		for k, n := range nextSeq {
			if n != perKey {
				t.Fatalf("key %s: consumed %d records, want %d", k, n, perKey)
			}
		}
		ends := fzEndOffsets(ctx, t, adm, topic)
		for part, off := range nextOff {
			if ends[part] != off {
				t.Fatalf("partition %d: end offset %d, consumed %d", part, ends[part], off)
			}
		}
	})

	t.Run("AcksZero", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		const n = 500
		prod := fzClient(t, p.Addr, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
		var recs []*kgo.Record
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("acks0-%04d", i))})
		}
		fzProduceAsync(ctx, t, prod, recs)
		got := fzConsume(ctx, t, p.Addr, topic, n)
		for i, r := range got {
			if want := fmt.Sprintf("acks0-%04d", i); string(r.Value) != want || r.Offset != int64(i) {
				t.Fatalf("record %d: %q at offset %d, want %q at %d", i, r.Value, r.Offset, want, i)
			}
		}
		// The connection that sent acks=0 produces must still work for
		// requests that are answered.
		if err := prod.Ping(ctx); err != nil {
			t.Fatalf("ping over the acks=0 client: %v", err)
		}
	})

	t.Run("LogAppendTime", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"message.timestamp.type": kadm.StringPtr("LogAppendTime")})
		fake := time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC)
		const n = 50
		var recs []*kgo.Record
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Value: []byte{byte(i)}, Timestamp: fake.Add(time.Duration(i) * time.Millisecond)})
		}
		before := time.Now()
		prod := fzClient(t, p.Addr, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
		fzProduceSync(ctx, t, prod, recs[:n/2]...)
		fzProduceSync(ctx, t, prod, recs[n/2:]...)
		after := time.Now()

		got := fzConsume(ctx, t, p.Addr, topic, n)
		lo, hi := before.Add(-time.Second).UnixMilli(), after.Add(time.Second).UnixMilli()
		for i, r := range got {
			ts := r.Timestamp.UnixMilli()
			if ts < lo || ts > hi {
				t.Fatalf("record %d: timestamp %v, want the broker's append time in [%v, %v] (producer sent %v)",
					i, r.Timestamp.UTC(), before.UTC(), after.UTC(), recs[i].Timestamp.UTC())
			}
			if tt := r.Attrs.TimestampType(); tt != 1 {
				t.Fatalf("record %d: timestamp type %d, want 1 (LogAppendTime)", i, tt)
			}
			if len(r.Value) != 1 || r.Value[0] != byte(i) {
				t.Fatalf("record %d: value %v", i, r.Value)
			}
		}
	})

	t.Run("SegmentRoll", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		const segBytes = 16384
		fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"segment.bytes": kadm.StringPtr(strconv.Itoa(segBytes))})
		want := fzMakeRecords(topic, 1500, 42)
		prod := fzClient(t, p.Addr, kgo.ProducerBatchMaxBytes(4096), kgo.ProducerBatchCompression(kgo.NoCompression()))
		fzProduceAsync(ctx, t, prod, want)

		dir := fzPartitionDir(p, topic, 0)
		logs := fzLogFiles(t, dir)
		if len(logs) < 3 {
			t.Fatalf("%s holds %d .log files %v after ~%d KiB with segment.bytes=%d, want several", dir, len(logs), logs, 1500*600/1024, segBytes)
		}
		if logs[0] != "00000000000000000000.log" {
			t.Fatalf("first segment is %s, want 00000000000000000000.log", logs[0])
		}
		prevBase := int64(-1)
		for _, name := range logs {
			base, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
			if err != nil || len(name) != 24 {
				t.Fatalf("segment file %q is not <20-digit offset>.log", name)
			}
			if base <= prevBase {
				t.Fatalf("segment bases not increasing: %v", logs)
			}
			prevBase = base
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > segBytes {
				t.Errorf("segment %s is %d bytes, over segment.bytes=%d with batches of at most 4 KiB", name, len(b), segBytes)
			}
			if len(b) >= 8 {
				if first := int64(binary.BigEndian.Uint64(b)); first != base {
					t.Errorf("segment %s starts with a batch at offset %d, want %d", name, first, base)
				}
			} else if name != logs[len(logs)-1] {
				t.Errorf("segment %s is empty but not the active segment", name)
			}
		}

		got := fzConsume(ctx, t, p.Addr, topic, len(want))
		for i := range got {
			if got[i].Offset != int64(i) {
				t.Fatalf("record %d consumed at offset %d", i, got[i].Offset)
			}
			fzCompareRecord(t, i, want[i], got[i])
		}
		// A consumer starting in the middle of a later segment.
		mid := int64(1100)
		cl := fzClient(t, p.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(mid)}}))
		tail := fzPoll(ctx, t, cl, len(want)-int(mid))
		if tail[0].Offset != mid {
			t.Fatalf("consuming from %d started at %d", mid, tail[0].Offset)
		}
		for i, r := range tail {
			fzCompareRecord(t, int(mid)+i, want[int(mid)+i], r)
		}
	})

	t.Run("LongPoll", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)

		// Learn when the consumer's first Fetch has gone out, so the
		// record is produced while that fetch waits in the broker.
		var once sync.Once
		fetchSent := make(chan struct{})
		hook := fzFetchWriteHook(func() { once.Do(func() { close(fetchSent) }) })
		const maxWait = 10 * time.Second
		cons := fzClient(t, p.Addr,
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(maxWait),
			kgo.WithHooks(hook),
		)
		type arrival struct {
			recs []*kgo.Record
			at   time.Time
		}
		arrived := make(chan arrival, 1)
		pollCtx, cancelPoll := context.WithTimeout(ctx, 30*time.Second)
		defer cancelPoll()
		go func() {
			for pollCtx.Err() == nil {
				fs := cons.PollFetches(pollCtx)
				if recs := fs.Records(); len(recs) > 0 {
					arrived <- arrival{recs, time.Now()}
					return
				}
			}
		}()

		select {
		case <-fetchSent:
		case <-ctx.Done():
			t.Fatal("the consumer never sent a Fetch")
		}
		select { // the delay is the scenario, not a wait for a condition
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		prod := fzClient(t, p.Addr)
		producedAt := time.Now()
		fzProduceSync(ctx, t, prod, &kgo.Record{Topic: topic, Value: []byte("wake up")})

		select {
		case a := <-arrived:
			if len(a.recs) != 1 || string(a.recs[0].Value) != "wake up" || a.recs[0].Offset != 0 {
				t.Fatalf("long poll returned %d records, first %q at %d", len(a.recs), a.recs[0].Value, a.recs[0].Offset)
			}
			// The fetch in flight went out at least 500ms before the
			// produce; had the broker waited out FetchMaxWait, the record
			// could not arrive before producedAt+9.5s.
			if d := a.at.Sub(producedAt); d > maxWait-2*time.Second {
				t.Fatalf("record arrived %v after it was produced: the waiting fetch was not woken by the produce (FetchMaxWait %v)", d, maxWait)
			}
		case <-pollCtx.Done():
			t.Fatal("the produced record never reached the long-polling consumer")
		}
	})

	t.Run("FetchLimits", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		rng := rand.New(rand.NewSource(7))
		const n = 12
		var want []*kgo.Record
		for i := 0; i < n; i++ {
			v := make([]byte, 20000+rng.Intn(40000)) // incompressible, each far over the limits
			rng.Read(v)
			want = append(want, &kgo.Record{Topic: topic, Key: []byte{byte(i)}, Value: v})
		}
		prod := fzClient(t, p.Addr, kgo.ProducerBatchCompression(kgo.NoCompression()))
		fzProduceSync(ctx, t, prod, want[:4]...) // one batch of several big records
		for _, r := range want[4:] {
			fzProduceSync(ctx, t, prod, r) // one record per batch
		}
		got := fzConsume(ctx, t, p.Addr, topic, n,
			kgo.FetchMaxPartitionBytes(1024),
			kgo.FetchMaxBytes(1024),
		)
		for i := range got {
			if got[i].Offset != int64(i) {
				t.Fatalf("record %d consumed at offset %d", i, got[i].Offset)
			}
			fzCompareRecord(t, i, want[i], got[i])
		}
	})

	t.Run("FlushMessagesConcurrentProducers", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 2, map[string]*string{"flush.messages": kadm.StringPtr("1")})
		const producers, perProducer = 4, 60
		type ack struct {
			value     string
			partition int32
			offset    int64
		}
		acks := make(chan ack, producers*perProducer)
		var wg sync.WaitGroup
		errc := make(chan error, producers)
		for g := 0; g < producers; g++ {
			cl := fzClient(t, p.Addr, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perProducer; i += 3 {
					var recs []*kgo.Record
					for j := i; j < i+3; j++ {
						recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(j % 2), Value: []byte(fmt.Sprintf("g%d-%03d", g, j))})
					}
					for _, res := range cl.ProduceSync(ctx, recs...) {
						if res.Err != nil {
							errc <- fmt.Errorf("producer %d: %w", g, res.Err)
							return
						}
						acks <- ack{string(res.Record.Value), res.Record.Partition, res.Record.Offset}
					}
				}
			}()
		}
		wg.Wait()
		close(acks)
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		ends := fzEndOffsets(ctx, t, adm, topic)
		logs := map[int32][]*kgo.Record{}
		total := int64(0)
		for part, end := range ends {
			logs[part] = fzConsumePartitionTo(ctx, t, p.Addr, topic, part, end)
			total += end
		}
		n := 0
		for a := range acks {
			n++
			l := logs[a.partition]
			if a.offset >= int64(len(l)) || string(l[a.offset].Value) != a.value {
				t.Fatalf("acknowledged %q at %d[%d], log has %d records there", a.value, a.partition, a.offset, len(l))
			}
		}
		if n != producers*perProducer || total != int64(n) {
			t.Fatalf("%d acknowledgements, %d records in the log, want %d", n, total, producers*perProducer)
		}
	})

	t.Run("ConsumeWhileProducing", func(t *testing.T) {
		// A consumer tails a partition that is being written and rolled
		// under it: it must see every record once, in order.
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"segment.bytes": kadm.StringPtr("16384")})
		want := fzMakeRecords(topic, 3000, 5)
		cons := fzClient(t, p.Addr,
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.FetchMaxPartitionBytes(8192),
		)
		got := make(chan []*kgo.Record, 1)
		go func() {
			var recs []*kgo.Record
			defer func() { got <- recs }()
			for len(recs) < len(want) && ctx.Err() == nil {
				fs := cons.PollFetches(ctx)
				recs = append(recs, fs.Records()...)
			}
		}()
		prod := fzClient(t, p.Addr, kgo.ProducerBatchMaxBytes(4096), kgo.ProducerLinger(time.Millisecond))
		for i := 0; i < len(want); i += 100 {
			fzProduceAsync(ctx, t, prod, want[i:i+100])
		}
		recs := <-got
		if len(recs) != len(want) {
			t.Fatalf("tailing consumer got %d of %d records", len(recs), len(want))
		}
		for i := range recs {
			if recs[i].Offset != int64(i) {
				t.Fatalf("tailing consumer: record %d at offset %d", i, recs[i].Offset)
			}
			fzCompareRecord(t, i, want[i], recs[i])
		}
	})

	fzCheckLogs(t, p)
}

// fzFetchWriteHook calls fn after every Fetch request the client writes.
type fzFetchWriteHook func()

func (h fzFetchWriteHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h()
	}
}
