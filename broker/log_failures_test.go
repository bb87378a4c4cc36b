package broker

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// diskFS is the OS filesystem with one failing disk: once failing is set,
// every write to a file under a directory named failDir fails with EIO.
type diskFS struct {
	storage.OSFS
	failDir string      // set before failing
	failing atomic.Bool // read by the logs' writers
}

func (d *diskFS) OpenFile(name string, flag int, perm fs.FileMode) (storage.File, error) {
	f, err := d.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &diskFile{File: f, fs: d, dir: filepath.Base(filepath.Dir(name))}, nil
}

type diskFile struct {
	storage.File
	fs  *diskFS
	dir string
}

func (f *diskFile) WriteAt(b []byte, off int64) (int, error) {
	if f.fs.failing.Load() && f.dir == f.fs.failDir {
		return 0, syscall.EIO
	}
	return f.File.WriteAt(b, off)
}

// produceOne sends one record to topic-partition with acks=1 and returns
// the partition's error code.
func produceOne(t *testing.T, b *Broker, c *conn, topic string, partition int32) int16 {
	t.Helper()
	batch, err := b.codecs.BuildBatch(protocol.CodecNone, time.Now().UnixMilli(), []kmsg.Record{{Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = 1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := b.handleProduce(c, req)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	pr := resp.(*kmsg.ProduceResponse)
	return pr.Topics[0].Partitions[0].ErrorCode
}

// TestFailedLogHandsOffLeadership: the disk under a partition this broker
// leads starts failing writes. The produce that hits it gets
// KAFKA_STORAGE_ERROR, the log refuses appends from then on, and the
// broker leaves the partition's ISR with leadership moving to another
// in-sync replica at the next epoch; afterwards it answers
// NOT_LEADER_OR_FOLLOWER, sending clients to the new leader. Its other
// partitions carry on.
func TestFailedLogHandsOffLeadership(t *testing.T) {
	disk := &diskFS{}
	store := metadata.NewMemoryStore("test-cluster")
	b, err := New(Config{NodeID: 1, AdvertisedHost: "localhost", AdvertisedPort: 9092, DataDir: t.TempDir(), Logger: zerolog.Nop(), LogFS: disk}, store)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	for id := int32(2); id <= 3; id++ {
		peer := store.Peer()
		t.Cleanup(func() { peer.Close() })
		if err := peer.RegisterBroker(context.Background(), metadata.Broker{NodeID: id, Host: "other", Port: 9090 + id}); err != nil {
			t.Fatal(err)
		}
	}
	reassignWait(t, b, "three live brokers", func() bool { return len(b.store.Brokers()) == 3 })
	topic := createPlaced(t, b, metadata.Topic{Name: "disk", Partitions: 6, ReplicationFactor: 3})
	var led []metadata.PartitionState
	for _, st := range b.store.PartitionStates(topic.Name) {
		if st.Leader == 1 && len(st.ISR) == 3 {
			led = append(led, st)
		}
	}
	if len(led) < 2 {
		t.Fatalf("broker 1 leads %d of the 6 partitions with a full ISR, want at least 2: %+v", len(led), b.store.PartitionStates(topic.Name))
	}
	failed, healthy := led[0], led[1]
	c := newTestConn(b)
	if code := produceOne(t, b, c, topic.Name, failed.Partition); code != 0 {
		t.Fatalf("produce before the disk fails: %s", kerr.ErrorForCode(code))
	}

	disk.failDir = topic.Name + "-" + strconv.Itoa(int(failed.Partition))
	disk.failing.Store(true)
	if code := produceOne(t, b, c, topic.Name, failed.Partition); code != kerr.KafkaStorageError.Code {
		t.Fatalf("produce to the failing disk: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}
	part, err := b.parts.get(topic.Name, failed.Partition)
	if err != nil {
		t.Fatal(err)
	}
	if err := part.log.Failed(); err == nil {
		t.Fatal("the log is not marked failed")
	}

	reassignWait(t, b, "leadership handed off", func() bool {
		st, _ := b.store.Partition(topic.Name, failed.Partition)
		return st.Leader != 1 && st.Leader != metadata.NoLeader && !slices.Contains(st.ISR, 1) && st.LeaderEpoch > failed.LeaderEpoch
	})
	reassignWait(t, b, "the broker no longer leads", func() bool { return !part.leading.Load() })
	if code := produceOne(t, b, c, topic.Name, failed.Partition); code != kerr.NotLeaderForPartition.Code {
		t.Errorf("produce to the old leader after the hand-off: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}
	if code := produceOne(t, b, c, topic.Name, healthy.Partition); code != 0 {
		t.Errorf("produce to a partition on a healthy disk: %v", kerr.ErrorForCode(code))
	}
	if st, _ := b.store.Partition(topic.Name, healthy.Partition); st.Leader != 1 || len(st.ISR) != 3 {
		t.Errorf("the healthy partition changed: %+v", st)
	}
}
