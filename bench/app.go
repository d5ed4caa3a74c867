package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// app is the local app the sidecar delivers to. It answers 200 after its latency, counts the records it
// accepted, and, while latency sampling is on, records arrival minus record timestamp for each record.
type app struct {
	latency time.Duration
	batch   bool

	srv *http.Server
	ln  net.Listener

	records atomic.Int64
	// first is closed at the first request; gate is closed by the bench to let requests proceed, so the
	// sidecar's start-up CPU stays outside the measured window.
	firstOnce sync.Once
	first     chan struct{}
	gate      chan struct{}
	lastNanos atomic.Int64

	sampling atomic.Bool
	mu       sync.Mutex
	samples  []time.Duration
}

// startApp listens on a free 127.0.0.1 port and serves until close.
func startApp(latency time.Duration, batch bool) (*app, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the app: %w", err)
	}
	a := &app{latency: latency, batch: batch, ln: ln, first: make(chan struct{}), gate: make(chan struct{})}
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

// url is where the sidecar posts.
func (a *app) url() string { return "http://" + a.ln.Addr().String() + "/" }

// open lets requests through (the bench calls it once it has sampled the child's CPU).
func (a *app) open() {
	select {
	case <-a.gate:
	default:
		close(a.gate)
	}
}

func (a *app) close() { _ = a.srv.Close() }

// batchBody is the part of the batch document the app reads while sampling latency.
type batchBody struct {
	Records []struct {
		Timestamp string `json:"timestamp"`
	} `json:"records"`
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.firstOnce.Do(func() { close(a.first) })
	<-a.gate
	arrived := time.Now()
	sampling := a.sampling.Load()
	n := 1
	var stamps []string
	switch {
	case a.batch && sampling:
		var b batchBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, "decoding batch: "+err.Error(), http.StatusBadRequest)
			return
		}
		n = len(b.Records)
		for _, rec := range b.Records {
			stamps = append(stamps, rec.Timestamp)
		}
	case a.batch:
		var err error
		if n, err = strconv.Atoi(r.Header.Get("Kafka-Batch-Size")); err != nil {
			http.Error(w, "bad Kafka-Batch-Size", http.StatusBadRequest)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
	default:
		_, _ = io.Copy(io.Discard, r.Body)
		if sampling {
			stamps = append(stamps, r.Header.Get("Kafka-Timestamp"))
		}
	}
	if a.latency > 0 {
		time.Sleep(a.latency * time.Duration(n))
	}
	if len(stamps) > 0 {
		a.observe(arrived, stamps)
	}
	a.records.Add(int64(n))
	a.lastNanos.Store(time.Now().UnixNano())
	w.WriteHeader(http.StatusOK)
}

func (a *app) observe(arrived time.Time, stamps []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range stamps {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			continue
		}
		a.samples = append(a.samples, arrived.Sub(ts))
	}
}

// latencies returns the samples taken so far.
func (a *app) latencies() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Duration(nil), a.samples...)
}

// waitRecords waits until the app has accepted at least n records, or fails at the deadline or when exited
// closes (the child died).
func (a *app) waitRecords(n int64, deadline time.Time, exited <-chan struct{}) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for a.records.Load() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("app accepted %d of %d records before the deadline", a.records.Load(), n)
		}
		select {
		case <-exited:
			return errors.New("the sidecar exited before the records were done")
		case <-t.C:
		}
	}
	return nil
}
