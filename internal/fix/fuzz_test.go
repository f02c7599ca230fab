package fix

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/lint"
	"github.com/hy-home/hyhome/internal/policy"
)

// FuzzFix: on any input lint loads, fix --unsafe (every value given)
// either changes nothing or produces a file that loads and lints with
// fewer findings; it never panics. Crashers stay in testdata/fuzz/FuzzFix.
func FuzzFix(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/cases/*/in/compose.yaml")
	more, _ := filepath.Glob("../policy/testdata/*/*.yaml")
	for _, s := range append(append(seeds, more...), "../../examples/insecure/compose.yaml") {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("services:\n  a:\n    image: x\n    security_opt: []\n    cap_drop: ~\n"))
	f.Add([]byte("x-a: &a {security_opt: [apparmor=x]}\nservices:\n  a: {<<: *a, image: x}\n  b:\n    <<: [*a]\n    image: x\n"))
	f.Add([]byte("services:\n  a:\n    image: x\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n    environment: [DB_PASSWORD=x]\n"))
	f.Add([]byte("\xef\xbb\xbfservices:\r\n  é:\r\n    image: \"ü\"\r\n    labels: {a: b}"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) { fixOneInput(t, dir, data) })
}

// fixOneInput is FuzzFix's property on one input: what lint loads, fix
// plans from its own bytes, and the fixed file loads with fewer findings.
func fixOneInput(t *testing.T, dir string, data []byte) {
	sub, err := os.MkdirTemp(dir, "case")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sub)
	path := filepath.Join(sub, "compose.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := corpusOptions(path, true)
	opts.Lint.Paths = []string{path}
	opts.Lint.Policy = policy.Env{HostMemory: 64 << 30}
	ctx := context.Background()
	before, err := lint.Run(ctx, opts.Lint)
	if err != nil || len(before.Errors) > 0 {
		return // fix works on what lint loads
	}
	res, err := Plan(ctx, opts)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, e := range res.Edits {
		if strings.Contains(e.Reason, errRenderDefect) {
			t.Fatalf("%s\n--- input\n%q", e.Reason, data)
		}
	}
	if len(res.Files) == 0 {
		return
	}
	for _, fl := range res.Files {
		if !bytes.Equal(fl.Old, data) && fl.Path == path {
			t.Fatal("the planned file's original bytes are not the input")
		}
		if err := os.WriteFile(fl.Path, fl.New, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	after, err := lint.Run(ctx, opts.Lint)
	if err != nil || len(after.Errors) > 0 {
		t.Fatalf("the fixed file no longer loads: %v %v\n--- before\n%s\n--- after\n%s", err, after.Errors, data, res.Files[0].New)
	}
	unexempted := func(fs []policy.Finding) int {
		n := 0
		for _, f := range fs {
			if !f.Exempted {
				n++
			}
		}
		return n
	}
	if a, b := unexempted(after.Findings), unexempted(before.Findings); a >= b {
		t.Fatalf("fix changed the file but findings went from %d to %d\n--- before\n%s\n--- after\n%s", b, a, data, res.Files[0].New)
	}
}
