package integration

// sarama's ClusterAdmin (CreateTopics, Metadata, DescribeConfigs,
// AlterConfigs, IncrementalAlterConfigs, CreatePartitions, DeleteTopics,
// DescribeCluster, DescribeLogDirs) and Client.GetOffset (ListOffsets)
// against Gregor.

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaAdminConfig is saramaConfig without auto topic creation on Metadata,
// so that describing a deleted topic does not bring it back.
func saramaAdminConfig(v sarama.KafkaVersion) *sarama.Config {
	c := saramaConfig(v)
	c.Metadata.AllowAutoTopicCreation = false
	return c
}

// saramaConfigMap returns DescribeConfigs' entries of one topic by name.
func saramaConfigMap(t *testing.T, admin sarama.ClusterAdmin, topic string, names ...string) map[string]sarama.ConfigEntry {
	t.Helper()
	results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: names}},
		sarama.DescribeConfigsOptions{IncludeSynonyms: true, IncludeDocumentation: true})
	if err != nil {
		t.Fatalf("DescribeConfigs(topic %q, %v): %v", topic, names, err)
	}
	if len(results) != 1 || results[0].ErrorCode != sarama.ErrNoError {
		t.Fatalf("DescribeConfigs(topic %q, %v): %+v", topic, names, results)
	}
	m := make(map[string]sarama.ConfigEntry, len(results[0].Configs))
	for _, e := range results[0].Configs {
		if _, dup := m[e.Name]; dup {
			t.Errorf("DescribeConfig(topic %q) returned %q twice", topic, e.Name)
		}
		m[e.Name] = e
	}
	return m
}

// saramaWaitTopicGone polls ListTopics until topic is absent.
func saramaWaitTopicGone(t *testing.T, admin sarama.ClusterAdmin, topic string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		topics, err := admin.ListTopics()
		if err != nil {
			t.Fatalf("ListTopics: %v", err)
		}
		if _, ok := topics[topic]; !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %q still listed %v after DeleteTopic", topic, timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a correctness wait
	}
}

// TestSaramaClusterAdmin walks a topic through its life with ClusterAdmin:
// create (and the usual ways a create fails), list, describe, read and alter
// its configs, add partitions, delete.
func TestSaramaClusterAdmin(t *testing.T) {
	b := startBroker(t)
	// sarama refuses, client side, admin requests newer than Config.Version
	// (CreatePartitions needs 1.0), so the oldest version here is 2.0: the
	// last non-flexible CreateTopics (v3), DescribeConfigs (v2),
	// AlterConfigs (v1), CreatePartitions (v1) and DeleteTopics (v2).
	for _, v := range []sarama.KafkaVersion{sarama.V2_0_0_0, sarama.V2_8_0_0, sarama.V4_0_0_0} {
		t.Run(v.String(), func(t *testing.T) {
			cfg := saramaAdminConfig(v)
			admin := saramaAdmin(t, b.Addr, cfg)
			topic := saramaTopic(t, "sarama-admin")
			retention := "3600000"
			detail := &sarama.TopicDetail{
				NumPartitions:     3,
				ReplicationFactor: 1,
				ConfigEntries:     map[string]*string{"retention.ms": &retention},
			}

			// CreateTopics, then the failures a client must be able to tell apart.
			if err := admin.CreateTopic(topic, detail, false); err != nil {
				t.Fatalf("CreateTopic(%q): %v", topic, err)
			}
			if err := admin.CreateTopic(topic, detail, false); !errors.Is(err, sarama.ErrTopicAlreadyExists) {
				t.Errorf("second CreateTopic(%q): err = %v, want %v", topic, err, sarama.ErrTopicAlreadyExists)
			}
			validateOnly := topic + "-validate-only"
			if err := admin.CreateTopic(validateOnly, detail, true); err != nil {
				t.Errorf("CreateTopic(%q, validateOnly): %v", validateOnly, err)
			}
			if err := admin.CreateTopic(topic+"-zero", &sarama.TopicDetail{NumPartitions: 0, ReplicationFactor: 1}, false); !errors.Is(err, sarama.ErrInvalidPartitions) {
				t.Errorf("CreateTopic with 0 partitions: err = %v, want %v", err, sarama.ErrInvalidPartitions)
			}
			if err := admin.CreateTopic(topic+"-rf3", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false); !errors.Is(err, sarama.ErrInvalidReplicationFactor) {
				t.Errorf("CreateTopic with replication factor 3 on one broker: err = %v, want %v", err, sarama.ErrInvalidReplicationFactor)
			}
			if err := admin.CreateTopic("bad/name", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); !errors.Is(err, sarama.ErrInvalidTopic) {
				t.Errorf("CreateTopic(%q): err = %v, want %v", "bad/name", err, sarama.ErrInvalidTopic)
			}
			bad := "not-a-number"
			if err := admin.CreateTopic(topic+"-badcfg", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &bad}}, false); !errors.Is(err, sarama.ErrInvalidConfig) {
				t.Errorf("CreateTopic with retention.ms=%q: err = %v, want %v", bad, err, sarama.ErrInvalidConfig)
			}

			// ListTopics: Metadata for all topics plus one DescribeConfigs.
			topics, err := admin.ListTopics()
			if err != nil {
				t.Fatalf("ListTopics: %v", err)
			}
			got, ok := topics[topic]
			if !ok {
				t.Fatalf("ListTopics does not list %q; it lists %v", topic, saramaTopicNames(topics))
			}
			if got.NumPartitions != 3 || got.ReplicationFactor != 1 {
				t.Errorf("ListTopics[%q]: %d partitions, replication factor %d; want 3, 1", topic, got.NumPartitions, got.ReplicationFactor)
			}
			for p := int32(0); p < 3; p++ {
				if r := got.ReplicaAssignment[p]; len(r) != 1 || r[0] != 1 {
					t.Errorf("ListTopics[%q] partition %d replicas %v, want [1]", topic, p, r)
				}
			}
			if v := got.ConfigEntries["retention.ms"]; v == nil || *v != retention {
				t.Errorf("ListTopics[%q] non-default configs %v: want retention.ms=%s", topic, saramaDeref(got.ConfigEntries), retention)
			}
			for _, never := range []string{validateOnly, topic + "-zero", topic + "-rf3", "bad/name", topic + "-badcfg"} {
				if _, ok := topics[never]; ok {
					t.Errorf("ListTopics lists %q, which must not have been created", never)
				}
			}

			// DescribeTopics: Metadata for one topic.
			md, err := admin.DescribeTopics([]string{topic})
			if err != nil {
				t.Fatalf("DescribeTopics: %v", err)
			}
			if len(md) != 1 || md[0].Name != topic || !errors.Is(md[0].Err, sarama.ErrNoError) {
				t.Fatalf("DescribeTopics(%q) = %+v", topic, md)
			}
			saramaCheckPartitions(t, md[0], 3)

			// DescribeConfigs: every config, then only the ones asked for.
			all := saramaConfigMap(t, admin, topic)
			if e, ok := all["retention.ms"]; !ok || e.Value != retention || e.Default || e.Source != sarama.SourceTopic && v.IsAtLeast(sarama.V1_1_0_0) {
				t.Errorf("DescribeConfig retention.ms = %+v, want value %s, not default, source topic", e, retention)
			}
			for _, name := range []string{"cleanup.policy", "segment.bytes", "max.message.bytes", "retention.bytes"} {
				e, ok := all[name]
				if !ok {
					t.Errorf("DescribeConfig of all configs lacks %q", name)
					continue
				}
				if !e.Default {
					t.Errorf("DescribeConfig %s = %+v: want a default (never set on the topic)", name, e)
				}
			}
			if e := all["cleanup.policy"]; e.Value != "delete" {
				t.Errorf("cleanup.policy = %q, want Kafka's default %q", e.Value, "delete")
			}
			some := saramaConfigMap(t, admin, topic, "retention.ms", "max.message.bytes")
			if len(some) != 2 {
				t.Errorf("DescribeConfig with ConfigNames [retention.ms max.message.bytes] returned %v", saramaEntryNames(some))
			}

			// IncrementalAlterConfigs (Kafka 2.3+): set keys, others untouched;
			// then delete one.
			if v.IsAtLeast(sarama.V2_3_0_0) {
				twoHours, compact := "7200000", "compact"
				if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
					"retention.ms":   {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &twoHours},
					"cleanup.policy": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &compact},
				}, false); err != nil {
					t.Fatalf("IncrementalAlterConfig set: %v", err)
				}
				cm := saramaConfigMap(t, admin, topic, "retention.ms", "cleanup.policy")
				if cm["retention.ms"].Value != twoHours || cm["cleanup.policy"].Value != "compact" {
					t.Errorf("after IncrementalAlterConfig: retention.ms=%q cleanup.policy=%q, want %s, compact", cm["retention.ms"].Value, cm["cleanup.policy"].Value, twoHours)
				}
				if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
					"cleanup.policy": {Operation: sarama.IncrementalAlterConfigsOperationDelete},
				}, false); err != nil {
					t.Fatalf("IncrementalAlterConfig delete: %v", err)
				}
				cm = saramaConfigMap(t, admin, topic, "retention.ms", "cleanup.policy")
				if cm["retention.ms"].Value != twoHours || cm["cleanup.policy"].Value != "delete" || !cm["cleanup.policy"].Default {
					t.Errorf("after deleting cleanup.policy: retention.ms=%+v cleanup.policy=%+v, want %s and the default delete", cm["retention.ms"], cm["cleanup.policy"], twoHours)
				}
				if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
					"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &bad},
				}, false); !errors.Is(err, sarama.ErrInvalidConfig) {
					t.Errorf("IncrementalAlterConfig retention.ms=%q: err = %v, want %v", bad, err, sarama.ErrInvalidConfig)
				}
			}

			// AlterConfigs replaces the topic's whole config set.
			maxBytes := "500000"
			if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"max.message.bytes": &maxBytes}, false); err != nil {
				t.Fatalf("AlterConfig: %v", err)
			}
			cm := saramaConfigMap(t, admin, topic, "retention.ms", "max.message.bytes")
			if cm["max.message.bytes"].Value != maxBytes || !cm["retention.ms"].Default {
				t.Errorf("after AlterConfig{max.message.bytes}: max.message.bytes=%+v retention.ms=%+v; want %s and retention.ms back to its default", cm["max.message.bytes"], cm["retention.ms"], maxBytes)
			}

			// CreatePartitions: grow to 5; shrinking is refused.
			if err := admin.CreatePartitions(topic, 5, nil, false); err != nil {
				t.Fatalf("CreatePartitions(%q, 5): %v", topic, err)
			}
			if err := admin.CreatePartitions(topic, 4, nil, false); !errors.Is(err, sarama.ErrInvalidPartitions) {
				t.Errorf("CreatePartitions(%q, 4) after 5: err = %v, want %v", topic, err, sarama.ErrInvalidPartitions)
			}
			if err := admin.CreatePartitions(topic+"-missing", 4, nil, false); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				t.Errorf("CreatePartitions on a missing topic: err = %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
			}
			md, err = admin.DescribeTopics([]string{topic})
			if err != nil {
				t.Fatalf("DescribeTopics after CreatePartitions: %v", err)
			}
			saramaCheckPartitions(t, md[0], 5)
			saramaProduceToPartition(t, b.Addr, v, topic, 4)

			// DescribeCluster (the DescribeCluster API from 2.8, Metadata before).
			brokers, controller, err := admin.DescribeCluster()
			if err != nil {
				t.Fatalf("DescribeCluster: %v", err)
			}
			if len(brokers) != 1 || brokers[0].ID() != 1 || brokers[0].Addr() != b.Addr || controller != 1 {
				var got []string
				for _, br := range brokers {
					got = append(got, fmt.Sprintf("%d@%s", br.ID(), br.Addr()))
				}
				t.Errorf("DescribeCluster = brokers %v, controller %d; want [1@%s], controller 1", got, controller, b.Addr)
			}

			// DescribeLogDirs lists every partition of the topic.
			if v.IsAtLeast(sarama.V1_0_0_0) {
				dirs, err := admin.DescribeLogDirs([]int32{1})
				if err != nil {
					t.Fatalf("DescribeLogDirs: %v", err)
				}
				parts := map[int32]int64{}
				for _, d := range dirs[1] {
					if !errors.Is(d.ErrorCode, sarama.ErrNoError) || d.Path == "" {
						t.Errorf("DescribeLogDirs dir %+v", d)
					}
					for _, tp := range d.Topics {
						if tp.Topic == topic {
							for _, p := range tp.Partitions {
								parts[p.PartitionID] = p.Size
							}
						}
					}
				}
				if len(parts) != 5 {
					t.Errorf("DescribeLogDirs lists partitions %v of %q, want 0..4", parts, topic)
				}
				if parts[4] <= 0 {
					t.Errorf("DescribeLogDirs: partition 4 has size %d after a produce, want > 0", parts[4])
				}
			}

			// DeleteTopics.
			if err := admin.DeleteTopic(topic); err != nil {
				t.Fatalf("DeleteTopic(%q): %v", topic, err)
			}
			saramaWaitTopicGone(t, admin, topic, 10*time.Second)
			if err := admin.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				t.Errorf("second DeleteTopic(%q): err = %v, want %v", topic, err, sarama.ErrUnknownTopicOrPartition)
			}
			md, err = admin.DescribeTopics([]string{topic})
			if err != nil {
				t.Fatalf("DescribeTopics after delete: %v", err)
			}
			if len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrUnknownTopicOrPartition) {
				t.Errorf("DescribeTopics(%q) after delete (no auto-create) = %+v, want %v", topic, md, sarama.ErrUnknownTopicOrPartition)
			}
			// The name can be used again, and the new topic starts empty.
			if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
				t.Fatalf("re-creating %q after delete: %v", topic, err)
			}
			client, err := sarama.NewClient([]string{b.Addr}, cfg)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer client.Close()
			if off, err := client.GetOffset(topic, 0, sarama.OffsetNewest); err != nil || off != 0 {
				t.Errorf("re-created %q: newest offset %d, %v; want 0 (old data must be gone)", topic, off, err)
			}
		})
	}
}

func saramaCheckPartitions(t *testing.T, md *sarama.TopicMetadata, n int) {
	t.Helper()
	if len(md.Partitions) != n {
		t.Fatalf("topic %q has %d partitions in Metadata, want %d", md.Name, len(md.Partitions), n)
	}
	seen := map[int32]bool{}
	for _, p := range md.Partitions {
		seen[p.ID] = true
		if !errors.Is(p.Err, sarama.ErrNoError) || p.Leader != 1 || len(p.Replicas) != 1 || p.Replicas[0] != 1 || len(p.Isr) != 1 || p.Isr[0] != 1 {
			t.Errorf("topic %q partition %d: err %v leader %d replicas %v isr %v; want no error, leader 1, [1], [1]", md.Name, p.ID, p.Err, p.Leader, p.Replicas, p.Isr)
		}
	}
	for p := int32(0); p < int32(n); p++ {
		if !seen[p] {
			t.Errorf("topic %q: partition %d missing from Metadata", md.Name, p)
		}
	}
}

// saramaProduceToPartition writes one message to partition p and checks it
// lands at offset 0 there.
func saramaProduceToPartition(t *testing.T, addr string, v sarama.KafkaVersion, topic string, p int32) {
	t.Helper()
	cfg := saramaConfig(v)
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	gotP, off, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder("to the new partition")})
	if err != nil || gotP != p || off != 0 {
		t.Fatalf("produce to new partition %d: got partition %d offset %d err %v; want %d, 0, nil", p, gotP, off, err, p)
	}
}

func saramaTopicNames(m map[string]sarama.TopicDetail) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func saramaEntryNames(m map[string]sarama.ConfigEntry) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func saramaDeref(m map[string]*string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// TestSaramaGetOffset checks Client.GetOffset (ListOffsets) for the oldest
// and newest offsets of empty and written partitions, and for timestamps.
func TestSaramaGetOffset(t *testing.T) {
	b := startBroker(t)
	for _, v := range saramaVersions {
		t.Run(v.String(), func(t *testing.T) {
			ctx := testContext(t, 30*time.Second)
			cfg := saramaAdminConfig(v)
			topic := saramaTopic(t, "sarama-offsets")
			saramaCreateTopic(t, b.Addr, cfg, topic, 2)
			client, err := sarama.NewClient([]string{b.Addr}, cfg)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer client.Close()

			offsets := func(p int32) (oldest, newest int64) {
				t.Helper()
				var err error
				if oldest, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
					t.Fatalf("GetOffset(%s, %d, OffsetOldest): %v", topic, p, err)
				}
				if newest, err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
					t.Fatalf("GetOffset(%s, %d, OffsetNewest): %v", topic, p, err)
				}
				return oldest, newest
			}
			for p := int32(0); p < 2; p++ {
				if o, n := offsets(p); o != 0 || n != 0 {
					t.Errorf("empty partition %d: oldest %d newest %d, want 0 0", p, o, n)
				}
			}

			pcfg := saramaConfig(v)
			pcfg.Producer.Partitioner = sarama.NewManualPartitioner
			producer, err := sarama.NewSyncProducer([]string{b.Addr}, pcfg)
			if err != nil {
				t.Fatalf("NewSyncProducer: %v", err)
			}
			defer producer.Close()
			// Ten messages a second apart (by CreateTime) on partition 0, in
			// batches of different sizes; partition 1 stays empty.
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			var msgs []*sarama.ProducerMessage
			for i := 0; i < 10; i++ {
				msgs = append(msgs, &sarama.ProducerMessage{
					Topic: topic, Partition: 0,
					Value:     sarama.StringEncoder(fmt.Sprint("m", i)),
					Timestamp: base.Add(time.Duration(i) * time.Second),
				})
			}
			for _, batch := range [][]*sarama.ProducerMessage{msgs[:1], msgs[1:4], msgs[4:]} {
				if err := saramaSendMessages(ctx, t, producer, batch); err != nil {
					t.Fatalf("SendMessages: %v", err)
				}
			}
			if o, n := offsets(0); o != 0 || n != 10 {
				t.Errorf("partition 0 after 10 messages: oldest %d newest %d, want 0 10", o, n)
			}
			if o, n := offsets(1); o != 0 || n != 0 {
				t.Errorf("untouched partition 1: oldest %d newest %d, want 0 0", o, n)
			}

			// By timestamp: the first offset whose timestamp is >= the one asked.
			ms := func(d time.Duration) int64 { return base.Add(d).UnixMilli() }
			for _, c := range []struct {
				ts   int64
				want int64
			}{
				{ms(-time.Minute), 0},
				{ms(0), 0},
				{ms(5 * time.Second), 5},
				{ms(5*time.Second + 500*time.Millisecond), 6},
				{ms(9 * time.Second), 9},
				{ms(time.Minute), -1}, // later than every message: no offset
			} {
				got, err := client.GetOffset(topic, 0, c.ts)
				if err != nil {
					t.Errorf("GetOffset(timestamp %d = base%+dms): %v", c.ts, c.ts-base.UnixMilli(), err)
					continue
				}
				if got != c.want {
					t.Errorf("GetOffset(timestamp base%+dms) = %d, want %d", c.ts-base.UnixMilli(), got, c.want)
				}
			}

			// Unknown partition.
			if _, err := client.GetOffset(topic, 7, sarama.OffsetNewest); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				t.Errorf("GetOffset on partition 7 of a 2-partition topic: err = %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
			}
		})
	}
}
