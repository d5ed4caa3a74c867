package kafkatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Nodes is how many nodes cluster.sh runs. Nodes are numbered 1 to Nodes; node n's broker listens on
// 127.0.0.1:19091+n and its controller on 127.0.0.1:19191+n.
const Nodes = 3

// DefaultTimeout bounds one run of cluster.sh. The script bounds its own waits (a node start, a graceful
// stop); this is the backstop that keeps a wedged script from hanging a test until the test binary's own
// deadline, which would lose every other test's result with it.
const DefaultTimeout = 3 * time.Minute

// ErrNoSuchNode is wrapped by the errors of [Cluster] methods given a node number outside 1..[Nodes]; the
// script is not run then.
var ErrNoSuchNode = errors.New("no such node")

// scriptRel is where the script lives relative to this package's directory.
var scriptRel = filepath.Join("..", "kafka", "cluster.sh")

// Cluster controls the nodes of the local cluster by running test/kafka/cluster.sh, which keeps the nodes'
// pids, logs and data in its state dir (env KAFKA_STATE_DIR, inherited by the script).
//
// A Cluster holds no state of its own, so any number of them may exist and their methods may be called
// from several goroutines; but two calls for the same node at the same moment race inside the script, as
// they would at a shell.
type Cluster struct {
	script  string
	timeout time.Duration
}

// NewCluster finds cluster.sh beside this package's source and returns a Cluster that runs it. It fails
// only when the script cannot be found; whether a cluster is running is not checked.
func NewCluster() (*Cluster, error) {
	script, err := locateScript()
	if err != nil {
		return nil, err
	}
	return &Cluster{script: script, timeout: DefaultTimeout}, nil
}

// Script returns the path of the cluster.sh this Cluster runs.
func (c *Cluster) Script() string { return c.script }

// KillNode kills node n with SIGKILL, as a crash would: no controlled shutdown, no leadership hand-over,
// nothing flushed. It returns once the process is gone. A node that is not running is left as it is.
func (c *Cluster) KillNode(n int) error { return c.node("killing", "kill", n) }

// StopNode stops node n gracefully with SIGTERM and waits for it to exit; the broker hands its partition
// leadership over first (a controlled shutdown) when a controller quorum is there to take it. After the
// script's stop timeout it kills the node instead and says so on its stderr. A node that is not running is
// left as it is.
func (c *Cluster) StopNode(n int) error { return c.node("stopping", "stop-node", n) }

// StartNode starts node n again on its existing storage. It returns once the node's broker port accepts
// connections, which in KRaft means the broker has caught up with the controller quorum; or, while fewer
// than two of the three nodes run (no quorum is possible yet), once its controller port does, since its
// broker can only join after a second node is started. A node that is already running is left as it is.
//
// Restarting a whole cluster node by node therefore works in any order: the first StartNode returns at
// once, the second waits for the quorum to form.
func (c *Cluster) StartNode(n int) error { return c.node("starting", "start-node", n) }

// Status returns the script's one line per node: running (with pid) or stopped, and its ports.
func (c *Cluster) Status() (string, error) {
	out, err := c.run("status")
	if err != nil {
		return "", fmt.Errorf("reading cluster status: %w", err)
	}
	return out, nil
}

func (c *Cluster) node(action, command string, n int) error {
	if n < 1 || n > Nodes {
		return fmt.Errorf("%s node %d: %w (nodes are 1..%d)", action, n, ErrNoSuchNode, Nodes)
	}
	if _, err := c.run(command, strconv.Itoa(n)); err != nil {
		return fmt.Errorf("%s node %d: %w", action, n, err)
	}
	return nil
}

// ScriptError reports a run of cluster.sh that failed or timed out. Its message carries the end of what
// the script printed on stderr, which names the cause (a port in use, storage missing) and, when a node
// failed to start, the last lines of that node's log.
type ScriptError struct {
	Args   []string // Args are the script's arguments, e.g. ["stop-node", "2"].
	Stderr string   // Stderr is everything the script printed on stderr.
	Err    error    // Err is the exit status, or the context error when the run timed out.
}

// stderrTail bounds how much of the script's stderr an error message repeats; all of it stays in Stderr.
const stderrTail = 4 << 10

// Error implements error.
func (e *ScriptError) Error() string {
	msg := fmt.Sprintf("running cluster.sh %s: %v", strings.Join(e.Args, " "), e.Err)
	out := strings.TrimSpace(e.Stderr)
	if len(out) > stderrTail {
		out = "..." + out[len(out)-stderrTail:]
	}
	if out != "" {
		msg += "\n" + out
	}
	return msg
}

// Unwrap returns the underlying exit or context error.
func (e *ScriptError) Unwrap() error { return e.Err }

// run executes the script with args and returns its stdout.
func (c *Cluster) run(args ...string) (string, error) {
	timeout := c.timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	// Through bash rather than the file's own mode bit, which a checkout or an archive may lose.
	cmd := exec.CommandContext(ctx, "bash", append([]string{c.script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The script sends the brokers' output to their logs, so nothing it starts should hold these pipes
	// open; if something ever does, Wait still returns.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("no result after %s: %w", timeout, ctxErr)
		}
		return stdout.String(), &ScriptError{Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}

// locateScript finds cluster.sh relative to this source file. A binary built with -trimpath records a
// module-relative source path instead, so then it looks upward from the working directory (go test runs
// in the package under test) for the module's test/kafka/cluster.sh.
func locateScript() (string, error) {
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		p := filepath.Join(filepath.Dir(file), scriptRel)
		if isFile(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating cluster.sh: reading working directory: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "test", "kafka", "cluster.sh")
		if isFile(p) {
			return p, nil
		}
		if isFile(filepath.Join(dir, "go.mod")) || filepath.Dir(dir) == dir {
			tried = append(tried, p)
			break
		}
	}
	return "", fmt.Errorf("locating cluster.sh: not found at %s", strings.Join(tried, " nor "))
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
