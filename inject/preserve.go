package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// rewrite writes the changed object obj in the shape of the document it came from: the YAML node tree of doc
// is kept wherever its value is unchanged (key order, comments, quoting, flow style), and only what differs
// (the added or refreshed sidecar) is encoded anew. Values are compared as Kubernetes reads YAML
// (sigs.k8s.io/yaml), so an unchanged node is never rewritten.
func rewrite(doc []byte, obj map[string]any) ([]byte, error) {
	var root yaml3.Node
	if err := yaml3.Unmarshal(doc, &root); err != nil || root.Kind != yaml3.DocumentNode || len(root.Content) != 1 || root.Content[0].Style&yaml3.FlowStyle != 0 {
		// JSON, or YAML this parser reads differently: plain YAML with sorted keys.
		return sortedYAML(obj)
	}
	node, err := reconcile(root.Content[0], obj)
	if err != nil {
		return nil, err
	}
	root.Content[0] = node
	var out bytes.Buffer
	enc := yaml3.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	// The result must read back as obj; if the node surgery went wrong anywhere, fall back.
	if same, err := sameAsYAML(out.Bytes(), obj); err != nil || !same {
		return sortedYAML(obj)
	}
	return out.Bytes(), nil
}

// reconcile returns node changed to hold want, reusing every part of node that already does. Mappings and
// sequences are walked; a scalar is kept when it reads as the wanted value.
func reconcile(node *yaml3.Node, want any) (*yaml3.Node, error) {
	if node.Kind == yaml3.ScalarNode {
		if same, err := sameAsYAML(nodeBytes(node), want); err == nil && same {
			return node, nil
		}
	}
	switch w := want.(type) {
	case map[string]any:
		if node.Kind != yaml3.MappingNode || node.Tag == "!!merge" {
			break
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			key := node.Content[i].Value
			v, ok := w[key]
			if !ok || seen[key] {
				return fresh(want)
			}
			seen[key] = true
			child, err := reconcile(node.Content[i+1], v)
			if err != nil {
				return nil, err
			}
			node.Content[i+1] = child
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			if !seen[k] {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, err := fresh(w[k])
			if err != nil {
				return nil, err
			}
			node.Content = append(node.Content, &yaml3.Node{Kind: yaml3.ScalarNode, Tag: "!!str", Value: k}, v)
		}
		return node, nil
	case []any:
		if node.Kind != yaml3.SequenceNode || len(node.Content) > len(w) {
			break
		}
		for i := range node.Content {
			child, err := reconcile(node.Content[i], w[i])
			if err != nil {
				return nil, err
			}
			node.Content[i] = child
		}
		for _, v := range w[len(node.Content):] {
			n, err := fresh(v)
			if err != nil {
				return nil, err
			}
			node.Content = append(node.Content, n)
		}
		return node, nil
	}
	return fresh(want)
}

// fresh encodes a value as a new block-style node, keys sorted but name first.
func fresh(v any) (*yaml3.Node, error) {
	data, err := sortedYAML(v)
	if err != nil {
		return nil, err
	}
	var doc yaml3.Node
	if err := yaml3.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	nameFirst(doc.Content[0])
	return doc.Content[0], nil
}

// nameFirst moves the name key to the front of every mapping, as Kubernetes manifests are usually written
// (- name: kafka-sidecar, then the rest in order).
func nameFirst(n *yaml3.Node) {
	if n.Kind == yaml3.MappingNode {
		for i := 2; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" {
				pair := []*yaml3.Node{n.Content[i], n.Content[i+1]}
				n.Content = append(pair, append(n.Content[:i:i], n.Content[i+2:]...)...)
				break
			}
		}
	}
	for _, c := range n.Content {
		nameFirst(c)
	}
}

func sortedYAML(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	return yaml.JSONToYAML(data)
}

func nodeBytes(n *yaml3.Node) []byte {
	data, err := yaml3.Marshal(n)
	if err != nil {
		return nil
	}
	return data
}

// sameAsYAML reports whether YAML text means v, read as Kubernetes reads it.
func sameAsYAML(text []byte, v any) (bool, error) {
	data, err := yaml.YAMLToJSON(text)
	if err != nil {
		return false, err
	}
	var got any
	if err := decodeJSON(data, &got); err != nil {
		return false, err
	}
	return sameJSON(got, v), nil
}
