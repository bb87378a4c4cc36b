package integration

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupKIP848AcrossBrokerRestart: a KIP-848 member keeps consuming
// through a broker restart. Gregor keeps KIP-848 membership in memory, so
// after the restart the member's heartbeat gets UNKNOWN_MEMBER_ID and kgo
// rejoins by itself; its committed offsets are durable, so it resumes
// right after them, skipping nothing. Records it consumed after the
// restart but before it rejoined cannot be committed (UNKNOWN_MEMBER_ID)
// and are delivered again, which grpCheckDelivery allows.
func TestGroupKIP848AcrossBrokerRestart(t *testing.T) {
	p := grpStartBroker(t, "--config", "group.consumer.heartbeat.interval.ms=500")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := grpName(t, "grp-848-restart"), grpName(t, "grp-848-restart-g")
	const parts = 3
	fzCreateTopic(ctx, t, adm, topic, parts, nil)
	prod := grpProducer(t, p.Addr)
	exp := grpNewExpected(topic, parts)
	l := &grpLog{}
	m := grpStartMember(t, p.Addr, "m", group, []string{topic}, l,
		kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer())
	exp.produce(ctx, t, prod, "a", 30)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())

	p.Stop()
	p.Restart()
	exp.produce(ctx, t, prod, "b", 30)
	grpWaitConsumed(t, l, exp, 60*time.Second)
	grpWaitCommitted(t, 20*time.Second, adm, group, topic, exp.ends())
	dups := grpCheckDelivery(t, l, exp)
	t.Logf("%d records delivered again after the restart (consumed before the member rejoined, their commit refused)", dups)
	if got := m.Assigned(topic); len(got) != parts {
		t.Errorf("after the restart the member owns %v, want all %d partitions", got, parts)
	}
	fzCheckLogs(t, p)
}
