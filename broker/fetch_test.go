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

// TestFollowerFetchBudgetApart: with queued.max.response.bytes all held
// (consumers' responses not yet written), a consumer fetch returns no
// records but a follower fetch still does: followers are charged to
// queued.max.replica.response.bytes, and each charge is given back to the
// budget it was taken from.
func TestFollowerFetchBudgetApart(t *testing.T) {
	b := newTestBroker(t)
	createPlaced(t, b, metadata.Topic{Name: "apart", Partitions: 1})
	if code := produceOne(t, b, newTestConn(b), "apart", 0); code != 0 {
		t.Fatalf("produce: error %d", code)
	}
	fetch := func(replica int32) (*kmsg.FetchResponse, int) {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.ReplicaID, req.MaxBytes = replica, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "apart"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := b.handleFetch(newTestConn(b), req)
		if err != nil {
			t.Fatal(err)
		}
		fr := resp.(*kmsg.FetchResponse)
		return fr, len(fr.Topics[0].Partitions[0].RecordBatches)
	}
	consumerLimit := b.brokerConfigInt("queued.max.response.bytes")
	if !b.respBudget.tryTake(consumerLimit) {
		t.Fatal("could not take the whole consumer budget")
	}
	if _, n := fetch(-1); n != 0 {
		t.Fatalf("consumer fetch with the consumer budget held returned %d bytes", n)
	}
	fr, n := fetch(2)
	if n == 0 {
		t.Fatal("follower fetch with the consumer budget held returned nothing")
	}
	if got := b.replicaBudget.inUse(); got != int64(n) {
		t.Fatalf("follower budget holds %d bytes, want the %d fetched", got, n)
	}
	b.replicaBudget.give(b.recycleFetch(fr))
	b.respBudget.give(consumerLimit)
	if b.respBudget.inUse() != 0 || b.replicaBudget.inUse() != 0 {
		t.Fatalf("budgets in use after giving back: consumers %d, followers %d", b.respBudget.inUse(), b.replicaBudget.inUse())
	}
	if _, n := fetch(-1); n == 0 {
		t.Fatal("consumer fetch returned nothing once its budget was free")
	}
}
