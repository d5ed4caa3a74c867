package httpapp

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// closedAddr returns a 127.0.0.1 address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProbeHealthURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("health check used %s, want GET", r.Method)
		}
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	down := "http://" + closedAddr(t)
	tests := []struct {
		name      string
		healthURL string
		wantErr   string // empty: healthy
	}{
		{name: "2xx", healthURL: srv.URL + "/ok"},
		{name: "503", healthURL: srv.URL + "/ready", wantErr: "app health check at " + strings.TrimPrefix(srv.URL, "http://") + " answered http 503"},
		{name: "redirect is not followed", healthURL: srv.URL + "/redirect", wantErr: "answered http 302"},
		{name: "refused, the query's secret not shown", healthURL: down + "/health?token=s3cret", wantErr: "failed: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewProbe("http://127.0.0.1:1/", tt.healthURL, nil)
			if err != nil {
				t.Fatalf("NewProbe: %v", err)
			}
			err = p.Check(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check = %v, want healthy", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Check = %v, want an error containing %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Errorf("Check error %q shows a secret", err)
			}
		})
	}
}

func TestProbeTCP(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	closed := closedAddr(t)
	tests := []struct {
		name    string
		appURL  string
		wantErr string
	}{
		{name: "listening", appURL: srv.URL + "/in/{topic}"},
		{name: "closed port", appURL: "http://" + closed + "/", wantErr: "app not reachable at " + closed + ": connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewProbe(tt.appURL, "", nil)
			if err != nil {
				t.Fatalf("NewProbe: %v", err)
			}
			err = p.Check(context.Background())
			if tt.wantErr == "" && err != nil {
				t.Errorf("Check = %v, want reachable", err)
			}
			if tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("Check = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestProbeUsesTheDelivererClient(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshake below is expected
	srv.StartTLS()
	defer srv.Close()
	h := newTestHTTP(t, Options{URL: srv.URL, TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	p, err := NewProbe(srv.URL, srv.URL+"/healthz", h.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(context.Background()); err != nil {
		t.Errorf("Check over TLS with the deliverer's settings = %v, want healthy", err)
	}
	// The default client does not trust the test CA: the deliverer's TLS settings are what made it work.
	plain, err := NewProbe(srv.URL, srv.URL+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("Check with the default client = %v, want a TLS error", err)
	}
	// And the deliverer itself speaks TLS to the app.
	if res := deliverWithin(t, context.Background(), h, sampleDelivery()); res.Outcome != handler.Success {
		t.Errorf("Deliver over TLS = %+v, want success", res)
	}
}

func TestProbeCanceled(t *testing.T) {
	srv, _ := blockingServer(t)
	p, err := NewProbe(srv.URL, srv.URL+"/health", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Check(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.HasSuffix(err.Error(), ": timeout") {
			t.Errorf("Check = %v, want a timeout error", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Check did not return within %v", waitLimit)
	}
}

func TestNewProbeChecksURLs(t *testing.T) {
	tests := []struct {
		name, appURL, healthURL string
	}{
		{name: "bad app url", appURL: "://x"},
		{name: "app url without host", appURL: "http:///x"},
		{name: "app url of another scheme", appURL: "ftp://h/"},
		{name: "bad port", appURL: "http://h:99999/"},
		{name: "bad health url", appURL: "http://h/", healthURL: "::"},
		{name: "health url without host", appURL: "http://h/", healthURL: "/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewProbe(tt.appURL, tt.healthURL, nil); err == nil {
				t.Errorf("NewProbe(%q, %q) accepted it", tt.appURL, tt.healthURL)
			}
		})
	}
	p, err := NewProbe("https://app.svc/{topic}", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.addr != "app.svc:443" {
		t.Errorf("addr = %q, want the https default port", p.addr)
	}
}
