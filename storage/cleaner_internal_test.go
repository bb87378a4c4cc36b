package storage

import "testing"

// FuzzParseSwapMarker: any content of a cleaner-swap marker parses or
// fails cleanly, and what parses names a non-empty range.
func FuzzParseSwapMarker(f *testing.F) {
	f.Add(swapMarkerBytes(0, 100))
	f.Add(swapMarkerBytes(12345, 12346))
	f.Add([]byte("gregor-cleaner-swap v2\nbase: 0\nend: 1\n"))
	f.Add([]byte("gregor-cleaner-swap v1\nbase: 5\nend: 5\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		base, end, err := parseSwapMarker(b)
		if err != nil {
			return
		}
		if base < 0 || end <= base {
			t.Fatalf("parsed range %d to %d", base, end)
		}
		b2, e2, err := parseSwapMarker(swapMarkerBytes(base, end))
		if err != nil || b2 != base || e2 != end {
			t.Fatalf("round trip: %d %d %v", b2, e2, err)
		}
	})
}

// TestOffsetMap: latest offset wins, the bound holds, keys are told apart.
func TestOffsetMap(t *testing.T) {
	m := newOffsetMap(100, 0.9)
	if m.limit != 90 {
		t.Fatalf("limit %d, want 90", m.limit)
	}
	for i := range 90 {
		if !m.fits(1) {
			t.Fatalf("full after %d keys", i)
		}
		m.put([]byte{byte(i)}, int64(i))
		m.put([]byte{byte(i)}, int64(i)-1) // an older offset never replaces
	}
	if m.fits(1) {
		t.Fatal("fits past the load factor")
	}
	for i := range 90 {
		if off, ok := m.get([]byte{byte(i)}); !ok || off != int64(i) {
			t.Fatalf("key %d: %d %v", i, off, ok)
		}
	}
	if _, ok := m.get([]byte("absent")); ok {
		t.Fatal("found an absent key")
	}
}
