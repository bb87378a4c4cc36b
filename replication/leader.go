package replication

import (
	"slices"
	"time"
)

// Leader is a partition leader's view of its followers: how far each has
// fetched and when it was last caught up, which is what the high
// watermark and ISR changes are computed from. It is a pure state
// machine: callers pass the time and the leader's log end offset, and
// apply its decisions (ISR changes go to the metadata store, the high
// watermark to the log).
//
// Concurrency: not safe for concurrent use; the broker keeps one per led
// partition under that partition's mutex.
type Leader struct {
	self      int32
	epoch     int32
	isr       []int32 // as last recorded in the metadata store
	followers map[int32]*followerState
}

// followerState is what the leader knows of one follower.
type followerState struct {
	leo          int64 // the follower's log end offset (its last fetch offset); -1 until it fetches
	lastFetch    time.Time
	lastFetchLEO int64     // the leader's log end offset at that fetch
	lastCaughtUp time.Time // last time the follower had everything the leader had
	logStart     int64     // the follower's log start offset as its last fetch said; -1 until it fetches
}

// NewLeader starts the leader state of a broker that just became leader
// at epoch, with the partition's replicas and ISR. Followers are given
// until now+lag to show they are caught up, as Kafka does.
func NewLeader(self, epoch int32, replicas, isr []int32, now time.Time) *Leader {
	l := &Leader{self: self, epoch: epoch, followers: make(map[int32]*followerState)}
	l.Update(replicas, isr, now)
	return l
}

// Epoch is the leader epoch this state belongs to.
func (l *Leader) Epoch() int32 { return l.epoch }

// ISR is the in-sync replica set as last recorded.
func (l *Leader) ISR() []int32 { return l.isr }

// Update takes a new replica list and ISR from the metadata store (same
// epoch): new followers start unknown, removed ones are forgotten.
func (l *Leader) Update(replicas, isr []int32, now time.Time) {
	l.isr = slices.Clone(isr)
	for id := range l.followers {
		if !slices.Contains(replicas, id) {
			delete(l.followers, id)
		}
	}
	for _, id := range replicas {
		if id == l.self {
			continue
		}
		if _, ok := l.followers[id]; !ok {
			l.followers[id] = &followerState{leo: -1, lastFetchLEO: -1, lastCaughtUp: now, logStart: -1}
		}
	}
}

// Fetched records a follower's fetch at offset (its log end offset) while
// the leader's log ends at leaderLEO, and reports whether the follower
// should now join the ISR: it is not in it, it has reached the high
// watermark hw, and it has reached epochStart, where the leader's current
// epoch began (so it holds nothing from an older leader that this one
// does not). A fetch from a broker that is not a replica is ignored.
func (l *Leader) Fetched(id int32, offset, leaderLEO, hw, epochStart int64, now time.Time) (join bool) {
	f := l.followers[id]
	if f == nil {
		return false
	}
	switch {
	case offset >= leaderLEO:
		f.lastCaughtUp = now
	case f.lastFetchLEO >= 0 && offset >= f.lastFetchLEO:
		// It has what the leader had at its previous fetch.
		f.lastCaughtUp = f.lastFetch
	}
	f.leo = offset
	f.lastFetch, f.lastFetchLEO = now, leaderLEO
	return !slices.Contains(l.isr, id) && offset >= hw && offset >= epochStart
}

// HighWatermark is the offset every ISR member has reached: the lowest
// log end offset in the ISR, the leader's being leaderLEO. A member that
// has not fetched since this broker became leader holds it back.
func (l *Leader) HighWatermark(leaderLEO int64) int64 {
	hw := leaderLEO
	for _, id := range l.isr {
		if id == l.self {
			continue
		}
		f := l.followers[id]
		if f == nil || f.leo < 0 {
			return -1
		}
		hw = min(hw, f.leo)
	}
	return hw
}

// Lagging lists the ISR followers that have not been caught up for longer
// than maxLag (replica.lag.time.max.ms): they leave the ISR.
func (l *Leader) Lagging(now time.Time, maxLag time.Duration) []int32 {
	var out []int32
	for _, id := range l.isr {
		if f := l.followers[id]; id != l.self && f != nil && now.Sub(f.lastCaughtUp) > maxLag {
			out = append(out, id)
		}
	}
	return out
}

// FetchedLogStart records the log start offset a follower's fetch
// carried, and reports whether it moved (what a DeleteRecords waiting for
// the low watermark wakes on). A fetch from a broker that is not a
// replica is ignored.
func (l *Leader) FetchedLogStart(id int32, logStart int64) (moved bool) {
	f := l.followers[id]
	if f == nil || f.logStart == logStart {
		return false
	}
	f.logStart = logStart
	return true
}

// LowWatermark is the lowest log start offset in the ISR, the leader's
// being leaderStart: what DeleteRecords answers once every ISR member
// has moved its log start. A member that has not fetched since this
// broker became leader makes it -1 (unknown).
func (l *Leader) LowWatermark(leaderStart int64) int64 {
	lw := leaderStart
	for _, id := range l.isr {
		if id == l.self {
			continue
		}
		f := l.followers[id]
		if f == nil || f.logStart < 0 {
			return -1
		}
		lw = min(lw, f.logStart)
	}
	return lw
}
