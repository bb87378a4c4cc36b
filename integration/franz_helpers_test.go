package integration

// Helpers shared by the franz-go, kadm and raw-protocol tests
// (franz_*, admin_*, errors_*, crash_*, frames_*). Every name starts with
// fz so it cannot collide with the sarama and kafka-go helpers that live in
// the same package.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fzTopic is a topic name unique to the running (sub)test, legal in Kafka
// ([a-zA-Z0-9._-], at most 249 characters).
func fzTopic(t testing.TB, prefix string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('-')
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := b.String()
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}

// fzClient is a franz-go client for one broker with franz-go's defaults
// (idempotent produce with acks=all among them) and bounded retries so a
// hung broker fails the test rather than the test binary. It is closed
// when the test ends.
func fzClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ClientID("gregor-it-franz"),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
		kgo.ProduceRequestTimeout(15 * time.Second),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// fzAdmin is a kadm client over its own kgo client.
func fzAdmin(t testing.TB, addr string) *kadm.Client {
	t.Helper()
	adm := kadm.NewClient(fzClient(t, addr))
	adm.SetTimeoutMillis(15000)
	return adm
}

// fzCreateTopic creates a topic with replication factor 1 and fails the
// test if the broker does not confirm it.
func fzCreateTopic(ctx context.Context, t testing.TB, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if resp.Err != nil {
		t.Fatalf("create topic %s (%d partitions, configs %v): %v (%s)", topic, partitions, fzDeref(configs), resp.Err, resp.ErrMessage)
	}
}

func fzDeref(m map[string]*string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v == nil {
			out[k] = "<nil>"
		} else {
			out[k] = *v
		}
	}
	return out
}

// fzProduceSync produces records synchronously and fails the test on the
// first error. It returns the records with partitions and offsets filled in.
func fzProduceSync(ctx context.Context, t testing.TB, cl *kgo.Client, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	res := cl.ProduceSync(ctx, recs...)
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("produce to %s[%d]: %v", r.Record.Topic, r.Record.Partition, r.Err)
		}
	}
	return recs
}

// fzProduceAsync produces records through the client's batching path and
// waits for every promise; it fails the test on the first error.
func fzProduceAsync(ctx context.Context, t testing.TB, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	errc := make(chan error, len(recs))
	for _, r := range recs {
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				err = fmt.Errorf("record %q to %s[%d]: %w", r.Value[:min(len(r.Value), 16)], r.Topic, r.Partition, err)
			}
			errc <- err
		})
	}
	for range recs {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("produce: %v", err)
			}
		case <-ctx.Done():
			t.Fatalf("produce: %v waiting for acknowledgements", ctx.Err())
		}
	}
}

// fzConsume reads topic's partitions from the start with a group-less
// consumer until want records have arrived, and fails the test if they do
// not arrive before ctx ends. Records are returned in arrival order, which
// is offset order within each partition.
func fzConsume(ctx context.Context, t testing.TB, addr, topic string, want int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)
	cl := fzClient(t, addr, opts...)
	defer cl.Close()
	return fzPoll(ctx, t, cl, want)
}

// fzPoll polls cl until want records have arrived.
func fzPoll(ctx context.Context, t testing.TB, cl *kgo.Client, want int) []*kgo.Record {
	t.Helper()
	var got []*kgo.Record
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before %v", len(got), want, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			t.Fatalf("fetch %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
		}
		got = append(got, fs.Records()...)
	}
	if len(got) > want {
		t.Fatalf("consumed %d records, want %d", len(got), want)
	}
	return got
}

// fzConsumePartitionTo reads one partition from offset 0 until the record at
// end-1 has arrived, checking that offsets are dense. It returns the
// records indexed by offset.
func fzConsumePartitionTo(ctx context.Context, t testing.TB, addr, topic string, partition int32, end int64) []*kgo.Record {
	t.Helper()
	out := make([]*kgo.Record, 0, end)
	if end == 0 {
		return out
	}
	cl := fzClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {partition: kgo.NewOffset().At(0)},
	}))
	defer cl.Close()
	for int64(len(out)) < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s[%d]: read %d of %d offsets before %v", topic, partition, len(out), end, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			t.Fatalf("fetch %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
		}
		for _, r := range fs.Records() {
			if int64(len(out)) == end {
				break // records appended after end was taken are not ours to check
			}
			if r.Offset != int64(len(out)) {
				t.Fatalf("%s[%d]: got offset %d, want %d (gap or reordering)", topic, partition, r.Offset, len(out))
			}
			out = append(out, r)
		}
	}
	return out
}

// fzEndOffsets returns the high watermark of every partition of topic.
func fzEndOffsets(ctx context.Context, t testing.TB, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	lo, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets %s: %v", topic, err)
	}
	out := make(map[int32]int64)
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s[%d]: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// fzSameBytes reports whether a and b are equal including nil-ness (Kafka
// distinguishes a null key or value from an empty one).
func fzSameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// fzCompareRecord fails the test if got differs from want in key, value,
// headers or (CreateTime) timestamp.
func fzCompareRecord(t testing.TB, i int, want, got *kgo.Record) {
	t.Helper()
	if !fzSameBytes(want.Key, got.Key) {
		t.Fatalf("record %d (offset %d): key %s, want %s", i, got.Offset, fzShow(got.Key), fzShow(want.Key))
	}
	if !fzSameBytes(want.Value, got.Value) {
		t.Fatalf("record %d (offset %d): value %s, want %s", i, got.Offset, fzShow(got.Value), fzShow(want.Value))
	}
	if len(want.Headers) != len(got.Headers) {
		t.Fatalf("record %d (offset %d): %d headers, want %d", i, got.Offset, len(got.Headers), len(want.Headers))
	}
	for h := range want.Headers {
		if want.Headers[h].Key != got.Headers[h].Key || !fzSameBytes(want.Headers[h].Value, got.Headers[h].Value) {
			t.Fatalf("record %d (offset %d): header %d is %q=%s, want %q=%s", i, got.Offset, h,
				got.Headers[h].Key, fzShow(got.Headers[h].Value), want.Headers[h].Key, fzShow(want.Headers[h].Value))
		}
	}
	if w, g := want.Timestamp.UnixMilli(), got.Timestamp.UnixMilli(); w != g {
		t.Fatalf("record %d (offset %d): timestamp %d, want %d", i, got.Offset, g, w)
	}
}

func fzShow(b []byte) string {
	if b == nil {
		return "<null>"
	}
	if len(b) > 24 {
		return fmt.Sprintf("%q...(%d bytes)", b[:24], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// fzCheckLogs fails the test if the broker's log shows a panic or a data
// race (the binary is built with -race).
func fzCheckLogs(t testing.TB, p *brokerProc) {
	t.Helper()
	logs := p.Logs()
	for _, bad := range []string{"panic", "DATA RACE", "fatal error:"} {
		if i := strings.Index(logs, bad); i >= 0 {
			from := max(0, i-2000)
			to := min(len(logs), i+4000)
			t.Errorf("broker log contains %q:\n%s", bad, logs[from:to])
		}
	}
}

// fzWaitFor polls cond every 50ms until it returns nil or the deadline
// passes, then fails the test with the last error.
func fzWaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fzLogFiles returns the sorted .log file names in a partition directory.
func fzLogFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read partition dir: %v", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// fzPartitionDir is where Gregor keeps a partition's files.
func fzPartitionDir(p *brokerProc, topic string, partition int32) string {
	return filepath.Join(p.DataDir, fmt.Sprintf("%s-%d", topic, partition))
}

// ---- raw record batches ----

var fzCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// fzRecord is one record for fzBatch.
type fzRecord struct {
	key, value []byte
	headers    []kmsg.Header
	tsDelta    int64
}

// fzBatch encodes an uncompressed magic-2 record batch as a non-idempotent
// producer would, with a correct CRC. It is written here rather than taken
// from the protocol package so that the tests check Gregor against an
// independent encoder.
func fzBatch(firstTimestamp int64, recs ...fzRecord) []byte {
	var body []byte
	maxDelta := int64(0)
	for i, r := range recs {
		rec := kmsg.Record{
			TimestampDelta64: r.tsDelta,
			TimestampDelta:   int32(r.tsDelta),
			OffsetDelta:      int32(i),
			Key:              r.key,
			Value:            r.value,
			Headers:          r.headers,
		}
		// The length prefix counts the bytes after itself: encode once
		// with length 0 (a one-byte varint) to learn it.
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		body = rec.AppendTo(body)
		if i == 0 || r.tsDelta > maxDelta {
			maxDelta = r.tsDelta
		}
	}
	b := make([]byte, 61, 61+len(body))
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)                                // base offset
	be.PutUint32(b[8:], uint32(61-12+len(body)))          // length
	be.PutUint32(b[12:], 0xFFFFFFFF)                      // partition leader epoch -1
	b[16] = 2                                             // magic
	be.PutUint16(b[21:], 0)                               // attributes
	be.PutUint32(b[23:], uint32(len(recs)-1))             // last offset delta
	be.PutUint64(b[27:], uint64(firstTimestamp))          // first timestamp
	be.PutUint64(b[35:], uint64(firstTimestamp+maxDelta)) // max timestamp
	be.PutUint64(b[43:], 0xFFFFFFFFFFFFFFFF)              // producer id -1
	be.PutUint16(b[51:], 0xFFFF)                          // producer epoch -1
	be.PutUint32(b[53:], 0xFFFFFFFF)                      // base sequence -1
	be.PutUint32(b[57:], uint32(len(recs)))               // record count
	b = append(b, body...)
	fzFixCRC(b)
	return b
}

// fzFixCRC recomputes a batch's CRC-32C (over attributes to the end).
func fzFixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], fzCastagnoli))
}

// ---- raw protocol connection ----

// fzRaw is a bare Kafka connection: requests go out at exactly the version
// set on them, with no negotiation, so tests can aim at one code path.
type fzRaw struct {
	t    testing.TB
	c    net.Conn
	corr int32
}

func fzDial(t testing.TB, addr string) *fzRaw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &fzRaw{t: t, c: c, corr: 100}
}

// fzRequestFrame encodes one request frame (size, header v1 or v2, body).
func fzRequestFrame(corr int32, req kmsg.Request) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	id := "gregor-it-raw"
	b = kbin.AppendNullableString(b, &id)
	if req.IsFlexible() {
		b = append(b, 0) // no tagged fields
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// send writes a request and returns its correlation id.
func (r *fzRaw) send(req kmsg.Request) int32 {
	r.t.Helper()
	r.corr++
	r.write(fzRequestFrame(r.corr, req))
	return r.corr
}

func (r *fzRaw) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write %d bytes: %v", len(b), err)
	}
}

// readFrame reads one response frame (without its size prefix).
func (r *fzRaw) readFrame(timeout time.Duration) ([]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("response frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.c, b); err != nil {
		return nil, err
	}
	return b, nil
}

// fzParseResponse decodes a response frame for req: correlation id, the
// header's tagged fields (flexible responses other than ApiVersions) and
// the body at version.
func fzParseResponse(frame []byte, key, version int16) (int32, kmsg.Response, error) {
	resp := kmsg.ResponseForKey(key)
	resp.SetVersion(version)
	rd := kbin.Reader{Src: frame}
	corr := rd.Int32()
	if resp.IsFlexible() && key != 18 {
		for n := rd.Uvarint(); n > 0 && rd.Ok(); n-- {
			rd.Uvarint()
			rd.Span(int(rd.Uvarint()))
		}
	}
	if !rd.Ok() {
		return corr, nil, fmt.Errorf("response header of %d bytes does not parse", len(frame))
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		return corr, nil, fmt.Errorf("%s v%d response body (%d bytes): %v", kmsg.NameForKey(key), version, len(rd.Src), err)
	}
	return corr, resp, nil
}

// roundTrip sends req and reads its response.
func (r *fzRaw) roundTrip(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	corr := r.send(req)
	frame, err := r.readFrame(20 * time.Second)
	if err != nil {
		r.t.Fatalf("%s v%d: reading response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	gotCorr, resp, err := fzParseResponse(frame, req.Key(), req.GetVersion())
	if err != nil {
		r.t.Fatalf("%v", err)
	}
	if gotCorr != corr {
		r.t.Fatalf("%s: correlation id %d, want %d", kmsg.NameForKey(req.Key()), gotCorr, corr)
	}
	return resp
}

// expectClosed fails the test unless the broker closes the connection
// (EOF or reset) within timeout. If allowAnswer, a response frame is also
// accepted, after which the connection may stay open.
func (r *fzRaw) expectClosed(timeout time.Duration, allowAnswer bool) (answered bool) {
	r.t.Helper()
	frame, err := r.readFrame(timeout)
	switch {
	case err == nil && allowAnswer:
		if len(frame) < 4 {
			r.t.Fatalf("answer frame of %d bytes", len(frame))
		}
		return true
	case err == nil:
		r.t.Fatalf("got a %d-byte response, want the connection closed", len(frame))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), fzIsReset(err):
		return false
	default:
		r.t.Fatalf("want the connection closed within %v, got: %v", timeout, err)
	}
	return false
}

func fzIsReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// fzErrCode names a Kafka error code for messages.
func fzErrCode(code int16) string {
	if code == 0 {
		return "NONE(0)"
	}
	return fmt.Sprintf("%v(%d)", kerr.ErrorForCode(code), code)
}

// fzProducePart is one partition's records in a raw produce request.
type fzProducePart struct {
	topic     string
	topicID   [16]byte // used from v13
	partition int32
	records   []byte
}

// fzProduceRequest builds a Produce request (acks=-1 unless changed).
func fzProduceRequest(version int16, parts ...fzProducePart) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks = -1
	req.TimeoutMillis = 10000
	for _, p := range parts {
		var rt *kmsg.ProduceRequestTopic
		for i := range req.Topics {
			if req.Topics[i].Topic == p.topic {
				rt = &req.Topics[i]
			}
		}
		if rt == nil {
			req.Topics = append(req.Topics, kmsg.NewProduceRequestTopic())
			rt = &req.Topics[len(req.Topics)-1]
			rt.Topic, rt.TopicID = p.topic, p.topicID
		}
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p.partition
		rp.Records = p.records
		rt.Partitions = append(rt.Partitions, rp)
	}
	return req
}

// fzProduceResults maps "topic/partition" to the partition's response.
func fzProduceResults(t testing.TB, resp *kmsg.ProduceResponse) map[string]kmsg.ProduceResponseTopicPartition {
	t.Helper()
	out := make(map[string]kmsg.ProduceResponseTopicPartition)
	for _, rt := range resp.Topics {
		name := rt.Topic
		if resp.Version >= 13 {
			name = fmt.Sprintf("%x", rt.TopicID)
		}
		for _, rp := range rt.Partitions {
			out[fmt.Sprintf("%s/%d", name, rp.Partition)] = rp
		}
	}
	return out
}

// fzRawProduce produces one partition's records with acks=-1 and returns
// the partition's error code and base offset.
func fzRawProduce(t testing.TB, raw *fzRaw, version int16, topic string, partition int32, records []byte) (int16, int64) {
	t.Helper()
	resp := raw.roundTrip(fzProduceRequest(version, fzProducePart{topic: topic, partition: partition, records: records})).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("produce v%d to %s[%d]: response has %d topics %+v", version, topic, partition, len(resp.Topics), resp.Topics)
	}
	if resp.Topics[0].Topic != topic || resp.Topics[0].Partitions[0].Partition != partition {
		t.Fatalf("produce v%d to %s[%d]: answered for %s[%d]", version, topic, partition, resp.Topics[0].Topic, resp.Topics[0].Partitions[0].Partition)
	}
	rp := resp.Topics[0].Partitions[0]
	return rp.ErrorCode, rp.BaseOffset
}

// fzFetchRequest builds a one-partition Fetch (names before v13, ids from v13).
func fzFetchRequest(version int16, topic string, topicID [16]byte, partition int32, offset int64, maxWaitMs int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(version)
	req.MaxWaitMillis = maxWaitMs
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// fzRawFetch fetches one partition and returns its part of the response.
func fzRawFetch(t testing.TB, raw *fzRaw, req *kmsg.FetchRequest) kmsg.FetchResponseTopicPartition {
	t.Helper()
	resp := raw.roundTrip(req).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("fetch v%d: top-level error %s", req.Version, fzErrCode(resp.ErrorCode))
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch v%d: response topics %+v", req.Version, resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

// fzMetadata sends Metadata v12 for one topic on raw: the broker's own
// answer (a kgo client may answer from its cache).
func fzMetadata(raw *fzRaw, topic string) *kmsg.MetadataResponse {
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	return raw.roundTrip(req).(*kmsg.MetadataResponse)
}

// fzTopicID looks a topic's id up with Metadata v12.
func fzTopicID(t testing.TB, raw *fzRaw, topic string) [16]byte {
	t.Helper()
	resp := fzMetadata(raw, topic)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata for %s: %+v", topic, resp.Topics)
	}
	if resp.Topics[0].TopicID == ([16]byte{}) {
		t.Fatalf("metadata for %s: zero topic id", topic)
	}
	return resp.Topics[0].TopicID
}

// fzBrokersNow asks the broker at addr for Metadata now, through a new
// client: kadm's BrokerMetadata answers from its client's cached broker
// list (learned at its first metadata fetch, refreshed every few minutes),
// so a poll for brokers joining a cluster must not use it.
func fzBrokersNow(ctx context.Context, addr string) ([]kmsg.MetadataResponseBroker, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	return resp.Brokers, nil
}

// kgoFailureLog is a kgo logger that keeps the client's last lines at
// info level and prints them if the test fails: the client's view of a
// rare failure (a retry given up, an error it took as fatal) without the
// noise of every passing run.
func kgoFailureLog(t testing.TB, name string) kgo.Opt {
	l := &ringLogger{max: 300}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Logf("%s: kgo's last %d log lines:\n%s", name, len(l.lines), strings.Join(l.lines, "\n"))
	})
	return kgo.WithLogger(l)
}

// ringLogger keeps the last max lines logged; safe for concurrent use.
type ringLogger struct {
	mu    sync.Mutex
	max   int
	lines []string // protected by mu
}

func (l *ringLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (l *ringLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	line := time.Now().Format("15:04:05.000") + " " + level.String() + " " + msg + " " + fmt.Sprint(keyvals...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == l.max {
		l.lines = append(l.lines[:0], l.lines[1:]...)
	}
	l.lines = append(l.lines, line)
}
