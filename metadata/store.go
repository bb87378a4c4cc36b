package metadata

import (
	"context"
	"errors"
)

// Sentinel errors a Store returns; the broker maps them to Kafka codes.
var (
	// ErrTopicExists: CreateTopic of a name already present (TOPIC_ALREADY_EXISTS).
	ErrTopicExists = errors.New("metadata: topic already exists")
	// ErrUnknownTopic: the named topic does not exist (UNKNOWN_TOPIC_OR_PARTITION).
	ErrUnknownTopic = errors.New("metadata: unknown topic")
	// ErrInvalidPartitions: a partition count that is not larger than the current one (INVALID_PARTITIONS).
	ErrInvalidPartitions = errors.New("metadata: invalid partition count")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("metadata: store closed")
)

// TopicID is a topic's 16-byte UUID, as Kafka puts in Metadata v10+ and Fetch v13+.
type TopicID [16]byte

// Topic is a topic as the cluster knows it. Values are immutable once
// returned: a Store hands out copies.
type Topic struct {
	Name       string
	ID         TopicID
	Partitions int32
	// ReplicationFactor is how many replicas the controller gives each
	// partition; 0 (a topic stored before it was recorded) means 1.
	ReplicationFactor int16
	// Configs holds the topic configs set explicitly (CreateTopics configs,
	// AlterConfigs); defaults come from the broker and are not stored here.
	Configs map[string]string
}

// Broker is a registered broker, as Metadata lists it.
type Broker struct {
	NodeID int32
	Host   string // the endpoint of its first listener
	Port   int32
	Rack   string // empty: no rack
	// Listeners are its advertised endpoints by listener name (Kafka's
	// advertised.listeners), first listener first; empty for a broker
	// with a single, unnamed one (Host and Port).
	Listeners []Endpoint
}

// Endpoint is one advertised listener of a broker.
type Endpoint struct {
	Name string
	Host string
	Port int32
}

// EndpointFor returns the broker's endpoint on the named listener, as
// Metadata answers a client connected to that listener; a broker without
// that listener answers with its first one.
func (b Broker) EndpointFor(listener string) (string, int32) {
	for _, e := range b.Listeners {
		if e.Name == listener {
			return e.Host, e.Port
		}
	}
	return b.Host, b.Port
}

// EventKind says what changed in an Event.
type EventKind int

// The kinds of change a Store reports.
const (
	TopicCreated EventKind = iota + 1
	TopicUpdated           // configs or partition count changed
	// TopicDeleted: the topic was deleted explicitly (DeleteTopic): a
	// deletion record names its id (see doc.go), so its data may go.
	TopicDeleted
	// PartitionChanged: a partition's state was written (Event.Partition).
	// Removing a topic removes its partition states with no event of
	// their own: TopicDeleted says it.
	PartitionChanged
	// TopicUnavailable: the topic left the cache without an explicit
	// deletion: its key vanished with no deletion record for its id (etcd
	// emptied or restored, a hand-made delete), another topic id took its
	// name, or its value became one of a newer format than this Gregor
	// reads. Its data must be kept: the metadata may be repaired, and the
	// same topic id then comes back with TopicCreated.
	TopicUnavailable
)

// Fault is a metadata value the store cannot read. For a topic, partition
// state or dynamic config the store keeps serving the last value it read
// well (if any) and reports the key until a readable value replaces it or
// the key goes.
type Fault struct {
	Key string
	Err error
	// Newer: the value is of a newer format version than this Gregor
	// reads (written by a newer release): upgrade Gregor.
	Newer bool
}

// Event is one change to cluster metadata, delivered to listeners in the
// order the changes were committed.
type Event struct {
	Kind  EventKind
	Topic Topic // for TopicDeleted and TopicUnavailable, the topic as it was before; unset for PartitionChanged
	// Partition is the new state, for PartitionChanged.
	Partition PartitionState
}

// Store is the cluster metadata the broker reads and changes: topics, their
// configs and partition counts, registered brokers and dynamic broker
// configs. Reads come from a local cache kept current by a watch; writes go
// to the backing store and return only once the local cache reflects them,
// so a caller reads its own writes.
//
// Implementations: the etcd-backed store (production) and an in-memory one
// for unit tests; both pass the same conformance suite.
type Store interface {
	// ClusterID is the cluster's id, created once when the cluster first starts.
	ClusterID() string

	// Topics returns every topic, sorted by name.
	Topics() []Topic
	// Topic returns one topic by name.
	Topic(name string) (Topic, bool)
	// TopicByID returns one topic by id.
	TopicByID(id TopicID) (Topic, bool)
	// CreateTopic creates a topic with a fresh random ID (t.ID is ignored)
	// and returns it; ErrTopicExists if the name is taken. With an
	// assignment (one replica list per partition, partition 0 first, the
	// preferred leader first in each), the partitions' states are written
	// with the topic, atomically as readers see it: the first replica
	// leads at epoch 0 and every replica is in the ISR. Without one the
	// controller places them later.
	CreateTopic(ctx context.Context, t Topic, assignment ...[]int32) (Topic, error)
	// DeleteTopic removes a topic and its partition states, and records
	// its deletion by id (Deleted) in the same write; ErrUnknownTopic if
	// absent.
	DeleteTopic(ctx context.Context, name string) error
	// Deleted reports whether a deletion record names the topic id: only
	// then may a broker remove that topic's data.
	Deleted(id TopicID) bool
	// SetTopicConfigs replaces the set of explicitly set configs of a topic.
	SetTopicConfigs(ctx context.Context, name string, configs map[string]string) error
	// SetPartitionCount raises a topic's partition count; ErrInvalidPartitions
	// if n is not larger than the current count. An assignment (one
	// replica list per new partition, as for CreateTopic) writes the new
	// partitions' states with the count.
	SetPartitionCount(ctx context.Context, name string, n int32, assignment ...[]int32) error

	// Faults returns the values the store cannot read, by key.
	Faults() []Fault
	// TopicFault returns why the named topic's value cannot be read, or
	// nil when it reads well (or is absent).
	TopicFault(name string) error

	// Partition returns the recorded state of one partition of a topic;
	// false when none is recorded or the topic does not exist.
	Partition(topic string, partition int32) (PartitionState, bool)
	// PartitionStates returns the recorded states of a topic's partitions,
	// by partition number (partitions with no recorded state are absent).
	PartitionStates(topic string) []PartitionState
	// SetPartitionState writes st, compare-and-swap: only if the stored
	// state's version is still st.Version (0: none stored yet), else
	// ErrConflict. The topic must exist with id st.TopicID and more than
	// st.Partition partitions (else ErrUnknownTopic), and st must pass
	// Check (else ErrInvalidPartitionState). It returns the new version.
	SetPartitionState(ctx context.Context, st PartitionState) (int64, error)

	// BrokerConfigs returns the dynamic configs set for one broker.
	BrokerConfigs(nodeID int32) map[string]string
	// SetBrokerConfigs replaces the dynamic configs of one broker.
	SetBrokerConfigs(ctx context.Context, nodeID int32, configs map[string]string) error

	// RegisterBroker announces this broker under a lease; its registration
	// disappears when the process dies or loses the backing store.
	RegisterBroker(ctx context.Context, b Broker) error
	// Brokers returns the live brokers, sorted by node id.
	Brokers() []Broker
	// RegistrationAlive reports whether this broker's registration is
	// certainly still live: its lease was renewed recently enough that it
	// cannot have expired yet, and after a lost lease the cache has caught
	// up with the new registration. A broker must not act as a partition
	// leader while it is false (fencing): the controller may have elected
	// another.
	RegistrationAlive() bool

	// Campaign blocks until this store's broker, nodeID, is elected
	// controller (or ctx ends, or the store closes). The channel it returns
	// is closed when the role is lost: the broker lost the backing store
	// for longer than its lease, the store closed, or resign was called
	// (which hands the role to the next candidate; calling it again does
	// nothing). At most one candidate holds the role at a time.
	Campaign(ctx context.Context, nodeID int32) (lost <-chan struct{}, resign func(), err error)
	// Controller returns the node id of the current controller, as this
	// store last saw it; false when there is none.
	Controller() (int32, bool)

	// AllocateProducerIDs reserves n producer ids, first .. first+n-1,
	// that no broker of the cluster was given before or will be again.
	AllocateProducerIDs(ctx context.Context, n int64) (first int64, err error)

	// Sync returns once this store's cache reflects every change committed
	// anywhere in the cluster before the call (or ctx ends, or the store
	// closes). The cache lags the backing store by however long its watch
	// takes, so another broker, or a client that asked another broker, may
	// have seen a newer state: a decision whose answer a client can check
	// against what it saw elsewhere (an admin election refused because the
	// preferred replica is not in the ISR) syncs first.
	Sync(ctx context.Context) error

	// Subscribe registers fn to be called, from one goroutine and in commit
	// order, for every change after the call. It returns a function that
	// removes the subscription.
	Subscribe(fn func(Event)) (unsubscribe func())

	// Close stops the watch and releases the lease.
	Close() error
}
