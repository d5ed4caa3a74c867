package connect

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// registryTimeout bounds one request to the schema registry: a registry that hangs is an outage like one that
// refuses, and delivery must learn of it soon enough to pause.
const registryTimeout = 10 * time.Second

// SchemaRegistry builds a client of the schema registry SIDECAR_SCHEMA_REGISTRY_URL names, with its
// credentials and CA bundle.
func SchemaRegistry(cfg *config.Config) (*sr.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.SchemaRegistryTLSCAFile != "" {
		pool, err := loadCAPool("SIDECAR_SCHEMA_REGISTRY_TLS_CA_FILE", cfg.SchemaRegistryTLSCAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	opts := []sr.ClientOpt{
		sr.URLs(cfg.SchemaRegistryURL),
		sr.HTTPClient(&http.Client{Transport: transport, Timeout: registryTimeout}),
		sr.UserAgent("kafka-sidecar"),
	}
	if cfg.SchemaRegistryUsername != "" {
		opts = append(opts, sr.BasicAuth(cfg.SchemaRegistryUsername, cfg.SchemaRegistryPassword.Reveal()))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("SIDECAR_SCHEMA_REGISTRY_URL: building the registry client: %w", err)
	}
	return cl, nil
}
