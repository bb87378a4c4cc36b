package main

// gregor topic create|list|describe|alter|delete, on kadm: what
// kafka-topics.sh and kafka-configs.sh --entity-type topics do.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/urfave/cli/v2"
)

func topicCommand() *cli.Command {
	return withClientFlags(&cli.Command{
		Name:  "topic",
		Usage: "create, list, describe, alter and delete topics",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create topics",
				ArgsUsage: "TOPIC...",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Value: -1, Usage: "partition count; -1 is the broker's num.partitions"},
					&cli.IntFlag{Name: "replication-factor", Aliases: []string{"r"}, Value: -1, Usage: "replicas per partition; -1 is the broker's default.replication.factor"},
					&cli.StringSliceFlag{Name: "config", Aliases: []string{"c"}, Usage: "topic config as name=value (repeatable)"},
					&cli.BoolFlag{Name: "if-not-exists", Usage: "succeed when the topic exists already"},
				},
				Action: namesAction("topic", topicCreate),
			},
			{
				Name:   "list",
				Usage:  "list topics",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "internal", Usage: "include internal topics (__consumer_offsets, ...)"}},
				Action: adminAction(topicList),
			},
			{
				Name:      "describe",
				Usage:     "show topics' partitions (leader, replicas, ISR, offsets) and configs",
				ArgsUsage: "TOPIC...",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "all-configs", Usage: "list every config, not only those set on the topic"}},
				Action:    namesAction("topic", topicDescribe),
			},
			{
				Name:      "alter",
				Usage:     "change topics' configs (incrementally) or partition count",
				ArgsUsage: "TOPIC...",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "set", Usage: "set a config, as name=value (repeatable)"},
					&cli.StringSliceFlag{Name: "delete", Usage: "remove a config override, back to the broker default (repeatable)"},
					&cli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Usage: "raise the partition count to this"},
				},
				Action: namesAction("topic", topicAlter),
			},
			{
				Name:      "delete",
				Usage:     "delete topics",
				ArgsUsage: "TOPIC...",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "if-exists", Usage: "succeed when a topic does not exist"}},
				Action:    namesAction("topic", topicDelete),
			},
		},
	})
}

// createdTopic is one line of `topic create --json`.
type createdTopic struct {
	Topic             string `json:"topic"`
	ID                string `json:"id,omitempty"`
	Partitions        int32  `json:"partitions"`
	ReplicationFactor int16  `json:"replication_factor"`
	Error             string `json:"error,omitempty"`
}

func topicCreate(ctx context.Context, c *cli.Context, adm *kadm.Client, topics []string) error {
	configs, err := parseKV("config", c.StringSlice("config"))
	if err != nil {
		return err
	}
	cfgs := make(map[string]*string, len(configs))
	for k, v := range configs {
		cfgs[k] = &v
	}
	resps, err := adm.CreateTopics(ctx, int32(c.Int("partitions")), int16(c.Int("replication-factor")), cfgs, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var out []createdTopic
	failed := 0
	for _, r := range resps.Sorted() {
		ct := createdTopic{Topic: r.Topic, Partitions: r.NumPartitions, ReplicationFactor: r.ReplicationFactor}
		if r.ID != (kadm.TopicID{}) {
			ct.ID = topicIDText(r.ID)
		}
		if r.Err != nil && !(c.Bool("if-not-exists") && r.Err == kerr.TopicAlreadyExists) {
			ct.Error = errText(r.Err, r.ErrMessage)
			failed++
		}
		out = append(out, ct)
	}
	err = printResults(c, out, []string{"TOPIC", "PARTITIONS", "REPLICATION-FACTOR", "ID", "STATUS"}, func(t createdTopic) []string {
		status := "created"
		if t.Error != "" {
			status = t.Error
		}
		return []string{t.Topic, strconv.Itoa(int(t.Partitions)), strconv.Itoa(int(t.ReplicationFactor)), t.ID, status}
	})
	return outcome(err, failed, len(out), "topics not created")
}

// listedTopic is one entry of `topic list --json`.
type listedTopic struct {
	Topic             string `json:"topic"`
	ID                string `json:"id,omitempty"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

func topicList(ctx context.Context, c *cli.Context, adm *kadm.Client) error {
	list := adm.ListTopics
	if c.Bool("internal") {
		list = adm.ListTopicsWithInternal
	}
	details, err := list(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	out := []listedTopic{}
	for _, d := range details.Sorted() {
		lt := listedTopic{Topic: d.Topic, Partitions: len(d.Partitions), Internal: d.IsInternal}
		if d.ID != (kadm.TopicID{}) {
			lt.ID = topicIDText(d.ID)
		}
		for _, p := range d.Partitions {
			lt.ReplicationFactor = max(lt.ReplicationFactor, len(p.Replicas))
		}
		out = append(out, lt)
	}
	return printResults(c, out, []string{"TOPIC", "PARTITIONS", "REPLICATION-FACTOR", "INTERNAL"}, func(t listedTopic) []string {
		return []string{t.Topic, strconv.Itoa(t.Partitions), strconv.Itoa(t.ReplicationFactor), strconv.FormatBool(t.Internal)}
	})
}

// describedPartition is one partition in `topic describe --json`.
type describedPartition struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Offline     []int32 `json:"offline_replicas,omitempty"`
	Start       int64   `json:"start_offset"`
	End         int64   `json:"end_offset"`
	Error       string  `json:"error,omitempty"`
}

// describedConfig is one config in `topic describe --json`.
type describedConfig struct {
	Value     *string `json:"value"`
	Source    string  `json:"source"`
	Sensitive bool    `json:"sensitive,omitempty"`
}

// describedTopic is one entry of `topic describe --json`.
type describedTopic struct {
	Topic      string                     `json:"topic"`
	ID         string                     `json:"id,omitempty"`
	Internal   bool                       `json:"internal"`
	Partitions []describedPartition       `json:"partitions"`
	Configs    map[string]describedConfig `json:"configs"`
	Error      string                     `json:"error,omitempty"`
}

func topicDescribe(ctx context.Context, c *cli.Context, adm *kadm.Client, topics []string) error {
	details, err := adm.ListTopicsWithInternal(ctx, topics...)
	if err != nil {
		return fmt.Errorf("describe topics: %w", err)
	}
	starts, ends, err := logOffsets(ctx, adm, topics...)
	if err != nil {
		return err
	}
	configs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return fmt.Errorf("describe topic configs: %w", err)
	}
	var out []describedTopic
	failed := 0
	for _, name := range topics {
		dt := describedTopic{Topic: name, Configs: map[string]describedConfig{}, Partitions: []describedPartition{}}
		d, ok := details[name]
		switch {
		case !ok:
			dt.Error = kerr.UnknownTopicOrPartition.Error()
		case d.Err != nil:
			dt.Error = d.Err.Error()
		}
		if dt.Error != "" {
			failed++
			out = append(out, dt)
			continue
		}
		if d.ID != (kadm.TopicID{}) {
			dt.ID = topicIDText(d.ID)
		}
		dt.Internal = d.IsInternal
		for _, p := range d.Partitions.Sorted() {
			dp := describedPartition{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: nonNil(p.Replicas), ISR: nonNil(p.ISR), Offline: p.OfflineReplicas, Start: -1, End: -1}
			if p.Err != nil {
				dp.Error = p.Err.Error()
			}
			if o, ok := starts.Lookup(name, p.Partition); ok && o.Err == nil {
				dp.Start = o.Offset
			}
			if o, ok := ends.Lookup(name, p.Partition); ok && o.Err == nil {
				dp.End = o.Offset
			}
			dt.Partitions = append(dt.Partitions, dp)
		}
		if rc, err := configs.On(name, nil); err == nil {
			if rc.Err != nil {
				dt.Error = errText(rc.Err, rc.ErrMessage)
			}
			for _, cf := range rc.Configs {
				if !c.Bool("all-configs") && cf.Source != kmsg.ConfigSourceDynamicTopicConfig {
					continue
				}
				dt.Configs[cf.Key] = describedConfig{Value: cf.Value, Source: cf.Source.String(), Sensitive: cf.Sensitive}
			}
		}
		out = append(out, dt)
	}
	err = printBlocks(c, out, printTopic)
	return outcome(err, failed, len(out), "topics not described")
}

// printTopic is the table form of one described topic.
func printTopic(w io.Writer, t describedTopic) error {
	if t.Error != "" && len(t.Partitions) == 0 {
		fmt.Fprintf(w, "Topic: %s\tError: %s\n", t.Topic, t.Error)
		return nil
	}
	fmt.Fprintf(w, "Topic: %s\tTopicId: %s\tPartitionCount: %d\tInternal: %t\n", t.Topic, t.ID, len(t.Partitions), t.Internal)
	var rows [][]string
	for _, p := range t.Partitions {
		rows = append(rows, []string{strconv.Itoa(int(p.Partition)), strconv.Itoa(int(p.Leader)), strconv.Itoa(int(p.LeaderEpoch)),
			int32List(p.Replicas), int32List(p.ISR), strconv.FormatInt(p.Start, 10), strconv.FormatInt(p.End, 10), p.Error})
	}
	if err := printTable(w, []string{"PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "START", "END", "ERROR"}, rows); err != nil {
		return err
	}
	if len(t.Configs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	names := make([]string, 0, len(t.Configs))
	for k := range t.Configs {
		names = append(names, k)
	}
	sort.Strings(names)
	rows = rows[:0]
	for _, k := range names {
		cf := t.Configs[k]
		v := "<null>"
		switch {
		case cf.Sensitive:
			v = "<sensitive>"
		case cf.Value != nil:
			v = *cf.Value
		}
		rows = append(rows, []string{k, v, cf.Source})
	}
	return printTable(w, []string{"CONFIG", "VALUE", "SOURCE"}, rows)
}

// nonNil makes an empty list print as [] in JSON.
func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}

// alteredTopic is one entry of `topic alter --json`.
type alteredTopic struct {
	Topic string `json:"topic"`
	What  string `json:"what"`
	Error string `json:"error,omitempty"`
}

func topicAlter(ctx context.Context, c *cli.Context, adm *kadm.Client, topics []string) error {
	set, err := parseKV("set", c.StringSlice("set"))
	if err != nil {
		return err
	}
	var alters []kadm.AlterConfig
	for k, v := range set {
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	for _, k := range c.StringSlice("delete") {
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	sort.Slice(alters, func(i, j int) bool { return alters[i].Name < alters[j].Name })
	if len(alters) == 0 && !c.IsSet("partitions") {
		return fmt.Errorf("topic alter: nothing to do; give --set, --delete or --partitions")
	}
	var out []alteredTopic
	failed := 0
	if c.IsSet("partitions") {
		resps, err := adm.UpdatePartitions(ctx, c.Int("partitions"), topics...)
		if err != nil {
			return fmt.Errorf("update partitions: %w", err)
		}
		for _, r := range resps.Sorted() {
			at := alteredTopic{Topic: r.Topic, What: fmt.Sprintf("partitions=%d", c.Int("partitions"))}
			if r.Err != nil {
				at.Error = errText(r.Err, r.ErrMessage)
				failed++
			}
			out = append(out, at)
		}
	}
	if len(alters) > 0 {
		what := ""
		for i, a := range alters {
			if i > 0 {
				what += ","
			}
			if a.Op == kadm.DeleteConfig {
				what += "-" + a.Name
			} else {
				what += a.Name + "=" + *a.Value
			}
		}
		resps, err := adm.AlterTopicConfigs(ctx, alters, topics...)
		if err != nil {
			return fmt.Errorf("alter topic configs: %w", err)
		}
		sort.Slice(resps, func(i, j int) bool { return resps[i].Name < resps[j].Name })
		for _, r := range resps {
			at := alteredTopic{Topic: r.Name, What: what}
			if r.Err != nil {
				at.Error = errText(r.Err, r.ErrMessage)
				failed++
			}
			out = append(out, at)
		}
	}
	err = printResults(c, out, []string{"TOPIC", "CHANGE", "STATUS"}, func(a alteredTopic) []string { return []string{a.Topic, a.What, okOr(a.Error)} })
	return outcome(err, failed, len(out), "changes failed")
}

// deletedTopic is one entry of `topic delete --json`.
type deletedTopic struct {
	Topic string `json:"topic"`
	Error string `json:"error,omitempty"`
}

func topicDelete(ctx context.Context, c *cli.Context, adm *kadm.Client, topics []string) error {
	resps, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	var out []deletedTopic
	failed := 0
	for _, r := range resps.Sorted() {
		dt := deletedTopic{Topic: r.Topic}
		if r.Err != nil && !(c.Bool("if-exists") && r.Err == kerr.UnknownTopicOrPartition) {
			dt.Error = errText(r.Err, r.ErrMessage)
			failed++
		}
		out = append(out, dt)
	}
	err = printResults(c, out, []string{"TOPIC", "STATUS"}, func(d deletedTopic) []string { return []string{d.Topic, okOr(d.Error)} })
	return outcome(err, failed, len(out), "topics not deleted")
}

// topicIDText prints a topic id as Kafka's tools do: base64url, no padding.
func topicIDText(id kadm.TopicID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}
