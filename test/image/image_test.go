package image

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	repoRoot   = "../.."
	binaryPath = "/kafka-sidecar"
	mainPkg    = "./cmd/kafka-sidecar"
	// wantLdflags is the stamping the release process relies on: symbols stripped, version in main.version.
	wantLdflags = "-s -w -X main.version=${VERSION}"
)

func parseRepoDockerfile(t *testing.T) *Dockerfile {
	t.Helper()
	d, err := ParseFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// buildStage returns the stage that runs go build, and that RUN instruction.
func buildStage(t *testing.T, d *Dockerfile) (Stage, Instruction) {
	t.Helper()
	for _, s := range d.Stages {
		for _, run := range s.Find("RUN") {
			if strings.Contains(run.Args, "go build") {
				return s, run
			}
		}
	}
	t.Fatal("no stage runs go build")
	return Stage{}, Instruction{}
}

// assignment matches a leading VAR=value word of a shell command.
var assignment = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)

// goBuild splits the RUN line into its leading VAR=value assignments and the go build arguments.
func goBuild(t *testing.T, run Instruction) (env map[string]string, args []string) {
	t.Helper()
	words, err := SplitWords(run.Args)
	if err != nil {
		t.Fatalf("line %d: %v", run.Line, err)
	}
	env = map[string]string{}
	for len(words) > 0 && assignment.MatchString(words[0]) {
		k, v, _ := strings.Cut(words[0], "=")
		env[k] = v
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("line %d: %q is not one go build command (no && chains: the test runs exactly this line)", run.Line, run.Args)
	}
	return env, words[2:]
}

// flagValue returns the value after a flag in go build arguments.
func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// argDeclared reports whether an ARG for name comes before line in the stage: ARGs are scoped to a stage, and
// an undeclared one expands to nothing.
func argDeclared(s Stage, name string, line int) bool {
	for _, in := range s.Find("ARG") {
		if in.Line < line && (in.Args == name || strings.HasPrefix(in.Args, name+"=")) {
			return true
		}
	}
	return false
}

func TestDockerfileStages(t *testing.T) {
	d := parseRepoDockerfile(t)
	if len(d.Stages) < 2 {
		t.Fatalf("%d stage(s): want a build stage and a runtime stage", len(d.Stages))
	}
	final := d.Final()
	build, _ := buildStage(t, d)
	if build.Name == "" || build.Name == final.Name {
		t.Fatalf("the go build stage must be a named stage before the final one (got %q)", build.Name)
	}

	t.Run("distroless static nonroot base", func(t *testing.T) {
		image, tag, _ := strings.Cut(strings.SplitN(final.Base, "@", 2)[0], ":")
		if !strings.HasPrefix(image, "gcr.io/distroless/static") {
			t.Errorf("final base %s: want gcr.io/distroless/static*", final.Base)
		}
		if !strings.HasPrefix(tag, "nonroot") {
			t.Errorf("final base tag %q: want a nonroot tag", tag)
		}
		if len(final.Find("RUN")) > 0 {
			t.Error("the final stage runs commands: a distroless image has no shell")
		}
	})

	t.Run("numeric non-root user", func(t *testing.T) {
		users := final.Find("USER")
		if len(users) == 0 {
			t.Fatal("the final stage sets no USER")
		}
		// The last USER wins; Kubernetes can only verify runAsNonRoot for a numeric uid.
		for _, id := range strings.Split(users[len(users)-1].Args, ":") {
			if n, err := strconv.Atoi(id); err != nil || n <= 0 {
				t.Errorf("USER %s: want numeric, non-zero ids", users[len(users)-1].Args)
			}
		}
	})

	t.Run("binary copied from the build stage", func(t *testing.T) {
		var copied bool
		for _, c := range final.Find("COPY") {
			from, _ := c.Flag("from")
			if from == build.Name && strings.HasSuffix(c.Args, " "+binaryPath) {
				copied = true
			}
		}
		if !copied {
			t.Errorf("no COPY --from=%s ... %s in the final stage", build.Name, binaryPath)
		}
		entry := final.Find("ENTRYPOINT")
		if len(entry) == 0 {
			t.Fatal("no ENTRYPOINT")
		}
		if args, ok := entry[len(entry)-1].ExecForm(); !ok || len(args) == 0 || args[0] != binaryPath {
			t.Errorf("ENTRYPOINT %s: want the exec form starting with %s (no shell in the image)", entry[len(entry)-1].Args, binaryPath)
		}
	})

	t.Run("OCI labels", func(t *testing.T) {
		labels := map[string]string{}
		var line int
		for _, in := range final.Find("LABEL") {
			l, err := Labels(in.Args)
			if err != nil {
				t.Fatalf("line %d: %v", in.Line, err)
			}
			for k, v := range l {
				labels[k] = v
			}
			line = in.Line
		}
		for _, key := range []string{"title", "description", "source", "version", "revision", "created"} {
			if labels["org.opencontainers.image."+key] == "" {
				t.Errorf("no org.opencontainers.image.%s label", key)
			}
		}
		for key, arg := range map[string]string{"version": "VERSION", "revision": "REVISION", "created": "CREATED"} {
			if labels["org.opencontainers.image."+key] != "${"+arg+"}" {
				t.Errorf("org.opencontainers.image.%s = %q, want ${%s}", key, labels["org.opencontainers.image."+key], arg)
			} else if !argDeclared(final, arg, line) {
				t.Errorf("the final stage labels ${%s} without declaring ARG %s: it would be empty", arg, arg)
			}
		}
	})
}

func TestDockerfileBuildFlags(t *testing.T) {
	d := parseRepoDockerfile(t)
	stage, run := buildStage(t, d)
	env, args := goBuild(t, run)
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("CGO_ENABLED=%q, want 0: the distroless static base has no libc", env["CGO_ENABLED"])
	}
	if !slices.Contains(args, "-trimpath") {
		t.Errorf("go build %q lacks -trimpath", args)
	}
	if got, _ := flagValue(args, "-ldflags"); got != wantLdflags {
		t.Errorf("-ldflags %q, want %q", got, wantLdflags)
	}
	if !argDeclared(stage, "VERSION", run.Line) {
		t.Error("go build uses ${VERSION} without an ARG VERSION before it in its stage")
	}
	if args[len(args)-1] != mainPkg {
		t.Errorf("go build builds %s, want %s", args[len(args)-1], mainPkg)
	}
}

func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	for _, want := range []string{".git", "**/*_test.go"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	// The build needs the module files and the sources of cmd/ and the packages it imports.
	for _, p := range patterns {
		for _, needed := range []string{"go.mod", "go.sum", "*.go", "**/*.go", "cmd", "*"} {
			if p == needed {
				t.Errorf(".dockerignore excludes %s, which go build needs", p)
			}
		}
	}
}

// TestBuildWithDockerfileFlags builds the binary with the Dockerfile's own go build line and checks what the
// image would ship: a static, stripped, trimmed binary that reports the stamped version.
func TestBuildWithDockerfileFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	if _, err := os.Stat(filepath.Join(repoRoot, mainPkg)); err != nil {
		t.Fatalf("%s: %v", mainPkg, err)
	}
	_, run := buildStage(t, parseRepoDockerfile(t))
	env, args := goBuild(t, run)

	const version = "v0.0.0-imagetest"
	out := filepath.Join(t.TempDir(), "kafka-sidecar")
	vars := map[string]string{"VERSION": version, "TARGETOS": "linux", "TARGETARCH": runtime.GOARCH}
	expand := func(s string) string { return os.Expand(s, func(k string) string { return vars[k] }) }
	for i, a := range args {
		args[i] = expand(a)
		if i > 0 && args[i-1] == "-o" {
			args[i] = out
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+expand(v))
	}
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, output)
	}

	info, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatalf("reading build info: %v", err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	// Build info leaves -ldflags out under -trimpath, so the stamp and the stripping are checked in the binary.
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(version)) {
		t.Errorf("the binary does not contain the stamped version %s", version)
	}

	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("reading the ELF binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary keeps its symbol table: -s did not apply")
	}
	for _, sec := range f.Sections {
		if strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			t.Errorf("the binary keeps DWARF section %s: -w did not apply", sec.Name)
		}
	}

	if runtime.GOOS != "linux" {
		return // built for the image's OS; it cannot run here
	}
	ctx, cancel = context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got, err := exec.CommandContext(ctx, out, "version").Output()
	if err != nil {
		t.Fatalf("kafka-sidecar version: %v", err)
	}
	if !bytes.Contains(got, []byte(version)) {
		t.Errorf("kafka-sidecar version printed %q, want %s", got, version)
	}
}
