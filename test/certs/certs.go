package certs

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/injector"
)

// ServerName is the DNS name the server certificate is valid for, besides the loopback addresses.
const ServerName = "localhost"

// validity is how long generated certificates live; a test never outlives it, and a short life keeps a leaked
// file harmless.
const validity = 24 * time.Hour

// Files names the PEM files of one generated set. All of them live in Dir, which the test framework removes
// when the test ends.
type Files struct {
	// Dir is the directory holding every file below.
	Dir string
	// CAFile is the CA certificate: the trust anchor for both sides.
	CAFile string
	// ServerCertFile and ServerKeyFile are the server's certificate (127.0.0.1, ::1, localhost) and key.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are a client certificate and key for mutual TLS.
	ClientCertFile, ClientKeyFile string

	caPool     *x509.CertPool
	serverPair tls.Certificate
	clientPair tls.Certificate
}

// Generate creates a CA, a server certificate and a client certificate and writes them as PEM files into a new
// t.TempDir(). It fails the test on any error. Safe to call from parallel tests: each call makes its own set.
func Generate(t testing.TB) *Files {
	t.Helper()
	f, err := GenerateInto(t.TempDir())
	if err != nil {
		t.Fatalf("generating test certificates: %v", err)
	}
	return f
}

// GenerateInto is Generate for callers without a testing.TB (a benchmark harness, a demo): it writes the files
// into dir, which must exist, and leaves removing them to the caller.
func GenerateInto(dir string) (*Files, error) {
	now := time.Now()
	ca, err := injector.NewAuthority("kafka-sidecar test CA", validity, now)
	if err != nil {
		return nil, err
	}
	f := &Files{
		Dir:            dir,
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"),
		ServerKeyFile:  filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
		caPool:         x509.NewCertPool(),
	}
	f.caPool.AddCert(ca.Certificate())
	if err := writePEM(f.CAFile, "CERTIFICATE", ca.Certificate().Raw); err != nil {
		return nil, err
	}

	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: ServerName},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{ServerName},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if f.serverPair, err = issue(ca, server, f.ServerCertFile, f.ServerKeyFile); err != nil {
		return nil, fmt.Errorf("issuing server certificate: %w", err)
	}

	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kafka-sidecar test client"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if f.clientPair, err = issue(ca, client, f.ClientCertFile, f.ClientKeyFile); err != nil {
		return nil, fmt.Errorf("issuing client certificate: %w", err)
	}
	return f, nil
}

// CAPool returns a pool holding only the generated CA. Each call returns a new pool the caller may extend.
func (f *Files) CAPool() *x509.CertPool {
	return f.caPool.Clone()
}

// ClientTLSConfig returns a client configuration that trusts only the generated CA and, when withClientCert is
// true, presents the client certificate. ServerName is left empty so the dialled address (127.0.0.1) is
// verified against the server certificate's IP addresses.
func (f *Files) ClientTLSConfig(withClientCert bool) *tls.Config {
	cfg := &tls.Config{
		RootCAs:    f.CAPool(),
		MinVersion: tls.VersionTLS12,
	}
	if withClientCert {
		cfg.Certificates = []tls.Certificate{f.clientPair}
	}
	return cfg
}

// ServerTLSConfig returns a server configuration presenting the server certificate. When requireClientCert is
// true, clients must present a certificate signed by the generated CA.
func (f *Files) ServerTLSConfig(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{f.serverPair},
		MinVersion:   tls.VersionTLS12,
	}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = f.CAPool()
	}
	return cfg
}

// issue signs template with the CA, writes the certificate and its key as PEM, and returns the pair.
func issue(ca *injector.Authority, template *x509.Certificate, certFile, keyFile string) (tls.Certificate, error) {
	pair, err := ca.Sign(template)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("encoding key: %w", err)
	}
	if err := writePEM(certFile, "CERTIFICATE", pair.Certificate[0]); err != nil {
		return tls.Certificate{}, err
	}
	if err := writePEM(keyFile, "PRIVATE KEY", keyDER); err != nil {
		return tls.Certificate{}, err
	}
	return *pair, nil
}

// writePEM writes one PEM block; keys are only readable by the owner, as servers such as redis-server accept.
func writePEM(path, blockType string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return nil
}
