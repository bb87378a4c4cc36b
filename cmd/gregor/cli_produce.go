package main

// gregor produce and gregor consume: kcat's -P and -C modes on kgo.
// produce sends one record per line of stdin (key and value split at -K);
// consume prints records with kcat's -f format string, or one JSON object
// per record with --json.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"
)

// topicFlag is the --topic/-t flag produce and consume require.
func topicFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "topic", Aliases: []string{"t"}, Required: true, Usage: usage}
}

func produceCommand() *cli.Command {
	return withClientFlags(&cli.Command{
		Name:  "produce",
		Usage: "produce one record per line of stdin (kcat -P)",
		Flags: []cli.Flag{
			topicFlag("topic to produce to"),
			&cli.IntFlag{Name: "partition", Aliases: []string{"p"}, Value: -1, Usage: "partition; -1 picks by key (murmur2, as Kafka's clients) or sticky for no key"},
			&cli.StringFlag{Name: "key-delimiter", Aliases: []string{"K"}, Usage: "split each line into key and value at the first occurrence of this"},
			&cli.StringFlag{Name: "key", Aliases: []string{"k"}, Usage: "key of every record (when -K is not given)"},
			&cli.StringSliceFlag{Name: "header", Aliases: []string{"H"}, Usage: "header of every record, as name=value (repeatable)"},
			&cli.StringFlag{Name: "acks", Value: "all", Usage: "all, 1 or 0"},
			&cli.IntFlag{Name: "max-line-bytes", Value: 16 << 20, Usage: "longest line accepted"},
		},
		Action: produce,
	})
}

// produceOut is the summary `produce --json` prints.
type produceOut struct {
	Topic      string                     `json:"topic"`
	Records    int64                      `json:"records"`
	Partitions map[int32]producedInterval `json:"partitions"`
}

// producedInterval is the offsets one partition got.
type producedInterval struct {
	First int64 `json:"first_offset"`
	Last  int64 `json:"last_offset"`
	Count int64 `json:"records"`
}

func produce(c *cli.Context) error {
	topic := c.String("topic")
	headers, err := parseKV("header", c.StringSlice("header"))
	if err != nil {
		return err
	}
	var hdrs []kgo.RecordHeader
	for k, v := range headers {
		hdrs = append(hdrs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	sort.Slice(hdrs, func(i, j int) bool { return hdrs[i].Key < hdrs[j].Key })
	opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5 * time.Millisecond)}
	switch c.String("acks") {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return fmt.Errorf("--acks %q: want all, 1 or 0", c.String("acks"))
	}
	partition := int32(c.Int("partition"))
	if partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := newClient(c, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	// The summary is written by produce callbacks (one goroutine per
	// partition in kgo) and read after Flush: protected by mu.
	var mu sync.Mutex
	out := produceOut{Topic: topic, Partitions: map[int32]producedInterval{}}
	var firstErr error
	sent := 0 // lines read; owned by this goroutine

	sc := bufio.NewScanner(c.App.Reader)
	sc.Buffer(make([]byte, 64<<10), c.Int("max-line-bytes"))
	delim := c.String("key-delimiter")
	start := time.Now()
	lastProgress := start
	for sc.Scan() {
		line := sc.Text()
		r := &kgo.Record{Partition: partition, Headers: hdrs}
		if delim != "" {
			k, v, ok := strings.Cut(line, delim)
			if ok {
				r.Key, r.Value = []byte(k), []byte(v)
			} else {
				r.Value = []byte(line) // kcat: a line without the delimiter has no key
			}
		} else {
			r.Value = []byte(line)
			if c.IsSet("key") {
				r.Key = []byte(c.String("key"))
			}
		}
		cl.Produce(c.Context, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("produce to %s: %w", topic, err)
				}
				return
			}
			out.Records++
			iv, ok := out.Partitions[r.Partition]
			if !ok {
				iv.First = r.Offset
			}
			iv.First, iv.Last = min(iv.First, r.Offset), max(iv.Last, r.Offset)
			iv.Count++
			out.Partitions[r.Partition] = iv
		})
		if sent++; sent%10000 == 0 && time.Since(lastProgress) > time.Second {
			lastProgress = time.Now()
			progress(c, "%% sent %d records", sent)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if err := cl.Flush(c.Context); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return firstErr
	}
	progress(c, "%% produced %d records to %s in %s", out.Records, topic, time.Since(start).Round(time.Millisecond))
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	return nil
}

func consumeCommand() *cli.Command {
	return withClientFlags(&cli.Command{
		Name:  "consume",
		Usage: "print a topic's records (kcat -C)",
		Flags: []cli.Flag{
			topicFlag("topic to consume"),
			&cli.IntSliceFlag{Name: "partition", Aliases: []string{"p"}, Usage: "partitions to read (repeatable); default all"},
			&cli.StringFlag{Name: "offset", Aliases: []string{"o"}, Value: "beginning", Usage: "where to start in each partition: beginning, end, an offset, or -N for N before the end"},
			&cli.Int64Flag{Name: "count", Aliases: []string{"c"}, Usage: "exit after this many records (0: no limit)"},
			&cli.BoolFlag{Name: "exit", Aliases: []string{"e"}, Usage: "exit when every partition's end (as of start-up) is reached"},
			&cli.StringFlag{Name: "group", Aliases: []string{"G"}, Usage: "consume as a member of this group: start at its committed offsets (-o, beginning or end, where it has none) and commit what is printed"},
			&cli.StringFlag{Name: "isolation-level", Value: "read_uncommitted", Usage: "read_committed: only committed transactions' records, up to the last stable offset (-e stops there); read_uncommitted: every record"},
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: `%s\n`, Usage: `kcat's format: %t topic, %p partition, %o offset, %k key, %s value, %K/%S key/value length, %T timestamp (ms), %h headers, %%, \n \t \r \\`},
		},
		Action: consume,
	})
}

// consumedRecord is one line of `consume --json`.
type consumedRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     *string           `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
}

func consume(c *cli.Context) error {
	topic := c.String("topic")
	format, err := parseFormat(c.String("format"))
	if err != nil {
		return err
	}
	readCommitted, err := parseIsolationLevel(c.String("isolation-level"))
	if err != nil {
		return err
	}
	group := c.String("group")
	if group != "" {
		if len(c.IntSlice("partition")) > 0 {
			return fmt.Errorf("consume: --partition and --group are exclusive (the group assigns partitions)")
		}
		if o := c.String("offset"); o != "beginning" && o != "end" {
			return fmt.Errorf("consume: with --group, -o is where partitions without a committed offset start: beginning or end, not %q", o)
		}
	}
	var start consumeStart
	err = withAdmin(c, func(ctx context.Context, adm *kadm.Client) (err error) {
		start, err = planConsume(ctx, c, adm, topic, group, readCommitted)
		return err
	})
	if err != nil {
		return err
	}
	offsets, endOf := start.offsets, start.endOf
	if c.Bool("exit") && len(endOf) == 0 {
		return nil
	}
	opts := []kgo.Opt{kgo.FetchMaxWait(500 * time.Millisecond), kgo.KeepControlRecords()}
	if readCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if group != "" {
		reset := kgo.NewOffset().AtStart()
		if c.String("offset") == "end" {
			reset = kgo.NewOffset().AtEnd()
		}
		opts = append(opts, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(reset), kgo.AutoCommitMarks())
	} else {
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	}
	cl, err := newClient(c, opts...)
	if err != nil {
		return err
	}
	defer cl.Close() // leaves the group, if any
	// finish commits what was printed, with a group.
	finish := func() error {
		if group == "" {
			return nil
		}
		ctx, cancel := cmdContext(c)
		defer cancel()
		if err := cl.CommitMarkedOffsets(ctx); err != nil {
			return fmt.Errorf("consume: commit offsets of %s: %w", group, err)
		}
		return nil
	}

	// reached notes that r's partition got to its end, for -e.
	reached := func(r *kgo.Record) {
		if end, ok := endOf[r.Partition]; ok && r.Offset+1 >= end {
			delete(endOf, r.Partition)
			if c.Bool("exit") {
				progress(c, "%% Reached end of topic %s [%d] at offset %d", topic, r.Partition, end)
			}
		}
	}
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	count := c.Int64("count")
	var n int64
	var buf []byte
	for {
		fetches := cl.PollFetches(c.Context)
		if c.Context.Err() != nil {
			return finish() // interrupted
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if fetchErr == nil && !errors.Is(err, c.Context.Err()) {
				fetchErr = fmt.Errorf("fetch %s-%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		done := false
		fetches.EachRecord(func(r *kgo.Record) {
			if done {
				return
			}
			if r.Attrs.IsControl() {
				// A transaction marker: not printed, but it can be the
				// last offset before the end (-e would wait forever).
				if group != "" {
					cl.MarkCommitRecords(r)
				}
				reached(r)
				return
			}
			if c.Bool("json") {
				buf = appendJSONRecord(buf[:0], r)
			} else {
				buf = format.append(buf[:0], r)
			}
			w.Write(buf)
			if group != "" {
				cl.MarkCommitRecords(r)
			}
			n++
			if count > 0 && n >= count {
				done = true
			}
			reached(r)
		})
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if done || (c.Bool("exit") && len(endOf) == 0) {
			progress(c, "%% consumed %d records", n)
			return finish()
		}
	}
}

// consumeStart is where consume begins in each partition, and the ends
// -e waits for.
type consumeStart struct {
	offsets map[int32]kgo.Offset
	endOf   map[int32]int64 // partitions still to reach their end, for -e
}

// parseIsolationLevel reads --isolation-level: true for read_committed.
func parseIsolationLevel(s string) (readCommitted bool, err error) {
	switch s {
	case "read_committed":
		return true, nil
	case "read_uncommitted":
		return false, nil
	}
	return false, fmt.Errorf("--isolation-level %q: want read_committed or read_uncommitted", s)
}

// planConsume resolves each partition's first offset before consuming,
// so that -e knows at once which partitions have nothing to read. Read
// committed, a partition's end is its last stable offset, as Kafka's
// ListOffsets answers a read_committed consumer: what lies past it is
// not readable until its transactions end.
func planConsume(ctx context.Context, c *cli.Context, adm *kadm.Client, topic, group string, readCommitted bool) (consumeStart, error) {
	meta, err := adm.Metadata(ctx, topic)
	if err != nil {
		return consumeStart{}, fmt.Errorf("consume: %w", err)
	}
	td, err := topicDetail(meta, topic)
	if err != nil {
		return consumeStart{}, fmt.Errorf("consume: %w", err)
	}
	parts := make([]int32, 0)
	for _, p := range c.IntSlice("partition") {
		if _, ok := td.Partitions[int32(p)]; !ok {
			return consumeStart{}, fmt.Errorf("consume: %s has no partition %d", topic, p)
		}
		parts = append(parts, int32(p))
	}
	if len(parts) == 0 {
		for _, p := range td.Partitions.Sorted() {
			parts = append(parts, p.Partition)
		}
	}
	starts, ends, err := logOffsets(ctx, adm, topic)
	if err == nil {
		err = errors.Join(starts.Error(), ends.Error())
	}
	stable := ends
	if err == nil && readCommitted {
		if stable, err = adm.ListCommittedOffsets(ctx, topic); err == nil {
			err = stable.Error()
		}
	}
	if err != nil {
		return consumeStart{}, fmt.Errorf("consume: %w", err)
	}
	var committed kadm.OffsetResponses
	if group != "" {
		committed, err = adm.FetchOffsetsForTopics(ctx, group, topic)
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			return consumeStart{}, fmt.Errorf("consume: committed offsets of %s: %w", group, err)
		}
	}
	start := consumeStart{offsets: map[int32]kgo.Offset{}, endOf: map[int32]int64{}}
	for _, p := range parts {
		s, _ := starts.Lookup(topic, p)
		hw, _ := ends.Lookup(topic, p)
		e, _ := stable.Lookup(topic, p)
		from, err := resolveOffset(c.String("offset"), s.Offset, e.Offset)
		if err != nil {
			return consumeStart{}, err
		}
		if o, ok := committed.Lookup(topic, p); ok && o.At >= 0 {
			// A group's commit is kept up to the high watermark: read
			// committed, a commit past the last stable offset waits
			// there rather than going back.
			from = min(max(o.At, s.Offset), hw.Offset)
		}
		start.offsets[p] = kgo.NewOffset().At(from)
		if from < e.Offset {
			start.endOf[p] = e.Offset
		} else if c.Bool("exit") {
			progress(c, "%% Reached end of topic %s [%d] at offset %d", topic, p, e.Offset)
		}
	}
	return start, nil
}

// resolveOffset turns -o into an offset within [start, end].
func resolveOffset(spec string, start, end int64) (int64, error) {
	switch spec {
	case "beginning":
		return start, nil
	case "end":
		return end, nil
	}
	o, err := strconv.ParseInt(spec, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("--offset %q: want beginning, end, an offset or -N", spec)
	}
	if o < 0 {
		o = end + o
	}
	return min(max(o, start), end), nil
}

// appendJSONRecord appends one record as a JSON line.
func appendJSONRecord(buf []byte, r *kgo.Record) []byte {
	cr := consumedRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
	if r.Key != nil {
		k := string(r.Key)
		cr.Key = &k
	}
	if r.Value != nil {
		v := string(r.Value)
		cr.Value = &v
	}
	if len(r.Headers) > 0 {
		cr.Headers = map[string]string{}
		for _, h := range r.Headers {
			cr.Headers[h.Key] = string(h.Value)
		}
	}
	b, _ := json.Marshal(cr) // cannot fail: strings, ints and a map of strings
	return append(append(buf, b...), '\n')
}

// recordFormat is a parsed -f format: literal text and % directives.
type recordFormat []formatPart

// formatPart is literal text (verb 0) or one directive.
type formatPart struct {
	verb    byte
	literal string
}

// parseFormat parses kcat's -f: %t %p %o %k %s %K %S %T %h %%, and the
// escapes \n \r \t \\.
func parseFormat(s string) (recordFormat, error) {
	var f recordFormat
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f = append(f, formatPart{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("--format %q: ends in a lone backslash", s)
			}
			i++
			switch s[i] {
			case 'n':
				lit.WriteByte('\n')
			case 'r':
				lit.WriteByte('\r')
			case 't':
				lit.WriteByte('\t')
			case '\\':
				lit.WriteByte('\\')
			default:
				return nil, fmt.Errorf("--format %q: unknown escape \\%c", s, s[i])
			}
		case '%':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("--format %q: ends in a lone %%", s)
			}
			i++
			switch v := s[i]; v {
			case '%':
				lit.WriteByte('%')
			case 't', 'p', 'o', 'k', 's', 'K', 'S', 'T', 'h':
				flush()
				f = append(f, formatPart{verb: v})
			default:
				return nil, fmt.Errorf("--format %q: unknown directive %%%c", s, v)
			}
		default:
			lit.WriteByte(ch)
		}
	}
	flush()
	return f, nil
}

// append appends r formatted.
func (f recordFormat) append(buf []byte, r *kgo.Record) []byte {
	for _, p := range f {
		switch p.verb {
		case 0:
			buf = append(buf, p.literal...)
		case 't':
			buf = append(buf, r.Topic...)
		case 'p':
			buf = strconv.AppendInt(buf, int64(r.Partition), 10)
		case 'o':
			buf = strconv.AppendInt(buf, r.Offset, 10)
		case 'k':
			buf = append(buf, r.Key...)
		case 's':
			buf = append(buf, r.Value...)
		case 'K':
			buf = strconv.AppendInt(buf, keyLen(r.Key), 10)
		case 'S':
			buf = strconv.AppendInt(buf, keyLen(r.Value), 10)
		case 'T':
			buf = strconv.AppendInt(buf, r.Timestamp.UnixMilli(), 10)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = append(append(append(buf, h.Key...), '='), h.Value...)
			}
		}
	}
	return buf
}

// keyLen is kcat's %K/%S: the length, or -1 for null.
func keyLen(b []byte) int64 {
	if b == nil {
		return -1
	}
	return int64(len(b))
}
