package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/test/certs"
)

func TestGenerateWritesParsablePEM(t *testing.T) {
	f := certs.Generate(t)
	for _, tc := range []struct {
		name, file, blockType string
	}{
		{"ca", f.CAFile, "CERTIFICATE"},
		{"server cert", f.ServerCertFile, "CERTIFICATE"},
		{"server key", f.ServerKeyFile, "PRIVATE KEY"},
		{"client cert", f.ClientCertFile, "CERTIFICATE"},
		{"client key", f.ClientKeyFile, "PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatalf("reading %s: %v", tc.name, err)
			}
			block, rest := pem.Decode(data)
			if block == nil || block.Type != tc.blockType || len(rest) != 0 {
				t.Fatalf("%s: want exactly one %q PEM block", tc.name, tc.blockType)
			}
			if tc.blockType == "PRIVATE KEY" {
				if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
					t.Fatalf("parsing %s: %v", tc.name, err)
				}
				return
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("parsing %s: %v", tc.name, err)
			}
			if tc.name == "ca" {
				if !cert.IsCA {
					t.Fatal("CA certificate is not marked as a CA")
				}
				return
			}
			if _, err := cert.Verify(x509.VerifyOptions{
				Roots:     f.CAPool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
			}); err != nil {
				t.Fatalf("%s does not chain to the CA: %v", tc.name, err)
			}
		})
	}
}

func TestServerCertificateNames(t *testing.T) {
	f := certs.Generate(t)
	data, err := os.ReadFile(f.ServerCertFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			if err := cert.VerifyHostname(host); err != nil {
				t.Fatalf("server certificate not valid for %s: %v", host, err)
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	f := certs.Generate(t)
	other := certs.Generate(t)
	for _, tc := range []struct {
		name              string
		requireClientCert bool
		client            *tls.Config
		wantErr           bool
	}{
		{"server auth only", false, f.ClientTLSConfig(false), false},
		{"mutual", true, f.ClientTLSConfig(true), false},
		{"mutual without client cert", true, f.ClientTLSConfig(false), true},
		{"client trusts another CA", false, other.ClientTLSConfig(false), true},
		{"client cert from another CA", true, func() *tls.Config {
			c := other.ClientTLSConfig(true)
			c.RootCAs = f.CAPool()
			return c
		}(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := handshake(t, f.ServerTLSConfig(tc.requireClientCert), tc.client)
			if tc.wantErr && err == nil {
				t.Fatal("handshake succeeded, want failure")
			}
			if !tc.wantErr && err != nil {
				t.Fatalf("handshake: %v", err)
			}
		})
	}
}

// handshake runs one TLS exchange over loopback: the server echoes one byte, so a rejected client certificate
// (reported after the handshake in TLS 1.3) surfaces as an error on the client's read.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err == nil {
			_, _ = c.Write(b[:])
		}
	}()
	// Closing the listener first unblocks Accept should the client never have connected.
	defer func() {
		_ = ln.Close()
		<-served
	}()

	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), client)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[0] != 'x' {
		return errors.New("echo mismatch")
	}
	return nil
}
