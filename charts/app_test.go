package charts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kafka-sidecar/kafka-sidecar/test/kubevalidate"
)

// appContainer renders the chart and returns its app container and pod spec.
func appContainer(t *testing.T, args ...string) (corev1.Container, corev1.PodSpec) {
	t.Helper()
	pod := only[appsv1.Deployment](t, render(t, args...), "Deployment").Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("containers %v, want the app only", containerNames(pod.Containers))
	}
	return pod.Containers[0], pod
}

func sameContainer(t *testing.T, got, want corev1.Container) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("the app container is not the one given:\n got: %s\nwant: %s", g, w)
	}
}

// TestAppContainerIsRenderedAsGiven: every app field the chart takes reaches the container as written, a
// root user and a writable root filesystem included, and the chart adds nothing the user did not ask for.
func TestAppContainerIsRenderedAsGiven(t *testing.T) {
	const given = `
name: worker
image: registry.example.com/worker:3.1.0
imagePullPolicy: Always
command: [/bin/worker]
args: [--listen=:8080]
ports:
  - {name: http, containerPort: 8080, protocol: TCP}
env:
  - {name: MODE, value: consume}
  - name: DB_PASSWORD
    valueFrom: {secretKeyRef: {name: worker-db, key: password}}
envFrom:
  - configMapRef: {name: worker-settings}
startupProbe: {httpGet: {path: /started, port: http}, failureThreshold: 30}
livenessProbe: {httpGet: {path: /live, port: http}}
readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 3}
lifecycle: {preStop: {exec: {command: [sleep, "5"]}}}
resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {memory: 1Gi}}
securityContext: {runAsUser: 0, runAsNonRoot: false}
volumeMounts:
  - {name: scratch, mountPath: /tmp}
`
	var want corev1.Container
	if err := yaml.UnmarshalStrict([]byte(given), &want); err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := yaml.Unmarshal([]byte(given), &c); err != nil {
		t.Fatal(err)
	}
	values := map[string]any{
		"app": map[string]any{
			"name":    c["name"],
			"image":   map[string]any{"repository": "registry.example.com/worker", "tag": "3.1.0", "pullPolicy": "Always"},
			"command": c["command"], "args": c["args"], "ports": c["ports"], "env": c["env"], "envFrom": c["envFrom"],
			"startupProbe": c["startupProbe"], "livenessProbe": c["livenessProbe"], "readinessProbe": c["readinessProbe"],
			"lifecycle": c["lifecycle"], "resources": c["resources"], "securityContext": c["securityContext"],
			"volumeMounts": c["volumeMounts"],
		},
		"deployment": map[string]any{"extraVolumes": []any{map[string]any{"name": "scratch", "emptyDir": map[string]any{}}}},
	}
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "app-values.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ := appContainer(t, "--values", minimalValues, "--values", file)
	sameContainer(t, got, want)

	t.Run("defaults add nothing", func(t *testing.T) {
		got, pod := appContainer(t, "--values", minimalValues)
		sameContainer(t, got, corev1.Container{
			Name:            "app",
			Image:           "registry.example.com/orders-app:1.4.2",
			ImagePullPolicy: corev1.PullIfNotPresent,
			Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		})
		if pod.SecurityContext != nil {
			t.Fatalf("pod securityContext %+v: it would apply to the app's container", pod.SecurityContext)
		}
	})
}

// TestCIRendersPassKubernetesSchemas validates every ci/*.yaml render against the Kubernetes JSON schemas
// (operator kinds, which the schemas do not cover, are decoded strictly by TestCIValuesRenderAndDecodeStrictly).
func TestCIRendersPassKubernetesSchemas(t *testing.T) {
	bin := kubevalidate.Path(t)
	for _, file := range ciValues(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := templateChart(t, chartDir, "--values", file)
			if err != nil {
				t.Fatal(err)
			}
			kubevalidate.Manifests(t, bin, kubevalidate.NativeSidecarVersion, filepath.Base(file), out)
		})
	}
}
