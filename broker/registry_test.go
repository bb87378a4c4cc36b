package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// belowKmsgMax records, for each key served below kmsg's newest version, why.
var belowKmsgMax = map[int16]string{
	kmsg.EndTxn.Int16():          "v5 is transaction.version 2 (KIP-890 part 2: an epoch bump per transaction), which Gregor does not finalize",
	kmsg.TxnOffsetCommit.Int16(): "v5 is transaction.version 2 (implicit AddOffsetsToTxn), v6 topic ids; Gregor does not finalize transaction.version 2",
}

// TestRegistryVersionsMatchKmsg checks that every handler serves up to
// kmsg's newest version of its key, unless a reason is recorded above, and
// that Produce and Fetch start where Kafka 4 starts.
func TestRegistryVersionsMatchKmsg(t *testing.T) {
	b := newTestBroker(t)
	if len(b.handlers.keys) == 0 {
		t.Fatal("no handlers registered")
	}
	for _, key := range b.handlers.keys {
		h := b.handlers.byKey[key]
		kmax := kmsg.RequestForKey(key).MaxVersion()
		if h.max != kmax {
			if reason, ok := belowKmsgMax[key]; !ok {
				t.Errorf("%s: serves up to v%d but kmsg knows v%d and no reason is recorded", kmsg.NameForKey(key), h.max, kmax)
			} else {
				t.Logf("%s: v%d < kmsg v%d: %s", kmsg.NameForKey(key), h.max, kmax, reason)
			}
		}
	}
	if h := b.handlers.byKey[kmsg.Produce.Int16()]; h.min != 3 {
		t.Errorf("Produce min version = %d, want 3 as Kafka 4", h.min)
	}
	if h := b.handlers.byKey[kmsg.Fetch.Int16()]; h.min != 4 {
		t.Errorf("Fetch min version = %d, want 4 as Kafka 4", h.min)
	}
}

func TestRegistryRejectsDuplicateKey(t *testing.T) {
	h := handler{key: 18, min: 0, max: 3}
	if _, err := newRegistry([]handler{h, h}); err == nil {
		t.Fatal("registering a key twice succeeded")
	}
	if _, err := newRegistry([]handler{{key: 18, min: 0, max: 99}}); err == nil {
		t.Fatal("registering a version beyond kmsg succeeded")
	}
	if _, err := newRegistry([]handler{{key: 18, min: 3, max: 1}}); err == nil {
		t.Fatal("registering min > max succeeded")
	}
}

func TestApiVersionsAdvertisesRegistry(t *testing.T) {
	b := newTestBroker(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1.0"
	resp, err := b.handleApiVersions(newTestConn(b), req)
	if err != nil {
		t.Fatal(err)
	}
	av := resp.(*kmsg.ApiVersionsResponse)
	if av.ErrorCode != 0 {
		t.Fatalf("error code %d", av.ErrorCode)
	}
	if len(av.ApiKeys) != len(b.handlers.keys) {
		t.Fatalf("advertised %d keys, registered %d", len(av.ApiKeys), len(b.handlers.keys))
	}
	for _, k := range av.ApiKeys {
		h, ok := b.handlers.byKey[k.ApiKey]
		if !ok || h.min != k.MinVersion || h.max != k.MaxVersion {
			t.Errorf("key %d advertised v%d-v%d, registry has %+v", k.ApiKey, k.MinVersion, k.MaxVersion, h)
		}
	}
	req.ClientSoftwareName = "bad name!"
	resp, _ = b.handleApiVersions(newTestConn(b), req)
	if got := resp.(*kmsg.ApiVersionsResponse).ErrorCode; got != 42 { // INVALID_REQUEST
		t.Errorf("invalid software name: error %d, want 42", got)
	}
}
