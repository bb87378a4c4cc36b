package metadata

// The controller: one broker at a time (elected through Store.Campaign)
// keeps the partition states in line with the topics and the live
// brokers.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/internal/safe"
)

// Controller is one broker's candidacy for the controller role and, while
// it holds the role, the role's work, each pass:
//
//   - a partition with no state yet (the broker normally places new
//     partitions in the write that creates them, see Store.CreateTopic; a
//     partition created unplaced, when too few brokers were live, is left
//     to this) gets replicas from AssignReplicas with the topic's replication
//     factor, its first replica as leader at epoch 0 and every replica in
//     its ISR (they are all empty); it waits while fewer brokers are live
//     than the factor, unless other partitions of the topic are placed
//     already (brokers died during placement): then the partition gets
//     every live broker, fewer replicas rather than none;
//   - every other partition moves to NextPartitionState: dead brokers
//     leave the ISR, a dead leader is replaced from the ISR with the next
//     epoch; before that, a reassignment whose adding replicas are all in
//     the ISR completes (NextReassignmentState).
//
// Every write is a compare-and-swap from the state the pass read, so a
// pass that raced another writer (a deposed controller, or a leader
// changing its ISR) changes nothing and the next pass decides again.
// Passes run on every metadata change and every interval (broker
// registrations come and go without events).
//
// Concurrency: one goroutine, started by StartController and stopped by
// Close, owns everything here; a pass's writes run on short-lived
// goroutines that share nothing but the store.
type Controller struct {
	store    Store
	nodeID   int32
	log      zerolog.Logger
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{}
	// passes counts completed passes (their writes done); written by the
	// controller goroutine, read by anyone (Passes).
	passes atomic.Uint64
}

// Passes is how many passes this controller has completed while holding
// the role: a test that checks that nothing happens waits for passes
// rather than for time.
func (c *Controller) Passes() uint64 { return c.passes.Load() }

// StartController starts campaigning for nodeID; interval is how often
// the controller looks at the cluster when nothing else wakes it (and
// how long it waits after a failed campaign).
func StartController(store Store, nodeID int32, interval time.Duration, log zerolog.Logger) *Controller {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Controller{
		store:    store,
		nodeID:   nodeID,
		log:      log.With().Str("component", "controller").Int32("node_id", nodeID).Logger(),
		interval: interval,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		safe.Run(c.log, "controller", func() { c.run(ctx) })
	}()
	return c
}

// Close stops the controller, handing a role it holds to the next
// candidate, and waits for it.
func (c *Controller) Close() {
	c.cancel()
	<-c.done
}

func (c *Controller) run(ctx context.Context) {
	for ctx.Err() == nil {
		lost, resign, err := c.store.Campaign(ctx, c.nodeID)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			c.log.Warn().Err(err).Dur("retry_in", c.interval).Msg("controller campaign failed")
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.interval):
			}
			continue
		}
		c.log.Info().Msg("this broker is the controller")
		c.lead(ctx, lost)
		resign()
	}
}

// lead does the role's work until it is lost or ctx ends.
func (c *Controller) lead(ctx context.Context, lost <-chan struct{}) {
	wake := make(chan struct{}, 1)
	unsubscribe := c.store.Subscribe(func(Event) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer unsubscribe()
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		select {
		case <-lost:
			c.log.Warn().Msg("lost the controller role")
			return
		default:
		}
		c.pass(ctx)
		c.passes.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-lost:
			c.log.Warn().Msg("lost the controller role")
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

// pendingWrite is a partition state a pass decided on.
type pendingWrite struct {
	st   PartitionState
	what string
}

const (
	// controllerWriters is how many partition states a pass writes at
	// once: after a broker dies, every partition it led needs a new
	// leader, and one etcd round trip at a time would make the last of
	// them wait for all the others.
	controllerWriters = 16
	// controllerWriteTimeout bounds one write. A write proposed to an etcd
	// leader that then died is otherwise answered only after etcd's
	// request timeout (7 s by default); every write is a compare-and-swap,
	// so the next pass simply decides again.
	controllerWriteTimeout = 2 * time.Second
)

// pass makes one round over every topic's partitions, then writes what
// it decided.
func (c *Controller) pass(ctx context.Context) {
	var writes []pendingWrite
	c.decide(func(st PartitionState, what string) { writes = append(writes, pendingWrite{st, what}) })
	if len(writes) == 0 {
		return
	}
	next := make(chan pendingWrite)
	var wg sync.WaitGroup
	for range min(controllerWriters, len(writes)) {
		safe.Go(&wg, c.log, "controller writer", func() {
			for w := range next {
				c.write(ctx, w.st, w.what)
			}
		})
	}
	for _, w := range writes {
		next <- w
	}
	close(next)
	wg.Wait()
}

// decide reads the cluster once and calls write for every partition
// state that should change.
func (c *Controller) decide(write func(st PartitionState, what string)) {
	brokers := c.store.Brokers()
	live := make(map[int32]bool, len(brokers))
	for _, b := range brokers {
		live[b.NodeID] = true
	}
	for _, t := range c.store.Topics() {
		have := map[int32]PartitionState{}
		for _, st := range c.store.PartitionStates(t.Name) {
			have[st.Partition] = st
		}
		rf := max(int(t.ReplicationFactor), 1)
		for p := range t.Partitions {
			st, ok := have[p]
			if !ok {
				n := rf
				if len(brokers) < rf {
					if len(have) == 0 || len(brokers) == 0 {
						c.log.Debug().Str("topic", t.Name).Int32("partition", p).Int("replication_factor", rf).
							Int("live_brokers", len(brokers)).Msg("waiting for brokers to place a partition")
						continue
					}
					// Brokers died while the topic's partitions were being
					// placed (a controller that dies mid-pass leaves some
					// unplaced): placing the rest on the live brokers, with
					// fewer replicas, beats leaving them unavailable.
					n = len(brokers)
					c.log.Warn().Str("topic", t.Name).Int32("partition", p).Int("replication_factor", rf).
						Int("live_brokers", n).Msg("placing a partition with fewer replicas than its topic's replication factor")
				}
				replicas, err := AssignReplicas(brokers, p, 1, n)
				if err != nil {
					c.log.Error().Err(err).Str("topic", t.Name).Int32("partition", p).Msg("cannot place partition")
					continue
				}
				st = PartitionState{Topic: t.Name, TopicID: t.ID, Partition: p, Replicas: replicas[0], Leader: replicas[0][0], ISR: replicas[0]}
				write(st, "placed partition")
				continue
			}
			next, reassigned := NextReassignmentState(st, live) // see reassign.go
			next, changed := NextPartitionState(next, live)
			if next.Leader == NoLeader && c.uncleanElection(t) {
				if u, err := ElectUncleanLeader(next, live); err == nil {
					write(u, "unclean leader election: no in-sync replica is live")
					continue
				}
			}
			if changed || reassigned {
				write(next, "changed partition leadership or isr")
			}
		}
	}
}

// uncleanElection is the topic's unclean.leader.election.enable, else
// the cluster-wide dynamic default, else false (Kafka's default).
func (c *Controller) uncleanElection(t Topic) bool {
	if v, ok := t.Configs["unclean.leader.election.enable"]; ok {
		return v == "true"
	}
	return c.store.BrokerConfigs(-1)["unclean.leader.election.enable"] == "true"
}

// write stores a state decided by a pass; a conflict is left to the next
// pass.
func (c *Controller) write(ctx context.Context, st PartitionState, what string) {
	ctx, cancel := context.WithTimeout(ctx, controllerWriteTimeout)
	defer cancel()
	if _, err := c.store.SetPartitionState(ctx, st); err != nil {
		lvl := c.log.Warn()
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrUnknownTopic) || errors.Is(err, ErrClosed) || (ctx.Err() != nil && errors.Is(err, context.Canceled)) {
			lvl = c.log.Debug() // a race, or the controller is stopping
		}
		lvl.Err(err).Str("topic", st.Topic).Int32("partition", st.Partition).Msg("partition state write lost a race; deciding again")
		return
	}
	c.log.Info().Str("topic", st.Topic).Int32("partition", st.Partition).Ints32("replicas", st.Replicas).
		Int32("leader", st.Leader).Int32("leader_epoch", st.LeaderEpoch).Ints32("isr", st.ISR).Msg(what)
}
