package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/broker"
	"github.com/gregorbroker/gregor/metadata"
)

// lockedBuffer is a bytes.Buffer safe for a logger used by goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testBroker starts a broker on a memory store, not yet serving.
func testBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Config{
		NodeID: 1, AdvertisedHost: "127.0.0.1", AdvertisedPort: 9092,
		DataDir: t.TempDir(), Logger: zerolog.Nop(),
	}, metadata.NewMemoryStore("4L6g3nShT-eMCtK--X86sw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// serveLoopback serves b on a free loopback port and returns the address.
func serveLoopback(t *testing.T, b *broker.Broker) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(ln)
	return ln.Addr().String()
}

// TestAnnounceRunning checks that the line is logged once, after the
// broker serves, with the log level at warn (tooling waits for the line
// whatever the level).
func TestAnnounceRunning(t *testing.T) {
	b := testBroker(t)
	var logs lockedBuffer
	r := announceRunning(context.Background(), b, zerolog.New(&logs).Level(zerolog.WarnLevel))
	// Not serving yet: nothing is said.
	time.Sleep(5 * readyPoll)
	if strings.Contains(logs.String(), runningLine) {
		t.Fatalf("announced before serving: %s", logs.String())
	}
	serveLoopback(t, b)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no announcement 10 s after serving")
	}
	r.stop()
	if got := strings.Count(logs.String(), runningLine); got != 1 {
		t.Fatalf("announced %d times, want once: %s", got, logs.String())
	}
	if !strings.Contains(logs.String(), `"message":"`+runningLine+`"`) {
		t.Fatalf("not a log message: %s", logs.String())
	}
}

func TestAnnounceRunningStops(t *testing.T) {
	b := testBroker(t)
	var logs lockedBuffer
	r := announceRunning(context.Background(), b, zerolog.New(&logs))
	r.stop() // returns although the broker never serves
	if strings.Contains(logs.String(), runningLine) {
		t.Fatalf("announced without serving: %s", logs.String())
	}
}
