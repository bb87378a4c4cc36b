package main

// Named listeners (Kafka's listeners / advertised.listeners), for a broker
// that clients reach under different addresses, as in a docker-compose
// stack where containers use gregor:29092 and the host localhost:9092.

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// listenerSpec is one listener: its name ("" for the single unnamed
// listener of --listen), the address it binds and the endpoint it
// advertises.
type listenerSpec struct {
	name string
	bind string
	host string
	port int32
}

// parseListeners reads --listeners ("NAME://host:port,...") and
// --advertised-listeners (same form, by name). A listener with no
// advertised entry advertises its bind address, with localhost for an
// unspecified host (0.0.0.0, ::, empty). Names are upper-cased, as Kafka
// does, and must be unique.
func parseListeners(listeners, advertisedListeners string) ([]listenerSpec, error) {
	binds, err := splitListeners("--listeners", listeners)
	if err != nil {
		return nil, err
	}
	advs, err := splitListeners("--advertised-listeners", advertisedListeners)
	if err != nil {
		return nil, err
	}
	adv := make(map[string]string, len(advs))
	for _, a := range advs {
		adv[a[0]] = a[1]
	}
	var out []listenerSpec
	seen := map[string]bool{}
	for _, b := range binds {
		name, bind := b[0], b[1]
		if seen[name] {
			return nil, fmt.Errorf("--listeners: listener %s named twice", name)
		}
		seen[name] = true
		a, explicit := adv[name]
		if !explicit {
			a = bind
		}
		host, port, err := splitEndpoint(a, !explicit)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", name, err)
		}
		out = append(out, listenerSpec{name: name, bind: bind, host: host, port: port})
	}
	for name := range adv {
		if !seen[name] {
			return nil, fmt.Errorf("--advertised-listeners names %s, which --listeners does not have", name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--listeners: no listener")
	}
	return out, nil
}

// splitListeners splits "NAME://host:port,..." into name, host:port pairs.
func splitListeners(flag, s string) ([][2]string, error) {
	var out [][2]string
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, addr, ok := strings.Cut(entry, "://")
		if !ok || name == "" || addr == "" || strings.ContainsAny(name, "/:") {
			return nil, fmt.Errorf("%s: %q is not NAME://host:port", flag, entry)
		}
		out = append(out, [2]string{strings.ToUpper(name), addr})
	}
	return out, nil
}

// splitEndpoint reads host:port; with defaultHost an unspecified host
// becomes localhost.
func splitEndpoint(addr string, defaultHost bool) (string, int32, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("address %q: bad port", addr)
	}
	if defaultHost && (host == "" || host == "0.0.0.0" || host == "::") {
		host = "localhost"
	}
	return host, int32(port), nil
}
