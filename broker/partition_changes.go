package broker

// Partition state changes made by admin requests (ElectLeaders,
// AlterPartitionReassignments): read the partition's state from the
// store, decide with one of metadata's pure functions, write the result
// compare-and-swap. Any broker may do this, not only the controller: the
// controller's own writes are compare-and-swap too, so whichever loses a
// race reads again and decides again.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorbroker/gregor/metadata"
)

// partitionChangeAttempts bounds how often changePartition decides again
// after losing a compare-and-swap race.
const partitionChangeAttempts = 5

// errPartitionChangeRaces: every attempt of changePartition lost its
// compare-and-swap.
var errPartitionChangeRaces = errors.New("broker: partition state kept changing under the request")

// placedPartition returns the recorded state of topic-partition, or the
// error the client gets: UNKNOWN_TOPIC_OR_PARTITION for a topic or
// partition that does not exist, LEADER_NOT_AVAILABLE for one the
// controller has not placed yet.
func (b *Broker) placedPartition(topic string, partition int32) (metadata.PartitionState, error) {
	t, ok := b.store.Topic(topic)
	if !ok || partition < 0 || partition >= t.Partitions {
		return metadata.PartitionState{}, adminErrorf(kerr.UnknownTopicOrPartition, "Partition %s-%d does not exist.", topic, partition)
	}
	st, ok := b.store.Partition(topic, partition)
	if !ok || st.TopicID != t.ID {
		return metadata.PartitionState{}, adminErrorf(kerr.LeaderNotAvailable, "Partition %s-%d has not been placed by the controller yet.", topic, partition)
	}
	return st, nil
}

// syncMetadata brings this broker's metadata cache up to the store's
// current revision before an admin request decides on it; a failure is
// the client's error for every partition of the request.
func (b *Broker) syncMetadata(ctx context.Context) error {
	if err := b.store.Sync(ctx); err != nil {
		if ctx.Err() == nil && !errors.Is(err, metadata.ErrClosed) {
			b.log.Warn().Err(err).Msg("cannot bring the metadata cache up to date for an admin request")
		}
		return adminErrorf(kerr.RequestTimedOut, "The cluster metadata could not be read: %v; try again.", err)
	}
	return nil
}

// changePartition applies decide to the current state of topic-partition
// and writes what it returns, compare-and-swap; when another writer got
// there first it reads the state again and decides again, up to
// partitionChangeAttempts times, after syncing the cache so that it shows
// the write that won (a wait for time would not be sure to). It returns
// the state written. decide's errors (metadata's sentinels) become the
// client's error codes.
func (b *Broker) changePartition(ctx context.Context, topic string, partition int32,
	decide func(metadata.PartitionState) (metadata.PartitionState, error),
) (metadata.PartitionState, error) {
	for attempt := 1; ; attempt++ {
		st, err := b.placedPartition(topic, partition)
		if err != nil {
			return st, err
		}
		next, err := decide(st)
		if err != nil {
			return st, partitionChangeError(err)
		}
		next.Version = st.Version
		v, err := b.store.SetPartitionState(ctx, next)
		if err == nil {
			next.Version = v
			return next, nil
		}
		if !errors.Is(err, metadata.ErrConflict) {
			return st, b.metadataWriteError(err, "change partition", topic)
		}
		b.log.Debug().Str("topic", topic).Int32("partition", partition).Int("attempt", attempt).Err(err).
			Msg("partition state changed under an admin request; deciding again")
		if attempt == partitionChangeAttempts {
			return st, adminErrorf(kerr.RequestTimedOut, "%v: %s-%d after %d attempts; try again.", errPartitionChangeRaces, topic, partition, attempt)
		}
		if err := b.syncMetadata(ctx); err != nil {
			return st, err
		}
	}
}

// partitionChangeError maps metadata's election and reassignment errors
// to Kafka's codes, with the error's text as the message.
func partitionChangeError(err error) error {
	for _, m := range []struct {
		sentinel error
		code     *kerr.Error
	}{
		{metadata.ErrElectionNotNeeded, kerr.ElectionNotNeeded},
		{metadata.ErrPreferredLeaderNotAvailable, kerr.PreferredLeaderNotAvailable},
		{metadata.ErrEligibleLeadersNotAvailable, kerr.EligibleLeadersNotAvailable},
		{metadata.ErrInvalidReplicaAssignment, kerr.InvalidReplicaAssignment},
		{metadata.ErrNoReassignmentInProgress, kerr.NoReassignmentInProgress},
	} {
		if errors.Is(err, m.sentinel) {
			return adminErrorf(m.code, "%v", err)
		}
	}
	return err
}
