package broker

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/metadata"
)

// newTestBroker builds a broker over an in-memory metadata store and a
// temporary data dir; it is closed when the test ends.
func newTestBroker(t testing.TB) *Broker {
	t.Helper()
	return newTestBrokerOn(t, metadata.NewMemoryStore("test-cluster"))
}

// newTestBrokerOn is newTestBroker over the given store.
func newTestBrokerOn(t testing.TB, store metadata.Store) *Broker {
	t.Helper()
	b, err := New(Config{
		NodeID:         1,
		AdvertisedHost: "localhost",
		AdvertisedPort: 9092,
		DataDir:        t.TempDir(),
		Logger:         zerolog.Nop(),
	}, store)
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

// hidingStore is a store whose cache has lost some topics, as an etcd
// store's does when a topic's key vanishes or turns unreadable (the
// TopicUnavailable case): Topic, TopicByID and Topics do not see them.
type hidingStore struct {
	metadata.Store
	mu     sync.Mutex
	hidden map[string]bool // protected by mu
}

func (h *hidingStore) hide(name string, hidden bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hidden == nil {
		h.hidden = map[string]bool{}
	}
	h.hidden[name] = hidden
}

func (h *hidingStore) isHidden(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hidden[name]
}

func (h *hidingStore) Topic(name string) (metadata.Topic, bool) {
	if h.isHidden(name) {
		return metadata.Topic{}, false
	}
	return h.Store.Topic(name)
}

func (h *hidingStore) TopicByID(id metadata.TopicID) (metadata.Topic, bool) {
	t, ok := h.Store.TopicByID(id)
	if ok && h.isHidden(t.Name) {
		return metadata.Topic{}, false
	}
	return t, ok
}

func (h *hidingStore) Topics() []metadata.Topic {
	return slices.DeleteFunc(h.Store.Topics(), func(t metadata.Topic) bool { return h.isHidden(t.Name) })
}
