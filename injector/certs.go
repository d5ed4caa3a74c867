package injector

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"
)

// recheckEvery is how often mounted files are checked for changes, at most.
var recheckEvery = time.Second

// FileCertificate serves the certificate and key in two PEM files (cert-manager's Secret, mounted). It reads
// them again when either changes, so a renewed certificate is served without a restart.
type FileCertificate struct {
	certFile, keyFile string

	mu      sync.Mutex
	checked time.Time
	stamp   string
	cert    *tls.Certificate
}

// NewFileCertificate loads the pair once to fail early on a bad one.
func NewFileCertificate(certFile, keyFile string) (*FileCertificate, error) {
	f := &FileCertificate{certFile: certFile, keyFile: keyFile}
	if _, err := f.GetCertificate(nil); err != nil {
		return nil, err
	}
	return f, nil
}

// GetCertificate is tls.Config.GetCertificate: the current pair, checked for changes at most once a second.
// A pair that fails to load (cert-manager writing one file before the other) keeps the previous one.
func (f *FileCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cert != nil && time.Since(f.checked) < recheckEvery {
		return f.cert, nil
	}
	f.checked = time.Now()
	stamp, err := fileStamp(f.certFile, f.keyFile)
	if err == nil && stamp == f.stamp {
		return f.cert, nil
	}
	cert, lerr := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err = errors.Join(err, lerr); err != nil {
		if f.cert != nil {
			return f.cert, nil
		}
		return nil, fmt.Errorf("loading the serving certificate: %w", err)
	}
	f.cert, f.stamp = &cert, stamp
	return f.cert, nil
}

func fileStamp(paths ...string) (string, error) {
	var stamp string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprint(info.ModTime().UnixNano(), "/", info.Size(), ";")
	}
	return stamp, nil
}

// Authority is a certificate authority the injector makes itself when no certificate is mounted, and the
// serving certificates it signs.
type Authority struct {
	// CertPEM is the CA certificate: the caBundle of the MutatingWebhookConfiguration.
	CertPEM []byte
	// KeyPEM is the CA's private key, PKCS #8.
	KeyPEM []byte

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewAuthority makes a CA named commonName, valid for lifetime.
func NewAuthority(commonName string, lifetime time.Duration, now time.Time) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing the CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the CA key: %w", err)
	}
	return ParseAuthority(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// ParseAuthority reads a CA made by NewAuthority back from its PEM blocks.
func ParseAuthority(certPEM, keyPEM []byte) (*Authority, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("parsing the CA: the key is not ECDSA")
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parsing the CA: %w", err)
	}
	return &Authority{CertPEM: certPEM, KeyPEM: keyPEM, cert: cert, key: key}, nil
}

// NotAfter is when the CA expires.
func (a *Authority) NotAfter() time.Time { return a.cert.NotAfter }

// Certificate is the CA certificate.
func (a *Authority) Certificate() *x509.Certificate { return a.cert }

// Issue signs a serving certificate for dnsNames, valid for lifetime.
func (a *Authority) Issue(dnsNames []string, lifetime time.Duration, now time.Time) (*tls.Certificate, error) {
	return a.Sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: dnsNames[0]},
		DNSNames:    dnsNames,
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// Sign signs template (given a serial number when it has none, and cut to the CA's life) for a new P-256 key.
func (a *Authority) Sign(template *x509.Certificate) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a key: %w", err)
	}
	tmpl := *template
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = serial()
	}
	if tmpl.NotAfter.After(a.cert.NotAfter) {
		tmpl.NotAfter = a.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// SelfSigned serves certificates from an Authority and issues a new one when two thirds of the current one's
// life have passed, so a certificate in use never expires.
type SelfSigned struct {
	ca       *Authority
	dnsNames []string
	lifetime time.Duration
	now      func() time.Time

	mu   sync.Mutex
	cert *tls.Certificate
}

// NewSelfSigned issues the first certificate for dnsNames (the webhook Service's names).
func NewSelfSigned(ca *Authority, dnsNames []string, lifetime time.Duration, now func() time.Time) (*SelfSigned, error) {
	if len(dnsNames) == 0 {
		return nil, errors.New("a serving certificate needs at least one DNS name")
	}
	s := &SelfSigned{ca: ca, dnsNames: dnsNames, lifetime: lifetime, now: now}
	if _, err := s.GetCertificate(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (s *SelfSigned) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil {
		leaf := s.cert.Leaf
		renewAt := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
		if now.Before(renewAt) {
			return s.cert, nil
		}
	}
	cert, err := s.ca.Issue(s.dnsNames, s.lifetime, now)
	if err != nil {
		if s.cert != nil && now.Before(s.cert.Leaf.NotAfter) {
			return s.cert, nil
		}
		return nil, err
	}
	s.cert = cert
	return s.cert, nil
}
