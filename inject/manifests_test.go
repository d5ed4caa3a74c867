package inject_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
	"github.com/kafka-sidecar/kafka-sidecar/test/kubevalidate"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// corpus returns the input manifests, by name.
func corpus(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/in/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("the corpus has %d manifests, want at least 10", len(files))
	}
	out := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = data
	}
	return out
}

func testConfig(t *testing.T) inject.Config {
	t.Helper()
	cfg, err := inject.LoadConfig("testdata/defaults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func run(t *testing.T, in []byte, cfg inject.Config) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := inject.Manifests(bytes.NewReader(in), &out, cfg); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func goldenPath(name string) string {
	return filepath.Join("testdata", "golden", strings.TrimSuffix(name, filepath.Ext(name))+".yaml")
}

func TestGolden(t *testing.T) {
	cfg := testConfig(t)
	for name, in := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			got := run(t, in, cfg)
			path := goldenPath(name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./inject -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (rerun with -update after checking the change):\n%s", path, got)
			}
		})
	}
}

func TestInjectingTwiceEqualsOnce(t *testing.T) {
	cfg := testConfig(t)
	for name, in := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			once := run(t, in, cfg)
			twice := run(t, once, cfg)
			if !bytes.Equal(once, twice) {
				t.Errorf("second injection changed the output:\n--- once\n%s\n--- twice\n%s", once, twice)
			}
		})
	}
}

// docs splits manifests into documents, decoded generically, with their raw bytes.
func docs(t *testing.T, data []byte) ([]map[string]any, [][]byte) {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []map[string]any
	var raws [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, raws
		}
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if obj == nil {
			continue
		}
		objs = append(objs, obj)
		raws = append(raws, doc)
	}
}

// podSpecs returns the pod specs of an object (each item of a List), keyed by a description.
func podSpecs(obj map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	var walk func(prefix string, o map[string]any)
	walk = func(prefix string, o map[string]any) {
		if items, ok := o["items"].([]any); ok {
			for i, it := range items {
				if m, ok := it.(map[string]any); ok {
					walk(prefix+"/item"+string(rune('0'+i)), m)
				}
			}
			return
		}
		paths := map[string][]string{
			"Pod":     {"spec"},
			"CronJob": {"spec", "jobTemplate", "spec", "template", "spec"},
		}
		path, ok := paths[o["kind"].(string)]
		if !ok {
			path = []string{"spec", "template", "spec"}
		}
		cur := o
		for _, k := range path {
			next, ok := cur[k].(map[string]any)
			if !ok {
				return
			}
			cur = next
		}
		out[prefix+"/"+o["kind"].(string)] = cur
	}
	walk("", obj)
	return out
}

// TestEverythingButTheSidecarUnchanged removes the injected container from every output and compares the
// rest with the input: the app containers (compared on their own, encoded, byte for byte), the existing
// init containers, volumes, security contexts and every other field.
func TestEverythingButTheSidecarUnchanged(t *testing.T) {
	cfg := testConfig(t)
	for name, in := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			out := run(t, in, cfg)
			inObjs, inRaw := docs(t, in)
			outObjs, outRaw := docs(t, out)
			if len(inObjs) != len(outObjs) {
				t.Fatalf("%d documents in, %d out", len(inObjs), len(outObjs))
			}
			for i := range inObjs {
				inSpecs, outSpecs := podSpecs(inObjs[i]), podSpecs(outObjs[i])
				injected := false
				for key, spec := range outSpecs {
					for _, field := range []string{"containers", "initContainers"} {
						before, _ := json.Marshal(inSpecs[key][field])
						items, _ := spec[field].([]any)
						var kept []any
						for _, c := range items {
							if c.(map[string]any)["name"] == inject.ContainerName && field == "initContainers" {
								if !strings.Contains(string(before), `"name":"kafka-sidecar"`) {
									injected = true
								}
								continue
							}
							kept = append(kept, c)
						}
						if field == "initContainers" {
							if len(kept) == 0 {
								delete(spec, field)
							} else {
								spec[field] = kept
							}
							if inSpecs[key][field] != nil {
								inItems := inSpecs[key][field].([]any)
								var inKept []any
								for _, c := range inItems {
									if c.(map[string]any)["name"] != inject.ContainerName {
										inKept = append(inKept, c)
									}
								}
								if len(inKept) == 0 {
									delete(inSpecs[key], field)
								} else {
									inSpecs[key][field] = inKept
								}
							}
							continue
						}
						after, _ := json.Marshal(kept)
						if !bytes.Equal(before, after) {
							t.Errorf("document %d %s: app containers changed:\n in: %s\nout: %s", i+1, key, before, after)
						}
					}
				}
				a, _ := json.Marshal(inObjs[i])
				b, _ := json.Marshal(outObjs[i])
				if !bytes.Equal(a, b) {
					t.Errorf("document %d: more than the sidecar changed:\n in: %s\nout: %s", i+1, a, b)
				}
				if !injected && !bytes.Equal(inRaw[i], outRaw[i]) {
					t.Errorf("document %d was not injected but its bytes changed:\n in: %s\nout: %s", i+1, inRaw[i], outRaw[i])
				}
			}
		})
	}
}

// TestOutputsPassKubernetesSchemas validates every golden file against the Kubernetes 1.29 JSON schemas (the
// first version with native sidecars on by default), and checks that the validator does look: the same
// injected workloads fail against 1.27, which has no restartPolicy on containers.
func TestOutputsPassKubernetesSchemas(t *testing.T) {
	bin := kubevalidate.Path(t)
	files, err := filepath.Glob("testdata/golden/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files (%v)", err)
	}
	kubevalidate.Files(t, bin, kubevalidate.NativeSidecarVersion, files...)
	err = kubevalidate.Check(bin, "1.27.0", goldenPath("statefulset.yaml"))
	if err == nil || !strings.Contains(err.Error(), "restartPolicy") {
		t.Fatalf("kubernetes-validate against 1.27 accepted a native sidecar (err %v): the check cannot fail", err)
	}
}

// sidecarOf injects one manifest and returns the sidecar container of its (only) pod template.
func sidecarOf(t *testing.T, manifest string, cfg inject.Config) corev1.Container {
	t.Helper()
	out := run(t, []byte(manifest), cfg)
	objs, _ := docs(t, out)
	for _, spec := range podSpecs(objs[0]) {
		data, _ := json.Marshal(spec)
		var ps corev1.PodSpec
		if err := json.Unmarshal(data, &ps); err != nil {
			t.Fatal(err)
		}
		for _, c := range ps.InitContainers {
			if c.Name == inject.ContainerName {
				return c
			}
		}
	}
	t.Fatalf("no sidecar in:\n%s", out)
	return corev1.Container{}
}

func env(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func TestStaticMembershipOnlyWithStableNames(t *testing.T) {
	cfg := testConfig(t)
	corpus := corpus(t)
	for name, want := range map[string]bool{
		"statefulset.yaml":                true,
		"statefulset-pod.yaml":            true,
		"deployment-multi-container.yaml": false,
		"daemonset.yaml":                  false,
		"cronjob.yaml":                    false,
		"pod-root-image.yaml":             false,
	} {
		t.Run(name, func(t *testing.T) {
			c := sidecarOf(t, string(corpus[name]), cfg)
			id, ok := env(c)["SIDECAR_KAFKA_INSTANCE_ID"]
			if ok != want {
				t.Fatalf("SIDECAR_KAFKA_INSTANCE_ID present=%v, want %v", ok, want)
			}
			if ok && (id.ValueFrom == nil || id.ValueFrom.FieldRef == nil || id.ValueFrom.FieldRef.FieldPath != "metadata.name") {
				t.Fatalf("SIDECAR_KAFKA_INSTANCE_ID = %+v, want the pod name", id)
			}
		})
	}
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  namespace: ns
spec:
  selector:
    matchLabels: {app: d}
  template:
    metadata:
      labels: {app: d}
      annotations:
%s
    spec:
      containers:
        - name: app
          image: app:1
          ports:
            - containerPort: 8080
`

func withAnnotations(lines ...string) string {
	for i, l := range lines {
		lines[i] = "        " + l
	}
	return strings.Replace(deployment, "%s", strings.Join(lines, "\n"), 1)
}

func TestConfiguration(t *testing.T) {
	base := []string{`kafka-sidecar.io/inject: "true"`, `kafka-sidecar.io/topics: a`, `kafka-sidecar.io/group: g`}
	cfg := inject.Config{Defaults: inject.Defaults{Brokers: "k:9092", Env: map[string]string{"SIDECAR_KAFKA_GROUP": "default-group", "SIDECAR_DEDUP": "memory"}}}
	c := sidecarOf(t, withAnnotations(append(base,
		`kafka-sidecar.io/static-membership: "true"`,
		`kafka-sidecar.io/image: registry.example.com/ks:2`,
		`kafka-sidecar.io/memory-request: 100Mi`,
		`kafka-sidecar.io/memory-limit: 1Gi`,
		`kafka-sidecar.io/config-map: mine`,
	)...), cfg)
	e := env(c)
	for name, want := range map[string]string{
		"SIDECAR_KAFKA_BROKERS": "k:9092",
		"SIDECAR_KAFKA_TOPICS":  "a",
		"SIDECAR_KAFKA_GROUP":   "g", // the annotation wins over the defaults' env
		"SIDECAR_DEDUP":         "memory",
		"SIDECAR_ADMIN_ADDR":    ":9464",
	} {
		if e[name].Value != want {
			t.Errorf("%s = %q, want %q", name, e[name].Value, want)
		}
	}
	if _, ok := e["SIDECAR_KAFKA_INSTANCE_ID"]; !ok {
		t.Error("static-membership true on a Deployment: no SIDECAR_KAFKA_INSTANCE_ID")
	}
	if c.Image != "registry.example.com/ks:2" {
		t.Errorf("image %q", c.Image)
	}
	if got := c.Resources.Limits.Memory().String(); got != "1Gi" {
		t.Errorf("memory limit %s", got)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "mine" || c.EnvFrom[0].ConfigMapRef.Optional != nil {
		t.Errorf("envFrom %+v, want the pod's ConfigMap, not optional", c.EnvFrom)
	}
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("restartPolicy %v, want Always (a native sidecar)", c.RestartPolicy)
	}

	// The defaults' ConfigMap comes first and is optional, so the pod's own wins and a namespace may lack it.
	cfg = inject.Config{Defaults: inject.Defaults{ConfigMap: "platform"}}
	c = sidecarOf(t, withAnnotations(`kafka-sidecar.io/inject: "true"`, `kafka-sidecar.io/config-map: mine`), cfg)
	if len(c.EnvFrom) != 2 || c.EnvFrom[0].ConfigMapRef.Name != "platform" || c.EnvFrom[0].ConfigMapRef.Optional == nil || c.EnvFrom[1].ConfigMapRef.Name != "mine" {
		t.Errorf("envFrom %+v, want platform (optional) then mine", c.EnvFrom)
	}
}

// TestChangedAnnotationReplacesTheSidecarInPlace: re-injecting after an annotation changed updates the
// existing container where it is, without adding a second one.
func TestChangedAnnotationReplacesTheSidecarInPlace(t *testing.T) {
	cfg := testConfig(t)
	in, err := os.ReadFile("testdata/in/already-injected.yaml")
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(in, []byte("kafka-sidecar.io/topics: invoices"), []byte("kafka-sidecar.io/topics: invoices,credit-notes"), 1)
	c := sidecarOf(t, string(changed), cfg)
	if got := env(c)["SIDECAR_KAFKA_TOPICS"].Value; got != "invoices,credit-notes" {
		t.Fatalf("topics %q after the annotation changed", got)
	}
	out := run(t, changed, cfg)
	if n := bytes.Count(out, []byte("name: "+inject.ContainerName+"\n")); n != 1 {
		t.Fatalf("%d sidecar containers, want 1:\n%s", n, out)
	}
	if strings.Index(string(out), "name: migrate") > strings.Index(string(out), "name: "+inject.ContainerName+"\n") {
		t.Fatalf("the sidecar moved before the migration init container:\n%s", out)
	}
}

func TestBadInputNamesTheAnnotationAndWritesNothing(t *testing.T) {
	base := []string{`kafka-sidecar.io/inject: "true"`, `kafka-sidecar.io/brokers: k:9092`, `kafka-sidecar.io/topics: a`, `kafka-sidecar.io/group: g`}
	for _, tc := range []struct {
		name       string
		annotation []string
		want       string
	}{
		{"inject not a boolean", []string{`kafka-sidecar.io/inject: "yes"`}, "kafka-sidecar.io/inject"},
		{"inject unquoted", []string{`kafka-sidecar.io/inject: true`}, "kafka-sidecar.io/inject"},
		{"unknown name", append(base, `kafka-sidecar.io/topic: a`), "kafka-sidecar.io/topic:"},
		{"bad topic", append(base[:2:2], `kafka-sidecar.io/topics: "a,b c"`, `kafka-sidecar.io/group: g`), "kafka-sidecar.io/topics"},
		{"empty topic", append(base[:2:2], `kafka-sidecar.io/topics: "a,,b"`, `kafka-sidecar.io/group: g`), "kafka-sidecar.io/topics"},
		{"bad broker", append(base[1:], `kafka-sidecar.io/inject: "true"`, `kafka-sidecar.io/brokers: kafka`), "kafka-sidecar.io/brokers"},
		{"bad port", append(base, `kafka-sidecar.io/app-port: "http"`), "kafka-sidecar.io/app-port"},
		{"port and url", append(base, `kafka-sidecar.io/app-port: "80"`, `kafka-sidecar.io/app-url: http://x/`), "kafka-sidecar.io/app-url"},
		{"bad url", append(base, `kafka-sidecar.io/app-url: ftp://x/`), "kafka-sidecar.io/app-url"},
		{"bad configmap", append(base, `kafka-sidecar.io/config-map: Not_A_Name`), "kafka-sidecar.io/config-map"},
		{"bad quantity", append(base, `kafka-sidecar.io/memory-limit: lots`), "kafka-sidecar.io/memory-limit"},
		{"request over limit", append(base, `kafka-sidecar.io/memory-request: 2Gi`), "kafka-sidecar.io/memory-request"},
		{"static membership", append(base, `kafka-sidecar.io/static-membership: "sometimes"`), "kafka-sidecar.io/static-membership"},
		{"admin port taken", append(base, `kafka-sidecar.io/admin-port: "8080"`), "kafka-sidecar.io/admin-port"},
		{"on the workload instead of the template", nil, "put it on the pod template (spec.template.metadata.annotations)"},
		{"topics missing", []string{`kafka-sidecar.io/inject: "true"`, `kafka-sidecar.io/brokers: k:9092`, `kafka-sidecar.io/group: g`}, "kafka-sidecar.io/topics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			manifest := "apiVersion: v1\nkind: Service\nmetadata: {name: before}\n---\n" + withAnnotations(tc.annotation...)
			if tc.annotation == nil {
				manifest = strings.Replace(withAnnotations(`other: x`), "  namespace: ns\n", "  namespace: ns\n  annotations:\n    kafka-sidecar.io/inject: \"true\"\n", 1)
			}
			var out bytes.Buffer
			err := inject.Manifests(strings.NewReader(manifest), &out, inject.Config{})
			var aerr *inject.AnnotationError
			if !errors.As(err, &aerr) {
				t.Fatalf("err = %v, want an *AnnotationError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Deployment ns/d") {
				t.Fatalf("error %q does not name %s in Deployment ns/d", err, tc.want)
			}
			if out.Len() != 0 {
				t.Fatalf("wrote %d bytes despite the error", out.Len())
			}
		})
	}
}

// FuzzManifests: no input makes Manifests panic; what it accepts, it accepts again unchanged (idempotence on
// arbitrary input), and on error it writes nothing.
func FuzzManifests(f *testing.F) {
	files, _ := filepath.Glob("testdata/in/*")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("kind: List\nitems: [1, {kind: Pod, apiVersion: v1, metadata: {annotations: {kafka-sidecar.io/inject: \"true\"}}, spec: {}}]"))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {annotations: {kafka-sidecar.io/inject: \"true\", kafka-sidecar.io/config-map: c}}\nspec: {containers: [{name: a, ports: [{containerPort: 9464.5}]}], initContainers: 3}"))
	cfg := inject.Config{Defaults: inject.Defaults{Image: "i:1"}}
	f.Fuzz(func(t *testing.T, in []byte) {
		var once bytes.Buffer
		if err := inject.Manifests(bytes.NewReader(in), &once, cfg); err != nil {
			if once.Len() != 0 {
				t.Fatalf("wrote %d bytes despite %v", once.Len(), err)
			}
			return
		}
		var twice bytes.Buffer
		if err := inject.Manifests(bytes.NewReader(once.Bytes()), &twice, cfg); err != nil {
			t.Fatalf("the output of a successful run fails: %v\n%s", err, once.Bytes())
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("not idempotent:\n--- once\n%s\n--- twice\n%s", once.Bytes(), twice.Bytes())
		}
	})
}

// TestInjectionOnlyAddsLines: in a YAML document, injection keeps every line as it was (key order, comments,
// quoting, flow style) and only adds the sidecar's: the input's lines are a subsequence of the output's.
func TestInjectionOnlyAddsLines(t *testing.T) {
	cfg := testConfig(t)
	for name, in := range corpus(t) {
		if bytes.HasPrefix(bytes.TrimSpace(in), []byte("{")) {
			continue // JSON comes back as YAML
		}
		t.Run(name, func(t *testing.T) {
			out := strings.Split(string(run(t, in, cfg)), "\n")
			j := 0
			for _, line := range strings.Split(string(in), "\n") {
				for j < len(out) && out[j] != line {
					j++
				}
				if j == len(out) {
					t.Fatalf("input line %q is missing or out of order in the output", line)
				}
				j++
			}
		})
	}
}

// BenchmarkManifests: one Deployment with three containers, injected (what `inject` does per workload).
func BenchmarkManifests(b *testing.B) {
	in, err := os.ReadFile("testdata/in/deployment-multi-container.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cfg := inject.Config{Defaults: inject.Defaults{Brokers: "kafka:9092"}}
	b.ReportAllocs()
	for b.Loop() {
		if err := inject.Manifests(bytes.NewReader(in), io.Discard, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
