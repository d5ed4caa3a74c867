package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
)

const injectUsage = `Usage:
  kafka-sidecar inject [-f FILE] [--defaults FILE] [flags] > injected.yaml

Reads Kubernetes manifests (multi-document YAML, JSON or a List) from FILE or stdin and writes them to
stdout with kafka-sidecar added as a native sidecar to every Deployment, StatefulSet, DaemonSet, Job,
CronJob and Pod whose pod template has the annotation kafka-sidecar.io/inject: "true". The other
kafka-sidecar.io/ annotations configure it (README: "Add kafka-sidecar to an existing app"); the flags
below are defaults for what they leave out. Everything else is written back unchanged; injecting twice
gives the same output as injecting once. A bad annotation: exit 2 naming it, nothing written.

Flags:
`

// envFlag collects repeated --env NAME=VALUE flags.
type envFlag map[string]string

func (e envFlag) String() string { return "" }

func (e envFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	e[name] = value
	return nil
}

// defaultsFlagSet returns a flag set that prints usage and then the flags on stderr.
func defaultsFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// injectFlags registers the defaults flags shared by inject and injector on fs; the Defaults are filled in
// when fs parses.
func injectFlags(fs *flag.FlagSet) *inject.Defaults {
	d := &inject.Defaults{Env: map[string]string{}}
	fs.StringVar(&d.Image, "image", "", "sidecar image (default "+defaultImage()+")")
	fs.StringVar(&d.Brokers, "brokers", "", "default SIDECAR_KAFKA_BROKERS (host:port,...)")
	fs.StringVar(&d.ConfigMap, "config-map", "", "ConfigMap with SIDECAR_* keys expected in each namespace (optional in the pod)")
	fs.StringVar(&d.Secret, "secret", "", "Secret with SIDECAR_* keys expected in each namespace (optional in the pod)")
	fs.Var(envFlag(d.Env), "env", "a literal SIDECAR_* variable, NAME=VALUE (repeatable)")
	fs.StringVar(&d.CPURequest, "cpu-request", "", "sidecar CPU request (default "+inject.DefaultCPURequest+")")
	fs.StringVar(&d.MemoryRequest, "memory-request", "", "sidecar memory request (default "+inject.DefaultMemoryRequest+")")
	fs.StringVar(&d.MemoryLimit, "memory-limit", "", "sidecar memory limit (default "+inject.DefaultMemoryLimit+")")
	fs.IntVar(&d.AdminPort, "admin-port", 0, fmt.Sprintf("sidecar admin port (default %d)", inject.DefaultAdminPort))
	return d
}

// defaultImage is the sidecar image of this build.
func defaultImage() string {
	if version == "dev" || version == "" {
		return inject.DefaultImageRepository + ":latest"
	}
	return inject.DefaultImageRepository + ":" + strings.TrimPrefix(version, "v")
}

// loadDefaults lays the defaults file (when given) over base, and the flags over both.
func loadDefaults(path string, base, flags inject.Defaults) (inject.Config, error) {
	var cfg inject.Config
	if path != "" {
		var err error
		if cfg, err = inject.LoadConfig(path); err != nil {
			return cfg, err
		}
	}
	cfg.Defaults = base.Over(cfg.Defaults).Over(flags)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("flags: %w", err)
	}
	return cfg, nil
}

func runInject(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := defaultsFlagSet("inject", injectUsage, stderr)
	file := fs.String("f", "", "manifests to read (default stdin)")
	defaultsFile := fs.String("defaults", "", "defaults file (the injector's ConfigMap format); flags win over it")
	flags := injectFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "inject: unexpected arguments %q (read a file with -f)\n", fs.Args())
		return exitConfig
	}
	cfg, err := loadDefaults(*defaultsFile, inject.Defaults{Image: defaultImage()}, *flags)
	if err != nil {
		fmt.Fprintln(stderr, "inject:", err)
		return exitConfig
	}
	in := stdin
	if *file != "" && *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintln(stderr, "inject:", err)
			return exitFatal
		}
		defer f.Close()
		in = f
	}
	if err := inject.Manifests(in, stdout, cfg); err != nil {
		fmt.Fprintln(stderr, "inject:", err)
		var aerr *inject.AnnotationError
		if errors.As(err, &aerr) {
			return exitConfig
		}
		return exitFatal
	}
	return exitOK
}
