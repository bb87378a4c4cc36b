package main

// gregor health: the check of compose healthchecks and `docker exec`,
// healthcheck: ["CMD", "gregor", "health"]. It asks the local broker's
// HTTP server for /readyz and exits 0 on 200, 1 otherwise.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// defaultHTTPAddr is serve's --http-addr default, which health asks too.
const defaultHTTPAddr = "127.0.0.1:9644"

func healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "exit 0 when the local broker is ready (its /readyz answers 200), 1 otherwise",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "http-addr", Value: defaultHTTPAddr, Usage: "the broker's HTTP server, as given to serve (an unspecified host means this host)", EnvVars: env("http-addr")},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "how long to wait for the answer", EnvVars: env("health-timeout")},
		},
		Action: health,
	}
}

func health(c *cli.Context) error {
	url, err := readyzURL(c.String("http-addr"))
	if err != nil {
		return cli.Exit("gregor health: "+err.Error(), 1)
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return cli.Exit(fmt.Sprintf("gregor health: %s: %v", url, err), 1)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cli.Exit(fmt.Sprintf("gregor health: %v", err), 1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return cli.Exit(fmt.Sprintf("gregor health: %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body))), 1)
	}
	fmt.Fprint(c.App.Writer, string(body))
	return nil
}

// readyzURL is the /readyz URL of an --http-addr, asked on loopback when
// the address binds every interface.
func readyzURL(addr string) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("the broker has no HTTP server (--http-addr is empty)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--http-addr %q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
