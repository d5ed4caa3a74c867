// Package kubevalidate runs kubernetes-validate (the PyPI package, which ships the Kubernetes JSON schemas) on
// manifests, so tests check rendered and injected objects offline, without a cluster.
package kubevalidate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NativeSidecarVersion is the first Kubernetes version whose schemas know a container's restartPolicy (native
// sidecars are on by default from 1.29).
const NativeSidecarVersion = "1.29.0"

// install is how test/deps.sh installs the validator.
const install = "test/deps.sh (a Python virtualenv under ${XDG_CACHE_HOME:-$HOME/.cache}/kafka-sidecar/venv)"

// Path returns the kubernetes-validate binary: $KUBERNETES_VALIDATE, the cached virtualenv test/deps.sh
// creates, or PATH. Without one it skips the test, but fails it when CI is set.
func Path(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("KUBERNETES_VALIDATE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("KUBERNETES_VALIDATE: %v", err)
		}
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	candidate := filepath.Join(cache, "kafka-sidecar", "venv", "bin", "kubernetes-validate")
	if _, err := os.Stat(candidate); err == nil {
		return candidate
	}
	if p, err := exec.LookPath("kubernetes-validate"); err == nil {
		return p
	}
	msg := "kubernetes-validate is not installed; install it with " + install
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// Check validates files strictly (unknown fields are errors) against one Kubernetes version and returns the
// validator's complaints.
func Check(bin, version string, files ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--kubernetes-version", version, "--strict", "--quiet"}, files...)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return fmt.Errorf("kubernetes-validate %s: %s", version, strings.TrimSpace(out.String()))
	case err != nil:
		return fmt.Errorf("running kubernetes-validate: %w", err)
	}
	return nil
}

// Files fails the test when any file does not validate against version.
func Files(tb testing.TB, bin, version string, files ...string) {
	tb.Helper()
	if err := Check(bin, version, files...); err != nil {
		tb.Fatal(err)
	}
}

// Manifests writes manifests (multi-document YAML) to a temporary file and validates it.
func Manifests(tb testing.TB, bin, version, name, manifests string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(manifests), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := Check(bin, version, path); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}
