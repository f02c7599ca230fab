package lint

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
)

func TestRunDirectoryCollectsLoadErrorsPerProject(t *testing.T) {
	res, err := Run(context.Background(), Options{Paths: []string{"../compose/testdata/invalid", "../../examples"}, Policy: policy.Env{HostMemory: 8 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) == 0 {
		t.Error("the invalid fixtures loaded without errors")
	}
	if res.Services != 8 || len(res.Files) != 2 {
		t.Errorf("services=%d files=%v, want the 8 services of the two examples", res.Services, res.Files)
	}
	// Findings come grouped by the file defining each service.
	last := ""
	seen := map[string]bool{}
	for _, f := range res.Findings {
		if g := f.Group(); g != last {
			if seen[g] {
				t.Fatalf("findings of %s are not contiguous", g)
			}
			seen[g], last = true, g
		}
	}
	if !strings.HasSuffix(last, filepath.Join("insecure", "compose.yaml")) {
		t.Errorf("last group %s, want the insecure example (hardened has no findings)", last)
	}
}

func TestRunRefusesFilesAndPathsTogether(t *testing.T) {
	_, err := Run(context.Background(), Options{Files: []string{"a.yaml"}, Paths: []string{"b.yaml"}})
	if err == nil || !strings.Contains(err.Error(), "either with -f") {
		t.Errorf("err = %v", err)
	}
}

func TestRunMissingPath(t *testing.T) {
	if _, err := Run(context.Background(), Options{Paths: []string{"no/such/dir"}}); err == nil || !strings.Contains(err.Error(), "no/such/dir") {
		t.Errorf("err = %v", err)
	}
}

// TestRunDirectoryKeepsGoing: a directory with one broken project still
// lints the others, and reports the broken one as an error entry naming
// its file and line, found by the walk (not named by the user).
func TestRunDirectoryKeepsGoing(t *testing.T) {
	res, err := Run(context.Background(), Options{Paths: []string{"testdata/mixed"}, Policy: policy.Env{HostMemory: 8 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Services != 1 || len(res.Findings) == 0 {
		t.Errorf("services=%d findings=%d, want the good project linted", res.Services, len(res.Findings))
	}
	if len(res.Errors) != 1 {
		t.Fatalf("errors = %v, want the broken project", res.Errors)
	}
	e := res.Errors[0]
	in := e.Input()
	if e.Named || !strings.HasSuffix(in.File, filepath.Join("broken", "compose.yaml")) || in.Line != 6 || !strings.Contains(in.Message, "invalid YAML") {
		t.Errorf("error = %+v (named %v), want broken/compose.yaml:6 invalid YAML, found by the walk", in, e.Named)
	}
	// A file named on the command line is Named.
	res, err = Run(context.Background(), Options{Paths: []string{"testdata/mixed/broken/compose.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 1 || !res.Errors[0].Named {
		t.Errorf("errors = %+v, want one named", res.Errors)
	}
}
