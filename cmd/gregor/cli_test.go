package main

import (
	"strings"
	"testing"
	"time"

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
