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
