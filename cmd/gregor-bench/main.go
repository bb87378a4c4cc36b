// Command gregor-bench measures Gregor against franz-go's fake broker, kfake,
// in one run with one workload, and prints them side by side with the ratio
// Gregor/kfake. `make bench` runs it with its defaults.
//
// The targets (-targets) are:
//
//   - gregor: one `gregor serve` process; topics have one replica.
//   - gregor-rf3: three `gregor serve` processes (node ids 1..3) forming one
//     cluster on loopback, their embedded etcd members one quorum; topics
//     have three replicas, so acks=all waits until both followers have each
//     batch. All three brokers share the machine's cores with each other and
//     with the benchmark's clients.
//   - kfake: franz-go's fake broker, one broker, one replica.
//
// For each record size it runs three scenarios against each target:
//
//   - produce: -producers kgo clients produce asynchronously for -duration
//     (or -records in total), each keeping at most -max-pending records
//     unacknowledged; acks=all, idempotence off (on with -idempotent), -linger, round-robin over
//     -partitions. Reports MB/s and records/s of acknowledged payload and the
//     ack latency of each record (p50, p99), from just before Produce to its
//     promise.
//   - consume: a fresh group-less client reads every partition from the
//     start until it has every acknowledged record, and checks the offsets
//     are contiguous; MB/s and records/s.
//   - produce-sync: one record at a time, waiting for each ack (linger 0),
//     for -sync-duration (or -sync-records): the latency a request/response
//     caller sees.
//
// Gregor runs as `gregor serve` (built from ./cmd/gregor unless -gregor-bin
// is given) with its data directories under -data-dir, so its numbers
// include writing every batch to its log files (each replica's, for
// gregor-rf3). kfake keeps everything in memory
// unless -kfake-persist. Each broker runs in its own process (kfake by
// re-executing this binary), so neither shares a heap or CPU scheduler with
// the benchmark's clients; -kfake-inprocess runs kfake in this process
// instead.
//
// MB is 10^6 bytes of record values (keys and headers are empty).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	gregorBin      string
	targets        []string
	sizes          []int
	dataDir        string
	keep           bool
	jsonOut        string
	timeout        time.Duration
	readyTimeout   time.Duration
	kfakePersist   bool
	kfakeInProcess bool
	compression    string
	w              workload
}

func main() {
	// The kfake child: this binary re-executed by startKfake.
	if len(os.Args) > 1 && os.Args[1] == "-kfake-serve" {
		dir := ""
		if len(os.Args) > 3 && os.Args[2] == "-kfake-serve-dir" {
			dir = os.Args[3]
		}
		os.Exit(serveKfake(dir))
	}
	os.Exit(run())
}

func parseFlags() (*options, error) {
	var (
		o           options
		targets     = flag.String("targets", "gregor,gregor-rf3,kfake", "comma-separated targets to run: gregor, gregor-rf3 (3 brokers, 3 replicas), kfake")
		sizes       = flag.String("sizes", "100,1024", "comma-separated record value sizes in bytes (a k suffix means KiB)")
		compression = flag.String("compression", "none", "producer batch compression: none, gzip, snappy, lz4, zstd")
	)
	flag.StringVar(&o.gregorBin, "gregor-bin", "", "gregor binary to run (default: go build ./cmd/gregor into the work dir)")
	flag.StringVar(&o.dataDir, "data-dir", "", "parent of the run's work dir, which holds the brokers' data (default: the system temp dir)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work dir (data and broker logs) after the run")
	flag.StringVar(&o.jsonOut, "json", "", `also write results as JSON to this file ("-" for stdout, replacing the table)`)
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 60*time.Second, "how long to wait for gregor's /readyz (every node's, for gregor-rf3)")
	flag.BoolVar(&o.kfakePersist, "kfake-persist", false, "run kfake with a data dir (kfake.DataDir) so it writes to disk too")
	flag.BoolVar(&o.kfakeInProcess, "kfake-inprocess", false, "run kfake inside this process instead of a child process")
	flag.IntVar(&o.w.partitions, "partitions", 3, "partitions per topic")
	flag.IntVar(&o.w.producers, "producers", 1, "concurrent producer clients in the produce scenario")
	flag.DurationVar(&o.w.duration, "duration", 5*time.Second, "length of each produce scenario (ignored with -records)")
	flag.Int64Var(&o.w.records, "records", 0, "records per produce scenario, over all producers (0: use -duration)")
	flag.IntVar(&o.w.maxPending, "max-pending", 10000, "unacknowledged records allowed per producer")
	flag.IntVar(&o.w.inflightReqs, "inflight-requests", 1, "produce requests in flight per broker connection")
	flag.BoolVar(&o.w.idempotent, "idempotent", false, "idempotent produce (InitProducerId, sequence numbers; one request in flight per broker)")
	flag.DurationVar(&o.w.linger, "linger", time.Millisecond, "producer linger in the produce scenario")
	flag.DurationVar(&o.w.syncDuration, "sync-duration", 2*time.Second, "length of each produce-sync scenario (0 with -sync-records 0 skips it)")
	flag.Int64Var(&o.w.syncRecords, "sync-records", 0, "records per produce-sync scenario (0: use -sync-duration)")
	flag.DurationVar(&o.w.opTimeout, "op-timeout", 60*time.Second, "bound on each flush, consume and record delivery")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: gregor-bench [flags]\n\n"+
			"Measures produce and consume throughput and produce ack latency of Gregor\n"+
			"and of franz-go's kfake with the same workload, and prints the ratio.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", flag.Args())
	}

	for _, t := range strings.Split(*targets, ",") {
		switch t = strings.TrimSpace(t); t {
		case "gregor", "gregor-rf3", "kfake":
			if !slices.Contains(o.targets, t) {
				o.targets = append(o.targets, t)
			}
		case "":
		default:
			return nil, fmt.Errorf("-targets: unknown target %q (want gregor, gregor-rf3, kfake)", t)
		}
	}
	if len(o.targets) == 0 {
		return nil, errors.New("-targets: nothing to run")
	}
	for _, s := range strings.Split(*sizes, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		mult := 1
		if t, ok := strings.CutSuffix(s, "k"); ok {
			s, mult = t, 1024
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n*mult > 1<<20 {
			return nil, fmt.Errorf("-sizes: %q is not a size in 1..1048576", s)
		}
		o.sizes = append(o.sizes, n*mult)
	}
	codec, err := parseCompression(*compression)
	if err != nil {
		return nil, err
	}
	o.compression = strings.ToLower(*compression)
	o.w.compression = codec
	switch {
	case o.w.partitions < 1:
		return nil, errors.New("-partitions must be at least 1")
	case o.w.producers < 1:
		return nil, errors.New("-producers must be at least 1")
	case o.w.maxPending < 1:
		return nil, errors.New("-max-pending must be at least 1")
	case o.w.inflightReqs < 1:
		return nil, errors.New("-inflight-requests must be at least 1")
	case o.w.idempotent && o.w.inflightReqs != 1:
		return nil, errors.New("-idempotent takes no -inflight-requests: kgo keeps one produce request in flight per broker")
	case o.w.records < 0 || o.w.syncRecords < 0:
		return nil, errors.New("-records and -sync-records must not be negative")
	case o.w.records == 0 && o.w.duration <= 0:
		return nil, errors.New("-duration must be positive (or give -records)")
	case o.w.records > 0 && o.w.records < int64(o.w.producers):
		return nil, errors.New("-records must be at least -producers")
	case o.w.opTimeout <= 0:
		return nil, errors.New("-op-timeout must be positive")
	}
	return &o, nil
}

// run is main without os.Exit, so every deferred cleanup runs.
func run() int {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gregor-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	workDir, err := os.MkdirTemp(o.dataDir, "gregor-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gregor-bench: work dir:", err)
		return 1
	}
	defer func() {
		if o.keep {
			logf("kept work dir %s", workDir)
			return
		}
		os.RemoveAll(workDir)
	}()

	rep := &report{opts: o, workDir: workDir, errs: map[string]string{}}
	for _, name := range o.targets {
		if err := runTarget(ctx, o, name, workDir, rep); err != nil {
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				err = fmt.Errorf("run exceeded -timeout %s: %w", o.timeout, err)
			case ctx.Err() != nil:
				err = fmt.Errorf("interrupted: %w", err)
			}
			rep.errs[name] = err.Error()
			logf("%s: FAILED: %v", name, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if o.jsonOut != "-" {
		rep.printTable(os.Stdout)
	}
	if o.jsonOut != "" {
		if err := rep.writeJSON(o.jsonOut); err != nil {
			fmt.Fprintln(os.Stderr, "gregor-bench: write JSON:", err)
			return 1
		}
	}
	if len(rep.errs) > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

// runTarget starts one target, runs every size's scenarios against it, and
// stops it, whatever happens. The first failing scenario ends the target:
// after a broker error its later numbers would mean little.
func runTarget(ctx context.Context, o *options, name, workDir string, rep *report) (err error) {
	var tgt *target
	startedAt := time.Now()
	switch name {
	case "gregor", "gregor-rf3":
		bin, berr := gregorBinary(ctx, o, workDir)
		if berr != nil {
			return berr
		}
		startedAt = time.Now()
		if name == "gregor" {
			tgt, err = startGregor(ctx, bin, workDir, o.w.partitions, o.readyTimeout)
		} else {
			tgt, err = startGregorRF3(ctx, bin, workDir, o.w.partitions, o.readyTimeout)
		}
	case "kfake":
		tgt, err = startKfake(ctx, workDir, o.kfakePersist, o.kfakeInProcess)
	}
	if err != nil {
		return err
	}
	logf("%s: ready at %s after %s", name, strings.Join(tgt.seeds, ","), time.Since(startedAt).Round(time.Millisecond))
	defer func() {
		if tgt.dataDir != "" {
			rep.diskBytes(name, dirBytes(tgt.dataDir, "etcd"), tgt.dataDir)
		}
		if serr := tgt.stop(); serr != nil {
			rep.anomaly(fmt.Sprintf("%s: stop: %v", name, serr))
		}
		if err != nil {
			if tail := tgt.logTail(30); tail != "" {
				err = fmt.Errorf("%w\n--- %s log tail ---\n%s", err, name, tail)
			}
		}
	}()

	admin, err := newAdmin(tgt.seeds)
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, size := range o.sizes {
		topic := fmt.Sprintf("bench-%d", size)
		actx, acancel := context.WithTimeout(ctx, o.w.opTimeout)
		err := createTopic(actx, admin, topic, o.w.partitions, tgt.replicas, func(s string) { rep.anomaly(name + ": " + s) })
		acancel()
		if err != nil {
			return err
		}
		acked := &tally{}

		res, err := runProduce(ctx, &o.w, tgt, topic, size, acked)
		if err != nil {
			return fmt.Errorf("produce %d B: %w", size, err)
		}
		rep.add(res)

		res, anomalies, err := runConsume(ctx, &o.w, tgt, topic, size, acked)
		if err != nil {
			return fmt.Errorf("consume %d B: %w", size, err)
		}
		rep.add(res)
		for _, a := range anomalies {
			rep.anomaly(a)
		}

		if o.w.syncDuration > 0 || o.w.syncRecords > 0 {
			res, err = runSync(ctx, &o.w, tgt, topic, size, acked)
			if err != nil {
				return fmt.Errorf("produce-sync %d B: %w", size, err)
			}
			rep.add(res)
		}
	}
	return nil
}

// gregorBinary returns -gregor-bin, or else builds ./cmd/gregor into
// workDir the first time it is asked and remembers the result in o, so the
// gregor targets share one build.
func gregorBinary(ctx context.Context, o *options, workDir string) (string, error) {
	if o.gregorBin != "" {
		return o.gregorBin, nil
	}
	logf("building ./cmd/gregor")
	bin, err := buildGregor(ctx, workDir)
	if err != nil {
		return "", err
	}
	o.gregorBin = bin
	return bin, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s gregor-bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// report collects results and prints them.
type report struct {
	opts      *options
	workDir   string
	results   []result
	errs      map[string]string // target -> why it stopped early
	anomalies []string
	disk      []string
}

func (r *report) add(res result) {
	r.results = append(r.results, res)
	line := fmt.Sprintf("%s: %-12s %5d B: %9.2f MB/s %10.0f rec/s", res.Target, res.Scenario, res.Size, res.MBps, res.RecPerS)
	if res.P50ms > 0 {
		line += fmt.Sprintf("  p50 %.2f ms  p99 %.2f ms", res.P50ms, res.P99ms)
	}
	logf("%s", line)
}

func (r *report) anomaly(s string) {
	r.anomalies = append(r.anomalies, s)
	logf("anomaly: %s", s)
}

func (r *report) diskBytes(name string, n int64, dir string) {
	var payload int64
	for _, res := range r.results {
		if res.Target == name && res.Scenario != scenConsume {
			payload += res.Bytes
		}
	}
	s := fmt.Sprintf("%s wrote %.1f MB of files under %s for %.1f MB of acknowledged payload", name, float64(n)/1e6, dir, float64(payload)/1e6)
	if note := fsNote(dir); note != "" {
		s += "; " + note
	}
	r.disk = append(r.disk, s)
}

func (r *report) find(tgt, scen string, size int) (result, bool) {
	for _, res := range r.results {
		if res.Target == tgt && res.Scenario == scen && res.Size == size {
			return res, true
		}
	}
	return result{}, false
}

func (r *report) printTable(out io.Writer) {
	o := r.opts
	mode := fmt.Sprintf("%s per produce scenario", o.w.duration)
	if o.w.records > 0 {
		mode = fmt.Sprintf("%d records per produce scenario", o.w.records)
	}
	kf := "in memory"
	if o.kfakePersist {
		kf = "with -kfake-persist (writes to disk)"
	}
	if o.kfakeInProcess {
		kf += ", in-process"
	}
	fmt.Fprintf(out, "\ngregor-bench: %d partitions, %d producer(s), %s, acks=all, linger %s, max %d pending records, %d in-flight requests, compression %s\n",
		o.w.partitions, o.w.producers, mode, o.w.linger, o.w.maxPending, o.w.inflightReqs, o.compression)
	fmt.Fprintf(out, "              %s, GOMAXPROCS %d, NumCPU %d; Gregor writes to disk, kfake %s; MB = 10^6 bytes of record values\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), kf)

	// One row per scenario, size and measured target (every target but
	// kfake), with kfake's numbers beside it and the ratio target/kfake.
	var subjects []string
	for _, name := range o.targets {
		if name != "kfake" {
			subjects = append(subjects, name)
		}
	}
	if len(subjects) == 0 {
		subjects = []string{""} // only kfake: its columns alone
	}
	type summary struct {
		logSum  float64
		n       int
		atLeast int
		worst   float64
		worstAt string
	}
	sums := make(map[string]*summary, len(subjects))
	for _, s := range subjects {
		sums[s] = &summary{worst: math.Inf(1)}
	}
	rows := [][]string{{"scenario", "size", "target", "MB/s", "kfake MB/s", "rec/s", "kfake rec/s", "ratio", "p50/p99 ms", "kfake p50/p99 ms"}}
	for _, size := range o.sizes {
		for _, scen := range []string{scenProduce, scenConsume, scenSync} {
			k, kok := r.find("kfake", scen, size)
			for _, name := range subjects {
				g, gok := r.find(name, scen, size)
				if !gok && !kok {
					continue
				}
				ratio := "-"
				if gok && kok && k.RecPerS > 0 {
					x := g.RecPerS / k.RecPerS
					ratio = fmt.Sprintf("%.2fx", x)
					s := sums[name]
					s.logSum += math.Log(x)
					s.n++
					if x >= 1 {
						s.atLeast++
					}
					if x < s.worst {
						s.worst, s.worstAt = x, fmt.Sprintf("%s %d B", scen, size)
					}
				}
				label := name
				if label == "" {
					label = "-"
				}
				rows = append(rows, []string{scen, strconv.Itoa(size), label,
					num(g, gok, func(r result) string { return fmt.Sprintf("%.2f", r.MBps) }),
					num(k, kok, func(r result) string { return fmt.Sprintf("%.2f", r.MBps) }),
					num(g, gok, func(r result) string { return fmt.Sprintf("%.0f", r.RecPerS) }),
					num(k, kok, func(r result) string { return fmt.Sprintf("%.0f", r.RecPerS) }),
					ratio, lat(g, gok), lat(k, kok)})
			}
		}
	}
	printRows(out, rows)
	fmt.Fprintln(out)
	if slices.Contains(o.targets, "gregor-rf3") {
		fmt.Fprintf(out, "note: gregor-rf3 is %d brokers (%d gregor serve processes, one embedded etcd quorum) with %d replicas per partition and acks=all, so every ack waits for both followers; all %d brokers and the benchmark client share this machine's %d cores\n",
			rf3Brokers, rf3Brokers, rf3Brokers, rf3Brokers, runtime.NumCPU())
		if line := r.rf3VsGregor(); line != "" {
			fmt.Fprintln(out, "note: gregor-rf3/gregor throughput:", line)
		}
	}
	for _, d := range r.disk {
		fmt.Fprintln(out, "note:", d)
	}
	for _, a := range r.anomalies {
		fmt.Fprintln(out, "anomaly:", a)
	}
	for _, name := range o.targets {
		if e, ok := r.errs[name]; ok {
			fmt.Fprintf(out, "error: %s: %s\n", name, e)
		}
	}
	incomplete := ""
	if len(r.errs) > 0 {
		incomplete = " (incomplete: a target failed)"
	}
	printed := false
	for _, name := range subjects {
		s := sums[name]
		if s.n == 0 {
			continue
		}
		printed = true
		label := name
		if name == "gregor" {
			label = "Gregor"
		}
		fmt.Fprintf(out, "result: %s/kfake throughput ratio geometric mean %.2fx over %d scenarios; %s >= kfake in %d of %d; lowest %.2fx (%s)%s\n",
			label, math.Exp(s.logSum/float64(s.n)), s.n, label, s.atLeast, s.n, s.worst, s.worstAt, incomplete)
	}
	switch {
	case printed:
	case len(r.errs) > 0:
		fmt.Fprintln(out, "result: no ratio: a target failed (see error above)")
	default:
		fmt.Fprintf(out, "result: no ratio: only %s was run\n", strings.Join(o.targets, ","))
	}
}

// rf3VsGregor compares the replicated target with single-replica Gregor,
// scenario by scenario ("produce 100 B 0.52x, ..."); "" when either is
// missing.
func (r *report) rf3VsGregor() string {
	var parts []string
	for _, size := range r.opts.sizes {
		for _, scen := range []string{scenProduce, scenConsume, scenSync} {
			g, gok := r.find("gregor", scen, size)
			x, xok := r.find("gregor-rf3", scen, size)
			if gok && xok && g.RecPerS > 0 {
				parts = append(parts, fmt.Sprintf("%s %d B %.2fx", scen, size, x.RecPerS/g.RecPerS))
			}
		}
	}
	return strings.Join(parts, ", ")
}

// printRows prints rows as columns: the scenario name left-aligned, the rest
// right-aligned, two spaces apart.
func printRows(out io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(cell))
			if i == 0 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(pad + cell)
			}
		}
		fmt.Fprintln(out, b.String())
	}
}

func num(r result, ok bool, f func(result) string) string {
	if !ok {
		return "-"
	}
	return f(r)
}

func lat(r result, ok bool) string {
	if !ok || r.Scenario == scenConsume {
		return "-"
	}
	return fmt.Sprintf("%.2f / %.2f", r.P50ms, r.P99ms)
}

func (r *report) writeJSON(path string) error {
	o := r.opts
	doc := struct {
		Config    map[string]any    `json:"config"`
		Results   []result          `json:"results"`
		Errors    map[string]string `json:"errors,omitempty"`
		Anomalies []string          `json:"anomalies,omitempty"`
		Notes     []string          `json:"notes,omitempty"`
	}{
		Config: map[string]any{
			"targets":            o.targets,
			"sizes":              o.sizes,
			"partitions":         o.w.partitions,
			"producers":          o.w.producers,
			"duration_s":         o.w.duration.Seconds(),
			"records":            o.w.records,
			"max_pending":        o.w.maxPending,
			"inflight_requests":  o.w.inflightReqs,
			"idempotent":         o.w.idempotent,
			"linger_ms":          ms(o.w.linger),
			"compression":        o.compression,
			"sync_duration_s":    o.w.syncDuration.Seconds(),
			"sync_records":       o.w.syncRecords,
			"kfake_persist":      o.kfakePersist,
			"kfake_inprocess":    o.kfakeInProcess,
			"gregor_rf3_brokers": rf3Brokers,
			"go":                 runtime.Version(),
			"gomaxprocs":         runtime.GOMAXPROCS(0),
			"num_cpu":            runtime.NumCPU(),
		},
		Results:   r.results,
		Errors:    r.errs,
		Anomalies: r.anomalies,
		Notes:     r.disk,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
