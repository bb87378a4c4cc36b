package metadata

import "testing"

// memHarness is a cluster of MemoryStores: the first open makes it, later
// ones are Peers.
type memHarness struct {
	root *MemoryStore
}

func (h *memHarness) open(t *testing.T) Store {
	var s *MemoryStore
	if h.root == nil {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		h.root = NewMemoryStore(id.String())
		s = h.root
	} else {
		s = h.root.Peer()
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestMemoryConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) harness {
		return &memHarness{}
	})
}
