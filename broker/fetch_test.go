package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

// TestFetchEmptyPartitionSendsEmptyRecordSet checks the wire form of a
// partition with nothing to return: librdkafka rejects a null record set
// (length -1), so it must be an empty one (length 0), as Kafka sends.
func TestFetchEmptyPartitionSendsEmptyRecordSet(t *testing.T) {
	b := newTestBroker(t)
	createPlaced(t, b, metadata.Topic{Name: "empty", Partitions: 1})
	for _, version := range []int16{4, 11, 12, 18} {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(version)
		req.ReplicaID = -1
		req.MaxBytes = 1 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "empty"
		if t, ok := b.store.Topic("empty"); ok {
			rt.TopicID = t.ID
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)

		resp, err := b.handleFetch(newTestConn(b), req)
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		fr := resp.(*kmsg.FetchResponse)
		sp := fr.Topics[0].Partitions[0]
		if sp.ErrorCode != 0 {
			t.Fatalf("v%d: error %d", version, sp.ErrorCode)
		}
		if sp.RecordBatches == nil {
			t.Fatalf("v%d: record set is null", version)
		}
		// Encode and decode: a null set would come back nil.
		wire := fr.AppendTo(nil)
		var back kmsg.FetchResponse
		back.SetVersion(version)
		if err := back.ReadFrom(wire); err != nil {
			t.Fatalf("v%d: re-read: %v", version, err)
		}
		if got := back.Topics[0].Partitions[0].RecordBatches; got == nil || len(got) != 0 {
			t.Fatalf("v%d: record set on the wire is %v (nil=%v), want empty", version, got, got == nil)
		}
	}
}
