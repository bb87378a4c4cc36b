package integration

// Idempotent producers: InitProducerId hands out producer ids, and Produce
// of a batch carrying a producer id, epoch and base sequence is appended
// at most once per partition (Kafka semantics): retries of the last five
// batches answer with the original offset, gaps and stale sequences get
// OUT_OF_ORDER_SEQUENCE_NUMBER, stale epochs INVALID_PRODUCER_EPOCH. The
// state must survive SIGKILL and SIGTERM restarts and a leader failover,
// and a real franz-go producer whose connections are cut after the broker
// appended (the ack never arrives, the client retries) must leave every
// record in the log exactly once, in order.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka error codes the idempotent producer rules answer with.
const (
	idemOutOfOrder   int16 = 45 // OUT_OF_ORDER_SEQUENCE_NUMBER
	idemInvalidEpoch int16 = 47 // INVALID_PRODUCER_EPOCH
)

// idemProduceVersion is the Produce version of the raw requests:
// flexible, topics by name.
const idemProduceVersion int16 = 9

// idemRetriable are produce errors a client retries as they are: the
// partition has no leader (yet), or the write was not committed in time.
// Resending the same idempotent batch after one of them is always safe.
var idemRetriable = []int16{3, 5, 6, 7, 19, 20}

// idemSent is one idempotent batch a test sends, possibly several times.
type idemSent struct {
	pid    int64
	epoch  int16
	seq    int32
	values []string
	raw    []byte
	offset int64 // where the broker first appended it, -1 until then
}

// idemNewBatch builds an uncompressed batch of the given values carrying a
// producer id, epoch and base sequence: fzBatch's encoding with bytes
// 43..56 of the header set and the CRC-32C recomputed.
func idemNewBatch(pid int64, epoch int16, seq int32, values ...string) *idemSent {
	recs := make([]fzRecord, len(values))
	for i, v := range values {
		recs[i] = fzRecord{key: []byte("k-" + v), value: []byte(v), tsDelta: int64(i)}
	}
	b := fzBatch(time.Now().UnixMilli(), recs...)
	be := binary.BigEndian
	be.PutUint64(b[43:], uint64(pid))
	be.PutUint16(b[51:], uint16(epoch))
	be.PutUint32(b[53:], uint32(seq))
	fzFixCRC(b)
	return &idemSent{pid: pid, epoch: epoch, seq: seq, values: values, raw: b, offset: -1}
}

// idemValues names n records of one batch after the batch's identity.
func idemValues(tag string, epoch int16, seq int32, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-e%d-s%d", tag, epoch, int(seq)+i)
	}
	return out
}

// idemInitPID asks for a producer id with a null transactional id.
func idemInitPID(t testing.TB, raw *fzRaw, version int16, pid int64, epoch int16) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(version)
	req.TransactionalID = nil
	req.TransactionTimeoutMillis = 60000
	req.ProducerID, req.ProducerEpoch = pid, epoch
	resp := raw.roundTrip(req).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId v%d (null transactional id, producer %d epoch %d): %s, want NONE", version, pid, epoch, fzErrCode(resp.ErrorCode))
	}
	if resp.ProducerID < 0 || resp.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId v%d: producer id %d epoch %d, want an id >= 0 and epoch 0", version, resp.ProducerID, resp.ProducerEpoch)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// idemPart drives one partition with raw idempotent produces and keeps
// the log the test expects: every batch appended once, in order.
type idemPart struct {
	t     *testing.T
	topic string
	part  int32
	// conn returns the connection to the partition's leader; fresh is set
	// after a retriable error, when the leader may have moved.
	conn func(fresh bool) *fzRaw
	log  []*idemSent
}

// end is the offset the next appended record gets.
func (p *idemPart) end() int64 {
	n := int64(0)
	for _, b := range p.log {
		n += int64(len(b.values))
	}
	return n
}

// send produces b (acks=-1), resending it while the error is retriable,
// and returns the final error code and base offset.
func (p *idemPart) send(what string, b *idemSent) (int16, int64) {
	p.t.Helper()
	var code int16
	var off int64
	fresh := false
	fzWaitFor(p.t, 30*time.Second, fmt.Sprintf("%s: a non-retriable answer to producing %s[%d]", what, p.topic, p.part), func() error {
		code, off = fzRawProduce(p.t, p.conn(fresh), idemProduceVersion, p.topic, p.part, b.raw)
		if slices.Contains(idemRetriable, code) {
			fresh = true
			return fmt.Errorf("last answer %s", fzErrCode(code))
		}
		return nil
	})
	return code, off
}

// appended sends a batch that must be appended at the end of the log.
func (p *idemPart) appended(what string, b *idemSent) {
	p.t.Helper()
	want := p.end()
	code, off := p.send(what, b)
	if code != 0 || off != want {
		p.t.Fatalf("%s: producer %d epoch %d seq %d (%d records) to %s[%d]: %s at offset %d, want NONE at offset %d (appended)",
			what, b.pid, b.epoch, b.seq, len(b.values), p.topic, p.part, fzErrCode(code), off, want)
	}
	b.offset = off
	p.log = append(p.log, b)
}

// duplicate resends an appended batch, which must not be appended again
// and must be answered with its original offset.
func (p *idemPart) duplicate(what string, b *idemSent) {
	p.t.Helper()
	if b.offset < 0 {
		p.t.Fatalf("%s: test bug: the batch was never appended", what)
	}
	code, off := p.send(what, b)
	if code != 0 || off != b.offset {
		p.t.Fatalf("%s: retry of producer %d epoch %d seq %d (%d records) to %s[%d]: %s at offset %d, want NONE at the original offset %d (duplicate)",
			what, b.pid, b.epoch, b.seq, len(b.values), p.topic, p.part, fzErrCode(code), off, b.offset)
	}
}

// rejected sends a batch that must be refused with code.
func (p *idemPart) rejected(what string, b *idemSent, want int16) {
	p.t.Helper()
	code, off := p.send(what, b)
	if code != want || off != -1 {
		p.t.Fatalf("%s: producer %d epoch %d seq %d (%d records) to %s[%d]: %s at offset %d, want %s at offset -1",
			what, b.pid, b.epoch, b.seq, len(b.values), p.topic, p.part, fzErrCode(code), off, fzErrCode(want))
	}
}

// idemStored is one batch as Fetch returns it.
type idemStored struct {
	base   int64
	pid    int64
	epoch  int16
	seq    int32
	values []string
}

// idemReadLog fetches a partition from offset 0 to its high watermark and
// decodes every (uncompressed) batch.
func idemReadLog(t testing.TB, raw *fzRaw, topic string, part int32) ([]idemStored, int64) {
	t.Helper()
	var out []idemStored
	next, hw := int64(0), int64(-1)
	for hw < 0 || next < hw {
		fp := fzRawFetch(t, raw, fzFetchRequest(12, topic, [16]byte{}, part, next, 0))
		if fp.ErrorCode != 0 {
			t.Fatalf("fetch %s[%d] from %d: %s", topic, part, next, fzErrCode(fp.ErrorCode))
		}
		hw = fp.HighWatermark
		b := fp.RecordBatches
		progressed := false
		for len(b) >= 12 {
			size := 12 + int(binary.BigEndian.Uint32(b[8:12]))
			if size > len(b) {
				break // a partial batch at the end of the response
			}
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b[:size]); err != nil {
				t.Fatalf("%s[%d]: batch at %d does not decode: %v", topic, part, int64(binary.BigEndian.Uint64(b)), err)
			}
			b = b[size:]
			if rb.Attributes&0x7 != 0 {
				t.Fatalf("%s[%d]: batch at %d is compressed (attributes %#x); the test only sends uncompressed batches", topic, part, rb.FirstOffset, rb.Attributes)
			}
			if rb.FirstOffset+int64(rb.LastOffsetDelta) < next {
				continue
			}
			st := idemStored{base: rb.FirstOffset, pid: rb.ProducerID, epoch: rb.ProducerEpoch, seq: rb.FirstSequence}
			recs := rb.Records
			for range rb.NumRecords {
				l, n := binary.Varint(recs)
				if n <= 0 || int(l) < 0 || n+int(l) > len(recs) {
					t.Fatalf("%s[%d]: batch at %d: bad record length", topic, part, rb.FirstOffset)
				}
				var r kmsg.Record
				if err := r.ReadFrom(recs[:n+int(l)]); err != nil {
					t.Fatalf("%s[%d]: batch at %d: record does not decode: %v", topic, part, rb.FirstOffset, err)
				}
				recs = recs[n+int(l):]
				st.values = append(st.values, string(r.Value))
			}
			out = append(out, st)
			next = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
			progressed = true
		}
		if !progressed && next < hw {
			t.Fatalf("%s[%d]: fetch from %d (high watermark %d) returned no whole batch", topic, part, next, hw)
		}
	}
	return out, hw
}

// check reads the partition and fails unless it holds exactly the
// expected batches: each appended batch once, at its offset, with its
// producer id, epoch, sequence and records.
func (p *idemPart) check(what string, raw *fzRaw) {
	p.t.Helper()
	got, hw := idemReadLog(p.t, raw, p.topic, p.part)
	describe := func(bs []idemStored) string {
		var s []string
		for _, b := range bs {
			s = append(s, fmt.Sprintf("@%d pid %d e%d s%d %v", b.base, b.pid, b.epoch, b.seq, b.values))
		}
		return strings.Join(s, "\n  ")
	}
	var want []idemStored
	for _, b := range p.log {
		want = append(want, idemStored{base: b.offset, pid: b.pid, epoch: b.epoch, seq: b.seq, values: b.values})
	}
	ok := hw == p.end() && len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.base == w.base && g.pid == w.pid && g.epoch == w.epoch && g.seq == w.seq && slices.Equal(g.values, w.values)
	}
	if !ok {
		p.t.Fatalf("%s: %s[%d] holds (high watermark %d):\n  %s\nwant (high watermark %d):\n  %s",
			what, p.topic, p.part, hw, describe(got), p.end(), describe(want))
	}
}

// TestIdempotentProduceRaw checks every sequence and epoch rule with
// hand-built batches on one broker, then that the state survives SIGKILL
// and SIGTERM restarts. It runs the same scenario on two topics at once:
// one whose log stays in one segment, and one that rolls a segment at
// about every batch, so that the state comes back from a snapshot taken at
// a roll plus the batches after it.
func TestIdempotentProduceRaw(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, p.Addr)
	plainTopic := fzTopic(t, "idem")
	rollTopic := fzTopic(t, "idem-roll")
	fzCreateTopic(ctx, t, adm, plainTopic, 2, nil)
	fzCreateTopic(ctx, t, adm, rollTopic, 2, map[string]*string{"segment.bytes": kmsg.StringPtr("100")})
	raw := fzDial(t, p.Addr)

	// Fresh producer ids on every call and version; epoch 0.
	seen := map[int64]int16{}
	var ids []int64
	for v := int16(0); v <= 5; v++ {
		for range 2 {
			id, _ := idemInitPID(t, raw, v, -1, -1)
			if prev, dup := seen[id]; dup {
				t.Fatalf("InitProducerId v%d returned producer id %d, already returned by v%d", v, id, prev)
			}
			seen[id] = v
			ids = append(ids, id)
		}
	}
	// A null transactional id gets a new id even when v3+ names an
	// existing producer id and epoch (Kafka never bumps an idempotent
	// producer's epoch on the broker side).
	if id, _ := idemInitPID(t, raw, 4, ids[0], 0); id == ids[0] {
		t.Fatalf("InitProducerId v4 (null transactional id) naming producer %d epoch 0 returned that id again, want a fresh one", ids[0])
	} else if prev, dup := seen[id]; dup {
		t.Fatalf("InitProducerId v4 naming producer %d epoch 0 returned producer id %d, already returned by v%d", ids[0], id, prev)
	}
	t.Logf("producer ids: %v", ids)

	conn := func(bool) *fzRaw { return raw }
	var runs []*idemRawRun
	for i, topic := range []string{plainTopic, rollTopic} {
		r := &idemRawRun{
			part0: &idemPart{t: t, topic: topic, part: 0, conn: conn},
			part1: &idemPart{t: t, topic: topic, part: 1, conn: conn},
			// Other producers on each topic: the state is per partition
			// anyway, this keeps the topics' stories apart.
			p1: ids[3*i], p2: ids[3*i+1], p3: ids[3*i+2],
		}
		r.rules()
		r.part0.check("before restarts", raw)
		r.part1.check("before restarts", raw)
		runs = append(runs, r)
	}
	if segs := fzLogFiles(t, fzPartitionDir(p, rollTopic, 0)); len(segs) < 8 {
		t.Fatalf("%s[0] has %d segments %v, want about one per batch", rollTopic, len(segs), segs)
	} else {
		t.Logf("%s[0] has %d segments before the restarts", rollTopic, len(segs))
	}

	for _, how := range []string{"SIGKILL", "SIGTERM"} {
		if how == "SIGKILL" {
			p.Kill()
		} else {
			p.Stop()
			if code := p.ExitCode(); code != 0 {
				t.Fatalf("SIGTERM: exit code %d, want 0", code)
			}
		}
		p.Restart()
		raw = fzDial(t, p.Addr)
		for _, r := range runs {
			r.afterRestart("after a "+how+" restart: ", raw)
		}
	}
	for _, r := range runs {
		r.part0.check("at the end", raw)
		r.part1.check("at the end", raw)
	}
	fzCheckLogs(t, p)
}

// idemRawRun is TestIdempotentProduceRaw's scenario on one topic:
// producers p1 and p2 on partition 0, p1 and p3 on partition 1.
type idemRawRun struct {
	part0, part1 *idemPart
	p1, p2, p3   int64
	// Batches the restarts retry: p1's first of epoch 1 and the last
	// batch of each producer and partition.
	c0, lastP1, lastP2, lastPart1, lastP3 *idemSent
}

func (r *idemRawRun) batch(pid int64, tag string, epoch int16, seq int32, n int) *idemSent {
	return idemNewBatch(pid, epoch, seq, idemValues(tag, epoch, seq, n)...)
}

// rules goes through every sequence and epoch rule.
func (r *idemRawRun) rules() {
	part0, part1, p1, p2, b := r.part0, r.part1, r.p1, r.p2, r.batch

	// Sequences within epoch 0.
	b0 := b(p1, "p1", 0, 0, 2)
	part0.appended("first batch of producer 1", b0)
	b1 := b(p1, "p1", 0, 2, 1)
	part0.appended("next sequence", b1)
	b2 := b(p1, "p1", 0, 3, 3)
	part0.appended("next sequence", b2)
	part0.duplicate("retry of the last batch", b2)
	part0.duplicate("retry of the next to last batch", b1)
	part0.duplicate("retry of the first batch", b0)
	part0.rejected("gap in the sequence (last 5, sent 7)", b(p1, "p1", 0, 7, 1), idemOutOfOrder)
	part0.rejected("gap with two records (last 5, sent 7..8)", b(p1, "p1", 0, 7, 2), idemOutOfOrder)
	part0.rejected("retry of the last batch with one more record (same first, other last sequence)", b(p1, "p1", 0, 3, 4), idemOutOfOrder)
	part0.rejected("retry of the last batch with one record less", b(p1, "p1", 0, 3, 2), idemOutOfOrder)
	part0.rejected("a sequence inside the last batch", b(p1, "p1", 0, 4, 2), idemOutOfOrder)
	part0.duplicate("retry of the last batch after rejected ones", b2)
	b3 := b(p1, "p1", 0, 6, 1)
	part0.appended("next sequence after rejected ones", b3)
	b4 := b(p1, "p1", 0, 7, 2)
	part0.appended("next sequence", b4)
	b5 := b(p1, "p1", 0, 9, 1)
	part0.appended("next sequence", b5)
	b6 := b(p1, "p1", 0, 10, 1)
	part0.appended("next sequence", b6)
	// Only the last five batches (b2..b6) are remembered.
	part0.rejected("retry of the 7th last batch (no longer remembered)", b0, idemOutOfOrder)
	part0.rejected("retry of the 6th last batch (no longer remembered)", b1, idemOutOfOrder)
	part0.duplicate("retry of the 5th last batch", b2)
	part0.duplicate("retry of the 3rd last batch", b4)
	part0.duplicate("retry of the last batch", b6)
	// A wrapped-around sequence is not the next one either.
	part0.rejected("sequence 0 in the same epoch", b(p1, "p1", 0, 0, 1), idemOutOfOrder)

	// Producer 2 on the same partition is independent, and an unknown
	// producer starts at any sequence.
	q0 := b(p2, "p2", 0, 42, 2)
	part0.appended("first batch of producer 2 at sequence 42", q0)
	part0.duplicate("producer 1's last batch after producer 2 wrote", b6)
	q1 := b(p2, "p2", 0, 44, 1)
	part0.appended("producer 2's next sequence", q1)
	part0.rejected("producer 2 gap", b(p2, "p2", 0, 46, 1), idemOutOfOrder)
	part0.duplicate("producer 2 retry", q0)
	// Producer 1 on another partition is unknown there.
	s0 := b(p1, "p1-part1", 0, 5, 2)
	part1.appended("producer 1's first batch on partition 1 at sequence 5", s0)
	part1.duplicate("retry on partition 1", s0)
	part1.rejected("gap on partition 1", b(p1, "p1-part1", 0, 8, 1), idemOutOfOrder)
	s1 := b(p1, "p1-part1", 0, 7, 1)
	part1.appended("next sequence on partition 1", s1)

	// Sequence numbers wrap from 2147483647 to 0, inside a batch too.
	w0 := b(r.p3, "p3", 0, math.MaxInt32-1, 1)
	part1.appended("producer 3's first batch at sequence 2147483646", w0)
	w1 := b(r.p3, "p3", 0, math.MaxInt32, 3)
	part1.appended("a batch of sequences 2147483647, 0 and 1", w1)
	part1.duplicate("retry of the batch that wraps", w1)
	part1.rejected("sequence 0 (inside the batch that wrapped)", b(r.p3, "p3", 0, 0, 2), idemOutOfOrder)
	part1.rejected("sequence 3 after the wrap (a gap)", b(r.p3, "p3", 0, 3, 1), idemOutOfOrder)
	w2 := b(r.p3, "p3", 0, 2, 1)
	part1.appended("sequence 2 after the wrap", w2)
	part1.duplicate("retry of the batch before the wrap", w0)

	// Epochs: a higher epoch must start at 0, then the older epoch is fenced.
	part0.rejected("epoch 1 at sequence 5", b(p1, "p1", 1, 5, 1), idemOutOfOrder)
	part0.rejected("epoch 1 at sequence 11 (the next of epoch 0)", b(p1, "p1", 1, 11, 1), idemOutOfOrder)
	part0.duplicate("epoch 0 retry after the refused epoch 1 batches", b6)
	c0 := b(p1, "p1", 1, 0, 2)
	part0.appended("epoch 1 at sequence 0", c0)
	part0.rejected("epoch 0, next sequence, after epoch 1 started", b(p1, "p1", 0, 11, 1), idemInvalidEpoch)
	part0.rejected("epoch 0 retry of its last batch after epoch 1 started", b6, idemInvalidEpoch)
	part0.rejected("epoch 0 at sequence 0 after epoch 1 started", b(p1, "p1", 0, 0, 1), idemInvalidEpoch)
	part0.duplicate("epoch 1 retry", c0)
	part0.rejected("epoch 1 gap", b(p1, "p1", 1, 3, 1), idemOutOfOrder)
	c1 := b(p1, "p1", 1, 2, 3)
	part0.appended("epoch 1 next sequence", c1)
	// The epoch of one partition does not fence another: partition 1
	// still takes producer 1's epoch 0.
	s2 := b(p1, "p1-part1", 0, 8, 1)
	part1.appended("epoch 0 next sequence on partition 1", s2)

	// Batches without a producer id are appended every time.
	plain := fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("plain")})
	for i := range 2 {
		pb := &idemSent{pid: -1, epoch: -1, seq: -1, values: []string{"plain"}, raw: plain, offset: -1}
		part0.appended(fmt.Sprintf("non-idempotent batch, copy %d", i), pb)
	}
	part0.duplicate("epoch 1 retry after non-idempotent batches", c1)
	r.c0, r.lastP1, r.lastP2, r.lastPart1, r.lastP3 = c0, c1, q1, s2, w2
}

// afterRestart checks that the state came back before anything new is
// produced, then carries on producing.
func (r *idemRawRun) afterRestart(what string, raw *fzRaw) {
	part0, part1, p1, p2, b := r.part0, r.part1, r.p1, r.p2, r.batch
	part0.duplicate(what+"retry of producer 1's last batch", r.lastP1)
	part0.duplicate(what+"retry of producer 2's last batch", r.lastP2)
	part1.duplicate(what+"retry of producer 1's last batch on partition 1", r.lastPart1)
	part1.duplicate(what+"retry of producer 3's last batch (after its sequence wrapped)", r.lastP3)
	part0.duplicate(what+"retry of producer 1's first batch of epoch 1", r.c0)
	part0.rejected(what+"epoch 0 of producer 1", b(p1, "p1", 0, 11, 1), idemInvalidEpoch)
	part0.rejected(what+"gap in producer 1's epoch 1", b(p1, "p1", 1, 40, 1), idemOutOfOrder)
	part0.rejected(what+"gap in producer 2's sequence", b(p2, "p2", 0, r.lastP2.seq+5, 1), idemOutOfOrder)
	part1.rejected(what+"gap on partition 1", b(p1, "p1-part1", 0, 30, 1), idemOutOfOrder)
	part0.check(what+"nothing appended by the retries", raw)
	part1.check(what+"nothing appended by the retries", raw)

	next := b(p1, "p1", 1, r.lastP1.seq+int32(len(r.lastP1.values)), 2)
	part0.appended(what+"producer 1's next sequence", next)
	part0.duplicate(what+"retry of that batch", next)
	nextP2 := b(p2, "p2", 0, r.lastP2.seq+int32(len(r.lastP2.values)), 1)
	part0.appended(what+"producer 2's next sequence", nextP2)
	nextPart1 := b(p1, "p1-part1", 0, r.lastPart1.seq+int32(len(r.lastPart1.values)), 3)
	part1.appended(what+"next sequence on partition 1", nextPart1)
	nextP3 := b(r.p3, "p3", 0, r.lastP3.seq+int32(len(r.lastP3.values)), 1)
	part1.appended(what+"producer 3's next sequence", nextP3)
	r.lastP1, r.lastP2, r.lastPart1, r.lastP3 = next, nextP2, nextPart1, nextP3
}

// idemProxy forwards Kafka connections to a broker and cuts some of them
// where it hurts an idempotent producer most: every cutEvery-th Produce
// response (counted over all connections, at most maxCuts times) is
// dropped and both sides of its connection are closed. The broker has by
// then handled the request, so the client retries a batch that is in the
// log already.
type idemProxy struct {
	ln       net.Listener
	target   string
	cutEvery int
	maxCuts  int
	wg       sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	conns     map[net.Conn]bool
	produces  int // Produce responses from the broker
	cuts      int // connections cut in place of forwarding one
	ackedCuts int // cuts whose dropped response acknowledged every partition
	inFlight  int // Produce requests still unanswered on the connections cut
}

func startIdemProxy(t *testing.T, listen, target string, cutEvery, maxCuts int) *idemProxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("proxy listen on %s: %v", listen, err)
	}
	p := &idemProxy{ln: ln, target: target, cutEvery: cutEvery, maxCuts: maxCuts, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *idemProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // pause before accepting again
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track remembers c so close can end it; false once the proxy is closed.
func (p *idemProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *idemProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

// idemReadFrame reads one size-prefixed Kafka frame, prefix included.
func idemReadFrame(c net.Conn) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, 4+n)
	copy(b, size[:])
	if _, err := io.ReadFull(c, b[4:]); err != nil {
		return nil, err
	}
	return b, nil
}

func (p *idemProxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client) || !p.track(server) {
		p.untrack(client, server)
		return
	}
	defer p.untrack(client, server)

	// The key and version of each request in flight, by correlation id.
	type reqInfo struct{ key, version int16 }
	var mu sync.Mutex
	pending := map[int32]reqInfo{}
	upDone := make(chan struct{})
	go func() { // client to broker
		defer close(upDone)
		defer server.Close()
		for {
			frame, err := idemReadFrame(client)
			if err != nil || len(frame) < 12 {
				return
			}
			be := binary.BigEndian
			mu.Lock()
			pending[int32(be.Uint32(frame[8:]))] = reqInfo{int16(be.Uint16(frame[4:])), int16(be.Uint16(frame[6:]))}
			mu.Unlock()
			if _, err := server.Write(frame); err != nil {
				return
			}
		}
	}()
	for { // broker to client
		frame, err := idemReadFrame(server)
		if err != nil {
			break
		}
		corr := int32(binary.BigEndian.Uint32(frame[4:]))
		mu.Lock()
		info, ok := pending[corr]
		delete(pending, corr)
		mu.Unlock()
		if ok && info.key == 0 && p.cut(frame[4:], info.version) {
			mu.Lock()
			for _, r := range pending {
				if r.key == 0 {
					p.mu.Lock()
					p.inFlight++
					p.mu.Unlock()
				}
			}
			mu.Unlock()
			break
		}
		if _, err := client.Write(frame); err != nil {
			break
		}
	}
	client.Close()
	server.Close()
	<-upDone
}

// cut counts a Produce response and says whether to drop it and cut the
// connection instead.
func (p *idemProxy) cut(frame []byte, version int16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.produces++
	if p.produces%p.cutEvery != 0 || p.cuts >= p.maxCuts {
		return false
	}
	p.cuts++
	if _, resp, err := fzParseResponse(frame, 0, version); err == nil {
		topics := resp.(*kmsg.ProduceResponse).Topics
		acked := len(topics) > 0
		for _, rt := range topics {
			for _, rp := range rt.Partitions {
				acked = acked && rp.ErrorCode == 0 && rp.BaseOffset >= 0
			}
		}
		if acked {
			p.ackedCuts++
		}
	}
	return true
}

func (p *idemProxy) counts() (produces, cuts, ackedCuts, inFlight int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.produces, p.cuts, p.ackedCuts, p.inFlight
}

func (p *idemProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestIdempotentProducerConnectionCut: a franz-go idempotent producer
// reaches the broker only through a proxy that cuts connections after the
// broker appended a batch and before the client saw the ack. Every record
// must be acknowledged, and the log must hold each exactly once, at its
// acknowledged offset, in the order it was produced.
func TestIdempotentProducerConnectionCut(t *testing.T) {
	proxyAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := newBrokerProc(t, "--advertise", proxyAddr)
	proxy := startIdemProxy(t, proxyAddr, b.Addr, 3, 25)
	b.start()
	ctx := testContext(t, 90*time.Second)

	adm := fzAdmin(t, proxyAddr)
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if host, port := splitHostPort(t, proxyAddr); len(md.Brokers) != 1 || md.Brokers[0].Host != host || md.Brokers[0].Port != port {
		t.Fatalf("Metadata brokers %+v, want only the proxy %s", md.Brokers, proxyAddr)
	}
	topic := fzTopic(t, "idem")
	const parts, n = 3, 2000
	fzCreateTopic(ctx, t, adm, topic, parts, nil)

	prod, err := kgo.NewClient(
		kgo.SeedBrokers(proxyAddr),
		kgo.ClientID("gregor-it-idempotent"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1024),
		kgo.MaxBufferedRecords(600),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.RecordDeliveryTimeout(60*time.Second),
		kgo.ProduceRequestTimeout(10*time.Second),
		kgo.DialTimeout(5*time.Second),
		kgo.RetryTimeout(30*time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(100*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)

	// Values are unique and padded so batches hold a few dozen records.
	recs := make([]*kgo.Record, n)
	byPart := make([][]*kgo.Record, parts)
	for i := range recs {
		part := int32(i % parts)
		recs[i] = &kgo.Record{Topic: topic, Partition: part,
			Value: fmt.Appendf(nil, "p%d-%05d-%s", part, len(byPart[part]), strings.Repeat("x", 40))}
		byPart[part] = append(byPart[part], recs[i])
	}
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	for _, r := range recs {
		wg.Add(1)
		prod.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", r.Value[:8], err))
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	produces, cuts, ackedCuts, inFlight := proxy.counts()
	t.Logf("%d Produce responses through the proxy, %d connections cut in place of one (%d of them acknowledged every partition; %d more Produce requests were in flight on them)",
		produces, cuts, ackedCuts, inFlight)
	if len(errs) > 0 {
		t.Fatalf("%d of %d records not acknowledged; first: %v", len(errs), n, errs[0])
	}
	if ackedCuts == 0 {
		t.Fatalf("the proxy never dropped a successful Produce response (%d responses, %d cuts): the test proved nothing", produces, cuts)
	}
	prod.Close()

	// Acknowledged offsets are dense and in produce order.
	for part, rs := range byPart {
		for j, r := range rs {
			if r.Offset != int64(j) {
				t.Fatalf("%s[%d]: record %d (%s) acknowledged at offset %d, want %d", topic, part, j, r.Value[:8], r.Offset, j)
			}
		}
	}
	// The log holds exactly the produced records: nothing twice.
	ends := fzEndOffsets(ctx, t, adm, topic)
	for part, rs := range byPart {
		if ends[int32(part)] != int64(len(rs)) {
			t.Errorf("%s[%d]: end offset %d, want %d (one per produced record)", topic, part, ends[int32(part)], len(rs))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	pids := map[int64]bool{}
	for part, rs := range byPart {
		got := fzConsumePartitionTo(ctx, t, b.Addr, topic, int32(part), int64(len(rs)))
		for j, g := range got {
			if string(g.Value) != string(rs[j].Value) {
				t.Fatalf("%s[%d] offset %d: %q, want %q", topic, part, j, g.Value, rs[j].Value)
			}
			if g.ProducerID < 0 {
				t.Fatalf("%s[%d] offset %d: producer id %d: the producer was not idempotent", topic, part, j, g.ProducerID)
			}
			pids[g.ProducerID] = true
		}
	}
	var pidList []int64
	for id := range pids {
		pidList = append(pidList, id)
	}
	slices.Sort(pidList)
	t.Logf("records written by producer ids %v", pidList)
	fzCheckLogs(t, b)
}

// idemLeader asks a broker for the leader of topic's partition 0.
func idemLeader(t testing.TB, raw *fzRaw, topic string) (int32, error) {
	t.Helper()
	resp := fzMetadata(raw, topic)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		return -1, fmt.Errorf("metadata for %s: %+v", topic, resp.Topics)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.Partition == 0 {
			if p.ErrorCode != 0 {
				return p.Leader, fmt.Errorf("partition 0: %s", fzErrCode(p.ErrorCode))
			}
			return p.Leader, nil
		}
	}
	return -1, fmt.Errorf("metadata for %s: no partition 0", topic)
}

// TestIdempotentFailover: the producer state of a replicated partition is
// on its followers too, so after the leader is killed the new leader
// recognises a retry of the last batch and carries on the sequence.
func TestIdempotentFailover(t *testing.T) {
	brokers := startQuorumCluster(t, 3, "--etcd-lease-ttl", "3s")
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "idem")
	two := "2"
	replCreateTopic(ctx, t, adm, topic, 1, 3, map[string]*string{"min.insync.replicas": &two})
	td := replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	victim := td.Partitions[0].Leader

	// Producer ids are unique across brokers.
	seen := map[int64]int{}
	var pid int64 = -1
	for i, br := range brokers {
		raw := fzDial(t, br.Addr)
		for _, v := range []int16{0, 4} {
			id, _ := idemInitPID(t, raw, v, -1, -1)
			if prev, dup := seen[id]; dup {
				t.Fatalf("broker %d returned producer id %d, already returned by broker %d", i+1, id, prev)
			}
			seen[id] = i + 1
			if pid < 0 {
				pid = id
			}
		}
	}

	leaderRaw := fzDial(t, brokers[victim-1].Addr)
	part := &idemPart{t: t, topic: topic, part: 0, conn: func(bool) *fzRaw { return leaderRaw }}
	var batches []*idemSent
	seq := int32(0)
	for i := range 6 {
		bt := idemNewBatch(pid, 0, seq, idemValues("f", 0, seq, 1+i%3)...)
		part.appended(fmt.Sprintf("batch %d to the first leader (broker %d)", i, victim), bt)
		batches = append(batches, bt)
		seq += int32(len(bt.values))
	}
	last := batches[len(batches)-1]
	part.duplicate("retry of the last batch to the first leader", last)

	brokers[victim-1].Kill()
	survivors := map[int32]*fzRaw{}
	for i, br := range brokers {
		if int32(i+1) != victim {
			survivors[int32(i+1)] = fzDial(t, br.Addr)
		}
	}
	var newLeader int32
	fzWaitFor(t, 30*time.Second, "a new leader for partition 0 in every survivor's Metadata", func() error {
		for _, raw := range survivors {
			l, err := idemLeader(t, raw, topic)
			if err != nil {
				return err
			}
			if l == victim || l < 0 {
				return fmt.Errorf("leader %d", l)
			}
			newLeader = l
		}
		return nil
	})
	t.Logf("broker %d led partition 0 and was killed; broker %d leads now", victim, newLeader)
	// Produce to whoever leads now, asking again after a retriable error
	// (and never believing a stale answer that names the dead broker).
	avoid := victim
	conns := map[int32]*fzRaw{}
	part.conn = func(fresh bool) *fzRaw {
		if fresh {
			for _, raw := range survivors {
				if l, err := idemLeader(t, raw, topic); err == nil && l >= 0 && l != avoid {
					newLeader = l
				}
			}
		}
		if conns[newLeader] == nil {
			conns[newLeader] = fzDial(t, brokers[newLeader-1].Addr)
		}
		return conns[newLeader]
	}
	part.duplicate("retry of the last batch to the new leader", last)
	part.duplicate("retry of an earlier batch to the new leader", batches[3])
	part.rejected("gap at the new leader", idemNewBatch(pid, 0, seq+1, idemValues("f", 0, seq+1, 1)...), idemOutOfOrder)
	part.rejected("retry of a forgotten batch at the new leader", batches[0], idemOutOfOrder)
	next := idemNewBatch(pid, 0, seq, idemValues("f", 0, seq, 2)...)
	part.appended("next sequence to the new leader", next)
	part.duplicate("retry of that batch", next)
	part.check("on the new leader", part.conn(false))

	// The killed broker comes back as a follower: its state is rebuilt
	// from its log and then follows what it replicates (the batch above).
	// Made leader again, it recognises that batch's retry too.
	if td.Partitions[0].Replicas[0] != victim {
		t.Fatalf("the first leader %d is not the preferred replica of %v", victim, td.Partitions[0].Replicas)
	}
	brokers[victim-1].Restart()
	replWaitISR(ctx, t, adm, topic, 3, 30*time.Second)
	for p, err := range rsElect(ctx, t, adm, kadm.ElectPreferredReplica, topic, 0) {
		if err != nil {
			t.Fatalf("preferred election of %s[%d] back to broker %d: %v", topic, p, victim, err)
		}
	}
	survivors[victim] = fzDial(t, brokers[victim-1].Addr)
	fzWaitFor(t, 30*time.Second, fmt.Sprintf("broker %d leading partition 0 again in every broker's Metadata", victim), func() error {
		for _, raw := range survivors {
			if l, err := idemLeader(t, raw, topic); err != nil || l != victim {
				return fmt.Errorf("leader %d (%v)", l, err)
			}
		}
		return nil
	})
	newLeader, avoid = victim, -1
	t.Logf("broker %d restarted, back in the ISR and leading partition 0 again", victim)
	part.duplicate("retry of the last batch to the restarted first leader", next)
	part.duplicate("retry of the last batch it led itself", last)
	after := idemNewBatch(pid, 0, next.seq+2, idemValues("f", 0, next.seq+2, 1)...)
	part.appended("next sequence to the restarted first leader", after)
	part.check("on the restarted first leader", part.conn(false))
	for _, br := range brokers {
		fzCheckLogs(t, br)
	}
}
