package charts

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// configDir holds the binary's configuration; its struct tags name every variable the sidecar reads.
const configDir = "../config"

// configEnv reads the env:"..." struct tags of the config package's source. It parses rather than imports the
// package, so the chart tests do not depend on it compiling.
func configEnv(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(configDir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s (%v)", configDir, err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parsing %s: %v", file, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			field, ok := n.(*ast.Field)
			if !ok || field.Tag == nil {
				return true
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				return true
			}
			if name, _, _ := strings.Cut(reflect.StructTag(tag).Get("env"), ","); strings.HasPrefix(name, "SIDECAR_") {
				names = append(names, name)
			}
			return true
		})
	}
	if len(names) == 0 {
		t.Fatalf("found no env tags in %s", configDir)
	}
	return names
}

// The chart and the binary agree on the variables: each one the binary reads can be set from values, and the
// chart sets none the binary ignores.
func TestChartCoversConfigVariables(t *testing.T) {
	binary := configEnv(t)
	for _, name := range binary {
		if !slices.Contains(contractEnv, name) {
			t.Errorf("the binary reads %s, which the chart cannot set", name)
		}
	}
	for _, name := range contractEnv {
		if !slices.Contains(binary, name) {
			t.Errorf("the chart sets %s, which the binary does not read", name)
		}
	}
}
