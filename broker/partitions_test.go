package broker

import (
	"testing"

	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/protocol"
)

// TestOpenAllKeepsOpenPartitions: at start a partition can be opened by a
// metadata event (the controller making this broker its leader again)
// before openAll runs; openAll must then keep that log, not reopen it, and
// never delete it (a restarted broker once lost its data this way).
func TestOpenAllKeepsOpenPartitions(t *testing.T) {
	b := newTestBroker(t)
	topic := createPlaced(t, b, metadata.Topic{Name: "kept", Partitions: 1, ReplicationFactor: 1})
	part, err := b.parts.get(topic.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	batch := protocol.NewControlBatch(-1, -1, true, 0, 1) // any valid batch
	for range 3 {
		if _, err := part.log.Append(append([]byte(nil), batch...), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.parts.openAll(); err != nil {
		t.Fatal(err)
	}
	st, _ := b.store.Partition(topic.Name, 0)
	b.parts.applyState(st)
	again, err := b.parts.get(topic.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if again != part || again.log.LogEndOffset() != 3 {
		t.Fatalf("after openAll: same partition %v, log end %d, want the open log with 3 records", again == part, again.log.LogEndOffset())
	}
}
