package integration

// Config administration through kadm and raw kmsg requests:
// DescribeConfigs sources and synonyms, IncrementalAlterConfigs on topics
// and on the cluster default, legacy AlterConfigs (full replacement),
// configs surviving a restart; plus ApiVersions, DescribeCluster and
// DescribeLogDirs.

import (
	"context"
	"errors"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fzTopicConfigs describes one topic's configs.
func fzTopicConfigs(ctx context.Context, t testing.TB, adm *kadm.Client, topic string) map[string]kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("describe configs of %s: %v", topic, err)
	}
	return fzConfigMap(t, rcs, topic)
}

// fzWantConfig fails the test unless configs[name] has value and source.
func fzWantConfig(t testing.TB, where string, configs map[string]kadm.Config, name, value string, source kmsg.ConfigSource) {
	t.Helper()
	c, ok := configs[name]
	if !ok {
		t.Fatalf("%s: config %s not described", where, name)
	}
	if c.MaybeValue() != value || c.Source != source {
		t.Fatalf("%s: %s = %q (source %v), want %q (source %v)", where, name, c.MaybeValue(), c.Source, value, source)
	}
}

// fzAlterOK fails the test unless every resource of an alter succeeded.
func fzAlterOK(t testing.TB, what string, resps kadm.AlterConfigsResponses, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(resps) == 0 {
		t.Fatalf("%s: empty response", what)
	}
	for _, r := range resps {
		if r.Err != nil {
			t.Fatalf("%s: %s: %v (%s)", what, r.Name, r.Err, r.ErrMessage)
		}
	}
}

func TestAdminConfigs(t *testing.T) {
	p := startBroker(t, "--log-segment-bytes", "2097152")
	ctx := testContext(t, 120*time.Second)
	adm := fzAdmin(t, p.Addr)
	cl := fzClient(t, p.Addr)
	const defaultRetention = "604800000"

	overridden := fzTopic(t, "fz-over")
	fzCreateTopic(ctx, t, adm, overridden, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")})
	plain := fzTopic(t, "fz-plain")
	fzCreateTopic(ctx, t, adm, plain, 1, nil)

	t.Run("DescribeTopicSources", func(t *testing.T) {
		cs := fzTopicConfigs(ctx, t, adm, overridden)
		fzWantConfig(t, overridden, cs, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
		fzWantConfig(t, overridden, cs, "segment.bytes", "2097152", kmsg.ConfigSourceStaticBrokerConfig)
		fzWantConfig(t, overridden, cs, "cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)
		fzWantConfig(t, overridden, cs, "message.timestamp.type", "CreateTime", kmsg.ConfigSourceDefaultConfig)
		fzWantConfig(t, overridden, cs, "max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)

		ret := cs["retention.ms"]
		if len(ret.Synonyms) == 0 || ret.Synonyms[0].Key != "retention.ms" || ret.Synonyms[0].Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Fatalf("retention.ms synonyms %+v, want the topic override first", ret.Synonyms)
		}
		found := false
		for _, s := range cs["segment.bytes"].Synonyms {
			if s.Key == "log.segment.bytes" && s.Source == kmsg.ConfigSourceStaticBrokerConfig && s.Value != nil && *s.Value == "2097152" {
				found = true
			}
		}
		if !found {
			t.Fatalf("segment.bytes synonyms %+v lack log.segment.bytes=2097152 STATIC_BROKER_CONFIG", cs["segment.bytes"].Synonyms)
		}

		rcs, err := adm.DescribeTopicConfigs(ctx, overridden+"-missing")
		if err == nil {
			if rc, _ := rcs.On(overridden+"-missing", nil); !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				t.Fatalf("describe configs of unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", rc.Err)
			}
		} else if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("describe configs of unknown topic: %v", err)
		}
	})

	t.Run("DescribeBroker", func(t *testing.T) {
		rcs, err := adm.DescribeBrokerConfigs(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		cs := fzConfigMap(t, rcs, "1")
		fzWantConfig(t, "broker 1", cs, "log.segment.bytes", "2097152", kmsg.ConfigSourceStaticBrokerConfig)
		fzWantConfig(t, "broker 1", cs, "message.max.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)
		fzWantConfig(t, "broker 1", cs, "auto.create.topics.enable", "true", kmsg.ConfigSourceDefaultConfig)
		if c := cs["num.partitions"]; c.MaybeValue() != "1" {
			t.Fatalf("broker 1: num.partitions = %q, want 1", c.MaybeValue())
		}
		rcs, err = adm.DescribeBrokerConfigs(ctx, 7)
		if err == nil {
			if rc, _ := rcs.On("7", nil); rc.Err == nil && len(rc.Configs) > 0 {
				t.Fatalf("describe configs of broker 7 (no such broker) answered %d configs", len(rc.Configs))
			}
		}
	})

	t.Run("IncrementalTopic", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("7200000")},
			{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("2000")},
		}, topic)
		fzAlterOK(t, "set retention.ms and max.message.bytes", resps, err)
		cs := fzTopicConfigs(ctx, t, adm, topic)
		fzWantConfig(t, "after SET", cs, "retention.ms", "7200000", kmsg.ConfigSourceDynamicTopicConfig)
		fzWantConfig(t, "after SET", cs, "max.message.bytes", "2000", kmsg.ConfigSourceDynamicTopicConfig)

		// max.message.bytes is enforced at once.
		big := &kgo.Record{Topic: topic, Value: make([]byte, 5000)}
		rand.New(rand.NewSource(1)).Read(big.Value) // incompressible: the client compresses by default
		if err := cl.ProduceSync(ctx, big).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
			t.Fatalf("5000-byte record with max.message.bytes=2000: %v, want MESSAGE_TOO_LARGE", err)
		}
		fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Value: make([]byte, 100)})

		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "retention.ms"}}, topic)
		fzAlterOK(t, "delete retention.ms", resps, err)
		cs = fzTopicConfigs(ctx, t, adm, topic)
		fzWantConfig(t, "after DELETE", cs, "retention.ms", defaultRetention, kmsg.ConfigSourceDefaultConfig)
		fzWantConfig(t, "after DELETE (untouched)", cs, "max.message.bytes", "2000", kmsg.ConfigSourceDynamicTopicConfig)

		// APPEND to a list config.
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, topic)
		fzAlterOK(t, "append cleanup.policy", resps, err)
		cs = fzTopicConfigs(ctx, t, adm, topic)
		fzWantConfig(t, "after APPEND", cs, "cleanup.policy", "delete,compact", kmsg.ConfigSourceDynamicTopicConfig)

		// A bad op rejects the whole resource: nothing in it applies.
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("1000")},
			{Op: kadm.SetConfig, Name: "segment.bytes", Value: kadm.StringPtr("abc")},
		}, topic)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := resps.On(topic, nil); !errors.Is(r.Err, kerr.InvalidConfig) {
			t.Fatalf("SET segment.bytes=abc: %v, want INVALID_CONFIG", r.Err)
		}
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "no.such.config", Value: kadm.StringPtr("1")}}, topic)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := resps.On(topic, nil); !errors.Is(r.Err, kerr.InvalidConfig) {
			t.Fatalf("SET no.such.config: %v, want INVALID_CONFIG", r.Err)
		}
		cs = fzTopicConfigs(ctx, t, adm, topic)
		fzWantConfig(t, "after rejected alters", cs, "retention.ms", defaultRetention, kmsg.ConfigSourceDefaultConfig)

		// Validate-only changes nothing.
		resps, err = adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("1000")}}, topic)
		fzAlterOK(t, "validate-only set", resps, err)
		cs = fzTopicConfigs(ctx, t, adm, topic)
		fzWantConfig(t, "after validate-only", cs, "retention.ms", defaultRetention, kmsg.ConfigSourceDefaultConfig)

		// Unknown topic.
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("1000")}}, topic+"-missing")
		if err == nil {
			if r, _ := resps.On(topic+"-missing", nil); !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
				t.Fatalf("alter unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", r.Err)
			}
		} else if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("alter unknown topic: %v", err)
		}
	})

	t.Run("LegacyAlterConfigs", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 1, map[string]*string{
			"retention.ms":      kadm.StringPtr("3600000"),
			"max.message.bytes": kadm.StringPtr("5000"),
		})
		alter := func(validateOnly bool, kv ...string) int16 {
			req := kmsg.NewPtrAlterConfigsRequest()
			req.ValidateOnly = validateOnly
			res := kmsg.NewAlterConfigsRequestResource()
			res.ResourceType = kmsg.ConfigResourceTypeTopic
			res.ResourceName = topic
			for i := 0; i < len(kv); i += 2 {
				c := kmsg.NewAlterConfigsRequestResourceConfig()
				c.Name, c.Value = kv[i], kmsg.StringPtr(kv[i+1])
				res.Configs = append(res.Configs, c)
			}
			req.Resources = append(req.Resources, res)
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatalf("AlterConfigs: %v", err)
			}
			if len(resp.Resources) != 1 || resp.Resources[0].ResourceName != topic {
				t.Fatalf("AlterConfigs answered %+v", resp.Resources)
			}
			return resp.Resources[0].ErrorCode
		}
		if code := alter(true, "segment.ms", "1000"); code != 0 {
			t.Fatalf("validate-only AlterConfigs: %s", fzErrCode(code))
		}
		cs := fzTopicConfigs(ctx, t, adm, topic)
		fzWantConfig(t, "after validate-only", cs, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
		fzWantConfig(t, "after validate-only", cs, "segment.ms", "604800000", kmsg.ConfigSourceDefaultConfig)

		// AlterConfigs replaces the topic's whole override set.
		if code := alter(false, "segment.ms", "3600000"); code != 0 {
			t.Fatalf("AlterConfigs: %s", fzErrCode(code))
		}
		cs = fzTopicConfigs(ctx, t, adm, topic)
		fzWantConfig(t, "after AlterConfigs", cs, "segment.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
		fzWantConfig(t, "after AlterConfigs (override dropped)", cs, "retention.ms", defaultRetention, kmsg.ConfigSourceDefaultConfig)
		fzWantConfig(t, "after AlterConfigs (override dropped)", cs, "max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)

		if code := alter(false, "retention.ms", "forever"); code != kerr.InvalidConfig.Code {
			t.Fatalf("AlterConfigs retention.ms=forever: %s, want INVALID_CONFIG", fzErrCode(code))
		}
		cs = fzTopicConfigs(ctx, t, adm, topic)
		fzWantConfig(t, "after rejected AlterConfigs", cs, "segment.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
	})

	t.Run("ClusterDefault", func(t *testing.T) {
		resps, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.retention.ms", Value: kadm.StringPtr("86400000")}})
		fzAlterOK(t, "set cluster default log.retention.ms", resps, err)

		cs := fzTopicConfigs(ctx, t, adm, plain)
		fzWantConfig(t, plain, cs, "retention.ms", "86400000", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
		cs = fzTopicConfigs(ctx, t, adm, overridden)
		fzWantConfig(t, overridden, cs, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)

		rcs, err := adm.DescribeBrokerConfigs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fzWantConfig(t, "cluster default", fzConfigMap(t, rcs, ""), "log.retention.ms", "86400000", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
		rcs, err = adm.DescribeBrokerConfigs(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		fzWantConfig(t, "broker 1", fzConfigMap(t, rcs, "1"), "log.retention.ms", "86400000", kmsg.ConfigSourceDynamicDefaultBrokerConfig)

		// Topics created later inherit it too.
		later := fzTopic(t, "fz-later")
		fzCreateTopic(ctx, t, adm, later, 1, nil)
		fzWantConfig(t, later, fzTopicConfigs(ctx, t, adm, later), "retention.ms", "86400000", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	})

	t.Run("SurvivesRestart", func(t *testing.T) {
		p.Stop()
		if code := p.ExitCode(); code != 0 {
			t.Fatalf("clean stop exited with %d", code)
		}
		p.Restart()
		adm2 := fzAdmin(t, p.Addr)
		fzWantConfig(t, "after restart", fzTopicConfigs(ctx, t, adm2, overridden), "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
		fzWantConfig(t, "after restart", fzTopicConfigs(ctx, t, adm2, plain), "retention.ms", "86400000", kmsg.ConfigSourceDynamicDefaultBrokerConfig)

		resps, err := adm2.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "log.retention.ms"}})
		fzAlterOK(t, "delete cluster default log.retention.ms", resps, err)
		fzWantConfig(t, "after deleting the cluster default", fzTopicConfigs(ctx, t, adm2, plain), "retention.ms", defaultRetention, kmsg.ConfigSourceDefaultConfig)
	})

	fzCheckLogs(t, p)
}

func TestAdminClusterAndLogDirs(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	adm := fzAdmin(t, p.Addr)
	cl := fzClient(t, p.Addr)
	host, portStr, _ := net.SplitHostPort(p.Addr)
	port, _ := strconv.Atoi(portStr)

	t.Run("ApiVersions", func(t *testing.T) {
		vs, err := adm.ApiVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The README's table of supported APIs is the documentation the
		// advertised list must match, both ways.
		want := readmeAPIVersions(t)
		if len(want) < 10 {
			t.Fatalf("README lists only %d APIs; is its table still parsed right?", len(want))
		}
		n := 0
		vs.Each(func(v kadm.BrokerApiVersions) {
			n++
			if v.Err != nil {
				t.Fatalf("ApiVersions of %d: %v", v.NodeID, v.Err)
			}
			got := map[int16][2]int16{}
			v.EachKeySorted(func(key, lo, hi int16) { got[key] = [2]int16{lo, hi} })
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s: advertised %v, README says v%d-v%d", kmsg.NameForKey(k), got[k], w[0], w[1])
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("advertises %s (key %d) v%d-v%d, which the README does not list", kmsg.NameForKey(k), k, got[k][0], got[k][1])
				}
			}
		})
		if n != 1 {
			t.Fatalf("ApiVersions answered by %d brokers", n)
		}
	})

	t.Run("DescribeCluster", func(t *testing.T) {
		md, err := adm.BrokerMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if md.Cluster == "" {
			t.Fatal("metadata has no cluster id")
		}
		if len(md.Brokers) != 1 || md.Brokers[0].NodeID != 1 || md.Brokers[0].Host != host || md.Brokers[0].Port != int32(port) {
			t.Fatalf("metadata brokers %+v, want node 1 at %s", md.Brokers, p.Addr)
		}
		if md.Controller != 1 {
			t.Fatalf("metadata controller %d, want 1", md.Controller)
		}
		for v := int16(0); v <= 2; v++ {
			req := kmsg.NewPtrDescribeClusterRequest()
			req.EndpointType = 1
			raw := fzDial(t, p.Addr)
			req.SetVersion(v)
			resp := raw.roundTrip(req).(*kmsg.DescribeClusterResponse)
			if resp.ErrorCode != 0 {
				t.Fatalf("DescribeCluster v%d: %s", v, fzErrCode(resp.ErrorCode))
			}
			if resp.ClusterID != md.Cluster || resp.ControllerID != 1 {
				t.Fatalf("DescribeCluster v%d: cluster %q controller %d, want %q and 1", v, resp.ClusterID, resp.ControllerID, md.Cluster)
			}
			if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 1 || resp.Brokers[0].Host != host || resp.Brokers[0].Port != int32(port) {
				t.Fatalf("DescribeCluster v%d brokers %+v, want node 1 at %s", v, resp.Brokers, p.Addr)
			}
		}
		// Through the client's own routing too.
		resp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 || resp.ClusterID != md.Cluster {
			t.Fatalf("DescribeCluster via kgo: %v, %+v", err, resp)
		}
	})

	t.Run("DescribeLogDirs", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, adm, topic, 2, nil)
		prod := fzClient(t, p.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
		for i := 0; i < 10; i++ {
			fzProduceSync(ctx, t, prod, &kgo.Record{Topic: topic, Partition: 0, Value: make([]byte, 1000)})
		}
		var s kadm.TopicsSet
		s.Add(topic, 0, 1)
		all, err := adm.DescribeAllLogDirs(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		dirs, ok := all[1]
		if !ok || len(all) != 1 {
			t.Fatalf("log dirs described for brokers %v, want [1]", all)
		}
		if err := dirs.Error(); err != nil {
			t.Fatalf("log dirs: %v", err)
		}
		if len(dirs) != 1 {
			t.Fatalf("%d log dirs, want 1 (%s)", len(dirs), p.DataDir)
		}
		for name, d := range dirs {
			if name != p.DataDir {
				t.Errorf("log dir %q, want %q", name, p.DataDir)
			}
			if d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
				t.Errorf("log dir total %d usable %d bytes", d.TotalBytes, d.UsableBytes)
			}
		}
		p0, ok := dirs.LookupPartition(topic, 0)
		if !ok || p0.Size < 10*1000 {
			t.Fatalf("%s[0] after 10 KB produced: described %v, size %d", topic, ok, p0.Size)
		}
		// Partition 1 was never written. Kafka describes it with size 0;
		// Gregor opens logs on first use and leaves unopened partitions out
		// (documented in broker/35_describe_log_dirs.go), so only a wrong
		// size is an error here.
		if p1, ok := dirs.LookupPartition(topic, 1); ok && p1.Size != 0 {
			t.Fatalf("%s[1] (empty): size %d, want 0", topic, p1.Size)
		}
		// All log dirs (null topic list) include the written partition.
		all, err = adm.DescribeAllLogDirs(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p0, ok := all[1].LookupPartition(topic, 0); !ok || p0.Size < 10*1000 {
			t.Fatalf("all log dirs: %s[0] described %v, size %d", topic, ok, p0.Size)
		}
	})

	fzCheckLogs(t, p)
}

// readmeAPIRow is one row of the README's "What is supported" table:
// | 0 | Produce | 3–13 | notes |
var readmeAPIRow = regexp.MustCompile(`^\|\s*(\d+)\s*\|\s*\w+\s*\|\s*(\d+)(?:\s*[–-]\s*(\d+))?\s*\|`)

// readmeAPIVersions reads the API keys and version ranges the README
// documents as supported.
func readmeAPIVersions(t *testing.T) map[int16][2]int16 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	out := map[int16][2]int16{}
	for _, line := range strings.Split(string(b), "\n") {
		m := readmeAPIRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key, _ := strconv.Atoi(m[1])
		lo, _ := strconv.Atoi(m[2])
		hi := lo
		if m[3] != "" {
			hi, _ = strconv.Atoi(m[3])
		}
		if _, dup := out[int16(key)]; dup {
			t.Fatalf("README lists key %d twice", key)
		}
		out[int16(key)] = [2]int16{int16(lo), int16(hi)}
	}
	return out
}
