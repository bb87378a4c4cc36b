package integration

// ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments
// through kadm against a cluster of three brokers sharing one etcd.
//
// With one replica: the errors, and a move of a partition to another
// broker, which copies the log there and deletes the old copy. With three
// replicas: preferred election after a reorder, a shrink, and a grow that
// completes once the new replica is in sync.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startReassignCluster starts three brokers on one etcd (the first's
// embedded one) and waits until Metadata lists all three.
func startReassignCluster(ctx context.Context, t *testing.T) ([]*brokerProc, *kadm.Client) {
	t.Helper()
	brokers := startSharedEtcdCluster(t, 3)
	adm := fzAdmin(t, brokers[0].Addr)
	waitBrokersInMetadata(ctx, t, brokers[0].Addr, 3)
	return brokers, adm
}

// rsPartitions returns a topic's partitions as Metadata reports them.
func rsPartitions(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) map[int32]kadm.PartitionDetail {
	t.Helper()
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	d := td[topic]
	if d.Err != nil {
		t.Fatalf("metadata of %s: %v", topic, d.Err)
	}
	return d.Partitions
}

// rsElect runs ElectLeaders for the given partitions and returns each
// partition's error (nil: elected).
func rsElect(ctx context.Context, t *testing.T, adm *kadm.Client, how kadm.ElectLeadersHow, topic string, parts ...int32) map[int32]error {
	t.Helper()
	var s kadm.TopicsSet
	s.Add(topic, parts...)
	rs, err := adm.ElectLeaders(ctx, how, s)
	if err != nil {
		t.Fatalf("ElectLeaders %s %v: %v", topic, parts, err)
	}
	out := map[int32]error{}
	for p, r := range rs[topic] {
		out[p] = r.Err
	}
	if len(out) != len(parts) {
		t.Fatalf("ElectLeaders %s %v answered %v", topic, parts, rs)
	}
	return out
}

// rsAlter runs AlterPartitionAssignments for one partition (nil replicas:
// cancel) and returns its error.
func rsAlter(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, p int32, replicas []int32) error {
	t.Helper()
	var req kadm.AlterPartitionAssignmentsReq
	if replicas == nil {
		req.CancelAssign(topic, p)
	} else {
		req.Assign(topic, p, replicas)
	}
	rs, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatalf("AlterPartitionAssignments %s-%d %v: %v", topic, p, replicas, err)
	}
	r, ok := rs[topic][p]
	if !ok {
		t.Fatalf("AlterPartitionAssignments %s-%d: no answer in %v", topic, p, rs)
	}
	if r.Err != nil {
		return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
	}
	return nil
}

// rsListed is the reassignment of topic-p that adm's broker lists,
// as "replicas adding removing", or "" when none is listed.
func rsListed(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, p int32) string {
	t.Helper()
	var s kadm.TopicsSet
	s.Add(topic, p)
	rs, err := adm.ListPartitionReassignments(ctx, s)
	if err != nil {
		t.Fatalf("ListPartitionReassignments: %v", err)
	}
	r, ok := rs[topic][p]
	if !ok {
		return ""
	}
	return fmt.Sprintf("%v %v %v", r.Replicas, r.AddingReplicas, r.RemovingReplicas)
}

// rsListedAt is rsListed asked of one broker over a raw connection.
func rsListedAt(t *testing.T, raw *fzRaw, topic string, p int32) string {
	t.Helper()
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	rt := kmsg.NewListPartitionReassignmentsRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{p}
	req.Topics = append(req.Topics, rt)
	resp := raw.roundTrip(req).(*kmsg.ListPartitionReassignmentsResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("ListPartitionReassignments: %s", fzErrCode(resp.ErrorCode))
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rt.Topic == topic && rp.Partition == p {
				return fmt.Sprintf("%v %v %v", rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas)
			}
		}
	}
	return ""
}

func rsWantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func TestReassign(t *testing.T) {
	ctx := testContext(t, 180*time.Second)
	brokers, adm := startReassignCluster(ctx, t)
	// kadm sends admin requests to the controller; these connections ask
	// each broker, which answers from its own metadata cache.
	raws := []*fzRaw{fzDial(t, brokers[0].Addr), fzDial(t, brokers[1].Addr), fzDial(t, brokers[2].Addr)}

	t.Run("rf1", func(t *testing.T) {
		topic := fzTopic(t, "reassign")
		fzCreateTopic(ctx, t, adm, topic, 3, nil)
		parts := rsPartitions(ctx, t, adm, topic)

		for p, err := range rsElect(ctx, t, adm, kadm.ElectPreferredReplica, topic, 0, 1, 2) {
			rsWantErr(t, fmt.Sprintf("preferred election of %s-%d (its only replica leads)", topic, p), err, kerr.ElectionNotNeeded)
		}
		for p, err := range rsElect(ctx, t, adm, kadm.ElectLiveReplica, topic, 0, 1, 2) {
			rsWantErr(t, fmt.Sprintf("unclean election of %s-%d (its leader is live)", topic, p), err, kerr.ElectionNotNeeded)
		}
		errs := rsElect(ctx, t, adm, kadm.ElectPreferredReplica, topic, 7)
		rsWantErr(t, "election of a partition beyond the count", errs[7], kerr.UnknownTopicOrPartition)
		errs = rsElect(ctx, t, adm, kadm.ElectPreferredReplica, topic+"-nope", 0)
		rsWantErr(t, "election in an unknown topic", errs[0], kerr.UnknownTopicOrPartition)

		rsWantErr(t, "reassignment to an unregistered broker", rsAlter(ctx, t, adm, topic, 0, []int32{9}), kerr.InvalidReplicaAssignment)
		rsWantErr(t, "reassignment naming a broker twice", rsAlter(ctx, t, adm, topic, 0, []int32{1, 1}), kerr.InvalidReplicaAssignment)
		rsWantErr(t, "reassignment of an unknown topic", rsAlter(ctx, t, adm, topic+"-nope", 0, []int32{1}), kerr.UnknownTopicOrPartition)
		rsWantErr(t, "cancel with none in progress", rsAlter(ctx, t, adm, topic, 0, nil), kerr.NoReassignmentInProgress)

		// Move partition 0 from its leader to another broker: the new
		// replica copies the log, joins the ISR, and the controller
		// completes the move; the old broker deletes its copy.
		from := parts[0].Leader
		to := from%3 + 1
		cl := fzClient(t, brokers[1].Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("before")})
		if err := rsAlter(ctx, t, adm, topic, 0, []int32{to}); err != nil {
			t.Fatalf("reassign %s-0 from %d to %d: %v", topic, from, to, err)
		}
		fzWaitFor(t, 30*time.Second, "the move to complete", func() error {
			p := rsPartitions(ctx, t, adm, topic)[0]
			if !slices.Equal(p.Replicas, []int32{to}) || p.Leader != to || !slices.Equal(p.ISR, []int32{to}) {
				return fmt.Errorf("replicas %v leader %d isr %v", p.Replicas, p.Leader, p.ISR)
			}
			return nil
		})
		for i, raw := range raws {
			fzWaitFor(t, 10*time.Second, fmt.Sprintf("broker %d to list no reassignment", i+1), func() error {
				if got := rsListedAt(t, raw, topic, 0); got != "" {
					return fmt.Errorf("still listed: %s", got)
				}
				return nil
			})
		}
		fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("after")})
		got := fzConsumePartitionTo(ctx, t, brokers[2].Addr, topic, 0, 2)
		if string(got[0].Value) != "before" || string(got[1].Value) != "after" {
			t.Errorf("after the move read %q, %q; want before, after", got[0].Value, got[1].Value)
		}
		oldDir := filepath.Join(brokers[from-1].DataDir, topic+"-0")
		fzWaitFor(t, 10*time.Second, "the old replica's log deleted", func() error {
			if _, err := os.Stat(oldDir); err == nil {
				return fmt.Errorf("%s still there", oldDir)
			}
			return nil
		})
		rsWantErr(t, "cancel after completion", rsAlter(ctx, t, adm, topic, 0, nil), kerr.NoReassignmentInProgress)
	})

	t.Run("rf3", func(t *testing.T) {
		topic := fzTopic(t, "reassign-rf3")
		resp, err := adm.CreateTopic(ctx, 1, 3, nil, topic)
		if err != nil {
			t.Fatalf("create %s with replication factor 3: %v (%s)", topic, err, resp.ErrMessage)
		}
		inSync := func(what string, replicas []int32) kadm.PartitionDetail {
			t.Helper()
			var p kadm.PartitionDetail
			fzWaitFor(t, 30*time.Second, what, func() error {
				p = rsPartitions(ctx, t, adm, topic)[0]
				isr := slices.Sorted(slices.Values(p.ISR))
				if !slices.Equal(p.Replicas, replicas) || !slices.Equal(isr, slices.Sorted(slices.Values(replicas))) {
					return fmt.Errorf("replicas %v isr %v, want replicas %v all in sync", p.Replicas, p.ISR, replicas)
				}
				return nil
			})
			return p
		}
		var p kadm.PartitionDetail
		fzWaitFor(t, 30*time.Second, "three replicas", func() error {
			p = rsPartitions(ctx, t, adm, topic)[0]
			if len(p.Replicas) != 3 {
				return fmt.Errorf("replicas %v", p.Replicas)
			}
			return nil
		})
		a, b, c := p.Replicas[0], p.Replicas[1], p.Replicas[2]
		p = inSync("all three replicas in sync", []int32{a, b, c})
		cl := fzClient(t, brokers[0].Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
		var recs []*kgo.Record
		for i := range 10 {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(strconv.Itoa(i))})
		}
		fzProduceSync(ctx, t, cl, recs...)

		// Reordering is no reassignment: b becomes the preferred replica,
		// and a preferred election makes it leader at the next epoch.
		if err := rsAlter(ctx, t, adm, topic, 0, []int32{b, a, c}); err != nil {
			t.Fatalf("reorder: %v", err)
		}
		if got := rsListed(ctx, t, adm, topic, 0); got != "" {
			t.Errorf("a reorder is listed as a reassignment: %s", got)
		}
		inSync("the new order", []int32{b, a, c})
		errs := rsElect(ctx, t, adm, kadm.ElectPreferredReplica, topic, 0)
		if errs[0] != nil {
			t.Fatalf("preferred election of %d: %v", b, errs[0])
		}
		fzWaitFor(t, 10*time.Second, fmt.Sprintf("broker %d to lead", b), func() error {
			q := rsPartitions(ctx, t, adm, topic)[0]
			if q.Leader != b || q.LeaderEpoch != p.LeaderEpoch+1 {
				return fmt.Errorf("leader %d epoch %d, want %d at %d", q.Leader, q.LeaderEpoch, b, p.LeaderEpoch+1)
			}
			return nil
		})
		errs = rsElect(ctx, t, adm, kadm.ElectPreferredReplica, topic, 0)
		rsWantErr(t, "second preferred election", errs[0], kerr.ElectionNotNeeded)

		// Shrinking completes at once: the leader b stays.
		if err := rsAlter(ctx, t, adm, topic, 0, []int32{b, c}); err != nil {
			t.Fatalf("shrink: %v", err)
		}
		inSync("the shrunk replicas", []int32{b, c})
		// Growing back completes once a has caught up and joined the ISR.
		if err := rsAlter(ctx, t, adm, topic, 0, []int32{b, c, a}); err != nil {
			t.Fatalf("grow: %v", err)
		}
		inSync("the grown replicas", []int32{b, c, a})
		fzWaitFor(t, 30*time.Second, "the reassignment to complete", func() error {
			if got := rsListed(ctx, t, adm, topic, 0); got != "" {
				return fmt.Errorf("still listed: %s", got)
			}
			return nil
		})
		got := fzConsumePartitionTo(ctx, t, brokers[2].Addr, topic, 0, 10)
		for i, r := range got {
			if string(r.Value) != strconv.Itoa(i) {
				t.Fatalf("record %d after the reassignments: %q", i, r.Value)
			}
		}
	})

	for _, b := range brokers {
		fzCheckLogs(t, b)
	}
}
