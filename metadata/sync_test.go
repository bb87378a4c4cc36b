package metadata

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestEtcdSyncWaitsForTheWatch: a store whose watch has not delivered
// another broker's writes yet (here: not started at all) does not return
// from Sync until it has, and then shows them.
func TestEtcdSyncWaitsForTheWatch(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	ctx := testCtx(t)
	other := (&etcdHarness{endpoints: te.e.Endpoints()}).open(t)

	s := newEtcdStore(zerolog.Nop(), te.rawClient(t), "/gregor/", 3*time.Second)
	if err := s.load(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	b := Broker{NodeID: 7, Host: "h7", Port: 9092}
	if err := other.RegisterBroker(ctx, b); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, other, "t", 1, nil)

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := s.Sync(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync with the watch stopped: %v, want a deadline error", err)
	}
	if got := s.Brokers(); len(got) != 0 {
		t.Fatalf("the stopped cache shows brokers %v", got)
	}

	s.start()
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// No waiting: Sync returned only once the cache had both writes.
	if got := s.Brokers(); !reflect.DeepEqual(got, []Broker{b}) {
		t.Fatalf("after Sync Brokers() = %v, want %v", got, []Broker{b})
	}
	if _, ok := s.Topic("t"); !ok {
		t.Fatal("after Sync the topic written elsewhere is missing")
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v, want ErrClosed", err)
	}
}

// TestMemorySync: a memory store is always current; closed, it says so.
func TestMemorySync(t *testing.T) {
	s := NewMemoryStore("c")
	if err := s.Sync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Sync(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v, want ErrClosed", err)
	}
}
