package integration

// The console (GET / on --http-addr) loaded in a real headless browser,
// Debian's chromium, against a live broker: topics with records, a
// consumer group that committed and then fell behind, a committed
// transaction; each page is rendered by chromium (--dump-dom) and its DOM
// checked for what the page must show.
//
// The test skips when chromium is not installed, unless
// GREGOR_REQUIRE_CHROMIUM is set (`make integration` sets it), in which
// case a missing chromium fails it.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// chromiumBin returns chromium's path, or skips or fails the test when it
// is missing.
func chromiumBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("GREGOR_REQUIRE_CHROMIUM") != "" {
		t.Fatalf("GREGOR_REQUIRE_CHROMIUM is set but chromium is not on PATH; install it (apt-get install chromium)")
	}
	t.Skip("chromium is not on PATH; set GREGOR_REQUIRE_CHROMIUM=1 to make this a failure")
	return ""
}

// dumpDOM loads url in headless chromium and returns the DOM it built,
// bounded to a minute.
func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--no-first-run", "--user-data-dir="+t.TempDir(), "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.String())
	}
	if !strings.Contains(string(out), "</html>") {
		t.Fatalf("chromium --dump-dom %s: no document:\n%s\n%s", url, out, stderr.String())
	}
	return string(out)
}

func domHas(t *testing.T, page, dom string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(dom, w) {
			t.Errorf("%s: the browser's DOM lacks %q:\n%s", page, w, dom)
		}
	}
}

func TestConsoleInBrowser(t *testing.T) {
	bin := chromiumBin(t)
	p := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := fzAdmin(t, p.Addr)
	const topic, other, txnTopic = "console-orders", "console-events", "console-txn-out"
	fzCreateTopic(ctx, t, adm, topic, 3, nil)
	fzCreateTopic(ctx, t, adm, other, 1, map[string]*string{"retention.ms": new("3600000")})
	fzCreateTopic(ctx, t, adm, txnTopic, 1, nil)

	prod := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(from, to int) {
		var recs []*kgo.Record
		for part := int32(0); part < 3; part++ {
			for i := from; i < to; i++ {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: part,
					Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "order-%d-%d", part, i)})
			}
		}
		fzProduceSync(ctx, t, prod, recs...)
	}
	produce(0, 10)
	// A value that is markup must reach the browser as text.
	fzProduceSync(ctx, t, prod, &kgo.Record{Topic: other, Partition: 0, Value: []byte(`<b id="injected">bold</b>`)})

	// A group that consumes the 30 records and commits them, then stays
	// (Stable, one member) while 5 more per partition arrive: lag 5 each.
	const group = "console-group"
	cons := fzClient(t, p.Addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fzPoll(ctx, t, cons, 30)
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	produce(10, 15)

	// A committed transaction.
	txn := fzClient(t, p.Addr, kgo.TransactionalID("console-txn"), kgo.TransactionTimeout(30*time.Second))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	fzProduceSync(ctx, t, txn, &kgo.Record{Topic: txnTopic, Value: []byte("in-txn")})
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit txn: %v", err)
	}

	base := "http://" + p.HTTP

	dom := dumpDOM(t, bin, base+"/")
	domHas(t, "/", dom, `Served by broker 1`, `<span id="etcd">up</span>`, `<span id="controller">1</span>`,
		`<span id="ready">ready</span>`, `<a href="/topics/console-orders">console-orders</a>`,
		`<a href="/topics/console-events">console-events</a>`, `<a href="/groups/console-group">console-group</a>`,
		"127.0.0.1")

	dom = dumpDOM(t, bin, base+"/topics/"+topic)
	for part := 0; part < 3; part++ {
		domHas(t, "topic", dom, fmt.Sprintf(`<tr id="p%d"><td class="num"><a href="/topics/console-orders/%d">%d</a></td><td class="num leader">1</td>`, part, part, part))
	}
	domHas(t, "topic", dom, `<td class="num start">0</td><td class="num end">15</td>`, `<td class="isr">1</td>`, "cleanup.policy")
	if n := strings.Count(dom, `<td class="num end">15</td>`); n != 3 {
		t.Errorf("topic page: %d partitions show high watermark 15, want 3", n)
	}

	dom = dumpDOM(t, bin, base+"/topics/"+other)
	domHas(t, "other topic", dom, `<td>retention.ms</td><td><code>3600000</code></td><td>DYNAMIC_TOPIC_CONFIG</td>`)

	dom = dumpDOM(t, bin, base+"/topics/"+topic+"/1")
	domHas(t, "records", dom, `<span id="hw">15</span>`, "showing offsets from 0")
	for i := 0; i < 15; i++ {
		domHas(t, "records", dom, fmt.Sprintf("<pre>order-1-%d</pre>", i))
	}
	if strings.Contains(dom, "order-0-") || strings.Contains(dom, "order-2-") {
		t.Errorf("records page of partition 1 shows another partition's records")
	}

	dom = dumpDOM(t, bin, base+"/topics/"+other+"/0")
	domHas(t, "escaped record", dom, `&lt;b id="injected"&gt;bold&lt;/b&gt;`)
	if strings.Contains(dom, `<b id="injected">`) {
		t.Errorf("a record value became markup in the browser")
	}

	dom = dumpDOM(t, bin, base+"/groups/"+group)
	domHas(t, "group", dom, `<b id="state">Stable</b>`, `<b id="total-lag">15</b>`)
	for part := 0; part < 3; part++ {
		domHas(t, "group", dom, fmt.Sprintf(`<tr id="lag-console-orders-%d"><td><a href="/topics/console-orders">console-orders</a></td><td class="num">%d</td><td class="num committed">10</td><td class="num end">15</td><td class="num lag">5</td>`, part, part))
	}
	if n := strings.Count(dom, "console-orders-"); n < 3+3 { // lag rows and the member's assignment
		t.Errorf("group page names console-orders partitions %d times, want the member's assignment too", n)
	}

	dom = dumpDOM(t, bin, base+"/transactions")
	domHas(t, "transactions", dom, "<td>console-txn</td>")
	if !strings.Contains(dom, `<td class="state">CompleteCommit</td>`) && !strings.Contains(dom, `<td class="state">Empty</td>`) {
		t.Errorf("transactions page: console-txn is neither CompleteCommit nor Empty:\n%s", dom)
	}

	dom = dumpDOM(t, bin, base+"/topics/no-such-topic")
	domHas(t, "missing topic", dom, `id="error"`, `topic "no-such-topic"`)
}

// TestConsoleInBrowserCluster loads the console of one broker of three
// (an etcd quorum on the three): the overview shows every broker and the
// controller; the topic page (replication factor 3) shows each
// partition's leader and three-replica ISR as kadm sees them; the page of
// a group coordinated by another broker shows its member and lag; the
// records page shows a partition led by another broker.
func TestConsoleInBrowserCluster(t *testing.T) {
	bin := chromiumBin(t)
	brokers := startQuorumCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seeds := replAddrs(brokers, -1)
	adm := fzAdmin(t, brokers[0].Addr)
	const topic, group = "console-cluster", "console-cluster-group"
	replCreateTopic(ctx, t, adm, topic, 3, 3, nil)
	replWaitISR(ctx, t, adm, topic, 3, 60*time.Second)

	// A group member that consumes nothing yet: its coordinator decides
	// which broker's console is loaded (another one).
	cons := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var coord int32 = -1
	fzWaitFor(t, 60*time.Second, "the group stable with its member", func() error {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		cons.PollFetches(pctx) // drives the join; nothing is produced yet
		pcancel()
		dg, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		g := dg[group]
		if g.Err != nil || g.State != "Stable" || len(g.Members) != 1 {
			return fmt.Errorf("group %s: state %q, %d members, %v", group, g.State, len(g.Members), g.Err)
		}
		coord = g.Coordinator.NodeID
		return nil
	})
	view := brokers[0]
	viewID := int32(1)
	if coord == 1 {
		view, viewID = brokers[1], 2
	}
	// A partition another broker leads gets the records.
	td := fzTopicDetail(ctx, t, adm, topic)
	part := int32(-1)
	for _, p := range td.Partitions.Sorted() {
		if p.Leader != viewID {
			part = p.Partition
			break
		}
	}
	if part < 0 {
		t.Fatalf("broker %d leads every partition: %+v", viewID, td.Partitions)
	}
	prod := fzClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 12 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: fmt.Appendf(nil, "cluster-%d-%d", part, i)})
	}
	fzProduceSync(ctx, t, prod, recs[:8]...)
	// The member consumes the first 8 and commits them; 4 more arrive.
	fzPoll(ctx, t, cons, 8)
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	fzProduceSync(ctx, t, prod, recs[8:]...)

	base := "http://" + view.HTTP
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dom := dumpDOM(t, bin, base+"/")
	domHas(t, "/", dom, fmt.Sprintf("Served by broker %d", viewID), `<span id="etcd">up</span>`,
		fmt.Sprintf(`<span id="controller">%d</span>`, md.Controller),
		fmt.Sprintf(`<a href="/groups/%s">%s</a>`, group, group))
	for i, b := range brokers {
		_, port, _ := strings.Cut(b.Addr, ":")
		yes := ""
		if int32(i+1) == md.Controller {
			yes = "yes"
		}
		domHas(t, "/", dom, fmt.Sprintf(`<tr id="broker-%d"><td class="num">%d</td><td>127.0.0.1</td><td class="num">%s</td><td></td><td class="controller">%s</td></tr>`, i+1, i+1, port, yes))
	}
	if n := strings.Count(dom, `<td class="controller">yes</td>`); n != 1 {
		t.Errorf("overview: %d brokers shown as the controller, want 1", n)
	}
	domLacksErrors(t, "/", dom)

	// The topic page against kadm's view, read before and after the page
	// (a view that changed meanwhile is read again).
	fzWaitFor(t, 60*time.Second, "the topic page matching kadm's view", func() error {
		before := fzTopicDetail(ctx, t, adm, topic)
		dom := dumpDOM(t, bin, base+"/topics/"+topic)
		after := fzTopicDetail(ctx, t, adm, topic)
		for _, p := range before.Partitions.Sorted() {
			q := after.Partitions[p.Partition]
			if p.Leader != q.Leader || !slices.Equal(p.ISR, q.ISR) {
				return fmt.Errorf("partition %d moved while the page loaded", p.Partition)
			}
			if len(p.ISR) != 3 {
				return fmt.Errorf("partition %d: isr %v", p.Partition, p.ISR)
			}
			row := fmt.Sprintf(`<tr id="p%d"><td class="num"><a href="/topics/%s/%d">%d</a></td><td class="num leader">%d</td>`, p.Partition, topic, p.Partition, p.Partition, p.Leader)
			isr := fmt.Sprintf(`<td class="isr">%s</td>`, joinIDs(p.ISR))
			replicas := fmt.Sprintf(`<td>%s</td>%s`, joinIDs(p.Replicas), isr)
			end := 0
			if p.Partition == part {
				end = 12
			}
			domHas(t, "topic", dom, row, replicas, fmt.Sprintf(`<td class="num start">0</td><td class="num end">%d</td>`, end))
			if p.Partition == part {
				// The leader's log size, asked of the leader (another broker).
				m := regexp.MustCompile(`<td class="num end">12</td><td class="num">([^<]*)</td>`).FindStringSubmatch(dom)
				if m == nil || m[1] == "-" || m[1] == "0 B" {
					t.Errorf("topic page: partition %d (leader %d) has log size %q", part, p.Leader, m)
				}
			}
		}
		domLacksErrors(t, "topic", dom)
		return nil
	})

	// The group page, served by a broker that is not its coordinator.
	dg, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var member string
	for _, m := range dg[group].Members {
		member = m.MemberID
	}
	dom = dumpDOM(t, bin, base+"/groups/"+group)
	domHas(t, "group", dom, `<b id="state">Stable</b>`, fmt.Sprintf("coordinator %d,", coord), `<b id="total-lag">4</b>`,
		fmt.Sprintf(`<tr><td><code>%s</code></td>`, member),
		fmt.Sprintf(`<tr id="lag-%s-%d"><td><a href="/topics/%s">%s</a></td><td class="num">%d</td><td class="num committed">8</td><td class="num end">12</td><td class="num lag">4</td><td><code>%s</code></td>`, topic, part, topic, topic, part, member))
	for p := range int32(3) {
		domHas(t, "group", dom, fmt.Sprintf("%s-%d", topic, p)) // the member's assignment
	}
	domLacksErrors(t, "group", dom)

	// The records of a partition this broker does not lead.
	dom = dumpDOM(t, bin, fmt.Sprintf("%s/topics/%s/%d", base, topic, part))
	domHas(t, "records", dom, `<span id="hw">12</span>`, "showing offsets from 0")
	for i := range 12 {
		domHas(t, "records", dom, fmt.Sprintf("<pre>cluster-%d-%d</pre>", part, i))
	}
	domLacksErrors(t, "records", dom)
}

// domLacksErrors fails the test when a page shows an error (what it could
// not read).
func domLacksErrors(t *testing.T, page, dom string) {
	t.Helper()
	if strings.Contains(dom, `class="err"`) {
		t.Errorf("%s: the page shows an error:\n%s", page, dom)
	}
}

// joinIDs is how the console lists broker ids: comma-separated.
func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}
