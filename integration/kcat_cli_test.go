package integration

// kcat (librdkafka's command-line client) against Gregor: metadata listing,
// keyed produce and consume with every compression codec, JSON output,
// relative offsets, single partitions and headers.
//
// The tests skip when kcat is not installed, unless GREGOR_REQUIRE_KCAT is
// set (`make integration` sets it), in which case a missing kcat fails them
// so CI cannot pass by skipping.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// kcatBin returns kcat's path, or skips or fails the test when it is missing.
func kcatBin(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err == nil {
		return path
	}
	if os.Getenv("GREGOR_REQUIRE_KCAT") != "" {
		t.Fatalf("GREGOR_REQUIRE_KCAT is set but kcat is not on PATH (%v); install it (apt-get install kcat)", err)
	}
	t.Skip("kcat is not on PATH; set GREGOR_REQUIRE_KCAT=1 to make this a failure")
	return ""
}

// kcatRun runs kcat with args and stdin under a 30s limit and returns its
// stdout and stderr. Any failure, including the limit, fails the test with
// both outputs, since librdkafka explains itself on stderr.
func kcatRun(ctx context.Context, t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	bin := kcatBin(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (killed: %v)", err, ctx.Err())
	}
	if err != nil {
		t.Fatalf("kcat %s: %v\n--- stderr:\n%s\n--- stdout:\n%s", strings.Join(args, " "), err, errb.String(), out.String())
	}
	if strings.Contains(errb.String(), "Delivery failed") {
		t.Fatalf("kcat %s reported failed deliveries:\n%s", strings.Join(args, " "), errb.String())
	}
	return out.String(), errb.String()
}

// kcatTopic is a topic name unique to the running (sub)test.
func kcatTopic(t *testing.T, prefix string) string {
	t.Helper()
	return kafkagoTopic(t, prefix)
}

// kcatProduce writes lines ("key:value" each) with -K: to topic, optionally
// to one partition and with extra flags.
func kcatProduce(ctx context.Context, t *testing.T, addr, topic string, lines []string, extra ...string) {
	t.Helper()
	args := append([]string{"-P", "-b", addr, "-t", topic, "-K:",
		"-X", "linger.ms=5",
		"-X", "message.timeout.ms=20000",
	}, extra...)
	kcatRun(ctx, t, strings.Join(lines, "\n")+"\n", args...)
}

// kcatKeyed makes n "key:value" lines; values contain colons, spaces and
// non-ASCII so that only the first colon separates the key.
func kcatKeyed(n int, tag string) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("k%03d:%s value %d: grüße %s", i%17, tag, i, strings.Repeat("x", i%50))
	}
	return lines
}

// kcatAsFormat turns "key:value" lines into the "key=value" lines kcat's
// -f '%k=%s\n' prints.
func kcatAsFormat(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.Replace(l, ":", "=", 1)
	}
	return out
}

// kcatLines splits kcat output into lines, without the final empty one.
func kcatLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func kcatCompareLines(t *testing.T, what string, got, want []string, stderr string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d lines, want %d\n--- first lines got: %q\n--- kcat stderr:\n%s", what, len(got), len(want), kcatHead(got, 5), stderr)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: line %d = %q, want %q\n--- kcat stderr:\n%s", what, i, got[i], want[i], stderr)
		}
	}
}

func kcatHead(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// kcatMessage is one line of kcat -C -J.
type kcatMessage struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	TsType    string   `json:"tstype"`
	Ts        int64    `json:"ts"`
	Broker    int32    `json:"broker"`
	Headers   []string `json:"headers"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

func kcatParseJSON(t *testing.T, out, stderr string) []kcatMessage {
	t.Helper()
	var msgs []kcatMessage
	for i, line := range kcatLines(out) {
		var m kcatMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("kcat -J line %d %q: %v\n--- stderr:\n%s", i, line, err, stderr)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// kcatMetadata is kcat -L -J output.
type kcatMetadata struct {
	OriginatingBroker struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"originating_broker"`
	ControllerID int32 `json:"controllerid"`
	Brokers      []struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Error      string `json:"error"`
		Partitions []struct {
			Partition int32  `json:"partition"`
			Error     string `json:"error"`
			Leader    int32  `json:"leader"`
			Replicas  []struct {
				ID int32 `json:"id"`
			} `json:"replicas"`
			ISRs []struct {
				ID int32 `json:"id"`
			} `json:"isrs"`
		} `json:"partitions"`
	} `json:"topics"`
}

// TestKcatMetadata lists the cluster with kcat -L, as text and as JSON.
func TestKcatMetadata(t *testing.T) {
	kcatBin(t)
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	topic := kcatTopic(t, "kcat-meta")
	kafkagoCreateTopic(ctx, t, b.Addr, topic, 3)

	out, stderr := kcatRun(ctx, t, "", "-b", b.Addr, "-L")
	for _, want := range []string{
		"1 brokers:",
		fmt.Sprintf("broker 1 at %s (controller)", b.Addr),
		fmt.Sprintf("topic %q with 3 partitions:", topic),
		"partition 0, leader 1, replicas: 1, isrs: 1",
		"partition 2, leader 1, replicas: 1, isrs: 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kcat -L output lacks %q:\n%s\n--- stderr:\n%s", want, out, stderr)
		}
	}

	out, stderr = kcatRun(ctx, t, "", "-b", b.Addr, "-L", "-J", "-t", topic)
	var md kcatMetadata
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J: %v\n%s\n--- stderr:\n%s", err, out, stderr)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 1 || md.Brokers[0].Name != b.Addr || md.ControllerID != 1 {
		t.Errorf("kcat -L -J brokers %+v controller %d, want [1 %s] and 1", md.Brokers, md.ControllerID, b.Addr)
	}
	if len(md.Topics) != 1 || md.Topics[0].Topic != topic || md.Topics[0].Error != "" || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("kcat -L -J -t %s topics: %+v", topic, md.Topics)
	}
	for i, p := range md.Topics[0].Partitions {
		if p.Partition != int32(i) || p.Leader != 1 || p.Error != "" || len(p.Replicas) != 1 || len(p.ISRs) != 1 {
			t.Errorf("kcat -L -J partition %d: %+v", i, p)
		}
	}
}

// TestKcatProduceConsume produces keyed lines with each compression codec
// (-z) and reads them back with -f, then checks JSON output (-J), relative
// offsets (-o -2) and offset plus count (-o N -c M) on partition 0.
func TestKcatProduceConsume(t *testing.T) {
	kcatBin(t)
	b := startBroker(t)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			ctx := testContext(t, 90*time.Second)
			topic := kcatTopic(t, "kcat-rt")
			// Created on first use by the producer's Metadata request
			// (auto.create.topics.enable, num.partitions 1).
			lines := kcatKeyed(300, codec)
			kcatProduce(ctx, t, b.Addr, topic, lines, "-z", codec)

			out, stderr := kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", topic, "-o", "beginning", "-e", "-f", `%k=%s\n`)
			kcatCompareLines(t, "kcat -C -f %k=%s", kcatLines(out), kcatAsFormat(lines), stderr)

			// -J: offsets 0..n-1 on partition 0, CreateTime timestamps.
			out, stderr = kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", topic, "-o", "beginning", "-e", "-J")
			msgs := kcatParseJSON(t, out, stderr)
			if len(msgs) != len(lines) {
				t.Fatalf("kcat -J: %d messages, want %d\n--- stderr:\n%s", len(msgs), len(lines), stderr)
			}
			now := time.Now()
			for i, m := range msgs {
				k, v, _ := strings.Cut(lines[i], ":")
				if m.Topic != topic || m.Partition != 0 || m.Offset != int64(i) || m.Key == nil || *m.Key != k || m.Payload == nil || *m.Payload != v {
					t.Fatalf("kcat -J message %d = %+v (key %s, payload %s); want %s/0 offset %d key %q payload %q",
						i, m, strOrNil(m.Key), strOrNil(m.Payload), topic, i, k, v)
				}
				ts := time.UnixMilli(m.Ts)
				if m.TsType != "create" || ts.Before(now.Add(-5*time.Minute)) || ts.After(now.Add(time.Minute)) {
					t.Fatalf("kcat -J message %d: tstype %q ts %v, want create and about now (%v)", i, m.TsType, ts, now)
				}
			}

			// Two from the end of partition 0.
			out, stderr = kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", topic, "-p", "0", "-o", "-2", "-e", "-f", `%p %o %k=%s\n`)
			n := len(lines)
			want := []string{
				fmt.Sprintf("0 %d %s", n-2, kcatAsFormat(lines[n-2:])[0]),
				fmt.Sprintf("0 %d %s", n-1, kcatAsFormat(lines[n-1:])[0]),
			}
			kcatCompareLines(t, "kcat -C -p 0 -o -2", kcatLines(out), want, stderr)

			// From an absolute offset inside a batch, a fixed count.
			out, stderr = kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", topic, "-p", "0", "-o", "123", "-c", "5", "-f", `%o %k=%s\n`)
			want = nil
			for i := 123; i < 128; i++ {
				want = append(want, fmt.Sprintf("%d %s", i, kcatAsFormat(lines[i:])[0]))
			}
			kcatCompareLines(t, "kcat -C -p 0 -o 123 -c 5", kcatLines(out), want, stderr)
		})
	}
}

func strOrNil(s *string) string {
	if s == nil {
		return "<null>"
	}
	return fmt.Sprintf("%q", *s)
}

// TestKcatPartitions produces to chosen partitions with -p and consumes one
// partition with -p and all partitions as JSON, and checks message headers
// set with -H and a null key.
func TestKcatPartitions(t *testing.T) {
	kcatBin(t)
	b := startBroker(t)
	ctx := testContext(t, 90*time.Second)
	topic := kcatTopic(t, "kcat-parts")
	kafkagoCreateTopic(ctx, t, b.Addr, topic, 3)

	perPart := map[int32][]string{}
	for p := int32(0); p < 3; p++ {
		perPart[p] = kcatKeyed(20*int(p+1), fmt.Sprintf("p%d", p))
		kcatProduce(ctx, t, b.Addr, topic, perPart[p], "-p", fmt.Sprint(p), "-z", "lz4")
	}

	out, stderr := kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", topic, "-p", "1", "-o", "beginning", "-e", "-f", `%k=%s\n`)
	kcatCompareLines(t, "kcat -C -p 1", kcatLines(out), kcatAsFormat(perPart[1]), stderr)

	out, stderr = kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", topic, "-o", "beginning", "-e", "-J")
	got := map[int32][]kcatMessage{}
	for _, m := range kcatParseJSON(t, out, stderr) {
		got[m.Partition] = append(got[m.Partition], m)
	}
	for p := int32(0); p < 3; p++ {
		if len(got[p]) != len(perPart[p]) {
			t.Fatalf("partition %d: %d messages in kcat -J of all partitions, want %d\n--- stderr:\n%s", p, len(got[p]), len(perPart[p]), stderr)
		}
		for i, m := range got[p] {
			k, v, _ := strings.Cut(perPart[p][i], ":")
			if m.Offset != int64(i) || m.Key == nil || *m.Key != k || m.Payload == nil || *m.Payload != v {
				t.Fatalf("partition %d message %d: offset %d key %s payload %s; want %d %q %q", p, i, m.Offset, strOrNil(m.Key), strOrNil(m.Payload), i, k, v)
			}
		}
	}

	// Headers and a message without a key (no -K).
	htopic := kcatTopic(t, "kcat-headers")
	kcatRun(ctx, t, "no key here\n", "-P", "-b", b.Addr, "-t", htopic, "-H", "trace=abc-123", "-H", "empty=", "-X", "message.timeout.ms=20000")
	out, stderr = kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", htopic, "-o", "beginning", "-e", "-J")
	msgs := kcatParseJSON(t, out, stderr)
	if len(msgs) != 1 {
		t.Fatalf("headers topic: %d messages, want 1\n--- stderr:\n%s", len(msgs), stderr)
	}
	m := msgs[0]
	if m.Key != nil || m.Payload == nil || *m.Payload != "no key here" {
		t.Errorf("message without key: key %s payload %s, want null and %q", strOrNil(m.Key), strOrNil(m.Payload), "no key here")
	}
	if want := []string{"trace", "abc-123", "empty", ""}; strings.Join(m.Headers, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("headers %q, want %q", m.Headers, want)
	}

	// message.timestamp.type=LogAppendTime: kcat reports the broker's time.
	ltopic := kcatTopic(t, "kcat-logappend")
	resp, err := kafkagoClient(b.Addr).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: ltopic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "message.timestamp.type", ConfigValue: "LogAppendTime"}},
	}}})
	if err != nil || resp.Errors[ltopic] != nil {
		t.Fatalf("CreateTopics %s with LogAppendTime: %v %v", ltopic, err, resp.Errors)
	}
	before := time.Now().Add(-time.Second)
	kcatProduce(ctx, t, b.Addr, ltopic, []string{"a:1", "b:2"})
	after := time.Now().Add(time.Second)
	out, stderr = kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", ltopic, "-o", "beginning", "-e", "-J")
	msgs = kcatParseJSON(t, out, stderr)
	if len(msgs) != 2 {
		t.Fatalf("LogAppendTime topic: %d messages, want 2\n--- stderr:\n%s", len(msgs), stderr)
	}
	for _, m := range msgs {
		ts := time.UnixMilli(m.Ts)
		if m.TsType != "logappend" || ts.Before(before) || ts.After(after) {
			t.Errorf("LogAppendTime topic offset %d: tstype %q ts %v, want logappend in [%v, %v]", m.Offset, m.TsType, ts, before, after)
		}
	}
}

// TestKcatConsumeEmptyAndMissing consumes an empty topic to its end (kcat -e
// exits at once with nothing) and asks for a partition that does not exist.
func TestKcatConsumeEmptyAndMissing(t *testing.T) {
	bin := kcatBin(t)
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	topic := kcatTopic(t, "kcat-empty")
	kafkagoCreateTopic(ctx, t, b.Addr, topic, 1)

	out, stderr := kcatRun(ctx, t, "", "-C", "-b", b.Addr, "-t", topic, "-o", "beginning", "-e", "-f", `%s\n`)
	if out != "" {
		t.Errorf("empty topic: kcat printed %q\n--- stderr:\n%s", out, stderr)
	}

	// Partition 5 does not exist: kcat must fail rather than wait forever.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "-C", "-b", b.Addr, "-t", topic, "-p", "5", "-o", "beginning", "-e")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var exitErr *exec.ExitError
	if cctx.Err() != nil || !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
		t.Errorf("kcat -p 5 on a 1-partition topic: err %v (ctx %v), want a non-zero exit\n--- stderr:\n%s", err, cctx.Err(), errb.String())
	}
	if msg := errb.String(); !strings.Contains(msg, "partition 5 does not exist") && !strings.Contains(msg, "Unknown partition") {
		t.Errorf("kcat -p 5 on a 1-partition topic: stderr does not say the partition is unknown:\n%s", errb.String())
	}
}
