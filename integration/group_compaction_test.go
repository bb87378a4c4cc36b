package integration

// Compaction of __consumer_offsets: with small offset-topic segments,
// many commits of the same partitions roll segments, the log cleaner
// keeps the latest record of each key in place (the log start stays 0),
// and the committed offsets and group metadata survive that and a kill -9.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestGroupOffsetsTopicCompaction(t *testing.T) {
	p := grpStartBroker(t,
		"--config", "offsets.topic.num.partitions=1",
		"--config", "offsets.topic.segment.bytes=8192",
		"--config", "log.cleaner.backoff.ms=200",
	)
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, admGroup, memberGroup := grpName(t, "grp-compact"), grpName(t, "grp-compact-admin"), grpName(t, "grp-compact-member")
	fzCreateTopic(ctx, t, adm, topic, 3, nil)

	// A classic group with a live member: its metadata must survive.
	m := grpStartIdle(t, p.Addr, "member", memberGroup, []string{topic}, kgo.Balancers(kgo.RangeBalancer()))
	grpWaitBalanced(t, 30*time.Second, topic, 3, m)

	// 600 commits of the same three partitions: about 100 KB of records
	// of which a few hundred bytes are live.
	var last map[int32]int64
	for i := range 600 {
		last = map[int32]int64{0: int64(i), 1: int64(2 * i), 2: int64(3 * i)}
		grpAdminCommit(ctx, t, adm, admGroup, topic, last)
	}

	dir := filepath.Join(p.DataDir, "__consumer_offsets-0")
	logFiles := func() []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("read %s: %v", dir, err)
		}
		var out []string
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".log") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	fzWaitFor(t, 60*time.Second, "the offsets topic to be compacted", func() error {
		if n := len(logFiles()); n > 4 {
			return fmt.Errorf("%d .log files left", n)
		}
		return nil
	})
	if !strings.Contains(p.Logs(), "cleaned log") {
		t.Errorf("the broker did not log its cleaning")
	}
	// Compaction keeps offsets: the log still starts at 0.
	starts, err := adm.ListStartOffsets(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := starts.Lookup("__consumer_offsets", 0); !ok || o.Err != nil || o.Offset != 0 {
		t.Errorf("start offset of the compacted __consumer_offsets-0: %+v, want 0", o)
	}
	grpWaitCommitted(t, 10*time.Second, adm, admGroup, topic, last)

	// The state in the compacted log is all a restart needs, even after
	// kill -9: the offsets, and the member group with its member, which
	// carries on.
	memberID, _ := m.cl.GroupMetadata()
	p.Kill()
	p.Restart()
	grpWaitCommitted(t, 30*time.Second, adm, admGroup, topic, last)
	d := grpDescribe(ctx, t, adm, memberGroup)
	if d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != memberID {
		t.Errorf("the member group after compaction and restart: state %q, members %+v; want Stable with member %s", d.State, d.Members, memberID)
	}
	fzCheckLogs(t, p)
}
