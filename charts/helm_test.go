package charts

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "kafka-sidecar"
	// release and namespace are what every render uses, so tests can name the objects.
	release   = "rel"
	namespace = "orders"
	// kubeVersion is passed explicitly: a helm built with go install reports v1.20 by default, older than the
	// chart's kubeVersion constraint.
	kubeVersion   = "1.31.0"
	helmInstall   = "GOBIN=$(go env GOPATH)/bin go install helm.sh/helm/v3/cmd/helm@v3.22.0"
	helmTimeout   = 2 * time.Minute
	minimalValues = "kafka-sidecar/ci/minimal-values.yaml"
)

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// helmPath returns a helm v3 binary, skipping the test when there is none (failing under CI).
func helmPath(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() { helmBin, helmErr = findHelm() })
	if helmErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; install it with: %s", helmErr, helmInstall)
		}
		t.Skipf("%v; install it with: %s", helmErr, helmInstall)
	}
	return helmBin
}

// findHelm looks on PATH, then where go install puts binaries, and keeps the first helm v3: a helm of another
// major version lints and renders differently.
func findHelm() (string, error) {
	var candidates []string
	if p, err := exec.LookPath("helm"); err == nil {
		candidates = append(candidates, p)
	}
	for _, v := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			continue
		}
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			if dir == "" {
				continue
			}
			if v == "GOPATH" {
				dir = filepath.Join(dir, "bin")
			}
			candidates = append(candidates, filepath.Join(dir, "helm"))
		}
	}
	var seen []string
	for _, c := range candidates {
		out, err := exec.Command(c, "version", "--template", "{{.Version}}").Output()
		if err != nil {
			continue
		}
		version := strings.TrimSpace(string(out))
		if strings.HasPrefix(version, "v3.") || version == "v3" {
			return c, nil
		}
		seen = append(seen, c+" is "+version)
	}
	if len(seen) > 0 {
		return "", fmt.Errorf("no helm v3 found (%s)", strings.Join(seen, ", "))
	}
	return "", errors.New("helm not found on PATH, in $(go env GOBIN) or in $(go env GOPATH)/bin")
}

// runHelm runs helm with its home directories in a temporary place, so a developer's repositories, plugins
// and caches cannot change the outcome.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := helmPath(t)
	ctx, cancel := context.WithTimeout(t.Context(), helmTimeout)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// renderChart runs helm template on a chart directory and decodes every object strictly.
func renderChart(t *testing.T, dir string, args ...string) []object {
	t.Helper()
	out, err := templateChart(t, dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// render renders this chart with extra helm arguments (values files, --set flags).
func render(t *testing.T, args ...string) []object {
	t.Helper()
	return renderChart(t, chartDir, args...)
}

// renderError renders this chart and returns the failure, failing the test when rendering succeeds.
func renderError(t *testing.T, args ...string) error {
	t.Helper()
	_, err := templateChart(t, chartDir, args...)
	if err == nil {
		t.Fatalf("helm template %s succeeded, want a failure", strings.Join(args, " "))
	}
	return err
}

func templateChart(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	base := []string{"template", release, dir, "--namespace", namespace}
	if !slices.Contains(args, "--kube-version") {
		base = append(base, "--kube-version", kubeVersion)
	}
	return runHelm(t, append(base, args...)...)
}

// object is one rendered manifest, decoded into its typed struct.
type object struct {
	Source     string // the template it came from
	APIVersion string
	Kind       string
	Name       string
	Labels     map[string]string
	Value      any // a pointer to the typed struct of the kind
}

// kindSpec says which apiVersion a kind must use and which struct holds it.
type kindSpec struct {
	apiVersion string
	newValue   func() any
}

// kinds maps every kind the charts render to its type. Kubernetes kinds use k8s.io/api; the operator kinds
// (Prometheus Operator, KEDA, cert-manager) use the minimal structs in the tests, which name only the fields
// the charts set.
var kinds = map[string]kindSpec{
	"Deployment":          {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"Service":             {"v1", func() any { return &corev1.Service{} }},
	"ServiceAccount":      {"v1", func() any { return &corev1.ServiceAccount{} }},
	"ConfigMap":           {"v1", func() any { return &corev1.ConfigMap{} }},
	"Pod":                 {"v1", func() any { return &corev1.Pod{} }},
	"PodDisruptionBudget": {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
	"NetworkPolicy":       {"networking.k8s.io/v1", func() any { return &networkingv1.NetworkPolicy{} }},
	"ServiceMonitor":      {"monitoring.coreos.com/v1", func() any { return &serviceMonitor{} }},
	"PrometheusRule":      {"monitoring.coreos.com/v1", func() any { return &prometheusRule{} }},
	"ScaledObject":        {"keda.sh/v1alpha1", func() any { return &scaledObject{} }},

	"MutatingWebhookConfiguration": {"admissionregistration.k8s.io/v1", func() any { return &admissionregistrationv1.MutatingWebhookConfiguration{} }},
	"Role":                         {"rbac.authorization.k8s.io/v1", func() any { return &rbacv1.Role{} }},
	"RoleBinding":                  {"rbac.authorization.k8s.io/v1", func() any { return &rbacv1.RoleBinding{} }},
	"ClusterRole":                  {"rbac.authorization.k8s.io/v1", func() any { return &rbacv1.ClusterRole{} }},
	"ClusterRoleBinding":           {"rbac.authorization.k8s.io/v1", func() any { return &rbacv1.ClusterRoleBinding{} }},
	"Certificate":                  {"cert-manager.io/v1", func() any { return &certificate{} }},
	"Issuer":                       {"cert-manager.io/v1", func() any { return &issuer{} }},
}

var sourceLine = regexp.MustCompile(`(?m)^# Source: (.+)$`)

// decodeManifests splits helm's output into documents and decodes each strictly.
func decodeManifests(manifests string) ([]object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	var objs []object
	var errs []error
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("splitting manifests: %w", err)
		}
		obj, err := decodeObject(doc)
		switch {
		case err != nil:
			errs = append(errs, err)
		case obj.Kind != "":
			objs = append(objs, obj)
		}
	}
	return objs, errors.Join(errs...)
}

// decodeObject decodes one document into the struct of its kind, rejecting unknown fields and duplicate
// keys. A document holding only comments yields an empty object.
func decodeObject(doc []byte) (object, error) {
	obj := object{Source: "manifest"}
	if m := sourceLine.FindSubmatch(doc); m != nil {
		obj.Source = string(m[1])
	}
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return obj, fmt.Errorf("%s: parsing YAML: %w", obj.Source, err)
	}
	if head.Kind == "" {
		if strings.TrimSpace(sourceLine.ReplaceAllString(string(doc), "")) != "" {
			return obj, fmt.Errorf("%s: document without a kind:\n%s", obj.Source, doc)
		}
		return obj, nil
	}
	spec, ok := kinds[head.Kind]
	if !ok {
		return obj, fmt.Errorf("%s: kind %s has no typed decoder in the tests", obj.Source, head.Kind)
	}
	if head.APIVersion != spec.apiVersion {
		return obj, fmt.Errorf("%s: %s has apiVersion %q, want %q", obj.Source, head.Kind, head.APIVersion, spec.apiVersion)
	}
	value := spec.newValue()
	if err := yaml.UnmarshalStrict(doc, value); err != nil {
		return obj, fmt.Errorf("%s: decoding %s strictly: %w", obj.Source, head.Kind, err)
	}
	obj.APIVersion, obj.Kind, obj.Name, obj.Labels, obj.Value = head.APIVersion, head.Kind, head.Metadata.Name, head.Metadata.Labels, value
	return obj, nil
}

// all returns the objects of one kind as their typed structs.
func all[T any](objs []object, kind string) []*T {
	var out []*T
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o.Value.(*T))
		}
	}
	return out
}

// only returns the single object of a kind, failing the test when there is not exactly one.
func only[T any](t *testing.T, objs []object, kind string) *T {
	t.Helper()
	found := all[T](objs, kind)
	if len(found) != 1 {
		t.Fatalf("rendered %d %s objects, want 1 (objects: %s)", len(found), kind, describe(objs))
	}
	return found[0]
}

func describe(objs []object) string {
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		names = append(names, o.Kind+"/"+o.Name)
	}
	return strings.Join(names, ", ")
}

// sidecarOf returns the pod spec of the chart's Deployment and its kafka-sidecar container.
func sidecarOf(t *testing.T, objs []object) (corev1.PodSpec, corev1.Container) {
	t.Helper()
	pod := only[appsv1.Deployment](t, objs, "Deployment").Spec.Template.Spec
	for _, c := range pod.InitContainers {
		if c.Name == "kafka-sidecar" {
			return pod, c
		}
	}
	t.Fatalf("no kafka-sidecar in initContainers %v", containerNames(pod.InitContainers))
	return pod, corev1.Container{}
}

func containerNames(cs []corev1.Container) []string {
	names := make([]string, 0, len(cs))
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

// envOf indexes a container's env by name, failing on a name given twice (the last would silently win).
func envOf(t *testing.T, c corev1.Container) map[string]corev1.EnvVar {
	t.Helper()
	env := make(map[string]corev1.EnvVar, len(c.Env))
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("container %s sets %s twice", c.Name, e.Name)
		}
		env[e.Name] = e
	}
	return env
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the chart renders.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string          `json:"port"`
			Path              string          `json:"path"`
			Scheme            string          `json:"scheme"`
			Interval          string          `json:"interval,omitempty"`
			ScrapeTimeout     string          `json:"scrapeTimeout,omitempty"`
			Relabelings       []relabelConfig `json:"relabelings,omitempty"`
			MetricRelabelings []relabelConfig `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// relabelConfig is a Prometheus Operator RelabelConfig.
type relabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  string   `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// prometheusRule is monitoring.coreos.com/v1 PrometheusRule.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name     string     `json:"name"`
			Interval string     `json:"interval,omitempty"`
			Rules    []promRule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// promRule is one alerting or recording rule of a PrometheusRule group.
type promRule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// scaledObject is the part of keda.sh/v1alpha1 ScaledObject the chart renders.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}
