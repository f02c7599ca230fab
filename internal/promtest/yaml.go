package promtest

import (
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

// YAML node surgery for explicit substitutions. Every helper fails the test
// when the path it expects is missing.

// ParseYAML parses a single YAML document and returns its root node.
func ParseYAML(t testing.TB, data []byte) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		t.Fatal("not a single YAML document")
	}
	return doc.Content[0]
}

// EmitYAML marshals a node.
func EmitYAML(t testing.TB, n *yaml.Node) []byte {
	t.Helper()
	b, err := yaml.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Child returns the value of key in mapping n.
func Child(t testing.TB, n *yaml.Node, key string) *yaml.Node {
	t.Helper()
	if n.Kind != yaml.MappingNode {
		t.Fatalf("looking up %q: line %d is not a mapping", key, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	t.Fatalf("key %q not found in the mapping at line %d", key, n.Line)
	return nil
}

// FindItem returns the mapping in sequence n whose key has value.
func FindItem(t testing.TB, n *yaml.Node, key, value string) *yaml.Node {
	t.Helper()
	if n.Kind != yaml.SequenceNode {
		t.Fatalf("looking for %s=%s: line %d is not a sequence", key, value, n.Line)
	}
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(item.Content); i += 2 {
			if item.Content[i].Value == key && item.Content[i+1].Value == value {
				return item
			}
		}
	}
	t.Fatalf("no item with %s=%s in the sequence at line %d", key, value, n.Line)
	return nil
}

// ReplaceScalar sets the scalar at key in mapping n to value after checking
// it currently holds want (empty want: any value).
func ReplaceScalar(t testing.TB, n *yaml.Node, key, want, value string) {
	t.Helper()
	v := Child(t, n, key)
	if v.Kind != yaml.ScalarNode || (want != "" && v.Value != want) {
		t.Fatalf("%s at line %d is %q, the substitution expects %q", key, v.Line, v.Value, want)
	}
	v.Value = value
	v.Style = yaml.DoubleQuotedStyle
	v.Tag = "!!str"
}

// SetValue replaces the value at key in mapping n with a new node.
func SetValue(t testing.TB, n *yaml.Node, key string, value *yaml.Node) {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = value
			return
		}
	}
	t.Fatalf("key %q not found in the mapping at line %d", key, n.Line)
}

// DeleteKey removes key from mapping n.
func DeleteKey(t testing.TB, n *yaml.Node, key string) {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
	t.Fatalf("key %q not found in the mapping at line %d", key, n.Line)
}

// ToNode converts a Go value into a YAML node.
func ToNode(t testing.TB, v any) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		t.Fatal(err)
	}
	return &n
}
