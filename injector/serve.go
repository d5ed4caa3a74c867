package injector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Serve runs the webhook on ln over TLS, with certificates from getCertificate, until ctx ends; then it
// fails readiness, lets in-flight reviews finish for at most drain, and returns nil.
func Serve(ctx context.Context, ln net.Listener, s *Server, getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error), drain time.Duration) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCertificate},
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.Stopping()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// KeepCABundle writes caPEM into the MutatingWebhookConfiguration name now and then every interval until
// ctx ends, so a `helm upgrade` that resets the caBundle is repaired within one interval. It returns the
// first attempt's error, so a missing permission stops the injector at start; later failures are logged.
func KeepCABundle(ctx context.Context, c *Cluster, name string, caPEM []byte, interval time.Duration, log *zap.Logger) error {
	if _, err := c.PublishCABundle(ctx, name, caPEM); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			changed, err := c.PublishCABundle(ctx, name, caPEM)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("publishing the CA bundle", zap.Error(err))
			case changed:
				log.Info("CA bundle written back into the MutatingWebhookConfiguration", zap.String("name", name))
			}
		}
	}()
	return nil
}
