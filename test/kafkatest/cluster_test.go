package kafkatest

import (
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

func TestNewClusterFindsScript(t *testing.T) {
	c, err := NewCluster()
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	want, err := os.Stat(filepath.Join("..", "kafka", "cluster.sh")) // go test runs in the package dir
	if err != nil {
		t.Fatalf("stat of the script beside the package: %v", err)
	}
	got, err := os.Stat(c.Script())
	if err != nil {
		t.Fatalf("stat of Script() %q: %v", c.Script(), err)
	}
	if !os.SameFile(got, want) {
		t.Errorf("Script() = %q, not the test/kafka/cluster.sh of this module", c.Script())
	}
}

func TestNodeOutOfRange(t *testing.T) {
	// A script that does not exist: had a method run it, the error would be a ScriptError, not ErrNoSuchNode.
	c := &Cluster{script: filepath.Join(t.TempDir(), "absent.sh")}
	methods := []struct {
		name   string
		action string
		call   func(int) error
	}{
		{name: "KillNode", action: "killing", call: c.KillNode},
		{name: "StopNode", action: "stopping", call: c.StopNode},
		{name: "StartNode", action: "starting", call: c.StartNode},
	}
	for _, m := range methods {
		for _, n := range []int{-1, 0, Nodes + 1} {
			t.Run(fmt.Sprintf("%s(%d)", m.name, n), func(t *testing.T) {
				err := m.call(n)
				if !errors.Is(err, ErrNoSuchNode) {
					t.Fatalf("%s(%d) = %v, want an error wrapping ErrNoSuchNode", m.name, n, err)
				}
				var se *ScriptError
				if errors.As(err, &se) {
					t.Fatalf("%s(%d) ran the script: %v", m.name, n, err)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, m.action+" node ") || !strings.Contains(msg, "1..3") {
					t.Errorf("%s(%d) error %q should name the action and the valid range", m.name, n, msg)
				}
			})
		}
	}
}

func TestScriptSeedsMatchDefault(t *testing.T) {
	c := newTestCluster(t)
	out, err := c.run("seeds")
	if err != nil {
		t.Fatalf("cluster.sh seeds: %v", err)
	}
	if got := strings.TrimSpace(out); got != DefaultSeeds {
		t.Errorf("cluster.sh seeds = %q, DefaultSeeds = %q", got, DefaultSeeds)
	}
}

// TestScriptOnEmptyStateDir runs the script against a state dir with no cluster in it: nothing there
// needs Java or Kafka, and each answer is fixed.
func TestScriptOnEmptyStateDir(t *testing.T) {
	t.Setenv("KAFKA_STATE_DIR", t.TempDir())
	c := newTestCluster(t)

	tests := []struct {
		name       string
		call       func() error
		wantStderr string // empty: the call must succeed
		wantExit   int
	}{
		{name: "start-node needs storage", call: func() error { return c.StartNode(1) },
			wantStderr: "node 1 has no formatted storage", wantExit: 1},
		{name: "kill of a stopped node is a no-op", call: func() error { return c.KillNode(2) }},
		{name: "stop of a stopped node is a no-op", call: func() error { return c.StopNode(3) }},
		{name: "unknown command shows usage", call: func() error { _, err := c.run("bogus"); return err },
			wantStderr: "Usage: cluster.sh", wantExit: 2},
		{name: "node number checked by the script too", call: func() error { _, err := c.run("kill", "9"); return err },
			wantStderr: "node must be 1, 2 or 3", wantExit: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.wantStderr == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			var se *ScriptError
			if !errors.As(err, &se) {
				t.Fatalf("want a *ScriptError, got %v", err)
			}
			if !strings.Contains(se.Stderr, tt.wantStderr) || !strings.Contains(err.Error(), tt.wantStderr) {
				t.Errorf("stderr and message should contain %q; message:\n%v", tt.wantStderr, err)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tt.wantExit {
				t.Errorf("want exit status %d, got %v", tt.wantExit, err)
			}
		})
	}

	status, err := c.Status()
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for _, want := range []string{"node 1: stopped", "node 2: stopped", "node 3: stopped"} {
		if !strings.Contains(status, want) {
			t.Errorf("Status() = %q, want a line %q", status, want)
		}
	}
}

func TestScriptTimeout(t *testing.T) {
	script := filepath.Join(t.TempDir(), "hang.sh")
	// exec: the sleep replaces bash, so killing the script kills the sleep and leaves no pipe open.
	if err := os.WriteFile(script, []byte("exec sleep 30\n"), 0o600); err != nil {
		t.Fatalf("writing %s: %v", script, err)
	}
	c := &Cluster{script: script, timeout: 100 * time.Millisecond}
	start := time.Now()
	err := c.StopNode(1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("StopNode against a hung script = %v, want a context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("StopNode returned after %s; the timeout is 100ms", took)
	}
	if !strings.Contains(err.Error(), "no result after 100ms") {
		t.Errorf("error %q should say how long it waited", err)
	}
}

func TestScriptErrorTruncatesStderr(t *testing.T) {
	long := strings.Repeat("x", 3*stderrTail) + "the cause"
	err := &ScriptError{Args: []string{"start"}, Stderr: long, Err: errors.New("exit status 1")}
	msg := err.Error()
	if !strings.HasPrefix(msg, "running cluster.sh start: exit status 1\n...") {
		t.Errorf("message starts %q", msg[:60])
	}
	if !strings.HasSuffix(msg, "the cause") || len(msg) > stderrTail+100 {
		t.Errorf("message should end with the last %d bytes of stderr; got %d bytes ending %q",
			stderrTail, len(msg), msg[len(msg)-20:])
	}
}

func newTestCluster(t *testing.T) *Cluster {
	t.Helper()
	c, err := NewCluster()
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	return c
}
