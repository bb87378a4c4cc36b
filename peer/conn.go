// Package peer is a minimal Kafka client for broker-to-broker requests
// (replica fetches, transaction markers): one connection, one request at
// a time, kmsg bodies in Kafka's framing (request header v1, or v2 with
// tagged fields for flexible versions).
package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

// maxResponseBytes bounds a response frame read from another broker.
const maxResponseBytes = 256 << 20

// Conn is one connection to another broker, dialled on first use and
// again after any error. Not safe for concurrent use: its owner (one
// goroutine, or a mutex) sends one request at a time.
type Conn struct {
	// Addr is the broker's host:port; changing it takes effect at the
	// next dial (Close first to move at once).
	Addr string
	// ClientID is sent in every request header.
	ClientID string

	nc   net.Conn
	r    *bufio.Reader
	corr int32
	buf  []byte
}

// Close closes the connection, if open; the next RoundTrip dials again.
func (p *Conn) Close() {
	if p.nc != nil {
		p.nc.Close()
		p.nc = nil
	}
}

// RoundTrip sends req at its set version and reads its response, within
// timeout (or ctx); any error closes the connection, so the next call
// dials again.
func (p *Conn) RoundTrip(ctx context.Context, req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	resp, err := p.roundTripOnce(ctx, req, timeout)
	if err != nil {
		p.Close()
	}
	return resp, err
}

func (p *Conn) roundTripOnce(ctx context.Context, req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	if p.nc == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", p.Addr)
		if err != nil {
			return nil, fmt.Errorf("peer: dial %s: %w", p.Addr, err)
		}
		p.nc, p.r = nc, bufio.NewReaderSize(nc, 64<<10)
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc := p.nc // the closure below must not read p.nc, which close clears
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()

	p.corr++
	b := append(p.buf[:0], 0, 0, 0, 0)
	b = kbin.AppendInt16(b, req.Key())
	b = kbin.AppendInt16(b, req.GetVersion())
	b = kbin.AppendInt32(b, p.corr)
	b = kbin.AppendNullableString(b, &p.ClientID)
	if req.IsFlexible() {
		b = kbin.AppendUvarint(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	p.buf = b
	if _, err := p.nc.Write(b); err != nil {
		return nil, fmt.Errorf("peer: write to %s: %w", p.Addr, err)
	}
	frame, err := protocol.ReadFrame(p.r, maxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("peer: read from %s: %w", p.Addr, err)
	}
	return decodeResponse(req, p.corr, frame, p.Addr)
}

// decodeResponse decodes a response frame (without its size) to req,
// checking its correlation id. Everything in it comes from the network;
// kmsg bounds every length by the bytes left.
func decodeResponse(req kmsg.Request, corr int32, frame []byte, from string) (kmsg.Response, error) {
	rd := kbin.Reader{Src: frame}
	if got := rd.Int32(); got != corr {
		return nil, fmt.Errorf("peer: %s answered correlation id %d, want %d", from, got, corr)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		n := rd.Uvarint()
		for i := uint32(0); i < n && rd.Ok(); i++ {
			rd.Uvarint()
			rd.Span(int(rd.Uvarint()))
		}
	}
	if err := rd.Complete(); err != nil {
		return nil, fmt.Errorf("peer: response header from %s: %w", from, err)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		return nil, fmt.Errorf("peer: %s response from %s: %w", kmsg.NameForKey(req.Key()), from, err)
	}
	return resp, nil
}
