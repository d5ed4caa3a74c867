package inject

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Defaults are the cluster-wide (or namespace-wide) settings a pod's annotations override. Empty fields mean
// "not set". The same YAML shape is the file given to `inject --defaults` and the injector's ConfigMap.
type Defaults struct {
	// Image is the sidecar image.
	Image string `json:"image,omitempty"`
	// Brokers is SIDECAR_KAFKA_BROKERS, comma-separated host:port.
	Brokers string `json:"brokers,omitempty"`
	// ConfigMap and Secret name objects expected in each pod's namespace whose SIDECAR_* keys reach the
	// sidecar. They are optional (a namespace without them still starts) and come before the pod's own
	// ConfigMap and Secret, which therefore win.
	ConfigMap string `json:"configMap,omitempty"`
	Secret    string `json:"secret,omitempty"`
	// Env holds literal SIDECAR_* variables. They win over every ConfigMap and Secret; annotations win over
	// them.
	Env map[string]string `json:"env,omitempty"`
	// CPURequest, MemoryRequest and MemoryLimit are the sidecar's resources.
	CPURequest    string `json:"cpuRequest,omitempty"`
	MemoryRequest string `json:"memoryRequest,omitempty"`
	MemoryLimit   string `json:"memoryLimit,omitempty"`
	// AdminPort is the port of /healthz, /readyz and /metrics.
	AdminPort int `json:"adminPort,omitempty"`
}

// The defaults of the defaults: what applies when neither an annotation nor a Defaults field says otherwise.
const (
	DefaultImageRepository = "ghcr.io/kafka-sidecar/kafka-sidecar"
	DefaultCPURequest      = "50m"
	DefaultMemoryRequest   = "64Mi"
	DefaultMemoryLimit     = "256Mi"
	DefaultAdminPort       = 9464
)

// Validate checks every field as the matching annotation would be checked.
func (d Defaults) Validate() error {
	var errs errorList
	check := func(field, value string, fn func(string) string) {
		if value == "" {
			return
		}
		if reason := fn(value); reason != "" {
			errs.add(fmt.Errorf("%s: %q: %s", field, value, reason))
		}
	}
	check("image", d.Image, checkImage)
	check("brokers", d.Brokers, func(v string) string { _, r := parseBrokers(v); return r })
	check("configMap", d.ConfigMap, checkObjectName)
	check("secret", d.Secret, checkObjectName)
	check("cpuRequest", d.CPURequest, checkQuantity)
	check("memoryRequest", d.MemoryRequest, checkQuantity)
	check("memoryLimit", d.MemoryLimit, checkQuantity)
	if d.AdminPort < 0 || d.AdminPort > 65535 {
		errs.add(fmt.Errorf("adminPort: %d: want a port number from 1 to 65535", d.AdminPort))
	}
	for _, name := range slices.Sorted(maps.Keys(d.Env)) {
		switch {
		case !strings.HasPrefix(name, "SIDECAR_"):
			errs.add(fmt.Errorf("env: %q: only SIDECAR_* variables are allowed", name))
		case name == "SIDECAR_ADMIN_ADDR":
			errs.add(fmt.Errorf("env: %q: set adminPort instead", name))
		case name == "SIDECAR_KAFKA_INSTANCE_ID":
			errs.add(fmt.Errorf("env: %q: the instance ID is the pod name where names are stable (annotation %s)", name, AnnotationStaticMembership))
		}
	}
	return errs.err()
}

// Over returns d with every field set in o replacing d's (env merged by name).
func (d Defaults) Over(o Defaults) Defaults {
	pick := func(base, over string) string {
		if over != "" {
			return over
		}
		return base
	}
	r := Defaults{
		Image:         pick(d.Image, o.Image),
		Brokers:       pick(d.Brokers, o.Brokers),
		ConfigMap:     pick(d.ConfigMap, o.ConfigMap),
		Secret:        pick(d.Secret, o.Secret),
		CPURequest:    pick(d.CPURequest, o.CPURequest),
		MemoryRequest: pick(d.MemoryRequest, o.MemoryRequest),
		MemoryLimit:   pick(d.MemoryLimit, o.MemoryLimit),
		AdminPort:     d.AdminPort,
	}
	if o.AdminPort != 0 {
		r.AdminPort = o.AdminPort
	}
	if len(d.Env)+len(o.Env) > 0 {
		r.Env = make(map[string]string, len(d.Env)+len(o.Env))
		for k, v := range d.Env {
			r.Env[k] = v
		}
		for k, v := range o.Env {
			r.Env[k] = v
		}
	}
	return r
}

// Config is the defaults file: cluster-wide Defaults, and per-namespace Defaults laid over them.
type Config struct {
	Defaults   `json:",inline"`
	Namespaces map[string]Defaults `json:"namespaces,omitempty"`
}

// For returns the defaults that apply in a namespace.
func (c Config) For(namespace string) Defaults {
	if ns, ok := c.Namespaces[namespace]; ok {
		return c.Defaults.Over(ns)
	}
	return c.Defaults
}

// ParseConfig reads a defaults file (YAML or JSON), strictly: an unknown field is an error.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("parsing defaults: %w", err)
	}
	var errs errorList
	if err := c.Validate(); err != nil {
		errs.add(err)
	}
	for _, ns := range slices.Sorted(maps.Keys(c.Namespaces)) {
		if err := c.Namespaces[ns].Validate(); err != nil {
			errs.add(fmt.Errorf("namespaces.%s: %w", ns, err))
		}
	}
	if err := errs.err(); err != nil {
		return Config{}, fmt.Errorf("parsing defaults: %w", err)
	}
	return c, nil
}

// LoadConfig reads a defaults file from disk.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading defaults: %w", err)
	}
	return ParseConfig(data)
}

// errorList collects errors to report them all at once.
type errorList []error

func (l *errorList) add(err error) { *l = append(*l, err) }

func (l errorList) err() error { return errors.Join(l...) }
