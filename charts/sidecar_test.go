package charts

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// contractEnv is every variable the sidecar reads; the chart must be able to set each one from values.
var contractEnv = []string{
	"SIDECAR_KAFKA_BROKERS", "SIDECAR_KAFKA_TOPICS", "SIDECAR_KAFKA_GROUP", "SIDECAR_KAFKA_INSTANCE_ID",
	"SIDECAR_KAFKA_SESSION_TIMEOUT", "SIDECAR_KAFKA_START_OFFSET", "SIDECAR_APP_URL", "SIDECAR_APP_TIMEOUT",
	"SIDECAR_APP_HEALTH_URL", "SIDECAR_ORDERING", "SIDECAR_MAX_IN_FLIGHT", "SIDECAR_ID_HEADER", "SIDECAR_DEDUP",
	"SIDECAR_REDIS_URL", "SIDECAR_DEDUP_TTL", "SIDECAR_RETRY_ATTEMPTS_IN_PLACE", "SIDECAR_RETRY_DELAYS",
	"SIDECAR_DLQ_TOPIC", "SIDECAR_ADMIN_ADDR", "SIDECAR_LOG_LEVEL", "SIDECAR_LOG_FORMAT", "SIDECAR_SHUTDOWN_TIMEOUT", "SIDECAR_STALL_TIMEOUT",
	"SIDECAR_CREATE_TOPICS", "SIDECAR_KAFKA_SASL_MECHANISM", "SIDECAR_KAFKA_SASL_USERNAME",
	"SIDECAR_KAFKA_SASL_PASSWORD_FILE", "SIDECAR_KAFKA_SASL_PASSWORD", "SIDECAR_KAFKA_TLS_ENABLED",
	"SIDECAR_KAFKA_TLS_CA_FILE", "SIDECAR_KAFKA_TLS_CERT_FILE", "SIDECAR_KAFKA_TLS_KEY_FILE",
	"SIDECAR_KAFKA_TLS_SERVER_NAME", "SIDECAR_REDIS_PASSWORD_FILE", "SIDECAR_REDIS_TLS_CA_FILE",
	"SIDECAR_APP_AUTH_TOKEN_FILE",
	"SIDECAR_COMMIT_INTERVAL", "SIDECAR_MAX_BUFFERED_RECORDS", "SIDECAR_MAX_BUFFERED_BYTES",
	"SIDECAR_MAX_RECORD_BYTES", "SIDECAR_REVOKE_TIMEOUT", "SIDECAR_RETRY_BACKOFF", "SIDECAR_RETRY_BACKOFF_MAX",
	"SIDECAR_APP_BACKOFF_MAX", "SIDECAR_DEDUP_KEY_PREFIX", "SIDECAR_DEDUP_LEASE_MARGIN", "SIDECAR_DELIVERY",
	"SIDECAR_BATCH_MAX_RECORDS", "SIDECAR_BATCH_MAX_WAIT", "SIDECAR_DOCTOR_STRICT", "SIDECAR_PPROF", "SIDECAR_METRICS_ADDR",
	"SIDECAR_KAFKA_TLS_MIN_VERSION", "SIDECAR_REDIS_TLS_CERT_FILE", "SIDECAR_REDIS_TLS_KEY_FILE",
	"SIDECAR_APP_TLS_CA_FILE", "SIDECAR_APP_TLS_CERT_FILE", "SIDECAR_APP_TLS_KEY_FILE",
	"SIDECAR_APP_MAX_RESPONSE_BYTES", "SIDECAR_KAFKA_GROUP_PROTOCOL",
	"SIDECAR_SCHEMA_REGISTRY_URL", "SIDECAR_SCHEMA_REGISTRY_USERNAME", "SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE",
	"SIDECAR_SCHEMA_REGISTRY_TLS_CA_FILE", "SIDECAR_DECODE", "SIDECAR_DECODE_KEYS", "SIDECAR_CLOUDEVENTS",
	"SIDECAR_CLOUDEVENTS_TYPE", "SIDECAR_DEDUP_ID_TTL", "SIDECAR_DEDUP_MEMORY_MAX_BYTES",
}

// plainEnv maps a value under `sidecar.` to the variable it sets. The values are those of ci/full-values.yaml,
// so one table checks both ways of passing them: --set flags and a values file (which hands numbers over as
// floats, the reason integers are worth checking there).
var plainEnv = []struct {
	path  string
	value any
	env   string
	want  string
}{
	{"kafka.brokers", []string{"kafka-0.kafka:9093", "kafka-1.kafka:9093", "kafka-2.kafka:9093"}, "SIDECAR_KAFKA_BROKERS", "kafka-0.kafka:9093,kafka-1.kafka:9093,kafka-2.kafka:9093"},
	{"kafka.topics", []string{"orders", "payments"}, "SIDECAR_KAFKA_TOPICS", "orders,payments"},
	{"kafka.group", "orders-app", "SIDECAR_KAFKA_GROUP", "orders-app"},
	{"kafka.sessionTimeout", "20s", "SIDECAR_KAFKA_SESSION_TIMEOUT", "20s"},
	{"kafka.startOffset", "latest", "SIDECAR_KAFKA_START_OFFSET", "latest"},
	{"kafka.groupProtocol", "consumer", "SIDECAR_KAFKA_GROUP_PROTOCOL", "consumer"},
	{"kafka.createTopics", false, "SIDECAR_CREATE_TOPICS", "false"},
	{"kafka.commitInterval", "2s", "SIDECAR_COMMIT_INTERVAL", "2s"},
	{"kafka.maxBufferedRecords", 5000, "SIDECAR_MAX_BUFFERED_RECORDS", "5000"},
	{"kafka.maxBufferedBytes", 16777216, "SIDECAR_MAX_BUFFERED_BYTES", "16777216"},
	{"kafka.maxRecordBytes", 5242880, "SIDECAR_MAX_RECORD_BYTES", "5242880"},
	{"kafka.revokeTimeout", "20s", "SIDECAR_REVOKE_TIMEOUT", "20s"},
	{"kafka.sasl.mechanism", "SCRAM-SHA-512", "SIDECAR_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"},
	{"kafka.sasl.username", "orders-app", "SIDECAR_KAFKA_SASL_USERNAME", "orders-app"},
	{"kafka.tls.enabled", true, "SIDECAR_KAFKA_TLS_ENABLED", "true"},
	{"kafka.tls.minVersion", "1.3", "SIDECAR_KAFKA_TLS_MIN_VERSION", "1.3"},
	{"kafka.tls.serverName", "kafka.internal", "SIDECAR_KAFKA_TLS_SERVER_NAME", "kafka.internal"},
	{"app.url", "https://127.0.0.1:8443/events/{topic}", "SIDECAR_APP_URL", "https://127.0.0.1:8443/events/{topic}"},
	{"app.timeout", "10s", "SIDECAR_APP_TIMEOUT", "10s"},
	{"app.healthUrl", "https://127.0.0.1:8443/healthz", "SIDECAR_APP_HEALTH_URL", "https://127.0.0.1:8443/healthz"},
	{"app.backoffMax", "20s", "SIDECAR_APP_BACKOFF_MAX", "20s"},
	{"app.maxResponseBytes", 2097152, "SIDECAR_APP_MAX_RESPONSE_BYTES", "2097152"},
	{"delivery.mode", "batch", "SIDECAR_DELIVERY", "batch"},
	{"delivery.ordering", "partition", "SIDECAR_ORDERING", "partition"},
	{"delivery.maxInFlight", 32, "SIDECAR_MAX_IN_FLIGHT", "32"},
	{"delivery.batchMaxRecords", 50, "SIDECAR_BATCH_MAX_RECORDS", "50"},
	{"delivery.batchMaxWait", "10ms", "SIDECAR_BATCH_MAX_WAIT", "10ms"},
	{"dedup.mode", "redis", "SIDECAR_DEDUP", "redis"},
	{"dedup.idHeader", "message-id", "SIDECAR_ID_HEADER", "message-id"},
	{"dedup.ttl", "336h", "SIDECAR_DEDUP_TTL", "336h"},
	{"dedup.idTtl", "48h", "SIDECAR_DEDUP_ID_TTL", "48h"},
	{"dedup.memoryMaxBytes", 134217728, "SIDECAR_DEDUP_MEMORY_MAX_BYTES", "134217728"},
	{"dedup.keyPrefix", "orders", "SIDECAR_DEDUP_KEY_PREFIX", "orders"},
	{"dedup.leaseMargin", "15s", "SIDECAR_DEDUP_LEASE_MARGIN", "15s"},
	{"redis.url", "rediss://redis.internal:6380/1", "SIDECAR_REDIS_URL", "rediss://redis.internal:6380/1"},
	{"decode.mode", "json", "SIDECAR_DECODE", "json"},
	{"decode.keys", true, "SIDECAR_DECODE_KEYS", "true"},
	{"schemaRegistry.url", "https://schema-registry.internal:8081", "SIDECAR_SCHEMA_REGISTRY_URL", "https://schema-registry.internal:8081"},
	{"schemaRegistry.username", "orders-app", "SIDECAR_SCHEMA_REGISTRY_USERNAME", "orders-app"},
	{"cloudEvents.mode", "wrap", "SIDECAR_CLOUDEVENTS", "wrap"},
	{"cloudEvents.type", "com.example.orders.record", "SIDECAR_CLOUDEVENTS_TYPE", "com.example.orders.record"},
	{"retry.attemptsInPlace", 5, "SIDECAR_RETRY_ATTEMPTS_IN_PLACE", "5"},
	{"retry.delays", []string{"30s", "5m", "1h"}, "SIDECAR_RETRY_DELAYS", "30s,5m,1h"},
	{"retry.backoff", "100ms", "SIDECAR_RETRY_BACKOFF", "100ms"},
	{"retry.backoffMax", "2s", "SIDECAR_RETRY_BACKOFF_MAX", "2s"},
	{"retry.dlqTopic", "orders-app.dlq", "SIDECAR_DLQ_TOPIC", "orders-app.dlq"},
	{"log.level", "debug", "SIDECAR_LOG_LEVEL", "debug"},
	{"log.format", "console", "SIDECAR_LOG_FORMAT", "console"},
	{"shutdownTimeout", "1m30s", "SIDECAR_SHUTDOWN_TIMEOUT", "1m30s"},
	{"stallTimeout", "10m", "SIDECAR_STALL_TIMEOUT", "10m"},
	{"doctor.strict", true, "SIDECAR_DOCTOR_STRICT", "true"},
	{"pprof", true, "SIDECAR_PPROF", "true"},
	{"admin.port", 9470, "SIDECAR_ADMIN_ADDR", ":9470"},
	{"metrics.port", 9465, "SIDECAR_METRICS_ADDR", ":9465"},
}

// fileEnv maps an existing Secret (its name and one key field under `sidecar.`) to the *_FILE variable that
// points at it inside the container. Values again match ci/full-values.yaml.
var fileEnv = []struct {
	ref, field  string // the Secret reference and the field naming the key inside the Secret
	secret, key string
	env, file   string
}{
	{"kafka.sasl.passwordSecret", "key", "kafka-user-orders", "user-password", "SIDECAR_KAFKA_SASL_PASSWORD_FILE", "/etc/kafka-sidecar/kafka-sasl/password"},
	{"kafka.tls.caSecret", "key", "kafka-cluster-ca", "ca.crt", "SIDECAR_KAFKA_TLS_CA_FILE", "/etc/kafka-sidecar/kafka-tls-ca/ca.crt"},
	{"kafka.tls.clientSecret", "certKey", "kafka-user-orders-tls", "user.crt", "SIDECAR_KAFKA_TLS_CERT_FILE", "/etc/kafka-sidecar/kafka-tls-client/tls.crt"},
	{"kafka.tls.clientSecret", "keyKey", "kafka-user-orders-tls", "user.key", "SIDECAR_KAFKA_TLS_KEY_FILE", "/etc/kafka-sidecar/kafka-tls-client/tls.key"},
	{"redis.passwordSecret", "key", "redis-auth", "redis-password", "SIDECAR_REDIS_PASSWORD_FILE", "/etc/kafka-sidecar/redis-password/password"},
	{"redis.tls.caSecret", "key", "redis-ca", "ca.pem", "SIDECAR_REDIS_TLS_CA_FILE", "/etc/kafka-sidecar/redis-tls-ca/ca.crt"},
	{"redis.tls.clientSecret", "certKey", "redis-client", "client.pem", "SIDECAR_REDIS_TLS_CERT_FILE", "/etc/kafka-sidecar/redis-tls-client/tls.crt"},
	{"redis.tls.clientSecret", "keyKey", "redis-client", "client-key.pem", "SIDECAR_REDIS_TLS_KEY_FILE", "/etc/kafka-sidecar/redis-tls-client/tls.key"},
	{"app.authTokenSecret", "key", "orders-app-token", "token", "SIDECAR_APP_AUTH_TOKEN_FILE", "/etc/kafka-sidecar/app-token/token"},
	{"app.tls.caSecret", "key", "orders-app-ca", "ca.crt", "SIDECAR_APP_TLS_CA_FILE", "/etc/kafka-sidecar/app-tls-ca/ca.crt"},
	{"app.tls.clientSecret", "certKey", "orders-app-client", "tls.crt", "SIDECAR_APP_TLS_CERT_FILE", "/etc/kafka-sidecar/app-tls-client/tls.crt"},
	{"app.tls.clientSecret", "keyKey", "orders-app-client", "tls.key", "SIDECAR_APP_TLS_KEY_FILE", "/etc/kafka-sidecar/app-tls-client/tls.key"},
	{"schemaRegistry.passwordSecret", "key", "schema-registry-orders", "registry-password", "SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE", "/etc/kafka-sidecar/schema-registry-password/password"},
	{"schemaRegistry.tls.caSecret", "key", "schema-registry-ca", "ca.pem", "SIDECAR_SCHEMA_REGISTRY_TLS_CA_FILE", "/etc/kafka-sidecar/schema-registry-tls-ca/ca.crt"},
}

// setFlag turns a table value into the --set flag that passes it with its type.
func setFlag(path string, value any) []string {
	key := "sidecar." + path
	switch v := value.(type) {
	case string:
		return []string{"--set-string", key + "=" + strings.ReplaceAll(v, ",", `\,`)}
	case []string:
		return []string{"--set", key + "={" + strings.Join(v, ",") + "}"}
	case int:
		return []string{"--set", key + "=" + strconv.Itoa(v)}
	case bool:
		return []string{"--set", key + "=" + strconv.FormatBool(v)}
	default:
		panic(fmt.Sprintf("setFlag: unsupported %T", value))
	}
}

// envFromOtherSources names the variables whose value is not a plain value or a Secret file, with the subtest
// of TestSidecarEnvReachesContainer that proves each.
var envFromOtherSources = map[string]string{
	"SIDECAR_KAFKA_INSTANCE_ID":   "instance id from the pod name",
	"SIDECAR_KAFKA_SASL_PASSWORD": "sasl password from a secretKeyRef",
}

// Every contract variable has a case in the tables, so a new variable cannot be forgotten in the chart.
func TestEveryContractVariableHasACase(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range plainEnv {
		covered[c.env] = true
	}
	for _, c := range fileEnv {
		covered[c.env] = true
	}
	for name := range envFromOtherSources {
		covered[name] = true
	}
	for _, name := range contractEnv {
		if !covered[name] {
			t.Errorf("%s: no case sets it from values", name)
		}
		delete(covered, name)
	}
	for name := range covered {
		t.Errorf("%s has a case but is not in contractEnv", name)
	}
}

func TestSidecarEnvReachesContainer(t *testing.T) {
	setArgs := []string{"--values", minimalValues}
	for _, c := range plainEnv {
		setArgs = append(setArgs, setFlag(c.path, c.value)...)
	}
	for _, c := range fileEnv {
		setArgs = append(setArgs, setFlag(c.ref+".name", c.secret)...)
		setArgs = append(setArgs, setFlag(c.ref+"."+c.field, c.key)...)
	}
	sources := []struct {
		name string
		args []string
	}{
		{"set flags", setArgs},
		{"values file", []string{"--values", chartDir + "/ci/full-values.yaml"}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			pod, sidecar := sidecarOf(t, render(t, src.args...))
			env := envOf(t, sidecar)
			for _, c := range plainEnv {
				t.Run(c.env, func(t *testing.T) {
					got, ok := env[c.env]
					switch {
					case !ok:
						t.Fatalf("sidecar.%s=%v does not set %s", c.path, c.value, c.env)
					case got.ValueFrom != nil || got.Value != c.want:
						t.Fatalf("%s = %q (valueFrom %v), want %q", c.env, got.Value, got.ValueFrom, c.want)
					}
				})
			}
			for _, c := range fileEnv {
				t.Run(c.env, func(t *testing.T) {
					got, ok := env[c.env]
					if !ok || got.Value != c.file {
						t.Fatalf("%s = %q, want %q", c.env, got.Value, c.file)
					}
					assertSecretFile(t, pod, sidecar, c.file, c.secret, c.key)
				})
			}
		})
	}

	t.Run("instance id from the pod name", func(t *testing.T) {
		_, sidecar := sidecarOf(t, render(t, "--values", minimalValues, "--set", "sidecar.kafka.staticMembership=true"))
		got := envOf(t, sidecar)["SIDECAR_KAFKA_INSTANCE_ID"]
		if got.ValueFrom == nil || got.ValueFrom.FieldRef == nil || got.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Fatalf("SIDECAR_KAFKA_INSTANCE_ID = %+v, want a fieldRef to metadata.name", got)
		}
	})
	t.Run("literal instance id", func(t *testing.T) {
		_, sidecar := sidecarOf(t, render(t, "--values", minimalValues, "--set-string", "sidecar.kafka.instanceId=orders-0"))
		if got := envOf(t, sidecar)["SIDECAR_KAFKA_INSTANCE_ID"]; got.Value != "orders-0" || got.ValueFrom != nil {
			t.Fatalf("SIDECAR_KAFKA_INSTANCE_ID = %+v, want the value orders-0", got)
		}
	})
	// A Deployment's replaced pod has a new name: a static member ID would leave its partitions unowned for the
	// session timeout on every rollout, so it is off unless asked for.
	t.Run("no static membership by default", func(t *testing.T) {
		_, sidecar := sidecarOf(t, render(t, "--values", minimalValues))
		if got, ok := envOf(t, sidecar)["SIDECAR_KAFKA_INSTANCE_ID"]; ok {
			t.Fatalf("SIDECAR_KAFKA_INSTANCE_ID = %+v, want it unset", got)
		}
	})
	t.Run("redis url from a secretKeyRef", func(t *testing.T) {
		_, sidecar := sidecarOf(t, render(t, "--values", minimalValues,
			"--set-string", "sidecar.redis.url=,sidecar.redis.urlSecret.name=redis-url"))
		got := envOf(t, sidecar)["SIDECAR_REDIS_URL"]
		if got.ValueFrom == nil || got.ValueFrom.SecretKeyRef == nil ||
			got.ValueFrom.SecretKeyRef.Name != "redis-url" || got.ValueFrom.SecretKeyRef.Key != "url" {
			t.Fatalf("SIDECAR_REDIS_URL = %+v, want secretKeyRef redis-url/url", got)
		}
	})
	t.Run("sasl password from a secretKeyRef", func(t *testing.T) {
		pod, sidecar := sidecarOf(t, render(t, "--values", chartDir+"/ci/sasl-env-values.yaml"))
		env := envOf(t, sidecar)
		got := env["SIDECAR_KAFKA_SASL_PASSWORD"]
		if got.ValueFrom == nil || got.ValueFrom.SecretKeyRef == nil ||
			got.ValueFrom.SecretKeyRef.Name != "kafka-credentials" || got.ValueFrom.SecretKeyRef.Key != "password" {
			t.Fatalf("SIDECAR_KAFKA_SASL_PASSWORD = %+v, want secretKeyRef kafka-credentials/password", got)
		}
		if _, ok := env["SIDECAR_KAFKA_SASL_PASSWORD_FILE"]; ok {
			t.Error("the password is passed both as a file and as a variable")
		}
		if len(pod.Volumes) != 0 || len(sidecar.VolumeMounts) != 0 {
			t.Errorf("volumes %v, mounts %v: want none when the password comes from the env", pod.Volumes, sidecar.VolumeMounts)
		}
	})
}

// assertSecretFile checks that file is served, read-only and without subPath (so rotation reaches it), from
// a volume of the Secret's key.
func assertSecretFile(t *testing.T, pod corev1.PodSpec, c corev1.Container, file, secret, key string) {
	t.Helper()
	dir, base := path.Split(file)
	dir = strings.TrimSuffix(dir, "/")
	var mount *corev1.VolumeMount
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == dir {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("no mount at %s in %+v", dir, c.VolumeMounts)
	}
	if !mount.ReadOnly || mount.SubPath != "" || mount.SubPathExpr != "" {
		t.Errorf("mount %+v: want read-only, without subPath", *mount)
	}
	for _, v := range pod.Volumes {
		if v.Name != mount.Name {
			continue
		}
		if v.Secret == nil || v.Secret.SecretName != secret {
			t.Fatalf("volume %s = %+v, want Secret %s", v.Name, v.VolumeSource, secret)
		}
		if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o444 {
			t.Errorf("volume %s defaultMode = %v, want 0444", v.Name, v.Secret.DefaultMode)
		}
		for _, item := range v.Secret.Items {
			if item.Path == base {
				if item.Key != key {
					t.Errorf("%s comes from key %s, want %s", file, item.Key, key)
				}
				return
			}
		}
		t.Fatalf("volume %s has no item for %s: %+v", v.Name, base, v.Secret.Items)
	}
	t.Fatalf("no volume %s in the pod", mount.Name)
}

// Unset values leave the binary's defaults alone: only what is required or derived reaches the env.
func TestSidecarEnvIsLean(t *testing.T) {
	_, sidecar := sidecarOf(t, render(t, "--values", minimalValues))
	got := slices.Sorted(maps.Keys(envOf(t, sidecar)))
	want := []string{"SIDECAR_ADMIN_ADDR", "SIDECAR_KAFKA_BROKERS", "SIDECAR_KAFKA_GROUP", "SIDECAR_KAFKA_TOPICS", "SIDECAR_REDIS_URL"}
	if !slices.Equal(got, want) {
		t.Fatalf("env = %v, want %v", got, want)
	}
}

// An empty delay list is a setting of its own (no retry topics), unlike an unset one (the binary's tiers).
func TestRetryDelaysEmptyListIsRendered(t *testing.T) {
	_, sidecar := sidecarOf(t, render(t, "--values", chartDir+"/ci/memory-dedup-values.yaml"))
	got, ok := envOf(t, sidecar)["SIDECAR_RETRY_DELAYS"]
	if !ok || got.Value != "" {
		t.Fatalf("SIDECAR_RETRY_DELAYS = %+v (set %v), want an empty value", got, ok)
	}
}

func TestExtraEnvAndEnvFromPassThrough(t *testing.T) {
	_, sidecar := sidecarOf(t, render(t, "--values", minimalValues,
		"--set-string", "sidecar.extraEnv[0].name=GOMEMLIMIT,sidecar.extraEnv[0].value=200MiB",
		"--set-string", "sidecar.envFrom[0].configMapRef.name=sidecar-tuning"))
	if got := envOf(t, sidecar)["GOMEMLIMIT"]; got.Value != "200MiB" {
		t.Errorf("GOMEMLIMIT = %+v, want 200MiB", got)
	}
	if len(sidecar.EnvFrom) != 1 || sidecar.EnvFrom[0].ConfigMapRef == nil || sidecar.EnvFrom[0].ConfigMapRef.Name != "sidecar-tuning" {
		t.Errorf("envFrom = %+v, want the sidecar-tuning ConfigMap", sidecar.EnvFrom)
	}
}

// The sidecar is an init container with restartPolicy Always, so it starts before the app and outlives it.
func TestNativeSidecarShape(t *testing.T) {
	objs := render(t, "--values", minimalValues,
		"--set-string", "deployment.extraInitContainers[0].name=migrate,deployment.extraInitContainers[0].image=migrate:1")
	pod, sidecar := sidecarOf(t, objs)

	if names := containerNames(pod.InitContainers); !slices.Equal(names, []string{"migrate", "kafka-sidecar"}) {
		t.Errorf("initContainers = %v, want [migrate kafka-sidecar]: regular init containers finish before the sidecar starts", names)
	}
	if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy = %v, want Always", sidecar.RestartPolicy)
	}
	if names := containerNames(pod.Containers); !slices.Equal(names, []string{"app"}) {
		t.Errorf("containers = %v, want [app]", names)
	}
	if pod.InitContainers[0].RestartPolicy != nil {
		t.Errorf("the regular init container got restartPolicy %v", *pod.InitContainers[0].RestartPolicy)
	}

	t.Run("probes", func(t *testing.T) {
		var adminPort int32
		for _, p := range sidecar.Ports {
			if p.Name == "sidecar-admin" {
				adminPort = p.ContainerPort
			}
		}
		if adminPort != 9464 {
			t.Fatalf("sidecar-admin port = %d, want 9464", adminPort)
		}
		probes := []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{
			{"liveness", sidecar.LivenessProbe, "/healthz"},
			{"readiness", sidecar.ReadinessProbe, "/readyz"},
			// Startup gates the app, and /readyz needs the app: startup on /readyz would never pass.
			{"startup", sidecar.StartupProbe, "/healthz"},
		}
		for _, p := range probes {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s probe = %+v, want an httpGet", p.name, p.probe)
				continue
			}
			if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.StrVal != "sidecar-admin" {
				t.Errorf("%s probe = %s on %s, want %s on sidecar-admin", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
			}
			if p.probe.PeriodSeconds < 1 || p.probe.FailureThreshold < 1 || p.probe.TimeoutSeconds < 1 {
				t.Errorf("%s probe timings %+v: want all set", p.name, p.probe.ProbeHandler)
			}
		}
	})

	t.Run("security", func(t *testing.T) {
		// The sidecar is locked down; the app's container and the pod are left to the app (see
		// TestAppContainerIsRenderedAsGiven).
		for _, c := range []corev1.Container{sidecar} {
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s: no securityContext", c.Name)
			case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
				t.Errorf("%s: runAsNonRoot not true", c.Name)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: root filesystem writable", c.Name)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: privilege escalation allowed", c.Name)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("%s: capabilities %+v, want all dropped", c.Name, sc.Capabilities)
			}
		}
		if sc := sidecar.SecurityContext; sc != nil && (sc.RunAsUser == nil || *sc.RunAsUser == 0) {
			t.Errorf("sidecar runAsUser = %v, want a non-root uid", sc.RunAsUser)
		}
		if sc := sidecar.SecurityContext; sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("sidecar seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
		}
		if psc := pod.SecurityContext; psc != nil {
			t.Errorf("pod securityContext = %+v, want none: it would apply to the app's container too", psc)
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Error("the pods mount an API token they do not need")
		}
		if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
			t.Error("service links are on: other Services' variables would reach the sidecar's env")
		}
	})
}

func TestSidecarImage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"appVersion by default", nil, "ghcr.io/kafka-sidecar/kafka-sidecar:0.1.0"},
		{"tag", []string{"--set-string", "sidecar.image.tag=1.2.3"}, "ghcr.io/kafka-sidecar/kafka-sidecar:1.2.3"},
		{"digest wins", []string{"--set-string", "sidecar.image.tag=1.2.3,sidecar.image.digest=sha256:" + strings.Repeat("ab", 32)}, "ghcr.io/kafka-sidecar/kafka-sidecar@sha256:" + strings.Repeat("ab", 32)},
		{"repository", []string{"--set-string", "sidecar.image.repository=mirror.example.com/kafka-sidecar"}, "mirror.example.com/kafka-sidecar:0.1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, sidecar := sidecarOf(t, render(t, append([]string{"--values", minimalValues}, tt.args...)...))
			if sidecar.Image != tt.want {
				t.Fatalf("image = %s, want %s", sidecar.Image, tt.want)
			}
		})
	}
}

// The grace period must outlast the drain, or the kubelet kills the sidecar before it commits.
func TestTerminationGracePeriod(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		drainSecs int64
		want      int64
	}{
		{"default drain", nil, 30, 45},
		{"seconds", []string{"--set-string", "sidecar.shutdownTimeout=30s"}, 30, 45},
		{"minutes", []string{"--set-string", "sidecar.shutdownTimeout=2m"}, 120, 135},
		{"compound", []string{"--set-string", "sidecar.shutdownTimeout=1m30s"}, 90, 105},
		{"fraction rounds up", []string{"--set-string", "sidecar.shutdownTimeout=1500ms"}, 2, 17},
		{"decimal", []string{"--set-string", "sidecar.shutdownTimeout=1.5m"}, 90, 105},
		{"hours", []string{"--set-string", "sidecar.shutdownTimeout=1h"}, 3600, 3615},
		{"own margin", []string{"--set-string", "sidecar.shutdownTimeout=10s", "--set", "deployment.terminationGraceMarginSeconds=5"}, 10, 15},
		{"explicit", []string{"--set-string", "sidecar.shutdownTimeout=1m", "--set", "deployment.terminationGracePeriodSeconds=120"}, 60, 120},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod, _ := sidecarOf(t, render(t, append([]string{"--values", minimalValues}, tt.args...)...))
			got := pod.TerminationGracePeriodSeconds
			if got == nil || *got != tt.want {
				t.Fatalf("terminationGracePeriodSeconds = %v, want %d", got, tt.want)
			}
			if *got <= tt.drainSecs {
				t.Fatalf("terminationGracePeriodSeconds %d does not outlast the %ds drain", *got, tt.drainSecs)
			}
		})
	}
}
