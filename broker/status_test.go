package broker

import (
	"context"
	"testing"

	"github.com/gregorbroker/gregor/metadata"
)

func TestStatus(t *testing.T) {
	b := newTestBroker(t)
	createPlaced(t, b, metadata.Topic{Name: "st", Partitions: 2, ReplicationFactor: 1})
	waitFor(t, "both partitions led here", func() bool {
		p0, p1 := b.parts.lookup("st", 0), b.parts.lookup("st", 1)
		return p0 != nil && p1 != nil && p0.leading.Load() && p1.leading.Load()
	})
	waitFor(t, "a controller", func() bool { _, ok := b.store.Controller(); return ok })
	s := b.Status(context.Background())
	if s.NodeID != 1 || s.Controller != 1 {
		t.Errorf("status node %d controller %d, want 1 and 1 (the only broker)", s.NodeID, s.Controller)
	}
	if !s.EtcdUp || len(s.Faults) != 0 {
		t.Errorf("status etcd up %v, faults %v; want up, none", s.EtcdUp, s.Faults)
	}
	if s.Ready == nil {
		t.Errorf("status ready with no listener; want Ready's error")
	}
	hosted, leading := 0, 0
	for _, part := range b.parts.all() {
		hosted++
		if part.leading.Load() {
			leading++
		}
	}
	if s.Hosted != hosted || s.Leading != leading || s.Leading < 2 {
		t.Errorf("status hosts %d leads %d, want %d and %d (st-0 and st-1 at least)", s.Hosted, s.Leading, hosted, leading)
	}
}
