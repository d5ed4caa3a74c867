package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kafka-sidecar/kafka-sidecar/test/kafkatest"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// binDir holds the sidecar binary built for this test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "making a directory for the sidecar binary:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	// After the run, not per test: a harness that leaves a client or server goroutine behind fails here.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// envBinary names a prebuilt sidecar binary to test instead of building one (make chaos builds bin/ first).
const envBinary = "CHAOS_SIDECAR_BINARY"

// sidecarBinary builds cmd/kafka-sidecar once per test run, without the race detector: the sidecars are
// separate processes, and the harness's own code is what this package's -race run checks.
func sidecarBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(envBinary); bin != "" {
		return bin
	}
	bin := filepath.Join(binDir, "kafka-sidecar")
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("finding the go command: %w", err)
			return
		}
		cmd := exec.Command(goBin, "build", "-o", bin, "github.com/kafka-sidecar/kafka-sidecar/cmd/kafka-sidecar")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the sidecar: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaosNoLoss is the no-loss proof. On kfake (the normal test run) it is a short run: 5,000 records,
// three sidecar processes, one SIGKILL restart, one SIGTERM restart (which must exit 0) and one redis-server
// restart. With TEST_KAFKA_BROKERS set it is the full run on the real cluster: 50,000 records, two rounds
// of faults, each round also killing a Kafka node with SIGKILL and starting it again. Either way it fails
// when a message ID is lost, the dead-letter topic holds anything but exactly the refused IDs, or the
// committed offsets do not reach the end.
func TestChaosNoLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes tens of seconds; skipped with -short")
	}
	redisBin := redistest.Binary(t)
	opts := Options{
		Binary:      sidecarBinary(t),
		Records:     5000,
		Sidecars:    3,
		Duration:    4 * time.Minute,
		Seed:        time.Now().UnixNano(),
		Rounds:      1,
		Dir:         t.TempDir(),
		RedisServer: redisBin,
		Progress:    testWriter{t},
		Env:         kafkatest.GroupProtocolEnv(),
	}
	if seeds, ok := kafkatest.Seeds(); ok {
		c, err := kafkatest.NewCluster()
		if err != nil {
			t.Fatal(err)
		}
		opts.Brokers = kafkatest.SplitSeeds(seeds)
		opts.KafkaScript = c.Script()
		opts.Records, opts.Rounds, opts.Duration = 50000, 2, 8*time.Minute
	}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("setting up the run: %v", err)
	}
	t.Log(res.Line())
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if want := opts.Rounds * 2; res.SidecarKills != want || res.SidecarTerms != opts.Rounds || res.RedisRestarts != opts.Rounds {
		t.Errorf("faults: %d sidecar restarts (%d by SIGTERM), %d redis restarts; want %d (%d), %d",
			res.SidecarKills, res.SidecarTerms, res.RedisRestarts, want, opts.Rounds, opts.Rounds)
	}
	if len(opts.Brokers) > 0 && res.BrokerKills != opts.Rounds {
		t.Errorf("%d Kafka node kills, want %d", res.BrokerKills, opts.Rounds)
	}
	if res.DeadLettered != res.ExpectedDeadLetters {
		t.Errorf("dead_lettered=%d, want the %d poison and doomed IDs", res.DeadLettered, res.ExpectedDeadLetters)
	}
}

// TestRunRejectsMissingBinary proves a run without a usable binary fails at once, naming the problem.
func TestRunRejectsMissingBinary(t *testing.T) {
	tests := []struct {
		name   string
		binary string
		want   string
	}{
		{"empty", "", "no sidecar binary"},
		{"absent", filepath.Join(t.TempDir(), "absent"), "checking the sidecar binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), Options{Binary: tt.binary})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestResultVerdict proves the summary line's format and that each kind of failure fails the run.
func TestResultVerdict(t *testing.T) {
	pass := Result{Records: 10, SidecarKills: 2, BrokerKills: 1, RedisRestarts: 1, Duplicates: 3, DeadLettered: 2}
	if got, want := pass.Line(), "records=10 sidecar_kills=2 broker_kills=1 redis_restarts=1 lost=0 duplicates=3 dead_lettered=2"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
	tests := []struct {
		name   string
		change func(*Result)
		want   string // empty: the run passes
	}{
		{"clean run with duplicates passes", func(*Result) {}, ""},
		{"lost", func(r *Result) { r.Lost = 1 }, "1 message IDs lost"},
		{"unexpected dead letter", func(r *Result) { r.UnexpectedDeadLetters = []string{"id-1 (also got a 2xx)"} }, "unexpected dead letters"},
		{"missing dead letter", func(r *Result) { r.MissingDeadLetters = []string{"id-2"} }, "dead letters missing"},
		{"offsets behind", func(r *Result) { r.Behind = []string{"t/0 1/2"} }, "committed offsets short"},
		{"problem", func(r *Result) { r.Problems = []string{"sidecar-1 exited with code 1"} }, "sidecar-1 exited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pass
			tt.change(&r)
			err := r.Err()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Err() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Err() = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
