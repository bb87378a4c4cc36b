package broker

import (
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// clientHost is the client's address as Kafka reports it in groups: "/" and the IP.
func (c *conn) clientHost() string {
	if c.nc == nil {
		return "/unknown"
	}
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return "/" + c.nc.RemoteAddr().String()
	}
	return "/" + host
}

// requestClientID is the client id of the request being handled ("" if none).
func (c *conn) requestClientID() string {
	if c.clientID == nil {
		return ""
	}
	return *c.clientID
}

func millis(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

// code is err's Kafka code (0 for nil).
func code(err *kerr.Error) int16 {
	if err == nil {
		return 0
	}
	return err.Code
}
