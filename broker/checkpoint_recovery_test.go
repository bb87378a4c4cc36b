package broker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// TestRecoveryPointCheckpoint: Close writes every log's recovery point
// (its end, after a clean close) to the data directory's checkpoint, and
// a broker started on that directory hands the checkpointed points to
// the logs it opens.
func TestRecoveryPointCheckpoint(t *testing.T) {
	store := metadata.NewMemoryStore("test-cluster")
	dir := t.TempDir()
	start := func() *Broker {
		b, err := New(Config{NodeID: 1, AdvertisedHost: "localhost", AdvertisedPort: 9092, DataDir: dir, Logger: zerolog.Nop()}, store)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	b := start()
	topic := createPlaced(t, b, metadata.Topic{Name: "rp", Partitions: 2, ReplicationFactor: 1})
	part, err := b.parts.get(topic.Name, 1)
	if err != nil {
		t.Fatal(err)
	}
	batch := protocol.NewControlBatch(-1, -1, true, 0, 1)
	for range 5 {
		if _, err := part.log.Append(append([]byte(nil), batch...), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.parts.get(topic.Name, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rp, ok, err := storage.ReadOffsetCheckpoint(nil, dir, storage.RecoveryPointCheckpoint)
	if err != nil || !ok {
		t.Fatalf("checkpoint after Close: ok %v, %v", ok, err)
	}
	if got := rp[storage.TopicPartition{Topic: "rp", Partition: 1}]; got != 5 || len(rp) != 2 {
		t.Fatalf("checkpoint %v, want rp-1 at 5 and rp-0", rp)
	}

	// As after a crash with an older checkpoint: no clean-shutdown
	// marker, and a recovery point below the end.
	if err := os.Remove(filepath.Join(dir, "rp-1", ".gregor-clean-shutdown")); err != nil {
		t.Fatal(err)
	}
	rp[storage.TopicPartition{Topic: "rp", Partition: 1}] = 2
	if err := storage.WriteOffsetCheckpoint(nil, dir, storage.RecoveryPointCheckpoint, rp); err != nil {
		t.Fatal(err)
	}
	b = start()
	part, err = b.parts.get(topic.Name, 1)
	if err != nil {
		t.Fatal(err)
	}
	if st := part.log.Recovery(); st.Point != 2 || st.Segments != 1 || part.log.LogEndOffset() != 5 {
		t.Fatalf("reopened after a crash: recovery %+v, end %d; want point 2, 1 segment checked, end 5", st, part.log.LogEndOffset())
	}
	other, err := b.parts.get(topic.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st := other.log.Recovery(); st.Segments != 0 {
		t.Fatalf("a cleanly closed log was recovered: %+v", st)
	}
}
