package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v4"
)

// deployDir is this directory; tests run from it, but helpers that hand
// paths to external programs make them absolute first.
func deployDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the deploy directory")
	}
	return filepath.Dir(file)
}

func repoRoot(t testing.TB) string { return filepath.Dir(deployDir(t)) }

// inCI reports whether missing tools must fail the test instead of
// skipping it: CI installs them (.ci/run), a laptop may not have them.
func inCI() bool { return os.Getenv("CI") == "true" }

// tool returns the path of the first of names found on PATH. Without it the
// test is skipped, except under CI=true where that is a failure.
func tool(t testing.TB, why string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := strings.Join(names, " or ") + " not found on PATH (" + why + "); install Debian's prometheus and prometheus-alertmanager packages"
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runTool runs a command with a deadline and returns its combined output.
func runTool(t testing.TB, dir string, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// --- YAML node surgery for the explicit substitutions of the alert path
// test. Every helper fails the test when the path it expects is missing, so
// a change to the stack's files that the substitution no longer matches is
// caught instead of silently testing something else.

func parseYAML(t testing.TB, data []byte) *yaml.Node {
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

func emitYAML(t testing.TB, n *yaml.Node) []byte {
	t.Helper()
	b, err := yaml.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// child returns the value of key in mapping n.
func child(t testing.TB, n *yaml.Node, key string) *yaml.Node {
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

// findItem returns the mapping in sequence n whose key has value.
func findItem(t testing.TB, n *yaml.Node, key, value string) *yaml.Node {
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

// replaceScalar sets the scalar at key in mapping n to value after checking
// it currently holds want (empty want: any value).
func replaceScalar(t testing.TB, n *yaml.Node, key, want, value string) {
	t.Helper()
	v := child(t, n, key)
	if v.Kind != yaml.ScalarNode || (want != "" && v.Value != want) {
		t.Fatalf("%s at line %d is %q, the substitution expects %q", key, v.Line, v.Value, want)
	}
	v.Value = value
	v.Style = yaml.DoubleQuotedStyle
	v.Tag = "!!str"
}

// setValue replaces the value at key in mapping n with a new node.
func setValue(t testing.TB, n *yaml.Node, key string, value *yaml.Node) {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = value
			return
		}
	}
	t.Fatalf("key %q not found in the mapping at line %d", key, n.Line)
}

// deleteKey removes key from mapping n.
func deleteKey(t testing.TB, n *yaml.Node, key string) {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
	t.Fatalf("key %q not found in the mapping at line %d", key, n.Line)
}

// toNode converts a Go value into a YAML node.
func toNode(t testing.TB, v any) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		t.Fatal(err)
	}
	return &n
}
