package charts

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
	"github.com/kafka-sidecar/kafka-sidecar/test/kubevalidate"
)

const (
	injectorChartDir = "kafka-sidecar-injector"
	// injectorName is the full name of the injector chart's objects for the tests' release.
	injectorName = release + "-kafka-sidecar-injector"
)

// certificate and issuer are the fields of cert-manager's kinds the injector chart sets.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName  string   `json:"secretName"`
		Duration    string   `json:"duration"`
		RenewBefore string   `json:"renewBefore"`
		DNSNames    []string `json:"dnsNames"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

type issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
	} `json:"spec"`
}

func injectorCIValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(injectorChartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci values in %s: %v", injectorChartDir, err)
	}
	return files
}

// TestInjectorChartRenders: the chart lints strictly, and every render (defaults and each ci file) decodes
// strictly into the API types and passes the Kubernetes JSON schemas.
func TestInjectorChartRenders(t *testing.T) {
	bin := kubevalidate.Path(t)
	for _, file := range append([]string{""}, injectorCIValues(t)...) {
		name := filepath.Base(file)
		var args []string
		if file != "" {
			args = []string{"--values", file}
		} else {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			out, err := runHelm(t, append([]string{"lint", "--strict", "--kube-version", kubeVersion, injectorChartDir}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Fatalf("lint reported problems:\n%s", out)
			}
			manifests, err := templateChart(t, injectorChartDir, args...)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeManifests(manifests)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if o.Labels["app.kubernetes.io/instance"] != release || o.Labels["helm.sh/chart"] == "" {
					t.Errorf("%s: %s/%s lacks the release labels: %v", o.Source, o.Kind, o.Name, o.Labels)
				}
			}
			kubevalidate.Manifests(t, bin, kubevalidate.NativeSidecarVersion, name, manifests)
		})
	}
}

func renderInjector(t *testing.T, args ...string) []object {
	t.Helper()
	return renderChart(t, injectorChartDir, args...)
}

func TestInjectorWebhookServesItsPods(t *testing.T) {
	objs := renderInjector(t)
	mwc := only[admissionregistrationv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration")
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks", len(mwc.Webhooks))
	}
	w := mwc.Webhooks[0]
	switch {
	case w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail:
		t.Errorf("failurePolicy %v, want Fail", w.FailurePolicy)
	case w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone:
		t.Errorf("sideEffects %v, want None", w.SideEffects)
	case w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy:
		t.Errorf("reinvocationPolicy %v, want IfNeeded", w.ReinvocationPolicy)
	case !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}):
		t.Errorf("admissionReviewVersions %v", w.AdmissionReviewVersions)
	case w.NamespaceSelector == nil || w.NamespaceSelector.MatchLabels["kafka-sidecar.io/injection"] != "enabled":
		t.Errorf("namespaceSelector %v, want the opt-in label", w.NamespaceSelector)
	case w.ObjectSelector == nil:
		t.Error("no objectSelector")
	case len(w.Rules) != 1 || !slices.Equal(w.Rules[0].Resources, []string{"pods"}) || !slices.Equal(w.Rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}):
		t.Errorf("rules %+v, want CREATE pods", w.Rules)
	}
	svcRef := w.ClientConfig.Service
	if svcRef == nil || svcRef.Name != injectorName || svcRef.Namespace != namespace || svcRef.Path == nil || *svcRef.Path != "/mutate" || svcRef.Port == nil || *svcRef.Port != 443 {
		t.Fatalf("clientConfig.service %+v", svcRef)
	}

	// The Service behind the webhook selects the injector pods and forwards to their HTTPS port.
	svc := only[corev1.Service](t, objs, "Service")
	dep := only[appsv1.Deployment](t, objs, "Deployment")
	pod := dep.Spec.Template
	if svc.Name != injectorName || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Fatalf("Service %s selector %v does not select the pods %v", svc.Name, svc.Spec.Selector, pod.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.String() != "https" {
		t.Fatalf("Service ports %+v", svc.Spec.Ports)
	}
	c := pod.Spec.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].Name != "https" || c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Fatalf("container ports %+v, readiness %+v", c.Ports, c.ReadinessProbe)
	}

	// Two replicas and a budget that keeps one through a drain.
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Fatalf("replicas %v, want 2", dep.Spec.Replicas)
	}
	pdb := only[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Fatalf("PDB minAvailable %v", pdb.Spec.MinAvailable)
	}
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("the PDB does not select the injector pods (%v)", err)
	}
}

// TestInjectorMakesItsOwnCertificates: without cert-manager the injector is told where its CA lives and which
// webhook to publish it in, and RBAC grants exactly that.
func TestInjectorMakesItsOwnCertificates(t *testing.T) {
	objs := renderInjector(t)
	dep := only[appsv1.Deployment](t, objs, "Deployment")
	args := dep.Spec.Template.Spec.Containers[0].Args
	caSecret := injectorName + "-ca"
	for _, want := range []string{"--service=" + injectorName, "--ca-secret=" + caSecret, "--webhook-config=" + injectorName} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	if a := dep.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || !*a {
		t.Error("the injector needs its ServiceAccount token to keep its CA")
	}
	role := only[rbacv1.Role](t, objs, "Role")
	if !grants(role.Rules, "", "secrets", "get", caSecret) || !grants(role.Rules, "", "secrets", "create", "") {
		t.Errorf("Role rules %+v do not grant get on %s and create on secrets", role.Rules, caSecret)
	}
	if grants(role.Rules, "", "secrets", "get", "another") {
		t.Error("the Role grants get on every Secret")
	}
	cr := only[rbacv1.ClusterRole](t, objs, "ClusterRole")
	if !grants(cr.Rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch", injectorName) || grants(cr.Rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch", "another") {
		t.Errorf("ClusterRole rules %+v: want patch on %s only", cr.Rules, injectorName)
	}
	if len(all[certificate](objs, "Certificate")) != 0 {
		t.Error("a Certificate without cert-manager")
	}
}

// grants reports whether rules allow verb on resource (named name; "" for a rule without names).
func grants(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name)) {
			return true
		}
	}
	return false
}

func TestInjectorWithCertManager(t *testing.T) {
	objs := renderInjector(t, "--values", filepath.Join(injectorChartDir, "ci", "cert-manager-values.yaml"))
	cert := only[certificate](t, objs, "Certificate")
	if !slices.Contains(cert.Spec.DNSNames, injectorName+"."+namespace+".svc") {
		t.Errorf("dnsNames %v lack the Service name", cert.Spec.DNSNames)
	}
	if iss := only[issuer](t, objs, "Issuer"); iss.Spec.SelfSigned == nil || cert.Spec.IssuerRef.Name != iss.Name {
		t.Errorf("issuerRef %+v, want the self-signed Issuer", cert.Spec.IssuerRef)
	}
	mwc := only[admissionregistrationv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration")
	if got := mwc.Annotations["cert-manager.io/inject-ca-from"]; got != namespace+"/"+cert.Name {
		t.Errorf("inject-ca-from %q, want %s/%s", got, namespace, cert.Name)
	}
	if w := mwc.Webhooks[0]; *w.FailurePolicy != admissionregistrationv1.Ignore || *w.ReinvocationPolicy != admissionregistrationv1.NeverReinvocationPolicy {
		t.Errorf("failurePolicy %v reinvocationPolicy %v from the values", *w.FailurePolicy, *w.ReinvocationPolicy)
	}
	dep := only[appsv1.Deployment](t, objs, "Deployment")
	spec := dep.Spec.Template.Spec
	if !slices.Contains(spec.Containers[0].Args, "--tls-cert-file=/etc/kafka-sidecar-injector/tls/tls.crt") {
		t.Errorf("args %v do not name the mounted certificate", spec.Containers[0].Args)
	}
	mounted := false
	for _, v := range spec.Volumes {
		mounted = mounted || (v.Secret != nil && v.Secret.SecretName == cert.Spec.SecretName)
	}
	if !mounted {
		t.Errorf("the Certificate's Secret %s is not mounted", cert.Spec.SecretName)
	}
	if len(all[rbacv1.Role](objs, "Role"))+len(all[rbacv1.ClusterRole](objs, "ClusterRole")) != 0 {
		t.Error("RBAC rendered although cert-manager handles the certificates")
	}
	// Left null, certManager follows the cluster: cert-manager's API present means a Certificate.
	objs = renderInjector(t, "--api-versions", "cert-manager.io/v1")
	if len(all[certificate](objs, "Certificate")) != 1 || len(all[rbacv1.Role](objs, "Role")) != 0 {
		t.Errorf("with cert-manager's API present: %s, want a Certificate and no RBAC", describe(objs))
	}
	objs = renderInjector(t, "--api-versions", "cert-manager.io/v1", "--set", "certManager.enabled=false")
	if len(all[certificate](objs, "Certificate")) != 0 {
		t.Error("certManager.enabled=false still rendered a Certificate")
	}
	objs = renderInjector(t, "--values", filepath.Join(injectorChartDir, "ci", "issuer-values.yaml"))
	if cert := only[certificate](t, objs, "Certificate"); cert.Spec.IssuerRef.Name != "internal-ca" || cert.Spec.IssuerRef.Kind != "ClusterIssuer" || len(all[issuer](objs, "Issuer")) != 0 {
		t.Errorf("issuerRef %+v with an Issuer rendered: want the given ClusterIssuer only", cert.Spec.IssuerRef)
	}
}

// TestInjectorDefaultsReachTheInjector: the defaults value becomes a file the injector accepts.
func TestInjectorDefaultsReachTheInjector(t *testing.T) {
	objs := renderInjector(t, "--values", filepath.Join(injectorChartDir, "ci", "self-managed-certs-values.yaml"))
	cm := only[corev1.ConfigMap](t, objs, "ConfigMap")
	cfg, err := inject.ParseConfig([]byte(cm.Data["defaults.yaml"]))
	if err != nil {
		t.Fatalf("the injector would refuse its defaults: %v\n%s", err, cm.Data["defaults.yaml"])
	}
	if cfg.Brokers != "kafka.kafka:9092" || cfg.For("payments").Brokers != "kafka.payments:9093" || cfg.Env["SIDECAR_REDIS_URL"] == "" {
		t.Fatalf("defaults %+v", cfg)
	}
	objs = renderInjector(t)
	if _, err := inject.ParseConfig([]byte(only[corev1.ConfigMap](t, objs, "ConfigMap").Data["defaults.yaml"])); err != nil {
		t.Fatalf("empty defaults: %v", err)
	}
}

func TestInjectorRejectedValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--set", "replicaCount=2"}, "additional properties 'replicaCount' not allowed"},
		{"failure policy", []string{"--set", "webhook.failurePolicy=Maybe"}, "/webhook/failurePolicy"},
		{"timeout", []string{"--set", "webhook.timeoutSeconds=60"}, "/webhook/timeoutSeconds"},
		{"env outside SIDECAR_", []string{"--set", "defaults.env.REDIS_URL=x"}, "'REDIS_URL' does not match pattern"},
		{"broker without port", []string{"--set", "defaults.brokers=kafka"}, "/defaults/brokers"},
		{"unknown default", []string{"--set", "defaults.topics=x"}, "topics"},
		{"no native sidecars", []string{"--kube-version", "1.28.0"}, "incompatible with Kubernetes v1.28.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := templateChart(t, injectorChartDir, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
