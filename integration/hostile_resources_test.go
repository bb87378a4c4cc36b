package integration

// Hostile clients against the broker's resource limits (README "Limits"):
// fetch bombs pipelined without reading, long polls whose clients hang up,
// frames declared huge and never sent, connection limits, idle
// connections; and the Fetch forms they rely on (sessionless fetches, a
// partition listed twice). After each, real clients still produce and
// consume.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// pid is the broker process's id.
func (p *brokerProc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// hostileRSS is the broker's resident memory in bytes (VmRSS).
func hostileRSS(t testing.TB, p *brokerProc) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		t.Fatalf("broker status: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in the broker's status")
	return 0
}

// hostileFDs counts the broker's open descriptors.
func hostileFDs(t testing.TB, p *brokerProc) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid()))
	if err != nil {
		t.Fatalf("broker fds: %v", err)
	}
	return len(fds)
}

// hostileRSSBound is the resident memory a test allows the broker: the
// race detector (the default build of these tests) multiplies memory.
func hostileRSSBound(noRace int64) int64 {
	if os.Getenv("GREGOR_NO_RACE") != "" {
		return noRace
	}
	return 3 * noRace
}

// hostileStillServes produces and consumes a few records with franz-go.
func hostileStillServes(ctx context.Context, t *testing.T, addr, topic string) {
	t.Helper()
	cl := fzClient(t, addr)
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte("after-" + strconv.Itoa(i))})
	}
	fzProduceSync(ctx, t, cl, recs...)
	got := fzConsume(ctx, t, addr, topic, 10)
	if len(got) < 10 {
		t.Fatalf("consumed %d records after the attack, want 10", len(got))
	}
}

// TestHostileFetchBomb pipelines Fetches that list one 32 MiB partition 32
// times with max_bytes 2^31-1 on four connections that never read: the
// broker serves each partition once, caps each response at
// fetch.max.bytes, stops reading a connection whose responses wait, and
// holds fetched bytes within queued.max.response.bytes, so it stays
// within a few hundred MiB (it reached 6.9 GiB before), and franz-go and
// kcat still produce and consume meanwhile.
func TestHostileFetchBomb(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	p := startBroker(t)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "bomb")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)

	// 32 MiB of incompressible records, 32 batches of ~1 MiB.
	cl := fzClient(t, p.Addr, kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	for i := 0; i < 32; i++ {
		v := make([]byte, 1000<<10)
		rand.Read(v)
		fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Partition: 0, Value: v})
	}
	base := hostileRSS(t, p)

	raw := fzDial(t, p.Addr)
	id := fzTopicID(t, raw, topic)
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(13)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 500, 1, 1<<31-1
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = id
	for i := 0; i < 32; i++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<31-1, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	var bomb []byte
	for i := 0; i < 16; i++ {
		bomb = append(bomb, fzRequestFrame(int32(i), req)...)
	}
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			for ctx.Err() == nil { // pipelined until the broker stops reading
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write(bomb); err != nil && !os.IsTimeout(err) {
					return
				}
			}
		}()
	}

	bound := hostileRSSBound(600 << 20)
	var peak int64
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		rss := hostileRSS(t, p)
		peak = max(peak, rss)
		if rss > bound {
			t.Fatalf("broker resident memory %d MiB under the fetch bomb (from %d MiB), bound %d MiB", rss>>20, base>>20, bound>>20)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("resident memory %d MiB before the bomb, peak %d MiB under it", base>>20, peak>>20)

	// The bombers are still connected: real clients are served meanwhile.
	after := fzTopic(t, "after")
	fzCreateTopic(ctx, t, adm, after, 1, nil)
	hostileStillServes(ctx, t, p.Addr, after)
	kcatTopicName := fzTopic(t, "kcat")
	fzCreateTopic(ctx, t, adm, kcatTopicName, 1, nil)
	kcatProduce(ctx, t, p.Addr, kcatTopicName, []string{"k1:v1", "k2:v2"})
	out, _ := kcatRun(ctx, t, "", "-C", "-b", p.Addr, "-t", kcatTopicName, "-K:", "-o", "beginning", "-c", "2", "-e")
	if !strings.Contains(out, "k1:v1") || !strings.Contains(out, "k2:v2") {
		t.Fatalf("kcat consumed %q", out)
	}
}

// TestHostileLongPollHangups opens 1000 connections that each send a Fetch
// with a 60 s max wait and hang up: the broker sees each hang-up while the
// long poll waits, ends it and closes the descriptor within seconds
// (before, all 1000 stayed open until their waits ended).
func TestHostileLongPollHangups(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	p := startBroker(t)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "poll")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	raw := fzDial(t, p.Addr)
	id := fzTopicID(t, raw, topic)
	baseline := hostileFDs(t, p)

	frame := fzRequestFrame(1, fzFetchRequest(13, topic, id, 0, 0, 60000))
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", p.Addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(frame); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("hostile client: %v", err)
	}
	fzWaitFor(t, 10*time.Second, "broker descriptors back near the baseline", func() error {
		if got := hostileFDs(t, p); got > baseline+20 {
			return fmt.Errorf("%d descriptors open, %d before the hang-ups", got, baseline)
		}
		return nil
	})
	hostileStillServes(ctx, t, p.Addr, topic)
}

// TestHostileDeclaredFrames has 50 connections each declare a 100 MiB
// frame, send 1 KiB of it and wait: the broker allocates as bytes arrive
// and holds at most queued.max.request.bytes for frames being read, so its
// memory stays bounded and other clients are served.
func TestHostileDeclaredFrames(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	p := startBroker(t)
	base := hostileRSS(t, p)
	hdr := binary.BigEndian.AppendUint32(nil, 100<<20)
	hdr = append(hdr, make([]byte, 1<<10)...)
	for i := 0; i < 50; i++ {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(hdr); err != nil {
			t.Fatalf("hostile client %d: %v", i, err)
		}
	}
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "frames")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	hostileStillServes(ctx, t, p.Addr, topic)
	bound := base + hostileRSSBound(200<<20)
	if rss := hostileRSS(t, p); rss > bound {
		t.Fatalf("broker resident memory %d MiB with 50 declared 100 MiB frames (from %d MiB), bound %d MiB", rss>>20, base>>20, bound>>20)
	}
}

// TestHostileConnectionLimits starts a broker with max.connections.per.ip
// 3: a fourth connection from 127.0.0.1 is closed at accept while the
// three are served, and once one closes a new one is accepted. A
// connection that sends nothing for connections.max.idle.ms is closed; one
// whose long poll outlasts that is not.
func TestHostileConnectionLimits(t *testing.T) {
	p := startBroker(t, "--max-connections-per-ip", "3", "--connections-max-idle-ms", "1500")
	api := kmsg.NewPtrApiVersionsRequest()
	api.SetVersion(3)
	api.ClientSoftwareName, api.ClientSoftwareVersion = "gregor-it", "1"
	var conns []*fzRaw
	for i := 0; i < 3; i++ {
		r := fzDial(t, p.Addr)
		r.roundTrip(api)
		conns = append(conns, r)
	}
	extra := fzDial(t, p.Addr)
	extra.c.Write(fzRequestFrame(1, api))
	extra.expectClosed(5*time.Second, false)
	for _, r := range conns {
		r.roundTrip(api) // the three are still served
	}
	conns[0].c.Close()
	fzWaitFor(t, 5*time.Second, "a connection accepted once one closed", func() error {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			return err
		}
		defer c.Close()
		r := &fzRaw{t: t, c: c, corr: 1}
		r.send(api)
		if _, err := r.readFrame(2 * time.Second); err != nil {
			return err
		}
		return nil
	})
	if !strings.Contains(p.Logs(), "refusing connections over the limit") {
		t.Fatal("no log line about the refused connection")
	}

	// Idle: conns[1] sends nothing more and is closed after 1.5 s; conns[2]
	// long-polls 3 s and is answered.
	fetch := fzFetchRequest(12, "no-such-topic-needed", [16]byte{}, 0, 0, 3000)
	fetch.Topics = nil // nothing to fetch: waits the whole max wait
	corr := conns[2].send(fetch)
	conns[1].expectClosed(10*time.Second, false)
	frame, err := conns[2].readFrame(10 * time.Second)
	if err != nil {
		t.Fatalf("a 3 s long poll on a 1.5 s idle timeout: %v", err)
	}
	if got := int32(binary.BigEndian.Uint32(frame)); got != corr {
		t.Fatalf("long poll answered with correlation id %d, want %d", got, corr)
	}
}

// TestHostileSessionlessFetch sends franz-go raw Fetch requests with
// session id -1 and epoch -1 (FINAL_EPOCH: a full fetch without a
// session, as Kafka treats it) and gets the data, and one with a partition
// listed twice, served once; an incremental fetch naming an unknown
// session gets FETCH_SESSION_ID_NOT_FOUND.
func TestHostileSessionlessFetch(t *testing.T) {
	ctx := testContext(t, time.Minute)
	p := startBroker(t)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "sessionless")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	cl := fzClient(t, p.Addr)
	fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("one")}, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("two")})
	topicID := fzTopicID(t, fzDial(t, p.Addr), topic) // kgo sends its newest Fetch version, which names topics by id

	fetch := func(id, epoch int32, listed int) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 100, 1, 1<<20
		req.SessionID, req.SessionEpoch = id, epoch
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, topicID
		for i := 0; i < listed; i++ {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("fetch session %d epoch %d: %v", id, epoch, err)
		}
		return resp
	}
	records := func(resp *kmsg.FetchResponse) int {
		n := 0
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: topic, Partition: rp.Partition}, &rp, kgo.DefaultDecompressor(), nil)
				n += len(fp.Records)
			}
		}
		return n
	}
	resp := fetch(-1, -1, 1)
	if resp.ErrorCode != 0 || resp.SessionID != 0 || records(resp) != 2 {
		t.Fatalf("session -1 epoch -1: error %s session %d, %d records; want a full fetch of 2 records, session 0", fzErrCode(resp.ErrorCode), resp.SessionID, records(resp))
	}
	resp = fetch(0, -1, 3)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || records(resp) != 2 {
		t.Fatalf("a partition listed 3 times: %d topics, want it served once with 2 records (%d)", len(resp.Topics), records(resp))
	}
	resp = fetch(12345, 3, 1)
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("incremental fetch of unknown session: error %s", fzErrCode(resp.ErrorCode))
	}
}
