package coordinator

// The KIP-848 records of __consumer_offsets: encoding, decoding, and the
// write path that keeps the log in step with a consumer group's state.
// doc.go draws the formats.
//
// A consumer group's durable state is a set of records, each under its
// own key (consumerKey): three for the group (epoch, subscribed topics,
// target assignment epoch) and three per member (metadata, target
// assignment, current assignment). The group remembers the value bytes it
// last wrote under each key (consumerState.stored). After every change,
// persistConsumerLocked encodes the records that may have changed (the
// group's, and those of the members the change touched), and appends the
// ones whose bytes differ from what is stored, plus tombstones for keys
// that no longer exist. Encodings are deterministic (everything sorted),
// so an unchanged state writes nothing.

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Key types (the key's leading int16) of the KIP-848 records, as in Kafka.
const (
	consumerGroupMetadataKey     int16 = 3 // ConsumerGroupMetadata: the group epoch
	consumerGroupPartitionsKey   int16 = 4 // ConsumerGroupPartitionMetadata: subscribed topics
	consumerMemberMetadataKey    int16 = 5 // ConsumerGroupMemberMetadata
	consumerTargetMetadataKey    int16 = 6 // ConsumerGroupTargetAssignmentMetadata: assignment epoch
	consumerTargetMemberKey      int16 = 7 // ConsumerGroupTargetAssignmentMember
	consumerCurrentAssignmentKey int16 = 8 // ConsumerGroupCurrentMemberAssignment
	consumerValueVersion         int16 = 0 // the only value version of each
	leaveGroupStaticMemberEpoch  int32 = -2
	consumerMemberStable         int8  = 0 // MemberState values in the current assignment record
	consumerMemberUnrevoked      int8  = 1
	consumerMemberUnreleased     int8  = 2
)

// isConsumerKey reports whether a key type is one of the KIP-848 records.
func isConsumerKey(kind int16) bool {
	return kind >= consumerGroupMetadataKey && kind <= consumerCurrentAssignmentKey
}

// isMemberKey reports whether a KIP-848 key type names a member record.
func isMemberKey(kind int16) bool {
	return kind == consumerMemberMetadataKey || kind == consumerTargetMemberKey || kind == consumerCurrentAssignmentKey
}

// consumerKey names one KIP-848 record of a group: its key type and, for
// member records, the member id.
type consumerKey struct {
	kind   int16
	member string // "" for the group's own records
}

// encode is the record key: int16 type, string group, string member
// (member records only), in Kafka's non-flexible encoding.
func (k consumerKey) encode(group string) []byte {
	b := kbin.AppendInt16(nil, k.kind)
	b = kbin.AppendString(b, group)
	if isMemberKey(k.kind) {
		b = kbin.AppendString(b, k.member)
	}
	return b
}

// compareConsumerKeys orders keys group records first, then by member and
// type, so a group's records are always written in the same order.
func compareConsumerKeys(a, b consumerKey) int {
	if c := strings.Compare(a.member, b.member); c != 0 {
		return c
	}
	return int(a.kind) - int(b.kind)
}

// consumerTopicMeta is one subscribed topic in the partition metadata
// record.
type consumerTopicMeta struct {
	id         [16]byte
	name       string
	partitions int32
}

// consumerMemberValue is a ConsumerGroupMemberMetadataValue.
type consumerMemberValue struct {
	instanceID       *string
	rackID           *string
	clientID         string
	clientHost       string
	subscribed       []string
	regex            *string
	rebalanceTimeout int32 // ms
	assignor         *string
}

// consumerCurrentValue is a ConsumerGroupCurrentMemberAssignmentValue.
type consumerCurrentValue struct {
	epoch         int32 // leaveGroupStaticMemberEpoch for a static member that left
	previousEpoch int32
	state         int8
	assigned      assignment
	revoking      assignment
}

// Value encodings: int16 version 0, then the fields in Kafka's flexible
// encoding (compact strings and arrays, an empty tagged-field section
// after each struct).

func appendConsumerGroupValue(epoch int32) []byte {
	b := kbin.AppendInt16(nil, consumerValueVersion)
	b = kbin.AppendInt32(b, epoch)
	return kbin.AppendUvarint(b, 0)
}

func appendConsumerPartitionsValue(epoch int32, topics []consumerTopicMeta) []byte {
	b := kbin.AppendInt16(nil, consumerValueVersion)
	b = kbin.AppendInt32(b, epoch)
	b = kbin.AppendCompactArrayLen(b, len(topics))
	for _, t := range topics {
		b = kbin.AppendUuid(b, t.id)
		b = kbin.AppendCompactString(b, t.name)
		b = kbin.AppendInt32(b, t.partitions)
		b = kbin.AppendCompactArrayLen(b, 0) // PartitionRacks: Gregor's assignors are not rack-aware
		b = kbin.AppendUvarint(b, 0)
	}
	return kbin.AppendUvarint(b, 0)
}

func appendConsumerMemberValue(v consumerMemberValue) []byte {
	b := kbin.AppendInt16(nil, consumerValueVersion)
	b = kbin.AppendCompactNullableString(b, v.instanceID)
	b = kbin.AppendCompactNullableString(b, v.rackID)
	b = kbin.AppendCompactString(b, v.clientID)
	b = kbin.AppendCompactString(b, v.clientHost)
	b = kbin.AppendCompactArrayLen(b, len(v.subscribed))
	for _, s := range v.subscribed {
		b = kbin.AppendCompactString(b, s)
	}
	b = kbin.AppendCompactNullableString(b, v.regex)
	b = kbin.AppendInt32(b, v.rebalanceTimeout)
	b = kbin.AppendCompactNullableString(b, v.assignor)
	return kbin.AppendUvarint(b, 0)
}

func appendConsumerTargetEpochValue(epoch int32) []byte { return appendConsumerGroupValue(epoch) }

func appendConsumerTargetValue(a assignment) []byte {
	b := kbin.AppendInt16(nil, consumerValueVersion)
	b = appendTopicPartitions(b, a)
	return kbin.AppendUvarint(b, 0)
}

func appendConsumerCurrentValue(v consumerCurrentValue) []byte {
	b := kbin.AppendInt16(nil, consumerValueVersion)
	b = kbin.AppendInt32(b, v.epoch)
	b = kbin.AppendInt32(b, v.previousEpoch)
	b = kbin.AppendInt8(b, v.state)
	b = appendTopicPartitions(b, v.assigned)
	b = appendTopicPartitions(b, v.revoking)
	return kbin.AppendUvarint(b, 0)
}

// appendTopicPartitions appends a compact array of (uuid topic, compact
// []int32 partitions, tags), sorted by topic id and partition.
func appendTopicPartitions(b []byte, a assignment) []byte {
	byTopic := make(map[[16]byte][]int32)
	for p := range a {
		byTopic[p.topic] = append(byTopic[p.topic], p.partition)
	}
	ids := make([][16]byte, 0, len(byTopic))
	for id := range byTopic {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y [16]byte) int { return bytes.Compare(x[:], y[:]) })
	b = kbin.AppendCompactArrayLen(b, len(ids))
	for _, id := range ids {
		ps := byTopic[id]
		slices.Sort(ps)
		b = kbin.AppendUuid(b, id)
		b = kbin.AppendCompactArrayLen(b, len(ps))
		for _, p := range ps {
			b = kbin.AppendInt32(b, p)
		}
		b = kbin.AppendUvarint(b, 0)
	}
	return b
}

// Decoding. Every length is checked against the bytes left (kbin's
// CompactArrayLen does so), so a corrupt record cannot make a large
// allocation.

// skipTags reads past a tagged-field section.
func skipTags(r *kbin.Reader) {
	n := r.Uvarint()
	for i := uint32(0); i < n && r.Ok(); i++ {
		r.Uvarint()
		r.Span(int(r.Uvarint()))
	}
}

// arrayLen is a compact array length, with null read as empty.
func arrayLen(r *kbin.Reader) int {
	return int(max(r.CompactArrayLen(), 0))
}

func readTopicPartitions(r *kbin.Reader) assignment {
	out := assignment{}
	for range arrayLen(r) {
		id := r.Uuid()
		for range arrayLen(r) {
			out[tp{id, r.Int32()}] = struct{}{}
		}
		skipTags(r)
		if !r.Ok() {
			break
		}
	}
	return out
}

// decodeConsumerValue decodes the value of a KIP-848 record of type kind.
func decodeConsumerValue(kind int16, value []byte) (any, error) {
	r := &kbin.Reader{Src: value}
	if v := r.Int16(); r.Ok() && v != consumerValueVersion {
		return nil, fmt.Errorf("%w: value version %d of record type %d", errUnknownRecord, v, kind)
	}
	var out any
	switch kind {
	case consumerGroupMetadataKey, consumerTargetMetadataKey:
		out = r.Int32()
	case consumerGroupPartitionsKey:
		v := consumerPartitionsValue{epoch: r.Int32()}
		for range arrayLen(r) {
			t := consumerTopicMeta{id: r.Uuid(), name: r.CompactString(), partitions: r.Int32()}
			for range arrayLen(r) { // PartitionRacks
				r.Int32()
				for range arrayLen(r) {
					r.CompactString()
				}
				skipTags(r)
			}
			skipTags(r)
			if !r.Ok() {
				break
			}
			v.topics = append(v.topics, t)
		}
		out = v
	case consumerMemberMetadataKey:
		v := consumerMemberValue{instanceID: r.CompactNullableString(), rackID: r.CompactNullableString(),
			clientID: r.CompactString(), clientHost: r.CompactString()}
		for range arrayLen(r) {
			v.subscribed = append(v.subscribed, r.CompactString())
			if !r.Ok() {
				break
			}
		}
		v.regex = r.CompactNullableString()
		v.rebalanceTimeout = r.Int32()
		v.assignor = r.CompactNullableString()
		out = v
	case consumerTargetMemberKey:
		out = readTopicPartitions(r)
	case consumerCurrentAssignmentKey:
		out = consumerCurrentValue{epoch: r.Int32(), previousEpoch: r.Int32(), state: r.Int8(),
			assigned: readTopicPartitions(r), revoking: readTopicPartitions(r)}
	default:
		return nil, fmt.Errorf("%w: %d", errUnknownRecord, kind)
	}
	skipTags(r)
	if err := r.Complete(); err != nil {
		return nil, fmt.Errorf("coordinator: value of record type %d: %w", kind, err)
	}
	return out, nil
}

// consumerPartitionsValue is a ConsumerGroupPartitionMetadataValue.
type consumerPartitionsValue struct {
	epoch  int32
	topics []consumerTopicMeta
}

// decodeConsumerKey decodes the body of a KIP-848 record key.
func decodeConsumerKey(kind int16, key []byte) (group string, k consumerKey, err error) {
	r := &kbin.Reader{Src: key}
	r.Int16()
	group = r.String()
	k.kind = kind
	if isMemberKey(kind) {
		k.member = r.String()
	}
	if err := r.Complete(); err != nil {
		return "", consumerKey{}, fmt.Errorf("coordinator: key of record type %d: %w", kind, err)
	}
	return group, k, nil
}

// The write path.

// touchConsumerMember marks a member's records as possibly changed.
func (ks *consumerState) touchConsumerMember(id string) {
	if ks.touched == nil {
		ks.touched = make(map[string]struct{})
	}
	ks.touched[id] = struct{}{}
}

// consumerGroupRecords are the group's own three records.
func (g *group) consumerGroupRecords(out map[consumerKey][]byte) {
	ks := &g.k
	out[consumerKey{kind: consumerGroupMetadataKey}] = appendConsumerGroupValue(ks.epoch)
	topics := make([]consumerTopicMeta, 0, len(ks.topicsSeen))
	for _, name := range sortedKeys(ks.topicsSeen) {
		t := ks.topicsSeen[name]
		topics = append(topics, consumerTopicMeta{id: t.ID, name: name, partitions: t.Partitions})
	}
	out[consumerKey{kind: consumerGroupPartitionsKey}] = appendConsumerPartitionsValue(ks.epoch, topics)
	out[consumerKey{kind: consumerTargetMetadataKey}] = appendConsumerTargetEpochValue(ks.assignmentEpoch)
}

// consumerMemberRecords are the three records of member m.
func (g *group) consumerMemberRecords(m *consumerMember, out map[consumerKey][]byte) {
	ks := &g.k
	mv := consumerMemberValue{instanceID: m.instanceID, rackID: m.rackID, clientID: m.clientID, clientHost: m.clientHost,
		subscribed: m.subscribed, rebalanceTimeout: int32(m.rebalanceTimeout / time.Millisecond), assignor: kmsg.StringPtr(m.assignor)}
	if m.regexSrc != "" {
		mv.regex = kmsg.StringPtr(m.regexSrc)
	}
	out[consumerKey{consumerMemberMetadataKey, m.id}] = appendConsumerMemberValue(mv)
	out[consumerKey{consumerTargetMemberKey, m.id}] = appendConsumerTargetValue(ks.target[m.id])
	cv := consumerCurrentValue{epoch: m.epoch, previousEpoch: m.previousEpoch, state: consumerMemberStable, assigned: m.current, revoking: m.revoking}
	switch {
	case len(m.revoking) > 0:
		cv.state = consumerMemberUnrevoked
	case !m.current.equal(ks.target[m.id]):
		cv.state = consumerMemberUnreleased
	}
	if m.leftStatic {
		cv.epoch, cv.previousEpoch = leaveGroupStaticMemberEpoch, m.epoch
	}
	out[consumerKey{consumerCurrentAssignmentKey, m.id}] = appendConsumerCurrentValue(cv)
}

// persistConsumerLocked writes the records of the group's KIP-848 state
// that changed since they were last written, and tombstones for those that
// no longer exist (all of them once the group is not a consumer group).
// On failure nothing is marked written, so the next call retries.
func (c *Coordinator) persistConsumerLocked(g *group, now time.Time) error {
	ks := &g.k
	if g.kind != kindConsumer && len(ks.stored) == 0 {
		return nil
	}
	all := ks.touchAll || g.kind != kindConsumer
	want := make(map[consumerKey][]byte)
	if g.kind == kindConsumer {
		g.consumerGroupRecords(want)
		if all {
			for _, m := range ks.members {
				g.consumerMemberRecords(m, want)
			}
		} else {
			for id := range ks.touched {
				if m := ks.members[id]; m != nil {
					g.consumerMemberRecords(m, want)
				}
			}
		}
	}
	inScope := func(k consumerKey) bool {
		if all || !isMemberKey(k.kind) {
			return true
		}
		_, ok := ks.touched[k.member]
		return ok
	}
	changed := make(map[consumerKey][]byte) // nil value: a tombstone
	for k, v := range want {
		if old, ok := ks.stored[k]; !ok || !bytes.Equal(old, v) {
			changed[k] = v
		}
	}
	for k := range ks.stored {
		if _, ok := want[k]; !ok && inScope(k) {
			changed[k] = nil
		}
	}
	if len(changed) > 0 {
		recs := consumerRecordsOf(g.id, changed, true)
		if _, err := c.appendChunked(g.partition, now, recs); err != nil {
			return fmt.Errorf("coordinator: store consumer group %s: %w", g.id, err)
		}
		if ks.stored == nil {
			ks.stored = make(map[consumerKey][]byte)
		}
		for k, v := range changed {
			if v == nil {
				delete(ks.stored, k)
			} else {
				ks.stored[k] = v
			}
		}
	}
	ks.touchAll = false
	clear(ks.touched)
	return nil
}

// consumerTombstones are tombstones for every KIP-848 record of the group
// (for DeleteGroups).
func (g *group) consumerTombstones() []kmsg.Record {
	return consumerRecordsOf(g.id, g.k.stored, false)
}

// consumerRecordsOf turns values by key into records of group, sorted by
// key; withValues false gives tombstones for the keys.
func consumerRecordsOf(group string, values map[consumerKey][]byte, withValues bool) []kmsg.Record {
	keys := make([]consumerKey, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareConsumerKeys)
	recs := make([]kmsg.Record, 0, len(keys))
	for _, k := range keys {
		r := kmsg.Record{Key: k.encode(group)}
		if withValues {
			r.Value = values[k]
		}
		recs = append(recs, r)
	}
	return recs
}

// The read path.

// consumerLoad gathers the KIP-848 records of one group during a replay.
type consumerLoad struct {
	values map[consumerKey]any    // decoded live values
	raw    map[consumerKey][]byte // their bytes, which become stored
	seq    int                    // replay position of the last ConsumerGroupMetadata value
}

func (l *consumerLoad) apply(k consumerKey, v any, raw []byte, seq int) {
	if l.values == nil {
		l.values = make(map[consumerKey]any)
		l.raw = make(map[consumerKey][]byte)
	}
	if raw == nil {
		delete(l.values, k)
		delete(l.raw, k)
		return
	}
	l.values[k] = v
	l.raw[k] = raw
	if k.kind == consumerGroupMetadataKey {
		l.seq = seq
	}
}

// exists reports whether the replay left a live consumer group.
func (l *consumerLoad) exists() bool {
	_, ok := l.values[consumerKey{kind: consumerGroupMetadataKey}]
	return ok
}

// restoreConsumer rebuilds the group's KIP-848 state from its replayed
// records. Members come back with fresh sessions (and, when revoking,
// fresh revocation deadlines) and will be sent their assignment again.
// names lists the cluster's topics, for regex subscriptions.
func (g *group) restoreConsumer(l *consumerLoad, now time.Time, sessionTimeout time.Duration, topics Topics, log func(member string, err error)) {
	ks := &g.k
	*ks = newConsumerState()
	ks.stored = l.raw
	ks.stateSince = now
	g.kind = kindConsumer
	ks.epoch, _ = l.values[consumerKey{kind: consumerGroupMetadataKey}].(int32)
	ks.assignmentEpoch, _ = l.values[consumerKey{kind: consumerTargetMetadataKey}].(int32)
	if pv, ok := l.values[consumerKey{kind: consumerGroupPartitionsKey}].(consumerPartitionsValue); ok {
		ks.topicsSeen = make(map[string]TopicInfo, len(pv.topics))
		for _, t := range pv.topics {
			ks.topicsSeen[t.name] = TopicInfo{Name: t.name, ID: t.id, Partitions: t.partitions}
		}
	}
	var names []string
	for k, v := range l.values {
		mv, ok := v.(consumerMemberValue)
		if !ok || k.kind != consumerMemberMetadataKey {
			continue
		}
		m := &consumerMember{
			id: k.member, instanceID: mv.instanceID, rackID: mv.rackID, clientID: mv.clientID, clientHost: mv.clientHost,
			subscribed: mv.subscribed, assignor: "uniform", rebalanceTimeout: time.Duration(mv.rebalanceTimeout) * time.Millisecond,
			current: assignment{}, revoking: assignment{}, sessionDeadline: now.Add(sessionTimeout),
		}
		if mv.assignor != nil {
			m.assignor = *mv.assignor
		}
		if mv.regex != nil && *mv.regex != "" {
			re, err := compileSubscription(*mv.regex)
			if err != nil {
				log(m.id, err)
			} else {
				m.regexSrc, m.regex = *mv.regex, re
				if names == nil {
					names = topics.TopicNames()
				}
			}
		}
		if cv, ok := l.values[consumerKey{consumerCurrentAssignmentKey, m.id}].(consumerCurrentValue); ok {
			m.epoch, m.previousEpoch = cv.epoch, cv.previousEpoch
			if cv.epoch == leaveGroupStaticMemberEpoch {
				m.leftStatic = true
				m.epoch = cv.previousEpoch
			}
			m.current, m.revoking = cv.assigned, cv.revoking
			if len(m.revoking) > 0 {
				m.revokeDeadline = now.Add(m.rebalanceTimeout)
			}
		}
		if t, ok := l.values[consumerKey{consumerTargetMemberKey, m.id}].(assignment); ok {
			ks.target[m.id] = t
		}
		m.effective = effectiveSubscription(m, names)
		ks.members[m.id] = m
		if m.instanceID != nil {
			ks.statics[*m.instanceID] = m.id
		}
	}
	ks.assignor = g.groupAssignor()
}
