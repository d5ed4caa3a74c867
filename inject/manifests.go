package inject

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Manifests reads Kubernetes manifests (multi-document YAML, JSON, or a List) from r, adds the sidecar to
// every workload that asks for it, and writes the result to w. A document that does not change is written
// back byte for byte; in a changed one only the sidecar is new, and the rest keeps its key order, comments
// and quoting (a JSON document is written as YAML with sorted keys). Every problem in every document is
// reported in one error, and then nothing is written.
func Manifests(r io.Reader, w io.Writer, cfg Config) error {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out bytes.Buffer
	var errs errorList
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading document %d: %w", n, err)
		}
		result, err := document(doc, cfg)
		if err != nil {
			errs.add(within(fmt.Sprintf("document %d", n), err))
			continue
		}
		if len(bytes.TrimSpace(result)) == 0 {
			continue
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(result)
		if !bytes.HasSuffix(result, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	if err := errs.err(); err != nil {
		return err
	}
	_, err := w.Write(out.Bytes())
	return err
}

// document injects into one document and returns what to write for it.
func document(doc []byte, cfg Config) ([]byte, error) {
	data, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	var v any
	if err := decodeJSON(data, &v); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return doc, nil
	}
	changed, err := objectOrList(obj, cfg)
	if err != nil || !changed {
		return doc, err
	}
	return rewrite(doc, obj)
}

// objectOrList injects into an object, or into every item of a List.
func objectOrList(obj map[string]any, cfg Config) (bool, error) {
	kind, _ := obj["kind"].(string)
	items, isList := obj["items"].([]any)
	if !isList || !strings.HasSuffix(kind, "List") {
		changed, err := Object(obj, "", cfg)
		if err != nil {
			return false, within(describe(obj), err)
		}
		return changed, nil
	}
	var errs errorList
	changed := false
	for i, it := range items {
		item, ok := it.(map[string]any)
		if !ok {
			continue
		}
		c, err := objectOrList(item, cfg)
		if err != nil {
			errs.add(within(fmt.Sprintf("item %d", i), err))
		}
		changed = changed || c
	}
	return changed, errs.err()
}

// describe names an object in an error: kind namespace/name.
func describe(obj map[string]any) string {
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		name, _ = meta["generateName"].(string)
	}
	if ns, _ := meta["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}
	return kind + " " + name
}

// within prefixes an error with where it happened; each error of a joined list gets the prefix, so every
// line of the message says where.
func within(where string, err error) error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var errs errorList
		for _, e := range joined.Unwrap() {
			errs.add(within(where, e))
		}
		return errs.err()
	}
	return fmt.Errorf("%s: %w", where, err)
}
