package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupKIP848AcrossBrokerRestart: KIP-848 membership survives a broker
// crash. The coordinator stores the group (epochs, members, target and
// current assignments) in __consumer_offsets before answering each
// heartbeat and reloads it at start, so after a kill -9 and a restart both
// members carry on with the same member ids and epochs: no heartbeat is
// answered UNKNOWN_MEMBER_ID or FENCED_MEMBER_EPOCH, no partition is
// revoked, lost or reassigned, and every record is delivered exactly once.
func TestGroupKIP848AcrossBrokerRestart(t *testing.T) {
	p := grpStartBroker(t, "--config", "group.consumer.heartbeat.interval.ms=500")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := grpName(t, "grp-848-restart"), grpName(t, "grp-848-restart-g")
	const parts = 4
	fzCreateTopic(ctx, t, adm, topic, parts, nil)
	prod := grpProducer(t, p.Addr)
	exp := grpNewExpected(topic, parts)
	l := &grpLog{}
	opts := []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer()}
	m1 := grpStartMember(t, p.Addr, "m1", group, []string{topic}, l, opts...)
	m2 := grpStartMember(t, p.Addr, "m2", group, []string{topic}, l, opts...)
	grpWaitBalanced(t, 30*time.Second, topic, parts, m1, m2)
	exp.produce(ctx, t, prod, "a", 40)
	grpWaitConsumed(t, l, exp, 30*time.Second)
	grpWaitCommitted(t, 10*time.Second, adm, group, topic, exp.ends())
	before := grpWaitStable848(ctx, t, adm, group, 2)
	callbacks := []int{m1.Callbacks(), m2.Callbacks()}
	owned := [][]int32{m1.Assigned(topic), m2.Assigned(topic)}

	p.Kill()
	p.Restart()
	exp.produce(ctx, t, prod, "b", 40)
	grpWaitConsumed(t, l, exp, 60*time.Second)
	grpWaitCommitted(t, 20*time.Second, adm, group, topic, exp.ends())
	after := grpWaitStable848(ctx, t, adm, group, 2)

	if dups := grpCheckDelivery(t, l, exp); dups != 0 {
		t.Errorf("%d records delivered again after the restart; a member that kept its membership commits everything it consumes", dups)
	}
	for i, m := range []*grpMember{m1, m2} {
		if got := m.Callbacks(); got != callbacks[i] {
			t.Errorf("%s: %d partition callbacks before the restart, %d after (an assignment changed hands)", m.name, callbacks[i], got)
		}
		if got := m.Assigned(topic); !slices.Equal(got, owned[i]) {
			t.Errorf("%s owns %v after the restart, %v before", m.name, got, owned[i])
		}
		id, epoch := m.cl.GroupMetadata()
		if b, ok := before[id]; !ok {
			t.Errorf("%s: member id %q after the restart is not one from before (%v): it rejoined", m.name, id, before)
		} else if a := after[id]; a != b || epoch != b {
			t.Errorf("%s: member epoch %d before the restart, %d described and %d in the client after", m.name, b, a, epoch)
		}
	}
	grpReportErrs(t, m1, m2)
	fzCheckLogs(t, p)
}

// grpWaitStable848 waits until the KIP-848 group is Stable with n members
// and returns each member's epoch by member id.
func grpWaitStable848(ctx context.Context, t testing.TB, adm *kadm.Client, group string, n int) map[string]int32 {
	t.Helper()
	var out map[string]int32
	fzWaitFor(t, 30*time.Second, "group "+group+" Stable with its members", func() error {
		ds, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return err
		}
		d := ds[group]
		if d.Err != nil || d.State != "Stable" || len(d.Members) != n {
			return fmt.Errorf("state %q, %d members, err %v", d.State, len(d.Members), d.Err)
		}
		out = make(map[string]int32)
		for _, m := range d.Members {
			out[m.MemberID] = m.MemberEpoch
		}
		return nil
	})
	return out
}
