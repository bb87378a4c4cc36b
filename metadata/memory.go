package metadata

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// MemoryStore is a Store held in memory, for unit tests of the broker. It
// has the semantics of EtcdStore: the same errors, deep copies out, and
// subscribers told of each change, in commit order, before the write that
// made it returns. Subscribers are called synchronously by the writing
// goroutine, one write at a time; like EtcdStore's, they must not call the
// store's write methods.
//
// Peer gives further stores on the same state, as other brokers' stores on
// one etcd would be: each has its own subscribers and its own broker
// registration, which its Close removes.
type MemoryStore struct {
	c    *memCluster
	subs subscribers
	// closed is protected by c.mu.
	closed bool
}

// memCluster is the state MemoryStores made by one NewMemoryStore share.
type memCluster struct {
	clusterID string // read-only

	// writeMu serializes writes together with their delivery to
	// subscribers, so every subscriber of every store sees changes in
	// commit order. Taken before mu.
	writeMu sync.Mutex

	// mu protects the state below and every store's closed flag.
	mu struct {
		sync.Mutex
		topics        map[string]Topic // values never mutated once stored
		byID          map[TopicID]string
		brokers       map[int32]memBroker
		brokerConfigs map[int32]map[string]string // maps never mutated once stored
		stores        []*MemoryStore              // open stores, in creation order
		// partitions holds partition states by topic and partition;
		// states are never mutated once stored. version counts writes, so
		// each stored state gets a version of its own, as etcd's
		// revisions do.
		partitions map[string]map[int32]PartitionState
		version    int64
		// nextProducerID is the first producer id not handed out yet.
		nextProducerID int64
		// candidates are the controller candidacies in campaign order;
		// the first is the controller (election.go).
		candidates []*memCandidate
		// deleted holds the deletion records DeleteTopic made, by id
		// (kept for the store's life: tests are shorter than a day).
		deleted map[TopicID]DeletedTopic
	}
}

// memBroker is a registration and the store that made it.
type memBroker struct {
	b     Broker
	owner *MemoryStore
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store whose cluster id is clusterID.
func NewMemoryStore(clusterID string) *MemoryStore {
	c := &memCluster{clusterID: clusterID}
	c.mu.topics = map[string]Topic{}
	c.mu.byID = map[TopicID]string{}
	c.mu.brokers = map[int32]memBroker{}
	c.mu.brokerConfigs = map[int32]map[string]string{}
	c.mu.partitions = map[string]map[int32]PartitionState{}
	c.mu.deleted = map[TopicID]DeletedTopic{}
	return c.newStore()
}

// Peer returns another store on m's state, as a second broker's store on
// the same etcd would be. m need not be open.
func (m *MemoryStore) Peer() *MemoryStore {
	return m.c.newStore()
}

func (c *memCluster) newStore() *MemoryStore {
	m := &MemoryStore{c: c}
	c.mu.Lock()
	c.mu.stores = append(c.mu.stores, m)
	c.mu.Unlock()
	return m
}

// Sync implements Store: every write is visible to every store of the
// cluster once it returns, so there is nothing to wait for.
func (m *MemoryStore) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metadata: sync: %w", err)
	}
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.closed {
		return fmt.Errorf("metadata: sync: %w", ErrClosed)
	}
	return nil
}

// write runs change under the write lock and then delivers the events it
// returns to every open store's subscribers. change runs with c.mu held.
func (m *MemoryStore) write(ctx context.Context, op string, change func() ([]Event, error)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metadata: %s: %w", op, err)
	}
	c := m.c
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	if m.closed {
		c.mu.Unlock()
		return fmt.Errorf("metadata: %s: %w", op, ErrClosed)
	}
	events, err := change()
	stores := slices.Clone(c.mu.stores)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	for _, s := range stores {
		s.subs.publish(events)
	}
	return nil
}

// ClusterID implements Store.
func (m *MemoryStore) ClusterID() string { return m.c.clusterID }

// Topics implements Store.
func (m *MemoryStore) Topics() []Topic {
	m.c.mu.Lock()
	out := make([]Topic, 0, len(m.c.mu.topics))
	for _, t := range m.c.mu.topics {
		out = append(out, copyTopic(t))
	}
	m.c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic implements Store.
func (m *MemoryStore) Topic(name string) (Topic, bool) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	t, ok := m.c.mu.topics[name]
	if !ok {
		return Topic{}, false
	}
	return copyTopic(t), true
}

// TopicByID implements Store.
func (m *MemoryStore) TopicByID(id TopicID) (Topic, bool) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	name, ok := m.c.mu.byID[id]
	if !ok {
		return Topic{}, false
	}
	return copyTopic(m.c.mu.topics[name]), true
}

// CreateTopic implements Store, with EtcdStore's extra errors.
func (m *MemoryStore) CreateTopic(ctx context.Context, t Topic, assignment ...[]int32) (Topic, error) {
	if err := checkTopicName(t.Name); err != nil {
		return Topic{}, err
	}
	if t.Partitions <= 0 {
		return Topic{}, fmt.Errorf("%w: topic %q with %d partitions", ErrInvalidPartitions, t.Name, t.Partitions)
	}
	t = Topic{Name: t.Name, Partitions: t.Partitions, Configs: copyConfigs(t.Configs), ReplicationFactor: t.ReplicationFactor}
	if len(assignment) != 0 && len(assignment) != int(t.Partitions) {
		return Topic{}, fmt.Errorf("%w: topic %q: %d replica lists for %d partitions", ErrInvalidPartitionState, t.Name, len(assignment), t.Partitions)
	}
	if _, err := placedStates(t, 0, assignment); err != nil {
		return Topic{}, err
	}
	err := m.write(ctx, fmt.Sprintf("create topic %q", t.Name), func() ([]Event, error) {
		if _, ok := m.c.mu.topics[t.Name]; ok {
			return nil, fmt.Errorf("%w: %q", ErrTopicExists, t.Name)
		}
		for {
			id, err := newID()
			if err != nil {
				return nil, err
			}
			if _, taken := m.c.mu.byID[id]; !taken {
				t.ID = id
				break
			}
		}
		m.c.mu.topics[t.Name] = t
		m.c.mu.byID[t.ID] = t.Name
		delete(m.c.mu.partitions, t.Name) // left by a topic of the same name that vanished
		events := []Event{{Kind: TopicCreated, Topic: t}}
		states, _ := placedStates(t, 0, assignment) // checked above
		return append(events, m.storePlacedLocked(states)...), nil
	})
	if err != nil {
		return Topic{}, err
	}
	return copyTopic(t), nil
}

// DeleteTopic implements Store.
func (m *MemoryStore) DeleteTopic(ctx context.Context, name string) error {
	return m.write(ctx, fmt.Sprintf("delete topic %q", name), func() ([]Event, error) {
		t, ok := m.c.mu.topics[name]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
		}
		delete(m.c.mu.topics, name)
		delete(m.c.mu.byID, t.ID)
		delete(m.c.mu.partitions, name)
		m.c.mu.deleted[t.ID] = DeletedTopic{ID: t.ID, Name: name, Partitions: t.Partitions}
		return []Event{{Kind: TopicDeleted, Topic: t}}, nil
	})
}

// storePlacedLocked stores new partitions' first states, each with a
// version of its own, and returns their events. c.mu must be held.
func (m *MemoryStore) storePlacedLocked(states []PartitionState) []Event {
	var out []Event
	for _, st := range states {
		m.c.mu.version++
		st.Version = m.c.mu.version
		ps := m.c.mu.partitions[st.Topic]
		if ps == nil {
			ps = map[int32]PartitionState{}
			m.c.mu.partitions[st.Topic] = ps
		}
		ps[st.Partition] = st
		out = append(out, Event{Kind: PartitionChanged, Partition: copyPartition(st)})
	}
	return out
}

// Deleted implements Store.
func (m *MemoryStore) Deleted(id TopicID) bool {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	_, ok := m.c.mu.deleted[id]
	return ok
}

// Faults implements Store: a MemoryStore holds no encoded values, so none.
func (m *MemoryStore) Faults() []Fault { return nil }

// TopicFault implements Store: always nil (see Faults).
func (m *MemoryStore) TopicFault(string) error { return nil }

// SetTopicConfigs implements Store.
func (m *MemoryStore) SetTopicConfigs(ctx context.Context, name string, configs map[string]string) error {
	configs = copyConfigs(configs)
	return m.updateTopic(ctx, name, "set configs of topic", func(t *Topic) ([]PartitionState, error) {
		t.Configs = configs
		return nil, nil
	})
}

// SetPartitionCount implements Store.
func (m *MemoryStore) SetPartitionCount(ctx context.Context, name string, n int32, assignment ...[]int32) error {
	return m.updateTopic(ctx, name, "set partition count of topic", func(t *Topic) ([]PartitionState, error) {
		if n <= t.Partitions {
			return nil, fmt.Errorf("%w: topic %q has %d partitions, asked for %d", ErrInvalidPartitions, name, t.Partitions, n)
		}
		first := t.Partitions
		t.Partitions = n
		if len(assignment) != 0 && int64(first)+int64(len(assignment)) != int64(n) {
			return nil, fmt.Errorf("%w: topic %q: %d replica lists for partitions %d..%d", ErrInvalidPartitionState, name, len(assignment), first, n-1)
		}
		return placedStates(*t, first, assignment)
	})
}

// updateTopic replaces a topic with change applied to a copy of it, and
// stores the partition states change returns with it.
func (m *MemoryStore) updateTopic(ctx context.Context, name, what string, change func(*Topic) ([]PartitionState, error)) error {
	return m.write(ctx, fmt.Sprintf("%s %q", what, name), func() ([]Event, error) {
		old, ok := m.c.mu.topics[name]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
		}
		t := copyTopic(old)
		states, err := change(&t)
		if err != nil {
			return nil, err
		}
		m.c.mu.topics[name] = t
		return append([]Event{{Kind: TopicUpdated, Topic: t}}, m.storePlacedLocked(states)...), nil
	})
}

// Partition implements Store.
func (m *MemoryStore) Partition(topic string, partition int32) (PartitionState, bool) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	st, ok := m.c.mu.partitions[topic][partition]
	if !ok {
		return PartitionState{}, false
	}
	return copyPartition(st), true
}

// PartitionStates implements Store.
func (m *MemoryStore) PartitionStates(topic string) []PartitionState {
	m.c.mu.Lock()
	var out []PartitionState
	for _, st := range m.c.mu.partitions[topic] {
		out = append(out, copyPartition(st))
	}
	m.c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}

// SetPartitionState implements Store.
func (m *MemoryStore) SetPartitionState(ctx context.Context, st PartitionState) (int64, error) {
	if err := st.Check(); err != nil {
		return 0, err
	}
	st = copyPartition(st)
	op := fmt.Sprintf("set state of partition %s-%d", st.Topic, st.Partition)
	err := m.write(ctx, op, func() ([]Event, error) {
		t, ok := m.c.mu.topics[st.Topic]
		if !ok || t.ID != st.TopicID || st.Partition >= t.Partitions {
			return nil, fmt.Errorf("%w: %s-%d (topic id %s)", ErrUnknownTopic, st.Topic, st.Partition, st.TopicID)
		}
		if cur := m.c.mu.partitions[st.Topic][st.Partition].Version; cur != st.Version {
			return nil, fmt.Errorf("%w: %s at version %d", ErrConflict, op, st.Version)
		}
		m.c.mu.version++
		st.Version = m.c.mu.version
		ps := m.c.mu.partitions[st.Topic]
		if ps == nil {
			ps = map[int32]PartitionState{}
			m.c.mu.partitions[st.Topic] = ps
		}
		ps[st.Partition] = st
		return []Event{{Kind: PartitionChanged, Partition: copyPartition(st)}}, nil
	})
	if err != nil {
		return 0, err
	}
	return st.Version, nil
}

// BrokerConfigs implements Store.
func (m *MemoryStore) BrokerConfigs(nodeID int32) map[string]string {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return copyConfigs(m.c.mu.brokerConfigs[nodeID])
}

// SetBrokerConfigs implements Store.
func (m *MemoryStore) SetBrokerConfigs(ctx context.Context, nodeID int32, configs map[string]string) error {
	configs = copyConfigs(configs)
	return m.write(ctx, fmt.Sprintf("set configs of broker %d", nodeID), func() ([]Event, error) {
		m.c.mu.brokerConfigs[nodeID] = configs
		return nil, nil
	})
}

// RegisterBroker implements Store. The registration lasts until this
// store's Close; one store registers one node id.
func (m *MemoryStore) RegisterBroker(ctx context.Context, b Broker) error {
	op := fmt.Sprintf("register broker %d", b.NodeID)
	return m.write(ctx, op, func() ([]Event, error) {
		for id, r := range m.c.mu.brokers {
			if r.owner == m && id != b.NodeID {
				return nil, fmt.Errorf("metadata: %s: this store already registered broker %d", op, id)
			}
		}
		m.c.mu.brokers[b.NodeID] = memBroker{b: b, owner: m}
		return nil, nil
	})
}

// Brokers implements Store.
func (m *MemoryStore) Brokers() []Broker {
	m.c.mu.Lock()
	out := make([]Broker, 0, len(m.c.mu.brokers))
	for _, r := range m.c.mu.brokers {
		b := r.b
		b.Listeners = slices.Clone(b.Listeners)
		out = append(out, b)
	}
	m.c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// Subscribe implements Store. After Close, fn is never called.
func (m *MemoryStore) Subscribe(fn func(Event)) (unsubscribe func()) {
	return m.subs.add(fn)
}

// Close implements Store: it removes this store's broker registration and
// its subscribers. Other stores from Peer stay open. Calling it again does
// nothing.
func (m *MemoryStore) Close() error {
	c := m.c
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	if !m.closed {
		m.closed = true
		for id, r := range c.mu.brokers {
			if r.owner == m {
				delete(c.mu.brokers, id)
			}
		}
		c.mu.stores = slices.DeleteFunc(c.mu.stores, func(s *MemoryStore) bool { return s == m })
		for _, cand := range slices.Clone(c.mu.candidates) {
			if cand.store == m {
				c.dropCandidateLocked(cand)
			}
		}
	}
	c.mu.Unlock()
	m.subs.closeAll()
	return nil
}
