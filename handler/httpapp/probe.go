package httpapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// probeTimeout bounds one check when neither the caller's context nor the client sets a shorter limit.
const probeTimeout = 5 * time.Second

// maxProbeBody is how much of a health answer is read before the connection is given up.
const maxProbeBody = 64 << 10

// Probe tells whether the app can take records, for readiness and for resuming delivery after a pause.
// It is safe for concurrent use.
type Probe struct {
	healthURL string
	// target names what is checked in errors: the health URL's host or the app's host:port, never a path
	// or query that might carry a secret.
	target string
	addr   string
	client *http.Client
	dialer net.Dialer
}

// NewProbe builds a probe. With a health URL, Check GETs it and wants a 2xx; without one, Check opens (and
// closes) a TCP connection to the app URL's host and port. client sends the health request; nil means a
// client with a short timeout that does not follow redirects (HTTP.Client returns one with the app's TLS
// settings).
func NewProbe(appURL, healthURL string, client *http.Client) (*Probe, error) {
	p := &Probe{client: client, dialer: net.Dialer{Timeout: dialTimeout}}
	if p.client == nil {
		// Its own transport: no proxy from the environment, and no kept-alive connections, as checks are a few
		// seconds apart and a fresh connection also proves the app still accepts new ones.
		tr := newTransport(nil, 1, probeTimeout)
		tr.DisableKeepAlives = true
		p.client = &http.Client{
			Transport:     tr,
			Timeout:       probeTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if healthURL != "" {
		u, err := url.Parse(healthURL)
		if err != nil {
			return nil, fmt.Errorf("checking app health url: %w", errors.Unwrap(err))
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("checking app health url: it must be an http or https url with a host")
		}
		p.healthURL, p.target = healthURL, u.Host
		return p, nil
	}
	u, err := url.Parse(strings.ReplaceAll(appURL, topicPlaceholder, "topic"))
	if err != nil {
		return nil, fmt.Errorf("checking app url: %w", errors.Unwrap(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, errors.New("checking app url: it must be an http or https url with a host")
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("checking app url: port %q is not a number from 0 to 65535", port)
	}
	p.addr = net.JoinHostPort(u.Hostname(), port)
	p.target = p.addr
	return p, nil
}

// Check returns nil when the app is reachable and ready. Its errors are short, name only the host checked,
// and never carry credentials.
func (p *Probe) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if p.healthURL == "" {
		conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return fmt.Errorf("app not reachable at %s: %s", p.target, probeReason(ctx, err))
		}
		conn.Close()
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.healthURL, nil)
	if err != nil {
		return fmt.Errorf("building app health request: %s", safeString(innermost(err).Error()))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("app health check at %s failed: %s", p.target, probeReason(ctx, err))
	}
	defer resp.Body.Close()
	drain(resp.Body, maxProbeBody)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("app health check at %s answered http %d", p.target, resp.StatusCode)
	}
	return nil
}

// probeReason words a failed check briefly.
func probeReason(ctx context.Context, err error) string {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return "canceled"
	case ctx.Err() != nil:
		return "timeout"
	}
	_, reason := classifyError(err)
	return strings.TrimPrefix(reason, "connecting to the app: ")
}
