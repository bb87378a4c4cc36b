package integration

// Topic administration through segmentio/kafka-go, both its Client (the
// protocol package, which negotiates versions with ApiVersions) and the
// older kafka.Conn (fixed versions: CreateTopics v0, DeleteTopics v0,
// Metadata v1/v6, ListOffsets v1).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// kafkagoTopicNames fetches all topic names with a Metadata request for
// every topic (Topics nil), which never auto-creates.
func kafkagoTopicNames(ctx context.Context, t *testing.T, client *kafka.Client) map[string]kafka.Topic {
	t.Helper()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatalf("Metadata(all topics): %v", err)
	}
	out := map[string]kafka.Topic{}
	for _, tp := range md.Topics {
		out[tp.Name] = tp
	}
	return out
}

// kafkagoWaitGone polls all-topic Metadata until none of topics is listed.
func kafkagoWaitGone(ctx context.Context, t *testing.T, client *kafka.Client, topics ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		names := kafkagoTopicNames(ctx, t, client)
		var left []string
		for _, tp := range topics {
			if _, ok := names[tp]; ok {
				left = append(left, tp)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics %v still in Metadata 10s after DeleteTopics", left)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a correctness wait
	}
}

// TestKafkaGoClientAdmin: CreateTopics (several at once, duplicates, bad
// requests), Metadata, DescribeConfigs, CreatePartitions, ListOffsets with
// FirstOffset/LastOffset/time, DeleteTopics.
func TestKafkaGoClientAdmin(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 90*time.Second)
	client := kafkagoClient(b.Addr)
	t1, t2 := kafkagoTopic(t, "kafkago-admin-a"), kafkagoTopic(t, "kafkago-admin-b")

	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: t1, NumPartitions: 3, ReplicationFactor: 1, ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}}},
		{Topic: t2, NumPartitions: 1, ReplicationFactor: 1},
	}})
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	for _, tp := range []string{t1, t2} {
		if err := resp.Errors[tp]; err != nil {
			t.Fatalf("CreateTopics %q: %v", tp, err)
		}
	}
	resp, err = client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: t1, NumPartitions: 3, ReplicationFactor: 1},
		{Topic: t1 + "-badpart", NumPartitions: -5, ReplicationFactor: 1},
		{Topic: t1 + "-badrf", NumPartitions: 1, ReplicationFactor: 2},
	}})
	if err != nil {
		t.Fatalf("second CreateTopics: %v", err)
	}
	for tp, want := range map[string]kafka.Error{
		t1:              kafka.TopicAlreadyExists,
		t1 + "-badpart": kafka.InvalidPartitionNumber,
		t1 + "-badrf":   kafka.InvalidReplicationFactor,
	} {
		if got := resp.Errors[tp]; !errors.Is(got, want) {
			t.Errorf("CreateTopics %q: error %v, want %v", tp, got, want)
		}
	}

	// Metadata for the new topics.
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{t1, t2}})
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 1 || net.JoinHostPort(md.Brokers[0].Host, strconv.Itoa(md.Brokers[0].Port)) != b.Addr {
		t.Errorf("Metadata brokers %+v, want one broker 1 at %s", md.Brokers, b.Addr)
	}
	if md.Controller.ID != 1 {
		t.Errorf("Metadata controller %+v, want broker 1", md.Controller)
	}
	parts := map[string]int{}
	for _, tp := range md.Topics {
		if tp.Error != nil {
			t.Errorf("Metadata topic %q: %v", tp.Name, tp.Error)
		}
		parts[tp.Name] = len(tp.Partitions)
		for _, p := range tp.Partitions {
			if p.Leader.ID != 1 || len(p.Replicas) != 1 || len(p.Isr) != 1 || p.Error != nil {
				t.Errorf("Metadata %s/%d: leader %d replicas %v isr %v err %v", tp.Name, p.ID, p.Leader.ID, p.Replicas, p.Isr, p.Error)
			}
		}
	}
	if parts[t1] != 3 || parts[t2] != 1 {
		t.Errorf("Metadata partitions %v, want %s:3 %s:1", parts, t1, t2)
	}
	names := kafkagoTopicNames(ctx, t, client)
	for _, tp := range []string{t1 + "-badpart", t1 + "-badrf"} {
		if _, ok := names[tp]; ok {
			t.Errorf("failed CreateTopics left topic %q behind", tp)
		}
	}

	// DescribeConfigs.
	dc, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic,
		ResourceName: t1,
		ConfigNames:  []string{"retention.ms", "cleanup.policy"},
	}}})
	if err != nil {
		t.Fatalf("DescribeConfigs: %v", err)
	}
	if len(dc.Resources) != 1 || dc.Resources[0].Error != nil {
		t.Fatalf("DescribeConfigs resources %+v", dc.Resources)
	}
	cfgs := map[string]string{}
	for _, e := range dc.Resources[0].ConfigEntries {
		cfgs[e.ConfigName] = e.ConfigValue
	}
	if len(cfgs) != 2 || cfgs["retention.ms"] != "3600000" || cfgs["cleanup.policy"] != "delete" {
		t.Errorf("DescribeConfigs(%s) = %v, want retention.ms=3600000 cleanup.policy=delete", t1, cfgs)
	}

	// CreatePartitions: 3 -> 4.
	cp, err := client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: t1, Count: 4}}})
	if err != nil {
		t.Fatalf("CreatePartitions: %v", err)
	}
	if err := cp.Errors[t1]; err != nil {
		t.Fatalf("CreatePartitions %q to 4: %v", t1, err)
	}

	// Write (p+1)*7 messages to partition p of t1 through one Conn each.
	for p := 0; p < 4; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", b.Addr, t1, p)
		if err != nil {
			t.Fatalf("DialLeader(%s, %d): %v", t1, p, err)
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		var msgs []kafka.Message
		for i := 0; i < (p+1)*7; i++ {
			msgs = append(msgs, kafka.Message{Value: []byte(fmt.Sprintf("p%d-m%d", p, i))})
		}
		_, err = conn.WriteMessages(msgs...)
		conn.Close()
		if err != nil {
			t.Fatalf("write to %s/%d: %v", t1, p, err)
		}
	}

	// ListOffsets: first and last offset of every partition, and of the
	// other topic, in one call (kafka-go splits it per partition).
	req := map[string][]kafka.OffsetRequest{t2: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}
	for p := 0; p < 4; p++ {
		req[t1] = append(req[t1], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		t.Fatalf("ListOffsets: %v", err)
	}
	for tp, n := range map[string]int{t1: 4, t2: 1} {
		if len(lo.Topics[tp]) != n {
			t.Fatalf("ListOffsets %q: %d partitions answered (%+v), want %d", tp, len(lo.Topics[tp]), lo.Topics[tp], n)
		}
	}
	for _, po := range lo.Topics[t1] {
		want := int64((po.Partition + 1) * 7)
		if po.Error != nil || po.FirstOffset != 0 || po.LastOffset != want {
			t.Errorf("ListOffsets %s/%d: first %d last %d err %v; want 0, %d", t1, po.Partition, po.FirstOffset, po.LastOffset, po.Error, want)
		}
	}
	if po := lo.Topics[t2][0]; po.Error != nil || po.FirstOffset != 0 || po.LastOffset != 0 {
		t.Errorf("ListOffsets empty %s/0: first %d last %d err %v; want 0, 0", t2, po.FirstOffset, po.LastOffset, po.Error)
	}
	lo, err = client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{t1: {kafka.FirstOffsetOf(9)}}})
	if err != nil {
		t.Fatalf("ListOffsets on a missing partition: %v", err)
	}
	if len(lo.Topics[t1]) != 1 || !errors.Is(lo.Topics[t1][0].Error, kafka.UnknownTopicOrPartition) {
		t.Errorf("ListOffsets %s/9 = %+v, want UnknownTopicOrPartition", t1, lo.Topics[t1])
	}

	// DeleteTopics: both at once, then again (unknown), then gone from Metadata.
	dr, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{t1, t2}})
	if err != nil {
		t.Fatalf("DeleteTopics: %v", err)
	}
	for _, tp := range []string{t1, t2} {
		if err := dr.Errors[tp]; err != nil {
			t.Errorf("DeleteTopics %q: %v", tp, err)
		}
	}
	kafkagoWaitGone(ctx, t, client, t1, t2)
	dr, err = client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{t1}})
	if err != nil {
		t.Fatalf("second DeleteTopics: %v", err)
	}
	if err := dr.Errors[t1]; !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("second DeleteTopics %q: %v, want %v", t1, err, kafka.UnknownTopicOrPartition)
	}
}

// TestKafkaGoConnAdmin: the same life cycle through kafka.Conn.
func TestKafkaGoConnAdmin(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	conn, err := kafka.DialContext(ctx, "tcp", b.Addr)
	if err != nil {
		t.Fatalf("Dial %s: %v", b.Addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(45 * time.Second))

	ctrl, err := conn.Controller()
	if err != nil || ctrl.ID != 1 || net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)) != b.Addr {
		t.Fatalf("Conn.Controller() = %+v, %v; want broker 1 at %s", ctrl, err, b.Addr)
	}
	brokers, err := conn.Brokers()
	if err != nil || len(brokers) != 1 || brokers[0].ID != 1 {
		t.Fatalf("Conn.Brokers() = %+v, %v; want [broker 1]", brokers, err)
	}

	t1, t2 := kafkagoTopic(t, "kafkago-conn-a"), kafkagoTopic(t, "kafkago-conn-b")
	if err := conn.CreateTopics(
		kafka.TopicConfig{Topic: t1, NumPartitions: 3, ReplicationFactor: 1},
		kafka.TopicConfig{Topic: t2, NumPartitions: 2, ReplicationFactor: 1},
	); err != nil {
		t.Fatalf("Conn.CreateTopics: %v", err)
	}
	// Conn.CreateTopics ignores TopicAlreadyExists by design.
	if err := conn.CreateTopics(kafka.TopicConfig{Topic: t1, NumPartitions: 3, ReplicationFactor: 1}); err != nil {
		t.Errorf("Conn.CreateTopics of an existing topic: %v (kafka-go ignores TopicAlreadyExists)", err)
	}

	parts, err := conn.ReadPartitions(t1, t2)
	if err != nil {
		t.Fatalf("ReadPartitions: %v", err)
	}
	count := map[string]map[int]bool{}
	for _, p := range parts {
		if count[p.Topic] == nil {
			count[p.Topic] = map[int]bool{}
		}
		count[p.Topic][p.ID] = true
		if p.Leader.ID != 1 || net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port)) != b.Addr || len(p.Replicas) != 1 || len(p.Isr) != 1 {
			t.Errorf("ReadPartitions %s/%d: leader %+v replicas %v isr %v", p.Topic, p.ID, p.Leader, p.Replicas, p.Isr)
		}
	}
	if len(count[t1]) != 3 || len(count[t2]) != 2 {
		t.Errorf("ReadPartitions: %s has %d, %s has %d partitions; want 3 and 2", t1, len(count[t1]), t2, len(count[t2]))
	}

	if err := conn.DeleteTopics(t1); err != nil {
		t.Fatalf("Conn.DeleteTopics(%q): %v", t1, err)
	}
	kafkagoWaitGone(ctx, t, kafkagoClient(b.Addr), t1)
	if err := conn.DeleteTopics(t1); !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("Conn.DeleteTopics of a deleted topic: %v, want %v", err, kafka.UnknownTopicOrPartition)
	}
	parts, err = conn.ReadPartitions(t2)
	if err != nil || len(parts) != 2 {
		t.Errorf("ReadPartitions(%q) after deleting the other topic: %d partitions, %v", t2, len(parts), err)
	}
}
