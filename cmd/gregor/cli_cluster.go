package main

// gregor cluster describe: the cluster id, the controller and the
// brokers, from Metadata (what kafka-cluster.sh and kcat -L show).

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/urfave/cli/v2"
)

func clusterCommand() *cli.Command {
	return withClientFlags(&cli.Command{
		Name:  "cluster",
		Usage: "show the cluster",
		Subcommands: []*cli.Command{
			{Name: "describe", Usage: "show the cluster id, the controller and the brokers", Action: adminAction(clusterDescribe)},
		},
	})
}

// clusterBroker is one broker in `cluster describe --json`.
type clusterBroker struct {
	NodeID     int32  `json:"node_id"`
	Host       string `json:"host"`
	Port       int32  `json:"port"`
	Rack       string `json:"rack,omitempty"`
	Controller bool   `json:"controller"`
}

// clusterOut is the output of `cluster describe --json`.
type clusterOut struct {
	ClusterID  string          `json:"cluster_id"`
	Controller int32           `json:"controller"`
	Brokers    []clusterBroker `json:"brokers"`
}

func clusterDescribe(ctx context.Context, c *cli.Context, adm *kadm.Client) error {
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("cluster describe: %w", err)
	}
	out := clusterOut{ClusterID: meta.Cluster, Controller: meta.Controller, Brokers: []clusterBroker{}}
	for _, b := range meta.Brokers {
		cb := clusterBroker{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Controller: b.NodeID == meta.Controller}
		if b.Rack != nil {
			cb.Rack = *b.Rack
		}
		out.Brokers = append(out.Brokers, cb)
	}
	return printOut(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "ClusterId: %s\tController: %d\tBrokers: %d\n", out.ClusterID, out.Controller, len(out.Brokers))
		var rows [][]string
		for _, b := range out.Brokers {
			ctl := ""
			if b.Controller {
				ctl = "yes"
			}
			rows = append(rows, []string{strconv.Itoa(int(b.NodeID)), b.Host, strconv.Itoa(int(b.Port)), b.Rack, ctl})
		}
		return printTable(w, []string{"NODE", "HOST", "PORT", "RACK", "CONTROLLER"}, rows)
	})
}
