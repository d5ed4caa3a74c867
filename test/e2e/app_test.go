package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// appRequest is one request the app received.
type appRequest struct {
	ID        string
	Attempt   int
	Topic     string
	Partition int32
	Offset    int64
	Header    http.Header
	Body      []byte
	At        time.Time
	// Status is what the app answered; 0 while the request is still held (or its connection died first).
	Status int
}

// respondFunc picks the status the app answers to the n-th request (1-based) for message ID id.
type respondFunc func(id string, n int) int

// testApp is the user's app: an HTTP server on 127.0.0.1 that records every request and answers as the test
// scripts it. It can hold chosen requests unanswered, and go down (connection refused) and come back on the
// same port.
type testApp struct {
	tb   testing.TB
	addr string

	mu      sync.Mutex
	srv     *http.Server
	reqs    []appRequest
	perID   map[string]int
	respond respondFunc
	delay   time.Duration
	// retryAfter, when set, is sent as Retry-After with every answer of 429 or 503.
	retryAfter string
	held       map[string]bool
	release    chan struct{}
	inFlight   map[int32]int
	maxPar     map[int32]int
	// lean answers 200 at once and only counts, for benchmarks: recording 20k requests would be the
	// bottleneck being measured.
	lean  atomic.Bool
	count atomic.Int64
}

// newApp starts the app answering 200 to everything.
func newApp(tb testing.TB) *testApp {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("starting the app: %v", err)
	}
	a := &testApp{
		tb: tb, addr: ln.Addr().String(),
		perID: map[string]int{}, held: map[string]bool{}, release: make(chan struct{}),
		inFlight: map[int32]int{}, maxPar: map[int32]int{},
	}
	a.serve(ln)
	tb.Cleanup(func() {
		a.releaseHeld()
		a.down()
	})
	return a
}

// URL is the app URL the sidecar posts to.
func (a *testApp) URL() string { return "http://" + a.addr + "/{topic}" }

func (a *testApp) serve(ln net.Listener) {
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	a.mu.Lock()
	a.srv = srv
	a.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.tb.Errorf("app server stopped: %v", err)
		}
	}()
}

// setRespond scripts the answers; nil means 200 to everything.
func (a *testApp) setRespond(f respondFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.respond = f
}

// setDelay makes every answer wait d, so a stream is still under way when the test acts on it.
func (a *testApp) setDelay(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.delay = d
}

// setRetryAfter makes 429 and 503 answers carry Retry-After: v ("" for none).
func (a *testApp) setRetryAfter(v string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.retryAfter = v
}

// inFlightTotal is the number of requests under way now.
func (a *testApp) inFlightTotal() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.inFlight {
		n += c
	}
	return n
}

// hold keeps requests for these message IDs unanswered until releaseHeld.
func (a *testApp) hold(ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.held[id] = true
	}
}

// releaseHeld answers every held request (and stops holding).
func (a *testApp) releaseHeld() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.held) == 0 {
		return
	}
	a.held = map[string]bool{}
	close(a.release)
	a.release = make(chan struct{})
}

// down closes the listener and every connection: from now on connections are refused.
func (a *testApp) down() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	a.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same port.
func (a *testApp) up() {
	a.tb.Helper()
	var ln net.Listener
	waitFor(a.tb, 10*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", a.addr)
		return err == nil
	}, "the app to listen again on %s", a.addr)
	a.serve(ln)
}

func (a *testApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	a.count.Add(1)
	if a.lean.Load() {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		return
	}
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("Idempotency-Key")
	attempt, _ := strconv.Atoi(r.Header.Get("Kafka-Attempt"))
	part, _ := strconv.ParseInt(r.Header.Get("Kafka-Partition"), 10, 32)
	off, _ := strconv.ParseInt(r.Header.Get("Kafka-Offset"), 10, 64)

	a.mu.Lock()
	a.perID[id]++
	n := a.perID[id]
	idx := len(a.reqs)
	a.reqs = append(a.reqs, appRequest{
		ID: id, Attempt: attempt, Topic: r.Header.Get("Kafka-Topic"), Partition: int32(part), Offset: off,
		Header: r.Header.Clone(), Body: body, At: at,
	})
	a.inFlight[int32(part)]++
	if a.inFlight[int32(part)] > a.maxPar[int32(part)] {
		a.maxPar[int32(part)] = a.inFlight[int32(part)]
	}
	held, release, delay, respond := a.held[id], a.release, a.delay, a.respond
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.inFlight[int32(part)]--
		a.mu.Unlock()
	}()

	if held {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	status := http.StatusOK
	if respond != nil {
		status = respond(id, n)
	}
	a.mu.Lock()
	a.reqs[idx].Status = status
	retryAfter := a.retryAfter
	a.mu.Unlock()
	if retryAfter != "" && (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	if status >= 300 {
		_, _ = io.WriteString(w, "scripted failure "+strconv.Itoa(status))
	}
}

// requests returns a copy of every request so far, in arrival order.
func (a *testApp) requests() []appRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]appRequest(nil), a.reqs...)
}

// requestsFor returns the requests for one message ID, in arrival order.
func (a *testApp) requestsFor(id string) []appRequest {
	var out []appRequest
	for _, r := range a.requests() {
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// total is the number of requests so far.
func (a *testApp) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.reqs)
}

// accepted returns how many 2xx answers each message ID got.
func (a *testApp) accepted() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]int{}
	for _, r := range a.reqs {
		if r.Status >= 200 && r.Status < 300 {
			out[r.ID]++
		}
	}
	return out
}

// maxParallel returns the most requests ever under way at once for one partition.
func (a *testApp) maxParallel() map[int32]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[int32]int, len(a.maxPar))
	for p, n := range a.maxPar {
		out[p] = n
	}
	return out
}

// statusSeq answers the statuses in turn for the IDs given, repeating the last one; others get 200.
func statusSeq(ids map[string][]int) respondFunc {
	return func(id string, n int) int {
		seq, ok := ids[id]
		if !ok || len(seq) == 0 {
			return http.StatusOK
		}
		if n > len(seq) {
			n = len(seq)
		}
		return seq[n-1]
	}
}
