package connect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// SASL mechanisms accepted by SIDECAR_KAFKA_SASL_MECHANISM.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// ClientID is the client.id every Kafka client built from KafkaOpts announces, so broker logs, quotas and ACL
// audits can tell the sidecar's connections apart from the app's.
const ClientID = "kafka-sidecar"

// kafkaDialTimeout bounds one TCP connect plus TLS handshake to a broker. kgo retries a failed dial, so a
// short timeout moves on from a dead seed quickly instead of stalling the whole start-up.
const kafkaDialTimeout = 10 * time.Second

// KafkaOpts returns the franz-go options that reach the configured brokers: seed brokers, the dialer (TLS when
// SIDECAR_KAFKA_TLS_ENABLED is true) and the SASL mechanism. Callers append their own options (consumer group,
// producer settings) to the returned slice.
//
// The dialer watches the SASL exchange of each connection, so a broker that drops the connection while
// authenticating yields an error for which IsAuthError is true. That is why TLS is set up here with kgo.Dialer
// rather than kgo.DialTLSConfig: the two cannot be combined, so callers must not add either of them.
//
// Files named by the configuration are read now; an error names the variable to fix and never contains the
// password.
func KafkaOpts(cfg *config.Config) ([]kgo.Opt, error) {
	if cfg == nil {
		return nil, errors.New("building kafka options: no configuration")
	}
	if len(cfg.KafkaBrokers) == 0 {
		return nil, errors.New("SIDECAR_KAFKA_BROKERS: no seed broker configured")
	}
	tlsCfg, err := KafkaTLSConfig(cfg)
	if err != nil {
		return nil, scrub(err, cfg)
	}
	mech, err := SASLMechanism(cfg)
	if err != nil {
		return nil, scrub(err, cfg)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.KafkaBrokers...),
		kgo.ClientID(ClientID),
		kgo.Dialer(newDialer(tlsCfg)),
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// KafkaTLSConfig builds the client TLS configuration from the SIDECAR_KAFKA_TLS_* variables, or returns nil
// when TLS is off. Without SIDECAR_KAFKA_TLS_CA_FILE the system roots verify the brokers; an empty
// SIDECAR_KAFKA_TLS_SERVER_NAME verifies each broker against the host it was dialled at.
func KafkaTLSConfig(cfg *config.Config) (*tls.Config, error) {
	if !cfg.KafkaTLSEnabled {
		// TLS files without TLS would be silently ignored, and the connection would be plaintext although
		// the operator clearly meant to encrypt it.
		for _, v := range []struct{ name, val string }{
			{"SIDECAR_KAFKA_TLS_CA_FILE", cfg.KafkaTLSCAFile},
			{"SIDECAR_KAFKA_TLS_CERT_FILE", cfg.KafkaTLSCertFile},
			{"SIDECAR_KAFKA_TLS_KEY_FILE", cfg.KafkaTLSKeyFile},
			{"SIDECAR_KAFKA_TLS_SERVER_NAME", cfg.KafkaTLSServerName},
		} {
			if v.val != "" {
				return nil, fmt.Errorf("%s is set but SIDECAR_KAFKA_TLS_ENABLED is false: set SIDECAR_KAFKA_TLS_ENABLED=true or unset %s", v.name, v.name)
			}
		}
		return nil, nil
	}
	minVersion, err := tlsMinVersion(cfg.KafkaTLSMinVersion)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: minVersion, ServerName: cfg.KafkaTLSServerName}
	if cfg.KafkaTLSCAFile != "" {
		if tc.RootCAs, err = loadCAPool("SIDECAR_KAFKA_TLS_CA_FILE", cfg.KafkaTLSCAFile); err != nil {
			return nil, err
		}
	}
	pair, err := loadKeyPair("SIDECAR_KAFKA_TLS_CERT_FILE", cfg.KafkaTLSCertFile, "SIDECAR_KAFKA_TLS_KEY_FILE", cfg.KafkaTLSKeyFile)
	if err != nil {
		return nil, err
	}
	if pair != nil {
		tc.Certificates = []tls.Certificate{*pair}
	}
	return tc, nil
}

// SASLMechanism returns the SASL mechanism named by SIDECAR_KAFKA_SASL_MECHANISM with the configured user name
// and password, or nil when SASL is off.
func SASLMechanism(cfg *config.Config) (sasl.Mechanism, error) {
	if cfg.KafkaSASLMechanism == "" {
		return nil, nil
	}
	user, pass := cfg.KafkaSASLUsername, cfg.KafkaSASLPassword.Reveal()
	if user == "" {
		return nil, errors.New("SIDECAR_KAFKA_SASL_USERNAME: is required when SIDECAR_KAFKA_SASL_MECHANISM is set")
	}
	if pass == "" {
		return nil, errors.New("SIDECAR_KAFKA_SASL_PASSWORD: is empty (set it or SIDECAR_KAFKA_SASL_PASSWORD_FILE)")
	}
	switch cfg.KafkaSASLMechanism {
	case MechanismPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case MechanismScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case MechanismScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("SIDECAR_KAFKA_SASL_MECHANISM: %q is not one of %s, %s, %s",
		cfg.KafkaSASLMechanism, MechanismPlain, MechanismScramSHA256, MechanismScramSHA512)
}

// newDialer dials brokers over TCP, adds TLS when tc is set (naming the server after the dialled host, as
// kgo.DialTLSConfig does), and wraps the connection so a close during SASL is reported as such.
func newDialer(tc *tls.Config) func(ctx context.Context, network, host string) (net.Conn, error) {
	nd := &net.Dialer{Timeout: kafkaDialTimeout}
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		var (
			conn net.Conn
			err  error
		)
		if tc == nil {
			conn, err = nd.DialContext(ctx, network, host)
		} else {
			c := tc.Clone()
			if c.ServerName == "" {
				server, _, splitErr := net.SplitHostPort(host)
				if splitErr != nil {
					return nil, fmt.Errorf("splitting broker address %q: %w", host, splitErr)
				}
				c.ServerName = server
			}
			conn, err = (&tls.Dialer{NetDialer: nd, Config: c}).DialContext(ctx, network, host)
		}
		if err != nil {
			return nil, err
		}
		return &authWatchConn{Conn: conn, addr: host}, nil
	}
}

// tlsMinVersion maps SIDECAR_*_TLS_MIN_VERSION to a crypto/tls constant; empty means TLS 1.2.
func tlsMinVersion(v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("SIDECAR_KAFKA_TLS_MIN_VERSION: %q is not 1.2 or 1.3", v)
}

// loadCAPool reads a PEM bundle into a pool holding only those CAs, so the system roots are not trusted as well.
func loadCAPool(variable, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the CA bundle: %w", variable, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", variable, path)
	}
	return pool, nil
}

// loadKeyPair loads a client certificate and key for mutual TLS; both empty means none.
func loadKeyPair(certVar, certFile, keyVar, keyFile string) (*tls.Certificate, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "":
		return nil, fmt.Errorf("%s: is required when %s is set", certVar, keyVar)
	case keyFile == "":
		return nil, fmt.Errorf("%s: is required when %s is set", keyVar, certVar)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: loading the client certificate: %w", certVar, keyVar, err)
	}
	return &pair, nil
}
