package adr_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/policy"
)

// TestRepositoryADRs: every ADR in docs/adr parses, exempts only rules of
// the catalogue (adr-exemption itself never), and ties each exemption to
// workloads by image as well, so that it can hold on a live engine.
func TestRepositoryADRs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "adr", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ADRs in docs/adr: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := adr.Parse(f, b)
		if err != nil {
			t.Error(err)
			continue
		}
		if err := r.Validate(func(id string) bool { return policy.Default.Get(id) != nil && id != policy.RuleADRExemption }); err != nil {
			t.Error(err)
		}
		for _, s := range r.AppliesTo {
			if !s.NamesImage() || s.Project == "" || s.Service == "" {
				t.Errorf("%s:%d: the stack's ADRs name project, service and image ({%s})", f, s.Line, &s)
			}
		}
	}
}
