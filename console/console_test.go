package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeCluster serves fixed data and records what it was asked.
type fakeCluster struct {
	topic     Topic
	group     Group
	records   Records
	txns      Transactions
	askedN    int
	askedList int
	deadline  bool // every call saw a deadline
}

func (f *fakeCluster) note(ctx context.Context) {
	if _, ok := ctx.Deadline(); !ok {
		f.deadline = false
	}
}

func (f *fakeCluster) Overview(ctx context.Context, maxList int) (Overview, error) {
	f.note(ctx)
	f.askedList = maxList
	return Overview{ClusterID: "c-1", Controller: 2,
		Brokers: []Broker{{ID: 1, Host: "h1", Port: 9092}, {ID: 2, Host: "h2", Port: 9093, Controller: true}},
		Topics:  []TopicSummary{{Name: "orders", Partitions: 3, Replication: 2}},
		Groups:  []GroupSummary{{ID: "billing/eu", State: "Stable", ProtocolType: "consumer", Coordinator: 1}},
	}, nil
}

func (f *fakeCluster) Topic(ctx context.Context, name string) (Topic, error) {
	f.note(ctx)
	if name != f.topic.Name {
		return Topic{}, fmt.Errorf("%w: topic %q", ErrNotFound, name)
	}
	return f.topic, nil
}

func (f *fakeCluster) Group(ctx context.Context, id string) (Group, error) {
	f.note(ctx)
	if id != f.group.ID {
		return Group{}, fmt.Errorf("%w: group %q", ErrNotFound, id)
	}
	return f.group, nil
}

func (f *fakeCluster) Transactions(ctx context.Context, maxList int) (Transactions, error) {
	f.note(ctx)
	f.askedList = maxList
	return f.txns, nil
}

func (f *fakeCluster) Records(ctx context.Context, topic string, partition int32, n int) (Records, error) {
	f.note(ctx)
	f.askedN = n
	if topic != f.records.Topic || partition != f.records.Partition {
		return Records{}, fmt.Errorf("%w: partition %s-%d", ErrNotFound, topic, partition)
	}
	return f.records, nil
}

type fakeNode struct{}

func (fakeNode) NodeStatus(context.Context) NodeStatus {
	return NodeStatus{NodeID: 7, Controller: 2, EtcdUp: true, EtcdLatency: time.Millisecond, LocalPartitions: 4, Leading: 2}
}

func newTestServer(t *testing.T, f *fakeCluster) *httptest.Server {
	t.Helper()
	c, err := New(Options{Node: fakeNode{}, Cluster: f, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); path != "/healthz" && ct != "text/html; charset=utf-8" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return resp.StatusCode, string(body)
}

func mustContain(t *testing.T, page, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s: missing %q in:\n%s", page, w, body)
		}
	}
}

func testCluster() *fakeCluster {
	return &fakeCluster{
		deadline: true,
		topic: Topic{Name: "orders", ID: "abc", Partitions: []Partition{
			{Index: 0, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Start: 5, End: 42, Size: 2048},
			{Index: 1, Leader: 2, Replicas: []int32{2, 1}, ISR: []int32{2}, Start: -1, End: -1, Size: -1, Err: "NOT_LEADER"},
		}, Configs: []Config{{Name: "retention.ms", Value: "604800000", Source: "DEFAULT_CONFIG"}, {Name: "sasl.secret", Value: "hunter2", Sensitive: true}}},
		group: Group{ID: "billing/eu", State: "Stable", ProtocolType: "consumer", Protocol: "range", Coordinator: 1, TotalLag: 12,
			Members: []Member{{ID: "m-1", ClientID: "app", Host: "/10.0.0.1", Assigned: []string{"orders-0", "orders-1"}}},
			Lag:     []PartitionLag{{Topic: "orders", Partition: 0, Committed: 30, End: 42, Lag: 12, Member: "m-1"}}},
		records: Records{Topic: "orders", Partition: 0, Start: 5, End: 42, From: 22, Records: []Record{
			{Offset: 40, Key: "k", Value: `<script>alert("x")</script>`},
			{Offset: 41, KeyNull: true, ValueNull: true},
		}},
		txns: Transactions{Txns: []Txn{{ID: "etl-1", State: "Ongoing", ProducerID: 1000, ProducerEpoch: 3, Coordinator: 2, Partitions: []string{"orders-0"}}}},
	}
}

func TestPages(t *testing.T) {
	f := testCluster()
	srv := newTestServer(t, f)

	_, body := get(t, srv, "/")
	mustContain(t, "/", body, "Served by broker 7", `<span id="etcd">up</span>`, `<span id="controller">2</span>`,
		"c-1", `<a href="/topics/orders">orders</a>`, `<a href="/groups/billing%2Feu">billing/eu</a>`, "Stable", "h2")
	if f.askedList != MaxList {
		t.Errorf("overview asked for %d rows, want MaxList %d", f.askedList, MaxList)
	}

	_, body = get(t, srv, "/topics/orders")
	mustContain(t, "topic", body, `<td class="num leader">1</td>`, `<td class="isr">1,2</td>`,
		`<td class="num start">5</td>`, `<td class="num end">42</td>`, "2.0 KiB", "NOT_LEADER", "604800000", "(sensitive)",
		`<a href="/topics/orders/0">0</a>`)
	if strings.Contains(body, "hunter2") {
		t.Errorf("topic page shows a sensitive config's value")
	}

	_, body = get(t, srv, "/topics/orders/0")
	mustContain(t, "records", body, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`, `<span id="hw">42</span>`, "null")
	if strings.Contains(body, "<script>") {
		t.Errorf("records page carries an unescaped record value")
	}
	if f.askedN != MaxRecords {
		t.Errorf("records page asked for %d records, want MaxRecords %d", f.askedN, MaxRecords)
	}

	// A group id with a slash is one path segment, escaped in links.
	_, body = get(t, srv, "/groups/billing%2Feu")
	mustContain(t, "group", body, `<b id="state">Stable</b>`, `<b id="total-lag">12</b>`, `<td class="num lag">12</td>`,
		`<td class="num committed">30</td>`, "orders-0, orders-1", "m-1")

	_, body = get(t, srv, "/transactions")
	mustContain(t, "transactions", body, "etl-1", "Ongoing", "1000", "orders-0")

	if !f.deadline {
		t.Errorf("a page asked the cluster without a deadline")
	}
	// The console's pages sit beside the mux's other routes.
	if code, body := get(t, srv, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
}

func TestNotFoundAndBadRequest(t *testing.T) {
	srv := newTestServer(t, testCluster())
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/topics/missing", http.StatusNotFound, `topic &#34;missing&#34;`},
		{"/groups/missing", http.StatusNotFound, `group &#34;missing&#34;`},
		{"/topics/orders/7", http.StatusNotFound, "orders-7"},
		{"/topics/orders/-1", http.StatusBadRequest, "non-negative"},
		{"/topics/orders/x", http.StatusBadRequest, "non-negative"},
		{"/topics/%3Cb%3E", http.StatusNotFound, "&lt;b&gt;"},
	} {
		code, body := get(t, srv, tc.path)
		if code != tc.code {
			t.Errorf("%s: status %d, want %d", tc.path, code, tc.code)
		}
		mustContain(t, tc.path, body, tc.want)
	}
}

func TestDisplayBytes(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	for _, tc := range []struct {
		in      []byte
		limit   int
		want    string
		wantCut bool
	}{
		{[]byte("hello"), 10, "hello", false},
		{[]byte("hello"), 3, "hel", true},
		{[]byte(long), 5, "éé", true}, // the third é is split by the cut: dropped
		{[]byte{0xff, 0x00, 0x01}, 10, "0xff0001", false},
		{[]byte{0xff, 0x00, 0x01}, 2, "0xff00", true},
		{nil, 10, "", false},
	} {
		got, cut := displayBytes(tc.in, tc.limit)
		if got != tc.want || cut != tc.wantCut {
			t.Errorf("displayBytes(%q, %d) = %q, %v; want %q, %v", tc.in, tc.limit, got, cut, tc.want, tc.wantCut)
		}
	}
	s, cut := displayBytes([]byte(long), MaxValueBytes)
	if !cut || len(s) > MaxValueBytes {
		t.Errorf("a long value shown as %d bytes (cut %v), want at most %d", len(s), cut, MaxValueBytes)
	}
}
