package sidecar

import (
	"context"
	"encoding/json"
	"errors"
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
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
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
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
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

// Ready lists why the sidecar is not ready; none means ready.
func (s *Sidecar) Ready(ctx context.Context) []string {
	var reasons []string
	select {
	case <-s.stopping:
		return []string{"stopping"}
	default:
	}
	if !s.cons.Joined() {
		reasons = append(reasons, "not in the consumer group yet")
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if s.redis != nil {
		if err := s.redis.Ping(cctx).Err(); err != nil {
			reasons = append(reasons, "dedup store unreachable: "+connect.RedactURL(err.Error()))
		}
	}
	if err := s.probe.Check(cctx); err != nil {
		reasons = append(reasons, "app unreachable: "+err.Error())
	}
	if paused := s.gate.Reasons(); len(paused) > 0 {
		reasons = append(reasons, "delivery paused: "+strings.Join(paused, ", "))
	}
	return reasons
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
