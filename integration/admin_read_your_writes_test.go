package integration

// Admin answers are read-your-writes: once CreateTopics, CreatePartitions
// or DeleteTopics has answered on a broker, the next Metadata request to
// that broker shows the change (every partition with a leader, or the
// topic gone). Explicit replica assignments are applied as given.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rywMetadata asks broker node (through cl) for topic's metadata.
func rywMetadata(ctx context.Context, t *testing.T, cl *kgo.Client, node int32, topic string) kmsg.MetadataResponseTopic {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(int(node)))
	if err != nil {
		t.Fatalf("Metadata from broker %d: %v", node, err)
	}
	if len(resp.Topics) != 1 {
		t.Fatalf("Metadata from broker %d: %d topics", node, len(resp.Topics))
	}
	return resp.Topics[0]
}

// rywWantPlaced fails unless mt has partitions partitions, each with a
// leader, no error and rf replicas.
func rywWantPlaced(t *testing.T, what string, mt kmsg.MetadataResponseTopic, partitions, rf int) {
	t.Helper()
	if mt.ErrorCode != 0 || len(mt.Partitions) != partitions {
		t.Fatalf("%s: error %v, %d partitions; want %d partitions", what, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions), partitions)
	}
	for _, p := range mt.Partitions {
		if p.ErrorCode != 0 || p.Leader < 0 || len(p.Replicas) != rf {
			t.Fatalf("%s: partition %d error %v leader %d replicas %v", what, p.Partition, kerr.ErrorForCode(p.ErrorCode), p.Leader, p.Replicas)
		}
	}
}

// TestAdminReadYourWritesOneBroker: kadm CreateTopic then at once
// Metadata and ListTopics show every partition with a leader; DeleteTopic
// then at once Metadata shows the topic gone, 20 times over.
func TestAdminReadYourWritesOneBroker(t *testing.T) {
	p := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := fzClient(t, p.Addr)
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(0) // no waiting for placement in the handler: the answer itself must be enough
	for i := range 20 {
		topic := fmt.Sprintf("ryw-%d", i)
		resp, err := adm.CreateTopic(ctx, 4, 1, nil, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		td := md.Topics[topic]
		if td.Err != nil || len(td.Partitions) != 4 {
			t.Fatalf("Metadata right after CreateTopics: %v, %d partitions", td.Err, len(td.Partitions))
		}
		for _, pd := range td.Partitions {
			if pd.Err != nil || pd.Leader < 0 {
				t.Fatalf("%s-%d right after CreateTopics: %v, leader %d", topic, pd.Partition, pd.Err, pd.Leader)
			}
		}
		listed, err := adm.ListTopics(ctx, topic)
		if err != nil || len(listed[topic].Partitions) != 4 {
			t.Fatalf("ListTopics right after CreateTopics: %v, %+v", err, listed[topic])
		}
		if i%2 == 1 {
			dr, err := adm.DeleteTopic(ctx, topic)
			if err != nil || dr.Err != nil {
				t.Fatalf("delete %s: %v %v", topic, err, dr.Err)
			}
			// kadm's Metadata answers from the kgo client's own metadata
			// cache (MetadataMinAge), which DeleteTopics does not clear:
			// ask the broker itself.
			if mt := rywMetadata(ctx, t, cl, 1, topic); mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
				t.Fatalf("Metadata right after DeleteTopics: %v with %d partitions, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
			}
		}
	}
}

// TestAdminReadYourWritesCluster: on three brokers, each CreateTopics,
// CreatePartitions and DeleteTopics is sent to one broker, and Metadata
// to that same broker at once shows its effect.
func TestAdminReadYourWritesCluster(t *testing.T) {
	brokers := startSharedEtcdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := fzClient(t, brokers[0].Addr)
	for i := range 20 {
		node := int32(i%3 + 1)
		topic := fmt.Sprintf("ryw-cluster-%d", i)
		create := kmsg.NewPtrCreateTopicsRequest()
		create.TimeoutMillis = 0 // the answer must be enough, with no waiting asked for
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 3, 3
		create.Topics = append(create.Topics, rt)
		cresp, err := create.RequestWith(ctx, cl.Broker(int(node)))
		if err != nil || cresp.Topics[0].ErrorCode != 0 {
			t.Fatalf("create %s on broker %d: %v %+v", topic, node, err, cresp)
		}
		rywWantPlaced(t, fmt.Sprintf("broker %d right after CreateTopics of %s", node, topic), rywMetadata(ctx, t, cl, node, topic), 3, 3)

		grow := kmsg.NewPtrCreatePartitionsRequest()
		grow.TimeoutMillis = 0
		gt := kmsg.NewCreatePartitionsRequestTopic()
		gt.Topic, gt.Count = topic, 5
		grow.Topics = append(grow.Topics, gt)
		gresp, err := grow.RequestWith(ctx, cl.Broker(int(node)))
		if err != nil || gresp.Topics[0].ErrorCode != 0 {
			t.Fatalf("create partitions of %s on broker %d: %v %+v", topic, node, err, gresp)
		}
		rywWantPlaced(t, fmt.Sprintf("broker %d right after CreatePartitions of %s", node, topic), rywMetadata(ctx, t, cl, node, topic), 5, 3)

		del := kmsg.NewPtrDeleteTopicsRequest()
		del.TopicNames = []string{topic}
		dt := kmsg.NewDeleteTopicsRequestTopic()
		dt.Topic = kmsg.StringPtr(topic)
		del.Topics = append(del.Topics, dt)
		dresp, err := del.RequestWith(ctx, cl.Broker(int(node)))
		if err != nil || dresp.Topics[0].ErrorCode != 0 {
			t.Fatalf("delete %s on broker %d: %v %+v", topic, node, err, dresp)
		}
		if mt := rywMetadata(ctx, t, cl, node, topic); mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("broker %d right after DeleteTopics of %s: error %v with %d partitions, want UNKNOWN_TOPIC_OR_PARTITION",
				node, topic, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
		}
	}
}

// TestCreateTopicReplicaAssignment: CreateTopics and CreatePartitions
// with explicit replica assignments place the replicas in the given
// order, the first one leading, and the partitions serve records.
func TestCreateTopicReplicaAssignment(t *testing.T) {
	brokers := startSharedEtcdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := fzAdmin(t, brokers[0].Addr)
	cl := fzClient(t, brokers[0].Addr)
	topic := "assigned"
	assignment := [][]int32{{3, 1, 2}, {2, 3, 1}, {1, 2, 3}}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 15000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p, replicas := range assignment {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("CreateTopics with an assignment: %v %+v", err, resp)
	}

	grow := kmsg.NewPtrCreatePartitionsRequest()
	grow.TimeoutMillis = 15000
	gt := kmsg.NewCreatePartitionsRequestTopic()
	gt.Topic, gt.Count = topic, 4
	ga := kmsg.NewCreatePartitionsRequestTopicAssignment()
	ga.Replicas = []int32{2, 1, 3}
	gt.Assignment = append(gt.Assignment, ga)
	grow.Topics = append(grow.Topics, gt)
	gresp, err := grow.RequestWith(ctx, cl)
	if err != nil || gresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("CreatePartitions with an assignment: %v %+v", err, gresp)
	}
	assignment = append(assignment, []int32{2, 1, 3})

	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	td := md.Topics[topic]
	if td.Err != nil || len(td.Partitions) != len(assignment) {
		t.Fatalf("Metadata: %v, %d partitions", td.Err, len(td.Partitions))
	}
	for p, want := range assignment {
		pd := td.Partitions[int32(p)]
		if !slices.Equal(pd.Replicas, want) || pd.Leader != want[0] {
			t.Fatalf("partition %d: replicas %v leader %d, want %v led by %d", p, pd.Replicas, pd.Leader, want, want[0])
		}
	}

	prod := fzClient(t, brokers[0].Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for p := range assignment {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Value: fmt.Appendf(nil, "to %d", p)})
	}
	fzProduceSync(ctx, t, prod, recs...)
	got := fzConsume(ctx, t, brokers[1].Addr, topic, len(recs))
	for _, r := range got {
		if string(r.Value) != fmt.Sprintf("to %d", r.Partition) {
			t.Fatalf("partition %d served %q", r.Partition, r.Value)
		}
	}
}
