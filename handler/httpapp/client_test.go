package httpapp

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/kafka-sidecar/kafka-sidecar/test/certs"
)

// rawApp is an app on a bare listener, for answers and failures that net/http's server would not produce.
type rawApp struct {
	url string
	// conns counts the connections accepted.
	conns atomic.Int32
}

// startRawApp serves each connection with serve, which gets the connection's number (1 for the first). When
// the test ends, the listener and every connection are closed and the serving goroutines waited for.
func startRawApp(t testing.TB, serve func(n int, c net.Conn, br *bufio.Reader)) *rawApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &rawApp{url: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(app.conns.Add(1))
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return app
}

// readRequest reads one request with its body; false means the client closed the connection or sent
// something that is not a request.
func readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err == nil
}

// answering answers every request with answer; with closeAfter it closes the connection after the first.
func answering(answer string, closeAfter bool) func(int, net.Conn, *bufio.Reader) {
	return func(_ int, c net.Conn, br *bufio.Reader) {
		for readRequest(br) {
			if _, err := io.WriteString(c, answer); err != nil || closeAfter {
				return
			}
		}
	}
}

// signal reports an event to the test without ever blocking the server.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// await waits for an event from the server, failing the test after waitLimit.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("%s did not happen within %v", what, waitLimit)
	}
}

func TestClientAnswers(t *testing.T) {
	bigHeader := "X-Big: " + strings.Repeat("b", 6000) + "\r\n" // more than the read buffer: ReadResponse's
	tests := []struct {
		name       string
		answer     string
		closeAfter bool
		maxBody    int64
		outcome    handler.Outcome
		status     int
		reason     string
		retryAfter time.Duration
		// conns is how many connections two deliveries take: 1 when the first one's was kept.
		conns int32
	}{
		{
			name:    "common answer",
			answer:  "HTTP/1.1 204 No Content\r\nDate: Wed, 01 May 2024 12:00:00 GMT\r\n\r\n",
			outcome: handler.Success, status: 204, conns: 1,
		},
		{
			name:    "body of a given length",
			answer:  "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nContent-Type: text/plain\r\n\r\nboom",
			outcome: handler.Retryable, status: 500, reason: "http 500: boom", conns: 1,
		},
		{
			name:    "action and Retry-After in any case, first value wins",
			answer:  "HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\nRetry-After: 9\r\nkafka-sidecar-action:  Retry \r\nContent-Length: 0\r\n\r\n",
			outcome: handler.Retryable, status: 503, reason: "http 503 (action retry)", retryAfter: 7 * time.Second, conns: 1,
		},
		{
			name:    "chunked",
			answer:  "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			outcome: handler.Retryable, status: 500, reason: "http 500: hello world", conns: 1,
		},
		{
			name:    "chunked with trailers",
			answer:  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n",
			outcome: handler.Success, status: 200, conns: 1,
		},
		{
			name: "informational answers first",
			answer: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
				"HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 8\r\n\r\nnegative",
			outcome: handler.Permanent, status: 422, reason: "http 422: negative", conns: 1,
		},
		{
			name:   "Connection: close",
			answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", closeAfter: true,
			outcome: handler.Success, status: 200, conns: 2,
		},
		{
			name:   "HTTP/1.0 with a body up to the close",
			answer: "HTTP/1.0 422 Unprocessable Entity\r\n\r\nbad total", closeAfter: true,
			outcome: handler.Permanent, status: 422, reason: "http 422: bad total", conns: 2,
		},
		{
			name:    "HTTP/1.0 keep-alive",
			answer:  "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
			outcome: handler.Success, status: 200, conns: 1,
		},
		{
			name:   "HTTP/1.1 with a body up to the close",
			answer: "HTTP/1.1 500 Internal Server Error\r\n\r\nall of it", closeAfter: true,
			outcome: handler.Retryable, status: 500, reason: "http 500: all of it", conns: 2,
		},
		{
			name:    "head larger than the read buffer",
			answer:  "HTTP/1.1 200 OK\r\n" + bigHeader + "Content-Length: 0\r\n\r\n",
			outcome: handler.Success, status: 200, conns: 1,
		},
		{
			name:    "head larger than the limit",
			answer:  "HTTP/1.1 200 OK\r\n" + strings.Repeat(bigHeader, 12) + "Content-Length: 0\r\n\r\n",
			outcome: handler.Retryable, reason: "the app's answer headers exceed 64 KiB", conns: 2,
		},
		{
			name:    "body as long as the cap",
			answer:  "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 8\r\n\r\n12345678",
			maxBody: 8,
			outcome: handler.Retryable, status: 500, reason: "http 500: 12345678", conns: 1,
		},
		{
			name:    "body longer than the cap",
			answer:  "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 9\r\n\r\n123456789",
			maxBody: 8,
			outcome: handler.Retryable, status: 500, reason: "http 500: 12345678", conns: 2,
		},
		{
			name:    "204 with a Content-Length has no body",
			answer:  "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
			outcome: handler.Success, status: 204, conns: 1,
		},
		{
			name:    "bytes after the answer",
			answer:  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
			outcome: handler.Success, status: 200, conns: 2,
		},
		{
			name:    "malformed answer",
			answer:  "HTTP/1.1 2xx OK\r\n\r\n",
			outcome: handler.Retryable, reason: `malformed HTTP status code "2xx"`, conns: 2,
		},
		{
			name:    "answer with bare line feeds",
			answer:  "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
			outcome: handler.Success, status: 200, conns: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := startRawApp(t, answering(tt.answer, tt.closeAfter))
			h := newTestHTTP(t, Options{URL: app.url, MaxResponseBytes: tt.maxBody})
			for i := range 2 {
				res := deliverWithin(t, context.Background(), h, sampleDelivery())
				if res.Outcome != tt.outcome || res.Status != tt.status || res.Reason != tt.reason || res.RetryAfter != tt.retryAfter {
					t.Errorf("delivery %d = {%v %d %q %v}, want {%v %d %q %v}", i+1,
						res.Outcome, res.Status, res.Reason, res.RetryAfter, tt.outcome, tt.status, tt.reason, tt.retryAfter)
				}
			}
			if n := app.conns.Load(); n != tt.conns {
				t.Errorf("two deliveries took %d connections, want %d", n, tt.conns)
			}
		})
	}
}

func TestClientKeepsConnectionsUnderLoad(t *testing.T) {
	var conns atomic.Int32
	srv := statusServerWatching(t, func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	})
	const workers = 8
	h := newTestHTTP(t, Options{URL: srv.URL, MaxConns: workers})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range 50 {
				if res := h.DeliverOne(context.Background(), asking(200)); res.Outcome != handler.Success {
					t.Errorf("Deliver = %+v, want success", res)
					return
				}
			}
		})
	}
	wg.Wait()
	// Every connection goes back to the pool, which holds as many as there are workers: none is dialled
	// while another waits idle.
	if n := conns.Load(); n > workers {
		t.Errorf("%d workers took %d connections, want at most %d", workers, n, workers)
	}
}

func TestClientResendsOnStaleConnection(t *testing.T) {
	const ok = "HTTP/1.1 204 No Content\r\n\r\n"
	tests := []struct {
		name string
		// first serves the first connection, which the client keeps after the first delivery.
		first func(c net.Conn, br *bufio.Reader)
		// later serves the connections after it.
		later func(c net.Conn, br *bufio.Reader)
		// closesIdle tells that the app closes the first connection before the next request: the test waits
		// for that, so that the connection is stale for sure when it is used again.
		closesIdle bool
		outcome    handler.Outcome
		reason     string
	}{
		{
			name: "closed while idle",
			first: func(c net.Conn, br *bufio.Reader) {
				if readRequest(br) {
					_, _ = io.WriteString(c, ok)
				}
			},
			later:      func(c net.Conn, br *bufio.Reader) { answering(ok, false)(0, c, br) },
			closesIdle: true,
			outcome:    handler.Success,
		},
		{
			name: "reset while idle",
			first: func(c net.Conn, br *bufio.Reader) {
				if readRequest(br) {
					_, _ = io.WriteString(c, ok)
				}
				_ = c.(*net.TCPConn).SetLinger(0)
			},
			later:      func(c net.Conn, br *bufio.Reader) { answering(ok, false)(0, c, br) },
			closesIdle: true,
			outcome:    handler.Success,
		},
		{
			name: "closed after reading the next request without answering",
			first: func(c net.Conn, br *bufio.Reader) {
				if readRequest(br) {
					_, _ = io.WriteString(c, ok)
				}
				readRequest(br)
			},
			later:   func(c net.Conn, br *bufio.Reader) { answering(ok, false)(0, c, br) },
			outcome: handler.Success,
		},
		{
			name: "the new connection fails too: no second resend",
			first: func(c net.Conn, br *bufio.Reader) {
				if readRequest(br) {
					_, _ = io.WriteString(c, ok)
				}
			},
			later:      func(_ net.Conn, br *bufio.Reader) { readRequest(br) },
			closesIdle: true,
			outcome:    handler.Retryable, reason: "connection closed by the app during the request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			firstDone := make(chan struct{}, 1)
			app := startRawApp(t, func(n int, c net.Conn, br *bufio.Reader) {
				if n > 1 {
					tt.later(c, br)
					return
				}
				tt.first(c, br)
				c.Close()
				signal(firstDone)
			})
			h := newTestHTTP(t, Options{URL: app.url})
			if res := deliverWithin(t, context.Background(), h, sampleDelivery()); res.Outcome != handler.Success {
				t.Fatalf("first delivery = %+v, want success", res)
			}
			if tt.closesIdle {
				await(t, firstDone, "the app closing the first connection")
			}
			res := deliverWithin(t, context.Background(), h, sampleDelivery())
			if res.Outcome != tt.outcome || res.Reason != tt.reason {
				t.Errorf("delivery on the stale connection = %+v, want %v %q", res, tt.outcome, tt.reason)
			}
			if n := app.conns.Load(); n != 2 {
				t.Errorf("the app saw %d connections, want 2: the stale one and one for the resend", n)
			}
		})
	}
}

func TestClientDoesNotResendAfterPartOfAnAnswer(t *testing.T) {
	var requests atomic.Int32
	app := startRawApp(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for readRequest(br) {
			if requests.Add(1) == 1 {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Len")
			return
		}
	})
	h := newTestHTTP(t, Options{URL: app.url})
	if res := deliverWithin(t, context.Background(), h, sampleDelivery()); res.Outcome != handler.Success {
		t.Fatalf("first delivery = %+v, want success", res)
	}
	res := deliverWithin(t, context.Background(), h, sampleDelivery())
	if res.Outcome != handler.Retryable || res.Status != 0 || res.Reason != "connection closed by the app during the request" {
		t.Errorf("Deliver = %+v, want Retryable, connection closed", res)
	}
	if n, r := app.conns.Load(), requests.Load(); n != 1 || r != 2 {
		t.Errorf("the app saw %d connections and %d requests, want 1 and 2: no resend", n, r)
	}
}

func TestClientTakesAnAnswerSentBeforeTheRequestEnded(t *testing.T) {
	app := startRawApp(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil { // the head only: the body is left unread
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo long")
		_ = c.(*net.TCPConn).SetLinger(0) // a reset, so that the client's write fails
	})
	h := newTestHTTP(t, Options{URL: app.url})
	d := sampleDelivery()
	d.Value = make([]byte, 64<<20) // more than the socket buffers hold, so the write is still under way
	res := deliverWithin(t, context.Background(), h, d)
	if res.Outcome != handler.Permanent || res.Status != 413 || res.Reason != "http 413: too long" {
		t.Errorf("Deliver = %+v, want the app's 413", res)
	}
}

func TestClientCancelAndTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name string
		// stall serves the request up to where the app stops answering.
		stall func(c net.Conn, br *bufio.Reader) bool
		// value is the record value; a large one keeps the request's write under way.
		value []byte
		// status and reason are what a delivery cut off at the stall gives, when the app already answered.
		status int
		reason string
	}{
		{
			name:  "while the request is written",
			stall: func(net.Conn, *bufio.Reader) bool { return true },
			value: make([]byte, 64<<20),
		},
		{
			name:  "before the answer",
			stall: func(_ net.Conn, br *bufio.Reader) bool { return readRequest(br) },
		},
		{
			name: "in the middle of the head",
			stall: func(c net.Conn, br *bufio.Reader) bool {
				return readRequest(br) && write(c, "HTTP/1.1 500 Internal Server Error\r\nContent-")
			},
		},
		{
			name: "in the middle of the body",
			stall: func(c net.Conn, br *bufio.Reader) bool {
				return readRequest(br) && write(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100\r\n\r\nsome")
			},
			status: 500, reason: "http 500: some",
		},
	}
	for _, tt := range tests {
		stalled := make(chan struct{}, 1)
		app := startRawApp(t, func(_ int, c net.Conn, br *bufio.Reader) {
			if tt.stall(c, br) {
				signal(stalled)
			}
			<-t.Context().Done() // until the test ends; the cleanup closes the connection
		})
		d := sampleDelivery()
		d.Value = tt.value

		t.Run("canceled "+tt.name, func(t *testing.T) {
			h := newTestHTTP(t, Options{URL: app.url})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-stalled:
					cancel()
				case <-time.After(waitLimit):
				}
			}()
			res := deliverWithin(t, ctx, h, d)
			want := handler.Result{Outcome: handler.AppUnavailable, Reason: "delivery canceled"}
			// Once the app has sent a status, the cancel may land before the client has read it or after;
			// either way Deliver returns at once.
			answered := tt.status != 0 && res.Status == tt.status && res.Reason == tt.reason
			if !answered && (res.Outcome != want.Outcome || res.Status != want.Status || res.Reason != want.Reason) {
				t.Errorf("Deliver = %+v, want %+v", res, want)
			}
			if ctx.Err() == nil {
				t.Error("Deliver returned before the cancel")
			}
		})
		t.Run("timeout "+tt.name, func(t *testing.T) {
			h := newTestHTTP(t, Options{URL: app.url, Timeout: timeout})
			res := deliverWithin(t, context.Background(), h, d)
			want := handler.Result{Outcome: handler.Retryable, Reason: "timeout after 200ms"}
			if tt.status != 0 {
				want = handler.Result{Outcome: handler.Retryable, Status: tt.status, Reason: tt.reason}
			}
			if res.Outcome != want.Outcome || res.Status != want.Status || res.Reason != want.Reason {
				t.Errorf("Deliver = %+v, want %+v", res, want)
			}
			if res.Elapsed < timeout {
				t.Errorf("Elapsed = %v, want at least the timeout", res.Elapsed)
			}
			select {
			case <-stalled:
			default:
				t.Error("the app never got to the stall")
			}
		})
	}
}

// write writes s to c and reports whether it went out.
func write(c net.Conn, s string) bool {
	_, err := io.WriteString(c, s)
	return err == nil
}

func TestClientCloseIdleConnections(t *testing.T) {
	closed := make(chan struct{}, 2)
	arrived := make(chan struct{}, 1)
	hold := make(chan struct{})
	app := startRawApp(t, func(n int, c net.Conn, br *bufio.Reader) {
		defer signal(closed)
		for readRequest(br) {
			if n == 2 {
				// The second connection's request is under way while the idle ones are closed.
				signal(arrived)
				<-hold
			}
			if !write(c, "HTTP/1.1 204 No Content\r\n\r\n") {
				return
			}
		}
	})
	h := newTestHTTP(t, Options{URL: app.url})
	if res := deliverWithin(t, context.Background(), h, sampleDelivery()); res.Outcome != handler.Success {
		t.Fatalf("Deliver = %+v, want success", res)
	}
	h.CloseIdleConnections()
	await(t, closed, "the idle connection closing")

	done := make(chan handler.Result, 1)
	go func() { done <- h.DeliverOne(context.Background(), sampleDelivery()) }()
	await(t, arrived, "the second delivery reaching the app")
	h.CloseIdleConnections()
	close(hold)
	select {
	case res := <-done:
		if res.Outcome != handler.Success {
			t.Fatalf("Deliver = %+v, want success", res)
		}
	case <-time.After(waitLimit):
		t.Fatal("Deliver did not return")
	}
	// A connection that was busy when the idle ones were closed is closed as it finishes.
	await(t, closed, "the busy connection closing after its answer")
	if n := app.conns.Load(); n != 2 {
		t.Errorf("the app saw %d connections, want 2", n)
	}
}

func TestClientTLS(t *testing.T) {
	files := certs.Generate(t)
	tls12 := func(c *tls.Config) *tls.Config { c.MaxVersion = tls.VersionTLS12; return c }
	tests := []struct {
		name    string
		server  *tls.Config // nil: a plain HTTP app
		client  *tls.Config
		outcome handler.Outcome
		// peerCert tells that the app must see the client certificate.
		peerCert bool
	}{
		{name: "server certificate trusted", server: files.ServerTLSConfig(false), client: files.ClientTLSConfig(false), outcome: handler.Success},
		{name: "mutual TLS", server: files.ServerTLSConfig(true), client: files.ClientTLSConfig(true), outcome: handler.Success, peerCert: true},
		// TLS 1.2 rejects a missing client certificate in the handshake; TLS 1.3 only after it, on the
		// first read, where it may race with the reset of the closed connection.
		{name: "client certificate missing, TLS 1.2", server: tls12(files.ServerTLSConfig(true)), client: files.ClientTLSConfig(false), outcome: handler.AppUnavailable},
		{name: "client certificate missing, TLS 1.3", server: files.ServerTLSConfig(true), client: files.ClientTLSConfig(false), outcome: handler.AppUnavailable},
		{name: "unknown CA", server: files.ServerTLSConfig(false), client: &tls.Config{MinVersion: tls.VersionTLS12}, outcome: handler.AppUnavailable},
		{name: "plain HTTP app", client: files.ClientTLSConfig(false), outcome: handler.AppUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns, peerCerts atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				discardBody(r)
				if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
					peerCerts.Add(1)
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are expected here
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			if tt.server != nil {
				srv.TLS = tt.server
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			url := "https://" + strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
			h := newTestHTTP(t, Options{URL: url, TLS: tt.client})
			for i := range 2 {
				res := deliverWithin(t, context.Background(), h, sampleDelivery())
				if res.Outcome != tt.outcome {
					t.Fatalf("delivery %d = %+v, want %v", i+1, res, tt.outcome)
				}
				if res.Outcome == handler.AppUnavailable && !strings.HasPrefix(res.Reason, "tls: ") {
					t.Errorf("Reason = %q, want a tls: reason", res.Reason)
				}
			}
			if tt.outcome == handler.Success {
				if n := conns.Load(); n != 1 {
					t.Errorf("two deliveries took %d connections, want 1 kept alive", n)
				}
				if tt.peerCert && peerCerts.Load() != 2 {
					t.Errorf("the app saw the client certificate on %d of 2 requests", peerCerts.Load())
				}
			}
		})
	}
}

// TestClientDropsIdleConnectionWithStrayBytes has the app write an answer nobody asked for on an idle
// connection (as some servers do when they time it out, before they close it): the next delivery must not take
// it for its answer, but go out on a new connection.
func TestClientDropsIdleConnectionWithStrayBytes(t *testing.T) {
	const ok = "HTTP/1.1 204 No Content\r\n\r\n"
	idleWritten := make(chan struct{}, 1)
	strayNow := make(chan struct{})
	app := startRawApp(t, func(n int, c net.Conn, br *bufio.Reader) {
		if n > 1 {
			answering(ok, false)(n, c, br)
			return
		}
		if readRequest(br) {
			_, _ = io.WriteString(c, ok)
		}
		<-strayNow // the connection is idle in the pool by then
		_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		signal(idleWritten)
		// Still open: a request sent here now would find the 408 waiting. It is read and never answered.
		readRequest(br)
	})
	var stray sync.Once
	letStray := func() { stray.Do(func() { close(strayNow) }) }
	t.Cleanup(letStray) // runs before the app's cleanup, which waits for the serving goroutine
	h := newTestHTTP(t, Options{URL: app.url})
	h.pool.checkIdleAfter = 0
	if res := deliverWithin(t, context.Background(), h, sampleDelivery()); res.Outcome != handler.Success {
		t.Fatalf("first delivery = %+v, want success", res)
	}
	letStray()
	await(t, idleWritten, "the app writing on the idle connection")
	if res := deliverWithin(t, context.Background(), h, sampleDelivery()); res.Outcome != handler.Success || res.Status != 204 {
		t.Fatalf("delivery after the stray 408 = %+v, want the 204 of a new connection", res)
	}
	if n := app.conns.Load(); n != 2 {
		t.Fatalf("the app saw %d connections, want 2", n)
	}
}
