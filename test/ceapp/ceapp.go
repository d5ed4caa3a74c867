// Package ceapp is a user's app written with the CloudEvents Go SDK, for tests: an HTTP server on 127.0.0.1
// whose requests the SDK's HTTP receiver parses (batched mode with the SDK's batch reader). It keeps every
// event it was handed and every raw request, so a test can check both what went over the wire and what an
// application built on the SDK sees.
package ceapp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ceclient "github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// App is the SDK-based app.
type App struct {
	srv *httptest.Server

	mu       sync.Mutex
	events   []event.Event
	requests []Request
	// answer, when set, picks the status for an event by its id before the SDK parses it (0: let it).
	answer func(id string, n int) int
	perID  map[string]int
	// plainOK answers 200 to requests that are no CloudEvent instead of handing them to the SDK.
	plainOK bool
	// recvMu serialises the SDK's receive handler.
	recvMu sync.Mutex
}

// Request is a request as it came over the wire, and what the app answered.
type Request struct {
	Header http.Header
	Body   []byte
	Status int
	// Scripted is true when Options.Answer chose the status rather than the SDK.
	Scripted bool
}

// Options configures Start.
type Options struct {
	// Answer, when set, picks the status to answer the n-th request (1-based) carrying the binary-mode event
	// id; 0 hands the request to the SDK as usual.
	Answer func(id string, n int) int
	// PlainOK answers 200 to a request that is no CloudEvent (no ce-specversion, no cloudevents content
	// type) rather than letting the SDK reject it.
	PlainOK bool
}

// Start starts the app; it stops when the test ends.
func Start(tb testing.TB, opts Options) *App {
	tb.Helper()
	a := &App{answer: opts.Answer, plainOK: opts.PlainOK, perID: map[string]int{}}
	p, err := cehttp.New()
	if err != nil {
		tb.Fatalf("creating the SDK's HTTP protocol: %v", err)
	}
	recv, err := ceclient.NewHTTPReceiveHandler(context.Background(), p, func(_ context.Context, e event.Event) {
		a.mu.Lock()
		a.events = append(a.events, e)
		a.mu.Unlock()
	})
	if err != nil {
		tb.Fatalf("creating the SDK's receive handler: %v", err)
	}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		ct := strings.ToLower(r.Header.Get("Content-Type"))
		id := r.Header.Get("Ce-Id")
		a.mu.Lock()
		a.perID[id]++
		n := a.perID[id]
		a.mu.Unlock()
		status := 0
		if a.answer != nil && id != "" {
			status = a.answer(id, n)
		}
		switch {
		case status != 0:
			rw.WriteHeader(status)
		case strings.HasPrefix(ct, "application/cloudevents-batch"):
			a.receiveBatch(rw, r)
		case a.plainOK && id == "" && !strings.HasPrefix(ct, "application/cloudevents"):
			rw.WriteHeader(http.StatusOK)
		default:
			// One request at a time: the SDK's receive handler pairs each request with whichever handler
			// goroutine takes its message first, and under concurrent requests one can wait forever.
			a.recvMu.Lock()
			recv.ServeHTTP(rw, r)
			a.recvMu.Unlock()
		}
		a.mu.Lock()
		a.requests = append(a.requests, Request{Header: r.Header.Clone(), Body: body, Status: rw.status, Scripted: status != 0})
		a.mu.Unlock()
	}))
	tb.Cleanup(a.srv.Close)
	return a
}

// URL is where the app listens.
func (a *App) URL() string { return a.srv.URL + "/" }

// receiveBatch parses a batched-mode request with the SDK, as its receiver takes single events only.
func (a *App) receiveBatch(w http.ResponseWriter, r *http.Request) {
	evs, err := cehttp.NewEventsFromHTTPRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.events = append(a.events, evs...)
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// statusWriter remembers the status the handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Events returns the events the SDK parsed so far, in arrival order.
func (a *App) Events() []event.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]event.Event(nil), a.events...)
}

// Requests returns every request so far, in arrival order.
func (a *App) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Request(nil), a.requests...)
}

// Rejected counts the requests the SDK could not parse (it answers them 4xx); statuses Answer chose do not count.
func (a *App) Rejected() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.requests {
		if r.Status >= 400 && !r.Scripted {
			n++
		}
	}
	return n
}

// SameEvent reports how got differs from want in id, source, type, specversion, time, content type, data
// and want's extensions; "" when it does not.
func SameEvent(got, want event.Event) string {
	var diffs []string
	if err := got.Validate(); err != nil {
		diffs = append(diffs, "not valid: "+err.Error())
	}
	check := func(what string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			diffs = append(diffs, fmt.Sprintf("%s %q, want %q", what, fmt.Sprint(g), fmt.Sprint(w)))
		}
	}
	check("id", got.ID(), want.ID())
	check("source", got.Source(), want.Source())
	check("type", got.Type(), want.Type())
	check("specversion", got.SpecVersion(), want.SpecVersion())
	if !got.Time().Equal(want.Time()) {
		diffs = append(diffs, fmt.Sprintf("time %v, want %v", got.Time(), want.Time()))
	}
	check("datacontenttype", got.DataContentType(), want.DataContentType())
	if !bytes.Equal(got.Data(), want.Data()) {
		diffs = append(diffs, fmt.Sprintf("data %q, want %q", got.Data(), want.Data()))
	}
	for name, v := range want.Extensions() {
		check("extension "+name, got.Extensions()[name], v)
	}
	return strings.Join(diffs, "; ")
}

// The specs' own examples, for tests: the JSON event format's example event (which the Kafka binding's
// structured-mode example carries as the value), the time of the Kafka binding's binary-mode example, and
// Avro bytes standing in for its data.
const (
	SpecStructured = `{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "id" : "A234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "text/xml",
    "data" : "<much wow=\"xml\"/>"
}`
	SpecTime = "2018-04-05T03:56:24Z"
)

// SpecAvro is the binary-mode example's data.
var SpecAvro = []byte{0x02, 0x06, 'f', 'o', 'o', 0x00, 0xff}

// NewEvent builds the event a test expects.
func NewEvent(id, source, typ string, tm time.Time, contentType string, data []byte, ext map[string]any) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource(source)
	e.SetType(typ)
	e.SetTime(tm)
	e.SetDataContentType(contentType)
	e.DataEncoded = data
	for k, v := range ext {
		e.SetExtension(k, v)
	}
	return e
}

// StructuredEvent is the event SpecStructured holds.
func StructuredEvent() event.Event {
	return NewEvent("A234-1234-1234", "/mycontext", "com.example.someevent", time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC),
		"text/xml", []byte(`<much wow="xml"/>`), map[string]any{"comexampleextension1": "value", "comexampleothervalue": 5})
}

// Time parses an RFC 3339 time of a test table, failing the test when it does not parse.
func Time(tb testing.TB, s string) time.Time {
	tb.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		tb.Fatal(err)
	}
	return tm
}
