package integration

// Helpers shared by the transaction tests of txn_etl_test.go,
// txn_failover_test.go, txn_restart_test.go, txn_offsets_test.go and
// txn_clients_test.go. Every name starts with txx so nothing collides with
// the helpers of txn_test.go and txn_markers_test.go.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txxReadAll reads every partition of topic from the start with the given
// isolation level until it has reached each partition's end offset (the
// high watermark when it is called), and returns the data records (no
// control records) by partition. A read_committed reader that cannot reach
// the high watermark (a transaction left open: the last stable offset does
// not move) fails the test when timeout passes.
func txxReadAll(ctx context.Context, t testing.TB, seeds []string, topic string, iso kgo.IsolationLevel, timeout time.Duration) map[int32][]*kgo.Record {
	t.Helper()
	adm := kadm.NewClient(fzClient(t, seeds[0], kgo.SeedBrokers(seeds...)))
	adm.SetTimeoutMillis(15000)
	var ends map[int32]int64
	fzWaitFor(t, 30*time.Second, "end offsets of "+topic, func() error {
		lo, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		ends = make(map[int32]int64)
		var errs []string
		lo.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				errs = append(errs, fmt.Sprintf("%d: %v", o.Partition, o.Err))
			}
			ends[o.Partition] = o.Offset
		})
		if len(errs) > 0 || len(ends) == 0 {
			return fmt.Errorf("end offsets %v, errors %v", ends, errs)
		}
		return nil
	})
	parts := make(map[int32]kgo.Offset)
	left := make(map[int32]int64) // partition -> end offset still to reach
	for p, end := range ends {
		parts[p] = kgo.NewOffset().AtStart()
		if end > 0 {
			left[p] = end
		}
	}
	out := make(map[int32][]*kgo.Record)
	if len(left) == 0 {
		return out
	}
	cl := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords())
	defer cl.Close()
	deadline := time.Now().Add(timeout)
	for len(left) > 0 {
		if time.Now().After(deadline) {
			var pos []string
			for p, end := range left {
				last := int64(-1)
				if rs := out[p]; len(rs) > 0 {
					last = rs[len(rs)-1].Offset
				}
				pos = append(pos, fmt.Sprintf("partition %d: last data record at %d, end %d", p, last, end))
			}
			sort.Strings(pos)
			t.Fatalf("reading %s (isolation %v): did not reach the end offsets within %v: %s", topic, iso, timeout, strings.Join(pos, "; "))
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			t.Logf("reading %s[%d]: %v (retrying)", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out[r.Partition] = append(out[r.Partition], r)
			}
			if end, ok := left[r.Partition]; ok && r.Offset >= end-1 {
				delete(left, r.Partition)
			}
		})
	}
	return out
}

// txxValues flattens records by partition into their values, partition by
// partition in offset order.
func txxValues(byPart map[int32][]*kgo.Record) []string {
	ps := make([]int32, 0, len(byPart))
	for p := range byPart {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	var out []string
	for _, p := range ps {
		for _, r := range byPart[p] {
			out = append(out, string(r.Value))
		}
	}
	return out
}

// txxDescribe describes one transactional id.
func txxDescribe(ctx context.Context, adm *kadm.Client, id string) (kadm.DescribedTransaction, error) {
	ds, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		return kadm.DescribedTransaction{}, err
	}
	d, ok := ds[id]
	if !ok {
		return d, fmt.Errorf("DescribeTransactions: %s missing from %v", id, ds)
	}
	if d.Err != nil {
		return d, fmt.Errorf("DescribeTransactions(%s): %w", id, d.Err)
	}
	return d, nil
}

// txxWaitState waits until id's transaction is in state (on whichever
// broker coordinates it) and returns its description.
func txxWaitState(ctx context.Context, t testing.TB, adm *kadm.Client, id, state string, timeout time.Duration) kadm.DescribedTransaction {
	t.Helper()
	var d kadm.DescribedTransaction
	fzWaitFor(t, timeout, fmt.Sprintf("transaction %s in state %s", id, state), func() error {
		var err error
		if d, err = txxDescribe(ctx, adm, id); err != nil {
			return err
		}
		if d.State != state {
			return fmt.Errorf("state %s (producer %d epoch %d, coordinator %d)", d.State, d.ProducerID, d.ProducerEpoch, d.Coordinator)
		}
		return nil
	})
	return d
}
