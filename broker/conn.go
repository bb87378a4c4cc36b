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

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/gregorbroker/gregor/protocol"
)

// conn is one client connection: a serial pipeline of three goroutines.
//
//	reader     reads frames from the socket into in (one frame queued at
//	           most), each frame's bytes taken from the broker's
//	           queued.max.request.bytes budget before its body is read;
//	           it sees the client hang up (EOF, reset) even while a
//	           handler waits, and then cancels ctx, which ends a waiting
//	           long-poll Fetch or acks=all Produce at once.
//	processor  (serve's goroutine) handles the requests one at a time, in
//	           order, and queues each encoded response on out. It takes
//	           no new request while maxPendingResponseBytes or more of
//	           this connection's responses wait to be written: a client
//	           that does not read its responses stops being read
//	           (backpressure), its requests wait in its socket.
//	writer     writes the responses in the order queued.
//
// Responses leave in request order while the next request is already
// being read; Kafka too handles one request per connection at a time,
// which keeps produce order per connection.
type conn struct {
	b    *Broker
	nc   net.Conn
	log  zerolog.Logger
	ctx  context.Context // cancelled when the client hangs up or the connection ends
	stop context.CancelFunc

	// stopping is set by Broker.Close; the reader then stops reading and
	// the requests already read are answered.
	stopping atomic.Bool

	// listener names the listener the connection came in on ("" for a
	// broker with one); read-only.
	listener string

	// in carries request frames from the reader to the processor.
	in chan inFrame
	// out carries responses from the processor to the writer goroutine,
	// which owns nc for writing, in request order.
	out chan outFrame
	// clientID is the client id of the request being handled; owned by the processor.
	clientID *string
	// writeFailed is closed by the writer goroutine when a write fails.
	writeFailed chan struct{}

	// pending is the bytes of encoded responses queued for the writer and
	// not yet written; written wakes the processor when it drops. Added to
	// by the processor, taken from by the writer.
	pending atomic.Int64
	written chan struct{}
	// inFlight counts requests read and not yet answered (or, for acks=0
	// produce, handled): a connection with one is not idle.
	inFlight atomic.Int32
}

// maxPendingResponseBytes is how many bytes of responses may wait for a
// connection's writer before its next request is taken: above it, the
// connection stops being read until the client reads. One response is
// always taken whatever its size, so a connection holds at most this much
// plus one response.
const maxPendingResponseBytes = 64 << 10

// connBufferSize is the size of a connection's read and write buffers.
// Frames larger than it are read into and written from their own buffers
// directly, so it bounds the per-connection cost, not the frame size.
const connBufferSize = 16 << 10

// frameBodyTimeout is how long the body of a frame of size bytes may take
// to arrive once its bytes are taken from queued.max.request.bytes: 30 s,
// plus a second per MiB (a client sending less than 1 MiB/s is cut off).
func frameBodyTimeout(size int32) time.Duration {
	return 30*time.Second + time.Duration(size)*time.Second/(1<<20)
}

// inFrame is one request frame read; charge is what it took from the
// broker's request budget, given back once it has been handled.
type inFrame struct {
	frame  []byte
	charge int64
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
		in:       make(chan inFrame, 1),
		out:      make(chan outFrame, 32),
		written:  make(chan struct{}, 1),

		writeFailed: make(chan struct{}),
	}
}

// stopReading interrupts a blocked read so the connection ends after the
// requests already read are answered.
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
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		// A panic in reading ends the connection (c.in closes as it
		// unwinds), logged once; the broker goes on.
		safe.Run(c.log, "connection reader", c.readLoop)
	}()
	c.processLoop()
	// The processor has stopped (the reader is done, or a request closed
	// the connection): unblock the reader, give back what it still holds.
	c.stop()
	c.nc.SetReadDeadline(time.Now())
	for f := range c.in {
		c.b.reqBudget.give(f.charge)
	}
	<-readerDone
	close(c.out)
	<-writerDone
	c.nc.Close()
}

// readLoop is the reader goroutine: it reads frames into c.in until the
// client hangs up, a frame is bad, the connection is idle for
// connections.max.idle.ms, or stopReading. It closes c.in when it returns.
func (c *conn) readLoop() {
	defer close(c.in)
	r := bufio.NewReaderSize(c.nc, connBufferSize)
	for {
		if err := c.awaitFrame(r); err != nil {
			c.endReading(err)
			return
		}
		size, err := protocol.ReadFrameSize(r, c.b.maxReq)
		if err != nil {
			c.endReading(err)
			return
		}
		charge := int64(size)
		if !c.b.reqBudget.take(c.ctx.Done(), charge) {
			return
		}
		// The bytes are held for this frame now: it must arrive at a
		// useful rate, so that a client that declares a large frame and
		// sends little of it does not hold them for long.
		c.nc.SetReadDeadline(time.Now().Add(min(c.b.cfg.IdleTimeout, frameBodyTimeout(size))))
		if c.ctx.Err() != nil { // ended meanwhile: see awaitFrame
			c.b.reqBudget.give(charge)
			c.endReading(errConnEnded)
			return
		}
		frame, err := protocol.ReadFrameBody(r, size)
		if err != nil {
			c.b.reqBudget.give(charge)
			c.endReading(err)
			return
		}
		c.inFlight.Add(1)
		select {
		case c.in <- inFrame{frame: frame, charge: charge}:
		case <-c.ctx.Done():
			c.inFlight.Add(-1)
			c.b.reqBudget.give(charge)
			return
		}
	}
}

// awaitFrame waits until the next frame's size has arrived. A connection
// with nothing in flight for connections.max.idle.ms is idle and ends;
// one whose requests are being handled (a long poll, a join waiting for
// its group) is not, however long that takes, unless the connection is
// ending (ctx done). A deadline that passes in
// the middle of a frame ends the connection (ReadFrameBody).
func (c *conn) awaitFrame(r *bufio.Reader) error {
	for {
		if c.stopping.Load() {
			return errStopping
		}
		c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.IdleTimeout))
		// Whoever ends the connection (stop, stopReading) sets its flag
		// and then a past deadline; checked after ours is set, one of
		// the two always reaches this read.
		if c.stopping.Load() {
			return errStopping
		}
		if c.ctx.Err() != nil {
			return errConnEnded
		}
		_, err := r.Peek(4)
		if err == nil {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.stopping.Load() && c.ctx.Err() == nil && c.inFlight.Load() > 0 {
			continue
		}
		return err
	}
}

// errStopping ends the reader when Broker.Close asked it to stop.
var errStopping = errors.New("broker: connection stopping")

// errConnEnded ends the reader of a connection that ended otherwise (its
// writer failed, or a request closed it).
var errConnEnded = errors.New("broker: connection ended")

// endReading logs why reading ended and, unless the broker is stopping
// (which answers what was read), cancels the connection's context so that
// a handler waiting for this client stops waiting.
func (c *conn) endReading(err error) {
	c.logReadError(err)
	if !c.stopping.Load() {
		c.stop()
	}
}

// processLoop is the processor: it handles the frames the reader queued,
// in order, until c.in closes or a request closes the connection.
func (c *conn) processLoop() {
	for f := range c.in {
		ok := c.process(f.frame)
		c.b.reqBudget.give(f.charge)
		if !ok {
			return
		}
		// Backpressure: the next request waits until this client has
		// read enough of its responses.
		for c.pending.Load() >= maxPendingResponseBytes {
			select {
			case <-c.written:
			case <-c.writeFailed:
				return
			}
		}
	}
}

// process handles one request frame; false closes the connection.
func (c *conn) process(frame []byte) bool {
	start := time.Now() // for the request metrics: from here to the response written
	hdr, req, err := protocol.ParseRequest(frame)
	if err != nil {
		if resp := c.b.answerUnparsable(hdr, err); resp != nil {
			return c.sendFrame(outFrame{frame: protocol.AppendResponse(nil, hdr.CorrelationID, resp)})
		}
		c.log.Warn().Err(err).Int16("api_key", hdr.Key).Int16("api_version", hdr.Version).Msg("closing connection: request does not parse")
		return false
	}
	resp, err := c.dispatchSafely(hdr, req)
	if err != nil {
		c.log.Warn().Err(err).Str("api", kmsg.NameForKey(hdr.Key)).Int16("api_version", hdr.Version).Msg("closing connection")
		return false
	}
	if resp == nil { // acks=0 produce
		c.inFlight.Add(-1)
		c.b.metrics.request(hdr.Key, hdr.Version, start, req)
		return true
	}
	timing := c.b.metrics.timing(hdr.Key, hdr.Version, start, req)
	if d, ok := resp.(*deferredResponse); ok {
		// Complete once d.wait returns; the next requests are read and
		// handled meanwhile, and their responses queue behind it.
		corr, version := hdr.CorrelationID, hdr.Version
		return c.sendFrame(outFrame{timing: timing, deferred: func() []byte {
			d.wait()
			d.Response.SetVersion(version)
			return protocol.AppendResponse(c.b.bufs.get(protocol.ResponseSizeHint(d.Response)), corr, d.Response)
		}})
	}
	resp.SetVersion(hdr.Version)
	out := protocol.AppendResponse(c.b.bufs.get(protocol.ResponseSizeHint(resp)), hdr.CorrelationID, resp)
	of := outFrame{frame: out, timing: timing}
	if fr, ok := resp.(*kmsg.FetchResponse); ok {
		// The batches are copied into the frame: their buffers go back to
		// the pool, and their charge on the response budget is carried by
		// the frame until it is written.
		of.charge, of.budget = c.b.recycleFetch(fr), c.b.fetchBudget(req.(*kmsg.FetchRequest))
	}
	of.timing.markQueued()
	return c.sendFrame(of)
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
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, errStopping), errors.Is(err, errConnEnded):
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
// charge is what the frame holds of the broker's response budget, given
// back once it is written. timing is its request's metrics, observed by
// the writer once the frame's last byte is on the socket.
type outFrame struct {
	frame    []byte
	deferred func() []byte
	charge   int64
	budget   *byteBudget // what charge is held on; nil when charge is 0
	timing   reqTiming
}

// deferredResponse is a response that is complete only once wait returns
// (an acks=all produce waiting for its ISR). The handler has done
// everything but the waiting, in request order.
type deferredResponse struct {
	kmsg.Response
	wait func()
}

// release gives the frame's charge back to its budget.
func (f outFrame) release() {
	if f.budget != nil {
		f.budget.give(f.charge)
	}
}

// sendFrame queues a response for the writer; false if the writer has gone
// away (the frame is then dropped and its charge given back).
func (c *conn) sendFrame(f outFrame) bool {
	n := int64(len(f.frame))
	c.pending.Add(n)
	select {
	case c.out <- f:
		return true
	case <-c.writeFailed:
		c.pending.Add(-n)
		f.timing.markDequeued() // counted, ending now, as the writer counts what it drops
		c.b.metrics.observe(&f.timing, time.Now())
		f.release()
		c.b.bufs.put(f.frame)
		return false
	}
}

// writeLoop is the writer goroutine: it writes the responses of c.out in
// order until c.out closes. After a failed write (or a panic while making
// or writing a response, which is logged once) it only drains c.out, so
// the processor never blocks, and the connection ends.
func (c *conn) writeLoop() {
	ws := &connWriter{sock: socketWriter{nc: c.nc}}
	ws.w = bufio.NewWriterSize(&ws.sock, connBufferSize)
	// Responses whose bytes reach the socket while a later, larger one is
	// written (bufio flushes the buffer first) are observed at once, not
	// after that one's whole send.
	ws.sock.onWrite = func() { ws.sent(c.b.metrics) }
	failed := false
	fail := func() {
		if failed {
			return
		}
		failed = true
		close(c.writeFailed)
		c.stop()
		c.nc.SetReadDeadline(time.Now())
		// What was written and not sent is counted as ended now, as Kafka
		// counts the responses in flight on a connection that closes.
		ws.sentAll(c.b.metrics)
	}
	for of := range c.out {
		if failed {
			// Drain so the processor never blocks; what is left is dropped
			// (and its request counted, ending now).
			of.timing.markDequeued()
			c.b.metrics.observe(&of.timing, time.Now())
			c.done(int64(len(of.frame)), of, of.frame)
			continue
		}
		accounted := false
		if safe.Run(c.log, "connection writer", func() { accounted = c.writeOne(ws, of, fail) }) {
			if !accounted {
				c.done(int64(len(of.frame)), of, nil)
			}
			fail()
		}
	}
	if !failed {
		ws.w.Flush()
		ws.sentAll(c.b.metrics) // sent, or the connection ends now
	}
}

// writeOne writes one response (making it first if it is deferred) and
// accounts for it; it returns true once accounted, so that a panic before
// that can be accounted for by the caller.
func (c *conn) writeOne(ws *connWriter, of outFrame, fail func()) (accounted bool) {
	w := ws.w
	queued := int64(len(of.frame))
	frame := of.frame
	if of.deferred != nil {
		c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.IdleTimeout))
		if err := w.Flush(); err != nil { // what is ready goes out before the wait
			fail()
			of.timing.markDequeued()
			c.b.metrics.observe(&of.timing, time.Now())
			c.done(0, outFrame{}, nil)
			return true
		}
		ws.sent(c.b.metrics)
		frame = of.deferred()
		of.timing.markQueued() // complete only now
	}
	of.timing.markDequeued()
	// A client that reads nothing for connections.max.idle.ms while
	// a response waits for it is as idle as one that sends nothing.
	c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.IdleTimeout))
	_, err := w.Write(frame)
	if err == nil && len(c.out) == 0 {
		err = w.Flush()
	}
	ws.wrote(of.timing, len(frame))
	c.done(queued, of, frame) // written or copied into w; see buffers.go
	if err != nil {
		fail()
		return true
	}
	ws.sent(c.b.metrics)
	return true
}

// connWriter is the writer goroutine's state: the buffered socket and the
// responses written into it whose last byte may not be on the socket yet,
// whose request metrics wait for it (Kafka ends a request's total time
// when its send completes). Owned by the writer goroutine.
type connWriter struct {
	sock   socketWriter
	w      *bufio.Writer // writes into sock
	in     int64         // bytes written into w
	unsent []unsentResponse
}

// unsentResponse is a response written into the buffer; end is in's value
// after its last byte.
type unsentResponse struct {
	timing reqTiming
	end    int64
}

// maxUnsent bounds the responses a writer holds the metrics of: more,
// and the buffer is flushed (a long run of small pipelined responses
// would otherwise keep the buffer from ever emptying).
const maxUnsent = 64

// wrote records a response of n bytes written into the buffer.
func (ws *connWriter) wrote(t reqTiming, n int) {
	ws.in += int64(n)
	if t.api == nil {
		return
	}
	ws.unsent = append(ws.unsent, unsentResponse{timing: t, end: ws.in})
	if len(ws.unsent) >= maxUnsent {
		ws.w.Flush() // an error is the next write's
	}
}

// sent observes the metrics of the responses whose bytes have all been
// written to the socket.
func (ws *connWriter) sent(m *brokerMetrics) {
	if len(ws.unsent) == 0 || ws.unsent[0].end > ws.sock.n {
		return
	}
	now := time.Now()
	i := 0
	for ; i < len(ws.unsent) && ws.unsent[i].end <= ws.sock.n; i++ {
		m.observe(&ws.unsent[i].timing, now)
	}
	n := copy(ws.unsent, ws.unsent[i:])
	ws.unsent = ws.unsent[:n]
}

// sentAll observes the metrics of every response written, sent or not
// (the connection is ending).
func (ws *connWriter) sentAll(m *brokerMetrics) {
	now := time.Now()
	for i := range ws.unsent {
		m.observe(&ws.unsent[i].timing, now)
	}
	ws.unsent = ws.unsent[:0]
}

// socketWriter counts the bytes written to the connection; owned by the
// writer goroutine.
type socketWriter struct {
	nc      io.Writer // the connection
	n       int64
	onWrite func() // called after each write to nc; may be nil
}

func (s *socketWriter) Write(p []byte) (int, error) {
	n, err := s.nc.Write(p)
	s.n += int64(n)
	if s.onWrite != nil {
		s.onWrite()
	}
	return n, err
}

// done accounts for one response leaving the writer: its bytes stop
// counting as pending (waking a processor waiting on backpressure), its
// charge goes back to its budget and frame to the pool.
func (c *conn) done(queued int64, of outFrame, frame []byte) {
	c.pending.Add(-queued)
	c.inFlight.Add(-1)
	of.release()
	c.b.bufs.put(frame)
	select {
	case c.written <- struct{}{}:
	default:
	}
}
