package charts

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ciValues lists the chart's ci/*-values.yaml files; every feature has one.
func ciValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatalf("listing ci values: %v", err)
	}
	if len(files) == 0 {
		t.Fatal("no ci/*-values.yaml files")
	}
	return files
}

func TestLintStrict(t *testing.T) {
	for _, file := range ciValues(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := runHelm(t, "lint", "--strict", "--kube-version", kubeVersion, "--values", file, chartDir)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Fatalf("lint reported problems:\n%s", out)
			}
		})
	}
}

// Brokers, topics and group have no sensible default, so the chart refuses to render without them (or a
// ConfigMap or Secret that may hold them) and names each one.
func TestRenderWithoutRequiredValuesNamesThem(t *testing.T) {
	err := renderError(t, "--set-string", "app.image.repository=app,app.image.tag=1,sidecar.redis.url=redis://r:6379")
	for _, want := range []string{"sidecar.kafka.brokers", "sidecar.kafka.topics", "sidecar.kafka.group", "sidecar.configMap"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s:\n%v", want, err)
		}
	}
}

// Every ci values file renders, every object decodes strictly into its API type, carries the release's
// labels, and the file's feature shows up as the objects it is about.
func TestCIValuesRenderAndDecodeStrictly(t *testing.T) {
	features := map[string][]string{
		"minimal-values.yaml":        {"Deployment", "ServiceAccount", "Service", "Pod"},
		"full-values.yaml":           {"Deployment", "Service"},
		"pdb-values.yaml":            {"PodDisruptionBudget"},
		"servicemonitor-values.yaml": {"ServiceMonitor"},
		"prometheusrule-values.yaml": {"PrometheusRule", "ServiceMonitor"},
		"keda-values.yaml":           {"ScaledObject"},
		"dashboard-values.yaml":      {"ConfigMap"},
		"networkpolicy-values.yaml":  {"NetworkPolicy"},
		"sasl-env-values.yaml":       {"Deployment"},
		"memory-dedup-values.yaml":   {"Deployment"},
		"template-only-values.yaml":  {"PrometheusRule", "ConfigMap"},
		"configmap-values.yaml":      {"Deployment"},
		"decode-values.yaml":         {"Deployment", "NetworkPolicy"},
	}
	files := ciValues(t)
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			want, ok := features[name]
			if !ok {
				t.Fatalf("%s is not listed in this test: add the kinds it must render", name)
			}
			objs := render(t, "--values", file)
			var got []string
			for _, o := range objs {
				got = append(got, o.Kind)
				if o.Name == "" {
					t.Errorf("%s: %s without a name", o.Source, o.Kind)
				}
				if o.Labels["app.kubernetes.io/instance"] != release || o.Labels["helm.sh/chart"] == "" {
					t.Errorf("%s: %s/%s lacks the release labels: %v", o.Source, o.Kind, o.Name, o.Labels)
				}
			}
			for _, kind := range want {
				if !slices.Contains(got, kind) {
					t.Errorf("rendered %v, want a %s", got, kind)
				}
			}
		})
	}
	for name := range features {
		if !slices.Contains(files, filepath.Join(chartDir, "ci", name)) {
			t.Errorf("ci/%s is listed here but missing", name)
		}
	}
}

// The decoder itself must be strict, or every test above proves less than it claims.
func TestDecodeObjectIsStrict(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{"valid", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: 1\n", ""},
		{"comment only", "# Source: kafka-sidecar/templates/validate.yaml\n", ""},
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 1\n", `unknown field "replica"`},
		{"unknown field in a CRD", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: x\nspec:\n  minReplicas: 1\n", `unknown field "minReplicas"`},
		{"duplicate key", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  name: y\n", "already set"},
		{"wrong apiVersion", "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: x\n", `want "policy/v1"`},
		{"unknown kind", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n", "no typed decoder"},
		{"wrong type", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  restartPolicy: [Never]\n", "cannot unmarshal"},
		{"no kind", "metadata:\n  name: x\n", "without a kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeObject([]byte(tt.doc))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("decodeObject: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("decodeObject error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// Values the schema or the chart's checks must refuse, each with a message that names the problem.
func TestRejectedValues(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown top-level key", []string{"--set", "replicaCount=2"}, "additional properties 'replicaCount' not allowed"},
		{"unknown sidecar key", []string{"--set-string", "sidecar.kafka.brokerList=a:9092"}, "additional properties 'brokerList' not allowed"},
		{"unknown secret key", []string{"--set-string", "sidecar.redis.passwordSecret.secretName=x"}, "additional properties 'secretName' not allowed"},
		{"ordering outside its enum", []string{"--set-string", "sidecar.delivery.ordering=random"}, "/sidecar/delivery/ordering"},
		{"dedup mode outside its enum", []string{"--set-string", "sidecar.dedup.mode=etcd"}, "/sidecar/dedup/mode"},
		{"not a duration", []string{"--set-string", "sidecar.app.timeout=30 seconds"}, "/sidecar/app/timeout"},
		{"broker without a port", []string{"--set-string", "sidecar.kafka.brokers[0]=kafka"}, "/sidecar/kafka/brokers/0"},
		{"integer below its minimum", []string{"--set", "sidecar.delivery.maxInFlight=0"}, "/sidecar/delivery/maxInFlight"},
		{"redis url of another scheme", []string{"--set-string", "sidecar.redis.url=http://redis:6379"}, "/sidecar/redis/url"},
		{"redis dedup without a url", []string{"--set-string", "sidecar.redis.url="}, "sidecar.redis.url (or sidecar.redis.urlSecret) is required"},
		{"redis url twice", []string{"--set-string", "sidecar.redis.urlSecret.name=redis-url"}, "keep one"},
		{"shared instance id", []string{"--set", "deployment.replicas=2", "--set-string", "sidecar.kafka.instanceId=one"}, "fence each other"},
		{"memory dedup with replicas", []string{"--set", "deployment.replicas=3", "--set-string", "sidecar.dedup.mode=memory"}, "dedup.mode memory"},
		{"memory dedup with keda", []string{"--set", "keda.enabled=true", "--set-string", "sidecar.dedup.mode=memory"}, "dedup.mode memory"},
		{"keda min above max", []string{"--set", "keda.enabled=true,keda.minReplicaCount=5,keda.maxReplicaCount=2"}, "keda.minReplicaCount"},
		{"pdb with both bounds", []string{"--set", "podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=1,podDisruptionBudget.maxUnavailable=1"}, "not both"},
		{"servicemonitor without admin service", []string{"--set", "serviceMonitor.enabled=true,adminService.enabled=false"}, "needs adminService.enabled"},
		{"app port taken by the sidecar", []string{"--set", "app.ports[0].containerPort=9464"}, "port 9464 is taken by the sidecar"},
		{"metrics port equal to admin port", []string{"--set", "sidecar.metrics.port=9464"}, "must differ from sidecar.admin.port"},
		{"grace period within the drain", []string{"--set", "deployment.terminationGracePeriodSeconds=30", "--set-string", "sidecar.shutdownTimeout=30s"}, "must be larger than the sidecar shutdown timeout (30s)"},
		{"app image missing", []string{"--set-string", "app.image.repository="}, "app.image.repository is required"},
		{"sidecar image without tag or digest", []string{"--set-string", "sidecar.image.tag=", "--set-string", "sidecar.image.digest=sha256:zz"}, "/sidecar/image/digest"},
		{"secret without its key", []string{"--set-string", "sidecar.redis.passwordSecret.name=redis,sidecar.redis.passwordSecret.key="}, `the key of the redis-password Secret "redis" is required`},
		{"kubernetes without native sidecars", []string{"--kube-version", "1.28.0"}, "incompatible with Kubernetes v1.28.0"},
		{"no topics and no ConfigMap", []string{"--set", "sidecar.kafka.topics=null"}, "sidecar.kafka.topics required"},
		{"keda without topics in the values", []string{"--set", "keda.enabled=true,sidecar.kafka.topics=null", "--set-string", "sidecar.configMap=platform"}, "keda.enabled needs sidecar.kafka.brokers, topics and group"},
		{"configMap not an object name", []string{"--set-string", "sidecar.configMap=Platform_Defaults"}, "/sidecar/configMap"},
		{"group protocol outside its enum", []string{"--set-string", "sidecar.kafka.groupProtocol=cooperative"}, "/sidecar/kafka/groupProtocol"},
		{"decode mode outside its enum", []string{"--set-string", "sidecar.decode.mode=avro"}, "/sidecar/decode/mode"},
		{"cloudevents mode outside its enum", []string{"--set-string", "sidecar.cloudEvents.mode=structured"}, "/sidecar/cloudEvents/mode"},
		{"blank cloudevents type", []string{"--set-string", "sidecar.cloudEvents.type=  "}, "/sidecar/cloudEvents/type"},
		{"stall timeout not a duration", []string{"--set-string", "sidecar.stallTimeout=5 minutes"}, "/sidecar/stallTimeout"},
		{"id ttl not a duration", []string{"--set-string", "sidecar.dedup.idTtl=1d"}, "/sidecar/dedup/idTtl"},
		{"memory below its minimum", []string{"--set", "sidecar.dedup.memoryMaxBytes=1024"}, "/sidecar/dedup/memoryMaxBytes"},
		{"registry url of another scheme", []string{"--set-string", "sidecar.schemaRegistry.url=registry:8081"}, "/sidecar/schemaRegistry/url"},
		{"registry url with credentials", []string{"--set-string", "sidecar.schemaRegistry.url=https://user:pw@registry:8081"}, "/sidecar/schemaRegistry/url"},
		{"decode without a registry", []string{"--set-string", "sidecar.decode.mode=json"}, "sidecar.schemaRegistry.url is required"},
		{"registry user without a password", []string{"--set-string", "sidecar.schemaRegistry.username=orders"}, "must be set together"},
		{"registry password without a user", []string{"--set-string", "sidecar.schemaRegistry.passwordSecret.name=registry"}, "must be set together"},
		{"registry ca secret without its key", []string{"--set-string", "sidecar.schemaRegistry.tls.caSecret.name=ca,sidecar.schemaRegistry.tls.caSecret.key="}, `the key of the schema-registry-tls-ca Secret "ca" is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := renderError(t, append([]string{"--values", minimalValues}, tt.args...)...)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error does not contain %q:\n%v", tt.wantErr, err)
			}
		})
	}
}
