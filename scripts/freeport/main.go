// Command freeport prints n distinct loopback TCP ports that were free a
// moment ago, one per line, for scripts that start gregor on ports nobody
// else uses (scripts/conformance.sh). Usage: freeport [n] (default 1).
//
// All n listeners stay open until every port is chosen, so the ports are
// distinct; they are closed before printing, so another process could in
// principle take one before the caller binds it; conformance.sh retries
// the start when that happens.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// maxPorts bounds n so a typo cannot open thousands of sockets.
const maxPorts = 64

func main() {
	n := 1
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 1 || v > maxPorts {
			fmt.Fprintf(os.Stderr, "usage: freeport [n], 1 <= n <= %d\n", maxPorts)
			os.Exit(2)
		}
		n = v
	}
	ports, err := freePorts(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "freeport:", err)
		os.Exit(1)
	}
	for _, p := range ports {
		fmt.Println(p)
	}
}

// freePorts binds n listeners on 127.0.0.1:0 and returns their ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
