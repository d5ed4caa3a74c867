package charts

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

func ciFile(name string) string { return filepath.Join(chartDir, "ci", name) }

// podLabels returns the labels of the Deployment's pods.
func podLabels(t *testing.T, objs []object) labels.Set {
	t.Helper()
	return only[appsv1.Deployment](t, objs, "Deployment").Spec.Template.Labels
}

// selects reports whether a label selector map picks pods with the given labels.
func selects(selector map[string]string, pod labels.Set) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(pod)
}

func serviceNamed(t *testing.T, objs []object, name string) *corev1.Service {
	t.Helper()
	for _, s := range all[corev1.Service](objs, "Service") {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s among %s", name, describe(objs))
	return nil
}

// Services select the pods and target ports that exist on the containers.
func TestServices(t *testing.T) {
	objs := render(t, "--values", ciFile("full-values.yaml"))
	pod, sidecar := sidecarOf(t, objs)
	podSet := podLabels(t, objs)
	ports := map[string]int32{}
	for _, c := range append(pod.Containers, sidecar) {
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
	}
	tests := []struct {
		service string
		ports   map[string]string // Service port name -> container port name
	}{
		{"rel-kafka-sidecar", map[string]string{"http": "http"}},
		{"rel-kafka-sidecar-admin", map[string]string{"admin": "sidecar-admin", "metrics": "sidecar-metrics"}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			svc := serviceNamed(t, objs, tt.service)
			if !selects(svc.Spec.Selector, podSet) {
				t.Errorf("selector %v does not pick the pods %v", svc.Spec.Selector, podSet)
			}
			got := map[string]string{}
			for _, p := range svc.Spec.Ports {
				got[p.Name] = p.TargetPort.StrVal
				if _, ok := ports[p.TargetPort.StrVal]; !ok {
					t.Errorf("port %s targets %q, which no container has", p.Name, p.TargetPort.String())
				}
			}
			if !maps.Equal(got, tt.ports) {
				t.Errorf("ports = %v, want %v", got, tt.ports)
			}
		})
	}
}

func TestServiceMonitorScrapesTheAdminService(t *testing.T) {
	tests := []struct {
		name string
		args []string
		port string
	}{
		{"metrics on the admin port", []string{"--values", minimalValues, "--set", "serviceMonitor.enabled=true"}, "admin"},
		{"separate metrics port", []string{"--values", ciFile("servicemonitor-values.yaml")}, "metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := render(t, tt.args...)
			sm := only[serviceMonitor](t, objs, "ServiceMonitor")
			admin := serviceNamed(t, objs, "rel-kafka-sidecar-admin")
			if !selects(sm.Spec.Selector.MatchLabels, admin.Labels) {
				t.Errorf("selector %v does not pick the admin Service %v", sm.Spec.Selector.MatchLabels, admin.Labels)
			}
			if app := all[corev1.Service](objs, "Service"); len(app) > 1 {
				t.Errorf("more than the admin Service rendered: %s", describe(objs))
			}
			if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
				t.Errorf("namespaceSelector = %v, want [%s]", sm.Spec.NamespaceSelector.MatchNames, namespace)
			}
			if len(sm.Spec.Endpoints) != 1 {
				t.Fatalf("endpoints = %+v, want one", sm.Spec.Endpoints)
			}
			ep := sm.Spec.Endpoints[0]
			if ep.Port != tt.port || ep.Path != "/metrics" {
				t.Errorf("endpoint scrapes %s on port %s, want /metrics on %s", ep.Path, ep.Port, tt.port)
			}
			if !slices.ContainsFunc(admin.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				t.Errorf("the admin Service has no port %s", ep.Port)
			}
		})
	}
}

func TestPrometheusRuleAlerts(t *testing.T) {
	objs := render(t, "--values", ciFile("prometheusrule-values.yaml"))
	rule := only[prometheusRule](t, objs, "PrometheusRule")
	if len(rule.Spec.Groups) != 1 {
		t.Fatalf("groups = %d, want 1", len(rule.Spec.Groups))
	}
	exprs := map[string]string{}
	for _, r := range rule.Spec.Groups[0].Rules {
		exprs[r.Alert] = r.Expr
		if !balanced(r.Expr) {
			t.Errorf("%s: unbalanced brackets in %q", r.Alert, r.Expr)
		}
		if r.Labels["severity"] == "" {
			t.Errorf("%s: no severity", r.Alert)
		}
	}
	selector := `namespace="orders",job="rel-kafka-sidecar-admin"`
	tests := []struct {
		alert string
		want  []string
	}{
		{"KafkaSidecarConsumerLagGrowing", []string{"kafka_sidecar_consumer_lag{" + selector + `,topic!~".+\\.retry\\.[0-9]+"}`, "> 5000", "deriv("}},
		{"KafkaSidecarLagSeconds", []string{"kafka_sidecar_consumer_lag_seconds{" + selector + `,topic!~".+\\.retry\\.[0-9]+"}`, "> 600"}},
		{"KafkaSidecarAbsent", []string{"absent(kafka_sidecar_build_info{" + selector + "})"}},
		{"KafkaSidecarDeadLettering", []string{"kafka_sidecar_records_total{" + selector + `,outcome="dead_lettered"}`, "> 0"}},
		{"KafkaSidecarAppDown", []string{"kafka_sidecar_app_up{" + selector + "}", "== 0"}},
		{"KafkaSidecarDoctorFail", []string{"kafka_sidecar_doctor_check{" + selector + `,status="FAIL"}`}},
		{"KafkaSidecarNothingDelivered", []string{`outcome="delivered"`}},
	}
	for _, tt := range tests {
		t.Run(tt.alert, func(t *testing.T) {
			expr, ok := exprs[tt.alert]
			if !ok {
				t.Fatalf("no alert %s among %v", tt.alert, slices.Sorted(maps.Keys(exprs)))
			}
			for _, w := range tt.want {
				if !strings.Contains(expr, w) {
					t.Errorf("expr %q lacks %q", expr, w)
				}
			}
		})
	}
	for _, r := range rule.Spec.Groups[0].Rules {
		if r.Alert != "KafkaSidecarNothingDelivered" && r.Labels["team"] != "orders" {
			t.Errorf("%s: labels %v lack the alertLabels", r.Alert, r.Labels)
		}
	}

	t.Run("alerts switch off one by one", func(t *testing.T) {
		objs := render(t, "--values", minimalValues, "--set", "prometheusRule.enabled=true,prometheusRule.appDown.enabled=false")
		rules := only[prometheusRule](t, objs, "PrometheusRule").Spec.Groups[0].Rules
		if len(rules) != len(alertNames)-1 || slices.ContainsFunc(rules, func(r promRule) bool { return r.Alert == "KafkaSidecarAppDown" }) {
			t.Errorf("rules = %+v, want the %d others", rules, len(alertNames)-1)
		}
	})
}

// balanced reports whether (), [] and {} nest properly outside quoted strings.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inQuote := false
	for _, r := range expr {
		switch {
		case r == '"':
			inQuote = !inQuote
		case inQuote:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inQuote
}

func TestScaledObjectScalesOnLagPerTopic(t *testing.T) {
	objs := render(t, "--values", ciFile("keda-values.yaml"))
	so := only[scaledObject](t, objs, "ScaledObject")
	deploy := only[appsv1.Deployment](t, objs, "Deployment")
	if deploy.Spec.Replicas != nil {
		t.Errorf("Deployment sets replicas %d: every upgrade would undo KEDA's scaling", *deploy.Spec.Replicas)
	}
	ref := so.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != deploy.Name {
		t.Errorf("scaleTargetRef = %+v, want the Deployment %s", ref, deploy.Name)
	}
	if *so.Spec.MinReplicaCount != 2 || *so.Spec.MaxReplicaCount != 12 {
		t.Errorf("replicas %d..%d, want 2..12", *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount)
	}
	if so.Spec.Advanced == nil || so.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior == nil {
		t.Error("behavior was not passed through")
	}
	var topics []string
	for _, trig := range so.Spec.Triggers {
		md := trig.Metadata
		topics = append(topics, md["topic"])
		want := map[string]string{
			"bootstrapServers":       "kafka-0.kafka:9092,kafka-1.kafka:9092",
			"consumerGroup":          "orders-app",
			"lagThreshold":           "500",
			"activationLagThreshold": "10",
			"offsetResetPolicy":      "latest",
			"sasl":                   "scram_sha512",
			"tls":                    "enable",
		}
		for k, v := range want {
			if md[k] != v {
				t.Errorf("trigger %s: %s = %q, want %q", md["topic"], k, md[k], v)
			}
		}
		if trig.Type != "kafka" {
			t.Errorf("trigger type %s, want kafka", trig.Type)
		}
		if trig.AuthenticationRef == nil || trig.AuthenticationRef.Name != "kafka-scaler-auth" {
			t.Errorf("trigger %s: authenticationRef = %+v", md["topic"], trig.AuthenticationRef)
		}
	}
	if !slices.Equal(topics, []string{"orders", "refunds"}) {
		t.Errorf("triggers on %v, want one per source topic [orders refunds]", topics)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"min available", []string{"--values", ciFile("pdb-values.yaml")}, "minAvailable=2"},
		{"max unavailable by default", []string{"--values", minimalValues, "--set", "podDisruptionBudget.enabled=true"}, "maxUnavailable=1"},
		{"percentage", []string{"--values", minimalValues, "--set", "podDisruptionBudget.enabled=true", "--set-string", "podDisruptionBudget.maxUnavailable=25%"}, "maxUnavailable=25%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := render(t, tt.args...)
			pdb := only[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")
			if !selects(pdb.Spec.Selector.MatchLabels, podLabels(t, objs)) {
				t.Errorf("selector %v does not pick the pods", pdb.Spec.Selector.MatchLabels)
			}
			var got string
			switch {
			case pdb.Spec.MinAvailable != nil && pdb.Spec.MaxUnavailable == nil:
				got = "minAvailable=" + pdb.Spec.MinAvailable.String()
			case pdb.Spec.MaxUnavailable != nil && pdb.Spec.MinAvailable == nil:
				got = "maxUnavailable=" + pdb.Spec.MaxUnavailable.String()
			}
			if got != tt.want {
				t.Errorf("budget %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNetworkPolicy(t *testing.T) {
	objs := render(t, "--values", ciFile("networkpolicy-values.yaml"))
	np := only[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy")
	if !selects(np.Spec.PodSelector.MatchLabels, podLabels(t, objs)) {
		t.Errorf("podSelector %v does not pick the pods", np.Spec.PodSelector.MatchLabels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("policyTypes = %v", np.Spec.PolicyTypes)
	}
	egress := egressPeers(np)
	for port, peers := range map[string]int{"UDP/53": 0, "TCP/53": 0, "TCP/9092": 1, "TCP/6379": 1, "TCP/5432": 0} {
		got, ok := egress[port]
		if !ok || got != peers {
			t.Errorf("egress to %s: %d peers (present %v), want %d", port, got, ok, peers)
		}
	}
	ingress := map[string][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			ingress[p.Port.String()] = rule.From
		}
	}
	if len(ingress["8080"]) != 1 || ingress["8080"][0].NamespaceSelector == nil {
		t.Errorf("app port ingress from %+v, want the ingress-nginx namespace", ingress["8080"])
	}
	// A restricted admin port must still let the helm test pod in.
	testPod := only[corev1.Pod](t, objs, "Pod")
	if !slices.ContainsFunc(ingress["9464"], func(p networkingv1.NetworkPolicyPeer) bool {
		return p.PodSelector != nil && selects(p.PodSelector.MatchLabels, testPod.Labels)
	}) {
		t.Errorf("admin port ingress %+v does not admit the test pod %v", ingress["9464"], testPod.Labels)
	}

	t.Run("schema registry egress", func(t *testing.T) {
		objs := render(t, "--values", ciFile("decode-values.yaml"))
		if got := egressPeers(only[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy"))["TCP/8081"]; got != 1 {
			t.Errorf("egress to the registry port 8081: %d peers, want the one of networkPolicy.egress.schemaRegistry.to", got)
		}
		// Without ports in the values, the rule opens the URL's port, or the scheme's.
		for _, tt := range []struct{ url, port string }{
			{"http://registry:8085", "TCP/8085"},
			{"https://registry.example.com/apis/ccompat/v7", "TCP/443"},
			{"http://registry", "TCP/80"},
			{"http://[fd00::1]:8081/", "TCP/8081"},
		} {
			objs := render(t, "--values", minimalValues, "--set", "networkPolicy.enabled=true",
				"--set-string", "sidecar.schemaRegistry.url="+tt.url)
			if _, ok := egressPeers(only[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy"))[tt.port]; !ok {
				t.Errorf("registry %s: no egress to %s", tt.url, tt.port)
			}
		}
		objs = render(t, "--values", minimalValues,
			"--set", "networkPolicy.enabled=true,networkPolicy.egress.schemaRegistry.ports={8443,9443}",
			"--set-string", "sidecar.schemaRegistry.url=https://registry")
		egress := egressPeers(only[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy"))
		for _, port := range []string{"TCP/8443", "TCP/9443"} {
			if _, ok := egress[port]; !ok {
				t.Errorf("no egress to the given registry port %s: %v", port, egress)
			}
		}
		if _, ok := egress["TCP/443"]; ok {
			t.Errorf("egress to 443 opened although the registry ports are given: %v", egress)
		}
	})
	t.Run("no registry egress without a registry", func(t *testing.T) {
		objs := render(t, "--values", minimalValues, "--set", "networkPolicy.enabled=true")
		want := []string{"TCP/53", "TCP/6379", "TCP/9092", "TCP/9093", "UDP/53"}
		got := slices.Sorted(maps.Keys(egressPeers(only[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy"))))
		if !slices.Equal(got, want) {
			t.Errorf("egress ports %v, want %v", got, want)
		}
	})
	t.Run("no redis egress without redis", func(t *testing.T) {
		objs := render(t, "--values", ciFile("memory-dedup-values.yaml"), "--set", "networkPolicy.enabled=true")
		for _, rule := range only[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy").Spec.Egress {
			for _, p := range rule.Ports {
				if p.Port.IntValue() == 6379 {
					t.Errorf("egress to Redis opened while dedup is in memory")
				}
			}
		}
	})
}

func TestGrafanaDashboard(t *testing.T) {
	objs := render(t, "--values", ciFile("dashboard-values.yaml"))
	cm := only[corev1.ConfigMap](t, objs, "ConfigMap")
	if cm.Namespace != "monitoring" || cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap in %q with labels %v, want namespace monitoring and grafana_dashboard=1", cm.Namespace, cm.Labels)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["kafka-sidecar.json"]), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			exprs = append(exprs, target.Expr)
			if !balanced(target.Expr) {
				t.Errorf("panel %q: unbalanced brackets in %q", p.Title, target.Expr)
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for _, metric := range []string{"kafka_sidecar_records_total", "kafka_sidecar_consumer_lag", "kafka_sidecar_app_up",
		"kafka_sidecar_doctor_check", "kafka_sidecar_in_flight", "kafka_sidecar_delivery_duration_seconds_bucket",
		"kafka_sidecar_consumer_lag_seconds", "kafka_sidecar_paused", "kafka_sidecar_retries_total",
		"kafka_sidecar_dlq_records_total", "kafka_sidecar_dedup_store_duration_seconds_bucket"} {
		if !strings.Contains(all, metric+"{") {
			t.Errorf("no panel queries %s", metric)
		}
	}
	for _, e := range exprs {
		if strings.Contains(e, "kafka_sidecar_consumer_lag") && !strings.Contains(e, `topic!~".+\\.retry\\.[0-9]+"`) {
			t.Errorf("a lag panel counts retry topics: %s", e)
		}
	}

	// Two releases, two dashboards: the uid is the release's own, and fits Grafana's 40 characters.
	other := render(t, "--values", ciFile("dashboard-values.yaml"), "--namespace", "payments")
	var otherDash struct {
		UID   string `json:"uid"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(only[corev1.ConfigMap](t, other, "ConfigMap").Data["kafka-sidecar.json"]), &otherDash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.UID == otherDash.UID || len(dash.UID) > 40 || len(otherDash.UID) > 40 {
		t.Errorf("uids %q and %q of two releases: want distinct, non-empty, at most 40 characters", dash.UID, otherDash.UID)
	}
	if !strings.Contains(otherDash.Title, "payments/rel") {
		t.Errorf("title %q does not name the release", otherDash.Title)
	}
}

func TestHelmTestPod(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		metrics string
	}{
		{"metrics on the admin port", []string{"--values", minimalValues}, "http://rel-kafka-sidecar-admin:9464/metrics"},
		{"separate metrics port", []string{"--values", ciFile("servicemonitor-values.yaml")}, "http://rel-kafka-sidecar-admin:9465/metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := only[corev1.Pod](t, render(t, tt.args...), "Pod")
			if pod.Annotations["helm.sh/hook"] != "test" {
				t.Errorf("annotations %v, want a helm test hook", pod.Annotations)
			}
			if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy %s, want Never", pod.Spec.RestartPolicy)
			}
			script := strings.Join(pod.Spec.Containers[0].Command, " ")
			for _, want := range []string{"http://rel-kafka-sidecar-admin:9464/healthz", "http://rel-kafka-sidecar-admin:9464/readyz", tt.metrics} {
				if !strings.Contains(script, want) {
					t.Errorf("test script does not fetch %s:\n%s", want, script)
				}
			}
			sc, psc := pod.Spec.Containers[0].SecurityContext, pod.Spec.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Errorf("test pod is not locked down: container %+v, pod %+v", sc, psc)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		if pods := all[corev1.Pod](render(t, "--values", minimalValues, "--set", "tests.enabled=false"), "Pod"); len(pods) != 0 {
			t.Errorf("rendered %d test pods with tests.enabled=false", len(pods))
		}
	})
}

// A parent chart with kafka-sidecar as a dependency includes the named templates in its own pod, as the
// README shows; the dependency renders no Deployment of its own.
func TestNamedTemplateInParentChart(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "orders-api")
	copyDir(t, filepath.Join("testdata", "parent-chart"), parent)
	copyDir(t, chartDir, filepath.Join(parent, "charts", "kafka-sidecar"))

	objs := renderChart(t, parent)
	deploys := all[appsv1.Deployment](objs, "Deployment")
	if len(deploys) != 1 || deploys[0].Name != "rel-orders-api" {
		t.Fatalf("rendered %s, want only the parent's Deployment", describe(objs))
	}
	pod := deploys[0].Spec.Template.Spec
	if len(pod.InitContainers) != 1 {
		t.Fatalf("initContainers = %v, want the sidecar", containerNames(pod.InitContainers))
	}
	sidecar := pod.InitContainers[0]
	if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy = %v, want Always", sidecar.RestartPolicy)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatalf("parsing Chart.yaml: %v", err)
	}
	if want := "ghcr.io/kafka-sidecar/kafka-sidecar:" + chart.AppVersion; sidecar.Image != want {
		t.Errorf("image = %s, want %s (the dependency's appVersion, not the parent's)", sidecar.Image, want)
	}
	env := envOf(t, sidecar)
	for name, want := range map[string]string{
		"SIDECAR_KAFKA_BROKERS":       "kafka:9092",
		"SIDECAR_KAFKA_GROUP":         "orders-api",
		"SIDECAR_APP_URL":             "http://127.0.0.1:8080/events/{topic}",
		"SIDECAR_SHUTDOWN_TIMEOUT":    "40s",
		"SIDECAR_APP_AUTH_TOKEN_FILE": "/etc/kafka-sidecar/app-token/token",
	} {
		if env[name].Value != want {
			t.Errorf("%s = %q, want %q", name, env[name].Value, want)
		}
	}
	assertSecretFile(t, pod, sidecar, "/etc/kafka-sidecar/app-token/token", "orders-api-token", "token")
	if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "cache" }) {
		t.Error("the parent's own volume is gone")
	}
	if got := pod.TerminationGracePeriodSeconds; got == nil || *got != 55 {
		t.Errorf("terminationGracePeriodSeconds = %v, want 55 (40s drain + 15s margin)", got)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", from, err)
	}
}

// egressPeers maps each "proto/port" a NetworkPolicy lets out to the number of peers of its rule (0 means any
// destination).
func egressPeers(np *networkingv1.NetworkPolicy) map[string]int {
	egress := map[string]int{}
	for _, rule := range np.Spec.Egress {
		for _, p := range rule.Ports {
			egress[string(*p.Protocol)+"/"+p.Port.String()] = len(rule.To)
		}
	}
	return egress
}
