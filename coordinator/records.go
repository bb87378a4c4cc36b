package coordinator

// Encoding and decoding of __consumer_offsets records; doc.go draws them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Key versions of __consumer_offsets records.
const (
	offsetKeyV0   = 0
	offsetKeyV1   = 1
	groupKeyV2    = 2
	offsetValueV3 = 3
	groupValueV3  = 3
)

// errUnknownRecord is a record whose key version this reader does not know.
var errUnknownRecord = errors.New("coordinator: unknown record key version")

// offsetCommit is one committed offset.
type offsetCommit struct {
	offset      int64
	leaderEpoch int32 // -1 when the client gave none
	metadata    string
	commitMs    int64 // commit timestamp, ms since the epoch
}

// offsetRecord returns the key and value of the record that commits c for
// group/topic/partition; a nil c gives a tombstone (nil value).
func offsetRecord(group, topic string, partition int32, c *offsetCommit) (key, value []byte) {
	k := kmsg.OffsetCommitKey{Version: offsetKeyV1, Group: group, Topic: topic, Partition: partition}
	key = k.AppendTo(nil)
	if c == nil {
		return key, nil
	}
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueV3
	v.Offset = c.offset
	v.LeaderEpoch = c.leaderEpoch
	v.Metadata = c.metadata
	v.CommitTimestamp = c.commitMs
	return key, v.AppendTo(nil)
}

// groupRecord returns the key and value of the record that stores a
// classic group's metadata; a nil value gives a tombstone.
func groupRecord(group string, value *kmsg.GroupMetadataValue) (key, val []byte) {
	k := kmsg.GroupMetadataKey{Version: groupKeyV2, Group: group}
	key = k.AppendTo(nil)
	if value == nil {
		return key, nil
	}
	value.Version = groupValueV3
	return key, value.AppendTo(nil)
}

// decodedRecord is one __consumer_offsets record. kind says which: an
// offset commit (offset set, nil for a tombstone), classic group metadata
// (groupMeta set, nil for a tombstone), or a KIP-848 record (consumer
// set, nil for a tombstone).
type decodedRecord struct {
	kind      int16 // the key's version, which is the record type
	group     string
	topic     string // offset commits
	partition int32
	offset    *offsetCommit
	groupMeta *kmsg.GroupMetadataValue
	// KIP-848 records: the key, the decoded value and its bytes.
	consumerKey consumerKey
	consumer    any
	consumerRaw []byte
}

// decodeRecord decodes one record's key and value. It returns
// errUnknownRecord for key versions it does not know.
func decodeRecord(key, value []byte) (decodedRecord, error) {
	if len(key) < 2 {
		return decodedRecord{}, fmt.Errorf("coordinator: record key of %d bytes", len(key))
	}
	switch version := int16(binary.BigEndian.Uint16(key)); version {
	case offsetKeyV0, offsetKeyV1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return decodedRecord{}, fmt.Errorf("coordinator: offset commit key: %w", err)
		}
		r := decodedRecord{kind: version, group: k.Group, topic: k.Topic, partition: k.Partition}
		if value == nil {
			return r, nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return decodedRecord{}, fmt.Errorf("coordinator: offset commit value: %w", err)
		}
		epoch := int32(-1)
		if v.Version >= 3 {
			epoch = v.LeaderEpoch
		}
		r.offset = &offsetCommit{offset: v.Offset, leaderEpoch: epoch, metadata: v.Metadata, commitMs: v.CommitTimestamp}
		return r, nil
	case groupKeyV2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return decodedRecord{}, fmt.Errorf("coordinator: group metadata key: %w", err)
		}
		r := decodedRecord{kind: version, group: k.Group}
		if value == nil {
			return r, nil
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(value); err != nil {
			return decodedRecord{}, fmt.Errorf("coordinator: group metadata value: %w", err)
		}
		r.groupMeta = &v
		return r, nil
	case consumerGroupMetadataKey, consumerGroupPartitionsKey, consumerMemberMetadataKey,
		consumerTargetMetadataKey, consumerTargetMemberKey, consumerCurrentAssignmentKey:
		group, k, err := decodeConsumerKey(version, key)
		if err != nil {
			return decodedRecord{}, err
		}
		r := decodedRecord{kind: version, group: group, consumerKey: k}
		if value == nil {
			return r, nil
		}
		if r.consumer, err = decodeConsumerValue(version, value); err != nil {
			return decodedRecord{}, err
		}
		r.consumerRaw = slices.Clone(value)
		return r, nil
	default:
		return decodedRecord{}, fmt.Errorf("%w: %d", errUnknownRecord, version)
	}
}

// javaStringHash is Java's String.hashCode over the UTF-16 code units of
// s, which Kafka uses to place a group in a __consumer_offsets partition.
func javaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 { // a surrogate pair in UTF-16
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// PartitionFor is the OffsetsTopic partition of a group (the partition
// whose leader coordinates it): Kafka's Utils.abs(groupId.hashCode) %
// partitions.
func PartitionFor(group string, partitions int32) int32 { return partitionFor(group, partitions) }

func partitionFor(group string, partitions int32) int32 {
	h := javaStringHash(group)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}
