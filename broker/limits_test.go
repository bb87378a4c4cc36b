package broker

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/protocol"
)

func TestByteBudget(t *testing.T) {
	bb := newByteBudget(100)
	if !bb.tryTake(60) || !bb.tryTake(40) {
		t.Fatal("100 bytes of a 100-byte budget not taken")
	}
	if bb.tryTake(1) {
		t.Fatal("took a byte of a full budget")
	}
	got := make(chan bool)
	go func() { got <- bb.take(nil, 50) }()
	select {
	case <-got:
		t.Fatal("take returned while the budget was full")
	case <-time.After(20 * time.Millisecond):
	}
	bb.give(60)
	if !<-got {
		t.Fatal("take failed after bytes were given back")
	}
	if n := bb.inUse(); n != 90 {
		t.Fatalf("in use %d, want 90", n)
	}
	done := make(chan struct{})
	close(done)
	if bb.take(done, 50) {
		t.Fatal("take succeeded with done closed and no room")
	}
	// A claim larger than the whole budget is taken when nothing else is.
	bb.give(90)
	if !bb.tryTake(500) || bb.tryTake(1) {
		t.Fatal("an oversized claim on an idle budget: want taken alone")
	}
	bb.give(500)
	unbounded := newByteBudget(-1)
	for i := 0; i < 2; i++ {
		if !unbounded.tryTake(1 << 40) {
			t.Fatal("an unbounded budget refused")
		}
	}
}

// TestConnBackpressure checks that a client that sends requests without
// reading its responses stops being read: over a synchronous pipe the
// client's writes block once the broker holds maxPendingResponseBytes of
// responses and its queues are full, and every request sent is answered,
// in order, once the client reads.
func TestConnBackpressure(t *testing.T) {
	b := newTestBroker(t)
	client, server := net.Pipe()
	defer client.Close()
	c := newConn(b, server, "")
	served := make(chan struct{})
	go func() { defer close(served); c.serve() }()

	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12) // null topics: every topic, brokers; a few hundred bytes
	sent := 0
	for sent < 100000 {
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := client.Write(protocol.AppendRequest(nil, int32(sent), nil, req)); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write: %v", err)
			}
			break
		}
		sent++
	}
	if sent == 100000 {
		t.Fatal("the broker read 100000 requests from a client that reads nothing")
	}
	if sent > 1000 {
		t.Fatalf("the broker read %d requests from a client that reads nothing; want a few dozen", sent)
	}
	if p := c.pending.Load(); p > 2*maxPendingResponseBytes {
		t.Fatalf("%d response bytes pending, bound %d plus one response", p, maxPendingResponseBytes)
	}
	r := bufio.NewReader(client)
	for i := 0; i < sent; i++ {
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		frame, err := protocol.ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatalf("response %d of %d: %v", i, sent, err)
		}
		if corr := int32(frame[0])<<24 | int32(frame[1])<<16 | int32(frame[2])<<8 | int32(frame[3]); corr != int32(i) {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
	}
	client.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("connection did not end after the client closed")
	}
	if n := b.reqBudget.inUse(); n != 0 {
		t.Fatalf("%d request bytes still taken after the connection ended", n)
	}
}

// TestConnHangupEndsLongPoll checks that a client hanging up while its
// long-poll Fetch waits ends the wait at once and the connection.
func TestConnHangupEndsLongPoll(t *testing.T) {
	b := newTestBroker(t)
	createPlaced(t, b, metadata.Topic{Name: "poll", Partitions: 1})
	client, server := net.Pipe()
	c := newConn(b, server, "")
	served := make(chan struct{})
	go func() { defer close(served); c.serve() }()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 60000, 1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "poll"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if _, err := client.Write(protocol.AppendRequest(nil, 1, nil, req)); err != nil {
		t.Fatal(err)
	}
	client.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("a 60 s long poll outlived its client's hang-up")
	}
}

func TestFetchSessionEpochs(t *testing.T) {
	b := newTestBroker(t)
	createPlaced(t, b, metadata.Topic{Name: "sess", Partitions: 1})
	fetch := func(id, epoch int32, listed int) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.ReplicaID, req.MaxBytes = -1, 1<<20
		req.SessionID, req.SessionEpoch = id, epoch
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "sess"
		for i := 0; i < listed; i++ {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := b.handleFetch(newTestConn(b), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.FetchResponse)
	}
	for _, tc := range []struct {
		id, epoch int32
		want      int16
	}{
		{0, -1, 0}, {-1, -1, 0}, {7, -1, 0}, // FINAL_EPOCH: sessionless
		{0, 0, 0}, {7, 0, 0}, // INITIAL_EPOCH: full fetch; no session is made
		{7, 1, kerr.FetchSessionIDNotFound.Code}, {0, 3, kerr.FetchSessionIDNotFound.Code},
	} {
		resp := fetch(tc.id, tc.epoch, 1)
		if resp.ErrorCode != tc.want || resp.SessionID != 0 {
			t.Errorf("session %d epoch %d: error %d session %d, want error %d session 0", tc.id, tc.epoch, resp.ErrorCode, resp.SessionID, tc.want)
		}
		if tc.want == 0 && (len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1) {
			t.Errorf("session %d epoch %d: topics %+v, want the partition", tc.id, tc.epoch, resp.Topics)
		}
	}
	if resp := fetch(0, -1, 3); len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("a partition listed 3 times: response %+v, want it once", resp.Topics)
	}
}

func TestParseIPOverrides(t *testing.T) {
	got := parseIPOverrides("127.0.0.1:5, ::1:7,[fe80::1]:0")
	want := map[string]int64{"127.0.0.1": 5, "::1": 7, "fe80::1": 0}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for ip, n := range want {
		if got[netip.MustParseAddr(ip)] != n {
			t.Fatalf("%s: got %v", ip, got)
		}
	}
	for _, bad := range []string{"127.0.0.1", "host:x", "127.0.0.1:-1", "1.2.3.4:5,"} {
		if checkIPOverrides(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if checkIPOverrides("") != nil || checkIPOverrides("10.0.0.1:3") != nil {
		t.Error("valid overrides refused")
	}
}

// TestConnWriterPanicEndsOnlyTheConnection: a panic while the writer makes
// a deferred response is logged, ends that connection, and gives back what
// the response held; the responses queued behind it are drained.
func TestConnWriterPanicEndsOnlyTheConnection(t *testing.T) {
	b := newTestBroker(t)
	client, server := net.Pipe()
	defer client.Close()
	c := newConn(b, server, "")
	go io.Copy(io.Discard, client) // the client reads whatever comes

	// Queued before the connection starts (only its processor sends once
	// it runs): a response whose making panics, and one behind it that
	// must be drained with its charge given back.
	if !b.respBudget.take(nil, 300) {
		t.Fatal("response budget refused 300 bytes")
	}
	c.inFlight.Add(2)
	c.pending.Add(16)
	c.out <- outFrame{deferred: func() []byte { panic("response maker bug") }, charge: 100, budget: b.respBudget}
	c.out <- outFrame{frame: make([]byte, 16), charge: 200, budget: b.respBudget}
	served := make(chan struct{})
	go func() { defer close(served); c.serve() }()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("the connection did not end after its writer panicked:\n%s", buf[:runtime.Stack(buf, true)])
	}
	if n := b.respBudget.inUse(); n != 0 {
		t.Fatalf("%d response bytes still taken after the connection ended", n)
	}
	if n, p := c.inFlight.Load(), c.pending.Load(); n != 0 || p != 0 {
		t.Fatalf("%d requests in flight and %d bytes pending after the connection ended", n, p)
	}
}
