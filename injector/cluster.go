package injector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cluster is the little of the Kubernetes API the injector uses when it makes its own certificates: one
// Secret that holds the shared CA, and the caBundle of its MutatingWebhookConfiguration.
type Cluster struct {
	base      string
	client    *http.Client
	tokenFile string
}

// serviceAccountDir is where Kubernetes mounts a pod's API credentials.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InCluster returns a Cluster that talks to the API server of the cluster the injector runs in, with its
// ServiceAccount's token.
func InCluster() (*Cluster, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)")
	}
	ca, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return nil, fmt.Errorf("reading the API server CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("reading the API server CA: no certificate")
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return NewCluster("https://"+net.JoinHostPort(host, port), &http.Client{Transport: transport, Timeout: 30 * time.Second}, serviceAccountDir+"/token"), nil
}

// NewCluster returns a Cluster on an API server URL. tokenFile is read on every request (projected tokens
// rotate); empty sends none.
func NewCluster(base string, client *http.Client, tokenFile string) *Cluster {
	return &Cluster{base: strings.TrimSuffix(base, "/"), client: client, tokenFile: tokenFile}
}

// apiError is a non-2xx answer of the API server.
type apiError struct {
	Code int
	Body string
}

func (e *apiError) Error() string { return fmt.Sprintf("kubernetes API: HTTP %d: %s", e.Code, e.Body) }

func isStatus(err error, code int) bool {
	var a *apiError
	return errors.As(err, &a) && a.Code == code
}

func (c *Cluster) do(ctx context.Context, method, path, contentType string, body, out any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.tokenFile != "" {
		token, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("reading the ServiceAccount token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{resp.StatusCode, strings.TrimSpace(string(data))}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// The keys of the CA in its Secret.
const (
	secretCACert = "ca.crt"
	secretCAKey  = "ca.key"
)

// EnsureAuthority returns the CA kept in the Secret namespace/name, making it (valid for lifetime) when the
// Secret does not exist. Every injector replica calls it: the first one creates the Secret, the others find
// it (a create that loses the race reads the winner's), so all replicas sign with the same CA.
func (c *Cluster) EnsureAuthority(ctx context.Context, namespace, name string, lifetime time.Duration) (*Authority, error) {
	path := "/api/v1/namespaces/" + namespace + "/secrets"
	for attempt := 0; attempt < 5; attempt++ {
		var secret corev1.Secret
		err := c.do(ctx, http.MethodGet, path+"/"+name, "", nil, &secret)
		if err == nil {
			ca, perr := ParseAuthority(secret.Data[secretCACert], secret.Data[secretCAKey])
			if perr != nil {
				return nil, fmt.Errorf("secret %s/%s: %w (delete it to have a new CA made)", namespace, name, perr)
			}
			return ca, nil
		}
		if !isStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("reading secret %s/%s: %w", namespace, name, err)
		}
		ca, err := NewAuthority("kafka-sidecar-injector CA", lifetime, time.Now())
		if err != nil {
			return nil, err
		}
		secret = corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "kafka-sidecar-injector"}},
			Data:       map[string][]byte{secretCACert: ca.CertPEM, secretCAKey: ca.KeyPEM},
		}
		err = c.do(ctx, http.MethodPost, path, "application/json", &secret, nil)
		if err == nil {
			return ca, nil
		}
		if !isStatus(err, http.StatusConflict) {
			return nil, fmt.Errorf("creating secret %s/%s: %w", namespace, name, err)
		}
		// Another replica created it first: read theirs.
	}
	return nil, fmt.Errorf("secret %s/%s: gave up after repeated conflicts", namespace, name)
}

// PublishCABundle sets caPEM as the caBundle of every webhook of the MutatingWebhookConfiguration name,
// unless it is there already. The patch is guarded by the object's resourceVersion, and only touches the
// caBundle fields.
func (c *Cluster) PublishCABundle(ctx context.Context, name string, caPEM []byte) (changed bool, err error) {
	path := "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/" + name
	for attempt := 0; attempt < 5; attempt++ {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.do(ctx, http.MethodGet, path, "", nil, &mwc); err != nil {
			return false, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", name, err)
		}
		patch := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": mwc.ResourceVersion}}
		for i, w := range mwc.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, caPEM) {
				patch = append(patch, map[string]any{"op": "add", "path": fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), "value": caPEM})
			}
		}
		if len(patch) == 1 {
			return false, nil
		}
		err := c.do(ctx, http.MethodPatch, path, "application/json-patch+json", patch, nil)
		if err == nil {
			return true, nil
		}
		// A failed test (the object changed in between) is a 422 or a 409; read again.
		if !isStatus(err, http.StatusConflict) && !isStatus(err, http.StatusUnprocessableEntity) {
			return false, fmt.Errorf("patching MutatingWebhookConfiguration %s: %w", name, err)
		}
	}
	return false, fmt.Errorf("MutatingWebhookConfiguration %s: gave up after repeated conflicts", name)
}
