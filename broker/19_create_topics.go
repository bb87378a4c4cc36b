package broker

// CreateTopics (key 19), v0-v7.
//
// Behavior:
//   - Each topic is checked on its own, in Kafka's order: a name given more
//     than once in the request gets INVALID_REQUEST at every occurrence;
//     invalid names, internal names (__consumer_offsets, __transaction_state:
//     only the broker creates them) and names that collide with an existing
//     topic once '.' and '_' are unified get INVALID_TOPIC_EXCEPTION; taken
//     names get TOPIC_ALREADY_EXISTS.
//   - Configs: a null value, an unknown name or an invalid value gets
//     INVALID_CONFIG; a name given twice keeps its last value, as in Kafka.
//   - NumPartitions -1 takes num.partitions and ReplicationFactor -1 takes
//     default.replication.factor; other values <= 0 get INVALID_PARTITIONS /
//     INVALID_REPLICATION_FACTOR, and a factor above the number of live
//     brokers gets INVALID_REPLICATION_FACTOR.
//   - A manual ReplicaAssignment needs NumPartitions and ReplicationFactor at
//     -1 (INVALID_REQUEST); its partitions must be 0..n-1, each exactly once,
//     each with the same number of distinct live brokers
//     (INVALID_REPLICA_ASSIGNMENT). The partitions are placed as assigned,
//     the first replica of each list its preferred leader, as in Kafka.
//   - Otherwise the replicas are placed over the live brokers by
//     metadata.AssignReplicas. Either way the partitions' states (leader the
//     first replica, every replica in the ISR) are written in the etcd
//     transaction that creates the topic, so no broker ever shows the topic
//     without its partitions, and the answer waits until this broker's
//     metadata cache has applied the write: every later request here sees
//     the topic with a leader for every partition.
//   - One request creates at most maxPartitionsPerRequest partitions in all,
//     Kafka's bound on records per controller operation; topics beyond it get
//     POLICY_VIOLATION.
//   - ValidateOnly runs every check and creates nothing.
//   - TimeoutMillis > 0 bounds the metadata write; running out of it gives
//     REQUEST_TIMED_OUT (the topic may or may not have been created, as in Kafka).
//   - v1+ carry error messages. v5+ return the partition count, replication
//     factor and every topic config as resolved, with its source; v7 the topic id.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

// maxPartitionsPerRequest bounds the partitions one CreateTopics or
// CreatePartitions request may add, as Kafka's controller bounds the records
// of one operation (QuorumController.MAX_RECORDS_PER_USER_OP).
const maxPartitionsPerRequest = 10000

func (b *Broker) createTopicsHandler() handler {
	return handle(kmsg.CreateTopics.Int16(), 0, 7, b.handleCreateTopics)
}

func (b *Broker) handleCreateTopics(c *conn, req *kmsg.CreateTopicsRequest) (kmsg.Response, error) {
	if resp := b.createTopicsOverLimit(req); resp != nil { // limits.go
		return resp, nil
	}
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := adminRequestContext(c, req.TimeoutMillis)
	defer cancel()

	seen := make(map[string]int, len(req.Topics))
	for i := range req.Topics {
		seen[req.Topics[i].Topic]++
	}
	op := createTopicsOp{
		b:            b,
		ctx:          ctx,
		validateOnly: req.ValidateOnly,
		withConfigs:  req.Version >= 5,
		live:         b.liveBrokerIDs(),
		waitPlaced:   req.TimeoutMillis > 0,
		collisions:   topicCollisions{b: b},
		budget:       maxPartitionsPerRequest,
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if seen[rt.Topic] > 1 {
			err = adminErrorf(kerr.InvalidRequest, "Duplicate topic name.")
		} else {
			err = op.create(rt, &st)
		}
		if err != nil {
			st.ErrorCode = errCode(err)
			st.ErrorMessage = adminMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// createTopicsOp is the state one CreateTopics request shares across its topics.
type createTopicsOp struct {
	b            *Broker
	ctx          context.Context
	waitPlaced   bool // wait (within ctx) for the controller to place the new partitions
	validateOnly bool
	withConfigs  bool           // v5+: return the resolved configs
	live         map[int32]bool // live broker ids
	collisions   topicCollisions
	budget       int // partitions this request may still create
}

// create checks one topic and creates it (unless validate-only), filling
// the success fields of st. The error is what the client gets.
func (op *createTopicsOp) create(rt *kmsg.CreateTopicsRequestTopic, st *kmsg.CreateTopicsResponseTopic) error {
	b, name := op.b, rt.Topic
	if err := validateTopicName(name); err != nil {
		return adminErrorf(kerr.InvalidTopicException, "%v", err)
	}
	if isInternalTopic(name) {
		return adminErrorf(kerr.InvalidTopicException, "Topic '%s' is internal; the broker creates it when it is first needed.", name)
	}
	if _, exists := b.store.Topic(name); exists {
		return adminErrorf(kerr.TopicAlreadyExists, "Topic '%s' already exists.", name)
	}
	if other, collides := op.collisions.check(name); collides {
		return adminErrorf(kerr.InvalidTopicException, "Topic '%s' collides with existing topic: %s", name, other)
	}
	configs, err := b.creationConfigs(rt.Configs)
	if err != nil {
		return err
	}
	partitions, replication, assignment, err := b.creationLayout(rt, op.live)
	if err != nil {
		return err
	}
	if int(partitions) > op.budget {
		return adminErrorf(kerr.PolicyViolation, "Creating %d partitions would exceed the limit of %d new partitions per request.", partitions, maxPartitionsPerRequest)
	}
	op.budget -= int(partitions)

	var id metadata.TopicID
	if !op.validateOnly {
		if assignment == nil {
			assignment = b.placement(0, partitions, replication)
		}
		t, err := b.store.CreateTopic(op.ctx, metadata.Topic{Name: name, Partitions: partitions, ReplicationFactor: replication, Configs: configs}, assignment...)
		if err != nil {
			return b.metadataWriteError(err, "create topic", name)
		}
		id, partitions = t.ID, t.Partitions
		op.collisions.add(name)
		if op.waitPlaced {
			if err := b.waitPlaced(op.ctx, t); err != nil {
				return b.metadataWriteError(err, "place partitions of topic", name)
			}
		}
		b.log.Info().Str("topic", name).Stringer("topic_id", id).Int32("partitions", partitions).
			Int16("replication_factor", replication).Strs("configs", configPairs(configs)).Msg("created topic")
	}
	st.TopicID = id
	st.NumPartitions = partitions
	st.ReplicationFactor = replication
	if op.withConfigs {
		st.Configs = b.createdTopicConfigs(configs)
	}
	return nil
}

// creationConfigs checks the configs of a topic to create and returns them
// as the topic's explicitly set configs.
func (b *Broker) creationConfigs(cfgs []kmsg.CreateTopicsRequestTopicConfig) (map[string]string, error) {
	var nulls []string
	for _, cfg := range cfgs {
		if cfg.Value == nil {
			nulls = append(nulls, cfg.Name)
		}
	}
	if len(nulls) > 0 {
		return nil, adminErrorf(kerr.InvalidConfig, "Null value not supported for topic configs: %s", strings.Join(nulls, ","))
	}
	configs := make(map[string]string, len(cfgs))
	for _, cfg := range cfgs {
		if err := b.configs.validateTopicConfig(cfg.Name, cfg.Value); err != nil {
			return nil, adminErrorf(kerr.InvalidConfig, "%v", err)
		}
		configs[cfg.Name] = *cfg.Value
	}
	return configs, nil
}

// creationLayout returns the partition count and replication factor of a
// topic to create, from its counts or its manual assignment, and the
// manual assignment by partition (nil without one).
func (b *Broker) creationLayout(rt *kmsg.CreateTopicsRequestTopic, live map[int32]bool) (int32, int16, [][]int32, error) {
	if len(rt.ReplicaAssignment) > 0 {
		if rt.ReplicationFactor != -1 {
			return 0, 0, nil, adminErrorf(kerr.InvalidRequest, "A manual partition assignment was specified, but replication factor was not set to -1.")
		}
		if rt.NumPartitions != -1 {
			return 0, 0, nil, adminErrorf(kerr.InvalidRequest, "A manual partition assignment was specified, but numPartitions was not set to -1.")
		}
		if len(rt.ReplicaAssignment) > maxPartitionsPerRequest {
			return 0, 0, nil, adminErrorf(kerr.PolicyViolation, "Creating %d partitions would exceed the limit of %d new partitions per request.", len(rt.ReplicaAssignment), maxPartitionsPerRequest)
		}
		assigned := make(map[int32][]int32, len(rt.ReplicaAssignment))
		replicas := -1
		for _, a := range rt.ReplicaAssignment {
			if _, dup := assigned[a.Partition]; dup {
				return 0, 0, nil, adminErrorf(kerr.InvalidReplicaAssignment, "Found multiple manual partition assignments for partition %d", a.Partition)
			}
			if err := checkManualReplicas(a.Replicas, live, replicas); err != nil {
				return 0, 0, nil, err
			}
			assigned[a.Partition] = slices.Clone(a.Replicas)
			replicas = len(a.Replicas)
		}
		assignment := make([][]int32, len(assigned))
		for p := range int32(len(assigned)) {
			r, ok := assigned[p]
			if !ok {
				return 0, 0, nil, adminErrorf(kerr.InvalidReplicaAssignment, "partitions should be a consecutive 0-based integer sequence")
			}
			assignment[p] = r
		}
		return int32(len(assigned)), int16(replicas), assignment, nil
	}

	replication, partitions := rt.ReplicationFactor, rt.NumPartitions
	if replication < -1 || replication == 0 {
		return 0, 0, nil, adminErrorf(kerr.InvalidReplicationFactor, "Replication factor must be larger than 0, or -1 to use the default value.")
	}
	if partitions < -1 || partitions == 0 {
		return 0, 0, nil, adminErrorf(kerr.InvalidPartitions, "Number of partitions was set to an invalid non-positive value.")
	}
	if partitions == -1 {
		partitions = int32(max(b.brokerConfigInt("num.partitions"), 1))
	}
	if replication == -1 {
		replication = int16(max(b.brokerConfigInt("default.replication.factor"), 1))
	}
	if int(replication) > len(live) {
		return 0, 0, nil, adminErrorf(kerr.InvalidReplicationFactor,
			"Unable to replicate the partition %d time(s): The target replication factor of %d cannot be reached because only %d broker(s) are registered.",
			replication, replication, len(live))
	}
	return partitions, replication, nil, nil
}

// placement is where partitions first..first+count-1 of a topic with
// replication factor rf (0 reads as 1) go over the live brokers
// (metadata.AssignReplicas), for the store to write with the topic; nil
// when too few brokers are live, and the controller places them later.
func (b *Broker) placement(first, count int32, rf int16) [][]int32 {
	assignment, err := metadata.AssignReplicas(b.liveBrokers(), first, count, max(int(rf), 1))
	if err != nil {
		b.log.Warn().Err(err).Int32("first_partition", first).Int32("partitions", count).Msg("cannot place new partitions now; the controller will")
		return nil
	}
	return assignment
}

// checkManualReplicas checks the replica list of one manually assigned
// partition: not empty, live brokers only, none twice, and want replicas
// unless want is negative.
func checkManualReplicas(replicas []int32, live map[int32]bool, want int) error {
	if len(replicas) == 0 {
		return adminErrorf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes an empty replica list.")
	}
	sorted := slices.Clone(replicas)
	slices.Sort(sorted)
	for i, id := range sorted {
		if !live[id] {
			return adminErrorf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes broker %d, but no such broker is registered.", id)
		}
		if i > 0 && sorted[i-1] == id {
			return adminErrorf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes the broker %d more than once.", id)
		}
	}
	if want >= 0 && len(replicas) != want {
		return adminErrorf(kerr.InvalidReplicaAssignment,
			"The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).",
			len(replicas), want)
	}
	return nil
}

// createdTopicConfigs is every topic config of a new topic as resolved, for
// the v5+ response.
func (b *Broker) createdTopicConfigs(configs map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	layers := b.layers()
	out := make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(b.configs.topic))
	for i := range b.configs.topic {
		cv := b.configs.resolveTopic(&b.configs.topic[i], configs, layers)
		rc := kmsg.NewCreateTopicsResponseTopicConfig()
		rc.Name = cv.def.name
		rc.Value = cloneString(cv.value)
		rc.Source = int8(cv.source)
		out = append(out, rc)
	}
	return out
}

// topicCollisions finds topics whose names differ only in '.' versus '_':
// Kafka refuses such pairs because they share metric names.
type topicCollisions struct {
	b      *Broker
	byName map[string]string // unified name -> topic; built on first use
}

func unifyCollisionChars(name string) string { return strings.ReplaceAll(name, ".", "_") }

// check returns an existing topic that name collides with.
func (tc *topicCollisions) check(name string) (string, bool) {
	if !strings.ContainsAny(name, "._") {
		return "", false
	}
	if tc.byName == nil {
		tc.byName = make(map[string]string)
		for _, t := range tc.b.store.Topics() {
			tc.add(t.Name)
		}
	}
	other, ok := tc.byName[unifyCollisionChars(name)]
	return other, ok && other != name
}

// add records a topic created by this request.
func (tc *topicCollisions) add(name string) {
	if tc.byName != nil && strings.ContainsAny(name, "._") {
		tc.byName[unifyCollisionChars(name)] = name
	}
}

// Helpers shared by the admin handlers (CreateTopics through DescribeCluster).

// adminError is a Kafka error code with the message the client is told.
type adminError struct {
	code *kerr.Error
	msg  string
}

func (e *adminError) Error() string { return e.msg }
func (e *adminError) Unwrap() error { return e.code }

func adminErrorf(code *kerr.Error, format string, args ...any) error {
	return &adminError{code: code, msg: fmt.Sprintf(format, args...)}
}

// adminMessage is the error message for a response: the adminError's
// message, or nil for a bare code.
func adminMessage(err error) *string {
	var ae *adminError
	if errors.As(err, &ae) {
		msg := ae.msg
		return &msg
	}
	return nil
}

// adminRequestContext bounds an admin request's metadata writes by the
// request's timeout when it sets one, and always by the connection.
func adminRequestContext(c *conn, timeoutMillis int32) (context.Context, context.CancelFunc) {
	if timeoutMillis > 0 {
		return context.WithTimeout(c.ctx, time.Duration(timeoutMillis)*time.Millisecond)
	}
	return context.WithCancel(c.ctx)
}

// metadataWriteError maps a failed metadata store write to the client's
// error; unexpected failures are logged here.
func (b *Broker) metadataWriteError(err error, op, resource string) error {
	switch {
	case errors.Is(err, metadata.ErrTopicExists):
		return adminErrorf(kerr.TopicAlreadyExists, "Topic '%s' already exists.", resource)
	case errors.Is(err, metadata.ErrUnknownTopic):
		return adminErrorf(kerr.UnknownTopicOrPartition, "Topic '%s' does not exist.", resource)
	case errors.Is(err, metadata.ErrInvalidPartitions):
		return adminErrorf(kerr.InvalidPartitions, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return adminErrorf(kerr.RequestTimedOut, "%s %s did not complete in time; it may still take effect.", op, resource)
	default:
		b.log.Error().Err(err).Str("op", op).Str("resource", resource).Msg("metadata write failed")
		return kerr.UnknownServerError
	}
}

// liveBrokerIDs is the set of live broker ids, this one included.
func (b *Broker) liveBrokerIDs() map[int32]bool {
	brokers := b.liveBrokers()
	ids := make(map[int32]bool, len(brokers))
	for _, br := range brokers {
		ids[br.NodeID] = true
	}
	return ids
}

// configPairs renders configs as sorted name=value strings, for logs.
func configPairs(configs map[string]string) []string {
	out := make([]string, 0, len(configs))
	for k, v := range configs {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func cloneString(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}
