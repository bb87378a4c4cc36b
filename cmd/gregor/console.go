package main

import (
	"context"
	"net"
	"net/http"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorbroker/gregor/broker"
	"github.com/gregorbroker/gregor/console"
)

// consoleNode adapts the broker to console.Node.
type consoleNode struct{ b *broker.Broker }

func (n consoleNode) NodeStatus(ctx context.Context) console.NodeStatus {
	s := n.b.Status(ctx)
	ns := console.NodeStatus{NodeID: s.NodeID, Controller: s.Controller, EtcdUp: s.EtcdUp,
		EtcdLatency: s.EtcdLatency, Faults: s.Faults, LocalPartitions: s.Hosted, Leading: s.Leading}
	if s.Ready != nil {
		ns.Ready = s.Ready.Error()
	}
	return ns
}

// selfAddr is the address the broker's own clients dial to reach the
// listener ln: its port on loopback when it listens on every address.
func selfAddr(ln net.Listener) string {
	host, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return ln.Addr().String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// withConsole adds the console's pages (GET /, /topics/..., /groups/...,
// /transactions) to mux. They read the cluster through a client of the
// broker's first listener, self; the returned function closes it.
func withConsole(mux *http.ServeMux, b *broker.Broker, self string, log zerolog.Logger) (func(), error) {
	seeds := []string{self}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID("gregor-console"))
	if err != nil {
		return nil, err
	}
	c, err := console.New(console.Options{
		Node:    consoleNode{b},
		Cluster: console.NewKafkaCluster(cl, seeds),
		Logger:  log,
	})
	if err != nil {
		cl.Close()
		return nil, err
	}
	c.Register(mux)
	return cl.Close, nil
}
