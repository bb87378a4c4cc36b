package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Pid is the broker process's id (0 when not running).
func (p *brokerProc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// hbOpenFDs counts the broker's open descriptors.
func hbOpenFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("broker descriptors: %v", err)
	}
	return len(ents)
}

// hbRSS is the broker's resident memory in bytes.
func hbRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("broker status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// hbRecord encodes one record as a producer would, at offset delta i.
func hbRecord(i int, value string) []byte {
	rec := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i), TimestampDelta: int32(i),
		Key: []byte(fmt.Sprint("k", i)), Value: []byte(value)}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	return rec.AppendTo(nil)
}

func hbRecords(n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, hbRecord(i, fmt.Sprint("lie-", i))...)
	}
	return b
}

// hbCompress compresses a records section with the codecs' reference
// libraries, as clients do.
func hbCompress(t testing.TB, codec int, sec []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch codec {
	case 0:
		return sec
	case 1:
		zw := gzip.NewWriter(&buf)
		zw.Write(sec)
		zw.Close()
	case 2:
		return snappy.Encode(nil, sec)
	case 3:
		zw := lz4.NewWriter(&buf)
		zw.Write(sec)
		zw.Close()
	case 4:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(sec)
		zw.Close()
	}
	return buf.Bytes()
}

// hbBatch wraps a (compressed) records section in a magic-2 header that
// declares count records, with a correct length and CRC.
func hbBatch(codec int, body []byte, count int32, firstTs int64) []byte {
	b := make([]byte, 61, 61+len(body))
	be := binary.BigEndian
	be.PutUint32(b[8:], uint32(61-12+len(body)))
	be.PutUint32(b[12:], 0xFFFFFFFF)
	b[16] = 2
	be.PutUint16(b[21:], uint16(codec))
	be.PutUint32(b[23:], uint32(count-1))
	be.PutUint64(b[27:], uint64(firstTs))
	be.PutUint64(b[35:], uint64(firstTs))
	be.PutUint64(b[43:], 0xFFFFFFFFFFFFFFFF)
	be.PutUint16(b[51:], 0xFFFF)
	be.PutUint32(b[53:], 0xFFFFFFFF)
	be.PutUint32(b[57:], uint32(count))
	b = append(b, body...)
	fzFixCRC(b)
	return b
}

// hbBomb is a batch of one record whose value is size zero bytes,
// compressed by a streaming encoder (the frames declare no size).
func hbBomb(t testing.TB, codec int, size int64, now int64) []byte {
	t.Helper()
	prefix := []byte{0}                      // attributes
	prefix = binary.AppendVarint(prefix, 0)  // timestamp delta
	prefix = binary.AppendVarint(prefix, 0)  // offset delta
	prefix = binary.AppendVarint(prefix, -1) // key null
	prefix = binary.AppendVarint(prefix, size)
	suffix := []byte{0} // no headers
	bodyLen := int64(len(prefix)) + size + int64(len(suffix))
	var buf bytes.Buffer
	var zw io.WriteCloser
	switch codec {
	case 1:
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	case 4:
		w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		zw = w
	default:
		t.Fatalf("no bomb for codec %d", codec)
	}
	zw.Write(binary.AppendVarint(nil, bodyLen))
	zw.Write(prefix)
	zeros := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(zeros)) {
		zw.Write(zeros[:min(left, int64(len(zeros)))])
	}
	zw.Write(suffix)
	zw.Close()
	return hbBatch(codec, buf.Bytes(), 1, now)
}

// TestHostileBatches sends batches that lie about their records, over a
// raw socket, and checks that each is refused with Kafka's error, that
// nothing is appended, that the broker's descriptors and memory do not
// grow with the number of refusals, and that real clients still read
// every real record around them.
func TestHostileBatches(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 4*time.Minute)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "hostile")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}

	// Real records before, one batch per codec.
	var want []string
	produce := func(tag string) {
		for ci, codec := range codecs {
			cl := fzClient(t, p.Addr, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
			var recs []*kgo.Record
			for i := range 20 {
				v := fmt.Sprintf("%s-codec%d-%d %s", tag, ci, i, strings.Repeat("abc", i))
				recs = append(recs, &kgo.Record{Value: []byte(v)})
				want = append(want, v)
			}
			fzProduceAsync(ctx, t, cl, recs)
			cl.Close()
		}
	}
	produce("before")
	end := fzEndOffsets(ctx, t, adm, topic)[0]

	now := time.Now().UnixMilli()
	one := hbRecord(0, "only")
	three := hbRecords(3)
	recs := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	type hostile struct {
		name    string
		version int16
		batch   []byte
		want    *kerr.Error
		record  int32 // the record RecordErrors names, -1 for none
	}
	cases := []hostile{
		{"count 2^30, one record", 9, hbBatch(0, one, 1<<30, now), kerr.InvalidRecord, -1},
		{"count one too high", 9, hbBatch(0, three, 4, now), kerr.InvalidRecord, -1},
		{"count one too low", 9, hbBatch(0, three, 2, now), kerr.InvalidRecord, -1},
		{"deltas out of order", 9, hbBatch(0, recs(hbRecord(0, "a"), hbRecord(2, "b"), hbRecord(1, "c")), 3, now), kerr.InvalidRecord, 1},
		{"record length past the end", 9, hbBatch(0, recs(hbRecord(0, "a"), []byte{200, 1, 0, 0, 2, 1, 1, 0}), 2, now), kerr.InvalidRecord, 1},
		{"record length short", 9, hbBatch(0, recs(hbRecord(0, "a"), []byte{10, 0, 0, 2, 1, 2, 'v', 0}), 2, now), kerr.InvalidRecord, 1},
		{"headers count lies", 9, hbBatch(0, recs(hbRecord(0, "a"), []byte{12, 0, 0, 2, 1, 1, 0xc8, 0x01}), 2, now), kerr.InvalidRecord, 1},
		{"length varint overflows", 9, hbBatch(0, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1, now), kerr.InvalidRecord, 0},
		{"bytes after the last record", 9, hbBatch(0, recs(three, []byte{0}), 3, now), kerr.InvalidRecord, -1},
		{"base offset not 0", 9, func() []byte { b := hbBatch(0, three, 3, now); binary.BigEndian.PutUint64(b, 7); return b }(), kerr.InvalidRecord, -1},
		{"two hours ahead", 9, hbBatch(0, one, 1, now+2*3600*1000), kerr.InvalidTimestamp, 0},
		{"zstd before v7", 6, hbBatch(4, hbCompress(t, 4, three), 3, now), kerr.UnsupportedCompressionType, -1},
		{"gzip garbage", 9, hbBatch(1, append(hbCompress(t, 1, three)[:10], bytes.Repeat([]byte{0x5a}, 40)...), 3, now), kerr.CorruptMessage, -1},
		{"lz4 cut", 9, func() []byte { c := hbCompress(t, 3, three); return hbBatch(3, c[:len(c)-6], 3, now) }(), kerr.CorruptMessage, -1},
	}
	for codec := 1; codec <= 4; codec++ {
		cases = append(cases,
			hostile{fmt.Sprintf("codec %d: count 2^30", codec), 9, hbBatch(codec, hbCompress(t, codec, one), 1<<30, now), kerr.InvalidRecord, -1},
			hostile{fmt.Sprintf("codec %d: count too high", codec), 9, hbBatch(codec, hbCompress(t, codec, three), 4, now), kerr.InvalidRecord, -1},
			hostile{fmt.Sprintf("codec %d: deltas", codec), 9, hbBatch(codec, hbCompress(t, codec, recs(hbRecord(1, "a"), hbRecord(0, "b"))), 2, now), kerr.InvalidRecord, 0},
			hostile{fmt.Sprintf("codec %d: length past the end", codec), 9, hbBatch(codec, hbCompress(t, codec, recs(hbRecord(0, "a"), []byte{200, 1, 0, 0, 2, 1, 1, 0})), 2, now), kerr.InvalidRecord, 1},
		)
	}

	raw := fzDial(t, p.Addr)
	send := func(c hostile) {
		t.Helper()
		resp := raw.roundTrip(fzProduceRequest(c.version, fzProducePart{topic: topic, partition: 0, records: c.batch})).(*kmsg.ProduceResponse)
		rp := resp.Topics[0].Partitions[0]
		if rp.ErrorCode != c.want.Code {
			t.Fatalf("%s: %s, want %s", c.name, fzErrCode(rp.ErrorCode), fzErrCode(c.want.Code))
		}
		if c.version >= 8 && (rp.ErrorMessage == nil || *rp.ErrorMessage == "") {
			t.Errorf("%s: no error message", c.name)
		}
		if c.record >= 0 && (len(rp.ErrorRecords) != 1 || rp.ErrorRecords[0].RelativeOffset != c.record) {
			t.Errorf("%s: record errors %+v, want record %d", c.name, rp.ErrorRecords, c.record)
		}
	}

	// One round first (connections, pools and segments settle), then
	// measure across many.
	for _, c := range cases {
		send(c)
	}
	pid := p.Pid()
	fdsBefore, rssBefore := hbOpenFDs(t, pid), hbRSS(t, pid)
	const rounds = 20
	for range rounds {
		for _, c := range cases {
			send(c)
		}
	}
	// Decompression bombs: 300 MiB of zeros each, over the 256 MiB bound.
	start := time.Now()
	for _, codec := range []int{4, 1} {
		bomb := hbBomb(t, codec, 300<<20, now)
		t.Logf("codec %d bomb: %d bytes", codec, len(bomb))
		for range 2 {
			send(hostile{fmt.Sprintf("codec %d bomb", codec), 9, bomb, kerr.InvalidRecord, -1})
		}
	}
	t.Logf("4 bombs refused in %v", time.Since(start))
	fdsAfter, rssAfter := hbOpenFDs(t, pid), hbRSS(t, pid)
	t.Logf("%d bad requests: descriptors %d -> %d, VmRSS %d -> %d MiB", rounds*len(cases)+4, fdsBefore, fdsAfter, rssBefore>>20, rssAfter>>20)
	if fdsAfter > fdsBefore+5 {
		t.Errorf("descriptors grew from %d to %d over %d refused batches", fdsBefore, fdsAfter, rounds*len(cases))
	}
	if rssAfter > rssBefore+160<<20 {
		t.Errorf("resident memory grew from %d to %d MiB", rssBefore>>20, rssAfter>>20)
	}
	if got := fzEndOffsets(ctx, t, adm, topic)[0]; got != end {
		t.Fatalf("end offset %d after the refusals, want %d: something was appended", got, end)
	}

	// Real records after, and every real record reads back, through
	// franz-go and kcat.
	produce("after")
	got := fzConsume(ctx, t, p.Addr, topic, len(want))
	for i, r := range got {
		if string(r.Value) != want[i] {
			t.Fatalf("franz-go record %d: %q, want %q", i, r.Value, want[i])
		}
	}
	out, _ := kcatRun(ctx, t, "", "-C", "-b", p.Addr, "-t", topic, "-e", "-q", "-f", "%s\n")
	kcatCompareLines(t, "kcat -C", kcatLines(out), want, "")
	fzCheckLogs(t, p)
}
