package integration

// The admin CLI (gregor topic|group|produce|consume|cluster) end to end:
// the built binary against a real broker, its --json output parsed, and
// every change it claims checked with an independent franz-go client.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cliRun runs `gregor args...` with GREGOR_BROKERS=addr and stdin under a
// 60s limit, and fails the test unless it exits with wantExit.
func cliRun(ctx context.Context, t *testing.T, addr, stdin string, wantExit int, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gregorBin, args...)
	cmd.Env = append(os.Environ(), "GREGOR_BROKERS="+addr)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok || ctx.Err() != nil {
			t.Fatalf("gregor %s: %v (ctx %v)\n--- stderr:\n%s\n--- stdout:\n%s", strings.Join(args, " "), err, ctx.Err(), errb.String(), out.String())
		}
		code = ee.ExitCode()
	}
	if code != wantExit {
		t.Fatalf("gregor %s: exit %d, want %d\n--- stderr:\n%s\n--- stdout:\n%s", strings.Join(args, " "), code, wantExit, errb.String(), out.String())
	}
	return out.String(), errb.String()
}

// cliJSON runs a command with --json and decodes its stdout into v.
func cliJSON(ctx context.Context, t *testing.T, addr string, v any, args ...string) {
	t.Helper()
	out, _ := cliRun(ctx, t, addr, "", 0, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("gregor %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cliTopicConfigs are a topic's configs by name as DescribeConfigs
// returns them, read with kadm rather than the CLI.
func cliTopicConfigs(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) map[string]kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("describe configs %s: %v", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs %s: %v %v", topic, err, rc.Err)
	}
	out := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		out[c.Key] = c
	}
	return out
}

// cliStart starts a broker for a CLI test with a kadm client on it and a
// topic name from prefix, created with parts partitions unless parts is
// 0; the broker's log is checked when the test ends.
func cliStart(t *testing.T, prefix string, parts int32) (*brokerProc, context.Context, *kadm.Client, string) {
	t.Helper()
	p := startBroker(t)
	t.Cleanup(func() { fzCheckLogs(t, p) })
	ctx := testContext(t, 3*time.Minute)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, prefix)
	if parts > 0 {
		fzCreateTopic(ctx, t, adm, topic, parts, nil)
	}
	return p, ctx, adm, topic
}

func TestAdminCLITopics(t *testing.T) {
	p, ctx, adm, topic := cliStart(t, "cli", 0)

	// create: the partitions and configs asked for, seen by kadm.
	var created []struct {
		Topic             string `json:"topic"`
		ID                string `json:"id"`
		Partitions        int32  `json:"partitions"`
		ReplicationFactor int16  `json:"replication_factor"`
		Error             string `json:"error"`
	}
	cliJSON(ctx, t, p.Addr, &created, "topic", "create", topic, "--partitions", "3", "-c", "retention.ms=123456", "-c", "cleanup.policy=compact")
	if len(created) != 1 || created[0].Topic != topic || created[0].Partitions != 3 || created[0].ReplicationFactor != 1 || created[0].Error != "" || created[0].ID == "" {
		t.Fatalf("topic create: %+v", created)
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil || details[topic].Err != nil {
		t.Fatalf("list %s: %v %v", topic, err, details[topic].Err)
	}
	if n := len(details[topic].Partitions); n != 3 {
		t.Fatalf("%s has %d partitions, want 3", topic, n)
	}
	cfgs := cliTopicConfigs(ctx, t, adm, topic)
	if v := cfgs["retention.ms"].Value; v == nil || *v != "123456" {
		t.Fatalf("retention.ms = %v, want 123456", v)
	}
	if v := cfgs["cleanup.policy"].Value; v == nil || *v != "compact" {
		t.Fatalf("cleanup.policy = %v, want compact", v)
	}
	// Creating it again fails, unless --if-not-exists.
	_, stderr := cliRun(ctx, t, p.Addr, "", 1, "topic", "create", topic)
	if !strings.Contains(stderr, "not created") {
		t.Errorf("second create: stderr %q", stderr)
	}
	cliRun(ctx, t, p.Addr, "", 0, "topic", "create", topic, "--if-not-exists")

	// list: the topic, with its partition count; internal topics only with --internal.
	var listed []struct {
		Topic      string `json:"topic"`
		Partitions int    `json:"partitions"`
		Internal   bool   `json:"internal"`
	}
	cliJSON(ctx, t, p.Addr, &listed, "topic", "list")
	found := false
	for _, l := range listed {
		if l.Internal {
			t.Errorf("topic list without --internal lists %s", l.Topic)
		}
		if l.Topic == topic {
			found = l.Partitions == 3
		}
	}
	if !found {
		t.Fatalf("topic list: %s with 3 partitions missing from %+v", topic, listed)
	}
	// The table form has a header and a row for the topic.
	out, _ := cliRun(ctx, t, p.Addr, "", 0, "topic", "list", "--brokers", p.Addr)
	if !strings.HasPrefix(out, "TOPIC ") || !strings.Contains(out, "\n"+topic+" ") {
		t.Errorf("topic list table:\n%s", out)
	}

	// describe: partitions with leader 1, offsets after a produce, configs.
	fzProduceSync(ctx, t, fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner())), &kgo.Record{Topic: topic, Partition: 0, Key: []byte("a"), Value: []byte("a")}, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("b"), Value: []byte("b")}) // keyed: the topic is compacted
	type describedTopic struct {
		Topic      string `json:"topic"`
		ID         string `json:"id"`
		Partitions []struct {
			Partition int32   `json:"partition"`
			Leader    int32   `json:"leader"`
			Replicas  []int32 `json:"replicas"`
			ISR       []int32 `json:"isr"`
			Start     int64   `json:"start_offset"`
			End       int64   `json:"end_offset"`
		} `json:"partitions"`
		Configs map[string]struct {
			Value  *string `json:"value"`
			Source string  `json:"source"`
		} `json:"configs"`
		Error string `json:"error"`
	}
	var described []describedTopic
	cliJSON(ctx, t, p.Addr, &described, "topic", "describe", topic)
	if len(described) != 1 || described[0].Error != "" || len(described[0].Partitions) != 3 || described[0].ID != created[0].ID {
		t.Fatalf("topic describe: %+v", described)
	}
	for _, dp := range described[0].Partitions {
		wantEnd := int64(0)
		if dp.Partition == 0 {
			wantEnd = 2
		}
		if dp.Leader != 1 || fmt.Sprint(dp.Replicas) != "[1]" || fmt.Sprint(dp.ISR) != "[1]" || dp.Start != 0 || dp.End != wantEnd {
			t.Errorf("partition %d: %+v, want leader 1, replicas and ISR [1], offsets 0..%d", dp.Partition, dp, wantEnd)
		}
	}
	if c := described[0].Configs["retention.ms"]; c.Value == nil || *c.Value != "123456" || c.Source != "DYNAMIC_TOPIC_CONFIG" {
		t.Errorf("describe configs: %+v", described[0].Configs)
	}
	if _, ok := described[0].Configs["segment.bytes"]; ok {
		t.Errorf("describe without --all-configs shows defaults: %+v", described[0].Configs)
	}

	// alter: a config set and one removed (flags after the topic name), then more partitions.
	cliRun(ctx, t, p.Addr, "", 0, "topic", "alter", topic, "--set", "retention.ms=999", "--delete", "cleanup.policy")
	cfgs = cliTopicConfigs(ctx, t, adm, topic)
	if v := cfgs["retention.ms"].Value; v == nil || *v != "999" {
		t.Fatalf("after alter retention.ms = %v, want 999", v)
	}
	if c := cfgs["cleanup.policy"]; c.Source == kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("after --delete cleanup.policy is still set on the topic: %+v", c)
	}
	cliRun(ctx, t, p.Addr, "", 0, "topic", "alter", topic, "--partitions", "5")
	fzWaitFor(t, 10*time.Second, "5 partitions", func() error {
		d, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		if n := len(d[topic].Partitions); n != 5 {
			return fmt.Errorf("%d partitions", n)
		}
		return nil
	})

	// delete: gone for kadm; describing it now fails.
	var deleted []struct {
		Topic string `json:"topic"`
		Error string `json:"error"`
	}
	cliJSON(ctx, t, p.Addr, &deleted, "topic", "delete", topic)
	if len(deleted) != 1 || deleted[0].Topic != topic || deleted[0].Error != "" {
		t.Fatalf("topic delete: %+v", deleted)
	}
	fzWaitFor(t, 10*time.Second, "topic deleted", func() error {
		d, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		if _, ok := d[topic]; ok {
			return fmt.Errorf("%s still listed", topic)
		}
		return nil
	})
	cliRun(ctx, t, p.Addr, "", 1, "topic", "describe", topic)
	cliRun(ctx, t, p.Addr, "", 1, "topic", "delete", topic)
	cliRun(ctx, t, p.Addr, "", 0, "topic", "delete", topic, "--if-exists")
}

func TestAdminCLIProduceConsume(t *testing.T) {
	p, ctx, adm, topic := cliStart(t, "cli", 2)

	// 20 keyed lines to partition 1 with a header; 5 unkeyed values to partition 0.
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("key-%02d:value %d:with colon", i, i))
	}
	var summary struct {
		Records    int64 `json:"records"`
		Partitions map[string]struct {
			First int64 `json:"first_offset"`
			Last  int64 `json:"last_offset"`
		} `json:"partitions"`
	}
	before := time.Now().UnixMilli()
	out, _ := cliRun(ctx, t, p.Addr, strings.Join(lines, "\n")+"\n", 0, "produce", "-t", topic, "-p", "1", "-K:", "-H", "src=cli", "--json") // kcat's -K:
	if err := json.Unmarshal([]byte(out), &summary); err != nil {
		t.Fatalf("produce --json: %v\n%s", err, out)
	}
	if summary.Records != 20 || summary.Partitions["1"].First != 0 || summary.Partitions["1"].Last != 19 || len(summary.Partitions) != 1 {
		t.Fatalf("produce summary: %+v", summary)
	}
	cliRun(ctx, t, p.Addr, "v0\nv1\nv2\nv3\nv4\n", 0, "produce", "-t", topic, "-p", "0")

	// An independent consumer sees what the CLI claims it wrote.
	recs := fzConsumePartitionTo(ctx, t, p.Addr, topic, 1, 20)
	for i, r := range recs {
		wantK, wantV := fmt.Sprintf("key-%02d", i), fmt.Sprintf("value %d:with colon", i)
		if string(r.Key) != wantK || string(r.Value) != wantV || len(r.Headers) != 1 || r.Headers[0].Key != "src" || string(r.Headers[0].Value) != "cli" {
			t.Fatalf("record %d: key %q value %q headers %v, want %q %q src=cli", i, r.Key, r.Value, r.Headers, wantK, wantV)
		}
	}

	// consume -e with a format: every directive, all 25 records, then exit.
	out, stderr := cliRun(ctx, t, p.Addr, "", 0, "consume", "-t", topic, "-e", "-f", `%t|%p|%o|%k|%s|%K|%S|%h|%T\n`)
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != 25 {
		t.Fatalf("consume -e printed %d lines, want 25:\n%s\n%s", len(got), out, stderr)
	}
	// Partitions interleave: order by (partition, offset), as printed.
	pos := func(line string) (int, int) {
		f := strings.Split(line, "|")
		if len(f) < 3 {
			return -1, -1
		}
		p, _ := strconv.Atoi(f[1])
		o, _ := strconv.Atoi(f[2])
		return p, o
	}
	sort.SliceStable(got, func(i, j int) bool {
		pi, oi := pos(got[i])
		pj, oj := pos(got[j])
		return pi < pj || (pi == pj && oi < oj)
	})
	for i, line := range got {
		f := strings.Split(line, "|")
		if len(f) != 9 {
			t.Fatalf("line %q: %d fields", line, len(f))
		}
		ts, err := strconv.ParseInt(f[8], 10, 64)
		if err != nil || ts < before-60000 || ts > time.Now().UnixMilli()+60000 {
			t.Errorf("line %q: timestamp %q not near now", line, f[8])
		}
		var want string
		if i < 5 {
			want = fmt.Sprintf("%s|0|%d||v%d|-1|2||", topic, i, i)
		} else {
			j := i - 5
			k, v := fmt.Sprintf("key-%02d", j), fmt.Sprintf("value %d:with colon", j)
			want = fmt.Sprintf("%s|1|%d|%s|%s|%d|%d|src=cli|", topic, j, k, v, len(k), len(v))
		}
		if got := strings.Join(f[:8], "|") + "|"; got != want {
			t.Errorf("line %d = %q, want %q", i, got, want)
		}
	}
	if !strings.Contains(stderr, "Reached end of topic "+topic+" [1] at offset 20") {
		t.Errorf("consume -e stderr lacks the end of partition 1:\n%s", stderr)
	}

	// -o offset, -c count, one partition.
	out, _ = cliRun(ctx, t, p.Addr, "", 0, "consume", "-t", topic, "-p", "1", "-o", "7", "-c", "3", "-f", `%o=%k\n`)
	if out != "7=key-07\n8=key-08\n9=key-09\n" {
		t.Errorf("consume -o 7 -c 3:\n%q", out)
	}
	// -o -N: the last N; --json: one object per record.
	out, _ = cliRun(ctx, t, p.Addr, "", 0, "consume", "-t", topic, "-p", "1", "-o", "-2", "-e", "--json")
	type jsonRecord struct {
		Partition int32             `json:"partition"`
		Offset    int64             `json:"offset"`
		Key       *string           `json:"key"`
		Value     *string           `json:"value"`
		Headers   map[string]string `json:"headers"`
	}
	var js []jsonRecord
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r jsonRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("consume --json line %q: %v", l, err)
		}
		js = append(js, r)
	}
	if len(js) != 2 || js[0].Offset != 18 || js[1].Offset != 19 || js[1].Key == nil || *js[1].Key != "key-19" ||
		js[1].Value == nil || *js[1].Value != "value 19:with colon" || js[1].Headers["src"] != "cli" {
		t.Errorf("consume -o -2 --json: %s", out)
	}
	// -o end -e: nothing, at once.
	if out, _ := cliRun(ctx, t, p.Addr, "", 0, "consume", "-t", topic, "-o", "end", "-e"); out != "" {
		t.Errorf("consume -o end -e printed %q", out)
	}
	// The default format is the value and a newline.
	if out, _ := cliRun(ctx, t, p.Addr, "", 0, "consume", "-t", topic, "-p", "0", "-e"); out != "v0\nv1\nv2\nv3\nv4\n" {
		t.Errorf("consume default format: %q", out)
	}
	cliRun(ctx, t, p.Addr, "", 1, "consume", "-t", topic, "-f", "%x")

	// A transactional topic ends in a commit marker, which -e must count
	// as reached although it is not printed.
	txnTopic := topic + "-txn"
	fzCreateTopic(ctx, t, adm, txnTopic, 1, nil)
	txn := fzClient(t, p.Addr, kgo.TransactionalID(txnTopic+"-id"))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	fzProduceSync(ctx, t, txn, &kgo.Record{Topic: txnTopic, Value: []byte("t0")}, &kgo.Record{Topic: txnTopic, Value: []byte("t1")})
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if out, _ := cliRun(ctx, t, p.Addr, "", 0, "consume", "-t", txnTopic, "-e", "-f", `%o:%s\n`); out != "0:t0\n1:t1\n" {
		t.Errorf("consume -e of a transactional topic: %q", out)
	}

	// -G: a group member that commits what it printed. Three records,
	// then the rest with -e; lag follows (25 produced minus committed).
	group := topic + "-g"
	lagOf := func() (total int64, committed int64) {
		t.Helper()
		var lags []struct {
			TotalLag   int64 `json:"total_lag"`
			Partitions []struct {
				Committed int64 `json:"committed_offset"`
			} `json:"partitions"`
		}
		cliJSON(ctx, t, p.Addr, &lags, "group", "lag", group)
		if len(lags) != 1 {
			t.Fatalf("group lag: %+v", lags)
		}
		for _, pl := range lags[0].Partitions {
			committed += max(pl.Committed, 0)
		}
		return lags[0].TotalLag, committed
	}
	out, _ = cliRun(ctx, t, p.Addr, "", 0, "consume", "-t", topic, "-G", group, "-c", "3")
	if n := strings.Count(out, "\n"); n != 3 {
		t.Fatalf("consume -G -c 3 printed %d lines:\n%s", n, out)
	}
	fzWaitFor(t, 30*time.Second, "the group's commits visible", func() error {
		if total, committed := lagOf(); total != 22 || committed != 3 {
			return fmt.Errorf("lag %d, committed %d; want 22 and 3", total, committed)
		}
		return nil
	})
	out, _ = cliRun(ctx, t, p.Addr, "", 0, "consume", "-t", topic, "-G", group, "-e")
	if n := strings.Count(out, "\n"); n != 22 {
		t.Fatalf("consume -G -e printed %d lines, want the 22 left:\n%s", n, out)
	}
	if total, committed := lagOf(); total != 0 || committed != 25 {
		t.Fatalf("after consume -G -e: lag %d, committed %d; want 0 and 25", total, committed)
	}
	cliRun(ctx, t, p.Addr, "", 1, "consume", "-t", topic, "-G", group, "-p", "0")
}

// cliCommitted is the group's committed offsets of topic, read with kadm.
func cliCommitted(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	resps, err := adm.FetchOffsets(ctx, group)
	if err != nil || resps.Error() != nil {
		t.Fatalf("fetch offsets %s: %v %v", group, err, resps.Error())
	}
	out := map[int32]int64{}
	for p, o := range resps[topic] {
		out[p] = o.At
	}
	return out
}

func TestAdminCLIGroups(t *testing.T) {
	p, ctx, adm, topic := cliStart(t, "cli", 2)
	group := topic + "-g"
	cl := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(strconv.Itoa(i))})
	}
	for i := range 6 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 1, Value: []byte(strconv.Itoa(i))})
	}
	fzProduceSync(ctx, t, cl, recs...)
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4, LeaderEpoch: -1})
	commit.Add(kadm.Offset{Topic: topic, Partition: 1, At: 6, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, group, commit); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// list and describe: the group, empty.
	var listed []struct {
		Group string `json:"group"`
		State string `json:"state"`
	}
	cliJSON(ctx, t, p.Addr, &listed, "group", "list")
	state := ""
	for _, g := range listed {
		if g.Group == group {
			state = g.State
		}
	}
	if state != "Empty" {
		t.Fatalf("group list: %s state %q, want Empty: %+v", group, state, listed)
	}

	// lag: produced minus committed, per partition.
	type lagOut struct {
		Group      string `json:"group"`
		TotalLag   int64  `json:"total_lag"`
		Partitions []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Committed int64  `json:"committed_offset"`
			End       int64  `json:"log_end_offset"`
			Lag       int64  `json:"lag"`
		} `json:"partitions"`
	}
	var lags []lagOut
	cliJSON(ctx, t, p.Addr, &lags, "group", "lag", group)
	if len(lags) != 1 || lags[0].TotalLag != 6 || len(lags[0].Partitions) != 2 {
		t.Fatalf("group lag: %+v", lags)
	}
	for _, pl := range lags[0].Partitions {
		want := map[int32][3]int64{0: {4, 10, 6}, 1: {6, 6, 0}}[pl.Partition]
		if pl.Topic != topic || [3]int64{pl.Committed, pl.End, pl.Lag} != want {
			t.Errorf("lag of partition %d: %+v, want committed/end/lag %v", pl.Partition, pl, want)
		}
	}

	type resetOut struct {
		Executed bool `json:"executed"`
		Offsets  []struct {
			Partition int32 `json:"partition"`
			Current   int64 `json:"current_offset"`
			New       int64 `json:"new_offset"`
		} `json:"offsets"`
	}
	reset := func(args ...string) map[int32][2]int64 {
		t.Helper()
		var r resetOut
		cliJSON(ctx, t, p.Addr, &r, append([]string{"group", "reset-offsets", group}, args...)...)
		if r.Executed != (args[len(args)-1] == "--execute") {
			t.Fatalf("reset-offsets %v: executed = %v", args, r.Executed)
		}
		out := map[int32][2]int64{}
		for _, o := range r.Offsets {
			out[o.Partition] = [2]int64{o.Current, o.New}
		}
		return out
	}
	check := func(what string, want map[int32]int64) {
		t.Helper()
		if got := cliCommitted(ctx, t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: committed %v, want %v", what, got, want)
		}
	}

	// A dry run (the default) shows the new offsets and commits nothing.
	if got := reset("--topic", topic, "--to-earliest"); fmt.Sprint(got) != fmt.Sprint(map[int32][2]int64{0: {4, 0}, 1: {6, 0}}) {
		t.Fatalf("dry run: %v", got)
	}
	check("after a dry run", map[int32]int64{0: 4, 1: 6})
	// --execute commits; --topic T:P limits the partitions; offsets clamp to the log.
	reset("--topic", topic+":0", "--to-offset", "2", "--execute")
	check("--to-offset 2 on partition 0", map[int32]int64{0: 2, 1: 6})
	reset("--all-topics", "--shift-by", "-1", "--execute")
	check("--shift-by -1", map[int32]int64{0: 1, 1: 5})
	reset("--topic", topic, "--to-offset", "100", "--execute")
	check("--to-offset 100 (clamped)", map[int32]int64{0: 10, 1: 6})
	reset("--topic", topic, "--to-datetime", "2000-01-01T00:00:00.000", "--execute")
	check("--to-datetime 2000", map[int32]int64{0: 0, 1: 0})
	reset("--topic", topic, "--to-latest", "--execute")
	check("--to-latest", map[int32]int64{0: 10, 1: 6})
	// Exactly one scenario.
	cliRun(ctx, t, p.Addr, "", 1, "group", "reset-offsets", group, "--topic", topic, "--to-latest", "--shift-by", "1")

	// An active member: describe shows it with its assignment, and
	// reset-offsets refuses (Kafka's rule) and commits nothing.
	member := fzClient(t, p.Addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	fzWaitFor(t, 30*time.Second, "member joined", func() error {
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		member.PollFetches(pollCtx) // nothing to fetch at the committed (latest) offsets
		cancel()
		var described []struct {
			State   string `json:"state"`
			Members []struct {
				ClientID string             `json:"client_id"`
				Assigned map[string][]int32 `json:"assigned"`
			} `json:"members"`
		}
		cliJSON(ctx, t, p.Addr, &described, "group", "describe", group)
		if len(described) != 1 || described[0].State != "Stable" || len(described[0].Members) != 1 {
			return fmt.Errorf("described %+v", described)
		}
		if m := described[0].Members[0]; m.ClientID != "gregor-it-franz" || fmt.Sprint(m.Assigned[topic]) != "[0 1]" {
			return fmt.Errorf("member %+v", m)
		}
		return nil
	})
	_, stderr := cliRun(ctx, t, p.Addr, "", 1, "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
	if !strings.Contains(stderr, "inactive") {
		t.Errorf("reset-offsets with a member: stderr %q", stderr)
	}
	check("refused reset", map[int32]int64{0: 10, 1: 6})
	member.Close() // leaves the group

	// delete: the group is gone.
	fzWaitFor(t, 30*time.Second, "group deleted", func() error {
		out, stderr := cliRunAny(ctx, t, p.Addr, "group", "delete", group, "--json")
		var deleted []struct {
			Group string `json:"group"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(out), &deleted); err != nil || len(deleted) != 1 || deleted[0].Error != "" {
			return fmt.Errorf("delete: %s %s", out, stderr)
		}
		return nil
	})
	cliJSON(ctx, t, p.Addr, &listed, "group", "list")
	for _, g := range listed {
		if g.Group == group {
			t.Errorf("group list after delete still has %+v", g)
		}
	}
	if got := cliCommitted(ctx, t, adm, group, topic); len(got) != 0 {
		t.Errorf("offsets of the deleted group: %v", got)
	}
}

// cliRunAny runs a command and returns its output whatever its exit code.
func cliRunAny(ctx context.Context, t *testing.T, addr string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, gregorBin, args...)
	cmd.Env = append(os.Environ(), "GREGOR_BROKERS="+addr)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	_ = cmd.Run()
	return out.String(), errb.String()
}

func TestAdminCLICluster(t *testing.T) {
	p := startBroker(t, "--node-id", "7")
	defer fzCheckLogs(t, p)
	ctx := testContext(t, time.Minute)
	if controller := cliCheckCluster(ctx, t, p.Addr, fzAdmin(t, p.Addr), map[int32]string{7: p.Addr}); controller != 7 {
		t.Fatalf("cluster describe: controller %d, want 7", controller)
	}
	// No broker there: a clear failure, not a hang.
	cliRun(ctx, t, "127.0.0.1:1", "", 1, "cluster", "describe", "--timeout", "3s")
}

func TestAdminCLIIsolationLevel(t *testing.T) {
	p, ctx, _, topic := cliStart(t, "cli-iso", 1)

	// A committed, an aborted and a committed transaction, then one left
	// open: c0 c1 | a0 a1 (aborted) | c2 | o0 (open).
	txn := fzClient(t, p.Addr, kgo.TransactionalID(topic+"-id"))
	// begin starts a transaction and writes values in it.
	begin := func(values ...string) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		var recs []*kgo.Record
		for _, v := range values {
			recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(v)})
		}
		fzProduceSync(ctx, t, txn, recs...)
	}
	end := func(how kgo.TransactionEndTry) {
		t.Helper()
		if err := txn.EndTransaction(ctx, how); err != nil {
			t.Fatalf("end transaction (commit %v): %v", how, err)
		}
	}
	begin("c0", "c1")
	end(kgo.TryCommit)
	begin("a0", "a1")
	end(kgo.TryAbort)
	begin("c2")
	end(kgo.TryCommit)
	begin("o0") // left open until read_committed has been tried

	consume := func(args ...string) string {
		t.Helper()
		out, _ := cliRun(ctx, t, p.Addr, "", 0, append([]string{"consume", "-t", topic, "-e", "-f", `%s\n`}, args...)...)
		return out
	}
	// read_committed stops at the last stable offset (the open
	// transaction's first record) and skips the aborted records;
	// read_uncommitted, also the default, prints everything.
	if got := consume("--isolation-level", "read_committed"); got != "c0\nc1\nc2\n" {
		t.Errorf("read_committed with a transaction open: %q", got)
	}
	for _, args := range [][]string{{"--isolation-level", "read_uncommitted"}, nil} {
		if got := consume(args...); got != "c0\nc1\na0\na1\nc2\no0\n" {
			t.Errorf("consume %v: %q", args, got)
		}
	}
	// --json follows the same level.
	if got := consume("--isolation-level", "read_committed", "--json"); strings.Count(got, "\n") != 3 || strings.Contains(got, `"a0"`) {
		t.Errorf("read_committed --json: %q", got)
	}
	// Once the open transaction commits, read_committed reaches o0 too.
	end(kgo.TryCommit)
	if got := consume("--isolation-level", "read_committed"); got != "c0\nc1\nc2\no0\n" {
		t.Errorf("read_committed after the commit: %q", got)
	}
	_, stderr := cliRun(ctx, t, p.Addr, "", 1, "consume", "-t", topic, "-e", "--isolation-level", "committed")
	if !strings.Contains(stderr, "read_committed or read_uncommitted") {
		t.Errorf("bad --isolation-level: stderr %q", stderr)
	}
}

func TestAdminCLIResetOffsets(t *testing.T) {
	p, ctx, adm, topic := cliStart(t, "cli-reset", 2)
	group := topic + "-g"

	// Partition 0: five records two hours old, then five a minute old;
	// partition 1: four records two hours old.
	now := time.Now()
	cl := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 10 {
		ts := now.Add(-2 * time.Hour)
		if i >= 5 {
			ts = now.Add(-time.Minute)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Timestamp: ts, Value: []byte(strconv.Itoa(i))})
	}
	for i := range 4 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 1, Timestamp: now.Add(-2 * time.Hour), Value: []byte(strconv.Itoa(i))})
	}
	fzProduceSync(ctx, t, cl, recs...)
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: topic, Partition: 0, At: 3, LeaderEpoch: -1}) // none for partition 1
	if err := adm.CommitAllOffsets(ctx, group, commit); err != nil {
		t.Fatalf("commit: %v", err)
	}

	reset := func(args ...string) map[int32]int64 {
		t.Helper()
		var r struct {
			Executed bool `json:"executed"`
			Offsets  []struct {
				Partition int32  `json:"partition"`
				New       int64  `json:"new_offset"`
				Error     string `json:"error"`
			} `json:"offsets"`
		}
		cliJSON(ctx, t, p.Addr, &r, append([]string{"group", "reset-offsets", group}, args...)...)
		out := map[int32]int64{}
		for _, o := range r.Offsets {
			if o.Error != "" {
				t.Fatalf("reset-offsets %v: partition %d: %s", args, o.Partition, o.Error)
			}
			out[o.Partition] = o.New
		}
		return out
	}
	check := func(what string, want map[int32]int64) {
		t.Helper()
		if got := cliCommitted(ctx, t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: committed %v, want %v", what, got, want)
		}
	}

	// --to-current: the committed offset, or the log end where there is none.
	if got := reset("--topic", topic, "--to-current"); fmt.Sprint(got) != fmt.Sprint(map[int32]int64{0: 3, 1: 4}) {
		t.Fatalf("--to-current dry run: %v", got)
	}
	check("after a dry run", map[int32]int64{0: 3})
	reset("--topic", topic, "--to-current", "--execute")
	check("--to-current", map[int32]int64{0: 3, 1: 4})

	// --by-duration: the first record at or after now minus the
	// duration; the log end where there is none that recent.
	for _, tc := range []struct {
		d    string
		want map[int32]int64
	}{
		{"PT1H", map[int32]int64{0: 5, 1: 4}},
		{"P0DT3H", map[int32]int64{0: 0, 1: 0}},
		{"PT10S", map[int32]int64{0: 10, 1: 4}},
	} {
		reset("--all-topics", "--by-duration", tc.d, "--execute")
		check("--by-duration "+tc.d, tc.want)
	}
	_, stderr := cliRun(ctx, t, p.Addr, "", 1, "group", "reset-offsets", group, "--all-topics", "--by-duration", "10m")
	if !strings.Contains(stderr, "ISO-8601") {
		t.Errorf("--by-duration 10m: stderr %q", stderr)
	}

	// --export prints Kafka's CSV, and commits only with --execute.
	plan, _ := cliRun(ctx, t, p.Addr, "", 0, "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--export")
	if want := fmt.Sprintf("%s,0,0\n%s,1,0\n", topic, topic); plan != want {
		t.Fatalf("--export: %q, want %q", plan, want)
	}
	check("after an --export dry run", map[int32]int64{0: 10, 1: 4})
	saved, _ := cliRun(ctx, t, p.Addr, "", 0, "group", "reset-offsets", group, "--all-topics", "--to-current", "--export", "--execute")
	if want := fmt.Sprintf("%s,0,10\n%s,1,4\n", topic, topic); saved != want {
		t.Fatalf("--to-current --export --execute: %q, want %q", saved, want)
	}

	// --from-file reads a plan back (offsets clamped to the log), and
	// Kafka's group,topic,partition,offset form.
	dir := t.TempDir()
	writePlan := func(name, body string) string {
		t.Helper()
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		return path
	}
	reset("--from-file", writePlan("edited.csv", fmt.Sprintf("%s,0,7\n%s,1,999\n", topic, topic)), "--execute")
	check("--from-file edited", map[int32]int64{0: 7, 1: 4})
	reset("--from-file", writePlan("groups.csv", fmt.Sprintf("other,%s,0,1\n%s,%s,0,2\n", topic, group, topic)), "--execute")
	check("--from-file with groups", map[int32]int64{0: 2, 1: 4})
	reset("--from-file", writePlan("saved.csv", saved), "--execute")
	check("--from-file of an --export", map[int32]int64{0: 10, 1: 4})

	// Refusals: a plan with --topic, a bad plan, --export with --json;
	// nothing committed by any of them.
	for _, args := range [][]string{
		{"--from-file", writePlan("again.csv", saved), "--topic", topic, "--execute"},
		{"--from-file", writePlan("bad.csv", topic+",0\n"), "--execute"},
		{"--from-file", dir + "/missing.csv", "--execute"},
		{"--topic", topic, "--to-earliest", "--export", "--json"},
		{"--topic", topic, "--to-current", "--by-duration", "PT1M"},
	} {
		cliRun(ctx, t, p.Addr, "", 1, append([]string{"group", "reset-offsets", group}, args...)...)
	}
	check("after the refusals", map[int32]int64{0: 10, 1: 4})
}

// cliCheckCluster runs `cluster describe` on addr, as JSON and as a
// table, and checks it against kadm's metadata: the cluster id, the
// controller (returned) and exactly the brokers of want (node → address).
func cliCheckCluster(ctx context.Context, t *testing.T, addr string, adm *kadm.Client, want map[int32]string) int32 {
	t.Helper()
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	var cl struct {
		ClusterID  string `json:"cluster_id"`
		Controller int32  `json:"controller"`
		Brokers    []struct {
			NodeID     int32  `json:"node_id"`
			Host       string `json:"host"`
			Port       int32  `json:"port"`
			Controller bool   `json:"controller"`
		} `json:"brokers"`
	}
	cliJSON(ctx, t, addr, &cl, "cluster", "describe")
	if cl.ClusterID == "" || cl.ClusterID != meta.Cluster || cl.Controller != meta.Controller || want[cl.Controller] == "" || len(cl.Brokers) != len(want) {
		t.Fatalf("cluster describe: %+v; kadm: cluster %q controller %d; want brokers %v", cl, meta.Cluster, meta.Controller, want)
	}
	for _, b := range cl.Brokers {
		if net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))) != want[b.NodeID] || b.Controller != (b.NodeID == meta.Controller) {
			t.Errorf("cluster describe broker %+v; want address %q, controller %d", b, want[b.NodeID], meta.Controller)
		}
	}
	out, _ := cliRun(ctx, t, addr, "", 0, "cluster", "describe")
	if !strings.Contains(out, "ClusterId: "+meta.Cluster) || !strings.Contains(out, fmt.Sprintf("Controller: %d\tBrokers: %d", meta.Controller, len(want))) {
		t.Errorf("cluster describe table:\n%s", out)
	}
	return cl.Controller
}
