package injector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"go.uber.org/zap/zaptest"

	"github.com/kafka-sidecar/kafka-sidecar/injector"
)

// fakeAPI is an in-memory API server for the two objects the injector touches: Secrets (get, create) and a
// MutatingWebhookConfiguration (get, JSON patch with a resourceVersion test). It checks the bearer token.
type fakeAPI struct {
	mu      sync.Mutex
	secrets map[string][]byte
	mwc     []byte
	version int
	creates int
	patches int
}

const mwcPath = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kafka-sidecar-injector"

func newFakeAPI() *fakeAPI {
	return &fakeAPI{secrets: map[string][]byte{}, version: 1, mwc: []byte(`{"apiVersion":"admissionregistration.k8s.io/v1","kind":"MutatingWebhookConfiguration","metadata":{"name":"kafka-sidecar-injector","resourceVersion":"1"},"webhooks":[{"name":"pods.kafka-sidecar.io","clientConfig":{"service":{"name":"i","namespace":"ks"}},"sideEffects":"None","admissionReviewVersions":["v1"]},{"name":"pods-again.kafka-sidecar.io","clientConfig":{"service":{"name":"i","namespace":"ks"}},"sideEffects":"None","admissionReviewVersions":["v1"]}]}`)}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer t0ken" {
		http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	const secrets = "/api/v1/namespaces/ks/secrets"
	switch {
	case r.Method == http.MethodGet && len(r.URL.Path) > len(secrets) && r.URL.Path[:len(secrets)+1] == secrets+"/":
		s, ok := f.secrets[r.URL.Path[len(secrets)+1:]]
		if !ok {
			http.Error(w, `{"kind":"Status","code":404}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write(s)
	case r.Method == http.MethodPost && r.URL.Path == secrets:
		var s struct {
			Metadata struct{ Name string } `json:"metadata"`
		}
		if err := json.Unmarshal(body, &s); err != nil || s.Metadata.Name == "" {
			http.Error(w, "bad secret", http.StatusBadRequest)
			return
		}
		if _, ok := f.secrets[s.Metadata.Name]; ok {
			http.Error(w, `{"kind":"Status","code":409}`, http.StatusConflict)
			return
		}
		f.secrets[s.Metadata.Name] = body
		f.creates++
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	case r.Method == http.MethodGet && r.URL.Path == mwcPath:
		_, _ = w.Write(f.mwc)
	case r.Method == http.MethodPatch && r.URL.Path == mwcPath:
		if r.Header.Get("Content-Type") != "application/json-patch+json" {
			http.Error(w, "want a JSON patch", http.StatusUnsupportedMediaType)
			return
		}
		p, err := jsonpatch.DecodePatch(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, err := p.Apply(f.mwc)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		f.version++
		f.patches++
		f.mwc = f.setVersion(out)
		_, _ = w.Write(f.mwc)
	default:
		http.Error(w, "not here: "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

func (f *fakeAPI) setVersion(obj []byte) []byte {
	var m map[string]any
	_ = json.Unmarshal(obj, &m)
	m["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(f.version)
	out, _ := json.Marshal(m)
	return out
}

// caBundles returns the caBundle of each webhook.
func (f *fakeAPI) caBundles(t *testing.T) [][]byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var mwc struct {
		Webhooks []struct {
			ClientConfig struct {
				CABundle []byte `json:"caBundle"`
			} `json:"clientConfig"`
		} `json:"webhooks"`
	}
	if err := json.Unmarshal(f.mwc, &mwc); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range mwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

func startFakeAPI(t *testing.T) (*fakeAPI, *injector.Cluster) {
	t.Helper()
	api := newFakeAPI()
	srv := httptest.NewTLSServer(api)
	t.Cleanup(srv.Close)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return api, injector.NewCluster(srv.URL, srv.Client(), token)
}

// TestReplicasShareOneCA: replicas starting together end up with the same CA, created once.
func TestReplicasShareOneCA(t *testing.T) {
	api, cluster := startFakeAPI(t)
	ctx := context.Background()
	cas := make([]*injector.Authority, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range cas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cas[i], errs[i] = cluster.EnsureAuthority(ctx, "ks", "kafka-sidecar-injector-ca", 24*time.Hour)
		}()
	}
	wg.Wait()
	for i := range cas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if !bytes.Equal(cas[i].CertPEM, cas[0].CertPEM) {
			t.Fatalf("replica %d has another CA", i)
		}
	}
	if api.creates != 1 {
		t.Fatalf("%d creates, want 1", api.creates)
	}
}

func TestCABundleIsPublishedAndRepaired(t *testing.T) {
	api, cluster := startFakeAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ca, err := cluster.EnsureAuthority(ctx, "ks", "ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := injector.KeepCABundle(ctx, cluster, "kafka-sidecar-injector", ca.CertPEM, 10*time.Millisecond, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	for i, b := range api.caBundles(t) {
		if !bytes.Equal(b, ca.CertPEM) {
			t.Fatalf("webhook %d caBundle %q", i, b)
		}
	}
	if changed, err := cluster.PublishCABundle(ctx, "kafka-sidecar-injector", ca.CertPEM); err != nil || changed {
		t.Fatalf("publishing the same bundle again: changed=%v err=%v", changed, err)
	}
	// An upgrade re-applies the configuration without the bundle: it comes back.
	api.mu.Lock()
	api.mwc = bytes.Replace(api.mwc, []byte(`"caBundle"`), []byte(`"ignoredField"`), -1)
	api.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Equal(api.caBundles(t)[1], ca.CertPEM) {
		if time.Now().After(deadline) {
			t.Fatal("the caBundle was not written back within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := injector.KeepCABundle(ctx, cluster, "missing", ca.CertPEM, time.Hour, zaptest.NewLogger(t)); err == nil {
		t.Fatal("a missing MutatingWebhookConfiguration was not reported")
	}
	cancel()
}
