package metadata

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidTopicName: a topic name the key layout cannot hold (empty, or
// containing '/'). The broker checks Kafka's own name rules before calling
// the store; this is the store guarding its keys.
var ErrInvalidTopicName = errors.New("metadata: invalid topic name")

// ErrNewerVersion: a stored value of a newer format version than this
// Gregor reads, written by a newer release. Gregor never guesses at such a
// value: it refuses to start on one, and stops serving a topic whose value
// turns into one (keeping its data). Upgrade Gregor.
var ErrNewerVersion = errors.New("metadata: value of a newer format version; upgrade Gregor")

// valueVersion is the version every value is written with; see doc.go for
// the rule on reading other versions.
const valueVersion = 1

// String returns the id as Kafka prints it: 22 characters of unpadded
// base64url.
func (id TopicID) String() string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// ParseTopicID reads an id in the form TopicID.String writes.
func ParseTopicID(s string) (TopicID, error) {
	var id TopicID
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("metadata: parse topic id %q: %w", s, err)
	}
	if len(b) != len(id) {
		return id, fmt.Errorf("metadata: parse topic id %q: %d bytes, want %d", s, len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// newID returns 16 random bytes that are not all zero and whose text form
// does not start with '-' (Kafka avoids such ids because command-line tools
// take them for flags).
func newID() (TopicID, error) {
	for {
		var id TopicID
		if _, err := rand.Read(id[:]); err != nil {
			return id, fmt.Errorf("metadata: random id: %w", err)
		}
		if id != (TopicID{}) && !strings.HasPrefix(id.String(), "-") {
			return id, nil
		}
	}
}

// checkTopicName refuses names that would break the key layout.
func checkTopicName(name string) error {
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%w: %q", ErrInvalidTopicName, name)
	}
	return nil
}

// copyConfigs returns a copy of m that is never nil, so callers may write to
// what a store hands them.
func copyConfigs(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	maps.Copy(out, m)
	return out
}

// copyTopic returns t with its own Configs map.
func copyTopic(t Topic) Topic {
	t.Configs = copyConfigs(t.Configs)
	return t
}

// Keys, relative to the prefix.
const (
	clusterIDKey     = "cluster/id"
	topicsDir        = "topics/"
	brokersDir       = "brokers/"
	brokerConfigsDir = "configs/brokers/"
	deletedTopicsDir = "deleted-topics/"
)

// deletionRecordTTL is how long a deletion record outlives DeleteTopic:
// long enough for every broker, even one down for hours, to see it and
// remove the topic's data; a broker that comes back later finds the
// topic's directories of an id etcd does not know, and sets them aside
// as stray rather than removing them.
const deletionRecordTTL = 24 * time.Hour

func parseNodeID(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("node id %q: %w", s, err)
	}
	if strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("node id %q is not in canonical decimal form", s)
	}
	return int32(n), nil
}

// The JSON forms of the values; see doc.go.
type (
	clusterValue struct {
		V  int    `json:"v"`
		ID string `json:"id"`
	}
	topicValue struct {
		V          int               `json:"v"`
		ID         string            `json:"id"`
		Partitions int32             `json:"partitions"`
		Configs    map[string]string `json:"configs"`
		// ReplicationFactor was added within v1: absent (0) reads as 1.
		ReplicationFactor int16 `json:"replication_factor,omitempty"`
	}
	brokerValue struct {
		V      int    `json:"v"`
		NodeID int32  `json:"node_id"`
		Host   string `json:"host"`
		Port   int32  `json:"port"`
		Rack   string `json:"rack"`
		// Listeners was added within v1: absent means the one endpoint
		// above.
		Listeners []endpointValue `json:"listeners,omitempty"`
	}
	endpointValue struct {
		Name string `json:"name"`
		Host string `json:"host"`
		Port int32  `json:"port"`
	}
	brokerConfigsValue struct {
		V       int               `json:"v"`
		Configs map[string]string `json:"configs"`
	}
	deletedTopicValue struct {
		V          int    `json:"v"`
		Name       string `json:"name"`
		Partitions int32  `json:"partitions"`
		DeletedMs  int64  `json:"deleted_ms"`
	}
)

// DeletedTopic is a deletion record: a topic DeleteTopic removed.
type DeletedTopic struct {
	ID         TopicID
	Name       string
	Partitions int32
	DeletedMs  int64 // unix milliseconds
}

func encodeDeletedTopic(d DeletedTopic) ([]byte, error) {
	return marshal(deletedTopicValue{V: valueVersion, Name: d.Name, Partitions: d.Partitions, DeletedMs: d.DeletedMs})
}

// decodeDeletedTopic reads a deletion record; the id comes from the key.
func decodeDeletedTopic(idText string, b []byte) (DeletedTopic, error) {
	id, err := ParseTopicID(idText)
	if err != nil {
		return DeletedTopic{}, err
	}
	var v deletedTopicValue
	if err := decodeStrict(b, &v, &v.V); err != nil {
		return DeletedTopic{}, err
	}
	if err := checkTopicName(v.Name); err != nil {
		return DeletedTopic{}, err
	}
	return DeletedTopic{ID: id, Name: v.Name, Partitions: v.Partitions, DeletedMs: v.DeletedMs}, nil
}

// placedStates are the first states of partitions first.. of topic t as
// assignment places them: the first replica leads at epoch 0, every
// replica in the ISR (all are empty). Each is checked.
func placedStates(t Topic, first int32, assignment [][]int32) ([]PartitionState, error) {
	out := make([]PartitionState, 0, len(assignment))
	for i, replicas := range assignment {
		if len(replicas) == 0 {
			return nil, fmt.Errorf("%w: %s-%d: empty replica list", ErrInvalidPartitionState, t.Name, first+int32(i))
		}
		st := PartitionState{Topic: t.Name, TopicID: t.ID, Partition: first + int32(i),
			Replicas: slices.Clone(replicas), Leader: replicas[0], ISR: slices.Clone(replicas)}
		if err := st.Check(); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// decodeStrict parses b into v and checks the version field through ver.
func decodeStrict(b []byte, v any, ver *int) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return errors.New("decode: trailing data after value")
	}
	if *ver > valueVersion {
		return fmt.Errorf("%w: value version %d, this Gregor reads up to %d", ErrNewerVersion, *ver, valueVersion)
	}
	if *ver != valueVersion {
		return fmt.Errorf("value version %d, this Gregor reads %d", *ver, valueVersion)
	}
	return nil
}

func encodeCluster(id string) ([]byte, error) {
	return marshal(clusterValue{V: valueVersion, ID: id})
}

func decodeCluster(b []byte) (string, error) {
	var v clusterValue
	if err := decodeStrict(b, &v, &v.V); err != nil {
		return "", err
	}
	if _, err := ParseTopicID(v.ID); err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	return v.ID, nil
}

func encodeTopic(t Topic) ([]byte, error) {
	return marshal(topicValue{
		V:                 valueVersion,
		ID:                t.ID.String(),
		Partitions:        t.Partitions,
		Configs:           copyConfigs(t.Configs),
		ReplicationFactor: t.ReplicationFactor,
	})
}

// decodeTopic reads a topic value; name comes from the key.
func decodeTopic(name string, b []byte) (Topic, error) {
	var v topicValue
	if err := decodeStrict(b, &v, &v.V); err != nil {
		return Topic{}, err
	}
	id, err := ParseTopicID(v.ID)
	if err != nil {
		return Topic{}, err
	}
	if id == (TopicID{}) {
		return Topic{}, errors.New("topic id is zero")
	}
	if v.Partitions <= 0 {
		return Topic{}, fmt.Errorf("partition count %d", v.Partitions)
	}
	if v.ReplicationFactor < 0 {
		return Topic{}, fmt.Errorf("replication factor %d", v.ReplicationFactor)
	}
	return Topic{Name: name, ID: id, Partitions: v.Partitions, Configs: copyConfigs(v.Configs), ReplicationFactor: v.ReplicationFactor}, nil
}

func encodeBroker(b Broker) ([]byte, error) {
	v := brokerValue{V: valueVersion, NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack}
	for _, e := range b.Listeners {
		v.Listeners = append(v.Listeners, endpointValue(e))
	}
	return marshal(v)
}

// decodeBroker reads a broker value whose key names nodeID.
func decodeBroker(nodeID int32, b []byte) (Broker, error) {
	var v brokerValue
	if err := decodeStrict(b, &v, &v.V); err != nil {
		return Broker{}, err
	}
	if v.NodeID != nodeID {
		return Broker{}, fmt.Errorf("node_id %d under key of node %d", v.NodeID, nodeID)
	}
	if v.Port < 0 || v.Port > 65535 {
		return Broker{}, fmt.Errorf("port %d out of range", v.Port)
	}
	out := Broker{NodeID: v.NodeID, Host: v.Host, Port: v.Port, Rack: v.Rack}
	for _, e := range v.Listeners {
		if e.Name == "" || e.Port < 0 || e.Port > 65535 {
			return Broker{}, fmt.Errorf("listener %+v: empty name or port out of range", e)
		}
		out.Listeners = append(out.Listeners, Endpoint(e))
	}
	return out, nil
}

func encodeBrokerConfigs(configs map[string]string) ([]byte, error) {
	return marshal(brokerConfigsValue{V: valueVersion, Configs: copyConfigs(configs)})
}

func decodeBrokerConfigs(b []byte) (map[string]string, error) {
	var v brokerConfigsValue
	if err := decodeStrict(b, &v, &v.V); err != nil {
		return nil, err
	}
	return copyConfigs(v.Configs), nil
}

// marshal encodes the value types above. They hold only strings, integers
// and string maps, which encoding/json does not fail on; the error is passed
// on rather than assumed away.
func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("metadata: encode %T: %w", v, err)
	}
	return b, nil
}
