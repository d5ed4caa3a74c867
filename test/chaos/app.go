package chaos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Class is what the app does with one message ID. It is a pure function of the seed and the ID, so the set
// of IDs that must end in the dead-letter topic is known before the run starts.
type Class int

const (
	// Normal IDs succeed: a few attempts may get a 500, but never more than FlakyAttempts of them, which is
	// fewer than the attempts the sidecar makes before dead-lettering.
	Normal Class = iota
	// Poison IDs always get a 400: the sidecar must dead-letter them at once.
	Poison
	// Doomed IDs always get a 500: the sidecar must exhaust every tier and then dead-letter them.
	Doomed
)

// String names the class for messages.
func (c Class) String() string {
	switch c {
	case Normal:
		return "normal"
	case Poison:
		return "poison"
	case Doomed:
		return "doomed"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Rates of the app's behaviour. PoisonRate and DoomedRate are shares of all IDs; FlakyRate is the chance
// that one attempt (numbered 1..FlakyAttempts) of a normal ID gets a 500.
const (
	PoisonRate    = 0.005
	DoomedRate    = 0.002
	FlakyRate     = 0.02
	FlakyAttempts = 3
)

// MaxLatency bounds the app's random answer delay.
const MaxLatency = 5 * time.Millisecond

// ClassOf decides the class of id under seed.
func ClassOf(seed int64, id string) Class {
	u := unit(seed, "class", id, 0)
	switch {
	case u < PoisonRate:
		return Poison
	case u < PoisonRate+DoomedRate:
		return Doomed
	}
	return Normal
}

// Flaky reports whether attempt (1-based, as the Kafka-Attempt header counts) of a normal id gets a 500.
// It is decided from the seed too, so a sidecar that forgets an attempt count after a crash meets the same
// answers again and still reaches an attempt past FlakyAttempts.
func Flaky(seed int64, id string, attempt int) bool {
	return attempt >= 1 && attempt <= FlakyAttempts && unit(seed, "flaky", id, attempt) < FlakyRate
}

// unit hashes its inputs to a number in [0, 1).
func unit(seed int64, what, id string, n int) float64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(seed))
	binary.LittleEndian.PutUint64(b[8:], uint64(n))
	_, _ = h.Write(b[:])
	_, _ = h.Write([]byte(what))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(id))
	// FNV alone leaves the high bits of near-identical IDs correlated; the splitmix64 finaliser spreads
	// them, so the shares of poison and doomed IDs match their rates.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// AppStats counts what the app answered.
type AppStats struct {
	Requests  int // every request
	OK        int // 2xx answers
	Status4xx int
	Status5xx int
	NoID      int // requests without an Idempotency-Key: the sidecar lost the message ID
}

// App is the application behind the sidecars: an HTTP server on 127.0.0.1 that answers each delivery by the
// class of its message ID (the Idempotency-Key header) and records every 2xx per ID. Its methods are safe
// for concurrent use.
type App struct {
	seed int64
	ln   net.Listener
	srv  *http.Server

	mu    sync.Mutex
	ok    map[string]int // 2xx answers per ID
	stats AppStats
	// waiting is closed and replaced whenever an ID gets its first 2xx, so waiters wake without polling.
	waiting chan struct{}
}

// StartApp listens on a free port of 127.0.0.1 and serves until Close.
func StartApp(seed int64) (*App, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the app: %w", err)
	}
	a := &App{seed: seed, ln: ln, ok: map[string]int{}, waiting: make(chan struct{})}
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

// URL is the address the sidecars POST to.
func (a *App) URL() string { return "http://" + a.ln.Addr().String() + "/" }

// Close stops the server at once; deliveries under way fail, which a sidecar treats as retryable.
func (a *App) Close() error {
	if err := a.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("closing the app: %w", err)
	}
	return nil
}

// ServeHTTP answers one delivery.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The latency makes deliveries overlap the way a real app's do; it is part of the scenario.
	if d := rand.N(MaxLatency + 1); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	id := r.Header.Get("Idempotency-Key")
	attempt, _ := strconv.Atoi(r.Header.Get("Kafka-Attempt"))
	status := a.decide(id, attempt)

	a.mu.Lock()
	a.stats.Requests++
	switch {
	case id == "":
		a.stats.NoID++
	case status < 300:
		a.stats.OK++
		a.ok[id]++
		if a.ok[id] == 1 {
			close(a.waiting)
			a.waiting = make(chan struct{})
		}
	case status < 500:
		a.stats.Status4xx++
	default:
		a.stats.Status5xx++
	}
	a.mu.Unlock()
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s\n", http.StatusText(status))
}

// decide is the app's answer for one attempt of id.
func (a *App) decide(id string, attempt int) int {
	if id == "" {
		return http.StatusOK // counted as a problem by the caller; the record itself is not at fault
	}
	switch ClassOf(a.seed, id) {
	case Poison:
		return http.StatusBadRequest
	case Doomed:
		return http.StatusInternalServerError
	}
	if Flaky(a.seed, id, attempt) {
		return http.StatusInternalServerError
	}
	return http.StatusOK
}

// Delivered returns how many 2xx answers each ID got. The map is a copy.
func (a *App) Delivered() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.ok))
	for k, v := range a.ok {
		out[k] = v
	}
	return out
}

// DeliveredCount returns how many distinct IDs got a 2xx, and a channel closed when that number grows.
func (a *App) DeliveredCount() (int, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ok), a.waiting
}

// Stats returns the app's counters.
func (a *App) Stats() AppStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}
