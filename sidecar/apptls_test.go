package sidecar

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/test/certs"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestMutualTLSToApp delivers to an https app that demands a client certificate signed by its CA.
func TestMutualTLSToApp(t *testing.T) {
	files := certs.Generate(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	var verified atomic.Int64
	ln, err := tls.Listen("tcp", "127.0.0.1:0", files.ServerTLSConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			verified.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, stop := startSidecar(t, ctx, []string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=mtls", "SIDECAR_DEDUP=memory",
		"SIDECAR_APP_URL=https://localhost:" + port + "/",
		"SIDECAR_APP_TLS_CA_FILE=" + files.CAFile,
		"SIDECAR_APP_TLS_CERT_FILE=" + files.ClientCertFile, "SIDECAR_APP_TLS_KEY_FILE=" + files.ClientKeyFile,
		"SIDECAR_ADMIN_ADDR=127.0.0.1:0", "SIDECAR_RETRY_DELAYS=", "SIDECAR_SHUTDOWN_TIMEOUT=2s",
	})
	produce(t, cluster.ListenAddrs(), "orders", 0, 5)
	waitFor(t, 20*time.Second, "5 deliveries over mutual TLS", func() bool { return verified.Load() == 5 })
	stop()
}
