package broker

// The broker's side of the transaction coordinator: the partitions of
// __transaction_state (coordinator.TxnLogs) and the delivery of
// transaction markers to partition leaders (coordinator.Markers): an
// append for the partitions this broker leads, WriteTxnMarkers to the
// others.

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/peer"
)

// txnCoordinatorConfig reads the transaction configs (static broker
// configs).
func (b *Broker) txnCoordinatorConfig() coordinator.TxnConfig {
	ms := func(name string) time.Duration { return time.Duration(b.brokerConfigInt(name)) * time.Millisecond }
	cfg := coordinator.DefaultTxnConfig()
	cfg.Partitions = int32(b.brokerConfigInt("transaction.state.log.num.partitions"))
	cfg.MaxTimeout = ms("transaction.max.timeout.ms")
	cfg.AbortInterval = ms("transaction.abort.timed.out.transaction.cleanup.interval.ms")
	return cfg
}

// txnLogs implements coordinator.TxnLogs over the broker's partitions.
type txnLogs struct{ internalLogs }

func (b *Broker) txnLogs() txnLogs {
	return txnLogs{internalLogs{b: b, topic: coordinator.TxnStateTopic}}
}

func (o txnLogs) TxnPartitions() int32 { return o.partitions() }

func (o txnLogs) EnsureTxnTopic(ctx context.Context, partitions int32) (int32, error) {
	configs := map[string]string{
		"cleanup.policy":   "compact",
		"compression.type": "uncompressed",
		"segment.bytes":    strconv.FormatInt(o.b.brokerConfigInt("transaction.state.log.segment.bytes"), 10),
	}
	return o.ensure(ctx, partitions, int(o.b.brokerConfigInt("transaction.state.log.replication.factor")),
		int(o.b.brokerConfigInt("transaction.state.log.min.isr")), configs)
}

// markerRequestTimeout bounds one WriteTxnMarkers round trip to another
// broker (which waits up to writeMarkersTimeout for its ISR).
const markerRequestTimeout = writeMarkersTimeout + 5*time.Second

// markerWriter implements coordinator.Markers.
type markerWriter struct {
	b *Broker
	// mu protects conns; each peer connection is used under its own mu.
	mu    sync.Mutex
	conns map[int32]*markerConn
}

// markerConn is one connection to another broker for markers; mu is held
// for each request (one at a time).
type markerConn struct {
	mu sync.Mutex
	c  peer.Conn
}

func (w *markerWriter) conn(id int32) *markerConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns == nil {
		w.conns = make(map[int32]*markerConn)
	}
	mc := w.conns[id]
	if mc == nil {
		mc = &markerConn{c: peer.Conn{ClientID: "gregor-txn-markers"}}
		w.conns[id] = mc
	}
	return mc
}

// close closes the connections.
func (w *markerWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, mc := range w.conns {
		mc.mu.Lock()
		mc.c.Close()
		mc.mu.Unlock()
	}
}

// WriteMarkers implements coordinator.Markers: the partitions are grouped
// by leader, and the leaders are written to at the same time.
func (w *markerWriter) WriteMarkers(ctx context.Context, m coordinator.Marker) []coordinator.TopicPartition {
	b := w.b
	byLeader := make(map[int32][]coordinator.TopicPartition)
	var retry []coordinator.TopicPartition
	for _, tp := range m.Partitions {
		if _, ok := b.store.Topic(tp.Topic); !ok {
			continue // deleted: nothing left to mark
		}
		st, ok := b.store.Partition(tp.Topic, tp.Partition)
		if !ok || st.Leader == metadata.NoLeader {
			retry = append(retry, tp)
			continue
		}
		byLeader[st.Leader] = append(byLeader[st.Leader], tp)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, parts := range byLeader {
		wg.Go(func() {
			var left []coordinator.TopicPartition
			if leader == b.cfg.NodeID {
				left = w.writeLocal(ctx, m, parts)
			} else {
				left = w.writeRemote(ctx, leader, m, parts)
			}
			mu.Lock()
			retry = append(retry, left...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return retry
}

// writeLocal appends m to partitions this broker leads.
func (w *markerWriter) writeLocal(ctx context.Context, m coordinator.Marker, parts []coordinator.TopicPartition) []coordinator.TopicPartition {
	deadline := time.NewTimer(writeMarkersTimeout)
	defer deadline.Stop()
	var retry []coordinator.TopicPartition
	for _, tp := range parts {
		err := w.b.writeMarker(tp.Topic, tp.Partition, m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch, deadline.C)
		if markerDone(err) {
			continue
		}
		w.b.log.Debug().Str("topic", tp.Topic).Int32("partition", tp.Partition).Err(err).Msg("transaction marker not written; trying again")
		retry = append(retry, tp)
	}
	return retry
}

// writeRemote sends m to broker leader for parts.
func (w *markerWriter) writeRemote(ctx context.Context, leader int32, m coordinator.Marker, parts []coordinator.TopicPartition) []coordinator.TopicPartition {
	var addr string
	for _, br := range w.b.store.Brokers() {
		if br.NodeID == leader {
			addr = net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
		}
	}
	if addr == "" {
		return parts
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(1)
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	for _, tp := range parts {
		if n := len(rm.Topics); n == 0 || rm.Topics[n-1].Topic != tp.Topic {
			rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			rt.Topic = tp.Topic
			rm.Topics = append(rm.Topics, rt)
		}
		rt := &rm.Topics[len(rm.Topics)-1]
		rt.Partitions = append(rt.Partitions, tp.Partition)
	}
	req.Markers = append(req.Markers, rm)

	mc := w.conn(leader)
	mc.mu.Lock()
	if mc.c.Addr != addr {
		mc.c.Close()
		mc.c.Addr = addr
	}
	raw, err := mc.c.RoundTrip(ctx, req, markerRequestTimeout)
	mc.mu.Unlock()
	if err != nil {
		w.b.log.Debug().Int32("leader", leader).Err(err).Msg("WriteTxnMarkers failed; trying again")
		return parts
	}
	resp := raw.(*kmsg.WriteTxnMarkersResponse)
	answered := make(map[coordinator.TopicPartition]bool)
	var retry []coordinator.TopicPartition
	for _, rm := range resp.Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				tp := coordinator.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}
				answered[tp] = true
				if !markerDone(kerr.ErrorForCode(rp.ErrorCode)) {
					retry = append(retry, tp)
				}
			}
		}
	}
	for _, tp := range parts {
		if !answered[tp] {
			retry = append(retry, tp)
		}
	}
	return retry
}

// markerDone reports whether a marker's outcome ends the attempts: it was
// written, or the partition refuses it for good (a newer producer epoch
// there means a later transaction of the producer already ended this
// one).
func markerDone(err error) bool {
	return err == nil || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTopicException)
}
