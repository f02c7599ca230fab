package policy_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// layerBelow are the only packages of this module the rules may depend on:
// the model they are written against and the ADR reader exemptions cite
// (with what it needs). A source (compose, engine, audit, guard, traefik's
// parsing) builds workloads; a rule that imports one would parse.
var layerBelow = map[string]bool{
	"internal/workload": true,
	"internal/adr":      true,
	"internal/safefile": true,
	"internal/yamlerr":  true, // how a YAML error is worded (through adr)
}

// TestPolicyImportsNoSource: `go list -deps ./internal/policy` names no
// source package, so every rule reads only what the sources put on the
// workload.
func TestPolicyImportsNoSource(t *testing.T) {
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goCmd, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const module = "github.com/hy-home/hyhome/"
	self := module + "internal/policy"
	for _, p := range strings.Fields(string(out)) {
		rel, ours := strings.CutPrefix(p, module)
		if !ours || p == self {
			continue
		}
		if !layerBelow[rel] {
			t.Errorf("internal/policy depends on %s: rules read workloads, the sources fill them", rel)
		}
	}
}
