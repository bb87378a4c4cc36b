package integration

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestNamedListeners: a broker with two named listeners, as in a compose
// stack (containers on one name, the host on another), tells each client
// the endpoints of the listener it connected to, in Metadata,
// DescribeCluster and FindCoordinator, and serves on both.
func TestNamedListeners(t *testing.T) {
	p := newBrokerProc(t)
	i := slices.Index(p.args, "--listen")
	p.args = slices.Delete(p.args, i, i+2)
	inside := "127.0.0.1:" + strconv.Itoa(freePort(t))
	outside := "127.0.0.1:" + strconv.Itoa(freePort(t))
	outsidePort := outside[len("127.0.0.1:"):]
	p.Addr = inside
	p.args = append(p.args,
		"--listeners", "INTERNAL://"+inside+",EXTERNAL://"+outside,
		// localhost resolves to this machine too, so the test can use both.
		"--advertised-listeners", "EXTERNAL://localhost:"+outsidePort)
	p.start()
	ctx := testContext(t, 60*time.Second)

	for _, c := range []struct{ seed, host, port string }{
		{inside, "127.0.0.1", inside[len("127.0.0.1:"):]},
		{outside, "localhost", outsidePort},
	} {
		adm := fzAdmin(t, c.seed)
		md, err := adm.BrokerMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Brokers) != 1 || md.Brokers[0].Host != c.host || strconv.Itoa(int(md.Brokers[0].Port)) != c.port {
			t.Errorf("Metadata over %s: brokers %+v, want %s:%s", c.seed, md.Brokers, c.host, c.port)
		}
		topic := fzTopic(t, "listeners-"+c.host)
		fzCreateTopic(ctx, t, adm, topic, 1, nil)
		cl := fzClient(t, c.seed)
		fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Value: []byte("v")})
		got := fzConsume(ctx, t, c.seed, topic, 1)
		if string(got[0].Value) != "v" {
			t.Errorf("consumed %q over %s", got[0].Value, c.seed)
		}
		// A group through FindCoordinator on this listener.
		group := fzTopic(t, "listeners-group-"+c.host)
		gl := &grpLog{}
		m := grpStartMember(t, c.seed, "m", group, []string{topic}, gl)
		exp := grpNewExpected(topic, 1)
		exp.vals[0] = []string{"v"}
		grpWaitConsumed(t, gl, exp, 30*time.Second)
		m.Stop()
		grpReportErrs(t, m)
		fc := adm.FindGroupCoordinators(ctx, group)
		co, ok := fc[group]
		if !ok || co.Err != nil || co.Host != c.host || strconv.Itoa(int(co.Port)) != c.port {
			t.Errorf("FindCoordinator over %s: %+v, want %s:%s", c.seed, fc, c.host, c.port)
		}
		cluster, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(cluster.Brokers) != 1 || cluster.Brokers[0].Host != c.host || strconv.Itoa(int(cluster.Brokers[0].Port)) != c.port {
			t.Errorf("DescribeCluster over %s: %+v, want %s:%s", c.seed, cluster.Brokers, c.host, c.port)
		}
	}
	fzCheckLogs(t, p)
}
