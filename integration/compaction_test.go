package integration

// Compaction of user topics (cleanup.policy=compact) by the log cleaner,
// read back by real clients: the latest value of each key stays at its
// offset, tombstones go after delete.retention.ms, records of aborted
// transactions go, the segments shrink, a kill -9 in the middle of a
// cleaner swap loses nothing, and the three replicas of a partition each
// clean their own log to the same records.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorbroker/gregor/protocol"
)

// compKV is what a client read (or a producer wrote) at one offset.
type compKV struct {
	offset    int64
	value     string
	tombstone bool
}

// compTopicConfigs are the configs of a topic the cleaner works on at
// once: small segments, any dirt makes it due, tombstones kept 2 s.
func compTopicConfigs() map[string]*string {
	s := func(v string) *string { return &v }
	return map[string]*string{
		"cleanup.policy":            s("compact"),
		"segment.bytes":             s("4096"),
		"min.cleanable.dirty.ratio": s("0.01"),
		"delete.retention.ms":       s("2000"),
		// Held until compRelease, so that a test sees its writes before
		// any cleaning.
		"min.compaction.lag.ms": s("3600000"),
	}
}

// compRelease lets the cleaner at topic (min.compaction.lag.ms=0).
func compRelease(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	zero := "0"
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "min.compaction.lag.ms", Value: &zero}}, topic)
	if err == nil && len(resps) != 1 {
		err = fmt.Errorf("%d responses", len(resps))
	}
	if err == nil {
		err = resps[0].Err
	}
	if err != nil {
		t.Fatalf("set min.compaction.lag.ms=0 on %s: %v", topic, err)
	}
}

// compLatestCheck says how records read back differ from a log that
// reads, for every key, the latest value written at its offset (older
// values may be left, in offset order).
func compLatestCheck(got []compRead, latest map[string]compKV) error {
	last := map[string]compKV{}
	prev := int64(-1)
	for _, r := range got {
		if r.offset <= prev {
			return fmt.Errorf("offset %d after %d", r.offset, prev)
		}
		prev = r.offset
		last[r.key] = r.compKV
	}
	for k, w := range latest {
		if last[k] != w {
			return fmt.Errorf("key %s reads %+v, the latest written is %+v", k, last[k], w)
		}
	}
	return nil
}

// compProduceOverwrites writes rounds of overwrites of keys k00..k(n-1),
// the last round deleting every fifth key, then filler records of one key
// so that everything before is in closed segments. It returns the latest
// record of each key and the offset after the last record.
func compProduceOverwrites(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, rounds, keys int) (map[string]compKV, int64) {
	t.Helper()
	latest := map[string]compKV{}
	var end int64
	pad := strings.Repeat("x", 60)
	for r := range rounds {
		var recs []*kgo.Record
		for k := range keys {
			rec := &kgo.Record{Topic: topic, Partition: 0, Key: []byte(fmt.Sprintf("k%02d", k)), Value: []byte(fmt.Sprintf("r%d-k%02d-%s", r, k, pad))}
			if r == rounds-1 && k%5 == 0 {
				rec.Value = nil
			}
			recs = append(recs, rec)
		}
		for _, rec := range fzProduceSync(ctx, t, cl, recs...) {
			latest[string(rec.Key)] = compKV{offset: rec.Offset, value: string(rec.Value), tombstone: rec.Value == nil}
			end = max(end, rec.Offset+1)
		}
	}
	for i := range 60 {
		rec := fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("filler"), Value: []byte(fmt.Sprintf("filler-%d-%s", i, pad))})[0]
		latest["filler"] = compKV{offset: rec.Offset, value: string(rec.Value)}
		end = rec.Offset + 1
	}
	return latest, end
}

// compReadFranz reads partition 0 from offset 0 up to the record at end-1
// with franz-go.
func compReadFranz(ctx context.Context, t *testing.T, addr, topic string, end int64, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := fzClient(t, addr, append([]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}})}, opts...)...)
	defer cl.Close()
	var out []*kgo.Record
	for len(out) == 0 || out[len(out)-1].Offset < end-1 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: read to offset %d of %d before %v", topic, len(out), end, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			t.Fatalf("fetch %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// compCheck says how records read back differ from a compacted log of
// latest: one record per key but the filler's (which is in the active
// segment and stays), each the latest, at its offset, in offset order,
// tombstones gone when tombstonesGone.
func compCheck(got []compRead, latest map[string]compKV, tombstonesGone bool) error {
	seen := map[string]int{}
	last := int64(-1)
	for _, r := range got {
		if r.offset <= last {
			return fmt.Errorf("offset %d after %d", r.offset, last)
		}
		last = r.offset
		seen[r.key]++
		want, ok := latest[r.key]
		if !ok {
			return fmt.Errorf("unknown key %q", r.key)
		}
		if r.key == "filler" {
			continue
		}
		if r.compKV != want {
			return fmt.Errorf("key %s: read %+v, want the latest %+v", r.key, r.compKV, want)
		}
	}
	for k, w := range latest {
		n := seen[k]
		switch {
		case k == "filler":
		case w.tombstone && tombstonesGone && n != 0:
			return fmt.Errorf("tombstone of %s still there", k)
		case w.tombstone && !tombstonesGone:
		case !w.tombstone && n != 1:
			return fmt.Errorf("key %s read %d times", k, n)
		}
	}
	return nil
}

// compRead is one record read back.
type compRead struct {
	key string
	compKV
}

func compFromFranz(recs []*kgo.Record) []compRead {
	var out []compRead
	for _, r := range recs {
		out = append(out, compRead{string(r.Key), compKV{r.Offset, string(r.Value), r.Value == nil}})
	}
	return out
}

// compReadKafkaGo reads partition 0 from the first offset up to the
// record at end-1 with kafka-go's Reader.
func compReadKafkaGo(ctx context.Context, t *testing.T, addr, topic string, end int64) []compRead {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatalf("Reader.SetOffset: %v", err)
	}
	var out []compRead
	for len(out) == 0 || out[len(out)-1].offset < end-1 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("kafka-go reader after %d messages: %v", len(out), err)
		}
		out = append(out, compRead{string(m.Key), compKV{m.Offset, string(m.Value), m.Value == nil}})
	}
	return out
}

// compLogFiles counts a partition's .log files and their bytes.
func compLogFiles(t *testing.T, dir string) (int, int64) {
	t.Helper()
	var size int64
	files := fzLogFiles(t, dir)
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err == nil {
			size += fi.Size()
		}
	}
	return len(files), size
}

// TestCompactionOverwritesAndTombstones: overwrites and tombstones of a
// compacted topic, read back by franz-go and kafka-go after the cleaner
// ran: the latest value per key at its offset, fewer and smaller
// segments (what Kafka Connect's internal topics need), then the
// tombstones gone after delete.retention.ms.
func TestCompactionOverwritesAndTombstones(t *testing.T) {
	p := startBroker(t, "--config", "log.cleaner.backoff.ms=100")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "compact")
	fzCreateTopic(ctx, t, adm, topic, 1, compTopicConfigs())
	cl := fzClient(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	latest, end := compProduceOverwrites(ctx, t, cl, topic, 10, 30)
	dir := fzPartitionDir(p, topic, 0)
	segsBefore, sizeBefore := compLogFiles(t, dir)
	if segsBefore < 5 {
		t.Fatalf("only %d segments were written", segsBefore)
	}
	if err := compCheck(compFromFranz(compReadFranz(ctx, t, p.Addr, topic, end)), latest, false); err == nil {
		t.Fatal("the log was compacted while min.compaction.lag.ms held it")
	}
	compRelease(ctx, t, adm, topic)

	fzWaitFor(t, 60*time.Second, "the latest value of every key, and the tombstones gone", func() error {
		return compCheck(compFromFranz(compReadFranz(ctx, t, p.Addr, topic, end)), latest, true)
	})
	if err := compCheck(compReadKafkaGo(ctx, t, p.Addr, topic, end), latest, true); err != nil {
		t.Fatalf("kafka-go reader: %v", err)
	}
	segsAfter, sizeAfter := compLogFiles(t, dir)
	if segsAfter >= segsBefore || sizeAfter*2 >= sizeBefore {
		t.Errorf("%d segments of %d bytes after cleaning, %d of %d before", segsAfter, sizeAfter, segsBefore, sizeBefore)
	}
	// The log start did not move, and ListOffsets agrees.
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup(topic, 0); o.Offset != 0 {
		t.Errorf("log start offset %d after compaction, want 0", o.Offset)
	}
	if !strings.Contains(p.Logs(), "cleaned log") {
		t.Errorf("no cleaner pass logged")
	}
	// The cleaner checkpoint is in Kafka's format and place.
	if b, err := os.ReadFile(filepath.Join(p.DataDir, "cleaner-offset-checkpoint")); err != nil || !strings.Contains(string(b), topic+" 0 ") {
		t.Errorf("cleaner-offset-checkpoint: %q %v", b, err)
	}
	// A restart reads the same.
	p.Stop()
	p.Restart()
	if err := compCheck(compFromFranz(compReadFranz(ctx, t, p.Addr, topic, end)), latest, true); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	fzCheckLogs(t, p)
}

// TestCompactionTombstonesKeptForDeleteRetention: with a long
// delete.retention.ms, the cleaner removes the overwritten values but
// keeps the tombstones, which a consumer reads.
func TestCompactionTombstonesKeptForDeleteRetention(t *testing.T) {
	p := startBroker(t, "--config", "log.cleaner.backoff.ms=100")
	ctx := testContext(t, 90*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "compact-keep")
	cfg := compTopicConfigs()
	long := "3600000"
	cfg["delete.retention.ms"] = &long
	fzCreateTopic(ctx, t, adm, topic, 1, cfg)
	cl := fzClient(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	latest, end := compProduceOverwrites(ctx, t, cl, topic, 6, 20)
	compRelease(ctx, t, adm, topic)
	fzWaitFor(t, 60*time.Second, "one record per key, tombstones included", func() error {
		got := compFromFranz(compReadFranz(ctx, t, p.Addr, topic, end))
		if err := compCheck(got, latest, false); err != nil {
			return err
		}
		tombs := 0
		for _, r := range got {
			if r.tombstone {
				tombs++
			}
		}
		if n := len(got) - 60; n > 20 || tombs != 4 {
			return fmt.Errorf("%d records besides the filler, %d tombstones; want 20 and 4", n, tombs)
		}
		return nil
	})
}

// TestCompactionTransactions: committed and aborted transactions on a
// compacted topic. After cleaning, a read_committed consumer reads the
// latest committed value of each key, and even a read_uncommitted one
// finds no record of the aborted transaction left.
func TestCompactionTransactions(t *testing.T) {
	p := startBroker(t, "--config", "log.cleaner.backoff.ms=100")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "compact-txn")
	fzCreateTopic(ctx, t, adm, topic, 1, compTopicConfigs())
	pad := strings.Repeat("y", 60)
	txnCl := fzClient(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.TransactionalID(topic+"-txn"))
	want := map[string]string{}
	for round := range 8 {
		if err := txnCl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		commit := round%2 == 0
		var recs []*kgo.Record
		for k := range 10 {
			v := fmt.Sprintf("round%d-%v-%s", round, commit, pad)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Key: []byte(fmt.Sprintf("t%d", k)), Value: []byte(v)})
			if commit {
				want[fmt.Sprintf("t%d", k)] = v
			}
		}
		fzProduceSync(ctx, t, txnCl, recs...)
		if err := txnCl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %d: %v", round, err)
		}
	}
	// Non-transactional filler rolls the transactions into closed segments.
	plain := fzClient(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	var end int64
	for i := range 60 {
		r := fzProduceSync(ctx, t, plain, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("filler"), Value: []byte(fmt.Sprintf("f%d-%s", i, pad))})[0]
		end = r.Offset + 1
	}
	compRelease(ctx, t, adm, topic)
	fzWaitFor(t, 60*time.Second, "the aborted transactions' records to be cleaned away", func() error {
		for _, iso := range []kgo.IsolationLevel{kgo.ReadCommitted(), kgo.ReadUncommitted()} {
			got := compReadFranz(ctx, t, p.Addr, topic, end, kgo.FetchIsolationLevel(iso))
			seen := map[string]int{}
			for _, r := range got {
				k := string(r.Key)
				if k == "filler" {
					continue
				}
				seen[k]++
				if strings.Contains(string(r.Value), "-false-") {
					return fmt.Errorf("record of an aborted transaction at offset %d", r.Offset)
				}
				if string(r.Value) != want[k] {
					return fmt.Errorf("key %s: %q, want %q", k, r.Value, want[k])
				}
			}
			if len(seen) != 10 {
				return fmt.Errorf("%d keys", len(seen))
			}
			for k, n := range seen {
				if n != 1 {
					return fmt.Errorf("key %s read %d times", k, n)
				}
			}
		}
		return nil
	})
	// The producer carries on after cleaning: its state survived.
	if err := txnCl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	fzProduceSync(ctx, t, txnCl, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("t0"), Value: []byte("after")})
	if err := txnCl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("transaction after cleaning: %v", err)
	}
	fzCheckLogs(t, p)
}

// TestCompactionKillDuringSwap kills the broker (SIGKILL, from inside, at
// an exact rename of the cleaner's swap: the faultinject build's
// CRASH-CLEAN trigger) before the swap is decided and after, restarts it
// and reads the latest value of every key at its offset.
func TestCompactionKillDuringSwap(t *testing.T) {
	bin := faultInjectBin(t)
	for _, step := range []string{".log.swap", ".deleted"} {
		t.Run(strings.TrimPrefix(step, "."), func(t *testing.T) {
			p := newBrokerProc(t, "--config", "log.cleaner.backoff.ms=100")
			p.bin = bin
			p.start()
			ctx := testContext(t, 120*time.Second)
			adm := fzAdmin(t, p.Addr)
			topic := fzTopic(t, "compact-kill")
			cfg := compTopicConfigs()
			long := "3600000"
			cfg["delete.retention.ms"] = &long
			fzCreateTopic(ctx, t, adm, topic, 1, cfg)
			dir := fzPartitionDir(p, topic, 0)
			fzWaitFor(t, 30*time.Second, "the partition directory", func() error {
				_, err := os.Stat(dir)
				return err
			})
			if err := os.WriteFile(filepath.Join(dir, "CRASH-CLEAN"), []byte(step), 0o644); err != nil {
				t.Fatal(err)
			}
			cl := fzClient(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
			latest, end := compProduceOverwrites(ctx, t, cl, topic, 8, 20)
			cl.Close()
			compRelease(ctx, t, adm, topic)
			fzWaitFor(t, 60*time.Second, "the broker to kill itself mid-swap", func() error {
				p.mu.Lock()
				done := p.done
				p.mu.Unlock()
				select {
				case <-done:
					return nil
				default:
					return errors.New("still running")
				}
			})
			p.Kill() // reaped already; closes its log file
			if err := os.Remove(filepath.Join(dir, "CRASH-CLEAN")); err != nil {
				t.Fatal(err)
			}
			p.Restart()
			// Whatever step the kill hit, every key reads its latest value
			// at its offset...
			if err := compLatestCheck(compFromFranz(compReadFranz(ctx, t, p.Addr, topic, end)), latest); err != nil {
				t.Fatalf("after a kill at %s: %v", step, err)
			}
			// ...and the cleaner, going on, compacts the log.
			fzWaitFor(t, 60*time.Second, "the log cleaned after the restart", func() error {
				return compCheck(compFromFranz(compReadFranz(ctx, t, p.Addr, topic, end)), latest, false)
			})
			// Stopped (a pass in progress gives up cleanly), the broker
			// leaves none of the cleaner's temporary files.
			p.Stop()
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".swap") || strings.HasSuffix(e.Name(), ".cleaned") || e.Name() == "cleaner-swap" {
					t.Errorf("left after the restart: %s", e.Name())
				}
			}
			if !strings.Contains(p.Logs(), "finished a cleaner swap interrupted by a crash") && step == ".deleted" {
				t.Errorf("the restart did not finish the decided swap")
			}
		})
	}
}

// TestCompactionReplicasAgree: three brokers, a compacted topic with
// replication factor 3. Each replica cleans its own log; read from each
// broker's files, the three logs hold the same latest record of every
// key. One follower is down while the leader cleans: it then catches up
// across the gaps the leader's cleaning left.
func TestCompactionReplicasAgree(t *testing.T) {
	brokers := startQuorumCluster(t, 3, "--config", "log.cleaner.backoff.ms=100", "--config", "replica.lag.time.max.ms=3000")
	ctx := testContext(t, 180*time.Second)
	adm := fzAdmin(t, brokers[0].Addr)
	topic := fzTopic(t, "compact-repl")
	cfg := compTopicConfigs()
	long := "3600000"
	cfg["delete.retention.ms"] = &long
	replCreateTopic(ctx, t, adm, topic, 1, 3, cfg)
	replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
	var leader int32
	fzWaitFor(t, 30*time.Second, "a leader", func() error {
		if leader = replPartition(ctx, t, adm, topic, 0).Leader; leader < 1 || leader > 3 {
			return fmt.Errorf("leader %d", leader)
		}
		return nil
	})
	var seeds []string
	var down *brokerProc
	for i, b := range brokers {
		seeds = append(seeds, b.Addr)
		if int32(i+1) != leader && down == nil {
			down = b
		}
	}
	cl := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	// Half the writes with every replica up, the rest with one down.
	latest, _ := compProduceOverwrites(ctx, t, cl, topic, 4, 20)
	down.Kill()
	more, _ := compProduceOverwrites(ctx, t, cl, topic, 6, 20)
	for k, v := range more {
		latest[k] = v
	}
	compRelease(ctx, t, adm, topic)
	codecs := protocol.NewCodecs()
	check := func(b *brokerProc) error {
		recs, err := compReadDir(codecs, fzPartitionDir(b, topic, 0))
		if err != nil {
			return err
		}
		return compCheck(recs, latest, false)
	}
	lb := brokers[leader-1]
	fzWaitFor(t, 60*time.Second, "the leader's log compacted", func() error { return check(lb) })
	down.Restart()
	fzWaitFor(t, 90*time.Second, "every replica's log compacted to the latest records", func() error {
		for i, b := range brokers {
			if err := check(b); err != nil {
				return fmt.Errorf("broker %d: %v", i+1, err)
			}
		}
		return nil
	})
	replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)
	if strings.Contains(down.Logs(), "cannot append fetched batch") {
		t.Errorf("the follower that was down could not take the leader's compacted batches")
	}
}

// compReadDir reads every record of a partition's .log files, oldest
// segment first, straight from the files.
func compReadDir(codecs *protocol.Codecs, dir string) ([]compRead, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []compRead
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for len(b) > 0 {
			n := protocol.BatchSize(b)
			if n < protocol.BatchHeaderSize || n > len(b) {
				return nil, fmt.Errorf("%s: torn batch", e.Name())
			}
			batch := b[:n]
			b = b[n:]
			if h, err := protocol.ParseBatchHeader(batch); err != nil {
				return nil, err
			} else if h.Attributes&protocol.AttrControl != 0 {
				continue
			}
			recs, err := codecs.RecordsAt(batch)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", e.Name(), err)
			}
			for _, r := range recs {
				out = append(out, compRead{string(r.Record.Key), compKV{r.Offset, string(r.Record.Value), r.Record.Value == nil}})
			}
		}
	}
	return out, nil
}
