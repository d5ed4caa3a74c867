package charts

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// promtoolInstall is how test/deps.sh installs promtool: built from the Prometheus Go module, pinned.
const promtoolInstall = "GOBIN=$(go env GOPATH)/bin go install github.com/prometheus/prometheus/cmd/promtool@v0.316.0"

// promtoolPath returns promtool from PATH or where go install puts binaries, skipping the test when there is
// none (failing under CI).
func promtoolPath(t *testing.T) string {
	t.Helper()
	candidates := []string{}
	if p, err := exec.LookPath("promtool"); err == nil {
		candidates = append(candidates, p)
	}
	for _, v := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			continue
		}
		dir := filepath.SplitList(strings.TrimSpace(string(out)))[0]
		if v == "GOPATH" {
			dir = filepath.Join(dir, "bin")
		}
		candidates = append(candidates, filepath.Join(dir, "promtool"))
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("promtool not found; install it with: %s", promtoolInstall)
	}
	t.Skipf("promtool not found; install it with: %s", promtoolInstall)
	return ""
}

func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtoolPath(t), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// alertNames are the chart's alerts; each has a README section of its name that its runbook_url points at.
var alertNames = []string{
	"KafkaSidecarAbsent", "KafkaSidecarConsumerLagGrowing", "KafkaSidecarLagSeconds", "KafkaSidecarPaused",
	"KafkaSidecarProduceFailures", "KafkaSidecarCommitFailures", "KafkaSidecarStalled",
	"KafkaSidecarDeadLettering", "KafkaSidecarAppDown", "KafkaSidecarDoctorFail",
}

// TestAlertRulesWithPromtool renders the PrometheusRule, checks it with `promtool check rules` (PromQL and
// annotation templates), and runs the unit tests of testdata/alerts_test.yaml with `promtool test rules`: each
// alert fires on the series it is meant for and stays silent on the others, including "all sidecars gone".
func TestAlertRulesWithPromtool(t *testing.T) {
	rule := only[prometheusRule](t, render(t, "--values", ciFile("prometheusrule-values.yaml")), "PrometheusRule")
	dir := t.TempDir()
	full, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "full.yaml"), full, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runPromtool(t, dir, "check", "rules", "full.yaml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}

	// The unit tests compare labels; annotations are checked below, so they are left out of their rules file.
	groups := rule.Spec.Groups
	for g := range groups {
		for r := range groups[g].Rules {
			groups[g].Rules[r].Annotations = nil
		}
	}
	bare, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), bare, 0o600); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runPromtool(t, dir, "test", "rules", "alerts_test.yaml")
	t.Logf("promtool test rules:\n%s", out)
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running promtool: %v", err)
		}
		t.Fatal("promtool test rules failed (output above)")
	}
	for _, name := range alertNames {
		if !strings.Contains(string(tests), "alertname: "+name+"\n") {
			t.Errorf("testdata/alerts_test.yaml does not test %s", name)
		}
	}
}

// TestAlertRunbooks: every alert has a summary, a description and a runbook_url that points at a README section
// of its name, and that section says what to look at.
func TestAlertRunbooks(t *testing.T) {
	rule := only[prometheusRule](t, render(t, "--values", ciFile("prometheusrule-values.yaml")), "PrometheusRule")
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rule.Spec.Groups[0].Rules {
		if r.Alert == "KafkaSidecarNothingDelivered" { // the values file's own rule
			continue
		}
		got[r.Alert] = true
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: annotations %v lack a summary or description", r.Alert, r.Annotations)
		}
		want := "https://github.com/kafka-sidecar/kafka-sidecar/blob/main/README.md#" + strings.ToLower(r.Alert)
		if r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		section := regexp.MustCompile(`(?m)^#+ ` + r.Alert + `\n\n([^#]+)`).FindSubmatch(readme)
		if section == nil || len(bytes.TrimSpace(section[1])) < 100 {
			t.Errorf("README.md has no section %q saying what to look at", r.Alert)
		}
	}
	for _, name := range alertNames {
		if !got[name] {
			t.Errorf("the PrometheusRule lacks %s", name)
		}
	}
}
