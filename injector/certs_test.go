package injector

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
)

func TestSelfSignedRenewsBeforeExpiry(t *testing.T) {
	start := time.Now()
	now := start
	ca, err := NewAuthority("test CA", 365*24*time.Hour, start)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSelfSigned(ca, []string{"injector.ns.svc"}, 30*time.Hour, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.GetCertificate(nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	if _, err := first.Leaf.Verify(x509.VerifyOptions{DNSName: "injector.ns.svc", Roots: pool, CurrentTime: now}); err != nil {
		t.Fatalf("the serving certificate does not verify against the CA: %v", err)
	}
	// Issued with NotBefore an hour back: 31h of life, renewed after two thirds of it.
	now = start.Add(19 * time.Hour)
	if same, _ := s.GetCertificate(nil); same != first {
		t.Fatal("renewed too early")
	}
	now = start.Add(21 * time.Hour)
	renewed, _ := s.GetCertificate(nil)
	if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatalf("not renewed at two thirds of its life: %v -> %v", first.Leaf.NotAfter, renewed.Leaf.NotAfter)
	}
	if _, err := renewed.Leaf.Verify(x509.VerifyOptions{DNSName: "injector.ns.svc", Roots: pool, CurrentTime: now}); err != nil {
		t.Fatalf("the renewed certificate does not verify: %v", err)
	}
}

func writePair(t *testing.T, dir string, ca *Authority, name string) {
	t.Helper()
	cert, err := ca.Issue([]string{name}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := encodePair(t, cert)
	// Written to new files and renamed, as the kubelet swaps a mounted Secret.
	for file, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		tmp := filepath.Join(dir, file+".new")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileCertificateFollowsRenewal(t *testing.T) {
	recheck := recheckEvery
	recheckEvery = 0
	t.Cleanup(func() { recheckEvery = recheck })
	dir := t.TempDir()
	ca, err := NewAuthority("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	writePair(t, dir, ca, "first.example")
	f, err := NewFileCertificate(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := f.GetCertificate(nil)
	if leaf, _ := x509.ParseCertificate(got.Certificate[0]); leaf.DNSNames[0] != "first.example" {
		t.Fatalf("serving %v", leaf.DNSNames)
	}
	writePair(t, dir, ca, "second.example.with.another.length")
	got, _ = f.GetCertificate(nil)
	if leaf, _ := x509.ParseCertificate(got.Certificate[0]); leaf.DNSNames[0] != "second.example.with.another.length" {
		t.Fatalf("still serving %v after the files changed", leaf.DNSNames)
	}
	// Half-written: the old pair stays in service.
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got2, err := f.GetCertificate(nil); err != nil || got2 != got {
		t.Fatalf("a broken pair replaced the good one (err %v)", err)
	}
	if _, err := NewFileCertificate(filepath.Join(dir, "missing.crt"), filepath.Join(dir, "tls.key")); err == nil {
		t.Fatal("a missing certificate file was accepted at start")
	}
}

func TestFileConfigReloadsAndKeepsTheLastGoodVersion(t *testing.T) {
	recheck := recheckEvery
	recheckEvery = 0
	t.Cleanup(func() { recheckEvery = recheck })
	path := filepath.Join(t.TempDir(), "defaults.yaml")
	write := func(s string) {
		if err := os.WriteFile(path+".new", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	write("brokers: a:1\n")
	c, err := NewFileConfig(path, inject.Defaults{}, inject.Defaults{Image: "from-flag:1"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := c.Config()
	if cfg.Brokers != "a:1" || cfg.Image != "from-flag:1" {
		t.Fatalf("%+v", cfg)
	}
	write("brokers: b:22\nnamespaces:\n  x:\n    brokers: c:3\n")
	if cfg, err = c.Config(); err != nil || cfg.Brokers != "b:22" || cfg.For("x").Brokers != "c:3" {
		t.Fatalf("after the change: %+v, %v", cfg, err)
	}
	write("brokers: [not, a, string]\n")
	if cfg, err = c.Config(); err != nil || cfg.Brokers != "b:22" {
		t.Fatalf("a bad version replaced the good one: %+v, %v", cfg, err)
	}
	write("nope: 1\n")
	if _, err := NewFileConfig(path, inject.Defaults{}, inject.Defaults{}, zaptest.NewLogger(t)); err == nil {
		t.Fatal("an unknown field was accepted at start")
	}
}

func encodePair(t *testing.T, cert *tls.Certificate) ([]byte, []byte) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
}
