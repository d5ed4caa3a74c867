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

// WriteHelp prints every variable with its default and meaning, generated from the Config struct.
func WriteHelp(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, f := range Fields() {
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
