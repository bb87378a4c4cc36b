package metadata

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	for _, m := range startAll("three members restarted without InitialCluster") {
		m.Close()
	}
	// A member count that says alone (peers added through etcd's own API
	// since): the fast start finds the peers and starts again at etcd's
	// timing, and the count is put right.
	for i := range cfgs {
		writeMembers(t, cfgs[i].DataDir, "1\n")
	}
	for _, m := range startAll("three members whose member count says alone") {
		m.Close()
	}
	for i := range cfgs {
		if got := readMembers(t, cfgs[i].DataDir); got != "3\n" {
			t.Fatalf("member %d's recorded member count %q, want 3", i+1, got)
		}
	}
	// Alone by its count but with its peers down: one ReadyTimeout for
	// the whole start, not one per attempt.
	writeMembers(t, cfgs[0].DataDir, "1\n")
	lone := cfgs[0]
	lone.ReadyTimeout = 4 * time.Second
	began := time.Now()
	if e, err := StartEmbeddedEtcd(testCtx(t), lone); err == nil {
		e.Close()
		t.Fatal("a member of three started without its peers")
	}
	if took := time.Since(began); took > 7*time.Second {
		t.Fatalf("a start without quorum gave up after %s, want one ReadyTimeout (4 s) plus closing", took)
	}
}

func writeMembers(t *testing.T, dataDir, s string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dataDir, membersFile), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readMembers(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, membersFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
		since    time.Duration
		want     bool
	}{
		{"failed to update storage version", "cannot detect storage schema version: missing term information", time.Second, true},
		{"failed to update storage version", "cannot detect storage schema version: missing term information", time.Minute, false},
		{"failed to update storage version", "cannot create migration plan: version \"3.5.0\" is not supported", time.Second, false},
		{"simple token is not cryptographically signed", "", time.Hour, true},
		{"slow fdatasync", "", time.Second, false},
	} {
		fields := map[string]any{}
		if c.err != "" {
			fields["error"] = c.err
		}
		if got := expectedEtcdWarning(c.msg, fields, c.since); got != c.want {
			t.Errorf("expectedEtcdWarning(%q, %q, %s) = %v, want %v", c.msg, c.err, c.since, got, c.want)
		}
	}
}
