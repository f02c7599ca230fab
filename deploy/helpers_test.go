package deploy

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/promtest"
	yaml "go.yaml.in/yaml/v4"
)

// deployDir is this directory; tests run from it, but helpers that hand
// paths to external programs make them absolute first.
func deployDir(t testing.TB) string {
	t.Helper()
	return filepath.Clean(promtest.DeployDir(t))
}

func repoRoot(t testing.TB) string { return filepath.Dir(deployDir(t)) }

// inCI reports whether missing tools must fail the test instead of
// skipping it: CI installs them (.ci/run), a laptop may not have them.
func inCI() bool { return promtest.InCI() }

// tool returns the path of the first of names found on PATH. Without it the
// test is skipped, except under CI=true where that is a failure.
func tool(t testing.TB, why string, names ...string) string {
	t.Helper()
	return promtest.Tool(t, why, names...)
}

// Processes and polling, shared with hyhome verify's tests (internal/promtest).

func startProcess(t *testing.T, dir, name, bin string, env []string, args ...string) {
	t.Helper()
	promtest.StartProcess(t, dir, name, bin, env, args...)
}

func freeAddr(t *testing.T) string { t.Helper(); return promtest.FreeAddr(t) }

func waitFor(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	promtest.WaitFor(t, timeout, what, check)
}

func waitReady(t *testing.T, u string) { t.Helper(); promtest.WaitReady(t, u) }

var httpClient = &http.Client{Timeout: 5 * time.Second}

// runTool runs a command with a deadline (none when timeout is 0: builds
// are bounded by the test binary's -timeout only) and returns its combined
// output.
func runTool(t testing.TB, dir string, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
	}
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

// --- YAML node surgery for explicit substitutions, shared with the alert
// path's (internal/promtest). Every helper fails the test when the path it
// expects is missing, so a change to the stack's files that a substitution
// no longer matches is caught instead of silently testing something else.

func parseYAML(t testing.TB, data []byte) *yaml.Node { t.Helper(); return promtest.ParseYAML(t, data) }

func child(t testing.TB, n *yaml.Node, key string) *yaml.Node {
	t.Helper()
	return promtest.Child(t, n, key)
}
