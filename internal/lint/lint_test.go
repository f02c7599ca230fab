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
