// Package metadata holds Gregor's cluster metadata: topics (name, id,
// partition count, explicitly set configs), the live brokers and the dynamic
// broker configs. The broker reads it through the Store interface; EtcdStore
// keeps it in etcd (an external cluster, or one embedded in each broker with
// EmbeddedEtcd), and MemoryStore keeps it in memory for unit tests.
//
// # etcd key layout
//
// Every key lives under one prefix (EtcdConfig.Prefix, "/gregor" unless
// set), so several Gregor clusters can share one etcd. Values are JSON
// objects; each carries its format version in "v".
//
//	key                               value                                              lease
//	--------------------------------  -------------------------------------------------  ---------
//	<prefix>/cluster/id               {"v":1,"id":"<cluster id>"}                        none
//	<prefix>/topics/<name>            {"v":1,"id":"<topic id>","partitions":<n>,         none
//	                                   "configs":{"<key>":"<value>",...}}
//	<prefix>/brokers/<node id>        {"v":1,"node_id":<n>,"host":"<host>",               the broker's
//	                                   "port":<port>,"rack":"<rack>",                     registration
//	                                   "listeners":[{"name":..,"host":..,"port":..}]}
//	<prefix>/configs/brokers/<node>   {"v":1,"configs":{"<key>":"<value>",...}}          none
//	<prefix>/partitions/<name>/<p>    {"v":1,"topic_id":"<topic id>","replicas":[...],   none
//	                                   "leader":<n>,"leader_epoch":<e>,"isr":[...],
//	                                   "adding_replicas":[...],"removing_replicas":[...]}
//	<prefix>/producer-ids             {"v":1,"next":<n>}: ids below n are handed out     none
//	<prefix>/deleted-topics/<id>      {"v":1,"name":"<name>","partitions":<n>,           a lease of one
//	                                   "deleted_ms":<unix ms>}                            day (DeleteTopic's)
//
// Worked example, prefix "/gregor", one broker and one topic:
//
//	/gregor/cluster/id          {"v":1,"id":"vQ3_1B2aTu-7N6hqy5RxXg"}
//	/gregor/topics/orders       {"v":1,"id":"nLtr0Hn1QCmqcSBvmXqTWA","partitions":3,"configs":{"cleanup.policy":"compact"}}
//	/gregor/brokers/1           {"v":1,"node_id":1,"host":"10.0.0.5","port":9092,"rack":""}
//	/gregor/configs/brokers/1   {"v":1,"configs":{"log.retention.ms":"3600000"}}
//	/gregor/partitions/orders/2 {"v":1,"topic_id":"nLtr0Hn1QCmqcSBvmXqTWA","replicas":[1],"leader":1,"leader_epoch":0,"isr":[1]}
//
// and, for a day after DeleteTopic("orders"), instead of the topic and
// partition keys:
//
//	/gregor/deleted-topics/nLtr0Hn1QCmqcSBvmXqTWA {"v":1,"name":"orders","partitions":3,"deleted_ms":1796200000000}
//
// and the same partition while it is being reassigned from [1] to [2, 3]
// (the target first, then the replicas being removed):
//
//	/gregor/partitions/orders/2 {"v":1,"topic_id":"nLtr0Hn1QCmqcSBvmXqTWA","replicas":[2,3,1],"leader":1,"leader_epoch":0,"isr":[1],
//	                             "adding_replicas":[2,3],"removing_replicas":[1]}
//
// Field rules:
//   - Ids (cluster id, topic id) are 16 random bytes written as 22 characters
//     of unpadded base64url, the form Kafka prints (Uuid.toString). Like
//     Kafka, Gregor never makes an id that is all zero or whose text starts
//     with '-'.
//   - <name> is the Kafka topic name as is: Kafka names use only
//     [a-zA-Z0-9._-], so they need no escaping; a name with '/' is refused.
//   - <node id> is the broker's node id in decimal with no padding ("1",
//     "12"); it must equal "node_id" in the value.
//   - "configs" holds only the configs set explicitly; it is {} when none
//     are. "rack" is "" when the broker has no rack. "listeners" (named
//     advertised listeners, first one first; "host"/"port" repeat the
//     first) is left out by a broker with one unnamed listener; it was
//     added within v1, and readers that predate it use "host"/"port".
//   - <prefix>/cluster/id is written once, by whichever broker first finds
//     it absent (a transaction that succeeds only if the key has never been
//     created), and never changed afterwards. Its value is random unless
//     the broker was given one (EtcdConfig.ClusterID, Kafka's CLUSTER_ID);
//     a broker given an id other than the stored one does not start.
//   - A broker key is attached to a lease of EtcdConfig.LeaseTTL kept alive
//     by the registering store, so it disappears at most LeaseTTL after that
//     broker dies or loses etcd, and at once when the store is closed.
//     The store renews only a lease its registration was written under,
//     and writes the registration again (under a new lease) when its
//     cache shows the key gone or under another lease while its own
//     lease lives.
//   - A partition key holds one partition's state (PartitionState): <p> is
//     the partition number in canonical decimal; "replicas" is non-empty with
//     no repeats, "leader" is -1 (none) or a replica in "isr", "isr" is a
//     subset of "replicas" ([] when empty), "leader_epoch" >= 0.
//     "adding_replicas" and "removing_replicas" (Kafka's PartitionRecord
//     fields) describe a reassignment in progress: disjoint subsets of
//     "replicas", "removing_replicas" not all of them; "replicas" is then
//     the target followed by the replicas being removed. Both are left out
//     when empty, which is when no reassignment is in progress. They were
//     added within v1 (see Versions). "topic_id"
//     names the incarnation of the topic the state belongs to; a reader
//     ignores a state whose id is not the topic's. Writes are compare-and-
//     swap on the key's mod revision (PartitionState.Version) and on the
//     topic key's create revision, in one transaction; DeleteTopic deletes
//     the topic's partition keys in the transaction that deletes the topic.
//     CreateTopic and SetPartitionCount write the new partitions' first
//     states (leader the first replica, epoch 0, every replica in the ISR)
//     in the transaction that writes the topic key, so no reader sees a
//     topic without them. When they do not fit one transaction (etcd's
//     default --max-txn-ops, 128), the partition keys go first, in
//     transactions that require the topic key unchanged (absent, for a
//     create), and the topic key last: a reader ignores partition keys of
//     a topic it does not know, or beyond its partition count.
//   - A deletion record <prefix>/deleted-topics/<id> (<id> the topic id) is
//     written by DeleteTopic in the transaction that deletes the topic key
//     and its partition keys, on a lease of one day (deletionRecordTTL). It
//     is the only thing that lets a broker remove a topic's data: a topic
//     key that disappears without a record for its id (deleted by hand,
//     etcd emptied or restored, another id put under the name) is reported
//     as TopicUnavailable, and brokers keep its data.
//   - Keys under the prefix that Gregor does not know are ignored, so a newer
//     Gregor may add key kinds without breaking an older one.
//
// # Versions
//
// Every value has "v". Writers always write the current version (1). The
// rule for reading: a Gregor whose current version is N reads versions N and
// N−1 (here only 1, as there is no version 0).
//
// A value of a newer version (ErrNewerVersion) is never guessed at. Found
// when the store opens (a topic, partition state, dynamic config or
// deletion record), OpenEtcd fails with an error that names the keys and
// says to upgrade Gregor. Seen later on the watch (or by a resync), a topic
// value or a partition state of a newer version takes the topic out of the
// cache (TopicUnavailable: not served, data kept; TopicFault names the
// reason) until every such value is readable again; dynamic configs and
// deletion records of a newer version keep their last good value. Broker registrations
// of a newer version are skipped, as below, so that an older broker can
// still start beside newer ones in a rolling upgrade.
//
// A topic, partition state, dynamic config or deletion record value that
// does not parse, lacks "v", or has fields that fail their checks is a
// fault: logged at error with its key, reported by Faults (and /readyz)
// until a readable value replaces it or the key goes, and the store keeps
// the last good value it read for that key (none, if it never read one:
// then TopicFault names the topic, which the broker answers as
// LEADER_NOT_AVAILABLE). It is never taken as a deletion. A broker
// registration or controller candidacy that does not read is skipped with
// one Warn log line and treated as absent (its owner writes it again).
// Unknown JSON fields are ignored, so a field may be added without a version
// bump only where an older reader may safely ignore it, and a field so added
// is left out when empty, so that values without it read as before. The
// partition fields "adding_replicas" and "removing_replicas" are such: a
// Gregor that predates them sees a partition being reassigned as one whose
// replicas are the target and the old replicas together, which is a valid
// state (it elects leaders from the ISR only); if it writes that partition,
// it drops the two fields, which ends the reassignment with the larger
// replica set, and the operator reassigns again. The one exception
// is <prefix>/cluster/id: a store cannot run without it, so OpenEtcd fails
// when that value is unreadable.
//
// # Cache and ordering
//
// EtcdStore reads the whole prefix once when it opens, then follows it with
// one watch from the next revision, run by one goroutine that the store owns.
// That goroutine applies each change to an in-memory cache, calls the
// subscribers, and then publishes the revision it has applied. A write
// returns only once the applied revision has reached the write's own, so a
// caller reads its own writes and every subscriber has already been told of
// them. If etcd compacts away revisions the watch has not yet seen, the
// store reads the prefix again and reports the difference as events; a key
// that reads badly keeps its last good value through that too.
//
// A store's own broker registration, or its controller candidacy, whose
// key vanishes while its lease lives (etcd emptied by hand) is written
// again under the same lease, or the controller role reported lost.
package metadata
