package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

// conn is one client connection: a serial pipeline. The serve goroutine
// reads a request, runs its handler, and queues the encoded response; the
// writer goroutine writes responses in the order they were queued, so
// responses leave in request order while the next request is already being
// read and handled. Kafka processes one request per connection at a time
// too, which keeps produce order per connection.
type conn struct {
	b    *Broker
	nc   net.Conn
	log  zerolog.Logger
	ctx  context.Context // cancelled when the connection ends
	stop context.CancelFunc

	// stopping is set by Broker.Close; the serve goroutine then stops
	// reading after the request in hand.
	stopping atomic.Bool

	// listener names the listener the connection came in on ("" for a
	// broker with one); read-only.
	listener string

	// out carries responses from serve to the writer goroutine, which owns
	// nc for writing, in request order.
	out chan outFrame
	// clientID is the client id of the request being handled; owned by the serve goroutine.
	clientID *string
	// writeFailed is closed by the writer goroutine when a write fails.
	writeFailed chan struct{}
}

func newConn(b *Broker, nc net.Conn, listener string) *conn {
	ctx, cancel := context.WithCancel(b.ctx)
	return &conn{
		b:        b,
		nc:       nc,
		listener: listener,
		log:      b.log.With().Str("remote", nc.RemoteAddr().String()).Logger(),
		ctx:      ctx,
		stop:     cancel,
		out:      make(chan outFrame, 32),

		writeFailed: make(chan struct{}),
	}
}

// stopReading interrupts a blocked read so serve returns after the request in hand.
func (c *conn) stopReading() {
	c.stopping.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	close(c.out)
	<-writerDone
	c.stop()
	c.nc.Close()
}

func (c *conn) readLoop() {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		if c.stopping.Load() {
			return
		}
		c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.IdleTimeout))
		frame, err := protocol.ReadFrame(r, c.b.maxReq)
		if err != nil {
			c.logReadError(err)
			return
		}
		hdr, req, err := protocol.ParseRequest(frame)
		if err != nil {
			if resp := c.b.answerUnparsable(hdr, err); resp != nil {
				c.send(protocol.AppendResponse(nil, hdr.CorrelationID, resp))
				continue
			}
			c.log.Warn().Err(err).Int16("api_key", hdr.Key).Int16("api_version", hdr.Version).Msg("closing connection: request does not parse")
			return
		}
		resp, err := c.dispatchSafely(hdr, req)
		if err != nil {
			c.log.Warn().Err(err).Str("api", kmsg.NameForKey(hdr.Key)).Int16("api_version", hdr.Version).Msg("closing connection")
			return
		}
		if resp == nil { // acks=0 produce
			continue
		}
		if d, ok := resp.(*deferredResponse); ok {
			// Complete once d.wait returns; the next requests are read and
			// handled meanwhile, and their responses queue behind it.
			corr, version := hdr.CorrelationID, hdr.Version
			if !c.sendFrame(outFrame{deferred: func() []byte {
				d.wait()
				d.Response.SetVersion(version)
				return protocol.AppendResponse(c.b.bufs.get(protocol.ResponseSizeHint(d.Response)), corr, d.Response)
			}}) {
				return
			}
			continue
		}
		resp.SetVersion(hdr.Version)
		out := protocol.AppendResponse(c.b.bufs.get(protocol.ResponseSizeHint(resp)), hdr.CorrelationID, resp)
		if fr, ok := resp.(*kmsg.FetchResponse); ok {
			// The batches are copied into the frame: their buffers go back.
			for i := range fr.Topics {
				for j := range fr.Topics[i].Partitions {
					c.b.bufs.put(fr.Topics[i].Partitions[j].RecordBatches)
				}
			}
		}
		if !c.send(out) {
			return
		}
	}
}

// dispatchSafely runs the handler; a panic in it (a bug) closes only this
// connection, with the stack logged once, instead of the process.
func (c *conn) dispatchSafely(hdr protocol.RequestHeader, req kmsg.Request) (resp kmsg.Response, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error().Str("api", kmsg.NameForKey(hdr.Key)).Int16("api_version", hdr.Version).
				Interface("panic", r).Str("stack", string(debug.Stack())).Msg("handler panicked; closing connection")
			resp, err = nil, fmt.Errorf("broker: handler panicked: %v", r)
		}
	}()
	return c.b.dispatch(c, hdr, req)
}

func (c *conn) logReadError(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case c.stopping.Load():
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Debug().Msg("closing idle connection")
	case errors.Is(err, protocol.ErrFrameTooLarge):
		c.log.Warn().Err(err).Msg("closing connection: frame too large")
	default:
		c.log.Debug().Err(err).Msg("connection read ended")
	}
}

// outFrame is one response for the writer: an encoded frame, or a
// function that blocks until the response is complete and encodes it.
type outFrame struct {
	frame    []byte
	deferred func() []byte
}

// deferredResponse is a response that is complete only once wait returns
// (an acks=all produce waiting for its ISR). The handler has done
// everything but the waiting, in request order.
type deferredResponse struct {
	kmsg.Response
	wait func()
}

// send queues an encoded response; false if the writer has gone away.
func (c *conn) send(frame []byte) bool { return c.sendFrame(outFrame{frame: frame}) }

func (c *conn) sendFrame(f outFrame) bool {
	select {
	case c.out <- f:
		return true
	case <-c.writeFailed:
		return false
	}
}

func (c *conn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	failed := false
	for of := range c.out {
		if failed {
			continue // drain so serve never blocks
		}
		frame := of.frame
		if of.deferred != nil {
			if err := w.Flush(); err != nil { // what is ready goes out before the wait
				failed = true
				close(c.writeFailed)
				c.stop()
				c.nc.SetReadDeadline(time.Now())
				continue
			}
			frame = of.deferred()
		}
		_, err := w.Write(frame)
		c.b.bufs.put(frame) // written or copied into w; see buffers.go
		if err == nil && len(c.out) == 0 {
			err = w.Flush()
		}
		if err != nil {
			failed = true
			close(c.writeFailed)
			c.stop()
			c.nc.SetReadDeadline(time.Now())
		}
	}
	if !failed {
		w.Flush()
	}
}
