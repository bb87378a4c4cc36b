package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Scenario names, in the order they run for each record size.
const (
	scenProduce = "produce"      // async produce, bounded in-flight records
	scenConsume = "consume"      // read back everything produce wrote
	scenSync    = "produce-sync" // one record at a time, wait for each ack
)

// result is one measured scenario against one target.
type result struct {
	Target   string  `json:"target"`
	Scenario string  `json:"scenario"`
	Size     int     `json:"record_bytes"`
	Records  int64   `json:"records"`
	Bytes    int64   `json:"payload_bytes"`
	Seconds  float64 `json:"seconds"`
	MBps     float64 `json:"mb_per_s"` // payload bytes / 10^6 / seconds
	RecPerS  float64 `json:"records_per_s"`
	P50ms    float64 `json:"p50_ms,omitempty"` // ack latency; produce scenarios only
	P99ms    float64 `json:"p99_ms,omitempty"`
	P999ms   float64 `json:"p999_ms,omitempty"`
	MaxMs    float64 `json:"max_ms,omitempty"`
}

func newResult(tgt, scen string, size int, records, bytes int64, elapsed time.Duration, lats []time.Duration) result {
	r := result{Target: tgt, Scenario: scen, Size: size, Records: records, Bytes: bytes, Seconds: elapsed.Seconds()}
	if r.Seconds > 0 {
		r.MBps = float64(bytes) / 1e6 / r.Seconds
		r.RecPerS = float64(records) / r.Seconds
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		r.P50ms = ms(percentile(lats, 0.50))
		r.P99ms = ms(percentile(lats, 0.99))
		r.P999ms = ms(percentile(lats, 0.999))
		r.MaxMs = ms(lats[len(lats)-1])
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile is the nearest-rank percentile of sorted, non-empty lats.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// workload is everything that shapes the load; it is identical for every
// target, which is what makes the ratios meaningful.
type workload struct {
	partitions   int
	producers    int
	duration     time.Duration // per produce scenario, when records == 0
	records      int64         // per produce scenario, total over producers
	maxPending   int           // in-flight (unacknowledged) records per producer
	inflightReqs int           // produce requests in flight per broker connection
	idempotent   bool          // idempotent produce (sequence numbers, InitProducerId)
	linger       time.Duration
	compression  kgo.CompressionCodec
	syncDuration time.Duration
	syncRecords  int64
	opTimeout    time.Duration // bound on flushes, consumes and admin calls
}

// clientOpts is the client configuration every target gets.
//
// Idempotence is off unless -idempotent (so numbers compare with earlier
// runs); without it, -inflight-requests sets the produce requests in flight
// per broker explicitly, as kgo would otherwise still keep one; with it kgo
// keeps one and takes no such option. The round-robin
// partitioner spreads records evenly and identically over partitions for
// both targets (the default sticky partitioner switches partitions on batch
// completion, which depends on broker speed, and so would not).
func (w *workload) clientOpts(seeds []string, linger time.Duration) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("gregor-bench"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(linger),
		kgo.ProducerBatchCompression(w.compression),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		// Our own semaphore bounds in-flight records; kgo's buffer is one
		// larger so Produce never blocks inside the timed section.
		kgo.MaxBufferedRecords(w.maxPending + 1),
		kgo.RecordDeliveryTimeout(w.opTimeout),
		kgo.DialTimeout(5 * time.Second),
	}
	if !w.idempotent {
		// kgo refuses the in-flight option with idempotence (it keeps one
		// produce request in flight per broker then).
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(w.inflightReqs))
	}
	return opts
}

// payload returns size random (incompressible) bytes, shared by all records.
func payload(size int) []byte {
	b := make([]byte, size)
	rand.Read(b)
	return b
}

// createTopic creates topic with the workload's partitions and replication
// factor replicas, then waits until every partition has a leader and all
// replicas in its ISR, so acks=all is measured against the full replica
// set from the first record. A broker that
// does not serve CreateTopics at all gets the topic by auto-creation instead
// (Gregor is started with --num-partitions equal to -partitions for this),
// and the partition count is checked either way.
func createTopic(ctx context.Context, cl *kgo.Client, topic string, partitions, replicas int, note func(string)) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = int32(partitions)
	rt.ReplicationFactor = int16(replicas)
	req.Topics = append(req.Topics, rt)
	autoCreate := false
	resp, err := req.RequestWith(ctx, cl)
	switch {
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		note(fmt.Sprintf("CreateTopics failed (%v); creating %s by auto-creation instead", err, topic))
		autoCreate = true
	case len(resp.Topics) != 1:
		return fmt.Errorf("create topic %s: response has %d topics, want 1", topic, len(resp.Topics))
	default:
		if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
			msg := ""
			if m := resp.Topics[0].ErrorMessage; m != nil {
				msg = ": " + *m
			}
			return fmt.Errorf("create topic %s: %w%s", topic, err, msg)
		}
	}

	// Poll Metadata until every partition has a leader and a full ISR
	// (bounded).
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		mreq := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		mreq.Topics = append(mreq.Topics, mt)
		mreq.AllowAutoTopicCreation = autoCreate
		mresp, err := mreq.RequestWith(ctx, cl)
		switch {
		case err != nil:
			last = err.Error()
		case len(mresp.Topics) != 1:
			last = fmt.Sprintf("metadata has %d topics", len(mresp.Topics))
		default:
			t := mresp.Topics[0]
			if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
				last = err.Error()
				break
			}
			if len(t.Partitions) != partitions {
				if len(t.Partitions) > 0 {
					return fmt.Errorf("topic %s has %d partitions, want %d", topic, len(t.Partitions), partitions)
				}
				last = "no partitions yet"
				break
			}
			ready := true
			for _, p := range t.Partitions {
				switch {
				case p.ErrorCode != 0 || p.Leader < 0:
					ready = false
					last = fmt.Sprintf("partition %d: leader %d, error %v", p.Partition, p.Leader, kerr.ErrorForCode(p.ErrorCode))
				case len(p.Replicas) != replicas:
					return fmt.Errorf("topic %s partition %d has %d replicas, want %d", topic, p.Partition, len(p.Replicas), replicas)
				case len(p.ISR) < replicas:
					ready = false
					last = fmt.Sprintf("partition %d: ISR %v of replicas %v", p.Partition, p.ISR, p.Replicas)
				}
			}
			if ready {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s not ready after 30s: %s", topic, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tally counts, per partition, the records a target acknowledged for one
// topic; the consume scenario must read back exactly these.
type tally struct {
	mu      sync.Mutex
	perPart map[int32]int64
}

func (t *tally) add(p int32, n int64) {
	t.mu.Lock()
	if t.perPart == nil {
		t.perPart = make(map[int32]int64)
	}
	t.perPart[p] += n
	t.mu.Unlock()
}

// producerStats is one producer's record of acks; its mutex is taken only by
// that producer's promises.
type producerStats struct {
	mu      sync.Mutex
	lats    []time.Duration // protected by mu
	records int64           // protected by mu
	bytes   int64           // protected by mu
	lastAck time.Time       // protected by mu
	perPart map[int32]int64 // acked records per partition; protected by mu
}

// runProduce produces to topic with w.producers clients for w.duration (or
// w.records in total), keeping at most w.maxPending records unacknowledged
// per client, and records each record's ack latency: from just before
// Produce to its promise.
func runProduce(ctx context.Context, w *workload, tgt *target, topic string, size int, acked *tally) (result, error) {
	value := payload(size)
	clients := make([]*kgo.Client, w.producers)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.Close()
			}
		}
	}()
	// Warm up: connect and load metadata with one acked record per client,
	// outside the timed section. These records count for consume.
	for i := range clients {
		cl, err := kgo.NewClient(w.clientOpts(tgt.seeds, w.linger)...)
		if err != nil {
			return result{}, fmt.Errorf("produce client: %w", err)
		}
		clients[i] = cl
		wctx, cancel := context.WithTimeout(ctx, w.opTimeout)
		r, err := cl.ProduceSync(wctx, &kgo.Record{Topic: topic, Value: value}).First()
		cancel()
		if err != nil {
			return result{}, fmt.Errorf("warm-up produce: %w", err)
		}
		acked.add(r.Partition, 1)
	}

	// pctx ends the produce loops early on the first failed record.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		firstErr atomic.Pointer[error]
		stats    = make([]*producerStats, w.producers)
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		if firstErr.CompareAndSwap(nil, &err) {
			cancel()
		}
	}
	start := time.Now()
	deadline := start.Add(w.duration)
	for i, cl := range clients {
		st := &producerStats{perPart: make(map[int32]int64)}
		limit := int64(0)
		if w.records > 0 {
			limit = w.records / int64(w.producers)
			if int64(i) < w.records%int64(w.producers) {
				limit++
			}
			st.lats = make([]time.Duration, 0, limit)
		}
		stats[i] = st
		wg.Go(func() {
			sem := make(chan struct{}, w.maxPending)
			for n := int64(0); ; n++ {
				if limit > 0 && n >= limit || limit == 0 && !time.Now().Before(deadline) {
					break
				}
				select {
				case sem <- struct{}{}:
				case <-pctx.Done():
				}
				if pctx.Err() != nil {
					break
				}
				t0 := time.Now()
				cl.Produce(pctx, &kgo.Record{Topic: topic, Value: value}, func(r *kgo.Record, err error) {
					now := time.Now()
					<-sem
					if err != nil {
						fail(fmt.Errorf("produce to %s-%d: %w", r.Topic, r.Partition, err))
						return
					}
					st.mu.Lock()
					st.perPart[r.Partition]++
					st.lats = append(st.lats, now.Sub(t0))
					st.records++
					st.bytes += int64(len(r.Value))
					st.lastAck = now
					st.mu.Unlock()
				})
			}
			fctx, fcancel := context.WithTimeout(ctx, w.opTimeout)
			defer fcancel()
			if err := cl.Flush(fctx); err != nil {
				fail(fmt.Errorf("flush after producing: %w", err))
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return result{}, *p
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	var (
		records, bytes int64
		end            = start
		lats           []time.Duration
	)
	for _, st := range stats {
		st.mu.Lock()
		records += st.records
		bytes += st.bytes
		lats = append(lats, st.lats...)
		if st.lastAck.After(end) {
			end = st.lastAck
		}
		for p, n := range st.perPart {
			acked.add(p, n)
		}
		st.mu.Unlock()
	}
	if records == 0 {
		return result{}, errors.New("no record was acknowledged")
	}
	return newResult(tgt.name, scenProduce, size, records, bytes, end.Sub(start), lats), nil
}

// runConsume reads topic from the start of every partition with a fresh,
// group-less client until it has every acknowledged record, and checks that
// each partition's offsets run 0, 1, 2, ... with nothing missing or extra.
func runConsume(ctx context.Context, w *workload, tgt *target, topic string, size int, acked *tally) (result, []string, error) {
	acked.mu.Lock()
	want := make(map[int32]int64, len(acked.perPart))
	offsets := make(map[int32]kgo.Offset, w.partitions)
	var total int64
	for p := range int32(w.partitions) {
		want[p] = acked.perPart[p]
		total += want[p]
		offsets[p] = kgo.NewOffset().AtStart()
	}
	acked.mu.Unlock()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(tgt.seeds...),
		kgo.ClientID("gregor-bench"),
		kgo.DialTimeout(5*time.Second),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
	)
	if err != nil {
		return result{}, nil, fmt.Errorf("consume client: %w", err)
	}
	defer cl.Close()
	pingCtx, cancel := context.WithTimeout(ctx, w.opTimeout)
	err = cl.Ping(pingCtx)
	cancel()
	if err != nil {
		return result{}, nil, fmt.Errorf("consume client: ping: %w", err)
	}

	cctx, cancel := context.WithTimeout(ctx, w.opTimeout)
	defer cancel()
	var (
		got, bytes int64
		next       = make(map[int32]int64, w.partitions) // next expected offset
		gaps       = make(map[int32]int64)
		extra      = make(map[int32]int64)
		start      = time.Now()
		end        time.Time
	)
	for got < total {
		fetches := cl.PollFetches(cctx)
		if err := cctx.Err(); err != nil {
			if ctx.Err() != nil {
				return result{}, nil, ctx.Err()
			}
			return result{}, nil, fmt.Errorf("consumed %d of %d records in %s; the rest never arrived", got, total, w.opTimeout)
		}
		for _, fe := range fetches.Errors() {
			return result{}, nil, fmt.Errorf("fetch %s-%d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			bytes += int64(len(r.Value))
			switch n := next[r.Partition]; {
			case r.Offset > n:
				gaps[r.Partition] += r.Offset - n
			case r.Offset < n:
				extra[r.Partition]++
			}
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
			if len(r.Value) != size {
				extra[r.Partition]++ // a record we did not write
			}
		})
		end = time.Now()
	}

	var anomalies []string
	for p := range int32(w.partitions) {
		if gaps[p] > 0 || extra[p] > 0 || next[p] != want[p] {
			anomalies = append(anomalies, fmt.Sprintf("%s consume %s-%d: acked %d records, read up to offset %d, %d offsets skipped, %d unexpected records",
				tgt.name, topic, p, want[p], next[p], gaps[p], extra[p]))
		}
	}
	return newResult(tgt.name, scenConsume, size, got, bytes, end.Sub(start), nil), anomalies, nil
}

// runSync produces one record at a time and waits for each ack (linger 0,
// so the client sends at once): the latency a request/response caller sees.
func runSync(ctx context.Context, w *workload, tgt *target, topic string, size int, acked *tally) (result, error) {
	value := payload(size)
	cl, err := kgo.NewClient(w.clientOpts(tgt.seeds, 0)...)
	if err != nil {
		return result{}, fmt.Errorf("sync produce client: %w", err)
	}
	defer cl.Close()
	// Warm-up, untimed.
	wctx, cancel := context.WithTimeout(ctx, w.opTimeout)
	r, err := cl.ProduceSync(wctx, &kgo.Record{Topic: topic, Value: value}).First()
	cancel()
	if err != nil {
		return result{}, fmt.Errorf("sync warm-up produce: %w", err)
	}
	acked.add(r.Partition, 1)

	var (
		lats     []time.Duration
		bytes    int64
		start    = time.Now()
		deadline = start.Add(w.syncDuration)
		end      time.Time
	)
	for n := int64(0); ; n++ {
		if w.syncRecords > 0 && n >= w.syncRecords || w.syncRecords == 0 && !time.Now().Before(deadline) {
			break
		}
		rctx, cancel := context.WithTimeout(ctx, w.opTimeout)
		t0 := time.Now()
		r, err := cl.ProduceSync(rctx, &kgo.Record{Topic: topic, Value: value}).First()
		end = time.Now()
		cancel()
		if err != nil {
			return result{}, fmt.Errorf("sync produce: %w", err)
		}
		acked.add(r.Partition, 1)
		lats = append(lats, end.Sub(t0))
		bytes += int64(len(r.Value))
	}
	if len(lats) == 0 {
		return result{}, errors.New("sync produce: no record produced")
	}
	return newResult(tgt.name, scenSync, size, int64(len(lats)), bytes, end.Sub(start), lats), nil
}

// parseCompression maps a -compression value to a kgo codec.
func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(s) {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("-compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

// newAdmin returns the client that creates topics.
func newAdmin(seeds []string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID("gregor-bench-admin"), kgo.DialTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return cl, nil
}
