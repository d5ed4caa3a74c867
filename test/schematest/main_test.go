package schematest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// registryURL is the Confluent API of the registry the tests use; setupErr says why there is none.
var (
	registryURL string
	setupErr    error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if u := os.Getenv("TEST_SCHEMA_REGISTRY_URL"); u != "" {
		registryURL = u
		return m.Run()
	}
	stop, err := startRegistry()
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer stop()
	return m.Run()
}

// startRegistry starts a registry of its own on a free port, through the same script a person would use.
func startRegistry() (stop func(), err error) {
	state, err := os.MkdirTemp("", "kafka-sidecar-registry-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	script, err := filepath.Abs("../registry/registry.sh")
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), "REGISTRY_STATE_DIR="+state, fmt.Sprintf("REGISTRY_PORT=%d", port))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "start")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		_ = os.RemoveAll(state)
		return nil, fmt.Errorf("starting the registry with %s start: %w\n%s", script, err, stderr)
	}
	registryURL = strings.TrimSpace(string(out))
	return func() {
		cmd := exec.Command(script, "stop")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the registry: %v\n%s", err, out)
		}
		_ = os.RemoveAll(state)
	}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// needRegistry returns the registry's URL, or skips the test (fails it under CI=true) when there is none.
func needRegistry(t *testing.T) string {
	t.Helper()
	if setupErr != nil {
		unavailable(t, fmt.Sprintf("no schema registry (install Java 17 and Maven, or set TEST_SCHEMA_REGISTRY_URL): %v", setupErr))
	}
	return registryURL
}

// python returns the interpreter of the test virtualenv with confluent-kafka's serializers, or skips the test
// (fails it under CI=true) when it is missing.
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("TEST_PYTHON")
	if py == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		py = filepath.Join(cache, "kafka-sidecar", "venv", "bin", "python")
	}
	out, err := exec.Command(py, "-c", "import confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.protobuf, grpc_tools").CombinedOutput()
	if err != nil {
		unavailable(t, fmt.Sprintf("no Python with confluent-kafka's serializers at %s (run test/deps.sh): %v\n%s", py, err, out))
	}
	return py
}

func unavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}
