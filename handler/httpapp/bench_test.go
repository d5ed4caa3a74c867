package httpapp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/twmb/franz-go/pkg/kgo"
)

// benchDelivery is a typical record: a 1 KiB JSON value, a key, and a few headers including trace context.
func benchDelivery() *handler.Delivery {
	d := sampleDelivery()
	d.Value = []byte(`{"order":12345,"note":"` + strings.Repeat("x", 1000) + `"}`)
	d.Headers = append(d.Headers,
		kgo.RecordHeader{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
		kgo.RecordHeader{Key: "source", Value: []byte("checkout-service")})
	return d
}

func BenchmarkAppendRequest(b *testing.B) {
	h := newTestHTTP(b, Options{URL: "http://127.0.0.1:8080/in/{topic}"})
	d := benchDelivery()
	b.ReportAllocs()
	for b.Loop() {
		buf := getHead()
		var out outgoing
		var err error
		if *buf, err = h.appendRequest(*buf, d, &out); err != nil {
			b.Fatal(err)
		}
		putHead(buf)
	}
}

// benchServer answers 204 after reading the body, like a fast app.
func benchServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		discardBody(r)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func BenchmarkDeliver(b *testing.B) { benchDeliver(b, benchServer(b).URL) }

// benchDeliver delivers one typical record after another to the app at appURL.
func benchDeliver(b *testing.B, appURL string) {
	h := newTestHTTP(b, Options{URL: appURL + "/in/{topic}"})
	d := benchDelivery()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := h.DeliverOne(ctx, d); res.Outcome != handler.Success {
			b.Fatalf("Deliver = %+v", res)
		}
	}
}

func BenchmarkDeliverParallel(b *testing.B) {
	h := newTestHTTP(b, Options{URL: benchServer(b).URL + "/in/{topic}", MaxConns: 64})
	d := benchDelivery()
	b.SetParallelism(32) // 32 × GOMAXPROCS deliveries in flight, as with SIDECAR_MAX_IN_FLIGHT=64 on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if res := h.DeliverOne(ctx, d); res.Outcome != handler.Success {
				b.Errorf("Deliver = %+v", res)
				return
			}
		}
	})
}

// minimalApp starts the cheapest app that speaks enough HTTP/1.1 for the benchmarks and returns its URL: it
// reads each request's head up to the blank line, skips Content-Length bytes of body and answers 204 the way
// net/http's server does. Its own cost hardly counts, so what the benchmarks measure is mostly the client.
func minimalApp(b *testing.B) string {
	return startRawApp(b, func(_ int, c net.Conn, br *bufio.Reader) { serveMinimal(c, br) }).url
}

// serveMinimal answers the requests on c until it breaks.
func serveMinimal(c net.Conn, br *bufio.Reader) {
	answer := []byte("HTTP/1.1 204 No Content\r\nDate: Wed, 01 May 2024 12:00:00 GMT\r\n\r\n")
	length := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		const cl = "content-length:"
		switch {
		case len(line) > len(cl) && strings.EqualFold(string(line[:len(cl)]), cl):
			length, _ = strconv.Atoi(strings.TrimSpace(string(line[len(cl):])))
		case string(line) == "\r\n":
			if _, err := br.Discard(length); err != nil {
				return
			}
			if _, err := c.Write(answer); err != nil {
				return
			}
			length = 0
		}
	}
}

func BenchmarkDeliverMinimalApp(b *testing.B) { benchDeliver(b, minimalApp(b)) }

func BenchmarkDeliverMinimalAppParallel(b *testing.B) {
	h := newTestHTTP(b, Options{URL: minimalApp(b) + "/in/{topic}", MaxConns: 64})
	d := benchDelivery()
	b.SetParallelism(32) // as in BenchmarkDeliverParallel
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(context.Background()) // a context that can end, as the sidecar's
		defer cancel()
		for pb.Next() {
			if res := h.DeliverOne(ctx, d); res.Outcome != handler.Success {
				b.Errorf("Deliver = %+v", res)
				return
			}
		}
	})
}

func BenchmarkDeliverFailure(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		discardBody(r)
		http.Error(w, "database unavailable: connection pool exhausted", http.StatusInternalServerError)
	}))
	b.Cleanup(srv.Close)
	h := newTestHTTP(b, Options{URL: srv.URL})
	d := benchDelivery()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := h.DeliverOne(ctx, d); res.Outcome != handler.Retryable {
			b.Fatalf("Deliver = %+v", res)
		}
	}
}

func BenchmarkEncodeBatch(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ds := make([]*handler.Delivery, n)
			for i := range ds {
				ds[i] = benchDelivery()
				ds[i].Value = []byte(`{"order":12345,"total":12.5,"items":[{"sku":"A-1","qty":2}]}`)
			}
			b.ReportAllocs()
			for b.Loop() {
				encodeBatch(ds)
			}
		})
	}
}

func BenchmarkDeliverBatch(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		discardBody(r)
		_, _ = io.WriteString(w, `{"results":[{"id":"orders/3/42","status":200}]}`) // a client that went away fails on its side
	}))
	b.Cleanup(srv.Close)
	h := newTestHTTP(b, Options{URL: srv.URL})
	ds := make([]*handler.Delivery, 100)
	for i := range ds {
		ds[i] = benchDelivery()
		ds[i].ID = fmt.Sprintf("orders/3/%d", i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := h.DeliverBatch(ctx, ds); res[0].Outcome != handler.Success {
			b.Fatalf("DeliverBatch = %+v", res[0])
		}
	}
}

func BenchmarkTokenHeader(b *testing.B) {
	path := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(path, []byte("token-a"), 0o600); err != nil {
		b.Fatal(err)
	}
	tf, err := newTokenFile(path, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if tf.header() == "" {
				b.Error("empty token")
				return
			}
		}
	})
}
