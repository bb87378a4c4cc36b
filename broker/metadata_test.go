package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/metadata"
)

// TestMetadataLeaderNotListed: a partition whose recorded leader is not
// among the brokers a Metadata response lists (it died; the controller has
// not moved the leadership yet) is answered with leader -1 and
// LEADER_NOT_AVAILABLE, so that no client meets a leader it has no address
// for (kgo fails such a produce with "unknown broker"). The broker list is
// passed in, as handleMetadata builds it, so the controller's own repair
// of the state cannot race the test.
func TestMetadataLeaderNotListed(t *testing.T) {
	b := newTestBroker(t)
	tp := createPlaced(t, b, metadata.Topic{Name: "gone", Partitions: 1})
	st, _ := b.store.Partition("gone", 0)
	if st.Leader != 1 {
		t.Fatalf("placed with leader %d, want 1", st.Leader)
	}
	mp := b.metadataTopic(tp, map[int32]bool{1: true}).Partitions[0]
	if mp.Leader != 1 || mp.ErrorCode != 0 {
		t.Fatalf("listed leader: leader %d error %d, want 1 and none", mp.Leader, mp.ErrorCode)
	}
	mp = b.metadataTopic(tp, map[int32]bool{2: true}).Partitions[0]
	if mp.Leader != -1 || mp.ErrorCode != kerr.LeaderNotAvailable.Code || mp.LeaderEpoch != st.LeaderEpoch {
		t.Fatalf("leader not listed: leader %d epoch %d error %d, want -1, %d, LEADER_NOT_AVAILABLE",
			mp.Leader, mp.LeaderEpoch, mp.ErrorCode, st.LeaderEpoch)
	}
	if len(mp.OfflineReplicas) != 1 || mp.OfflineReplicas[0] != 1 {
		t.Fatalf("offline replicas %v, want [1]", mp.OfflineReplicas)
	}
}
