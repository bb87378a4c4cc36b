package main

// gregor group reset-offsets, as kafka-consumer-groups.sh --reset-offsets:
// one scenario (--to-earliest, --to-latest, --to-offset, --shift-by,
// --to-datetime, --by-duration, --to-current, --from-file), a dry run
// unless --execute, --export to print the plan as CSV, and a refusal when
// the group has active members. New offsets are clamped to the
// partition's [log start, log end] as Kafka's tool does, except
// --to-current, which Kafka keeps as committed.
//
// The CSV of --export and --from-file is Kafka's: one line a partition,
// no header,
//
//	orders,0,1200
//	orders,1,1187
//
// and --from-file also reads Kafka's several-group form
// group,topic,partition,offset, using the lines of the group named.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/big"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/urfave/cli/v2"
)

// resetScenarios are the flags of which reset-offsets takes exactly one.
var resetScenarios = []string{"to-earliest", "to-latest", "to-offset", "shift-by", "to-datetime", "by-duration", "to-current", "from-file"}

func resetOffsetsCommand() *cli.Command {
	return &cli.Command{
		Name:      "reset-offsets",
		Usage:     "move a group's committed offsets (a dry run unless --execute; the group must have no active members)",
		ArgsUsage: "GROUP",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "topic", Aliases: []string{"t"}, Usage: "topic to reset, as TOPIC or TOPIC:0,1,2 (repeatable)"},
			&cli.BoolFlag{Name: "all-topics", Usage: "reset every topic the group has committed offsets for"},
			&cli.BoolFlag{Name: "to-earliest", Usage: "to the log start offset"},
			&cli.BoolFlag{Name: "to-latest", Usage: "to the log end offset"},
			&cli.Int64Flag{Name: "to-offset", Usage: "to this offset (clamped to the log's range)"},
			&cli.Int64Flag{Name: "shift-by", Usage: "move the committed offset by this much, + or -"},
			&cli.StringFlag{Name: "to-datetime", Usage: "to the first offset at or after this time (RFC 3339, or Kafka's YYYY-MM-DDTHH:mm:SS.sss in UTC)"},
			&cli.StringFlag{Name: "by-duration", Usage: "to the first offset at or after now minus this ISO-8601 duration (PT10M, P1DT2H)"},
			&cli.BoolFlag{Name: "to-current", Usage: "to the committed offset (the log end where none is committed)"},
			&cli.StringFlag{Name: "from-file", Usage: "to the offsets in this CSV file of topic,partition,offset lines (what --export prints); it names the partitions, so no --topic"},
			&cli.BoolFlag{Name: "export", Usage: "print the new offsets as topic,partition,offset CSV instead of a table"},
			&cli.BoolFlag{Name: "execute", Usage: "commit the new offsets (without it, only show them)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "only show the new offsets (the default)"},
		},
		Action: adminAction(groupResetOffsets),
	}
}

// resetOffset is one partition in `group reset-offsets --json`.
type resetOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current_offset"` // -1: none committed
	New       int64  `json:"new_offset"`
	Error     string `json:"error,omitempty"`
}

// resetOut is the output of `group reset-offsets --json`.
type resetOut struct {
	Group    string        `json:"group"`
	Executed bool          `json:"executed"`
	Offsets  []resetOffset `json:"offsets"`
}

// resetSpec is a parsed scenario: what resetTo needs besides the
// partition's offsets.
type resetSpec struct {
	scenario string                     // one of resetScenarios
	offset   int64                      // to-offset
	shift    int64                      // shift-by
	at       time.Time                  // to-datetime, by-duration
	plan     map[string]map[int32]int64 // from-file: topic → partition → offset
}

// parseResetSpec reads the one scenario flag given; now is the time
// --by-duration counts back from.
func parseResetSpec(c *cli.Context, group string, now time.Time) (resetSpec, error) {
	var given []string
	for _, f := range resetScenarios {
		if c.IsSet(f) {
			given = append(given, f)
		}
	}
	if len(given) != 1 {
		return resetSpec{}, fmt.Errorf("group reset-offsets: give exactly one of --%s (got %d)", strings.Join(resetScenarios, ", --"), len(given))
	}
	spec := resetSpec{scenario: given[0], offset: c.Int64("to-offset"), shift: c.Int64("shift-by")}
	var err error
	switch spec.scenario {
	case "to-datetime":
		spec.at, err = parseDatetime(c.String("to-datetime"))
	case "by-duration":
		var d time.Duration
		if d, err = parseISODuration(c.String("by-duration")); err == nil {
			spec.at = now.Add(-d)
		}
	case "from-file":
		spec.plan, err = readResetPlan(c.String("from-file"), group)
	}
	return spec, err
}

// parseDatetime reads --to-datetime: RFC 3339, or Kafka's
// YYYY-MM-DDTHH:mm:SS.sss (UTC when no zone is given).
func parseDatetime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.000", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--to-datetime %q: want RFC 3339 or YYYY-MM-DDTHH:mm:SS.sss", s)
}

// isoDuration is the grammar of Java's Duration.parse, which
// kafka-consumer-groups.sh reads --by-duration with: an optional sign,
// P, days, then T and hours, minutes and seconds (with up to nine
// fraction digits), each part signed, at least one part, letters in
// either case.
var isoDuration = regexp.MustCompile(`^(?i)([-+]?)P(?:([-+]?[0-9]+)D)?(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?$`)

// parseISODuration reads an ISO-8601 duration as Java's Duration.parse
// does: PT10M, P1DT2H, PT1.5S, -PT1H.
func parseISODuration(s string) (time.Duration, error) {
	m := isoDuration.FindStringSubmatch(s)
	if m == nil || (m[2] == "" && m[3] == "") || strings.EqualFold(m[3], "T") {
		return 0, fmt.Errorf("--by-duration %q: want an ISO-8601 duration such as PT10M or P1DT2H", s)
	}
	total := new(big.Int)
	// part adds n units of unit (a decimal string, possibly signed).
	part := func(n string, unit time.Duration) {
		if n == "" {
			return
		}
		v, _ := new(big.Int).SetString(strings.TrimPrefix(n, "+"), 10) // the regexp admits only digits
		total.Add(total, v.Mul(v, big.NewInt(int64(unit))))
	}
	part(m[2], 24*time.Hour)
	part(m[4], time.Hour)
	part(m[5], time.Minute)
	part(m[6], time.Second)
	if frac := m[7]; frac != "" {
		nanos := frac + strings.Repeat("0", 9-len(frac))
		if strings.HasPrefix(m[6], "-") {
			nanos = "-" + nanos // the fraction has the seconds' sign: PT-1.5S
		}
		part(nanos, time.Nanosecond)
	}
	if m[1] == "-" {
		total.Neg(total)
	}
	if !total.IsInt64() {
		return 0, fmt.Errorf("--by-duration %q: too long", s)
	}
	return time.Duration(total.Int64()), nil
}

// readResetPlan reads --from-file.
func readResetPlan(path, group string) (map[string]map[int32]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--from-file: %w", err)
	}
	defer f.Close()
	plan, err := parseResetPlan(f, group)
	if err != nil {
		return nil, fmt.Errorf("--from-file %s: %w", path, err)
	}
	return plan, nil
}

// parseResetPlan parses Kafka's reset-plan CSV: topic,partition,offset
// lines, or group,topic,partition,offset lines of which those of group
// are kept. Blank lines are skipped; a partition listed twice, a mix of
// the two forms or a plan with nothing for group are errors.
func parseResetPlan(r io.Reader, group string) (map[string]map[int32]int64, error) {
	plan := map[string]map[int32]int64{}
	sc := bufio.NewScanner(r)
	width, lineNo, otherGroups := 0, 0, 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		fields := strings.Split(line, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if len(fields) != 3 && len(fields) != 4 {
			return nil, fmt.Errorf("line %d: %q: want topic,partition,offset or group,topic,partition,offset", lineNo, line)
		}
		if width == 0 {
			width = len(fields)
		} else if len(fields) != width {
			return nil, fmt.Errorf("line %d: %d fields after lines of %d", lineNo, len(fields), width)
		}
		if width == 4 {
			if fields[0] != group {
				otherGroups++
				continue
			}
			fields = fields[1:]
		}
		topic := fields[0]
		p, err := strconv.ParseInt(fields[1], 10, 32)
		if topic == "" || err != nil || p < 0 {
			return nil, fmt.Errorf("line %d: %q: want a topic and a partition number", lineNo, line)
		}
		offset, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: bad offset %q", lineNo, line, fields[2])
		}
		if _, dup := plan[topic][int32(p)]; dup {
			return nil, fmt.Errorf("line %d: %s-%d listed twice", lineNo, topic, p)
		}
		if plan[topic] == nil {
			plan[topic] = map[int32]int64{}
		}
		plan[topic][int32(p)] = offset
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(plan) == 0 {
		if otherGroups > 0 {
			return nil, fmt.Errorf("no reset plan for group %s (only for others)", group)
		}
		return nil, fmt.Errorf("no offsets")
	}
	return plan, nil
}

// resetTargets is topic → partitions to reset (nil: every partition),
// from --from-file's plan, or --topic or --all-topics.
func resetTargets(c *cli.Context, spec resetSpec, committed kadm.OffsetResponses) (map[string][]int32, error) {
	out := map[string][]int32{}
	if spec.plan != nil {
		if c.Bool("all-topics") || len(c.StringSlice("topic")) > 0 {
			return nil, fmt.Errorf("group reset-offsets: --from-file names the partitions; no --topic or --all-topics with it")
		}
		for t, ps := range spec.plan {
			for p := range ps {
				out[t] = append(out[t], p)
			}
			sort.Slice(out[t], func(i, j int) bool { return out[t][i] < out[t][j] })
		}
		return out, nil
	}
	if c.Bool("all-topics") == (len(c.StringSlice("topic")) > 0) {
		return nil, fmt.Errorf("group reset-offsets: give --topic or --all-topics (one of them)")
	}
	if c.Bool("all-topics") {
		for t := range committed {
			out[t] = nil
		}
		return out, nil
	}
	for _, spec := range c.StringSlice("topic") {
		topic, parts, hasParts := strings.Cut(spec, ":")
		if topic == "" {
			return nil, fmt.Errorf("--topic %q: no topic name", spec)
		}
		if !hasParts {
			out[topic] = nil
			continue
		}
		for _, p := range strings.Split(parts, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("--topic %q: bad partition %q", spec, p)
			}
			out[topic] = append(out[topic], int32(n))
		}
	}
	return out, nil
}

func groupResetOffsets(ctx context.Context, c *cli.Context, adm *kadm.Client) error {
	if c.NArg() != 1 {
		return fmt.Errorf("group reset-offsets: name one group")
	}
	group := c.Args().First()
	spec, err := parseResetSpec(c, group, time.Now())
	if err != nil {
		return err
	}
	if c.Bool("execute") && c.Bool("dry-run") {
		return fmt.Errorf("group reset-offsets: --execute and --dry-run are exclusive")
	}
	if c.Bool("export") && c.Bool("json") {
		return fmt.Errorf("group reset-offsets: --export and --json are exclusive")
	}

	// Kafka's rule: offsets move only while nobody consumes them.
	progress(c, "describing group %s", group)
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	if d := described[group]; d.Err != nil {
		return fmt.Errorf("describe group %s: %s", group, errText(d.Err, d.ErrMessage))
	} else if len(d.Members) > 0 || (d.State != "Empty" && d.State != "Dead" && d.State != "") {
		return cli.Exit(fmt.Sprintf("gregor: assignments can only be reset if the group '%s' is inactive, but the current state is %s (%d members)", group, d.State, len(d.Members)), 1)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return fmt.Errorf("fetch offsets of %s: %w", group, err)
	}
	targets, err := resetTargets(c, spec, committed)
	if err != nil {
		return err
	}
	topics := make([]string, 0, len(targets))
	for t := range targets {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	if len(topics) == 0 {
		return fmt.Errorf("group reset-offsets: group %s has no committed offsets to reset", group)
	}
	progress(c, "listing offsets of %d topics", len(topics))
	meta, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	starts, ends, err := logOffsets(ctx, adm, topics...)
	if err != nil {
		return err
	}
	var byTime kadm.ListedOffsets
	if !spec.at.IsZero() {
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, spec.at.UnixMilli(), topics...); err != nil {
			return fmt.Errorf("list offsets after %s: %w", spec.at.Format(time.RFC3339), err)
		}
	}

	res := resetOut{Group: group, Offsets: []resetOffset{}}
	var commit kadm.Offsets
	failed := 0
	for _, topic := range topics {
		td, err := topicDetail(meta, topic)
		if err != nil {
			return fmt.Errorf("group reset-offsets: %w", err)
		}
		parts := targets[topic]
		if parts == nil {
			for _, p := range td.Partitions.Sorted() {
				parts = append(parts, p.Partition)
			}
		}
		for _, p := range parts {
			ro := resetOffset{Topic: topic, Partition: p, Current: -1, New: -1}
			if o, ok := committed.Lookup(topic, p); ok && o.Err == nil {
				ro.Current = o.At
			}
			newOff, err := resetTo(spec, topic, p, ro.Current, starts, ends, byTime)
			if err != nil {
				ro.Error = err.Error()
				failed++
			} else {
				ro.New = newOff
				commit.Add(kadm.Offset{Topic: topic, Partition: p, At: newOff, LeaderEpoch: -1})
			}
			res.Offsets = append(res.Offsets, ro)
		}
	}
	if failed > 0 {
		if c.Bool("export") {
			resetTable(c.App.ErrWriter, res) // the errors, not a plan to save
		} else {
			printResetOut(c, res)
		}
		return cli.Exit(fmt.Sprintf("gregor: %d partitions cannot be reset; nothing committed", failed), 1)
	}
	if c.Bool("execute") {
		progress(c, "committing %d offsets for group %s", len(res.Offsets), group)
		resps, err := adm.CommitOffsets(ctx, group, commit)
		if err == nil {
			err = resps.Error()
		}
		if err != nil {
			return fmt.Errorf("commit offsets of %s: %w", group, err)
		}
		res.Executed = true
		progress(c, "committed %d offsets", len(res.Offsets))
	} else {
		progress(c, "dry run: nothing committed; add --execute to apply")
	}
	if c.Bool("export") {
		return exportResetPlan(c.App.Writer, res)
	}
	return printResetOut(c, res)
}

// resetTo is a partition's new offset under spec, clamped to [log start,
// log end] as Kafka's tool does (--to-current excepted, as in Kafka).
func resetTo(spec resetSpec, topic string, p int32, current int64, starts, ends, byTime kadm.ListedOffsets) (int64, error) {
	s, ok := starts.Lookup(topic, p)
	if !ok || s.Err != nil {
		return 0, fmt.Errorf("no log start offset: %v", s.Err)
	}
	e, ok := ends.Lookup(topic, p)
	if !ok || e.Err != nil {
		return 0, fmt.Errorf("no log end offset: %v", e.Err)
	}
	var want int64
	switch spec.scenario {
	case "to-earliest":
		want = s.Offset
	case "to-latest":
		want = e.Offset
	case "to-offset":
		want = spec.offset
	case "shift-by":
		if current < 0 {
			return 0, fmt.Errorf("cannot shift: no committed offset")
		}
		want = current + spec.shift
	case "to-datetime", "by-duration":
		t, ok := byTime.Lookup(topic, p)
		if !ok || t.Err != nil {
			return 0, fmt.Errorf("no offset for the time: %v", t.Err)
		}
		want = t.Offset
		if want < 0 { // no record at or after the time: the log end, as Kafka
			want = e.Offset
		}
	case "to-current":
		if current >= 0 {
			return current, nil
		}
		return e.Offset, nil
	case "from-file":
		want = spec.plan[topic][p]
	}
	return min(max(want, s.Offset), e.Offset), nil
}

// printResetOut prints res as JSON with --json, else as a table.
func printResetOut(c *cli.Context, res resetOut) error {
	return printOut(c, res, func(w io.Writer) error { return resetTable(w, res) })
}

// resetTable is the table form of res.
func resetTable(w io.Writer, res resetOut) error {
	var rows [][]string
	for _, o := range res.Offsets {
		rows = append(rows, []string{res.Group, o.Topic, strconv.Itoa(int(o.Partition)), offsetText(o.Current), offsetText(o.New), o.Error})
	}
	return printTable(w, []string{"GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET", "ERROR"}, rows)
}

// exportResetPlan prints the new offsets as Kafka's --export does:
// topic,partition,offset lines, which --from-file reads back.
func exportResetPlan(w io.Writer, res resetOut) error {
	bw := bufio.NewWriter(w)
	for _, o := range res.Offsets {
		fmt.Fprintf(bw, "%s,%d,%d\n", o.Topic, o.Partition, o.New)
	}
	return bw.Flush()
}
