package integration

// Metadata faults never delete data: a topic value in etcd made garbage,
// turned into a newer format version ("v":2), deleted by hand, or the
// whole prefix emptied and the name auto-created again, leaves every
// partition directory and segment byte in place; once the original values
// are put back the records are served again. DeleteTopics still removes
// data, after file.delete.delay.ms.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// mfTopic asks broker 1 (the first one started) for topic's metadata with
// a request of its own. kadm's Metadata answers from the client's cache (up
// to MetadataMinAge old), which may still hold a state the test has moved
// past: "unknown" from the subtest before, while the topic is back.
func mfTopic(ctx context.Context, cl *kgo.Client, topic string) (kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(1))
	if err != nil {
		return kmsg.MetadataResponseTopic{}, err
	}
	if len(resp.Topics) != 1 {
		return kmsg.MetadataResponseTopic{}, fmt.Errorf("Metadata of %s: %d topics", topic, len(resp.Topics))
	}
	return resp.Topics[0], nil
}

// mfEtcd is an etcd client on a broker's embedded etcd, closed when the
// test ends.
func mfEtcd(t *testing.T, p *brokerProc) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{p.Etcd}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// mfSegmentBytes is the size of the .log files of the directory of
// partition p of topic that holds topic id id: <topic>-<p>, or the same
// set aside as <topic>-<p>.<id>-stray. It fails the test when neither
// holds it.
func mfSegmentBytes(t *testing.T, p *brokerProc, topic string, part int32, id kadm.TopicID) (string, int64) {
	t.Helper()
	base := fzPartitionDir(p, topic, part)
	for _, dir := range []string{base, base + "." + mfID(id) + "-stray"} {
		meta, err := os.ReadFile(filepath.Join(dir, "partition.metadata"))
		if err != nil || !strings.Contains(string(meta), "topic_id: "+mfID(id)) {
			continue
		}
		var n int64
		for _, name := range fzLogFiles(t, dir) {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
		return dir, n
	}
	ents, _ := os.ReadDir(p.DataDir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	t.Fatalf("no directory of %s-%d holds topic id %s; the data dir has %v", topic, part, id, names)
	return "", 0
}

// mfID is a topic id as Gregor (and Kafka) prints it: base64url, no padding.
func mfID(id kadm.TopicID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// mfReadyz returns /readyz's status and body.
func mfReadyz(p *brokerProc) (int, string, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + p.HTTP + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// mfBarrier creates a topic through broker p and returns once it has
// answered: its metadata cache has then applied, and its partitions
// reacted to, every change committed before.
func mfBarrier(ctx context.Context, t *testing.T, adm *kadm.Client, n int) {
	t.Helper()
	fzCreateTopic(ctx, t, adm, fmt.Sprintf("barrier-%d", n), 1, nil)
}

func TestMetadataFaultsKeepData(t *testing.T) {
	t.Run("one-broker", func(t *testing.T) { runMetadataFaults(t, []*brokerProc{startBroker(t)}, 1) })
	t.Run("three-brokers", func(t *testing.T) { runMetadataFaults(t, startSharedEtcdCluster(t, 3), 3) })
}

// runMetadataFaults is TestMetadataFaultsKeepData on brokers (sharing the
// first one's etcd), the topic with replication factor rf.
func runMetadataFaults(t *testing.T, brokers []*brokerProc, rf int16) {
	p := brokers[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	etcd := mfEtcd(t, p)
	adm := fzAdmin(t, p.Addr)
	raw := fzClient(t, p.Addr)
	topic := "faults"
	if resp, err := adm.CreateTopic(ctx, 2, rf, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	id := md.Topics[topic].ID

	const n = 200
	var want []*kgo.Record
	for i := range n {
		want = append(want, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: fmt.Appendf(nil, "record-%03d", i)})
	}
	prod := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fzProduceSync(ctx, t, prod, want...)
	prod.Close()
	// Every replica has every record (acks=all) once its log end is the
	// leader's; the bytes each holds then are what must never shrink.
	before := map[*brokerProc]map[int32]int64{}
	fzWaitFor(t, 20*time.Second, "every replica to hold every record", func() error {
		for _, b := range brokers {
			before[b] = map[int32]int64{}
			for part := range int32(2) {
				_, before[b][part] = mfSegmentBytes(t, b, topic, part, id)
			}
			if before[b][0] != before[p][0] || before[b][1] != before[p][1] || before[b][0] == 0 {
				return fmt.Errorf("segment bytes %v on %s, %v on %s", before[b], b.Addr, before[p], p.Addr)
			}
		}
		return nil
	})

	// The metadata as it was, to put back after each fault.
	snap, err := etcd.Get(ctx, "/gregor/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	topicKey := "/gregor/topics/" + topic
	var topicVal string
	for _, kv := range snap.Kvs {
		if string(kv.Key) == topicKey {
			topicVal = string(kv.Value)
		}
	}
	if !strings.Contains(topicVal, `"v":1`) {
		t.Fatalf("topic value %q", topicVal)
	}
	// repair puts every topic, partition and cluster id value back:
	// partition states first (ignored while their topic is another id),
	// then, in one transaction, the topics.
	repair := func(t *testing.T) {
		t.Helper()
		var parts, rest []clientv3.Op
		for _, kv := range snap.Kvs {
			key := string(kv.Key)
			switch {
			case strings.HasPrefix(key, "/gregor/partitions/"):
				parts = append(parts, clientv3.OpPut(key, string(kv.Value)))
			case strings.HasPrefix(key, "/gregor/topics/"), key == "/gregor/cluster/id", key == "/gregor/producer-ids":
				rest = append(rest, clientv3.OpPut(key, string(kv.Value)))
			}
		}
		for len(parts) > 0 {
			k := min(len(parts), 100)
			if _, err := etcd.Txn(ctx).Then(parts[:k]...).Commit(); err != nil {
				t.Fatal(err)
			}
			parts = parts[k:]
		}
		if _, err := etcd.Txn(ctx).Then(rest...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	checkKept := func(t *testing.T, fault string) {
		t.Helper()
		for _, b := range brokers {
			for part := range int32(2) {
				dir, got := mfSegmentBytes(t, b, topic, part, id)
				if got < before[b][part] {
					t.Fatalf("%s: %s holds %d segment bytes, had %d", fault, dir, got, before[b][part])
				}
			}
		}
	}
	checkServed := func(t *testing.T, fault string) {
		t.Helper()
		got := fzConsume(ctx, t, p.Addr, topic, n)
		seen := map[string]bool{}
		for _, r := range got {
			seen[string(r.Value)] = true
		}
		for _, r := range want {
			if !seen[string(r.Value)] {
				t.Fatalf("%s: after the repair, %q is not served", fault, r.Value)
			}
		}
		for _, b := range brokers {
			for part := range int32(2) {
				if dir, _ := mfSegmentBytes(t, b, topic, part, id); dir != fzPartitionDir(b, topic, part) {
					t.Fatalf("%s: after the repair partition %d is in %s", fault, part, dir)
				}
			}
		}
	}
	topicErr := func() error {
		mt, err := mfTopic(ctx, raw, topic)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(mt.ErrorCode)
	}
	// barrier returns once every broker has applied, and its partitions
	// reacted to, every change committed before: a topic created after
	// them shows in each broker's own Metadata.
	barriers := 0
	barrier := func(t *testing.T) {
		t.Helper()
		barriers++
		mfBarrier(ctx, t, adm, barriers)
		name := fmt.Sprintf("barrier-%d", barriers)
		for i := range brokers {
			fzWaitFor(t, 10*time.Second, "broker to see "+name, func() error {
				if mt := rywMetadata(ctx, t, raw, int32(i+1), name); mt.ErrorCode != 0 {
					return kerr.ErrorForCode(mt.ErrorCode)
				}
				return nil
			})
		}
	}
	readyz := func(want int, body string) error {
		for _, b := range brokers {
			code, got, err := mfReadyz(b)
			if err != nil {
				return err
			}
			if code != want || !strings.Contains(got, body) {
				return fmt.Errorf("/readyz of %s: %d %q", b.Addr, code, got)
			}
		}
		return nil
	}

	t.Run("garbage", func(t *testing.T) {
		if _, err := etcd.Put(ctx, topicKey, "garbage{"); err != nil {
			t.Fatal(err)
		}
		fzWaitFor(t, 10*time.Second, "/readyz to report the unreadable value", func() error {
			return readyz(http.StatusServiceUnavailable, topicKey)
		})
		barrier(t)
		checkKept(t, "garbage")
		// The last good value is served meanwhile.
		if err := topicErr(); err != nil {
			t.Fatalf("Metadata of the topic with a garbage value: %v, want served from the last good value", err)
		}
		repair(t)
		fzWaitFor(t, 10*time.Second, "/readyz to recover", func() error { return readyz(http.StatusOK, "") })
		checkServed(t, "garbage")
	})

	t.Run("newer-version", func(t *testing.T) {
		if _, err := etcd.Put(ctx, topicKey, strings.Replace(topicVal, `"v":1`, `"v":2`, 1)); err != nil {
			t.Fatal(err)
		}
		fzWaitFor(t, 10*time.Second, "the topic to be unavailable", func() error {
			if err := topicErr(); err != kerr.LeaderNotAvailable {
				return fmt.Errorf("Metadata: %v, want LEADER_NOT_AVAILABLE", err)
			}
			return nil
		})
		// Each broker applies the value on its own watch: the one asked
		// above may be ahead of the others.
		for _, b := range brokers {
			fzWaitFor(t, 10*time.Second, "a log line of "+b.Addr+" saying to upgrade Gregor", func() error {
				if !strings.Contains(b.Logs(), "upgrade Gregor") {
					return errors.New("none yet")
				}
				return nil
			})
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil || len(rcs) != 1 || rcs[0].Err != kerr.LeaderNotAvailable {
			t.Fatalf("DescribeConfigs of the unreadable topic: %+v, %v; want LEADER_NOT_AVAILABLE", rcs, err)
		}
		// Auto-creation does not create a topic over it.
		auto := fzClient(t, p.Addr, kgo.AllowAutoTopicCreation())
		areq := kmsg.NewPtrMetadataRequest()
		areq.AllowAutoTopicCreation = true
		art := kmsg.NewMetadataRequestTopic()
		art.Topic = kmsg.StringPtr(topic)
		areq.Topics = append(areq.Topics, art)
		aresp, err := areq.RequestWith(ctx, auto)
		if err != nil || len(aresp.Topics) != 1 || aresp.Topics[0].ErrorCode != kerr.LeaderNotAvailable.Code {
			t.Fatalf("auto-creating Metadata of the unreadable topic: %+v, %v; want LEADER_NOT_AVAILABLE", aresp, err)
		}
		auto.Close()
		barrier(t)
		checkKept(t, "newer-version")
		repair(t)
		barrier(t)
		checkServed(t, "newer-version")
	})

	t.Run("key-deleted", func(t *testing.T) {
		if _, err := etcd.Delete(ctx, topicKey); err != nil {
			t.Fatal(err)
		}
		fzWaitFor(t, 10*time.Second, "the topic to be gone", func() error {
			if err := topicErr(); err != kerr.UnknownTopicOrPartition {
				return fmt.Errorf("Metadata: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
			}
			return nil
		})
		barrier(t)
		checkKept(t, "key-deleted")
		repair(t)
		barrier(t)
		checkServed(t, "key-deleted")
	})

	t.Run("prefix-emptied-then-auto-created", func(t *testing.T) {
		if _, err := etcd.Delete(ctx, "/gregor/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
		fzWaitFor(t, 10*time.Second, "the topic to be gone", func() error {
			if err := topicErr(); err != kerr.UnknownTopicOrPartition {
				return fmt.Errorf("Metadata: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
			}
			return nil
		})
		// A producer auto-creates the name again: another topic id takes
		// the partition directory, the old one is set aside.
		// (On three brokers the partition's leader may not have applied
		// the creation when the producer reaches it: kgo retries the
		// UNKNOWN_TOPIC_ID, as a Kafka client must.)
		auto := fzClient(t, p.Addr, kgo.AllowAutoTopicCreation(), kgo.DisableIdempotentWrite(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		actx, acancel := context.WithTimeout(ctx, 20*time.Second)
		fzProduceSync(actx, t, auto, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("into the new topic")})
		acancel()
		auto.Close()
		if mt, err := mfTopic(ctx, raw, topic); err != nil || mt.ErrorCode != 0 || mt.TopicID == id {
			t.Fatalf("auto-created topic: %+v, %v: want another topic id", mt, err)
		}
		barrier(t)
		checkKept(t, "prefix-emptied")
		strays := 0
		for _, b := range brokers {
			if _, err := os.Stat(fzPartitionDir(b, topic, 0) + "." + mfID(id) + "-stray"); err == nil {
				strays++
			}
		}
		if strays == 0 {
			t.Fatal("the old topic id's directory was set aside as stray nowhere")
		}
		repair(t)
		// The repair puts the old topic id back over the auto-created
		// one: every broker must have applied it before a consumer
		// (which would otherwise meet UNKNOWN_TOPIC_ID on a broker
		// still on the new id) is started.
		barrier(t)
		checkServed(t, "prefix-emptied")
	})
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

// TestDeleteTopicsRemovesDataAfterDelay: an explicit DeleteTopics still
// removes the data: the partition directory is renamed -delete before the
// answer and removed after the topic's file.delete.delay.ms.
func TestDeleteTopicsRemovesDataAfterDelay(t *testing.T) {
	p := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := fzAdmin(t, p.Addr)
	topic := "doomed"
	delay := "1500"
	fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{"file.delete.delay.ms": &delay})
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	id := md.Topics[topic].ID
	prod := fzClient(t, p.Addr)
	fzProduceSync(ctx, t, prod, &kgo.Record{Topic: topic, Value: []byte("v")})
	dir := fzPartitionDir(p, topic, 0)
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	resp, err := adm.DeleteTopics(ctx, topic)
	if err != nil || resp[topic].Err != nil {
		t.Fatalf("DeleteTopics: %v %v", err, resp[topic].Err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s after DeleteTopics answered: %v, want gone", dir, err)
	}
	aside := dir + "." + mfID(id) + "-delete"
	if _, err := os.Stat(aside); err != nil {
		t.Fatalf("%s: %v", aside, err)
	}
	fzWaitFor(t, 20*time.Second, "the -delete directory to be removed", func() error {
		if _, err := os.Stat(aside); !os.IsNotExist(err) {
			return fmt.Errorf("%s still there (%v)", aside, err)
		}
		return nil
	})
	fzCheckLogs(t, p)
}

// TestNewerMetadataVersionRefusesStart: a broker that finds, when it
// starts, a topic value of a newer format version than it reads refuses
// to start, saying to upgrade Gregor, and removes nothing.
func TestNewerMetadataVersionRefusesStart(t *testing.T) {
	p := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := fzAdmin(t, p.Addr)
	topic := "future"
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	prod := fzClient(t, p.Addr)
	fzProduceSync(ctx, t, prod, &kgo.Record{Topic: topic, Value: []byte("kept")})
	prod.Close()
	etcd := mfEtcd(t, p)
	key := "/gregor/topics/" + topic
	got, err := etcd.Get(ctx, key)
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("get %s: %v", key, err)
	}
	if _, err := etcd.Put(ctx, key, strings.Replace(string(got.Kvs[0].Value), `"v":1`, `"v":2`, 1)); err != nil {
		t.Fatal(err)
	}
	etcd.Close()
	p.Stop()

	p.spawn()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("gregor started on a value of a newer format:\n%s", p.Logs())
	}
	if code := p.ExitCode(); code == 0 {
		t.Fatalf("gregor exited with 0 on a value of a newer format")
	}
	if logs := p.Logs(); !strings.Contains(logs, "upgrade Gregor") || !strings.Contains(logs, key) {
		t.Fatalf("the refusal does not say to upgrade Gregor naming %s:\n%s", key, logs)
	}
	if _, err := os.Stat(filepath.Join(fzPartitionDir(p, topic, 0), "partition.metadata")); err != nil {
		t.Fatalf("the topic's data is gone: %v", err)
	}
}
