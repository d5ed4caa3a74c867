package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"
)

// Field describes one configuration variable, read from the Config struct's tags.
type Field struct {
	// Key is the environment variable, e.g. SIDECAR_APP_URL.
	Key string
	// Default is the value taken when the variable is unset ("" when there is none).
	Default string
	// HasDefault tells an empty default apart from none.
	HasDefault bool
	// Required is true for variables that must be set.
	Required bool
	// EmptyOK is true when an explicitly empty value has a meaning of its own.
	EmptyOK bool
	// Help is the one-line meaning.
	Help string

	name string
	typ  reflect.Type
}

// Fields lists every variable of Config in declaration order.
func Fields() []Field {
	f, err := fieldsOf()
	if err != nil {
		panic(err) // the struct tags are fixed at compile time; a bad one is a programming error
	}
	return f
}

func fieldsOf() ([]Field, error) {
	t := reflect.TypeOf(Config{})
	out := make([]Field, 0, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("env")
		if tag == "" {
			continue
		}
		parts := strings.Split(tag, ",")
		def, hasDef := sf.Tag.Lookup("envDefault")
		f := Field{
			Key:        parts[0],
			Default:    def,
			HasDefault: hasDef,
			EmptyOK:    sf.Tag.Get("empty") == "ok",
			Help:       sf.Tag.Get("help"),
			name:       sf.Name,
			typ:        sf.Type,
		}
		for _, opt := range parts[1:] {
			if opt == "required" {
				f.Required = true
			}
		}
		if f.Help == "" {
			return nil, fmt.Errorf("config field %s has no help tag", sf.Name)
		}
		out = append(out, f)
	}
	return out, nil
}

// OTelFields are the standard OpenTelemetry variables the sidecar reads for tracing: not part of Config (the
// OpenTelemetry SDK reads them), but checked by LoadFrom and listed by WriteHelp all the same.
func OTelFields() []Field {
	return []Field{
		{Key: "OTEL_TRACES_EXPORTER", Default: "none", HasDefault: true, Help: "none (no tracing, no cost), otlp or console"},
		{Key: "OTEL_EXPORTER_OTLP_ENDPOINT", Default: "http://localhost:4318", HasDefault: true, Help: "the OTLP collector"},
		{Key: "OTEL_EXPORTER_OTLP_PROTOCOL", Default: "http/protobuf", HasDefault: true, Help: "http/protobuf or grpc"},
		{Key: "OTEL_TRACES_SAMPLER", Default: "parentbased_always_on", HasDefault: true, Help: "always_on, always_off, traceidratio or parentbased_* of these"},
		{Key: "OTEL_TRACES_SAMPLER_ARG", Help: "the sampling ratio of the traceidratio samplers, 0 to 1"},
		{Key: "OTEL_SERVICE_NAME", Default: "kafka-sidecar", HasDefault: true, Help: "service.name of the spans"},
		{Key: "OTEL_RESOURCE_ATTRIBUTES", Help: "further resource attributes, key=value,..."},
	}
}

// WriteHelp prints every variable with its default and meaning, generated from the Config struct, and then
// the OpenTelemetry variables.
func WriteHelp(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, f := range append(Fields(), OTelFields()...) {
		def := f.Default
		switch {
		case f.Required:
			def = "(required)"
		case f.Key == "SIDECAR_REDIS_URL":
			def = "(required when SIDECAR_DEDUP=redis)"
		case !f.HasDefault:
			def = "(empty)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Key, def, f.Help)
	}
	return tw.Flush()
}

// Effective returns every variable with the value in force, formatted the way it is written in the environment
// (durations as 30s, lists comma-separated). Secrets show as [redacted]; URLs are returned as they are, so the
// caller redacts their credentials before printing them.
func (c *Config) Effective() map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(c).Elem()
	for _, f := range Fields() {
		out[f.Key] = formatValue(v.FieldByName(f.name))
	}
	return out
}

func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Secret:
		return x.String()
	case fmt.Stringer:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	case []time.Duration:
		parts := make([]string, len(x))
		for i, d := range x {
			parts[i] = d.String()
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}
