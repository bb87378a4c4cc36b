package main

// gregor group list|describe|lag|reset-offsets|delete, on kadm: what
// kafka-consumer-groups.sh does (reset-offsets is in cli_reset.go).

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

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
			resetOffsetsCommand(),
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
