package httpapp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// answerReadBuffer is the read buffer of each kept-alive connection; a usual answer's head fits in it.
const answerReadBuffer = 4 << 10

// inlineBodyMax is the largest body copied behind the head so that one write sends the request; a larger
// one goes out with the head in one writev, which saves the copy.
const inlineBodyMax = 16 << 10

var (
	// errHeadTooLarge ends the reading of an answer whose status line and headers exceed maxHeaderBytes.
	errHeadTooLarge = fmt.Errorf("the app's answer headers exceed %d KiB", maxHeaderBytes>>10)
	// errAnswerTooLarge ends the reading of an answer body whose framing (chunk sizes, trailers) goes far
	// beyond the bytes it carries.
	errAnswerTooLarge = errors.New("the app's answer is too large")
	// errTLSHandshakeTimeout is a handshake that did not finish within the connect limit.
	errTLSHandshakeTimeout = errors.New("tls: handshake timeout")
)

// tlsSetupError is a failed TLS handshake, whatever the cause: the app cannot be reached over TLS as
// configured (wrong CA, a client certificate it rejects, no TLS on its side), which is no record's fault.
type tlsSetupError struct{ err error }

func (e *tlsSetupError) Error() string { return e.err.Error() }
func (e *tlsSetupError) Unwrap() error { return e.err }

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// outgoing is a request as it goes on the wire: the request line and headers (and a small body), then the
// body when it was too large to copy behind them.
type outgoing struct {
	head []byte
	body []byte
}

// connPool is an HTTP/1.1 client for the one app, in place of net/http's Transport on the delivery path.
// Each exchange writes the request and reads the answer on the calling goroutine over a kept-alive
// connection, where the Transport hands every request to a write goroutine and takes every answer from a
// read goroutine: several goroutine switches per delivery, which on a busy sidecar cost more CPU than the
// request itself. With no goroutine watching idle connections, one the app closed while it was idle is only
// found out when it is used again; exchange then sends the request once more on a new connection.
type connPool struct {
	addr      string      // host:port dialled
	tls       *tls.Config // nil for http
	dialer    net.Dialer
	handshake time.Duration
	maxIdle   int
	maxBody   int64
	// wrapConn, when set, wraps each new connection; tests watch the bytes read through it.
	wrapConn func(net.Conn) net.Conn
	// checkIdleAfter is the package constant of that name; tests set it to zero.
	checkIdleAfter time.Duration

	mu sync.Mutex
	// idle holds the kept-alive connections that carry no request, the most recently used last: it is the
	// one taken next, as the app is the least likely to have closed it.
	idle []*persistConn
	// closeNewIdle is set by closeIdle until the next exchange begins, so that connections still busy when
	// the idle ones were closed (on shutdown) are closed too as they finish, as net/http's Transport does.
	closeNewIdle bool
}

// newConnPool builds the pool for addr ("host:port"). tlsConf non-nil means https. Connecting and the TLS
// handshake each take at most connectLimit (and never more than a few seconds).
func newConnPool(addr string, tlsConf *tls.Config, maxIdle int, maxBody int64, connectLimit time.Duration) *connPool {
	p := &connPool{
		addr:      addr,
		dialer:    net.Dialer{Timeout: min(dialTimeout, connectLimit), KeepAlive: 30 * time.Second},
		handshake: min(tlsHandshakeTimeout, connectLimit),
		maxIdle:   maxIdle,
		maxBody:   maxBody,

		checkIdleAfter: checkIdleAfter,
	}
	if tlsConf != nil {
		p.tls = tlsConf.Clone()
		if p.tls.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			p.tls.ServerName = host
		}
		// HTTP/1.1 is all this client speaks; one app on localhost gains nothing from multiplexing.
		p.tls.NextProtos = []string{"http/1.1"}
	}
	return p
}

// persistConn is one connection to the app with its read buffer and the answer it is reading.
type persistConn struct {
	pool *connPool
	conn net.Conn
	// raw is the TCP connection under conn, which quiet looks at.
	raw    net.Conn
	budget budgetReader
	br     *bufio.Reader
	// wake pulls the deadline in, which makes a blocked read or write return at once; it is registered
	// with context.AfterFunc for the caller's context during each exchange.
	wake func()
	// bufs is the writev vector for a large body, kept here so that writing it allocates nothing.
	bufs      net.Buffers
	vec       [2][]byte
	idleSince time.Time
	// reused tells that the connection carried an answer before: the app may have closed it while idle.
	reused bool
	ans    answer
}

// budgetReader bounds the bytes read from a connection, so that endless headers (or chunk framing, or
// trailers) cannot grow memory or hold a delivery; it also counts what an exchange read, which decides
// whether the request may be sent again.
type budgetReader struct {
	conn net.Conn
	left int64
	err  error // returned once left is used up
	read int64
}

// Read implements io.Reader.
func (r *budgetReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, r.err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.conn.Read(p)
	r.left -= int64(n)
	r.read += int64(n)
	return n, err
}

// limit allows n more bytes, then err.
func (r *budgetReader) limit(n int64, err error) { r.left, r.err = n, err }

// close closes the connection; the answer it may hold must not be read any more.
func (pc *persistConn) close() { _ = pc.conn.Close() }

// exchange sends out and reads the status line and headers of the answer, all on the calling goroutine.
// deadline bounds the whole exchange, including the caller's reading of the body; ctx ending pulls it in.
// The caller reads the body from the answer and then must call its release.
//
// A kept-alive connection that the app closed while it was idle fails before any byte of an answer
// arrives; the request is then sent once more on a new connection. Sending it again is safe because every
// request carries an Idempotency-Key; net/http's Transport does the same for such requests.
func (p *connPool) exchange(ctx context.Context, out *outgoing, deadline time.Time) (*answer, error) {
	pc, err := p.get(ctx, deadline)
	if err != nil {
		return nil, err
	}
	for {
		a, err := pc.roundTrip(ctx, out, deadline)
		if err == nil {
			return a, nil
		}
		pc.close()
		if !pc.reused || pc.budget.read > 0 || ctx.Err() != nil || !time.Now().Before(deadline) {
			return nil, err
		}
		if pc, err = p.dial(ctx, deadline); err != nil {
			return nil, err
		}
	}
}

// roundTrip writes out on pc and reads the answer's head.
func (pc *persistConn) roundTrip(ctx context.Context, out *outgoing, deadline time.Time) (*answer, error) {
	if err := pc.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.wake)
	}
	pc.budget.read = 0
	pc.budget.limit(maxHeaderBytes, errHeadTooLarge)
	err := pc.write(out)
	switch {
	case err == nil:
		err = pc.readHead(&pc.ans)
	case errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET):
		// An app may answer before it has read the whole request (a 413, say) and close the connection. That
		// answer is the one that counts, when it arrived; if not, the write's error tells what happened.
		if pc.readHead(&pc.ans) == nil {
			pc.ans.keep = false
			err = nil
		}
	}
	if err != nil {
		if stop != nil {
			stop()
		}
		return nil, err
	}
	// The body may be read up to the cap; chunk framing and trailers get the allowance of a head besides.
	pc.budget.limit(pc.pool.maxBody+maxHeaderBytes, errAnswerTooLarge)
	pc.ans.pc, pc.ans.stop = pc, stop
	return &pc.ans, nil
}

// write sends the request: one write, or one writev when the body is not behind the head.
func (pc *persistConn) write(out *outgoing) error {
	if len(out.body) == 0 {
		_, err := pc.conn.Write(out.head)
		return err
	}
	pc.vec = [2][]byte{out.head, out.body}
	pc.bufs = pc.vec[:]
	_, err := pc.bufs.WriteTo(pc.conn)
	pc.vec = [2][]byte{} // the buffers go back to their pools: no reference may stay here
	return err
}

// readHead reads the final answer's head into a, skipping the informational (1xx) answers an app may send
// first; the head budget bounds those too.
func (pc *persistConn) readHead(a *answer) error {
	for {
		if ok, err := pc.readCommonHead(a); ok || err != nil {
			return err
		}
		// The body is read through the answer and never closed: Close would read it to its end, however
		// long; release closes the connection instead.
		resp, err := http.ReadResponse(pc.br, nil) //nolint:bodyclose // see above
		if err != nil {
			return err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // no body to read
		}
		a.takeResponse(resp)
		return nil
	}
}

// takeResponse sets a from an answer that http.ReadResponse read.
func (a *answer) takeResponse(resp *http.Response) {
	*a = answer{
		status:     resp.StatusCode,
		action:     resp.Header.Get(HeaderAction),
		retryAfter: resp.Header.Get(HeaderRetryAfter),
		stream:     resp.Body,
		// After a 101 the connection no longer speaks HTTP; a POST never asks for that.
		keep: !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols,
	}
}

// readCommonHead reads the head into a when parseHead takes it, which it does for nearly every answer. ok is
// false when it does not; nothing is consumed then, and http.ReadResponse reads the same bytes.
func (pc *persistConn) readCommonHead(a *answer) (ok bool, err error) {
	n := 1 // bytes to wait for
	for {
		if _, err := pc.br.Peek(n); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // as ReadResponse says it
			}
			return false, err
		}
		buf, _ := pc.br.Peek(pc.br.Buffered())
		h, state := parseHead(buf)
		if state == headShort && len(buf) < pc.br.Size() {
			n = len(buf) + 1
			continue
		}
		if state != headDone {
			return false, nil // not the common kind, or longer than the read buffer
		}
		*a = answer{status: h.status, left: h.contentLength, eof: h.contentLength == 0, keep: !h.close}
		if h.action != nil {
			a.action = string(h.action)
		}
		if h.retryAfter != nil {
			a.retryAfter = string(h.retryAfter)
		}
		_, _ = pc.br.Discard(h.size) // buffered, so it cannot fail
		return true, nil
	}
}

// checkIdleAfter is how long a connection may sit idle before it is looked at before reuse. An app that
// times out idle connections may have closed one, or written something first (a 408, a TLS alert), which
// would otherwise be read as the answer to the next request. Under load connections never idle that long and
// skip the look, which costs a system call.
const checkIdleAfter = time.Second

// get returns an idle connection, or a new one when there is none.
func (p *connPool) get(ctx context.Context, deadline time.Time) (*persistConn, error) {
	for {
		pc := p.takeIdle()
		if pc == nil {
			return p.dial(ctx, deadline)
		}
		if time.Since(pc.idleSince) < p.checkIdleAfter || pc.quiet() {
			return pc, nil
		}
		pc.close()
	}
}

// takeIdle pops the most recently used idle connection, closing all of them when even that one has idled
// past idleConnTimeout; nil when there is none.
func (p *connPool) takeIdle() *persistConn {
	now := time.Now()
	p.mu.Lock()
	p.closeNewIdle = false
	n := len(p.idle)
	if n == 0 {
		p.mu.Unlock()
		return nil
	}
	pc := p.idle[n-1]
	if now.Sub(pc.idleSince) < idleConnTimeout {
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return pc
	}
	// The most recently used one has expired, so all the others have too.
	expired := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range expired {
		pc.close()
	}
	return nil
}

// quiet reports whether nothing arrived on the idle connection: no byte and no end of stream.
func (pc *persistConn) quiet() bool {
	return pc.br.Buffered() == 0 && socketQuiet(pc.raw)
}

// dial connects and, for https, completes the handshake.
func (p *connPool) dial(ctx context.Context, deadline time.Time) (*persistConn, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	raw := conn
	if p.tls != nil {
		tc := tls.Client(conn, p.tls)
		hctx, cancel := context.WithTimeout(ctx, p.handshake)
		err := tc.HandshakeContext(hctx)
		timedOut := hctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			_ = conn.Close()
			switch {
			case timedOut:
				// Its own error: the context's "deadline exceeded" would read as the delivery's timeout.
				return nil, &tlsSetupError{errTLSHandshakeTimeout}
			case ctx.Err() != nil:
				return nil, err // canceled, or the delivery's time is up
			}
			return nil, &tlsSetupError{err}
		}
		conn = tc
	}
	if p.wrapConn != nil {
		conn = p.wrapConn(conn)
	}
	pc := &persistConn{pool: p, conn: conn, raw: raw}
	pc.budget.conn = conn
	pc.br = bufio.NewReaderSize(&pc.budget, answerReadBuffer)
	pc.wake = func() { _ = conn.SetDeadline(aLongTimeAgo) }
	return pc, nil
}

// put keeps pc for the next exchange, or closes it when the pool is full or being emptied.
func (p *connPool) put(pc *persistConn) {
	pc.reused = true
	pc.idleSince = time.Now()
	p.mu.Lock()
	if len(p.idle) < p.maxIdle && !p.closeNewIdle {
		p.idle = append(p.idle, pc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	pc.close()
}

// closeIdle closes the connections that carry no request.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closeNewIdle = true
	p.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// answer is the app's answer to one request, as far as the sidecar looks at it; reading it reads the body.
// It belongs to the connection it came on: release hands the connection back (or closes it), after which
// the answer must not be used.
type answer struct {
	status int
	// action and retryAfter are the first Kafka-Sidecar-Action and Retry-After values, empty when absent.
	action     string
	retryAfter string
	// stream is the body as net/http's ReadResponse framed it; nil when parseHead read the head, and then
	// left is what remains of the body's Content-Length.
	stream io.Reader
	left   int64
	// eof tells that the body was read to its end.
	eof bool
	// keep tells that the connection may carry another request once the body is read to its end.
	keep bool
	pc   *persistConn
	// stop unregisters the cancellation (nil when the context cannot end); false means it ran, and the
	// connection's deadline is spoilt.
	stop func() bool
}

// Read reads the body.
func (a *answer) Read(p []byte) (int, error) {
	if a.stream != nil {
		n, err := a.stream.Read(p)
		if errors.Is(err, io.EOF) {
			a.eof = true
		}
		return n, err
	}
	if a.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > a.left {
		p = p[:a.left]
	}
	n, err := a.pc.br.Read(p)
	a.left -= int64(n)
	a.eof = a.left == 0
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the app promised more
	}
	return n, err
}

// release hands the connection back when the body was read to its end, nothing else arrived and neither side
// asked to close; otherwise it closes the connection, which is cheaper than reading the rest of a long answer.
func (a *answer) release() {
	pc := a.pc
	if pc == nil {
		return
	}
	a.pc = nil
	stopped := a.stop == nil || a.stop()
	if a.keep && a.eof && stopped && pc.br.Buffered() == 0 {
		pc.pool.put(pc)
		return
	}
	pc.close()
}
