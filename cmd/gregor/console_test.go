package main

import (
	"net"
	"strings"
	"testing"
)

func TestSelfAddr(t *testing.T) {
	for _, bind := range []string{"127.0.0.1:0", "0.0.0.0:0", "[::]:0"} {
		ln, err := net.Listen("tcp", bind)
		if err != nil {
			t.Logf("listen %s: %v (skipped)", bind, err)
			continue
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		got := selfAddr(ln)
		ln.Close()
		if got != "127.0.0.1:"+port {
			t.Errorf("selfAddr(listener on %s) = %s, want 127.0.0.1:%s", bind, got, port)
		}
		if strings.Contains(got, "0.0.0.0") || strings.Contains(got, "[::]") {
			t.Errorf("selfAddr(listener on %s) = %s: an unspecified address", bind, got)
		}
	}
}
