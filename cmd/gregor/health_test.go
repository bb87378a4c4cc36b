package main

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runHealth runs `gregor health args...` and returns its output and error.
func runHealth(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "gregor", Writer: &out, ExitErrHandler: func(*cli.Context, error) {}, Commands: []*cli.Command{healthCommand()}}
	err := app.Run(append([]string{"gregor", "health"}, args...))
	return out.String(), err
}

func TestHealthAgainstBroker(t *testing.T) {
	b := testBroker(t)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: healthMux(b)}
	go srv.Serve(hl)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(hl.Addr().String())

	// Not listening yet: /readyz answers 503 and health fails.
	_, err = runHealth(t, "--http-addr", hl.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("health before serving: err = %v, want a 503", err)
	}
	if code := err.(cli.ExitCoder).ExitCode(); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	serveLoopback(t, b)
	// The address as serve is given it in a container, 0.0.0.0, through
	// the environment variable serve reads too.
	t.Setenv("GREGOR_HTTP_ADDR", "0.0.0.0:"+port)
	out, err := runHealth(t)
	if err != nil {
		t.Fatalf("health of a serving broker: %v", err)
	}
	if out != "ready\n" {
		t.Fatalf("output %q, want ready", out)
	}
}

func TestHealthFailures(t *testing.T) {
	// Nothing listens on a port just freed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := runHealth(t, "--http-addr", addr, "--timeout", "2s"); err == nil {
		t.Fatal("health succeeded with nothing listening")
	}
	// A server that never answers: the timeout ends the wait.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	if _, err := runHealth(t, "--http-addr", hang.Addr().String(), "--timeout", "200ms"); err == nil ||
		!strings.Contains(err.Error(), "deadline") {
		t.Fatalf("health of a silent server: err = %v, want a deadline", err)
	}
	if _, err := runHealth(t, "--http-addr", ""); err == nil || !strings.Contains(err.Error(), "no HTTP server") {
		t.Fatalf("empty --http-addr: err = %v", err)
	}
}
