package integration

// A cluster of three gregor processes sharing one etcd (the first
// broker's embedded one), with replication factor 1: the controller
// places partitions over the brokers, Metadata steers clients to each
// partition's leader, a dead broker's partitions go leaderless (no other
// replica holds them) and come back with it, with their records.

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// splitHostPort splits a host:port the way Metadata reports it.
func splitHostPort(t *testing.T, addr string) (string, int32) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, int32(n)
}

// TestCluster runs the scenario on the two ways of forming a cluster:
// brokers sharing one etcd (here the first broker's embedded one, as an
// external etcd would be), and each broker running a member of one
// embedded etcd quorum (--etcd-initial-cluster).
func TestCluster(t *testing.T) {
	t.Run("shared-etcd", func(t *testing.T) {
		runClusterScenario(t, startSharedEtcdCluster(t, 3))
	})
	t.Run("embedded-quorum", func(t *testing.T) {
		runClusterScenario(t, startQuorumCluster(t, 3, "--etcd-lease-ttl", "2s"))
	})
}

// waitBrokersInMetadata waits until Metadata from the broker at addr
// lists n brokers.
func waitBrokersInMetadata(ctx context.Context, t *testing.T, addr string, n int) {
	t.Helper()
	fzWaitFor(t, 20*time.Second, fmt.Sprintf("%d brokers in Metadata", n), func() error {
		brokers, err := fzBrokersNow(ctx, addr)
		if err != nil {
			return err
		}
		if len(brokers) != n {
			return fmt.Errorf("%d brokers: %v", len(brokers), brokers)
		}
		return nil
	})
}

func runClusterScenario(t *testing.T, brokers []*brokerProc) {
	first := brokers[0]
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, first.Addr)
	waitBrokersInMetadata(ctx, t, first.Addr, 3)

	topic := fzTopic(t, "cluster")
	const parts = 6
	fzCreateTopic(ctx, t, adm, topic, parts, nil)
	leaders := func() map[int32]int32 {
		t.Helper()
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int32{}
		for _, p := range td[topic].Partitions {
			out[p.Partition] = p.Leader
		}
		return out
	}
	// CreateTopics answers once the broker that handled it has seen every
	// partition placed; the broker answering Metadata may see it a moment
	// later.
	var led map[int32]int32
	fzWaitFor(t, 10*time.Second, "every partition with a leader in Metadata", func() error {
		led = leaders()
		for p, l := range led {
			if l < 0 {
				return fmt.Errorf("partition %d has no leader yet", p)
			}
		}
		return nil
	})
	count := map[int32]int{}
	for _, l := range led {
		count[l]++
	}
	if count[1] != 2 || count[2] != 2 || count[3] != 2 {
		t.Fatalf("leaders %v: want two partitions on each of brokers 1, 2 and 3", led)
	}

	// A broker that does not lead a partition says so, naming the leader
	// and its endpoint (KIP-951), for Produce and Fetch; an acks=0 produce
	// there closes the connection, so the client refreshes its metadata.
	var p1 int32 = -1
	for p, l := range led {
		if l == 1 {
			p1 = p
		}
	}
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	epoch1 := md.Topics[topic].Partitions[p1].LeaderEpoch
	raw := fzDial(t, brokers[1].Addr)
	pr := raw.roundTrip(fzProduceRequest(11, fzProducePart{topic: topic, partition: p1, records: fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("x")})})).(*kmsg.ProduceResponse)
	sp := pr.Topics[0].Partitions[0]
	if sp.ErrorCode != kerr.NotLeaderForPartition.Code || sp.CurrentLeader.LeaderID != 1 || sp.CurrentLeader.LeaderEpoch != epoch1 {
		t.Errorf("produce v11 to broker 2 for %s[%d] led by 1: %s, current leader %+v; want NOT_LEADER_OR_FOLLOWER naming 1 at epoch %d",
			topic, p1, fzErrCode(sp.ErrorCode), sp.CurrentLeader, epoch1)
	}
	host, port := splitHostPort(t, first.Addr)
	if len(pr.Brokers) != 1 || pr.Brokers[0].NodeID != 1 || pr.Brokers[0].Host != host || pr.Brokers[0].Port != port {
		t.Errorf("produce v11 not-leader answer brokers %+v, want broker 1 at %s", pr.Brokers, first.Addr)
	}
	fr := kmsg.NewPtrFetchRequest()
	fr.SetVersion(16)
	fr.ReplicaID, fr.MaxBytes, fr.SessionEpoch = -1, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.TopicID = md.Topics[topic].ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = p1, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	fresp := raw.roundTrip(fr).(*kmsg.FetchResponse)
	fsp := fresp.Topics[0].Partitions[0]
	if fsp.ErrorCode != kerr.NotLeaderForPartition.Code || fsp.CurrentLeader.LeaderID != 1 || len(fresp.Brokers) != 1 || fresp.Brokers[0].NodeID != 1 {
		t.Errorf("fetch v16 from broker 2 for %s[%d]: %s, current leader %+v, brokers %+v; want NOT_LEADER_OR_FOLLOWER naming broker 1",
			topic, p1, fzErrCode(fsp.ErrorCode), fsp.CurrentLeader, fresp.Brokers)
	}
	noAck := fzProduceRequest(11, fzProducePart{topic: topic, partition: p1, records: fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte("x")})})
	noAck.Acks = 0
	raw.send(noAck)
	raw.expectClosed(10*time.Second, false)

	// A client seeded with one broker produces to all three and reads back.
	cl := fzClient(t, brokers[1].Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 120 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % parts), Value: []byte(strconv.Itoa(i))})
	}
	fzProduceSync(ctx, t, cl, recs...)
	ends := fzEndOffsets(ctx, t, adm, topic)
	for p := range int32(parts) {
		if ends[p] != 20 {
			t.Fatalf("end offsets %v: want 20 on every partition", ends)
		}
		got := fzConsumePartitionTo(ctx, t, brokers[2].Addr, topic, p, 20)
		for o, r := range got {
			if want := strconv.Itoa(o*parts + int(p)); string(r.Value) != want {
				t.Fatalf("%s[%d]@%d = %q, want %q", topic, p, o, r.Value, want)
			}
		}
	}
	// Each broker holds only the partitions it leads.
	for i, b := range brokers {
		for p, l := range led {
			_, err := os.Stat(fzPartitionDir(b, topic, p))
			if has := err == nil; has != (l == int32(i+1)) {
				t.Errorf("broker %d: has directory for %s-%d: %v, but partition leader is %d", i+1, topic, p, has, l)
			}
		}
	}

	// A consumer group: its coordinator is the leader of the group's
	// __consumer_offsets partition, wherever that is; it consumes every
	// partition from all three brokers and commits.
	group := fzTopic(t, "cluster-group")
	exp := grpNewExpected(topic, parts)
	for p := range int32(parts) {
		for o := range 20 {
			exp.vals[p] = append(exp.vals[p], strconv.Itoa(o*parts+int(p)))
		}
	}
	l := &grpLog{}
	m := grpStartMember(t, brokers[0].Addr, "c1", group, []string{topic}, l, kgo.Balancers(kgo.RangeBalancer()))
	grpWaitConsumed(t, l, exp, 30*time.Second)
	grpWaitCommitted(t, 20*time.Second, adm, group, topic, exp.ends())
	if d := grpDescribe(ctx, t, adm, group); d.State != "Stable" || len(d.Members) != 1 {
		t.Errorf("group across the cluster: state %q with %d members", d.State, len(d.Members))
	}
	m.Stop()
	grpReportErrs(t, m)

	// Broker 3 dies: its partitions have no other replica, so no leader;
	// the others keep working. Metadata answers leader -1 as soon as the
	// broker's registration is gone; the wait is for the controller to
	// have recorded the loss too (a new leader epoch).
	brokers[2].Kill()
	fzWaitFor(t, 20*time.Second, "broker 3's partitions to lose their leader", func() error {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range md.Topics[topic].Partitions {
			if led[p.Partition] == 3 && (p.Leader != -1 || p.LeaderEpoch < 1) {
				return fmt.Errorf("partition %d: leader %d at epoch %d", p.Partition, p.Leader, p.LeaderEpoch)
			}
		}
		return nil
	})
	var alive []*kgo.Record
	for p, l := range led {
		if l != 3 {
			alive = append(alive, &kgo.Record{Topic: topic, Partition: p, Value: []byte("after")})
		}
	}
	fzProduceSync(ctx, t, cl, alive...)

	// It comes back: its partitions are led by it again, at a new epoch,
	// with their records.
	brokers[2].Restart()
	fzWaitFor(t, 30*time.Second, "broker 3 to lead its partitions again", func() error {
		if got := leaders(); !mapsEqual(got, led) {
			return fmt.Errorf("leaders %v, want %v", got, led)
		}
		return nil
	})
	for p, l := range led {
		if l == 3 {
			got := fzConsumePartitionTo(ctx, t, first.Addr, topic, p, 20)
			if string(got[19].Value) != strconv.Itoa(19*parts+int(p)) {
				t.Fatalf("%s[%d] after broker 3 came back: last record %q", topic, p, got[19].Value)
			}
		}
	}
	md, err = adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	// OffsetForLeaderEpoch: the records were all written in epoch 0, so
	// epoch 0 ends at the log end (20); an epoch newer than the current
	// one is unknown.
	raw3 := fzDial(t, brokers[2].Addr)
	for p, l := range led {
		if l != 3 {
			continue
		}
		cur := md.Topics[topic].Partitions[p].LeaderEpoch
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.SetVersion(4)
		req.ReplicaID = -1
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = topic
		for _, e := range []int32{0, cur + 1} {
			rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p, cur, e
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := raw3.roundTrip(req).(*kmsg.OffsetForLeaderEpochResponse)
		got := resp.Topics[0].Partitions
		if got[0].ErrorCode != 0 || got[0].LeaderEpoch != 0 || got[0].EndOffset != 20 {
			t.Errorf("OffsetForLeaderEpoch %s[%d] epoch 0 (current %d): %s epoch %d end %d, want epoch 0 end 20", topic, p, cur, fzErrCode(got[0].ErrorCode), got[0].LeaderEpoch, got[0].EndOffset)
		}
		if got[1].ErrorCode != 0 || got[1].LeaderEpoch != -1 || got[1].EndOffset != -1 {
			t.Errorf("OffsetForLeaderEpoch %s[%d] epoch %d: %s epoch %d end %d, want -1 -1", topic, p, cur+1, fzErrCode(got[1].ErrorCode), got[1].LeaderEpoch, got[1].EndOffset)
		}
	}
	for _, p := range md.Topics[topic].Partitions {
		if led[p.Partition] == 3 && p.LeaderEpoch < 2 {
			t.Errorf("partition %d lost and regained its leader but is at epoch %d", p.Partition, p.LeaderEpoch)
		}
		if !slices.Equal(p.Replicas, []int32{led[p.Partition]}) {
			t.Errorf("partition %d replicas %v", p.Partition, p.Replicas)
		}
	}
	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}

func mapsEqual(a, b map[int32]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
