package replication

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestLeaderHighWatermarkIsTheISRMinimum(t *testing.T) {
	l := NewLeader(1, 5, []int32{1, 2, 3}, []int32{1, 2, 3}, t0)
	if hw := l.HighWatermark(100); hw != -1 {
		t.Fatalf("before any follower fetched: hw %d, want -1 (held back)", hw)
	}
	l.Fetched(2, 80, 100, 0, 0, t0)
	if hw := l.HighWatermark(100); hw != -1 {
		t.Fatalf("with follower 3 unknown: hw %d, want -1", hw)
	}
	l.Fetched(3, 90, 100, 0, 0, t0)
	if hw := l.HighWatermark(100); hw != 80 {
		t.Fatalf("hw %d, want 80 (follower 2)", hw)
	}
	// Only the ISR counts: with 2 out of it, 3's position is the minimum.
	l.Update([]int32{1, 2, 3}, []int32{1, 3}, t0)
	if hw := l.HighWatermark(100); hw != 90 {
		t.Fatalf("hw with isr {1,3}: %d, want 90", hw)
	}
	l.Update([]int32{1, 2, 3}, []int32{1}, t0)
	if hw := l.HighWatermark(100); hw != 100 {
		t.Fatalf("hw with isr {1}: %d, want the leader's log end 100", hw)
	}
}

func TestLeaderISRJoinAndLag(t *testing.T) {
	lag := 10 * time.Second
	l := NewLeader(1, 5, []int32{1, 2, 3}, []int32{1, 2}, t0)
	// Follower 3 is out of the ISR: it joins once it reaches both the high
	// watermark and the start of the leader's epoch.
	if l.Fetched(3, 40, 100, 50, 30, t0) {
		t.Fatal("joined below the high watermark")
	}
	if l.Fetched(3, 60, 100, 50, 70, t0) {
		t.Fatal("joined below the leader epoch's start")
	}
	if !l.Fetched(3, 70, 100, 50, 70, t0) {
		t.Fatal("did not join at the high watermark and epoch start")
	}
	if l.Fetched(2, 100, 100, 50, 70, t0) {
		t.Fatal("an ISR member asked to join again")
	}
	if l.Fetched(9, 100, 100, 50, 70, t0) {
		t.Fatal("a broker that is not a replica asked to join")
	}
	// Follower 2 caught up at t0, then keeps fetching below the leader's
	// end: it lags once maxLag passes since it last caught up.
	l.Fetched(2, 100, 120, 0, 0, t0.Add(2*time.Second)) // has what the leader had at its previous fetch (t0)
	l.Fetched(2, 120, 150, 0, 0, t0.Add(5*time.Second)) // has what the leader had at 2s
	if got := l.Lagging(t0.Add(11*time.Second), lag); len(got) != 0 {
		t.Fatalf("lagging %v at 11s, want none (caught up as of 2s)", got)
	}
	l.Fetched(2, 130, 200, 0, 0, t0.Add(8*time.Second)) // behind the leader's end at its previous fetch (150)
	if got := l.Lagging(t0.Add(13*time.Second), lag); !slices.Equal(got, []int32{2}) {
		t.Fatalf("lagging %v at 13s, want [2]", got)
	}
	// A follower that stops fetching lags too; the leader never does.
	l2 := NewLeader(1, 5, []int32{1, 2}, []int32{1, 2}, t0)
	if got := l2.Lagging(t0.Add(lag+time.Millisecond), lag); !slices.Equal(got, []int32{2}) {
		t.Fatalf("silent follower: lagging %v, want [2]", got)
	}
}

func TestLeaderLowWatermarkIsTheISRMinimumLogStart(t *testing.T) {
	l := NewLeader(1, 5, []int32{1, 2, 3}, []int32{1, 2, 3}, t0)
	if lw := l.LowWatermark(50); lw != -1 {
		t.Fatalf("before followers fetched: low watermark %d, want -1", lw)
	}
	if !l.FetchedLogStart(2, 50) || l.FetchedLogStart(2, 50) {
		t.Fatal("FetchedLogStart: want moved once, then not")
	}
	if l.FetchedLogStart(9, 50) {
		t.Fatal("a broker that is not a replica moved a log start")
	}
	l.FetchedLogStart(3, 20)
	if lw := l.LowWatermark(50); lw != 20 {
		t.Fatalf("low watermark %d, want 20 (follower 3)", lw)
	}
	if lw := l.LowWatermark(10); lw != 10 {
		t.Fatalf("low watermark %d, want the leader's 10", lw)
	}
	// Only the ISR counts.
	l.Update([]int32{1, 2, 3}, []int32{1, 2}, t0)
	if lw := l.LowWatermark(50); lw != 50 {
		t.Fatalf("low watermark with isr {1,2}: %d, want 50", lw)
	}
}
