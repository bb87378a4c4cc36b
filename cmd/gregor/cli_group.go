package main

// gregor group list|describe|lag|reset-offsets|delete, on kadm: what
// kafka-consumer-groups.sh does. reset-offsets follows that tool: one
// scenario (--to-earliest, --to-latest, --to-offset, --shift-by,
// --to-datetime), a dry run unless --execute, new offsets clamped to the
// partition's [log start, log end], and a refusal when the group has
// active members.

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/urfave/cli/v2"
)

func groupCommand() *cli.Command {
	return withClientFlags(&cli.Command{
		Name:  "group",
		Usage: "list, describe, show the lag of, reset the offsets of and delete consumer groups",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list groups", Action: adminAction(groupList)},
			{Name: "describe", Usage: "show groups' state and members with their assignments", ArgsUsage: "GROUP...", Action: namesAction("group", groupDescribe)},
			{Name: "lag", Usage: "show each partition's committed offset, log end offset and lag", ArgsUsage: "GROUP...", Action: namesAction("group", groupLag)},
			{
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
					&cli.BoolFlag{Name: "execute", Usage: "commit the new offsets (without it, only show them)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "only show the new offsets (the default)"},
				},
				Action: adminAction(groupResetOffsets),
			},
			{Name: "delete", Usage: "delete groups (they must have no active members)", ArgsUsage: "GROUP...", Action: namesAction("group", groupDelete)},
		},
	})
}

// listedGroup is one entry of `group list --json`.
type listedGroup struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	Type         string `json:"type,omitempty"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

func groupList(ctx context.Context, c *cli.Context, adm *kadm.Client) error {
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	var out []listedGroup
	for _, g := range groups.Sorted() {
		out = append(out, listedGroup{Group: g.Group, State: g.State, Type: g.GroupType, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	return printResults(c, out, []string{"GROUP", "STATE", "TYPE", "PROTOCOL-TYPE", "COORDINATOR"}, func(g listedGroup) []string {
		return []string{g.Group, g.State, g.Type, g.ProtocolType, strconv.Itoa(int(g.Coordinator))}
	})
}

// groupMember is one member in `group describe --json`.
type groupMember struct {
	MemberID   string             `json:"member_id"`
	InstanceID string             `json:"instance_id,omitempty"`
	ClientID   string             `json:"client_id"`
	ClientHost string             `json:"client_host"`
	Assigned   map[string][]int32 `json:"assigned"`
}

// describedGroup is one entry of `group describe --json`.
type describedGroup struct {
	Group        string        `json:"group"`
	State        string        `json:"state"`
	ProtocolType string        `json:"protocol_type"`
	Protocol     string        `json:"protocol"`
	Coordinator  int32         `json:"coordinator"`
	Members      []groupMember `json:"members"`
	Error        string        `json:"error,omitempty"`
}

func groupDescribe(ctx context.Context, c *cli.Context, adm *kadm.Client, names []string) error {
	groups, err := adm.DescribeGroups(ctx, names...)
	if err != nil {
		return fmt.Errorf("describe groups: %w", err)
	}
	var out []describedGroup
	failed := 0
	for _, name := range names {
		g := groups[name]
		dg := describedGroup{Group: name, State: g.State, ProtocolType: g.ProtocolType, Protocol: g.Protocol,
			Coordinator: g.Coordinator.NodeID, Members: []groupMember{}}
		if g.Err != nil {
			dg.Error = errText(g.Err, g.ErrMessage)
			failed++
		}
		for _, m := range g.Members {
			gm := groupMember{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost, Assigned: map[string][]int32{}}
			if m.InstanceID != nil {
				gm.InstanceID = *m.InstanceID
			}
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range a.Topics {
					ps := append([]int32(nil), t.Partitions...)
					sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
					gm.Assigned[t.Topic] = ps
				}
			}
			dg.Members = append(dg.Members, gm)
		}
		out = append(out, dg)
	}
	err = printBlocks(c, out, printGroup)
	return outcome(err, failed, len(out), "groups not described")
}

// printGroup is the table form of one described group.
func printGroup(w io.Writer, g describedGroup) error {
	if g.Error != "" {
		fmt.Fprintf(w, "Group: %s\tError: %s\n", g.Group, g.Error)
		return nil
	}
	fmt.Fprintf(w, "Group: %s\tState: %s\tProtocolType: %s\tProtocol: %s\tCoordinator: %d\tMembers: %d\n",
		g.Group, g.State, g.ProtocolType, g.Protocol, g.Coordinator, len(g.Members))
	if len(g.Members) == 0 {
		return nil
	}
	var rows [][]string
	for _, m := range g.Members {
		rows = append(rows, []string{m.MemberID, m.InstanceID, m.ClientID, m.ClientHost, assignedText(m.Assigned)})
	}
	return printTable(w, []string{"MEMBER", "INSTANCE", "CLIENT-ID", "HOST", "ASSIGNMENT"}, rows)
}

// assignedText prints an assignment as topic(0,1) other(2).
func assignedText(a map[string][]int32) string {
	topics := make([]string, 0, len(a))
	for t := range a {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	parts := make([]string, len(topics))
	for i, t := range topics {
		parts[i] = t + "(" + int32List(a[t]) + ")"
	}
	return strings.Join(parts, " ")
}

// partitionLag is one partition in `group lag --json`.
type partitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed_offset"` // -1: none
	End       int64  `json:"log_end_offset"`
	Lag       int64  `json:"lag"` // -1: unknown
	MemberID  string `json:"member_id,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Host      string `json:"client_host,omitempty"`
	Error     string `json:"error,omitempty"`
}

// groupLagOut is one entry of `group lag --json`.
type groupLagOut struct {
	Group      string         `json:"group"`
	State      string         `json:"state"`
	TotalLag   int64          `json:"total_lag"`
	Partitions []partitionLag `json:"partitions"`
	Error      string         `json:"error,omitempty"`
}

func groupLag(ctx context.Context, c *cli.Context, adm *kadm.Client, names []string) error {
	lags, err := adm.Lag(ctx, names...)
	if err != nil {
		return fmt.Errorf("group lag: %w", err)
	}
	var out []groupLagOut
	failed := 0
	for _, name := range names {
		l := lags[name]
		g := groupLagOut{Group: name, State: l.State, Partitions: []partitionLag{}}
		if err := l.Error(); err != nil {
			g.Error = err.Error()
			failed++
		}
		for _, ml := range l.Lag.Sorted() {
			pl := partitionLag{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, End: ml.End.Offset, Lag: ml.Lag}
			if ml.Err != nil {
				pl.Error = ml.Err.Error()
			}
			if ml.Member != nil {
				pl.MemberID, pl.ClientID, pl.Host = ml.Member.MemberID, ml.Member.ClientID, ml.Member.ClientHost
			}
			if pl.Lag > 0 {
				g.TotalLag += pl.Lag
			}
			g.Partitions = append(g.Partitions, pl)
		}
		out = append(out, g)
	}
	err = printOut(c, out, func(w io.Writer) error {
		var rows [][]string
		for _, g := range out {
			if g.Error != "" {
				rows = append(rows, []string{g.Group, "", "", "", "", "", "", "", g.Error})
			}
			for _, p := range g.Partitions {
				rows = append(rows, []string{g.Group, p.Topic, strconv.Itoa(int(p.Partition)), offsetText(p.Committed),
					offsetText(p.End), offsetText(p.Lag), p.MemberID, p.Host, p.Error})
			}
		}
		return printTable(w, []string{"GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER", "HOST", "ERROR"}, rows)
	})
	return outcome(err, failed, len(out), "groups without lag")
}

// offsetText prints -1 (none) as "-", as kafka-consumer-groups.sh does.
func offsetText(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
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

// resetScenario is the one --to-*/--shift-by flag given.
func resetScenario(c *cli.Context) (string, error) {
	var given []string
	for _, f := range []string{"to-earliest", "to-latest", "to-offset", "shift-by", "to-datetime"} {
		if c.IsSet(f) {
			given = append(given, "--"+f)
		}
	}
	if len(given) != 1 {
		return "", fmt.Errorf("group reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime (got %d)", len(given))
	}
	return given[0][2:], nil
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

// resetTargets parses --topic and --all-topics into topic → partitions
// (nil: every partition).
func resetTargets(c *cli.Context, committed kadm.OffsetResponses) (map[string][]int32, error) {
	if c.Bool("all-topics") == (len(c.StringSlice("topic")) > 0) {
		return nil, fmt.Errorf("group reset-offsets: give --topic or --all-topics (one of them)")
	}
	out := map[string][]int32{}
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
	scenario, err := resetScenario(c)
	if err != nil {
		return err
	}
	if c.Bool("execute") && c.Bool("dry-run") {
		return fmt.Errorf("group reset-offsets: --execute and --dry-run are exclusive")
	}
	var at time.Time
	if scenario == "to-datetime" {
		if at, err = parseDatetime(c.String("to-datetime")); err != nil {
			return err
		}
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
	if err != nil {
		return fmt.Errorf("fetch offsets of %s: %w", group, err)
	}
	if err := committed.Error(); err != nil {
		return fmt.Errorf("fetch offsets of %s: %w", group, err)
	}
	targets, err := resetTargets(c, committed)
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
	if scenario == "to-datetime" {
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topics...); err != nil {
			return fmt.Errorf("list offsets after %s: %w", at.Format(time.RFC3339), err)
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
			newOff, err := resetTo(c, scenario, topic, p, ro.Current, starts, ends, byTime)
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
		printResetOut(c, res)
		return cli.Exit(fmt.Sprintf("gregor: %d partitions cannot be reset; nothing committed", failed), 1)
	}
	if c.Bool("execute") {
		progress(c, "committing %d offsets for group %s", len(res.Offsets), group)
		resps, err := adm.CommitOffsets(ctx, group, commit)
		if err != nil {
			return fmt.Errorf("commit offsets of %s: %w", group, err)
		}
		if err := resps.Error(); err != nil {
			return fmt.Errorf("commit offsets of %s: %w", group, err)
		}
		res.Executed = true
		progress(c, "committed %d offsets", len(res.Offsets))
	} else {
		progress(c, "dry run: nothing committed; add --execute to apply")
	}
	return printResetOut(c, res)
}

// resetTo is a partition's new offset under the scenario, clamped to
// [log start, log end] as Kafka's tool does.
func resetTo(c *cli.Context, scenario, topic string, p int32, current int64, starts, ends, byTime kadm.ListedOffsets) (int64, error) {
	s, ok := starts.Lookup(topic, p)
	if !ok || s.Err != nil {
		return 0, fmt.Errorf("no log start offset: %v", s.Err)
	}
	e, ok := ends.Lookup(topic, p)
	if !ok || e.Err != nil {
		return 0, fmt.Errorf("no log end offset: %v", e.Err)
	}
	var want int64
	switch scenario {
	case "to-earliest":
		want = s.Offset
	case "to-latest":
		want = e.Offset
	case "to-offset":
		want = c.Int64("to-offset")
	case "shift-by":
		if current < 0 {
			return 0, fmt.Errorf("cannot shift: no committed offset")
		}
		want = current + c.Int64("shift-by")
	case "to-datetime":
		t, ok := byTime.Lookup(topic, p)
		if !ok || t.Err != nil {
			return 0, fmt.Errorf("no offset for the time: %v", t.Err)
		}
		want = t.Offset
		if want < 0 { // no record at or after the time
			want = e.Offset
		}
	}
	return min(max(want, s.Offset), e.Offset), nil
}

func printResetOut(c *cli.Context, res resetOut) error {
	return printOut(c, res, func(w io.Writer) error {
		var rows [][]string
		for _, o := range res.Offsets {
			rows = append(rows, []string{res.Group, o.Topic, strconv.Itoa(int(o.Partition)), offsetText(o.Current), offsetText(o.New), o.Error})
		}
		return printTable(w, []string{"GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET", "ERROR"}, rows)
	})
}

// deletedGroup is one entry of `group delete --json`.
type deletedGroup struct {
	Group string `json:"group"`
	Error string `json:"error,omitempty"`
}

func groupDelete(ctx context.Context, c *cli.Context, adm *kadm.Client, names []string) error {
	resps, err := adm.DeleteGroups(ctx, names...)
	if err != nil {
		return fmt.Errorf("delete groups: %w", err)
	}
	var out []deletedGroup
	failed := 0
	for _, r := range resps.Sorted() {
		dg := deletedGroup{Group: r.Group}
		if r.Err != nil {
			dg.Error = errText(r.Err, r.ErrMessage)
			failed++
		}
		out = append(out, dg)
	}
	err = printResults(c, out, []string{"GROUP", "STATUS"}, func(d deletedGroup) []string { return []string{d.Group, okOr(d.Error)} })
	return outcome(err, failed, len(out), "groups not deleted")
}
