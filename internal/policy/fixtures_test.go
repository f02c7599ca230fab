package policy_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/policytest"
	"github.com/hy-home/hyhome/internal/workload"
)

// Fixtures live in testdata/<rule>/{pass,fail}*.yaml. A pass fixture must
// give no unexempted finding of its rule. In a fail fixture every finding of
// the rule must be announced, on the line it points at, by a comment
//
//	# want: <rule>[@service] ["message substring"] [exempt]
//
// (several separated by " ; "), and every announcement must be met. Support
// files (Traefik configuration, extends bases, ADRs) sit beside the fixtures
// and may carry announcements too. A fixture's leading comments may give
// directives (policytest.Directives): the host's memory, strictness,
// compose profiles and environment, and what a guard learns of the host or
// its profile allows.

var wantRE = regexp.MustCompile(`#\s*want:\s*(.+)$`)

type want struct {
	file, rule, service, substr string
	line                        int
	exempt, met                 bool
}

func parseWants(t *testing.T, path string) []*want {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*want
	s := bufio.NewScanner(f)
	for line := 1; s.Scan(); line++ {
		m := wantRE.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		for _, spec := range strings.Split(m[1], " ; ") {
			w := &want{file: path, line: line}
			spec = strings.TrimSpace(spec)
			if i := strings.Index(spec, `"`); i >= 0 {
				j := strings.LastIndex(spec, `"`)
				if j <= i {
					t.Fatalf("%s:%d: unbalanced quote in want", path, line)
				}
				w.substr = strings.ReplaceAll(spec[i+1:j], `\"`, `"`)
				spec = strings.TrimSpace(spec[:i] + spec[j+1:])
			}
			fields := strings.Fields(spec)
			if len(fields) == 0 {
				t.Fatalf("%s:%d: empty want", path, line)
			}
			w.rule, w.service, _ = strings.Cut(fields[0], "@")
			for _, f := range fields[1:] {
				if f == "exempt" {
					w.exempt = true
				} else {
					t.Fatalf("%s:%d: unknown want word %q", path, line, f)
				}
			}
			out = append(out, w)
		}
	}
	return out
}

func fixtureFindings(t *testing.T, path string) ([]policy.Finding, *workload.Project) {
	t.Helper()
	d, err := policytest.ReadDirectives(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := compose.Load(context.Background(), compose.Options{Files: []string{path}, Profiles: d.Profiles, Environ: d.Environ})
	if err != nil {
		t.Fatalf("loading fixture: %v", err)
	}
	// ADRs come only from the fixture's own docs/adr, never the repository's.
	adrDir := filepath.Join(filepath.Dir(path), "docs", "adr")
	env := &policy.Env{Registry: policy.Default, ADRs: adr.NewResolver(adrDir), Strict: d.Strict, HostMemory: d.HostMemory, Host: d.Host, Allow: d.Allow}
	return policy.Evaluate(res.Project, env), res.Project
}

// TestRuleFixtures runs every rule's pass and fail fixtures. Subtests are
// named <rule>/<fixture> so that `go test -run TestRuleFixtures/<rule>`
// proves one rule, and docs/rules.md can point at them.
func TestRuleFixtures(t *testing.T) {
	for _, rule := range policy.Default.Rules() {
		rule := rule
		t.Run(rule.ID, func(t *testing.T) {
			dir := filepath.Join("testdata", rule.ID)
			fixtures, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
			var pass, failing int
			for _, fx := range fixtures {
				base := filepath.Base(fx)
				switch {
				case strings.HasPrefix(base, "pass"):
					pass++
				case strings.HasPrefix(base, "fail"):
					failing++
				default:
					continue // support file
				}
				fx := fx
				t.Run(strings.TrimSuffix(base, ".yaml")+"["+strings.Join(rule.Requirements, ",")+"]", func(t *testing.T) {
					runFixture(t, rule, fx)
				})
			}
			if pass == 0 || failing == 0 {
				t.Errorf("rule %s needs at least one pass and one fail fixture in %s (has %d pass, %d fail)", rule.ID, dir, pass, failing)
			}
		})
	}
}

func runFixture(t *testing.T, rule *policy.Rule, path string) {
	findings, project := fixtureFindings(t, path)
	var got []policy.Finding
	for _, f := range findings {
		if f.Rule == rule.ID {
			got = append(got, f)
		}
	}
	if strings.HasPrefix(filepath.Base(path), "pass") {
		for _, f := range got {
			if !f.Exempted {
				t.Errorf("pass fixture has a finding: %s: %s: %s", f.Location(), f.Service, f.Message)
			}
		}
		return
	}

	// Wants come from the fixture and from the support files it used.
	abs, _ := filepath.Abs(path)
	files := map[string]bool{abs: true}
	for _, w := range project.Workloads {
		for _, f := range w.Files {
			files[f] = true
		}
		if w.Gateway != nil {
			for _, f := range w.Gateway.Files {
				files[f] = true
			}
		}
	}
	var wants []*want
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		for _, w := range parseWants(t, f) {
			if w.rule == rule.ID {
				wants = append(wants, w)
			}
		}
	}
	if len(wants) == 0 {
		t.Fatalf("fail fixture announces no `# want: %s` finding", rule.ID)
	}
	for _, f := range got {
		fAbs, _ := filepath.Abs(f.File)
		matched := false
		for _, w := range wants {
			if w.met || w.file != fAbs || w.line != f.Line || w.exempt != f.Exempted ||
				w.service != "" && w.service != f.Service || !strings.Contains(f.Message, w.substr) {
				continue
			}
			w.met, matched = true, true
			break
		}
		if !matched {
			t.Errorf("unexpected finding %s (service %s, exempted=%v): %s", f.Location(), f.Service, f.Exempted, f.Message)
		}
	}
	for _, w := range wants {
		if !w.met {
			t.Errorf("missing finding announced at %s:%d: %s", filepath.Base(w.file), w.line, describe(w))
		}
	}
}

func describe(w *want) string {
	s := w.rule
	if w.service != "" {
		s += "@" + w.service
	}
	if w.substr != "" {
		s += fmt.Sprintf(" %q", w.substr)
	}
	if w.exempt {
		s += " exempt"
	}
	return s
}
