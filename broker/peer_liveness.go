package broker

// Peer liveness: noticing at once that another broker's process has died.
//
// A broker's etcd lease is its proof of life, and a killed broker's
// partitions fail over only when that lease expires: up to one TTL after
// its last renewal, plus etcd's expiry check, plus a whole TTL more when
// the dead broker also ran the embedded etcd leader (a new etcd leader
// extends every lease). But when a process dies, the kernel closes its
// sockets: its peers' connections to it end, and its listening port
// refuses new ones. Each broker therefore keeps one idle connection to
// every other broker's listener. When that connection ends and a new one
// is refused, the process that held the registration seen before the
// connection was made is gone, and the watcher ends that registration
// (metadata.BrokerExpirer) so the controller moves its partitions at once.
//
// Refusal is the only proof taken: a paused, partitioned or overloaded
// broker still completes TCP handshakes (or times out), so it keeps its
// lease until the lease expires, and fencing stays what the lease says. A
// live broker closes its listener only in Close, after handing off its
// leadership and stopping reading requests.

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/metadata"
)

const (
	// peerScanInterval is how often the set of watched peers is matched
	// to the registered brokers.
	peerScanInterval = 200 * time.Millisecond
	// peerDialTimeout bounds one connection attempt to a peer.
	peerDialTimeout = time.Second
	// peerRetry is the pause after a failed connection attempt.
	peerRetry = 200 * time.Millisecond
	// peerExpireTimeout bounds the attempts to end a dead peer's
	// registration (etcd may first have to elect a leader).
	peerExpireTimeout = 10 * time.Second
)

// startPeerLiveness runs the peer watchers until Close, when the store can
// expire registrations.
func (b *Broker) startPeerLiveness() {
	exp, ok := b.store.(metadata.BrokerExpirer)
	if !ok {
		return
	}
	safe.Go(&b.bg, b.log, "peer liveness", func() { b.superviseWatchers(exp) })
}

// superviseWatchers keeps one watcher goroutine per other registered
// broker. The watchers map is owned by this goroutine.
func (b *Broker) superviseWatchers(exp metadata.BrokerExpirer) {
	watchers := map[int32]context.CancelFunc{}
	done := make(chan int32)
	defer func() {
		for _, cancel := range watchers {
			cancel()
		}
		for range watchers {
			<-done
		}
	}()
	t := time.NewTicker(peerScanInterval)
	defer t.Stop()
	for {
		live := map[int32]bool{}
		for _, br := range b.store.Brokers() {
			if br.NodeID == b.cfg.NodeID {
				continue
			}
			live[br.NodeID] = true
			if _, ok := watchers[br.NodeID]; !ok {
				ctx, cancel := context.WithCancel(b.ctx)
				watchers[br.NodeID] = cancel
				go func(id int32) {
					safe.Run(b.log, "peer watcher", func() { b.watchPeer(ctx, exp, id) })
					done <- id
				}(br.NodeID)
			}
		}
		for id, cancel := range watchers {
			if !live[id] {
				cancel()
			}
		}
		select {
		case <-b.ctx.Done():
			return
		case id := <-done:
			watchers[id]()
			delete(watchers, id)
		case <-t.C:
		}
	}
}

// watchPeer watches broker id until ctx ends or id is no longer
// registered.
func (b *Broker) watchPeer(ctx context.Context, exp metadata.BrokerExpirer, id int32) {
	for ctx.Err() == nil {
		// The registration is read before the connection is made, so a
		// connection that is later refused proves that this incarnation's
		// process (or an older one) is gone, never a newer one.
		inc, ok := exp.BrokerIncarnation(id)
		if !ok {
			return
		}
		nc, err := b.dialPeer(ctx, id)
		if err != nil {
			sleepCtx(ctx, peerRetry)
			continue
		}
		for {
			waitClosed(ctx, nc)
			if ctx.Err() != nil {
				return
			}
			next, _ := exp.BrokerIncarnation(id)
			nc, err = b.dialPeer(ctx, id)
			if err == nil {
				inc = next // someone listens there: watch on
				continue
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				b.expirePeer(ctx, exp, id, inc)
			}
			break
		}
	}
}

// expirePeer ends registration inc of broker id, whose process is gone,
// and waits until the cache no longer shows it.
func (b *Broker) expirePeer(ctx context.Context, exp metadata.BrokerExpirer, id int32, inc metadata.BrokerIncarnation) {
	b.log.Warn().Int32("peer", id).Msg("peer broker's connection closed and its listener refuses connections: ending its registration")
	expCtx, cancel := context.WithTimeout(ctx, peerExpireTimeout)
	defer cancel()
	if err := exp.ExpireBroker(expCtx, id, inc); err != nil {
		if ctx.Err() == nil {
			b.log.Warn().Int32("peer", id).Err(err).Msg("cannot end a dead peer's registration; its lease will expire")
		}
		return
	}
	for expCtx.Err() == nil {
		if cur, ok := exp.BrokerIncarnation(id); !ok || cur != inc {
			return
		}
		sleepCtx(expCtx, 20*time.Millisecond)
	}
}

// dialPeer connects to broker id's first listener, as replication does.
func (b *Broker) dialPeer(ctx context.Context, id int32) (net.Conn, error) {
	for _, br := range b.store.Brokers() {
		if br.NodeID == id {
			d := net.Dialer{Timeout: peerDialTimeout}
			return d.DialContext(ctx, "tcp", net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port))))
		}
	}
	return nil, errors.New("broker: peer not registered")
}

// waitClosed blocks until the peer closes nc (or it fails), or ctx ends;
// it closes nc. The peer never sends anything on it: this broker sends no
// request.
func waitClosed(ctx context.Context, nc net.Conn) {
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	var buf [1]byte
	for {
		if _, err := nc.Read(buf[:]); err != nil {
			nc.Close()
			return
		}
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
