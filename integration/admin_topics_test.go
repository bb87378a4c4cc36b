package integration

// Topic administration through kadm: CreateTopics (configs, validate-only,
// duplicates, bad names, bad configs), auto-creation on Metadata,
// DeleteTopics (and the partition directories going away), and
// CreatePartitions.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fzTopicDetail returns a topic's metadata, failing the test if it is missing.
func fzTopicDetail(ctx context.Context, t testing.TB, adm *kadm.Client, topic string) kadm.TopicDetail {
	t.Helper()
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatalf("list topic %s: %v", topic, err)
	}
	td, ok := tds[topic]
	if !ok || td.Err != nil {
		t.Fatalf("topic %s: present %v, err %v", topic, ok, td.Err)
	}
	return td
}

// fzCheckPartitions checks a topic has n partitions 0..n-1, each led by
// node 1 with replicas and ISR [1].
func fzCheckPartitions(t testing.TB, td kadm.TopicDetail, n int) {
	t.Helper()
	if len(td.Partitions) != n {
		t.Fatalf("topic %s has %d partitions %v, want %d", td.Topic, len(td.Partitions), td.Partitions.Numbers(), n)
	}
	for i := int32(0); i < int32(n); i++ {
		pd, ok := td.Partitions[i]
		if !ok {
			t.Fatalf("topic %s lacks partition %d", td.Topic, i)
		}
		if pd.Err != nil || pd.Leader != 1 || len(pd.Replicas) != 1 || pd.Replicas[0] != 1 || len(pd.ISR) != 1 || pd.ISR[0] != 1 {
			t.Fatalf("topic %s partition %d: leader %d replicas %v isr %v err %v, want node 1 everywhere", td.Topic, i, pd.Leader, pd.Replicas, pd.ISR, pd.Err)
		}
	}
}

func fzTopicExists(ctx context.Context, t testing.TB, adm *kadm.Client, topic string) bool {
	t.Helper()
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	return tds.Has(topic)
}

func TestAdminTopics(t *testing.T) {
	p := startBroker(t, "--num-partitions", "2")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)

	t.Run("CreateWithConfigs", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		resp, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{
			"retention.ms":  kadm.StringPtr("3600000"),
			"segment.bytes": kadm.StringPtr("1048576"),
		}, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("create: %v / %v (%s)", err, resp.Err, resp.ErrMessage)
		}
		if resp.NumPartitions != 3 || resp.ReplicationFactor != 1 {
			t.Fatalf("create answered %d partitions, replication %d; want 3, 1", resp.NumPartitions, resp.ReplicationFactor)
		}
		if resp.ID == (kadm.TopicID{}) {
			t.Fatalf("create answered a zero topic id")
		}
		if c, ok := resp.Configs["retention.ms"]; !ok || c.MaybeValue() != "3600000" {
			t.Fatalf("create response config retention.ms = %+v (present %v), want 3600000", c, ok)
		}
		td := fzTopicDetail(ctx, t, adm, topic)
		fzCheckPartitions(t, td, 3)
		if td.ID != resp.ID {
			t.Fatalf("metadata topic id %v, create answered %v", td.ID, resp.ID)
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		got := fzConfigMap(t, rcs, topic)
		for name, want := range map[string]string{"retention.ms": "3600000", "segment.bytes": "1048576"} {
			if c := got[name]; c.MaybeValue() != want || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
				t.Fatalf("%s = %q source %v, want %q DYNAMIC_TOPIC_CONFIG", name, c.MaybeValue(), c.Source, want)
			}
		}
	})

	t.Run("DefaultPartitions", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, -1, nil)
		fzCheckPartitions(t, fzTopicDetail(ctx, t, adm, topic), 2) // --num-partitions 2
	})

	t.Run("ValidateOnly", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		resps, err := adm.ValidateCreateTopics(ctx, 4, 1, map[string]*string{"retention.ms": kadm.StringPtr("1000")}, topic)
		if err != nil {
			t.Fatal(err)
		}
		if r := resps[topic]; r.Err != nil {
			t.Fatalf("validate-only create: %v (%s)", r.Err, r.ErrMessage)
		}
		if fzTopicExists(ctx, t, adm, topic) {
			t.Fatalf("validate-only create made topic %s", topic)
		}
		if _, err := os.Stat(fzPartitionDir(p, topic, 0)); !os.IsNotExist(err) {
			t.Fatalf("validate-only create left a partition directory (stat: %v)", err)
		}
		// Validation still rejects what a real create would.
		resps, err = adm.ValidateCreateTopics(ctx, 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("soon")}, topic)
		if err != nil {
			t.Fatal(err)
		}
		if r := resps[topic]; !errors.Is(r.Err, kerr.InvalidConfig) {
			t.Fatalf("validate-only create with retention.ms=soon: %v, want INVALID_CONFIG", r.Err)
		}
	})

	t.Run("AlreadyExists", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		if err := fzCreateErr(ctx, t, adm, 5, 1, nil, topic); !errors.Is(err, kerr.TopicAlreadyExists) {
			t.Fatalf("second create: %v, want TOPIC_ALREADY_EXISTS", err)
		}
		fzCheckPartitions(t, fzTopicDetail(ctx, t, adm, topic), 1)
		// The same through validate-only.
		resps, err := adm.ValidateCreateTopics(ctx, 1, 1, nil, topic)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(resps[topic].Err, kerr.TopicAlreadyExists) {
			t.Fatalf("validate-only create of an existing topic: %v, want TOPIC_ALREADY_EXISTS", resps[topic].Err)
		}
	})

	t.Run("InvalidNames", func(t *testing.T) {
		for _, name := range []string{"has space", "..", ".", "bad/slash", "bad*star", strings.Repeat("x", 250), "ünïcode"} {
			if err := fzCreateErr(ctx, t, adm, 1, 1, nil, name); !errors.Is(err, kerr.InvalidTopicException) {
				t.Errorf("create %q: %v, want INVALID_TOPIC_EXCEPTION", name, err)
			}
		}
		ok := strings.Repeat("y", 249)
		fzCreateTopic(ctx, t, adm, ok, 1, nil)
		fzCheckPartitions(t, fzTopicDetail(ctx, t, adm, ok), 1)
	})

	t.Run("InvalidConfigsAndCounts", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		cases := []struct {
			partitions int32
			rf         int16
			configs    map[string]*string
			want       error
		}{
			{1, 1, map[string]*string{"segment.bytes": kadm.StringPtr("abc")}, kerr.InvalidConfig},
			{1, 1, map[string]*string{"no.such.config": kadm.StringPtr("1")}, kerr.InvalidConfig},
			{1, 1, map[string]*string{"message.timestamp.type": kadm.StringPtr("WallClock")}, kerr.InvalidConfig},
			{0, 1, nil, kerr.InvalidPartitions},
			{1, 3, nil, kerr.InvalidReplicationFactor},
		}
		for _, c := range cases {
			if err := fzCreateErr(ctx, t, adm, c.partitions, c.rf, c.configs, topic); !errors.Is(err, c.want) {
				t.Errorf("create with %d partitions, rf %d, configs %v: %v, want %v", c.partitions, c.rf, fzDeref(c.configs), err, c.want)
			}
		}
		if fzTopicExists(ctx, t, adm, topic) {
			t.Fatalf("a rejected create made topic %s", topic)
		}
	})

	t.Run("AutoCreateOnProduce", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		if fzTopicExists(ctx, t, adm, topic) {
			t.Fatalf("topic %s exists before the test", topic)
		}
		cl := fzClient(t, p.Addr, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))
		r := &kgo.Record{Value: []byte("first")}
		fzProduceSync(ctx, t, cl, r)
		if r.Offset != 0 {
			t.Fatalf("first record of an auto-created topic at offset %d", r.Offset)
		}
		fzCheckPartitions(t, fzTopicDetail(ctx, t, adm, topic), 2) // --num-partitions 2
		got := fzConsume(ctx, t, p.Addr, topic, 1)
		if string(got[0].Value) != "first" {
			t.Fatalf("consumed %q", got[0].Value)
		}
	})

	t.Run("MetadataWithoutAutoCreate", func(t *testing.T) {
		// A Metadata request that does not ask for auto-creation must not create.
		topic := fzTopic(t, "fz")
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if td, ok := tds[topic]; ok && !errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("metadata for unknown topic: %+v, want UNKNOWN_TOPIC_OR_PARTITION", td)
		}
		if fzTopicExists(ctx, t, adm, topic) {
			t.Fatalf("metadata without allow_auto_topic_creation created %s", topic)
		}
	})

	t.Run("DeleteAndRecreate", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 2, nil)
		cl := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for i := 0; i < 20; i++ {
			fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(fmt.Sprint(i))})
		}
		for part := int32(0); part < 2; part++ {
			if _, err := os.Stat(fzPartitionDir(p, topic, part)); err != nil {
				t.Fatalf("before delete: %v", err)
			}
		}
		if err := fzDeleteErr(ctx, t, adm, topic); err != nil {
			t.Fatalf("delete: %v", err)
		}
		fzWaitFor(t, 20*time.Second, "deleted topic gone from metadata", func() error {
			if fzTopicExists(ctx, t, adm, topic) {
				return errors.New("still listed")
			}
			return nil
		})
		fzWaitFor(t, 20*time.Second, "deleted topic's partition directories removed", func() error {
			for part := int32(0); part < 2; part++ {
				if _, err := os.Stat(fzPartitionDir(p, topic, part)); !os.IsNotExist(err) {
					return fmt.Errorf("%s: stat %v", fzPartitionDir(p, topic, part), err)
				}
			}
			return nil
		})

		// Deleting again: unknown.
		if err := fzDeleteErr(ctx, t, adm, topic); !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("second delete: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
		}

		// Recreate with one partition: empty, offsets from 0.
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		fzCheckPartitions(t, fzTopicDetail(ctx, t, adm, topic), 1)
		if end := fzEndOffsets(ctx, t, adm, topic)[0]; end != 0 {
			t.Fatalf("recreated topic has end offset %d, want 0", end)
		}
		cl2 := fzClient(t, p.Addr)
		r := &kgo.Record{Topic: topic, Value: []byte("reborn")}
		fzProduceSync(ctx, t, cl2, r)
		if r.Offset != 0 {
			t.Fatalf("first record of the recreated topic at offset %d", r.Offset)
		}
		got := fzConsume(ctx, t, p.Addr, topic, 1)
		if string(got[0].Value) != "reborn" || got[0].Offset != 0 {
			t.Fatalf("recreated topic: consumed %q at %d", got[0].Value, got[0].Offset)
		}
	})

	t.Run("CreatePartitions", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 3, nil)
		resps, err := adm.UpdatePartitions(ctx, 5, topic)
		if err != nil || resps[topic].Err != nil {
			t.Fatalf("3 -> 5 partitions: %v / %v (%s)", err, resps[topic].Err, resps[topic].ErrMessage)
		}
		fzCheckPartitions(t, fzTopicDetail(ctx, t, adm, topic), 5)

		cl := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		r := &kgo.Record{Topic: topic, Partition: 4, Value: []byte("to the new partition")}
		fzProduceSync(ctx, t, cl, r)
		if r.Partition != 4 || r.Offset != 0 {
			t.Fatalf("record acknowledged at %d[%d], want offset 0 of partition 4", r.Offset, r.Partition)
		}
		if _, err := os.Stat(fzPartitionDir(p, topic, 4)); err != nil {
			t.Fatalf("new partition's directory after a produce: %v", err)
		}
		cons := fzClient(t, p.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {4: kgo.NewOffset().AtStart()}}))
		got := fzPoll(ctx, t, cons, 1)
		if got[0].Partition != 4 || string(got[0].Value) != "to the new partition" {
			t.Fatalf("consumed %q from partition %d", got[0].Value, got[0].Partition)
		}

		// Shrinking, or a count equal to the current one, is refused.
		for _, n := range []int{2, 5} {
			resps, err = adm.UpdatePartitions(ctx, n, topic)
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(resps[topic].Err, kerr.InvalidPartitions) {
				t.Errorf("5 -> %d partitions: %v, want INVALID_PARTITIONS", n, resps[topic].Err)
			}
		}
		// Validate-only adds nothing.
		resps, err = adm.ValidateUpdatePartitions(ctx, 8, topic)
		if err != nil || resps[topic].Err != nil {
			t.Fatalf("validate-only 5 -> 8: %v / %v", err, resps[topic].Err)
		}
		fzCheckPartitions(t, fzTopicDetail(ctx, t, adm, topic), 5)

		// Unknown topic.
		missing := topic + "-missing"
		resps, err = adm.CreatePartitions(ctx, 1, missing)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(resps[missing].Err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("create partitions of unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", resps[missing].Err)
		}
	})

	t.Run("DeleteRecreateWhileProducing", func(t *testing.T) {
		// Delete and recreate a topic while producers and a consumer hit
		// it. Errors on the clients are expected; the broker must not
		// panic or race, and the last incarnation must work from offset 0.
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 2, nil)
		bgCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var bgClients []*kgo.Client
		for g := 0; g < 2; g++ {
			cl := fzClient(t, p.Addr, kgo.UnknownTopicRetries(-1), kgo.RecordRetries(3))
			bgClients = append(bgClients, cl)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; bgCtx.Err() == nil; i++ {
					pctx, cancel := context.WithTimeout(bgCtx, 2*time.Second)
					err := cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("bg-%d-%d", g, i))}).FirstErr()
					if errors.Is(err, kerr.UnknownTopicID) {
						// franz-go keeps a recreated topic's old id until told to forget it.
						cl.PurgeTopicsFromClient(topic)
					}
					cancel()
				}
			}()
		}
		cons := fzClient(t, p.Addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		bgClients = append(bgClients, cons)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bgCtx.Err() == nil {
				cons.PollFetches(bgCtx)
			}
		}()
		for round := 0; round < 4; round++ {
			fzWaitFor(t, 20*time.Second, fmt.Sprintf("round %d: records in the topic", round), func() error {
				lo, err := adm.ListEndOffsets(ctx, topic)
				if err != nil {
					return err
				}
				var n int64
				lo.Each(func(o kadm.ListedOffset) { n += max(o.Offset, 0) })
				if n == 0 {
					return errors.New("empty")
				}
				return nil
			})
			if err := fzDeleteErr(ctx, t, adm, topic); err != nil {
				t.Fatalf("round %d: delete: %v", round, err)
			}
			fzWaitFor(t, 20*time.Second, "recreate after delete", func() error {
				return fzCreateErr(ctx, t, adm, 2, 1, nil, topic)
			})
		}
		stop()
		wg.Wait()
		for _, cl := range bgClients {
			cl.Close()
		}

		// A final incarnation with nobody else writing starts empty.
		if err := fzDeleteErr(ctx, t, adm, topic); err != nil {
			t.Fatalf("final delete: %v", err)
		}
		fzWaitFor(t, 20*time.Second, "final recreate", func() error {
			return fzCreateErr(ctx, t, adm, 2, 1, nil, topic)
		})
		for part, end := range fzEndOffsets(ctx, t, adm, topic) {
			if end != 0 {
				t.Fatalf("recreated topic: partition %d ends at %d, want 0", part, end)
			}
		}
		r := &kgo.Record{Topic: topic, Value: []byte("last")}
		fzProduceSync(ctx, t, fzClient(t, p.Addr), r)
		if r.Offset != 0 {
			t.Fatalf("first record of the last incarnation at offset %d", r.Offset)
		}
	})

	fzCheckLogs(t, p)
}

func TestAdminAutoCreateDisabled(t *testing.T) {
	p := startBroker(t, "--auto-create-topics-enable=false")
	ctx := testContext(t, 60*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "fz")

	// Metadata v12 asking for auto-creation (names, not ids).
	raw := fzDial(t, p.Addr)
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = true
	resp := raw.roundTrip(req).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata with auto-create for unknown topic: %+v, want one topic with UNKNOWN_TOPIC_OR_PARTITION", resp.Topics)
	}
	if fzTopicExists(ctx, t, adm, topic) {
		t.Fatalf("topic %s created with auto.create.topics.enable=false", topic)
	}

	// A franz-go producer that allows auto-creation gives up with the same error.
	cl := fzClient(t, p.Addr, kgo.AllowAutoTopicCreation(), kgo.UnknownTopicRetries(2))
	res := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("nowhere")})
	if err := res.FirstErr(); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("produce to unknown topic with auto-create disabled: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	if fzTopicExists(ctx, t, adm, topic) {
		t.Fatalf("topic %s created by a produce with auto.create.topics.enable=false", topic)
	}

	// Explicit creation still works.
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	fzProduceSync(ctx, t, fzClient(t, p.Addr), &kgo.Record{Topic: topic, Value: []byte("somewhere")})
	fzCheckLogs(t, p)
}

// fzCreateErr creates one topic and returns the topic's error (nil on success).
func fzCreateErr(ctx context.Context, t testing.TB, adm *kadm.Client, partitions int32, rf int16, configs map[string]*string, topic string) error {
	t.Helper()
	resps, err := adm.CreateTopics(ctx, partitions, rf, configs, topic)
	if err != nil {
		t.Fatalf("CreateTopics %q: %v", topic, err)
	}
	r, ok := resps[topic]
	if !ok {
		t.Fatalf("CreateTopics %q: topic missing from the response %v", topic, resps)
	}
	return r.Err
}

// fzDeleteErr deletes one topic and returns the topic's error (nil on success).
func fzDeleteErr(ctx context.Context, t testing.TB, adm *kadm.Client, topic string) error {
	t.Helper()
	resps, err := adm.DeleteTopics(ctx, topic)
	if err != nil {
		t.Fatalf("DeleteTopics %q: %v", topic, err)
	}
	r, ok := resps[topic]
	if !ok {
		t.Fatalf("DeleteTopics %q: topic missing from the response %v", topic, resps)
	}
	return r.Err
}

// fzConfigMap returns one resource's configs by name.
func fzConfigMap(t testing.TB, rcs kadm.ResourceConfigs, name string) map[string]kadm.Config {
	t.Helper()
	rc, err := rcs.On(name, nil)
	if err != nil {
		t.Fatalf("no configs for %q in the response: %v", name, err)
	}
	if rc.Err != nil {
		t.Fatalf("configs for %q: %v (%s)", name, rc.Err, rc.ErrMessage)
	}
	out := make(map[string]kadm.Config, len(rc.Configs))
	for _, c := range rc.Configs {
		out[c.Key] = c
	}
	return out
}
