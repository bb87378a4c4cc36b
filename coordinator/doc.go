// Package coordinator is Gregor's group coordinator: consumer groups with
// Kafka's classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
// committed offsets, and their durable form in the internal topic
// __consumer_offsets.
//
// # Ownership
//
// A Coordinator holds one *group per group id (protected by the
// Coordinator's mu). Everything about one group (members, state, offsets,
// its timer) is protected by that group's mu; no lock is held across two
// groups. State-machine methods take the current time as an argument and
// never read a clock, so tests drive them with made-up times; the only
// clock reads are in the Coordinator's request entry points and timer
// callbacks.
//
// # __consumer_offsets
//
// The topic has offsets.topic.num.partitions partitions (default 50). A
// group lives in partition abs(javaHashCode(groupID)) % partitions, as in
// Kafka, so a later cluster can move coordination with that partition's
// leader. Records are Kafka's own (kmsg types, big endian), one record per
// fact, in uncompressed magic-2 batches written by the coordinator:
//
//	key                                   value
//	OffsetCommitKey v1                    OffsetCommitValue v3, or null
//	  int16 version = 1                     int16 version = 3
//	  string group                          int64 offset
//	  string topic                          int32 leader epoch (-1: none)
//	  int32 partition                       string metadata
//	                                        int64 commit timestamp (ms)
//	GroupMetadataKey v2                   GroupMetadataValue v3, or null
//	  int16 version = 2                     int16 version = 3
//	  string group                          string protocol type
//	                                        int32 generation
//	                                        nullable string protocol
//	                                        nullable string leader
//	                                        int64 current state timestamp
//	                                        [members: id, instance id,
//	                                         client id, client host,
//	                                         rebalance timeout, session
//	                                         timeout, subscription,
//	                                         assignment]
//
// A null value (tombstone) deletes the key: an offset (OffsetDelete,
// DeleteGroups, expiry) or a whole group (DeleteGroups). Reading replays
// the records in offset order and keeps the last value of each key, which
// is what compaction will preserve. Readers accept offset-commit key
// versions 0 and 1, value versions 0 to 3, and group metadata value
// versions 0 to 3 (those Kafka has written); a record with another key
// version is skipped with a warning, so a newer writer's record types do
// not stop an older reader.
//
// A commit is acknowledged only after its batch is in the partition's log
// (and fsynced when the topic's flush settings ask for it).
package coordinator
