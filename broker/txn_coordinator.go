package broker

// The broker's side of the transaction coordinator: the partitions of
// __transaction_state (coordinator.TxnLogs) and the delivery of
// transaction markers to partition leaders (coordinator.Markers): an
// append for the partitions this broker leads, WriteTxnMarkers to the
// others.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/coordinator"
	"github.com/gregorbroker/gregor/internal/safe"
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
	cfg.IDExpiration = ms("transactional.id.expiration.ms")
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
	b     *Broker
	peers *peerPool
}

// peerPool holds one connection per other broker for the coordinators'
// requests (markers, transaction verification). mu protects conns; each
// connection is used under its own mu, one request at a time.
type peerPool struct {
	b        *Broker
	clientID string // of its requests; empty is "gregor-coordinator"
	mu       sync.Mutex
	conns    map[int32]*pooledConn
}

type pooledConn struct {
	mu sync.Mutex
	c  peer.Conn
}

// roundTrip sends req to broker id (at its first listener) and returns
// its response.
func (pp *peerPool) roundTrip(ctx context.Context, id int32, req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	var addr string
	for _, br := range pp.b.store.Brokers() {
		if br.NodeID == id {
			addr = net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("broker: broker %d is not registered", id)
	}
	pp.mu.Lock()
	if pp.conns == nil {
		pp.conns = make(map[int32]*pooledConn)
	}
	pc := pp.conns[id]
	if pc == nil {
		pc = &pooledConn{c: peer.Conn{ClientID: cmp.Or(pp.clientID, "gregor-coordinator")}}
		pp.conns[id] = pc
	}
	pp.mu.Unlock()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.c.Addr != addr {
		pc.c.Close()
		pc.c.Addr = addr
	}
	return pc.c.RoundTrip(ctx, req, timeout)
}

// close closes the connections.
func (pp *peerPool) close() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for _, pc := range pp.conns {
		pc.mu.Lock()
		pc.c.Close()
		pc.mu.Unlock()
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
		safe.Go(&wg, b.log, "marker writer", func() {
			left := parts // all of them are retried if the writer panics
			defer func() {
				mu.Lock()
				retry = append(retry, left...)
				mu.Unlock()
			}()
			if leader == b.cfg.NodeID {
				left = w.writeLocal(ctx, m, parts)
			} else {
				left = w.writeRemote(ctx, leader, m, parts)
			}
		})
	}
	wg.Wait()
	return retry
}

// writeLocal appends m to partitions this broker leads.
func (w *markerWriter) writeLocal(ctx context.Context, m coordinator.Marker, parts []coordinator.TopicPartition) []coordinator.TopicPartition {
	deadline := time.Now().Add(writeMarkersTimeout) // bounds every marker's wait
	var retry []coordinator.TopicPartition
	for _, tp := range parts {
		err := w.b.writeMarker(tp.Topic, tp.Partition, m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch, deadline)
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
	raw, err := w.peers.roundTrip(ctx, leader, req, markerRequestTimeout)
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

// verifyTimeout bounds a transaction verification at another broker.
const verifyTimeout = 5 * time.Second

// verifyTxn asks the coordinator of transactional id txnID whether
// topic/partition is in the producer's open transaction (KIP-890: the
// verify-only form of AddPartitionsToTxn), before the producer's first
// transactional batch opens a transaction in the partition. A batch that
// no open transaction added to itself would otherwise leave the
// partition's last stable offset stuck (a hanging transaction).
func (b *Broker) verifyTxn(ctx context.Context, txnID string, pid int64, epoch int16, topic string, partition int32) error {
	n := b.txnLogs().TxnPartitions()
	if n == 0 {
		return kerr.InvalidTxnState // no transaction was ever begun
	}
	st, ok := b.store.Partition(coordinator.TxnStateTopic, coordinator.PartitionForTxn(txnID, n))
	if !ok || st.Leader == metadata.NoLeader {
		return kerr.NotEnoughReplicas // retriable: the coordinator moves
	}
	var code *kerr.Error
	tp := coordinator.TopicPartition{Topic: topic, Partition: partition}
	if st.Leader == b.cfg.NodeID {
		code = b.txn.AddPartitions(ctx, coordinator.AddPartitionsArgs{TransactionalID: txnID, ProducerID: pid, ProducerEpoch: epoch,
			Partitions: []coordinator.TopicPartition{tp}, VerifyOnly: true, FencedError: true})[0]
	} else {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.SetVersion(4)
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = txnID, pid, epoch, true
		rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		rt.Topic, rt.Partitions = topic, []int32{partition}
		tx.Topics = append(tx.Topics, rt)
		req.Transactions = append(req.Transactions, tx)
		raw, err := b.peers.roundTrip(ctx, st.Leader, req, verifyTimeout)
		if err != nil {
			b.log.Debug().Err(err).Int32("coordinator", st.Leader).Msg("transaction verification failed")
			return kerr.NotEnoughReplicas
		}
		resp := raw.(*kmsg.AddPartitionsToTxnResponse)
		code = kerr.TypedErrorForCode(resp.ErrorCode)
		for _, rtx := range resp.Transactions {
			for _, rt := range rtx.Topics {
				for _, rp := range rt.Partitions {
					if rp.Partition == partition && rt.Topic == topic && code == nil {
						code = kerr.TypedErrorForCode(rp.ErrorCode)
					}
				}
			}
		}
	}
	switch code {
	case nil:
		return nil
	case kerr.ProducerFenced, kerr.InvalidProducerEpoch:
		return kerr.InvalidProducerEpoch
	case kerr.NotCoordinator, kerr.CoordinatorNotAvailable, kerr.CoordinatorLoadInProgress, kerr.ConcurrentTransactions:
		return kerr.NotEnoughReplicas
	default:
		return kerr.InvalidTxnState
	}
}
