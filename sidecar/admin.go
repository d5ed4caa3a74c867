package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// readiness is the /readyz answer.
type readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons"`
}

// startAdmin serves /healthz, /readyz and /metrics (on SIDECAR_METRICS_ADDR instead when set).
func (s *Sidecar) startAdmin() ([]*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.HandleFunc("/readyz", s.serveReady)
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	metricsHandler := promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})
	metricsMux := mux
	if s.cfg.MetricsAddr != "" {
		metricsMux = http.NewServeMux()
	}
	metricsMux.Handle("/metrics", metricsHandler)

	var servers []*http.Server
	serve := func(addr string, h http.Handler, record bool) error {
		ln, err := listen(addr)
		if err != nil {
			return err
		}
		if record {
			s.addrMu.Lock()
			s.adminAddr = ln.Addr().String()
			s.addrMu.Unlock()
			close(s.adminReady)
		}
		// The server's own complaints (a bad request, an accept error) go to the log, not as plain text to stderr.
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: adminErrorLog(s.log)}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("admin server stopped", zap.Error(err))
			}
		}()
		return nil
	}
	if err := serve(s.cfg.AdminAddr, mux, true); err != nil {
		return nil, err
	}
	if s.cfg.MetricsAddr != "" {
		if err := serve(s.cfg.MetricsAddr, metricsMux, false); err != nil {
			for _, srv := range servers {
				_ = srv.Close()
			}
			return nil, err
		}
	}
	return servers, nil
}

// AdminAddr returns the admin server's listen address once it listens (useful with port 0), or "" when ctx
// ends first.
func (s *Sidecar) AdminAddr(ctx context.Context) string {
	select {
	case <-s.adminReady:
	case <-ctx.Done():
		return ""
	}
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return s.adminAddr
}

// Ready lists why the sidecar is not ready; none means ready. It reads the background checks' latest results
// (see monitor) and never waits on Redis or the app, so a probe gets its answer at once, also during an outage.
func (s *Sidecar) Ready(context.Context) []string {
	var reasons []string
	select {
	case <-s.stopping:
		return []string{"stopping"}
	default:
	}
	if !s.cons.Joined() {
		reasons = append(reasons, "not in the consumer group yet")
	}
	s.checks.mu.Lock()
	redisErr, redisSeen, appErr, appSeen := s.checks.redisErr, s.checks.redisSeen, s.checks.appErr, s.checks.appSeen
	s.checks.mu.Unlock()
	if s.redis != nil {
		switch {
		case !redisSeen:
			reasons = append(reasons, "dedup store not checked yet")
		case redisErr != nil:
			reasons = append(reasons, "dedup store unreachable: "+connect.RedactSecrets(s.cfg, redisErr.Error()))
		}
	}
	switch {
	case !appSeen:
		reasons = append(reasons, "app not checked yet")
	case appErr != nil:
		reasons = append(reasons, "app unreachable: "+appErr.Error())
	}
	if s.decoder != nil {
		if err := s.decoder.Unavailable(); err != nil {
			reasons = append(reasons, err.Error())
		}
	}
	if paused := s.gate.Reasons(); len(paused) > 0 {
		reasons = append(reasons, "delivery paused: "+strings.Join(paused, ", "))
	}
	return reasons
}

// liveness is the /healthz answer.
type liveness struct {
	Alive  bool   `json:"alive"`
	Reason string `json:"reason,omitempty"`
}

// serveHealth fails while the stall watch sees records in flight, delivery not paused, and nothing finished
// for SIDECAR_STALL_TIMEOUT: a restart then hands the partitions to a fresh process (see the README's
// "Probes" section for what happens to the records in flight).
func (s *Sidecar) serveHealth(w http.ResponseWriter, _ *http.Request) {
	s.checks.mu.Lock()
	st := s.checks.stall
	s.checks.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if st.stalled {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(liveness{Reason: fmt.Sprintf(
			"stalled: %d records in flight, none finished for %s (SIDECAR_STALL_TIMEOUT=%s)",
			st.inFlight, st.since.Round(time.Second), s.cfg.StallTimeout)})
		return
	}
	_ = json.NewEncoder(w).Encode(liveness{Alive: true})
}

func (s *Sidecar) serveReady(w http.ResponseWriter, r *http.Request) {
	reasons := s.Ready(r.Context())
	w.Header().Set("Content-Type", "application/json")
	status := http.StatusOK
	if len(reasons) > 0 {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(readiness{Ready: len(reasons) == 0, Reasons: append([]string{}, reasons...)})
}

func adminErrorLog(log *zap.Logger) *stdlog.Logger {
	l, err := zap.NewStdLogAt(rateLimited(log.Named("admin")), zap.WarnLevel)
	if err != nil {
		return zap.NewStdLog(log.Named("admin"))
	}
	return l
}
