package metadata

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// A member alone runs raft at fastTickMs; members with peers at etcd's
// defaults, also when they are started again without InitialCluster
// (the data dir's membership rules): the fast first start is then
// replaced by one at the default timing.
func TestEmbeddedRaftTiming(t *testing.T) {
	alone := startTestEtcd(t, zerolog.Nop())
	if got := alone.e.etcd.Config().TickMs; got != fastTickMs {
		t.Fatalf("a member alone ticks every %d ms, want %d", got, fastTickMs)
	}
	alone.e.Close()
	alone.start(t) // a restart of a member alone stays fast
	if got := alone.e.etcd.Config().TickMs; got != fastTickMs {
		t.Fatalf("a member alone, restarted, ticks every %d ms, want %d", got, fastTickMs)
	}

	dir := t.TempDir()
	cfgs := make([]EmbeddedConfig, 3)
	var initial []string
	for i := range cfgs {
		cfgs[i] = EmbeddedConfig{
			NodeID:     int32(i + 1),
			DataDir:    filepath.Join(dir, fmt.Sprint(i+1)),
			ClientAddr: freeAddr(t),
			PeerAddr:   freeAddr(t),
			Logger:     zerolog.Nop(),
		}
		initial = append(initial, fmt.Sprintf("%d=http://%s", i+1, cfgs[i].PeerAddr))
	}
	startAll := func(what string) []*EmbeddedEtcd {
		t.Helper()
		members := make([]*EmbeddedEtcd, len(cfgs))
		errs := make([]error, len(cfgs))
		var wg sync.WaitGroup
		for i := range cfgs {
			wg.Go(func() { members[i], errs[i] = StartEmbeddedEtcd(testCtx(t), cfgs[i]) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: member %d: %v", what, i+1, err)
			}
			t.Cleanup(members[i].Close)
		}
		for i, m := range members {
			if got := m.etcd.Config().TickMs; got != 100 {
				t.Fatalf("%s: member %d ticks every %d ms, want etcd's default 100", what, i+1, got)
			}
		}
		return members
	}
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
	}
	for _, m := range startAll("a new three-member cluster") {
		m.Close()
	}
	for i := range cfgs {
		cfgs[i].InitialCluster = "" // looks like a member alone; its data dir says otherwise
	}
	startAll("three members restarted without InitialCluster")
}

func TestSingleMember(t *testing.T) {
	for s, want := range map[string]bool{
		"":                                     true,
		"1=http://h1:2380":                     true,
		"1=http://h1:2380,2=http://h2:2380":    false,
		"1=http://h1:2380, 2=http://h2:2380,3": false,
	} {
		if got := singleMember(s); got != want {
			t.Errorf("singleMember(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestExpectedEtcdWarning(t *testing.T) {
	for _, c := range []struct {
		msg, err string
		want     bool
	}{
		{"failed to update storage version", "cannot detect storage schema version: missing term information", true},
		{"failed to update storage version", "cannot create migration plan: version \"3.5.0\" is not supported", false},
		{"simple token is not cryptographically signed", "", true},
		{"slow fdatasync", "", false},
	} {
		fields := map[string]any{}
		if c.err != "" {
			fields["error"] = c.err
		}
		if got := expectedEtcdWarning(c.msg, fields); got != c.want {
			t.Errorf("expectedEtcdWarning(%q, %q) = %v, want %v", c.msg, c.err, got, c.want)
		}
	}
}
