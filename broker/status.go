package broker

import (
	"context"
	"time"

	"github.com/gregorbroker/gregor/metadata"
)

// Status is what a broker reports about itself (the console's header).
type Status struct {
	NodeID int32
	// Controller is the controller this broker knows, metadata.NoLeader
	// (-1) when none.
	Controller int32
	// EtcdUp is whether a metadata round trip (bounded by ctx and
	// etcdProbeTimeout) succeeded and this broker's registration lease is
	// alive; EtcdLatency is how long the round trip took.
	EtcdUp      bool
	EtcdLatency time.Duration
	// Ready is Ready's error, nil when ready.
	Ready error
	// Faults are the metadata values the broker cannot read, as key: error.
	Faults []string
	// Hosted and Leading count the local replicas and those this broker leads.
	Hosted, Leading int
}

// Status reads the broker's own state: its metadata session, the
// controller it knows, its readiness and local replicas. It makes one
// metadata round trip.
func (b *Broker) Status(ctx context.Context) Status {
	s := Status{NodeID: b.cfg.NodeID, Controller: metadata.NoLeader, Ready: b.Ready()}
	if id, ok := b.store.Controller(); ok {
		s.Controller = id
	}
	ctx, cancel := context.WithTimeout(ctx, etcdProbeTimeout)
	start := time.Now()
	err := b.store.Sync(ctx)
	s.EtcdLatency = time.Since(start)
	cancel()
	s.EtcdUp = err == nil && b.store.RegistrationAlive()
	for _, f := range b.store.Faults() {
		s.Faults = append(s.Faults, f.Key+": "+f.Err.Error())
	}
	for _, part := range b.parts.all() {
		s.Hosted++
		if part.leading.Load() {
			s.Leading++
		}
	}
	return s
}
