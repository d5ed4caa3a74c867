package injector_test

import (
	"bufio"
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
	"path/filepath"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	admissionv1 "k8s.io/api/admission/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
	"github.com/kafka-sidecar/kafka-sidecar/injector"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// webhook is an injector serving over TLS on 127.0.0.1 with a CA of its own, and a client that trusts it.
type webhook struct {
	url    string
	client *http.Client
}

func startWebhook(t *testing.T, cfg injector.ConfigSource) *webhook {
	t.Helper()
	ca, err := injector.NewAuthority("test CA", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certs, err := injector.NewSelfSigned(ca, []string{"kafka-sidecar-injector.kafka-sidecar.svc", "localhost"}, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- injector.Serve(ctx, ln, injector.NewServer(cfg, zaptest.NewLogger(t)), certs.GetCertificate, 5*time.Second)
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	// The API server checks the Service's DNS name; the test dials 127.0.0.1 with that name.
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "kafka-sidecar-injector.kafka-sidecar.svc", MinVersion: tls.VersionTLS12}}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &webhook{url: "https://" + ln.Addr().String(), client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
}

func (w *webhook) post(t *testing.T, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := w.client.Post(w.url+"/mutate", contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// review sends an AdmissionReview v1 for a Pod and returns the response.
func (w *webhook) review(t *testing.T, namespace string, pod []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"namespace":%q,"operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"},"object":%s,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}}}`, namespace, pod)
	code, data := w.post(t, "application/json", []byte(body))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, data)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("decoding the response: %v\n%s", err, data)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("not an AdmissionReview v1 response: %s", data)
	}
	if out.Response.UID != "705ab4f5-6393-11e8-b7cc-42010a800002" {
		t.Fatalf("response UID %q does not echo the request's", out.Response.UID)
	}
	return out.Response
}

// podCase is a Pod as a controller would create it from one workload of the corpus, and the pod spec
// `inject` wrote for that workload.
type podCase struct {
	name      string
	namespace string
	pod       []byte
	want      map[string]any
}

var templatePaths = map[string][]string{
	"Deployment": {"spec", "template"}, "StatefulSet": {"spec", "template"}, "DaemonSet": {"spec", "template"},
	"Job": {"spec", "template"}, "CronJob": {"spec", "jobTemplate", "spec", "template"},
}

func dig(obj map[string]any, path ...string) map[string]any {
	for _, k := range path {
		obj, _ = obj[k].(map[string]any)
	}
	return obj
}

func objects(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []map[string]any
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if items, ok := obj["items"].([]any); ok {
			for _, it := range items {
				out = append(out, it.(map[string]any))
			}
			continue
		}
		if obj != nil {
			out = append(out, obj)
		}
	}
}

// podCases turns every workload of the inject corpus into the Pod its controller would create.
func podCases(t *testing.T, cfg inject.Config) []podCase {
	t.Helper()
	files, err := filepath.Glob("../inject/testdata/in/*")
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	var cases []podCase
	for _, f := range files {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := inject.Manifests(bytes.NewReader(in), &out, cfg); err != nil {
			t.Fatal(err)
		}
		before, after := objects(t, in), objects(t, out.Bytes())
		for i, obj := range before {
			kind, _ := obj["kind"].(string)
			meta := dig(obj, "metadata")
			ns, _ := meta["namespace"].(string)
			var pod, want map[string]any
			if kind == "Pod" {
				pod, want = obj, dig(after[i], "spec")
			} else if path, ok := templatePaths[kind]; ok {
				tmpl := dig(obj, path...)
				podMeta := map[string]any{"generateName": fmt.Sprint(meta["name"], "-"), "namespace": ns}
				for k, v := range dig(tmpl, "metadata") {
					podMeta[k] = v
				}
				if kind == "StatefulSet" {
					podMeta["name"] = fmt.Sprint(meta["name"], "-0")
					podMeta["ownerReferences"] = []any{map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": meta["name"], "uid": "3e9ec8bc-9b43-4e54-a1a5-1f6b4a1c6f00", "controller": true}}
				}
				pod = map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": podMeta, "spec": dig(tmpl, "spec")}
				want = dig(after[i], append(path, "spec")...)
			} else {
				continue
			}
			data, err := json.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, podCase{name: filepath.Base(f) + "/" + kind, namespace: ns, pod: data, want: want})
		}
	}
	return cases
}

// TestPatchEqualsInject sends each Pod of the corpus to the webhook as the API server would, applies the
// returned JSON patch to the Pod, and compares the result with what `inject` wrote for its workload.
func TestPatchEqualsInject(t *testing.T) {
	cfg, err := inject.LoadConfig("../inject/testdata/defaults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := startWebhook(t, injector.StaticConfig(cfg))
	cases := podCases(t, cfg)
	patched := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := w.review(t, tc.namespace, tc.pod)
			if !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			got := tc.pod
			if resp.Patch != nil {
				if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
					t.Fatalf("patch type %v, want JSONPatch", resp.PatchType)
				}
				p, err := jsonpatch.DecodePatch(resp.Patch)
				if err != nil {
					t.Fatalf("decoding the patch: %v\n%s", err, resp.Patch)
				}
				if got, err = p.Apply(tc.pod); err != nil {
					t.Fatalf("applying the patch: %v", err)
				}
				patched++
			}
			var pod map[string]any
			if err := json.Unmarshal(got, &pod); err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(pod["spec"])
			b, _ := json.Marshal(tc.want)
			if !bytes.Equal(a, b) {
				t.Fatalf("the patched pod differs from inject's:\nwebhook: %s\n inject: %s", a, b)
			}
		})
	}
	if patched < 8 {
		t.Fatalf("only %d of %d pods were patched; the corpus should exercise the patch path", patched, len(cases))
	}
}

func TestBadAnnotationIsDeniedNamingIt(t *testing.T) {
	w := startWebhook(t, injector.StaticConfig{})
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"kafka-sidecar.io/inject":"true","kafka-sidecar.io/brokers":"k:1","kafka-sidecar.io/group":"g","kafka-sidecar.io/topics":"a b"}},"spec":{"containers":[{"name":"app","image":"app"}]}}`
	resp := w.review(t, "shop", []byte(pod))
	if resp.Allowed || resp.Patch != nil || resp.Result == nil || resp.Result.Code != http.StatusUnprocessableEntity {
		t.Fatalf("want a 422 denial without a patch, got %+v", resp)
	}
	if !strings.Contains(resp.Result.Message, "kafka-sidecar.io/topics") {
		t.Fatalf("message %q does not name the annotation", resp.Result.Message)
	}
}

func TestMalformedReviewsGetErrorResponses(t *testing.T) {
	w := startWebhook(t, injector.StaticConfig{})
	review := func(request string) string {
		return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":` + request + `}`
	}
	podReq := func(object string) string {
		return review(`{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"n","object":` + object + `}`)
	}
	for _, tc := range []struct {
		name, contentType, body string
		code                    int
		denied                  bool
	}{
		{"not JSON", "application/json", "{not json", http.StatusBadRequest, false},
		{"empty body", "application/json", "", http.StatusBadRequest, false},
		{"no request", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest, false},
		{"wrong content type", "text/plain", review(`{}`), http.StatusUnsupportedMediaType, false},
		{"object is a number", "application/json", podReq(`42`), http.StatusOK, true},
		{"object is null", "application/json", podReq(`null`), http.StatusOK, true},
		{"object is a list", "application/json", podReq(`[1,2]`), http.StatusOK, true},
		{"spec is a string", "application/json", podReq(`{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{"kafka-sidecar.io/inject":"true"}},"spec":"x"}`), http.StatusOK, false},
		{"annotations are a list", "application/json", podReq(`{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":["kafka-sidecar.io/inject"]},"spec":{}}`), http.StatusOK, false},
		{"huge body", "application/json", `{"x":"` + strings.Repeat("a", 9<<20) + `"}`, http.StatusRequestEntityTooLarge, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := w.post(t, tc.contentType, []byte(tc.body))
			if code != tc.code {
				t.Fatalf("HTTP %d, want %d: %s", code, tc.code, data)
			}
			if code != http.StatusOK {
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(data, &out); err != nil || out.Response == nil {
				t.Fatalf("not an AdmissionReview: %s", data)
			}
			if out.Response.UID != "u1" || out.Response.Allowed == tc.denied || out.Response.Patch != nil {
				t.Fatalf("response %+v, want uid u1, denied=%v, no patch", out.Response, tc.denied)
			}
		})
	}
	resp, err := w.client.Get(w.url + "/mutate")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /mutate: %d", resp.StatusCode)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := w.client.Get(w.url + path)
		if err != nil {
			t.Fatalf("%s after the malformed reviews: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
}

func TestOtherRequestsPassUntouched(t *testing.T) {
	w := startWebhook(t, injector.StaticConfig{Defaults: inject.Defaults{Brokers: "k:1"}})
	annotated := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"kafka-sidecar.io/inject":"true","kafka-sidecar.io/topics":"t","kafka-sidecar.io/group":"g"}},"spec":{"containers":[{"name":"app","image":"app"}]}}`
	for _, tc := range []struct{ name, request string }{
		{"update", `{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"UPDATE","namespace":"n","object":` + annotated + `}`},
		{"another kind", `{"uid":"u1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","namespace":"n","object":{}}`},
		{"subresource", `{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"subResource":"ephemeralcontainers","operation":"CREATE","namespace":"n","object":` + annotated + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := w.post(t, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":`+tc.request+`}`))
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(data, &out); code != http.StatusOK || err != nil || out.Response == nil || !out.Response.Allowed || out.Response.Patch != nil {
				t.Fatalf("HTTP %d %s: want allowed without a patch", code, data)
			}
		})
	}
	if resp := w.review(t, "n", []byte(annotated)); resp.Patch == nil {
		t.Fatal("the same pod on CREATE got no patch")
	}
}

// FuzzPatch: no pod JSON makes Patch panic, and a patch it returns applies to its input.
func FuzzPatch(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{"kafka-sidecar.io/inject":"true","kafka-sidecar.io/config-map":"c"}},"spec":{"containers":[{"name":"a"}]}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{"kafka-sidecar.io/inject":"true","kafka-sidecar.io/secret":"s"}},"spec":{"initContainers":[{"name":"kafka-sidecar"},7]}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"ownerReferences":[{"kind":"StatefulSet","controller":true}],"annotations":{"kafka-sidecar.io/inject":"true","kafka-sidecar.io/config-map":"c"}},"spec":{"containers":[{"name":"a","ports":[{"containerPort":9464}]}]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, pod []byte) {
		patch, err := injector.Patch(pod, "ns", inject.Config{})
		if err != nil || patch == nil {
			return
		}
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			t.Fatalf("undecodable patch %s: %v", patch, err)
		}
		out, err := p.Apply(pod)
		if err != nil {
			t.Fatalf("the patch does not apply to its input: %v\n%s\n%s", err, pod, patch)
		}
		again, err := injector.Patch(out, "ns", inject.Config{})
		if err != nil || again != nil {
			t.Fatalf("the patched pod needs another patch (%v): %s", err, again)
		}
	})
}

// BenchmarkPatch: the work behind one admission review of an annotated Pod (decode, inject, diff).
func BenchmarkPatch(b *testing.B) {
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"orders-7d9f-","namespace":"shop","labels":{"app":"orders"},"annotations":{"kafka-sidecar.io/inject":"true","kafka-sidecar.io/topics":"orders","kafka-sidecar.io/group":"orders","kafka-sidecar.io/app-port":"8080"}},"spec":{"containers":[{"name":"app","image":"orders:1","ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"100m"}}}]}}`)
	cfg := inject.Config{Defaults: inject.Defaults{Brokers: "kafka:9092", Image: "ks:1"}}
	b.ReportAllocs()
	for b.Loop() {
		if p, err := injector.Patch(pod, "shop", cfg); err != nil || p == nil {
			b.Fatalf("patch %s, %v", p, err)
		}
	}
}
