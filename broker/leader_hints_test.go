package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestCheckLeaderEpoch(t *testing.T) {
	for _, c := range []struct {
		claimed, current int32
		want             error
	}{
		{-1, 4, nil},
		{4, 4, nil},
		{3, 4, kerr.FencedLeaderEpoch},
		{5, 4, kerr.UnknownLeaderEpoch},
	} {
		if got := checkLeaderEpoch(c.claimed, c.current); got != c.want {
			t.Errorf("checkLeaderEpoch(%d, %d) = %v, want %v", c.claimed, c.current, got, c.want)
		}
	}
}
