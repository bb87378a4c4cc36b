package main

// What the admin commands (topic, group, produce, consume, cluster) share:
// the --brokers, --json and --quiet flags, the franz-go clients they
// open, and the two ways they print, an aligned table (text/tabwriter)
// or JSON.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"
)

// defaultBrokers is where the admin commands look for a cluster when
// neither --brokers nor GREGOR_BROKERS says.
const defaultBrokers = "localhost:9092"

// clientFlags are the flags of every command that talks to a cluster,
// read from GREGOR_* like serve's.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "brokers", Aliases: []string{"b"}, Value: defaultBrokers, Usage: "bootstrap brokers, as host:port,...", EnvVars: env("brokers")},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long the command may take (consume without -e: how long each request may take)", EnvVars: env("cli-timeout")},
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines on stderr"},
	}
}

// withClientFlags returns the command with clientFlags added to it and
// to every command under it, so that `gregor topic list --brokers h:p`
// works as well as `gregor topic --brokers h:p list`.
func withClientFlags(cmd *cli.Command) *cli.Command {
	if len(cmd.Subcommands) == 0 {
		cmd.Flags = append(cmd.Flags, clientFlags()...)
		return cmd
	}
	for _, sub := range cmd.Subcommands {
		withClientFlags(sub)
	}
	return cmd
}

// brokerList splits --brokers.
func brokerList(c *cli.Context) ([]string, error) {
	var out []string
	for _, b := range strings.Split(c.String("brokers"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--brokers is empty")
	}
	return out, nil
}

// newClient opens a kgo client on --brokers with extra options. The
// caller closes it.
func newClient(c *cli.Context, opts ...kgo.Opt) (*kgo.Client, error) {
	brokers, err := brokerList(c)
	if err != nil {
		return nil, err
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("gregor-cli"),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryTimeout(c.Duration("timeout")),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", strings.Join(brokers, ","), err)
	}
	return cl, nil
}

// newAdmin opens a kadm client on --brokers. The caller closes it.
func newAdmin(c *cli.Context) (*kadm.Client, error) {
	cl, err := newClient(c)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(c.Duration("timeout").Milliseconds()))
	return adm, nil
}

// cmdContext is the command's context bounded by --timeout.
func cmdContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, c.Duration("timeout"))
}

// withAdmin runs fn with a kadm client on --brokers and a context
// bounded by --timeout; both end when fn returns.
func withAdmin(c *cli.Context, fn func(ctx context.Context, adm *kadm.Client) error) error {
	adm, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := cmdContext(c)
	defer cancel()
	return fn(ctx, adm)
}

// adminAction is a command action that runs fn under withAdmin.
func adminAction(fn func(ctx context.Context, c *cli.Context, adm *kadm.Client) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		return withAdmin(c, func(ctx context.Context, adm *kadm.Client) error { return fn(ctx, c, adm) })
	}
}

// namesAction is the action of a command whose arguments name at least
// one kind of thing ("topic", "group"): fn runs under withAdmin with them.
func namesAction(kind string, fn func(ctx context.Context, c *cli.Context, adm *kadm.Client, names []string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			return fmt.Errorf("%s: name at least one %s", c.Command.FullName(), kind)
		}
		return withAdmin(c, func(ctx context.Context, adm *kadm.Client) error { return fn(ctx, c, adm, c.Args().Slice()) })
	}
}

// topicDetail is topic's entry in meta, or why there is none.
func topicDetail(meta kadm.Metadata, topic string) (kadm.TopicDetail, error) {
	td, ok := meta.Topics[topic]
	if !ok {
		return td, fmt.Errorf("topic %s not in metadata", topic)
	}
	if td.Err != nil {
		return td, fmt.Errorf("topic %s: %w", topic, td.Err)
	}
	return td, nil
}

// logOffsets lists the log start and log end offsets of topics'
// partitions; a partition's own error stays in its entry.
func logOffsets(ctx context.Context, adm *kadm.Client, topics ...string) (starts, ends kadm.ListedOffsets, err error) {
	if starts, err = adm.ListStartOffsets(ctx, topics...); err != nil {
		return nil, nil, fmt.Errorf("list start offsets: %w", err)
	}
	if ends, err = adm.ListEndOffsets(ctx, topics...); err != nil {
		return nil, nil, fmt.Errorf("list end offsets: %w", err)
	}
	return starts, ends, nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printOut prints v as JSON with --json, else with text.
func printOut(c *cli.Context, v any, text func(w io.Writer) error) error {
	if c.Bool("json") {
		return printJSON(c.App.Writer, v)
	}
	return text(c.App.Writer)
}

// printResults prints per-item outcomes as JSON (an empty list as [])
// or as a table of row(item) under header.
func printResults[T any](c *cli.Context, out []T, header []string, row func(T) []string) error {
	if out == nil {
		out = []T{}
	}
	return printOut(c, out, func(w io.Writer) error {
		rows := make([][]string, 0, len(out))
		for _, o := range out {
			rows = append(rows, row(o))
		}
		return printTable(w, header, rows)
	})
}

// printBlocks prints items as JSON (an empty list as []) or each with
// block, a blank line between them.
func printBlocks[T any](c *cli.Context, out []T, block func(io.Writer, T) error) error {
	if out == nil {
		out = []T{}
	}
	return printOut(c, out, func(w io.Writer) error {
		for i, o := range out {
			if i > 0 {
				fmt.Fprintln(w)
			}
			if err := block(w, o); err != nil {
				return err
			}
		}
		return nil
	})
}

// outcome is what a command that printed per-item results returns: the
// print error, else exit status 1 with "gregor: F of N <what>" when
// failed of its total items went wrong, else nil.
func outcome(printErr error, failed, total int, what string) error {
	if printErr != nil {
		return printErr
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("gregor: %d of %d %s", failed, total, what), 1)
	}
	return nil
}

// okOr is "ok" for an empty error.
func okOr(errText string) string {
	if errText == "" {
		return "ok"
	}
	return errText
}

// printTable writes rows under a header, columns aligned.
func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// progress writes one progress line to stderr unless --quiet.
func progress(c *cli.Context, format string, args ...any) {
	if c.Bool("quiet") {
		return
	}
	fmt.Fprintf(c.App.ErrWriter, format+"\n", args...)
}

// int32List prints node ids as 1,2,3.
func int32List(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

// parseKV parses name=value pairs (--config, --set).
func parseKV(flag string, kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		name, value, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("--%s %q: want name=value", flag, kv)
		}
		out[name] = value
	}
	return out, nil
}

// errText is an error with its broker message, if any.
func errText(err error, msg string) string {
	if msg != "" && !strings.Contains(err.Error(), msg) {
		return err.Error() + ": " + msg
	}
	return err.Error()
}

// adminCommandNames are the commands whose arguments permuteArgs moves.
var adminCommandNames = map[string]bool{"topic": true, "group": true, "produce": true, "consume": true, "cluster": true}

// permuteArgs moves the flags of an admin command ahead of its positional
// arguments, so that `gregor topic alter T --set k=v` parses as
// `gregor topic alter --set k=v T` would: urfave/cli stops reading flags
// at the first positional argument. Everything after "--" stays
// positional. kcat's attached short values (-K:, -c10) are split in two,
// since Go's flag package reads -K: as a flag named "K:". Other commands' arguments are returned as they are.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 || !adminCommandNames[args[1]] {
		return args
	}
	var cmd *cli.Command
	for _, c := range app.Commands {
		if c.Name == args[1] {
			cmd = c
		}
	}
	i := 2
	for cmd != nil && len(cmd.Subcommands) > 0 && i < len(args) {
		next := cmd.Command(args[i])
		if next == nil {
			break
		}
		cmd, i = next, i+1
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	out := append([]string(nil), args[:i]...)
	var positional []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		if _, known := takesValue[name]; !known && a[1] != '-' && len(name) > 1 && takesValue[name[:1]] {
			// kcat's attached short values: -K: is -K :, -c10 is -c 10.
			out = append(out, "-"+name[:1], name[1:])
			continue
		}
		out = append(out, a)
		if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(args) {
			out = append(out, args[i+1])
			i++
		}
	}
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}
