// Package coordinator is Gregor's group coordinator: consumer groups with
// Kafka's classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)
// and the KIP-848 consumer protocol (ConsumerGroupHeartbeat), committed
// offsets, and their durable form in the internal topic
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
// A KIP-848 consumer group is stored as Kafka stores it: three records
// for the group and three per member, each key an int16 record type
// followed by non-flexible strings, each value an int16 version (0) and
// then flexible fields (compact strings and arrays, uuid = 16 bytes, an
// empty tagged-field section closing every struct; readers skip tags):
//
//	key (type, group[, member])           value v0
//	3 ConsumerGroupMetadata               int32 group epoch
//	4 ConsumerGroupPartitionMetadata      int32 group epoch,
//	                                      [topic id, name, partitions,
//	                                       [] partition racks (empty)]
//	5 ConsumerGroupMemberMetadata         nullable instance id, nullable
//	  (group, member)                     rack id, client id, client host,
//	                                      [subscribed topic names],
//	                                      nullable regex, int32 rebalance
//	                                      timeout ms, nullable assignor
//	6 ConsumerGroupTargetAssignmentMeta   int32 assignment epoch
//	7 ConsumerGroupTargetAssignmentMember [topic id, [partitions]]
//	  (group, member)
//	8 ConsumerGroupCurrentMemberAssignment int32 member epoch, int32
//	  (group, member)                     previous epoch, int8 state
//	                                      (0 stable, 1 revoking, 2 waiting
//	                                      for partitions), [topic id,
//	                                      [partitions]] assigned, same
//	                                      pending revocation
//
// A static member that left with epoch -2 (and keeps its partitions until
// its session ends) has member epoch -2 in record 8 and its real epoch as
// the previous one. The records are written when the state they hold
// changes, before the heartbeat that changed it is answered; a member that
// leaves gets tombstones for its three records. Replay rebuilds the group
// with each member's epochs, assignments and pending revocations, so after
// a restart (or a move of the coordinator) members carry on without
// rejoining; sessions and revocation deadlines start afresh. A group that
// switched protocol can have records of both kinds: the kind whose group
// record (2 or 3) was written last is the group's, and the other kind's
// records are tombstoned on the group's next change.
//
// A null value (tombstone) deletes the key: an offset (OffsetDelete,
// DeleteGroups, expiry), a whole group (DeleteGroups) or a KIP-848
// member. Reading replays the records in offset order and keeps the last
// value of each key, which is what compaction will preserve. Readers
// accept offset-commit key versions 0 and 1, value versions 0 to 3, group
// metadata value versions 0 to 3 (those Kafka has written) and version 0
// of the KIP-848 values; a record with another key or value version is
// skipped with a warning, so a newer writer's record types do not stop an
// older reader.
//
// A commit is acknowledged only after its batch is in the partition's log
// (and fsynced when the topic's flush settings ask for it).
package coordinator
