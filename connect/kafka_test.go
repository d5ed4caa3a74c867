package connect

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/test/certs"
)

// plantedPassword is a password no message would contain by chance; tests assert it never leaks.
const plantedPassword = "pl4nted-S3cret/Pa:ss@word"

// authDeadline bounds how long a rejected login may take to be reported; the contract allows 30s end to end.
const authDeadline = 5 * time.Second

func baseKafkaConfig(brokers ...string) *config.Config {
	return &config.Config{KafkaBrokers: brokers, KafkaTLSMinVersion: "1.2"}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatalf("writing %s: %v", name, err)
	}
	return p
}

func TestKafkaTLSConfig(t *testing.T) {
	files := certs.Generate(t)
	garbage := writeFile(t, "garbage.pem", "not a certificate")
	tests := []struct {
		name    string
		mutate  func(c *config.Config)
		wantErr string // substring of the error; empty means success
		check   func(t *testing.T, tc *tls.Config)
	}{
		{
			name:  "disabled gives no TLS",
			check: func(t *testing.T, tc *tls.Config) { requireNil(t, tc) },
		},
		{
			name:    "CA file without TLS enabled is refused",
			mutate:  func(c *config.Config) { c.KafkaTLSCAFile = files.CAFile },
			wantErr: "SIDECAR_KAFKA_TLS_CA_FILE is set but SIDECAR_KAFKA_TLS_ENABLED is false",
		},
		{
			name:    "server name without TLS enabled is refused",
			mutate:  func(c *config.Config) { c.KafkaTLSServerName = "kafka" },
			wantErr: "SIDECAR_KAFKA_TLS_SERVER_NAME",
		},
		{
			name:   "enabled without CA uses the system roots",
			mutate: func(c *config.Config) { c.KafkaTLSEnabled = true },
			check: func(t *testing.T, tc *tls.Config) {
				if tc == nil || tc.RootCAs != nil || tc.MinVersion != tls.VersionTLS12 || len(tc.Certificates) != 0 {
					t.Fatalf("got %+v, want system roots, TLS 1.2, no client certificate", tc)
				}
			},
		},
		{
			name: "CA file, server name and TLS 1.3",
			mutate: func(c *config.Config) {
				c.KafkaTLSEnabled, c.KafkaTLSCAFile, c.KafkaTLSServerName, c.KafkaTLSMinVersion = true, files.CAFile, "kafka.internal", "1.3"
			},
			check: func(t *testing.T, tc *tls.Config) {
				if !tc.RootCAs.Equal(files.CAPool()) {
					t.Error("RootCAs is not exactly the CA from the file")
				}
				if tc.ServerName != "kafka.internal" || tc.MinVersion != tls.VersionTLS13 {
					t.Errorf("ServerName %q MinVersion %x, want kafka.internal and TLS 1.3", tc.ServerName, tc.MinVersion)
				}
			},
		},
		{
			name: "client certificate for mutual TLS",
			mutate: func(c *config.Config) {
				c.KafkaTLSEnabled, c.KafkaTLSCertFile, c.KafkaTLSKeyFile = true, files.ClientCertFile, files.ClientKeyFile
			},
			check: func(t *testing.T, tc *tls.Config) {
				if len(tc.Certificates) != 1 {
					t.Fatalf("got %d client certificates, want 1", len(tc.Certificates))
				}
			},
		},
		{
			name:    "unknown minimum version",
			mutate:  func(c *config.Config) { c.KafkaTLSEnabled, c.KafkaTLSMinVersion = true, "1.1" },
			wantErr: "SIDECAR_KAFKA_TLS_MIN_VERSION",
		},
		{
			name:    "CA file without certificates",
			mutate:  func(c *config.Config) { c.KafkaTLSEnabled, c.KafkaTLSCAFile = true, garbage },
			wantErr: "SIDECAR_KAFKA_TLS_CA_FILE: " + garbage + " holds no PEM certificate",
		},
		{
			name:    "missing CA file",
			mutate:  func(c *config.Config) { c.KafkaTLSEnabled, c.KafkaTLSCAFile = true, garbage+".missing" },
			wantErr: "SIDECAR_KAFKA_TLS_CA_FILE: reading the CA bundle",
		},
		{
			name:    "certificate without key",
			mutate:  func(c *config.Config) { c.KafkaTLSEnabled, c.KafkaTLSCertFile = true, files.ClientCertFile },
			wantErr: "SIDECAR_KAFKA_TLS_KEY_FILE: is required when SIDECAR_KAFKA_TLS_CERT_FILE is set",
		},
		{
			name: "key that does not parse",
			mutate: func(c *config.Config) {
				c.KafkaTLSEnabled, c.KafkaTLSCertFile, c.KafkaTLSKeyFile = true, files.ClientCertFile, garbage
			},
			wantErr: "SIDECAR_KAFKA_TLS_CERT_FILE and SIDECAR_KAFKA_TLS_KEY_FILE: loading the client certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseKafkaConfig("127.0.0.1:9092")
			if tt.mutate != nil {
				tt.mutate(cfg)
			}
			tc, err := KafkaTLSConfig(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.check(t, tc)
		})
	}
}

func requireNil(t *testing.T, tc *tls.Config) {
	t.Helper()
	if tc != nil {
		t.Fatalf("got a TLS config %+v, want none", tc)
	}
}

func TestSASLMechanism(t *testing.T) {
	tests := []struct {
		mechanism, user, pass string
		wantName              string // "" with wantErr "" means no SASL
		wantErr               string
	}{
		{mechanism: ""},
		{mechanism: "PLAIN", user: "u", pass: plantedPassword, wantName: "PLAIN"},
		{mechanism: "SCRAM-SHA-256", user: "u", pass: plantedPassword, wantName: "SCRAM-SHA-256"},
		{mechanism: "SCRAM-SHA-512", user: "u", pass: plantedPassword, wantName: "SCRAM-SHA-512"},
		{mechanism: "GSSAPI", user: "u", pass: plantedPassword, wantErr: "SIDECAR_KAFKA_SASL_MECHANISM"},
		{mechanism: "scram-sha-512", user: "u", pass: plantedPassword, wantErr: "SIDECAR_KAFKA_SASL_MECHANISM"},
		{mechanism: "PLAIN", pass: plantedPassword, wantErr: "SIDECAR_KAFKA_SASL_USERNAME"},
		{mechanism: "SCRAM-SHA-512", user: "u", wantErr: "SIDECAR_KAFKA_SASL_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.mechanism+"/"+tt.wantErr, func(t *testing.T) {
			cfg := baseKafkaConfig("127.0.0.1:9092")
			cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword = tt.mechanism, tt.user, config.Secret(tt.pass)
			mech, err := SASLMechanism(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), plantedPassword) {
					t.Fatalf("error contains the password: %v", err)
				}
				// KafkaOpts reports the same problem, also without the password.
				if _, optsErr := KafkaOpts(cfg); optsErr == nil || strings.Contains(optsErr.Error(), plantedPassword) {
					t.Fatalf("KafkaOpts error %v: want an error without the password", optsErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			switch {
			case tt.wantName == "" && mech != nil:
				t.Fatalf("got mechanism %s, want none", mech.Name())
			case tt.wantName != "" && (mech == nil || mech.Name() != tt.wantName):
				t.Fatalf("got mechanism %v, want %s", mech, tt.wantName)
			}
		})
	}
}

func TestKafkaOptsRequiresBrokers(t *testing.T) {
	if _, err := KafkaOpts(&config.Config{}); err == nil || !strings.Contains(err.Error(), "SIDECAR_KAFKA_BROKERS") {
		t.Fatalf("error %v, want one naming SIDECAR_KAFKA_BROKERS", err)
	}
	if _, err := KafkaOpts(nil); err == nil {
		t.Fatal("no error for a nil configuration")
	}
}

// newSecureCluster starts kfake with TLS (mutual when mutualTLS) and one SASL superuser.
func newSecureCluster(t *testing.T, files *certs.Files, mutualTLS bool, mechanism, user, pass string, extra ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"), kfake.EnableSASL(), kfake.Superuser(mechanism, user, pass)}
	if files != nil {
		opts = append(opts, kfake.TLS(files.ServerTLSConfig(mutualTLS)))
	}
	c, err := kfake.NewCluster(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newClient builds a client from KafkaOpts plus test options and closes it when the test ends.
func newClient(t *testing.T, cfg *config.Config, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := KafkaOpts(cfg)
	if err != nil {
		t.Fatalf("KafkaOpts: %v", err)
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestKafkaOptsProduceConsume(t *testing.T) {
	files := certs.Generate(t)
	tests := []struct {
		name      string
		mechanism string
		tls       bool
		mutualTLS bool
	}{
		{name: "SCRAM-SHA-512 over TLS", mechanism: MechanismScramSHA512, tls: true},
		{name: "SCRAM-SHA-512 over mutual TLS", mechanism: MechanismScramSHA512, tls: true, mutualTLS: true},
		{name: "SCRAM-SHA-256 plaintext", mechanism: MechanismScramSHA256},
		{name: "PLAIN over TLS", mechanism: MechanismPlain, tls: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var serverFiles *certs.Files
			if tt.tls {
				serverFiles = files
			}
			c := newSecureCluster(t, serverFiles, tt.mutualTLS, tt.mechanism, "sidecar", plantedPassword)
			cfg := baseKafkaConfig(c.ListenAddrs()...)
			cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword = tt.mechanism, "sidecar", plantedPassword
			if tt.tls {
				cfg.KafkaTLSEnabled, cfg.KafkaTLSCAFile = true, files.CAFile
			}
			if tt.mutualTLS {
				cfg.KafkaTLSCertFile, cfg.KafkaTLSKeyFile = files.ClientCertFile, files.ClientKeyFile
			}
			cl := newClient(t, cfg,
				kgo.DefaultProduceTopic("orders"),
				kgo.ConsumeTopics("orders"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.MetadataMinAge(50*time.Millisecond),
			)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("hello")}).FirstErr(); err != nil {
				t.Fatalf("producing: %v", err)
			}
			for {
				fs := cl.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("no record consumed within the deadline: %v", err)
				}
				if errs := fs.Errors(); len(errs) > 0 {
					t.Fatalf("fetching: %v", errs[0].Err)
				}
				if recs := fs.Records(); len(recs) > 0 {
					if string(recs[0].Value) != "hello" {
						t.Fatalf("consumed %q, want hello", recs[0].Value)
					}
					return
				}
			}
		})
	}
}

func TestWrongPasswordIsAuthError(t *testing.T) {
	files := certs.Generate(t)
	c := newSecureCluster(t, files, false, MechanismScramSHA512, "sidecar", "the-right-password")
	cfg := baseKafkaConfig(c.ListenAddrs()...)
	cfg.KafkaTLSEnabled, cfg.KafkaTLSCAFile = true, files.CAFile
	cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword = MechanismScramSHA512, "sidecar", plantedPassword

	tests := []struct {
		name string
		call func(ctx context.Context, cl *kgo.Client) error
	}{
		{name: "ping", call: func(ctx context.Context, cl *kgo.Client) error { return cl.Ping(ctx) }},
		{name: "admin request", call: func(ctx context.Context, cl *kgo.Client) error {
			_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := newClient(t, cfg, kgo.DefaultProduceTopic("orders"))
			// The context is far longer than authDeadline, so a client that retried would be caught by the
			// elapsed-time check rather than cut off by the context.
			ctx, cancel := context.WithTimeout(context.Background(), 6*authDeadline)
			defer cancel()
			start := time.Now()
			err := tt.call(ctx, cl)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("a wrong password was accepted")
			}
			if !IsAuthError(err) {
				t.Fatalf("IsAuthError(%v) = false, want true", err)
			}
			if elapsed > authDeadline {
				t.Fatalf("the rejection took %v, want under %v", elapsed, authDeadline)
			}
			if strings.Contains(err.Error(), plantedPassword) {
				t.Fatalf("error contains the password: %v", err)
			}
		})
	}
}

func TestSASLErrorCodeIsAuthError(t *testing.T) {
	tests := []struct {
		name string
		code int16
		want error
	}{
		{name: "authentication failed", code: kerr.SaslAuthenticationFailed.Code, want: kerr.SaslAuthenticationFailed},
		{name: "illegal state", code: kerr.IllegalSaslState.Code, want: kerr.IllegalSaslState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newSecureCluster(t, nil, false, MechanismPlain, "sidecar", plantedPassword)
			// A real broker answers SaslAuthenticate with an error code; kfake closes instead, so inject one.
			c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
				resp.ErrorCode = tt.code
				msg := "authentication rejected by the test"
				resp.ErrorMessage = &msg
				return resp, nil, true
			})
			cfg := baseKafkaConfig(c.ListenAddrs()...)
			cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword = MechanismPlain, "sidecar", plantedPassword
			cl := newClient(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 6*authDeadline)
			defer cancel()
			start := time.Now()
			err := cl.Ping(ctx)
			if !errors.Is(err, tt.want) || !IsAuthError(err) {
				t.Fatalf("Ping error %v: want %v classified as an authentication error", err, tt.want)
			}
			if elapsed := time.Since(start); elapsed > authDeadline {
				t.Fatalf("the rejection took %v, want under %v", elapsed, authDeadline)
			}
		})
	}
}

func TestMissingTLSIsNotAuthError(t *testing.T) {
	files := certs.Generate(t)
	c := newSecureCluster(t, files, false, MechanismScramSHA512, "sidecar", plantedPassword)
	cfg := baseKafkaConfig(c.ListenAddrs()...)
	cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword = MechanismScramSHA512, "sidecar", plantedPassword
	cl := newClient(t, cfg, kgo.RequestRetries(1))
	ctx, cancel := context.WithTimeout(context.Background(), 6*authDeadline)
	defer cancel()
	err := cl.Ping(ctx)
	if err == nil {
		t.Fatal("a plaintext client reached a TLS listener")
	}
	if IsAuthError(err) {
		t.Fatalf("IsAuthError(%v) = true for a TLS mismatch, want false: the credentials were never sent", err)
	}
}
