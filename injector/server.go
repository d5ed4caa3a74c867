package injector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync/atomic"

	"go.uber.org/zap"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
)

// maxReviewBytes bounds a request body: the API server sends at most a few MiB per object.
const maxReviewBytes = 8 << 20

// ConfigSource gives the defaults in force now. It is called once per review, from many goroutines.
type ConfigSource interface {
	Config() (inject.Config, error)
}

// StaticConfig is a ConfigSource that never changes.
type StaticConfig inject.Config

// Config returns c.
func (c StaticConfig) Config() (inject.Config, error) { return inject.Config(c), nil }

// Server answers AdmissionReview v1 requests for Pods with the JSON patch that adds the sidecar.
type Server struct {
	config   ConfigSource
	log      *zap.Logger
	stopping atomic.Bool
}

// NewServer returns a Server that takes its defaults from config.
func NewServer(config ConfigSource, log *zap.Logger) *Server {
	return &Server{config: config, log: log}
}

// Handler serves /mutate (the webhook), /healthz (alive) and /readyz (ready: the defaults load, and the
// server is not shutting down).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/mutate", s.mutate)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.stopping.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if _, err := s.config.Config(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// Stopping makes /readyz fail, so the Service stops sending reviews before the server closes.
func (s *Server) Stopping() { s.stopping.Store(true) }

func (s *Server) mutate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReviewBytes))
	if err != nil {
		http.Error(w, "reading the review: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "parsing the AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "the AdmissionReview has no request", http.StatusBadRequest)
		return
	}
	req := review.Request
	resp := s.review(req)
	resp.UID = req.UID
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		s.log.Warn("writing the admission response", zap.Error(err))
	}
}

// review decides one request: a patch for a Pod that asks for the sidecar, a plain "allowed" for anything
// else, and a denial naming the annotation for a Pod whose annotations are wrong (the same case in which
// `inject` exits 2).
func (s *Server) review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allowed := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create || req.SubResource != "" {
		return allowed
	}
	log := s.log.With(zap.String("namespace", req.Namespace), zap.String("name", req.Name), zap.String("uid", string(req.UID)))
	cfg, err := s.config.Config()
	if err != nil {
		log.Error("no usable defaults", zap.Error(err))
		return deny(http.StatusInternalServerError, "kafka-sidecar injector: "+err.Error())
	}
	patch, err := Patch(req.Object.Raw, req.Namespace, cfg)
	var aerr *inject.AnnotationError
	switch {
	case errors.As(err, &aerr):
		log.Info("denied: bad annotation", zap.Error(err))
		return deny(http.StatusUnprocessableEntity, "kafka-sidecar injector: "+err.Error())
	case err != nil:
		log.Warn("malformed pod", zap.Error(err))
		return deny(http.StatusBadRequest, "kafka-sidecar injector: "+err.Error())
	case patch == nil:
		return allowed
	}
	log.Info("injected")
	pt := admissionv1.PatchTypeJSONPatch
	allowed.Patch, allowed.PatchType = patch, &pt
	return allowed
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}}
}

// Patch returns the JSON patch (RFC 6902) that turns a Pod, as JSON, into the Pod `inject` would write, or nil
// when it needs none. namespace is the namespace the Pod is created in.
func Patch(pod []byte, namespace string, cfg inject.Config) ([]byte, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(pod))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("parsing the pod: %w", err)
	}
	if obj == nil {
		return nil, errors.New("parsing the pod: no object")
	}
	changed, err := inject.Object(obj, namespace, cfg)
	if err != nil || !changed {
		return nil, err
	}
	modified, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding the pod: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(pod, modified)
	if err != nil {
		return nil, fmt.Errorf("computing the patch: %w", err)
	}
	return json.Marshal(ops)
}
