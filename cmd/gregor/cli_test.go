package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"
)

func TestParseFormat(t *testing.T) {
	r := &kgo.Record{Topic: "t", Partition: 3, Offset: 42, Key: []byte("k1"), Value: []byte("hello"),
		Timestamp: time.UnixMilli(1700000000123), Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}}
	for _, tc := range []struct{ format, want string }{
		{`%s\n`, "hello\n"},
		{`%t/%p/%o %k=%s (%K,%S) @%T [%h] 100%%\t\\\r`, "t/3/42 k1=hello (2,5) @1700000000123 [a=1,b=2] 100%\t\\\r"},
		{`plain`, "plain"},
	} {
		f, err := parseFormat(tc.format)
		if err != nil {
			t.Fatalf("parseFormat(%q): %v", tc.format, err)
		}
		if got := string(f.append(nil, r)); got != tc.want {
			t.Errorf("format %q: %q, want %q", tc.format, got, tc.want)
		}
	}
	// Null key and value: empty, length -1 (kcat's).
	f, _ := parseFormat(`[%k|%s|%K|%S]`)
	if got := string(f.append(nil, &kgo.Record{})); got != "[||-1|-1]" {
		t.Errorf("null record: %q", got)
	}
	for _, bad := range []string{`%`, `%x`, `\`, `\q`} {
		if _, err := parseFormat(bad); err == nil {
			t.Errorf("parseFormat(%q) accepted", bad)
		}
	}
}

func TestResolveOffset(t *testing.T) {
	for _, tc := range []struct {
		spec        string
		start, end  int64
		want        int64
		errExpected bool
	}{
		{"beginning", 5, 20, 5, false},
		{"end", 5, 20, 20, false},
		{"7", 5, 20, 7, false},
		{"2", 5, 20, 5, false},   // before the log start: clamped
		{"99", 5, 20, 20, false}, // past the end: clamped
		{"-3", 5, 20, 17, false},
		{"-30", 5, 20, 5, false},
		{"stored", 5, 20, 0, true},
	} {
		got, err := resolveOffset(tc.spec, tc.start, tc.end)
		if (err != nil) != tc.errExpected || got != tc.want {
			t.Errorf("resolveOffset(%q, %d, %d) = %d, %v; want %d (error %v)", tc.spec, tc.start, tc.end, got, err, tc.want, tc.errExpected)
		}
	}
}

func TestPermuteArgs(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{topicCommand(), groupCommand(), consumeCommand(), produceCommand(), healthCommand()}}
	for _, tc := range []struct{ in, want string }{
		// Flags after the topic move ahead of it; a value that looks like a flag stays with its flag.
		{"gregor topic alter T --set a=1 --json", "gregor topic alter --set a=1 --json -- T"},
		{"gregor group reset-offsets G --shift-by -2 --execute -t T", "gregor group reset-offsets --shift-by -2 --execute -t T -- G"},
		{"gregor consume -t T -o -5 -e", "gregor consume -t T -o -5 -e"},
		{"gregor topic create --partitions=3 T", "gregor topic create --partitions=3 -- T"},
		{"gregor consume -t T -c10 -o-5 -e", "gregor consume -t T -c 10 -o -5 -e"},
		{"gregor produce -t T -K: -p1", "gregor produce -t T -K : -p 1"},
		{"gregor topic delete -- -odd-name", "gregor topic delete -- -odd-name"},
		// Not an admin command, or not a leaf: untouched.
		{"gregor health --timeout 1s", "gregor health --timeout 1s"},
		{"gregor topic", "gregor topic"},
	} {
		got := strings.Join(permuteArgs(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("permuteArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseDatetime(t *testing.T) {
	for _, s := range []string{"2026-01-02T03:04:05.678", "2026-01-02T03:04:05.678Z", "2026-01-02T04:04:05.678+01:00"} {
		got, err := parseDatetime(s)
		if err != nil {
			t.Fatalf("parseDatetime(%q): %v", s, err)
		}
		if want := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC); !got.Equal(want) {
			t.Errorf("parseDatetime(%q) = %v, want %v", s, got, want)
		}
	}
	if _, err := parseDatetime("yesterday"); err == nil {
		t.Error("parseDatetime accepted yesterday")
	}
}

func TestParseISODuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"PT10M", 10 * time.Minute},
		{"P1DT2H", 26 * time.Hour},
		{"P2D", 48 * time.Hour},
		{"PT1H30M15S", time.Hour + 30*time.Minute + 15*time.Second},
		{"PT1.5S", 1500 * time.Millisecond},
		{"PT0,000000001S", time.Nanosecond},
		{"pt10m", 10 * time.Minute},
		{"-PT1H", -time.Hour},
		{"PT-1.5S", -1500 * time.Millisecond},
		{"P1DT-1H", 23 * time.Hour},
		{"-P-1D", 24 * time.Hour},
		{"+PT+2M", 2 * time.Minute},
		{"PT0S", 0},
	} {
		got, err := parseISODuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseISODuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "P", "PT", "P1DT", "10m", "PT10", "P1H", "PT1D", "P1W", "P1Y", "PT1.1234567890S", "PT1M2H", " PT1M", "P9999999DT1S", "PT9223372037S"} {
		if d, err := parseISODuration(bad); err == nil {
			t.Errorf("parseISODuration(%q) accepted: %v", bad, d)
		}
	}
}

func TestParseResetPlan(t *testing.T) {
	got, err := parseResetPlan(strings.NewReader("orders,0,12\n orders , 1 , 7 \n\nother,3,0\n"), "g")
	if err != nil {
		t.Fatalf("three-field plan: %v", err)
	}
	if want := map[string]map[int32]int64{"orders": {0: 12, 1: 7}, "other": {3: 0}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("three-field plan: %v, want %v", got, want)
	}
	// Kafka's several-group form: only the named group's lines count.
	got, err = parseResetPlan(strings.NewReader("g,orders,0,5\nh,orders,0,9\ng,orders,2,1"), "g")
	if err != nil || fmt.Sprint(got) != fmt.Sprint(map[string]map[int32]int64{"orders": {0: 5, 2: 1}}) {
		t.Errorf("four-field plan: %v, %v", got, err)
	}
	for _, tc := range []struct{ in, errHas string }{
		{"", "no offsets"},
		{"\n  \n", "no offsets"},
		{"h,orders,0,1\n", "no reset plan for group g"},
		{"orders,0\n", "line 1"},
		{"orders,0,1,2,3\n", "line 1"},
		{"orders,0,1\ng,orders,1,1\n", "line 2: 4 fields after lines of 3"},
		{"orders,x,1\n", "partition number"},
		{"orders,-1,1\n", "partition number"},
		{"orders,99999999999,1\n", "partition number"},
		{",0,1\n", "partition number"},
		{"orders,0,ten\n", "bad offset"},
		{"orders,0,1\norders,0,2\n", "line 2: orders-0 listed twice"},
	} {
		if _, err := parseResetPlan(strings.NewReader(tc.in), "g"); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("parseResetPlan(%q) error %v, want one with %q", tc.in, err, tc.errHas)
		}
	}
}

func TestResetTo(t *testing.T) {
	lo := func(o int64) kadm.ListedOffsets {
		return kadm.ListedOffsets{"t": {0: {Topic: "t", Partition: 0, Offset: o}}}
	}
	starts, ends := lo(10), lo(50)
	for _, tc := range []struct {
		spec    resetSpec
		current int64
		byTime  kadm.ListedOffsets
		want    int64
		err     bool
	}{
		{spec: resetSpec{scenario: "to-earliest"}, current: 30, want: 10},
		{spec: resetSpec{scenario: "to-latest"}, current: 30, want: 50},
		{spec: resetSpec{scenario: "to-offset", offset: 5}, current: 30, want: 10},
		{spec: resetSpec{scenario: "to-offset", offset: 99}, current: 30, want: 50},
		{spec: resetSpec{scenario: "shift-by", shift: -5}, current: 30, want: 25},
		{spec: resetSpec{scenario: "shift-by", shift: 5}, current: -1, err: true},
		{spec: resetSpec{scenario: "by-duration"}, byTime: lo(42), want: 42},
		{spec: resetSpec{scenario: "by-duration"}, byTime: lo(-1), want: 50}, // nothing that recent: the log end
		{spec: resetSpec{scenario: "to-datetime"}, byTime: kadm.ListedOffsets{}, err: true},
		// Kafka keeps the committed offset as it is, even outside the log; none committed is the log end.
		{spec: resetSpec{scenario: "to-current"}, current: 3, want: 3},
		{spec: resetSpec{scenario: "to-current"}, current: -1, want: 50},
		{spec: resetSpec{scenario: "from-file", plan: map[string]map[int32]int64{"t": {0: 20}}}, current: 30, want: 20},
		{spec: resetSpec{scenario: "from-file", plan: map[string]map[int32]int64{"t": {0: 70}}}, current: 30, want: 50},
	} {
		got, err := resetTo(tc.spec, "t", 0, tc.current, starts, ends, tc.byTime)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("resetTo(%+v, current %d) = %d, %v; want %d (error %v)", tc.spec, tc.current, got, err, tc.want, tc.err)
		}
	}
	if _, err := resetTo(resetSpec{scenario: "to-earliest"}, "t", 1, 0, starts, ends, nil); err == nil {
		t.Error("resetTo of a partition without offsets succeeded")
	}
}
