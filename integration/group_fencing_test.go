package integration

// Static members fenced by a newer member with their group.instance.id,
// and offsets committed for topics or partitions that do not exist.

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// grpManageErrs records the group management errors kgo reports
// (kgo.HookGroupManageError).
type grpManageErrs struct {
	mu   sync.Mutex
	errs []error // protected by mu
}

func (h *grpManageErrs) OnGroupManageError(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

func (h *grpManageErrs) has(target error) bool { return h.count(target) > 0 }

func (h *grpManageErrs) count(target error) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, err := range h.errs {
		if errors.Is(err, target) {
			n++
		}
	}
	return n
}

// TestGroupStaticMemberFenced: a running static member whose
// group.instance.id is taken by a new client hears FENCED_INSTANCE_ID on
// its next heartbeat (kgo reports it as a group management error), within
// a few heartbeat intervals rather than a session timeout. Its old member
// id then gets FENCED_INSTANCE_ID from Heartbeat, SyncGroup, OffsetCommit,
// JoinGroup and LeaveGroup when sent with the instance id, as Kafka's
// validateMember answers.
func TestGroupStaticMemberFenced(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := grpName(t, "grp-fence"), grpName(t, "grp-fence-g")
	const parts = 2
	const instance = "inst-fenced"
	fzCreateTopic(ctx, t, adm, topic, parts, nil)

	oldHook := &grpManageErrs{}
	old := grpStartIdle(t, p.Addr, "old", group, []string{topic},
		kgo.InstanceID(instance), kgo.SessionTimeout(60*time.Second), kgo.WithHooks(oldHook))
	fzWaitFor(t, 20*time.Second, "the first static member owns every partition", func() error {
		if got := old.Assigned(topic); len(got) != parts {
			return errors.New("not yet")
		}
		return nil
	})
	oldID, oldGen := old.cl.GroupMetadata()

	newer := grpStartIdle(t, p.Addr, "new", group, []string{topic},
		kgo.InstanceID(instance), kgo.SessionTimeout(60*time.Second))
	fzWaitFor(t, 20*time.Second, "the new static member owns every partition", func() error {
		if got := newer.Assigned(topic); len(got) != parts {
			return errors.New("not yet")
		}
		return nil
	})
	// The old member heartbeats every 300ms: well under the 60s session
	// timeout, it must hear that it was fenced.
	fzWaitFor(t, 5*time.Second, "the replaced static member is told FENCED_INSTANCE_ID", func() error {
		if !oldHook.has(kerr.FencedInstanceID) {
			return errors.New("no FENCED_INSTANCE_ID yet")
		}
		return nil
	})
	// kgo joins again with its member id; that is fenced too, so the new
	// member keeps the instance (answering UNKNOWN_MEMBER_ID instead would
	// have kgo join without a member id and take the instance back, the
	// two members fencing each other in turn).
	newID, newGen := newer.cl.GroupMetadata()
	fzWaitFor(t, 15*time.Second, "the replaced static member's rejoin is fenced too", func() error {
		if n := oldHook.count(kerr.FencedInstanceID); n < 2 {
			return fmt.Errorf("%d FENCED_INSTANCE_ID errors", n)
		}
		return nil
	})
	old.Close()
	if id, gen := newer.cl.GroupMetadata(); id != newID || gen != newGen {
		t.Errorf("the new static member went from %s generation %d to %s generation %d while the old one was fenced", newID, newGen, id, gen)
	}
	if got := newer.Assigned(topic); len(got) != parts {
		t.Errorf("the new static member owns %v after the old one was fenced, want all %d partitions", got, parts)
	}

	raw := fzDial(t, p.Addr)
	inst := kmsg.StringPtr(instance)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = group, oldID, oldGen, inst
	grpWantCode(t, "Heartbeat v4 of the replaced member id", raw.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.FencedInstanceID)

	sreq := grpSyncRequest(5, group, oldID, oldGen, nil)
	sreq.InstanceID = inst
	grpWantCode(t, "SyncGroup v5 of the replaced member id", raw.roundTrip(sreq).(*kmsg.SyncGroupResponse).ErrorCode, kerr.FencedInstanceID)

	grpWantCode(t, "OffsetCommit v8 of the replaced member id",
		grpOffsetCommitStatic(t, raw, group, oldID, instance, oldGen, topic, 0, 1), kerr.FencedInstanceID)

	join := grpJoinRequest(5, group, oldID, 60000, 60000, topic, "cooperative-sticky")
	join.InstanceID = inst
	grpWantCode(t, "JoinGroup v5 of the replaced member id", grpJoin(t, raw, join).ErrorCode, kerr.FencedInstanceID)

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.SetVersion(4)
	leave.Group = group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID, lm.InstanceID = oldID, inst
	leave.Members = append(leave.Members, lm)
	lresp := raw.roundTrip(leave).(*kmsg.LeaveGroupResponse)
	if lresp.ErrorCode != 0 || len(lresp.Members) != 1 {
		t.Fatalf("LeaveGroup v4 of the replaced member id: error %s, members %+v", fzErrCode(lresp.ErrorCode), lresp.Members)
	}
	grpWantCode(t, "LeaveGroup v4 of the replaced member id", lresp.Members[0].ErrorCode, kerr.FencedInstanceID)

	// The new member is untouched by all this.
	d := grpDescribe(ctx, t, adm, group)
	if d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != newID {
		t.Errorf("after the fenced requests: state %q, members %+v; want Stable with only %s", d.State, d.Members, newID)
	}
	fzCheckLogs(t, p)
}

// TestOffsetCommitUnknownTopic: OffsetCommit and TxnOffsetCommit answer
// UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist and for a
// partition the topic does not have, and commit the request's other
// partitions, as Kafka does; the unknown ones are not stored.
func TestOffsetCommitUnknownTopic(t *testing.T) {
	p := grpStartBroker(t)
	ctx := testContext(t, 60*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic, group := grpName(t, "grp-unk"), grpName(t, "grp-unk-g")
	missing := grpName(t, "grp-unk-missing")
	fzCreateTopic(ctx, t, adm, topic, 2, nil)

	raw := fzDial(t, p.Addr)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(8)
	req.Group, req.Generation = group, -1
	for _, tp := range []struct {
		topic string
		parts []int32
	}{{topic, []int32{0, 1, 2, -1}}, {missing, []int32{0}}} {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = tp.topic
		for _, part := range tp.parts {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = part, 7
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp := raw.roundTrip(req).(*kmsg.OffsetCommitResponse)
	want := map[string]map[int32]*kerr.Error{
		topic:   {0: nil, 1: nil, 2: kerr.UnknownTopicOrPartition, -1: kerr.UnknownTopicOrPartition},
		missing: {0: kerr.UnknownTopicOrPartition},
	}
	got := 0
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			w, ok := want[st.Topic][sp.Partition]
			if !ok {
				t.Errorf("OffsetCommit answered for %s[%d], not asked", st.Topic, sp.Partition)
				continue
			}
			got++
			grpWantCode(t, "OffsetCommit of "+st.Topic, sp.ErrorCode, w)
		}
	}
	if got != 5 {
		t.Errorf("OffsetCommit answered %d partitions, want 5", got)
	}
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("OffsetFetch: %v", err)
	}
	for tp, ps := range offsets {
		for part, o := range ps {
			if tp != topic || (part != 0 && part != 1) || o.At != 7 {
				t.Errorf("committed %s[%d] = %d; want only %s[0] and [1] at 7", tp, part, o.At, topic)
			}
		}
	}
	if len(offsets[topic]) != 2 {
		t.Errorf("committed %v, want %s[0] and [1]", offsets, topic)
	}

	// TxnOffsetCommit checks the topics first: a request naming only
	// unknown partitions is answered without a transaction.
	txn := kmsg.NewPtrTxnOffsetCommitRequest()
	txn.SetVersion(3)
	txn.TransactionalID, txn.Group, txn.ProducerID, txn.ProducerEpoch, txn.Generation = "grp-unk-txn", group, 1, 0, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = missing
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 3
	rt.Partitions = append(rt.Partitions, rp)
	txn.Topics = append(txn.Topics, rt)
	rt = kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp.Partition = 5
	rt.Partitions = append(rt.Partitions, rp)
	txn.Topics = append(txn.Topics, rt)
	tresp := raw.roundTrip(txn).(*kmsg.TxnOffsetCommitResponse)
	if len(tresp.Topics) != 2 {
		t.Fatalf("TxnOffsetCommit answered %+v, want two topics", tresp.Topics)
	}
	for _, st := range tresp.Topics {
		for _, sp := range st.Partitions {
			grpWantCode(t, "TxnOffsetCommit of "+st.Topic, sp.ErrorCode, kerr.UnknownTopicOrPartition)
		}
	}
	fzCheckLogs(t, p)
}
