package integration

// The admin CLI against a three-broker cluster: every command given one
// bootstrap broker that is not the leader of every partition, nor the
// coordinator of the group it works on, so the CLI must find leaders and
// coordinators itself. Its output is checked against kadm's own view.

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

func TestAdminCLIThreeBrokers(t *testing.T) {
	brokers := startQuorumCluster(t, 3)
	ctx := testContext(t, 3*time.Minute)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "cli3")

	// create with replication factor 3 through broker 1.
	var created []struct {
		Topic             string `json:"topic"`
		Partitions        int32  `json:"partitions"`
		ReplicationFactor int16  `json:"replication_factor"`
		Error             string `json:"error"`
	}
	cliJSON(ctx, t, brokers[0].Addr, &created, "topic", "create", topic, "-p", "3", "-r", "3")
	if len(created) != 1 || created[0].Partitions != 3 || created[0].ReplicationFactor != 3 || created[0].Error != "" {
		t.Fatalf("topic create -r 3: %+v", created)
	}
	td := replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)

	// The bootstrap broker from here on leads some partitions, not all.
	leaders := map[int32]int32{}
	for _, p := range td.Partitions {
		leaders[p.Partition] = p.Leader
	}
	var boot int32 = -1
	for id := int32(1); id <= 3 && boot < 0; id++ {
		for _, l := range leaders {
			if l != id {
				boot = id
			}
		}
	}
	bootAddr := brokers[boot-1].Addr
	t.Logf("leaders %v; bootstrap broker %d", leaders, boot)

	// describe: leader, replicas and ISR of every partition as kadm sees
	// them (asked again until the two reads agree: an ISR may move
	// between them).
	type describedTopic struct {
		Partitions []struct {
			Partition int32   `json:"partition"`
			Leader    int32   `json:"leader"`
			Replicas  []int32 `json:"replicas"`
			ISR       []int32 `json:"isr"`
		} `json:"partitions"`
		Error string `json:"error"`
	}
	fzWaitFor(t, 30*time.Second, "topic describe to match kadm", func() error {
		var described []describedTopic
		cliJSON(ctx, t, bootAddr, &described, "topic", "describe", topic)
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		want := tds[topic]
		if len(described) != 1 || described[0].Error != "" || len(described[0].Partitions) != 3 {
			return fmt.Errorf("described %+v", described)
		}
		for _, dp := range described[0].Partitions {
			kp := want.Partitions[dp.Partition]
			sorted := func(s []int32) string { s = slices.Clone(s); slices.Sort(s); return fmt.Sprint(s) }
			if dp.Leader != kp.Leader || fmt.Sprint(dp.Replicas) != fmt.Sprint(kp.Replicas) || fmt.Sprint(dp.ISR) != fmt.Sprint(kp.ISR) {
				return fmt.Errorf("partition %d: CLI leader %d replicas %v isr %v; kadm %d %v %v", dp.Partition, dp.Leader, dp.Replicas, dp.ISR, kp.Leader, kp.Replicas, kp.ISR)
			}
			if sorted(dp.Replicas) != "[1 2 3]" || sorted(dp.ISR) != "[1 2 3]" || dp.Leader < 1 {
				return fmt.Errorf("partition %d: leader %d replicas %v isr %v, want all three brokers", dp.Partition, dp.Leader, dp.Replicas, dp.ISR)
			}
		}
		return nil
	})
	out, _ := cliRun(ctx, t, bootAddr, "", 0, "topic", "describe", topic)
	if !strings.Contains(out, "PartitionCount: 3") || strings.Count(out, "\n") < 5 {
		t.Errorf("topic describe table:\n%s", out)
	}

	// produce to every partition (acks=all) and consume it all back,
	// through the bootstrap broker.
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("k%02d:v%02d", i, i))
	}
	var summary struct {
		Records    int64          `json:"records"`
		Partitions map[string]any `json:"partitions"`
	}
	out, _ = cliRun(ctx, t, bootAddr, strings.Join(lines, "\n")+"\n", 0, "produce", "-t", topic, "-K:", "--json")
	if err := json.Unmarshal([]byte(out), &summary); err != nil {
		t.Fatalf("produce --json: %v\n%s", err, out)
	}
	if summary.Records != 30 || len(summary.Partitions) != 3 {
		t.Fatalf("produce: %+v, want 30 records on 3 partitions", summary)
	}
	out, _ = cliRun(ctx, t, bootAddr, "", 0, "consume", "-t", topic, "-e", "-f", `%k:%s\n`)
	got := strings.Split(strings.TrimSpace(out), "\n")
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(lines, "\n") {
		t.Fatalf("consume -e read %d records:\n%s", len(got), out)
	}

	// A group whose coordinator is not the bootstrap broker.
	var group string
	var coordinator int32
	fzWaitFor(t, 30*time.Second, "a group coordinated by another broker than the bootstrap", func() error {
		var names []string
		for i := range 20 {
			names = append(names, topic+"-g"+strconv.Itoa(i))
		}
		resps := adm.FindGroupCoordinators(ctx, names...)
		for _, name := range names {
			r, ok := resps[name]
			if ok && r.Err == nil && r.NodeID != boot {
				group, coordinator = name, r.NodeID
				return nil
			}
		}
		return fmt.Errorf("coordinators %+v", resps)
	})
	t.Logf("group %s coordinated by broker %d", group, coordinator)

	out, _ = cliRun(ctx, t, bootAddr, "", 0, "consume", "-t", topic, "-G", group, "-c", "10")
	if n := strings.Count(out, "\n"); n != 10 {
		t.Fatalf("consume -G -c 10 printed %d lines", n)
	}
	committed := func() int64 {
		t.Helper()
		resps, err := adm.FetchOffsets(ctx, group)
		if err != nil || resps.Error() != nil {
			t.Fatalf("fetch offsets of %s: %v %v", group, err, resps.Error())
		}
		var n int64
		resps.Each(func(o kadm.OffsetResponse) { n += max(o.At, 0) })
		return n
	}
	if n := committed(); n != 10 {
		t.Fatalf("after consume -G -c 10, kadm sees %d committed", n)
	}

	// describe, lag and list name the coordinator; the group is empty
	// once the consumer has left.
	fzWaitFor(t, 30*time.Second, "group describe", func() error {
		var described []struct {
			State       string `json:"state"`
			Coordinator int32  `json:"coordinator"`
			Error       string `json:"error"`
		}
		cliJSON(ctx, t, bootAddr, &described, "group", "describe", group)
		if len(described) != 1 || described[0].Error != "" || described[0].State != "Empty" || described[0].Coordinator != coordinator {
			return fmt.Errorf("described %+v, want Empty with coordinator %d", described, coordinator)
		}
		return nil
	})
	var listed []struct {
		Group       string `json:"group"`
		Coordinator int32  `json:"coordinator"`
	}
	cliJSON(ctx, t, bootAddr, &listed, "group", "list")
	listedOn := int32(-1)
	for _, g := range listed {
		if g.Group == group {
			listedOn = g.Coordinator
		}
	}
	if listedOn != coordinator {
		t.Errorf("group list: %+v, want %s on %d", listed, group, coordinator)
	}
	lag := func() int64 {
		t.Helper()
		var lags []struct {
			TotalLag   int64 `json:"total_lag"`
			Partitions []struct {
				Error string `json:"error"`
			} `json:"partitions"`
			Error string `json:"error"`
		}
		cliJSON(ctx, t, bootAddr, &lags, "group", "lag", group)
		if len(lags) != 1 || lags[0].Error != "" || len(lags[0].Partitions) != 3 {
			t.Fatalf("group lag: %+v", lags)
		}
		return lags[0].TotalLag
	}
	if l := lag(); l != 20 {
		t.Fatalf("group lag %d, want 20", l)
	}

	// reset-offsets, a dry run and then executed, on the coordinator.
	var plan struct {
		Executed bool `json:"executed"`
		Offsets  []struct {
			New int64 `json:"new_offset"`
		} `json:"offsets"`
	}
	cliJSON(ctx, t, bootAddr, &plan, "group", "reset-offsets", group, "--all-topics", "--to-latest")
	if plan.Executed || len(plan.Offsets) != 3 || committed() != 10 {
		t.Fatalf("reset-offsets dry run: %+v, committed %d", plan, committed())
	}
	cliRun(ctx, t, bootAddr, "", 0, "group", "reset-offsets", group, "--topic", topic, "--to-latest", "--execute")
	if n, l := committed(), lag(); n != 30 || l != 0 {
		t.Fatalf("after --to-latest --execute: committed %d, lag %d; want 30 and 0", n, l)
	}
	// Every record is younger than a day: --by-duration asks each leader
	// for the offset by time, and finds the first.
	cliRun(ctx, t, bootAddr, "", 0, "group", "reset-offsets", group, "--topic", topic, "--by-duration", "P1D", "--execute")
	if n, l := committed(), lag(); n != 0 || l != 30 {
		t.Fatalf("after --by-duration P1D --execute: committed %d, lag %d; want 0 and 30", n, l)
	}

	// delete the group through the bootstrap: gone for its coordinator.
	var deleted []struct {
		Group string `json:"group"`
		Error string `json:"error"`
	}
	cliJSON(ctx, t, bootAddr, &deleted, "group", "delete", group)
	if len(deleted) != 1 || deleted[0].Error != "" {
		t.Fatalf("group delete: %+v", deleted)
	}
	if n := committed(); n != 0 {
		t.Fatalf("the deleted group has %d committed", n)
	}

	// alter a config and the partition count through the bootstrap: every
	// broker serves the change, the new partition has three replicas.
	cliRun(ctx, t, bootAddr, "", 0, "topic", "alter", topic, "--set", "retention.ms=7200000", "--partitions", "4")
	for _, b := range brokers {
		other := fzAdmin(t, b.Addr)
		fzWaitFor(t, 30*time.Second, "the altered config on broker "+b.Addr, func() error {
			if v := cliTopicConfigs(ctx, t, other, topic)["retention.ms"].Value; v == nil || *v != "7200000" {
				return fmt.Errorf("retention.ms %v", v)
			}
			return nil
		})
	}
	if td := replWaitISR(ctx, t, adm, topic, 3, 60*time.Second); len(td.Partitions) != 4 {
		t.Fatalf("after alter --partitions 4: %d partitions", len(td.Partitions))
	}

	// cluster describe: three brokers at their addresses, the controller
	// kadm names.
	cliCheckCluster(ctx, t, bootAddr, adm, map[int32]string{1: brokers[0].Addr, 2: brokers[1].Addr, 3: brokers[2].Addr})
}
