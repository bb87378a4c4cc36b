package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// checkpointEntry reads one partition's entry of the data directory's
// recovery point checkpoint.
func checkpointEntry(t *testing.T, dir, topic string, p int32) (int64, bool) {
	t.Helper()
	rp, _, err := storage.ReadOffsetCheckpoint(nil, dir, storage.RecoveryPointCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	off, ok := rp[storage.TopicPartition{Topic: topic, Partition: p}]
	return off, ok
}

// TestRecoveryPointLoweredOnTruncate: a truncation below a log's
// checkpointed recovery point rewrites the checkpoint before TruncateTo
// returns (before the follower appends again), not at the next periodic
// write; one above it leaves the file alone.
func TestRecoveryPointLoweredOnTruncate(t *testing.T) {
	store := metadata.NewMemoryStore("test-cluster")
	dir := t.TempDir()
	b, err := New(Config{NodeID: 1, AdvertisedHost: "localhost", AdvertisedPort: 9092, DataDir: dir, Logger: zerolog.Nop()}, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	topic := createPlaced(t, b, metadata.Topic{Name: "trunc", Partitions: 1, ReplicationFactor: 1})
	part, err := b.parts.get(topic.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	batch := protocol.NewControlBatch(-1, -1, true, 0, 1)
	for range 8 {
		if _, err := part.log.Append(append([]byte(nil), batch...), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := part.log.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	if err := part.log.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.parts.writeRecoveryPoints(b.parts.all()); err != nil {
		t.Fatal(err)
	}
	if got, ok := checkpointEntry(t, dir, "trunc", 0); !ok || got != 8 {
		t.Fatalf("checkpoint entry %d (present %v) after a write, want 8", got, ok)
	}
	for range 2 { // past the checkpointed point: not lowered
		if _, err := part.log.Append(append([]byte(nil), batch...), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := part.log.TruncateTo(9); err != nil {
		t.Fatal(err)
	}
	if got, _ := checkpointEntry(t, dir, "trunc", 0); got != 8 {
		t.Fatalf("checkpoint entry %d after a truncation above it, want 8 still", got)
	}
	end, err := part.log.TruncateTo(3)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := checkpointEntry(t, dir, "trunc", 0); got > end || got != part.log.RecoveryPoint() {
		t.Fatalf("checkpoint entry %d after truncating to %d (recovery point %d), want the recovery point", got, end, part.log.RecoveryPoint())
	}
}

// TestRecreatedTopicDoesNotInheritRecoveryPoint: a topic deleted and
// created again under the same name opens its log with no recovery point,
// not the one the checkpoint read at start held for the old topic id, and
// the old entry is gone from the file at once, so that a crash before the
// next periodic write cannot hand it to the new log either.
func TestRecreatedTopicDoesNotInheritRecoveryPoint(t *testing.T) {
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
	topic := createPlaced(t, b, metadata.Topic{Name: "re", Partitions: 1, ReplicationFactor: 1})
	part, err := b.parts.get(topic.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	batch := protocol.NewControlBatch(-1, -1, true, 0, 1)
	for range 5 {
		if _, err := part.log.Append(append([]byte(nil), batch...), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, ok := checkpointEntry(t, dir, "re", 0); !ok || got != 5 {
		t.Fatalf("checkpoint entry %d (present %v) after Close, want 5", got, ok)
	}

	b = start() // reads the checkpoint: re-0 at 5
	if err := store.DeleteTopic(context.Background(), "re"); err != nil {
		t.Fatal(err)
	}
	for i := 0; b.parts.lookup("re", 0) != nil; i++ {
		if i == 1000 {
			t.Fatal("the deleted topic's partition is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, ok := checkpointEntry(t, dir, "re", 0); ok {
		t.Fatalf("checkpoint still has the deleted topic's entry %d", got)
	}
	again := createPlaced(t, b, metadata.Topic{Name: "re", Partitions: 1, ReplicationFactor: 1})
	if again.ID == topic.ID {
		t.Fatal("the recreated topic has the old id")
	}
	part, err = b.parts.get("re", 0)
	if err != nil {
		t.Fatal(err)
	}
	if part.topicID != again.ID {
		t.Fatalf("partition of topic id %x, want %x", part.topicID, again.ID)
	}
	if st := part.log.Recovery(); st.Point != 0 {
		t.Fatalf("the recreated topic's log was opened with recovery point %d, the old topic's", st.Point)
	}
	if got, ok := checkpointEntry(t, dir, "re", 0); ok && got > part.log.RecoveryPoint() {
		t.Fatalf("checkpoint entry %d above the new log's recovery point %d", got, part.log.RecoveryPoint())
	}
}
