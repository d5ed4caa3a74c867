package httpapp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
	"github.com/valyala/fasthttp"
)

// The client comparison: the deliverer, fasthttp's HostClient used as its documentation shows, and net/http's
// Transport tuned as newTransport tunes it, each POSTing the same 200-byte records with the same headers to
// the same app. The app runs in a process of its own, so that the CPU this process spends (getrusage) is the
// client's: the cpu-ns/op metric. Run it with -count and compare with benchstat, e.g.
//
//	go test -run='^$' -bench=BenchmarkClients -count=6 ./handler/httpapp | tee new.txt
//	benchstat -col /client new.txt

// benchAppEnv, set in the environment of the test binary, makes it serve as the benchmarks' app ("nethttp" or
// "fasthttp") instead of running tests: see TestMain.
const benchAppEnv = "HTTPAPP_BENCH_APP"

// benchValueSize is the record value of the client comparison.
const benchValueSize = 200

// serveBenchApp serves 204 to every request on a loopback port, which it prints, until its stdin closes (the
// benchmark ended or died). It returns the exit code.
func serveBenchApp(kind string) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch kind {
	case "nethttp":
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}), ReadHeaderTimeout: time.Minute}
		go func() { _ = srv.Serve(ln) }()
	case "fasthttp":
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNoContent) }}
		go func() { _ = srv.Serve(ln) }()
	default:
		fmt.Fprintf(os.Stderr, "unknown app %q\n", kind)
		return 2
	}
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// startBenchApp runs the test binary as the app of the given kind and returns its URL.
func startBenchApp(b *testing.B, kind string) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$") //nolint:gosec // the test binary itself
	cmd.Env = append(os.Environ(), benchAppEnv+"="+kind)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("starting the %s app: %v", kind, err)
	}
	return "http://" + strings.TrimSpace(addr) + "/in/orders"
}

// cpuTime is the CPU (user and system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPoster sends one record and reports whether the app took it.
type benchPoster func(ctx context.Context, d *handler.Delivery) error

func BenchmarkClients(b *testing.B) {
	for _, app := range []string{"nethttp", "fasthttp"} {
		url := startBenchApp(b, app)
		clients := []struct {
			name string
			new  func(b *testing.B) benchPoster
		}{
			{"deliverer", func(b *testing.B) benchPoster { return delivererPoster(b, url) }},
			{"fasthttp", func(b *testing.B) benchPoster { return fasthttpPoster(b, url) }},
			{"nethttp", func(b *testing.B) benchPoster { return netHTTPPoster(b, url) }},
		}
		for _, conc := range []int{1, 64} {
			for _, c := range clients {
				b.Run(fmt.Sprintf("app=%s/conc=%d/client=%s", app, conc, c.name), func(b *testing.B) {
					runClientBench(b, c.new(b), conc)
				})
			}
		}
	}
}

// runClientBench posts with conc goroutines and reports the CPU per request besides the time.
func runClientBench(b *testing.B, post benchPoster, conc int) {
	d := sampleDelivery()
	d.Value = bytes.Repeat([]byte("x"), benchValueSize)
	// Warm the connection pool up to the concurrency, outside the measurement.
	ctx, cancel := context.WithCancel(context.Background()) // a context that can end, as the sidecar's
	defer cancel()
	if err := post(ctx, d); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism((conc + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := cpuTime()
	if conc == 1 {
		for range b.N {
			if err := post(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := post(ctx, d); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// delivererPoster posts with the deliverer.
func delivererPoster(b *testing.B, url string) benchPoster {
	h := newTestHTTP(b, Options{URL: url, MaxConns: 64})
	return func(ctx context.Context, d *handler.Delivery) error {
		if res := h.DeliverOne(ctx, d); res.Outcome != handler.Success {
			return fmt.Errorf("deliver: %+v", res)
		}
		return nil
	}
}

// fasthttpPoster posts with a fasthttp.HostClient, setting the headers the deliverer sends.
func fasthttpPoster(b *testing.B, url string) benchPoster {
	c := &fasthttp.HostClient{
		Addr:                          strings.TrimPrefix(url[:strings.Index(url, "/in/")], "http://"),
		MaxConns:                      64,
		MaxConnWaitTimeout:            DefaultTimeout,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		MaxResponseBodySize:           DefaultMaxResponseBytes,
		// A plain dialer, as the deliverer's: fasthttp's default one caches DNS answers in a goroutine that
		// never ends.
		Dial: func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) },
	}
	b.Cleanup(c.CloseIdleConnections)
	return func(_ context.Context, d *handler.Delivery) error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(url)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetUserAgent(userAgent)
		req.Header.SetContentType("application/json")
		req.Header.Set(HeaderIdempotencyKey, d.ID)
		req.Header.Set(HeaderTopic, d.Topic)
		var num [24]byte
		req.Header.SetBytesV(HeaderPartition, strconv.AppendInt(num[:0], int64(d.Partition), 10))
		req.Header.SetBytesV(HeaderOffset, strconv.AppendInt(num[:0], d.Offset, 10))
		req.Header.SetBytesV(HeaderTimestamp, appendTimestamp(num[:0], d.Timestamp))
		req.Header.SetBytesV(HeaderAttempt, strconv.AppendInt(num[:0], int64(d.Attempt), 10))
		req.Header.SetBytesV(HeaderKey, d.Key)
		for _, rh := range d.Headers {
			req.Header.AddBytesKV(append(num[:0], HeaderRecordPrefix+rh.Key...), rh.Value)
		}
		req.SetBodyRaw(d.Value)
		if err := c.DoDeadline(req, resp, time.Now().Add(DefaultTimeout)); err != nil {
			return err
		}
		if resp.StatusCode() != http.StatusNoContent {
			return fmt.Errorf("status %d", resp.StatusCode())
		}
		return nil
	}
}

// netHTTPPoster posts with net/http's client over a transport tuned as the deliverer's Client.
func netHTTPPoster(b *testing.B, url string) benchPoster {
	tr := newTransport(nil, 64, DefaultTimeout/2)
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	return func(ctx context.Context, d *handler.Delivery) error {
		ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(d.Value))
		if err != nil {
			return err
		}
		req.Header = http.Header{
			"User-Agent":         {userAgent},
			"Content-Type":       {"application/json"},
			HeaderIdempotencyKey: {d.ID},
			HeaderTopic:          {d.Topic},
			HeaderPartition:      {strconv.Itoa(int(d.Partition))},
			HeaderOffset:         {strconv.FormatInt(d.Offset, 10)},
			HeaderTimestamp:      {string(appendTimestamp(nil, d.Timestamp))},
			HeaderAttempt:        {strconv.Itoa(d.Attempt)},
			HeaderKey:            {string(d.Key)},
		}
		for _, rh := range d.Headers {
			req.Header[HeaderRecordPrefix+rh.Key] = []string{string(rh.Value)}
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}
