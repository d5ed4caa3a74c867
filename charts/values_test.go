package charts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"
)

// documentedValue is a key of values.yaml with a "# --" comment; keys below it are its own business (for
// example a Kubernetes securityContext).
type documentedValue struct {
	path string
	line int
}

// documentedValues walks values.yaml and returns every documented key. A key without a "# --" comment must
// be a section (a non-empty map) whose own keys are documented.
func documentedValues(t *testing.T, dir string) []documentedValue {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml3.Node
	if err := yaml3.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parsing values.yaml: %v", err)
	}
	var out []documentedValue
	var walk func(prefix string, m *yaml3.Node)
	walk = func(prefix string, m *yaml3.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			key, value := m.Content[i], m.Content[i+1]
			path := prefix + key.Value
			switch {
			case strings.Contains(key.HeadComment, "# -- "):
				out = append(out, documentedValue{path, key.Line})
			case value.Kind == yaml3.MappingNode && len(value.Content) > 0:
				walk(path+".", value)
			default:
				t.Errorf("values.yaml:%d: %s has no \"# --\" comment", key.Line, path)
			}
		}
	}
	walk("", doc.Content[0])
	return out
}

// charts are the chart directories and how many documented values each has at least.
var charts = map[string]int{chartDir: 100, injectorChartDir: 30}

func TestEveryValueIsDocumented(t *testing.T) {
	for dir, least := range charts {
		t.Run(dir, func(t *testing.T) {
			values := documentedValues(t, dir)
			if len(values) < least {
				t.Fatalf("found %d documented values, want the whole file", len(values))
			}
			readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range values {
				if !strings.Contains(string(readme), "| `"+v.path+"` |") {
					t.Errorf("values.yaml:%d: %s is missing from the README values table", v.line, v.path)
				}
			}
		})
	}
}

// Every key the schema declares exists in values.yaml, so the schema cannot accept a setting the chart
// neither documents nor reads.
func TestSchemaMatchesValues(t *testing.T) {
	for dir := range charts {
		t.Run(dir, func(t *testing.T) { schemaMatchesValues(t, dir) })
	}
}

func schemaMatchesValues(t *testing.T, dir string) {
	raw, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("parsing values.schema.json: %v", err)
	}
	documented := map[string]bool{}
	for _, v := range documentedValues(t, dir) {
		documented[v.path] = true
	}
	definitions, _ := schema["definitions"].(map[string]any)
	resolve := func(node map[string]any) map[string]any {
		for {
			ref, ok := node["$ref"].(string)
			if !ok {
				return node
			}
			node, _ = definitions[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		}
	}
	var walk func(prefix string, node map[string]any)
	walk = func(prefix string, node map[string]any) {
		node = resolve(node)
		if node["additionalProperties"] != false {
			t.Errorf("schema at %q accepts unknown keys", prefix)
		}
		props, _ := node["properties"].(map[string]any)
		for name, p := range props {
			path := prefix + name
			child := resolve(p.(map[string]any))
			if documented[path] {
				continue
			}
			if _, nested := child["properties"]; nested {
				walk(path+".", child)
				continue
			}
			t.Errorf("schema declares %s, which values.yaml does not document", path)
		}
	}
	walk("", schema)
}
