package broker

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/metadata"
)

// newTestBroker builds a broker over an in-memory metadata store and a
// temporary data dir; it is closed when the test ends.
func newTestBroker(t testing.TB) *Broker {
	t.Helper()
	b, err := New(Config{
		NodeID:         1,
		AdvertisedHost: "localhost",
		AdvertisedPort: 9092,
		DataDir:        t.TempDir(),
		Logger:         zerolog.Nop(),
	}, metadata.NewMemoryStore("test-cluster"))
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// newTestConn is a connection with no socket, for calling handlers directly.
func newTestConn(b *Broker) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{b: b, log: zerolog.Nop(), ctx: ctx, stop: cancel, out: make(chan outFrame, 1), writeFailed: make(chan struct{})}
}

// createPlaced creates a topic in the broker's store and waits until the
// controller has given each partition a leader.
func createPlaced(t testing.TB, b *Broker, topic metadata.Topic) metadata.Topic {
	t.Helper()
	created, err := b.store.CreateTopic(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.waitPlaced(ctx, created); err != nil {
		t.Fatalf("placing %s: %v", topic.Name, err)
	}
	return created
}
