// Package console serves Gregor's built-in web console on the broker's
// HTTP server (--http-addr): server-rendered HTML pages (html/template,
// templates embedded in the binary, no JavaScript) showing the cluster's
// brokers, topics and partitions, consumer groups and their lag,
// transactions, and the latest records of a partition.
//
// Pages:
//
//	/                              overview: this node (etcd, controller), brokers, topics, groups
//	/topics/<name>                 partitions (leader, ISR, offsets, size) and configs
//	/topics/<name>/<partition>     the latest records of one partition (at most MaxRecords)
//	/groups/<id>                   state, members, lag per partition
//	/transactions                  transactional ids, their state and partitions
//
// What the console shows comes through two small interfaces: Node, the
// serving broker's own state (its etcd session, the controller it
// knows), and Cluster, the cluster-wide view. The command implements
// Cluster with a Kafka client against the broker's own listener
// (KafkaCluster), so groups coordinated elsewhere and partitions led
// elsewhere are shown as the cluster sees them. Every page's work is
// bounded: one deadline per page (Config.Timeout), at most MaxList rows
// per list, at most MaxRecords records read, values cut at MaxValueBytes.
// Everything shown is escaped by html/template.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rs/zerolog"
)

// Bounds on what one page reads and shows.
const (
	// MaxRecords is how many of a partition's latest records the records
	// page reads.
	MaxRecords = 20
	// MaxValueBytes is how much of a record's key or value is shown.
	MaxValueBytes = 256
	// MaxList is how many topics, groups or transactions a list shows.
	MaxList = 500
	// DefaultTimeout bounds a page's work when Config.Timeout is 0.
	DefaultTimeout = 5 * time.Second
)

// ErrNotFound is returned by a Cluster for a topic, partition or group
// that does not exist; the page answers 404.
var ErrNotFound = errors.New("console: not found")

// NodeStatus is what the serving broker reports about itself.
type NodeStatus struct {
	NodeID int32
	// Controller is the controller this broker knows, -1 when none.
	Controller int32
	// EtcdUp is whether a metadata round trip succeeded and the broker's
	// registration lease is alive; EtcdLatency is how long the round trip took.
	EtcdUp      bool
	EtcdLatency time.Duration
	// Ready is why /readyz fails, empty when ready.
	Ready string
	// Faults are the metadata values the broker cannot read.
	Faults []string
	// LocalPartitions and Leading count the replicas this broker hosts and leads.
	LocalPartitions, Leading int
}

// Node is the serving broker.
type Node interface {
	NodeStatus(ctx context.Context) NodeStatus
}

// Broker is one broker of the cluster.
type Broker struct {
	ID         int32
	Host       string
	Port       int32
	Rack       string
	Controller bool
}

// TopicSummary is one row of the overview's topic list.
type TopicSummary struct {
	Name        string
	Partitions  int
	Replication int
	Internal    bool
	Err         string
}

// GroupSummary is one row of the overview's group list.
type GroupSummary struct {
	ID           string
	State        string
	ProtocolType string
	Coordinator  int32
}

// Overview is the cluster-wide part of the overview page.
type Overview struct {
	ClusterID       string
	Controller      int32
	Brokers         []Broker
	Topics          []TopicSummary
	TopicsTruncated bool
	Groups          []GroupSummary
	GroupsTruncated bool
	// Errs are the parts that could not be read (the rest is shown).
	Errs []string
}

// Partition is one partition of a topic page.
type Partition struct {
	Index       int32
	Leader      int32
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	// Start and End are the log start offset and the high watermark, -1
	// when unknown.
	Start, End int64
	// Size is the leader's log size in bytes, -1 when unknown.
	Size int64
	Err  string
}

// Config is one topic config.
type Config struct {
	Name, Value, Source string
	Sensitive           bool
}

// Topic is a topic page.
type Topic struct {
	Name       string
	ID         string
	Internal   bool
	Partitions []Partition
	Configs    []Config
	Errs       []string
}

// Member is one member of a group.
type Member struct {
	ID, InstanceID, ClientID, Host string
	// Assigned lists the member's partitions as topic-partition.
	Assigned []string
}

// PartitionLag is a group's position on one partition.
type PartitionLag struct {
	Topic     string
	Partition int32
	// Committed is the group's committed offset, -1 when none.
	Committed int64
	// End is the partition's high watermark, -1 when unknown.
	End int64
	// Lag is End-Committed (End when nothing is committed), -1 when unknown.
	Lag    int64
	Member string
	Err    string
}

// Group is a group page.
type Group struct {
	ID           string
	State        string
	ProtocolType string
	Protocol     string
	Coordinator  int32
	Members      []Member
	Lag          []PartitionLag
	TotalLag     int64
	Errs         []string
}

// Txn is one transactional id.
type Txn struct {
	ID            string
	State         string
	ProducerID    int64
	ProducerEpoch int16
	Coordinator   int32
	TimeoutMs     int32
	// Started is when the ongoing transaction began, zero when none.
	Started    time.Time
	Partitions []string
	Err        string
}

// Transactions is the transactions page.
type Transactions struct {
	Txns      []Txn
	Truncated bool
	Errs      []string
}

// Record is one record shown on the records page. Key and Value are cut
// at MaxValueBytes; binary ones are shown in hex.
type Record struct {
	Offset    int64
	Timestamp time.Time
	Key       string
	Value     string
	// KeyNull and ValueNull mark null keys and values (tombstones).
	KeyNull, ValueNull bool
	// Truncated is set when the key or the value was cut.
	Truncated bool
	Headers   int
}

// Records is the records page: the records of [From, End) of a partition.
type Records struct {
	Topic     string
	Partition int32
	Start     int64 // log start offset
	End       int64 // high watermark
	From      int64 // first offset asked for
	Records   []Record
	// Partial says why fewer records than asked may be shown (deadline).
	Partial string
}

// Cluster is the cluster-wide view the pages show. Implementations bound
// their work by ctx and by the limits given.
type Cluster interface {
	Overview(ctx context.Context, maxList int) (Overview, error)
	Topic(ctx context.Context, name string) (Topic, error)
	Group(ctx context.Context, id string) (Group, error)
	Transactions(ctx context.Context, maxList int) (Transactions, error)
	// Records returns at most n of the latest records of a partition.
	Records(ctx context.Context, topic string, partition int32, n int) (Records, error)
}

// Options configures a console.
type Options struct {
	Node    Node
	Cluster Cluster
	Logger  zerolog.Logger
	// Timeout bounds each page's work; 0 is DefaultTimeout.
	Timeout time.Duration
	// Now is the clock for the "rendered at" line; nil is time.Now.
	Now func() time.Time
}

//go:embed templates/*.html
var templateFS embed.FS

// Console serves the pages. It holds no mutable state; safe for
// concurrent use.
type Console struct {
	opts  Options
	pages map[string]*template.Template // immutable after New
}

// New parses the templates and returns a console.
func New(opts Options) (*Console, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Console{opts: opts, pages: make(map[string]*template.Template)}
	funcs := template.FuncMap{
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04:05.000Z")
		},
		"bytes":   formatBytes,
		"pathseg": pathSegment,
	}
	for _, page := range []string{"overview", "topic", "group", "records", "transactions", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse %s template: %w", page, err)
		}
		c.pages[page] = t
	}
	return c, nil
}

// Register adds the console's pages to mux.
func (c *Console) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /topics/{name}", c.topic)
	mux.HandleFunc("GET /topics/{name}/{partition}", c.records)
	mux.HandleFunc("GET /groups/{id}", c.group)
	mux.HandleFunc("GET /transactions", c.transactions)
}

// page is what the layout renders around a page's body.
type page struct {
	Title    string
	Node     NodeStatus
	Rendered time.Time
	Data     any
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), c.opts.Timeout)
	defer cancel()
	ov, err := c.opts.Cluster.Overview(ctx, MaxList)
	if err != nil {
		ov.Errs = append(ov.Errs, err.Error())
	}
	c.render(ctx, w, http.StatusOK, "overview", "Overview", ov)
}

func (c *Console) topic(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), c.opts.Timeout)
	defer cancel()
	t, err := c.opts.Cluster.Topic(ctx, r.PathValue("name"))
	if err != nil {
		c.fail(ctx, w, err)
		return
	}
	c.render(ctx, w, http.StatusOK, "topic", "Topic "+t.Name, t)
}

func (c *Console) records(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), c.opts.Timeout)
	defer cancel()
	p, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
	if err != nil || p < 0 {
		c.render(ctx, w, http.StatusBadRequest, "error", "Bad request", "partition must be a non-negative number")
		return
	}
	recs, err := c.opts.Cluster.Records(ctx, r.PathValue("name"), int32(p), MaxRecords)
	if err != nil {
		c.fail(ctx, w, err)
		return
	}
	c.render(ctx, w, http.StatusOK, "records", fmt.Sprintf("%s-%d", recs.Topic, recs.Partition), recs)
}

func (c *Console) group(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), c.opts.Timeout)
	defer cancel()
	g, err := c.opts.Cluster.Group(ctx, r.PathValue("id"))
	if err != nil {
		c.fail(ctx, w, err)
		return
	}
	c.render(ctx, w, http.StatusOK, "group", "Group "+g.ID, g)
}

func (c *Console) transactions(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), c.opts.Timeout)
	defer cancel()
	txns, err := c.opts.Cluster.Transactions(ctx, MaxList)
	if err != nil {
		txns.Errs = append(txns.Errs, err.Error())
	}
	c.render(ctx, w, http.StatusOK, "transactions", "Transactions", txns)
}

// fail renders err as a 404 (ErrNotFound) or 502 page.
func (c *Console) fail(ctx context.Context, w http.ResponseWriter, err error) {
	if errors.Is(err, ErrNotFound) {
		c.render(ctx, w, http.StatusNotFound, "error", "Not found", err.Error())
		return
	}
	c.opts.Logger.Debug().Err(err).Msg("console: cannot read the cluster")
	c.render(ctx, w, http.StatusBadGateway, "error", "Cannot read the cluster", err.Error())
}

func (c *Console) render(ctx context.Context, w http.ResponseWriter, status int, name, title string, data any) {
	p := page{Title: title, Rendered: c.opts.Now(), Data: data}
	if c.opts.Node != nil {
		p.Node = c.opts.Node.NodeStatus(ctx)
	} else {
		p.Node = NodeStatus{NodeID: -1, Controller: -1}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	if err := c.pages[name].Execute(w, p); err != nil {
		c.opts.Logger.Debug().Err(err).Str("page", name).Msg("console: render")
	}
}

// pathSegment escapes s for use as one path segment of a link.
func pathSegment(s string) string {
	return url.PathEscape(s)
}

func formatBytes(n int64) string {
	switch {
	case n < 0:
		return "-"
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	case n < 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	default:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	}
}
