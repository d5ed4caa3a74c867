package httpapp

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if app := os.Getenv(benchAppEnv); app != "" {
		os.Exit(serveBenchApp(app)) // the app of BenchmarkClients, in a process of its own
	}
	// fasthttp's HostClient closes expired idle connections from a goroutine that sleeps until the next may
	// expire and ends at its next wake-up once the client holds no connection; closing the idle connections
	// does not wake it.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"))
}

// waitLimit bounds every wait in these tests; reaching it means a bug, never slowness.
const waitLimit = 10 * time.Second

// fakeClock is a settable clock for token checks and Retry-After dates.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// captured is what a test server saw of one request.
type captured struct {
	method     string
	requestURI string
	header     http.Header
	body       []byte
}

// capturingServer answers every request with status after sending what it saw to the returned channel.
func capturingServer(t *testing.T, status int) (*httptest.Server, <-chan captured) {
	t.Helper()
	ch := make(chan captured, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server reading body: %v", err)
		}
		ch <- captured{method: r.Method, requestURI: r.RequestURI, header: r.Header.Clone(), body: body}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

// receive takes one captured request or fails the test after waitLimit.
func receive(t *testing.T, ch <-chan captured) captured {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(waitLimit):
		t.Fatalf("the server saw no request within %v", waitLimit)
		return captured{}
	}
}

// newTestHTTP builds a deliverer and closes its idle connections when the test ends, so no goroutine leaks.
func newTestHTTP(t testing.TB, opts Options) *Deliverer {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	t.Cleanup(h.CloseIdleConnections)
	return h
}

// deliverWithin runs Deliver and fails the test when it does not return within waitLimit.
func deliverWithin(t *testing.T, ctx context.Context, h *Deliverer, d *handler.Delivery) handler.Result {
	t.Helper()
	done := make(chan handler.Result, 1)
	go func() { done <- h.DeliverOne(ctx, d) }()
	select {
	case res := <-done:
		return res
	case <-time.After(waitLimit):
		t.Fatalf("Deliver did not return within %v", waitLimit)
		return handler.Result{}
	}
}

// sampleDelivery is a typical record.
func sampleDelivery() *handler.Delivery {
	return &handler.Delivery{
		ID:        "orders/3/42",
		Topic:     "orders",
		Partition: 3,
		Offset:    42,
		Timestamp: time.Date(2024, 5, 1, 14, 0, 0, 250_000_000, time.FixedZone("CEST", 2*3600)),
		Key:       []byte("customer-7"),
		Value:     []byte(`{"total":12.5}`),
		Headers: []kgo.RecordHeader{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "tenant", Value: []byte("acme")},
		},
		Attempt: 1,
	}
}

// discardBody reads a request body to its end, as a server must before it answers if the connection is to
// be reused. Its errors are not the test's concern: some tests make the client hang up on purpose, and the
// client side asserts the outcome.
func discardBody(r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }

// readSlack is what a client reads from the connection besides the answer's body: the head and the chunk
// framing (well under 512 bytes in these tests), and what the read buffer holds beyond the body it took.
const readSlack = 512 + answerReadBuffer

// countReads makes h count the bytes read from every connection it opens from now on.
func countReads(h *Deliverer) *atomic.Int64 {
	var n atomic.Int64
	h.pool.wrapConn = func(c net.Conn) net.Conn { return &countingConn{Conn: c, n: &n} }
	return &n
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
