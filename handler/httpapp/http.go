package httpapp

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// Defaults for the zero values of Options.
const (
	// DefaultTimeout bounds one delivery when Options.Timeout is zero.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxResponseBytes caps the bytes read from an answer when Options.MaxResponseBytes is zero.
	DefaultMaxResponseBytes = 1 << 20
	// DefaultMaxConns sizes the keep-alive pool when Options.MaxConns is zero; it matches the default
	// SIDECAR_MAX_IN_FLIGHT.
	DefaultMaxConns = 64
)

// Transport settings for an app on the same host: connecting takes microseconds, so a slow connect means the
// app is not there and waiting longer only delays the pause.
const (
	dialTimeout         = 2 * time.Second
	tlsHandshakeTimeout = 5 * time.Second
	idleConnTimeout     = 90 * time.Second
	maxHeaderBytes      = 64 << 10
)

// topicPlaceholder in the path of the app URL is replaced by the path-escaped source topic.
const topicPlaceholder = "{topic}"

// Options configure an HTTP deliverer.
type Options struct {
	// URL is where records are POSTed. "{topic}" in its path is replaced by the path-escaped source topic.
	URL string
	// Timeout bounds one delivery, from sending the request to reading the answer; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes caps how much of an answer is read; the rest is discarded unread and the connection
	// closed, so a huge answer costs neither memory nor time. Zero means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// AuthTokenFile, when set, names a file whose content (surrounding whitespace trimmed) is sent as
	// "Authorization: Bearer <token>". The file is checked for changes at most once per second.
	AuthTokenFile string
	// TLS configures https app URLs, including a client certificate for mutual TLS; nil uses the defaults.
	TLS *tls.Config
	// MaxConns sizes the keep-alive pool: as many idle connections to the app are kept as deliveries may run
	// at once, so none is re-dialled under load. Zero means DefaultMaxConns.
	MaxConns int
	// Batch makes Deliver send all the records of a call in one request (the JSON document DeliverBatch
	// describes) instead of one request per record.
	Batch bool
	// Clock tells the time for the token file checks and for Retry-After dates; nil means time.Now. Elapsed
	// in a Result is always measured with the real clock.
	Clock func() time.Time
}

// Deliverer delivers records to the app with HTTP POST requests. It implements handler.Deliverer and
// is safe for concurrent use.
type Deliverer struct {
	url     *urlTemplate
	timeout time.Duration
	maxBody int64
	token   *tokenFile
	now     func() time.Time
	// pool carries the deliveries.
	pool *connPool
	// transport carries the requests of Client, the readiness probe's, with the same TLS settings.
	transport  *http.Transport
	timeoutMsg string
	batch      bool
}

// New checks opts and builds a deliverer with its own connection pool.
func New(opts Options) (*Deliverer, error) {
	tmpl, u, err := parseURLTemplate(opts.URL)
	if err != nil {
		return nil, err
	}
	switch {
	case opts.Timeout < 0:
		return nil, fmt.Errorf("checking timeout: %v is negative", opts.Timeout)
	case opts.MaxResponseBytes < 0:
		return nil, fmt.Errorf("checking max response bytes: %d is negative", opts.MaxResponseBytes)
	case opts.MaxConns < 0:
		return nil, fmt.Errorf("checking max conns: %d is negative", opts.MaxConns)
	}
	h := &Deliverer{
		url:     tmpl,
		timeout: cmp.Or(opts.Timeout, DefaultTimeout),
		maxBody: cmp.Or(opts.MaxResponseBytes, DefaultMaxResponseBytes),
		now:     opts.Clock,
		batch:   opts.Batch,
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.timeoutMsg = "timeout after " + h.timeout.String()
	if opts.AuthTokenFile != "" {
		if h.token, err = newTokenFile(opts.AuthTokenFile, h.now); err != nil {
			return nil, err
		}
	}
	maxConns := cmp.Or(opts.MaxConns, DefaultMaxConns)
	var tlsConf *tls.Config // http
	if u.Scheme == "https" {
		tlsConf = cmp.Or(opts.TLS, &tls.Config{})
	}
	// Connecting must give up well before the delivery does, so that an app that is not there shows as
	// AppUnavailable (a failed connect) rather than as a Retryable timeout that would use up an attempt.
	h.pool = newConnPool(dialAddr(u), tlsConf, maxConns, h.maxBody, h.timeout/2)
	h.transport = newTransport(opts.TLS, maxConns, h.timeout/2)
	return h, nil
}

// parseURLTemplate checks the app URL and splits it around "{topic}", which may only appear in the path. It
// also returns the URL parsed with a neutral stand-in for the topic, for the parts that do not depend on it.
func parseURLTemplate(raw string) (*urlTemplate, *url.URL, error) {
	if raw == "" {
		return nil, nil, errors.New("checking app url: it is empty")
	}
	// Parse with a neutral stand-in so the checks see the URL as it will be for a real topic.
	u, err := url.Parse(strings.ReplaceAll(raw, topicPlaceholder, "topic"))
	if err != nil {
		return nil, nil, fmt.Errorf("checking app url: %w", errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, nil, fmt.Errorf("checking app url: scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, nil, errors.New("checking app url: it names no host")
	}
	host := removeZone(u.Host)
	if !validHost(host) {
		// The Host header and the name resolved would need the punycode form, which an app next to the
		// sidecar never needs; asking for it keeps that conversion out.
		return nil, nil, errors.New("checking app url: the host name is not ASCII; write it in its punycode (xn--) form")
	}
	t := &urlTemplate{parts: strings.Split(raw, topicPlaceholder), host: host}
	if len(t.parts) == 1 {
		t.fixed = &target{requestURI: u.RequestURI(), host: host}
		return t, u, nil
	}
	// The placeholder is only allowed in the path: after the authority, before any query or fragment.
	afterScheme := strings.TrimPrefix(raw[len(u.Scheme):], "://")
	pathStart := strings.IndexAny(afterScheme, "/?#")
	pathEnd := strings.IndexAny(afterScheme, "?#")
	first := strings.Index(afterScheme, topicPlaceholder)
	last := strings.LastIndex(afterScheme, topicPlaceholder)
	if pathStart < 0 || afterScheme[pathStart] != '/' || first < pathStart || (pathEnd >= 0 && last > pathEnd) {
		return nil, nil, errors.New("checking app url: {topic} may only appear in the path")
	}
	return t, u, nil
}

// removeZone drops the zone of an IPv6 literal ("[fe80::1%eth0]:80"): it only means something to the
// sender's network stack, and net/http leaves it out of the Host header too.
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i, j := strings.LastIndex(host, "%"), strings.LastIndex(host, "]")
	if i < 0 || j < i {
		return host
	}
	return host[:i] + host[j:]
}

// validHost reports whether host (with its port) can go into the Host header as it is: visible ASCII only.
// url.Parse has checked the rest of its syntax.
func validHost(host string) bool {
	for i := 0; i < len(host); i++ {
		if host[i] <= ' ' || host[i] >= 0x7f {
			return false
		}
	}
	return true
}

// dialAddr is the host:port to connect to, with the scheme's default port when the URL names none.
func dialAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// newTransport tunes a transport for an app on localhost: keep-alive with an idle pool as large as the
// deliveries in flight, no proxy from the environment (HTTP_PROXY must not capture traffic to localhost),
// no compression (it costs CPU and the bodies never cross a network), HTTP/1.1 only. Connecting and the TLS
// handshake each take at most connectLimit (and never more than a few seconds).
func newTransport(tlsConf *tls.Config, maxConns int, connectLimit time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: min(dialTimeout, connectLimit), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      false,
		TLSHandshakeTimeout:    min(tlsHandshakeTimeout, connectLimit),
		DisableCompression:     true,
		MaxIdleConns:           0, // no overall cap: there is one app, capped per host below
		MaxIdleConnsPerHost:    maxConns,
		IdleConnTimeout:        idleConnTimeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	if tlsConf != nil {
		tr.TLSClientConfig = tlsConf.Clone()
	}
	// A non-nil, empty map turns off the HTTP/2 upgrade for https too: one app on localhost gains nothing
	// from multiplexing, and HTTP/1.1 keeps one stalled request from holding up others.
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return tr
}

// Client returns an http.Client that does not follow redirects, with the deliverer's TLS settings but a
// connection pool of its own. It suits the readiness Probe.
func (h *Deliverer) Client() *http.Client {
	return &http.Client{
		Transport:     h.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CloseIdleConnections closes the kept-alive connections that carry no request, e.g. on shutdown; those still
// carrying one are closed when it ends.
func (h *Deliverer) CloseIdleConnections() {
	h.pool.closeIdle()
	h.transport.CloseIdleConnections()
}

// Deliver implements handler.Deliverer: in batch mode (Options.Batch) ds go to the app in one request (see
// DeliverBatch), otherwise each record goes in a request of its own, one after the other (see DeliverOne).
func (h *Deliverer) Deliver(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
	if h.batch && len(ds) > 0 {
		h.deliverBatch(ctx, ds, results)
		return
	}
	for i, d := range ds {
		results[i] = h.DeliverOne(ctx, d)
	}
}

// DeliverOne POSTs one record to the app and classifies the answer.
//
// The whole exchange is bounded by the configured timeout (Retryable, "timeout after <timeout>"). When ctx
// ends first, Deliver returns at once with AppUnavailable and Reason "delivery canceled", an outcome that
// uses no attempt, in case a caller does not check ctx.Err() as it should.
func (h *Deliverer) DeliverOne(ctx context.Context, d *handler.Delivery) handler.Result {
	start := time.Now()
	if ctx.Err() != nil {
		return canceled(start)
	}
	buf := getHead()
	defer putHead(buf)
	var out outgoing
	var err error
	if *buf, err = h.appendRequest(*buf, d, &out); err != nil {
		return handler.Result{Outcome: handler.Permanent, Reason: "building the request: " + safeString(err.Error()), Elapsed: time.Since(start)}
	}
	deadline := start.Add(h.timeout)
	a, err := h.pool.exchange(ctx, &out, deadline)
	if err != nil {
		return h.failed(ctx, deadline, err, start)
	}
	res := h.classify(a)
	a.release()
	res.Elapsed = time.Since(start)
	return res
}

// failed classifies an exchange that ended without a status.
func (h *Deliverer) failed(ctx context.Context, deadline time.Time, err error, start time.Time) handler.Result {
	switch {
	case ctx.Err() != nil:
		return canceled(start)
	case !time.Now().Before(deadline) || errors.Is(err, os.ErrDeadlineExceeded):
		return handler.Result{Outcome: handler.Retryable, Reason: h.timeoutMsg, Elapsed: time.Since(start)}
	}
	o, reason := classifyError(err)
	return handler.Result{Outcome: o, Reason: reason, Elapsed: time.Since(start)}
}

// canceled is the Result when the caller's context ended.
func canceled(start time.Time) handler.Result {
	return handler.Result{Outcome: handler.AppUnavailable, Reason: "delivery canceled", Elapsed: time.Since(start)}
}

// classify classifies an answer, reading no more of its body than the cap. The status decides;
// Kafka-Sidecar-Action overrides it. A success reads the body only so that the connection can carry the next
// request; a failure keeps its first bytes for the reason. Either way no more than the cap is read.
func (h *Deliverer) classify(a *answer) handler.Result {
	if o, _ := outcomeOf(a.status, a.action); o == handler.Success {
		drain(a, h.maxBody)
		return handler.Result{Outcome: handler.Success, Status: a.status}
	}
	var snippet [maxReasonBody]byte
	n := readSnippet(a, snippet[:min(int64(len(snippet)), h.maxBody)])
	drain(a, h.maxBody-int64(n))
	var retryAfter time.Duration
	if a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable {
		retryAfter = ParseRetryAfter(a.retryAfter, h.now())
	}
	return classifyAnswer(a.status, a.action, snippet[:n], retryAfter)
}

// readSnippet fills buf from r as far as r goes and returns the bytes read.
func readSnippet(r io.Reader, buf []byte) int {
	n, _ := io.ReadFull(r, buf)
	return n
}

// drainBufs recycles the buffers used to drain answer bodies.
var drainBufs = sync.Pool{New: func() any { return new([4 << 10]byte) }}

// drain reads up to limit bytes of body. A body read to its end lets the connection carry the next request;
// a longer one is abandoned and its connection closed, which is cheaper than reading it.
func drain(body io.Reader, limit int64) {
	buf := drainBufs.Get().(*[4 << 10]byte)
	for limit > 0 {
		n, err := body.Read(buf[:min(int64(len(buf)), limit)])
		limit -= int64(n)
		if err != nil {
			break
		}
	}
	drainBufs.Put(buf)
}
