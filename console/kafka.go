package console

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaCluster is the Cluster the command gives the console: it reads the
// cluster over the Kafka protocol, through a client of the broker's own
// listener, so every page shows the whole cluster (groups coordinated by
// other brokers, partitions led by them) as any admin client would see
// it. Safe for concurrent use.
type KafkaCluster struct {
	// cl is the shared admin client; owned by the caller of
	// NewKafkaCluster, which closes it.
	cl    *kgo.Client
	adm   *kadm.Client
	seeds []string // for the short-lived consumers of the records page
}

// NewKafkaCluster returns a Cluster that reads through cl, whose seeds
// are the broker's own listener; seeds are given again to the consumer
// each records page makes.
func NewKafkaCluster(cl *kgo.Client, seeds []string) *KafkaCluster {
	return &KafkaCluster{cl: cl, adm: kadm.NewClient(cl), seeds: seeds}
}

// Overview lists the brokers, topics and groups.
func (k *KafkaCluster) Overview(ctx context.Context, maxList int) (Overview, error) {
	var ov Overview
	md, err := k.adm.Metadata(ctx)
	if err != nil {
		return ov, fmt.Errorf("console: metadata: %w", err)
	}
	ov.ClusterID, ov.Controller = md.Cluster, md.Controller
	for _, b := range md.Brokers {
		rack := ""
		if b.Rack != nil {
			rack = *b.Rack
		}
		ov.Brokers = append(ov.Brokers, Broker{ID: b.NodeID, Host: b.Host, Port: b.Port, Rack: rack, Controller: b.NodeID == md.Controller})
	}
	for _, t := range md.Topics.Sorted() {
		if len(ov.Topics) == maxList {
			ov.TopicsTruncated = true
			break
		}
		ts := TopicSummary{Name: t.Topic, Partitions: len(t.Partitions), Internal: t.IsInternal}
		if n := t.Partitions.NumReplicas(); n > 0 {
			ts.Replication = n
		}
		if t.Err != nil {
			ts.Err = t.Err.Error()
		}
		ov.Topics = append(ov.Topics, ts)
	}
	groups, err := k.adm.ListGroups(ctx)
	if err != nil {
		ov.Errs = append(ov.Errs, "list groups: "+err.Error())
	}
	for _, g := range groups.Sorted() {
		if len(ov.Groups) == maxList {
			ov.GroupsTruncated = true
			break
		}
		ov.Groups = append(ov.Groups, GroupSummary{ID: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	return ov, nil
}

// Topic describes one topic: partitions with their offsets and the
// leader's log size, and its configs.
func (k *KafkaCluster) Topic(ctx context.Context, name string) (Topic, error) {
	t := Topic{Name: name}
	md, err := k.adm.Metadata(ctx, name)
	if err != nil {
		return t, fmt.Errorf("console: metadata of %s: %w", name, err)
	}
	td, ok := md.Topics[name]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return t, fmt.Errorf("%w: topic %q", ErrNotFound, name)
	}
	if td.Err != nil {
		return t, fmt.Errorf("console: topic %s: %w", name, td.Err)
	}
	t.ID, t.Internal = td.ID.String(), td.IsInternal
	starts, err := k.adm.ListStartOffsets(ctx, name)
	if err != nil {
		t.Errs = append(t.Errs, "log start offsets: "+err.Error())
	}
	ends, err := k.adm.ListEndOffsets(ctx, name)
	if err != nil {
		t.Errs = append(t.Errs, "high watermarks: "+err.Error())
	}
	set := make(kadm.TopicsSet)
	for _, p := range td.Partitions {
		set.Add(name, p.Partition)
	}
	dirs, err := k.adm.DescribeAllLogDirs(ctx, set)
	if err != nil {
		t.Errs = append(t.Errs, "log dirs: "+err.Error())
	}
	for _, p := range td.Partitions.Sorted() {
		part := Partition{Index: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: p.Replicas, ISR: p.ISR, Start: -1, End: -1, Size: -1}
		if p.Err != nil {
			part.Err = p.Err.Error()
		}
		if o, ok := starts.Lookup(name, p.Partition); ok && o.Err == nil {
			part.Start = o.Offset
		}
		if o, ok := ends.Lookup(name, p.Partition); ok {
			if o.Err == nil {
				part.End = o.Offset
			} else if part.Err == "" {
				part.Err = o.Err.Error()
			}
		}
		for _, d := range dirs[p.Leader] {
			if dp, ok := d.Topics[name][p.Partition]; ok {
				part.Size = dp.Size
			}
		}
		t.Partitions = append(t.Partitions, part)
	}
	rcs, err := k.adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		t.Errs = append(t.Errs, "configs: "+err.Error())
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			t.Errs = append(t.Errs, "configs: "+rc.Err.Error())
			continue
		}
		for _, c := range rc.Configs {
			v := ""
			if c.Value != nil {
				v = *c.Value
			}
			t.Configs = append(t.Configs, Config{Name: c.Key, Value: v, Source: c.Source.String(), Sensitive: c.Sensitive})
		}
	}
	sort.Slice(t.Configs, func(i, j int) bool { return t.Configs[i].Name < t.Configs[j].Name })
	return t, nil
}

// Group describes one group with its lag on every partition it has
// committed or is assigned.
func (k *KafkaCluster) Group(ctx context.Context, id string) (Group, error) {
	g := Group{ID: id, Coordinator: -1}
	lags, err := k.adm.Lag(ctx, id)
	if err != nil {
		return g, fmt.Errorf("console: group %s: %w", id, err)
	}
	l, ok := lags[id]
	if !ok {
		return g, fmt.Errorf("%w: group %q", ErrNotFound, id)
	}
	if errors.Is(l.DescribeErr, kerr.GroupIDNotFound) || (l.State == "Dead" && len(l.Lag) == 0) {
		return g, fmt.Errorf("%w: group %q", ErrNotFound, id)
	}
	if l.DescribeErr != nil {
		g.Errs = append(g.Errs, "describe: "+l.DescribeErr.Error())
	}
	if l.FetchErr != nil {
		g.Errs = append(g.Errs, "committed offsets: "+l.FetchErr.Error())
	}
	g.State, g.ProtocolType, g.Protocol, g.Coordinator = l.State, l.ProtocolType, l.Protocol, l.Coordinator.NodeID
	for _, m := range l.Members {
		mem := Member{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
		if m.InstanceID != nil {
			mem.InstanceID = *m.InstanceID
		}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				for _, p := range t.Partitions {
					mem.Assigned = append(mem.Assigned, t.Topic+"-"+strconv.Itoa(int(p)))
				}
			}
		}
		g.Members = append(g.Members, mem)
	}
	for _, ml := range l.Lag.Sorted() {
		pl := PartitionLag{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, End: -1, Lag: ml.Lag}
		if ml.End.Err == nil {
			pl.End = ml.End.Offset
		}
		if ml.Member != nil {
			pl.Member = ml.Member.MemberID
		}
		if ml.Err != nil {
			pl.Err = ml.Err.Error()
		}
		if pl.Lag > 0 {
			g.TotalLag += pl.Lag
		}
		g.Lag = append(g.Lag, pl)
	}
	return g, nil
}

// Transactions lists the transactional ids and describes them.
func (k *KafkaCluster) Transactions(ctx context.Context, maxList int) (Transactions, error) {
	var out Transactions
	listed, err := k.adm.ListTransactions(ctx, nil, nil)
	if err != nil {
		return out, fmt.Errorf("console: list transactions: %w", err)
	}
	ids := listed.TransactionalIDs()
	sort.Strings(ids)
	if len(ids) > maxList {
		ids, out.Truncated = ids[:maxList], true
	}
	if len(ids) == 0 {
		return out, nil
	}
	described, err := k.adm.DescribeTransactions(ctx, ids...)
	if err != nil {
		out.Errs = append(out.Errs, "describe transactions: "+err.Error())
	}
	for _, id := range ids {
		l := listed[id]
		tx := Txn{ID: id, State: l.State, ProducerID: l.ProducerID, ProducerEpoch: -1, Coordinator: l.Coordinator}
		if d, ok := described[id]; ok {
			if d.Err != nil {
				tx.Err = d.Err.Error()
			} else {
				tx.State, tx.ProducerID, tx.ProducerEpoch = d.State, d.ProducerID, d.ProducerEpoch
				tx.Coordinator, tx.TimeoutMs = d.Coordinator, d.TimeoutMillis
				if d.StartTimestamp > 0 {
					tx.Started = time.UnixMilli(d.StartTimestamp)
				}
				d.Topics.Each(func(t string, p int32) {
					tx.Partitions = append(tx.Partitions, t+"-"+strconv.Itoa(int(p)))
				})
				sort.Strings(tx.Partitions)
			}
		}
		out.Txns = append(out.Txns, tx)
	}
	return out, nil
}

// recordsFetchBytes bounds what the records page's consumer fetches per
// request.
const recordsFetchBytes = 1 << 20

// Records reads the last n records below the high watermark of a
// partition with a consumer of its own, closed before returning. It stops
// at ctx's deadline with what it has, saying so.
func (k *KafkaCluster) Records(ctx context.Context, topic string, partition int32, n int) (Records, error) {
	r := Records{Topic: topic, Partition: partition, Start: -1, End: -1}
	starts, err := k.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return r, fmt.Errorf("console: log start offsets of %s: %w", topic, err)
	}
	ends, err := k.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return r, fmt.Errorf("console: high watermarks of %s: %w", topic, err)
	}
	so, ok1 := starts.Lookup(topic, partition)
	eo, ok2 := ends.Lookup(topic, partition)
	if !ok1 || !ok2 || errors.Is(so.Err, kerr.UnknownTopicOrPartition) || errors.Is(eo.Err, kerr.UnknownTopicOrPartition) {
		return r, fmt.Errorf("%w: partition %s-%d", ErrNotFound, topic, partition)
	}
	if so.Err != nil || eo.Err != nil {
		return r, fmt.Errorf("console: offsets of %s-%d: %w", topic, partition, errors.Join(so.Err, eo.Err))
	}
	r.Start, r.End = so.Offset, eo.Offset
	r.From = max(r.Start, r.End-int64(n))
	if r.From >= r.End {
		return r, nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(r.From)}}),
		kgo.FetchMaxBytes(recordsFetchBytes),
		kgo.FetchMaxPartitionBytes(recordsFetchBytes),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.ClientID("gregor-console"),
	)
	if err != nil {
		return r, fmt.Errorf("console: records consumer: %w", err)
	}
	defer cl.Close()
	// Offsets below End are few (at most n), but compaction and
	// transaction markers leave gaps: stop at the last offset below End,
	// or at ctx's deadline.
	for last := r.From - 1; last < r.End-1; {
		fs := cl.PollRecords(ctx, n)
		if ctx.Err() != nil {
			r.Partial = "stopped at the page's deadline; later records may be missing"
			break
		}
		if errs := fs.Errors(); len(errs) > 0 {
			r.Partial = "fetch: " + errs[0].Err.Error()
			break
		}
		progressed := false
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset <= last {
				return
			}
			last, progressed = rec.Offset, true
			if rec.Offset < r.End {
				r.Records = append(r.Records, shown(rec))
			}
		})
		if !progressed {
			break // only control batches left below End
		}
	}
	if len(r.Records) > n {
		r.Records = r.Records[len(r.Records)-n:]
	}
	return r, nil
}

// shown is how a record is displayed: key and value cut at MaxValueBytes.
func shown(rec *kgo.Record) Record {
	out := Record{Offset: rec.Offset, Timestamp: rec.Timestamp, Headers: len(rec.Headers),
		KeyNull: rec.Key == nil, ValueNull: rec.Value == nil}
	var cut1, cut2 bool
	out.Key, cut1 = displayBytes(rec.Key, MaxValueBytes)
	out.Value, cut2 = displayBytes(rec.Value, MaxValueBytes)
	out.Truncated = cut1 || cut2
	return out
}

// displayBytes renders b as text when it is UTF-8 and in hex otherwise,
// cut to at most limit bytes of b (on a rune boundary); cut reports
// whether b was longer.
func displayBytes(b []byte, limit int) (s string, cut bool) {
	if len(b) > limit {
		b, cut = b[:limit], true
		// Text whose last rune the cut split in two: drop that rune's
		// first bytes.
		for i := 1; i < utf8.UTFMax && i < len(b); i++ {
			if !utf8.Valid(b) && utf8.Valid(b[:len(b)-i]) {
				b = b[:len(b)-i]
				break
			}
		}
	}
	if utf8.Valid(b) {
		return string(b), cut
	}
	return "0x" + hex.EncodeToString(b), cut
}
