package fix

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"

	"github.com/hy-home/hyhome/internal/lint"
	"github.com/hy-home/hyhome/internal/policy"
)

// corpusDir finds ../shared/corpus/real from the package directory upwards
// (a worktree may sit deeper than the main checkout), or HYHOME_CORPUS.
// Under CI=true a missing corpus fails the test rather than skipping it.
func corpusDir(t testing.TB) string {
	if d := os.Getenv("HYHOME_CORPUS"); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "shared", "corpus", "real")
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the real corpus (shared/corpus/real) is missing")
	}
	t.Skip("the real corpus (shared/corpus/real) is not present")
	return ""
}

// copyTree copies a directory; the copy is writable whatever the source's
// modes.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// corpusOptions are the values every corpus run passes, so that each edit
// kind has its values.
func corpusOptions(dir string, unsafe bool) Options {
	return Options{
		Lint:       lint.Options{Paths: []string{dir}, Policy: policy.Env{HostMemory: 64 << 30}},
		Unsafe:     unsafe,
		Tier:       Values{Default: []string{"app"}},
		Memory:     Values{Default: []string{"256m"}},
		PidsLimit:  DefaultPidsLimit,
		User:       Values{Default: []string{"65534:65534"}},
		Tmpfs:      Values{Default: []string{"/tmp"}},
		DockerHost: DefaultDockerHost,
	}
}

type findingKey struct{ project, service, rule string }

func countFindings(fs []policy.Finding) map[findingKey]int {
	m := map[findingKey]int{}
	for _, f := range fs {
		if !f.Exempted {
			m[findingKey{f.Project, f.Service, f.Rule}]++
		}
	}
	return m
}

// serviceLevel rules have one finding per service: an applied edit must
// leave none.
var serviceLevel = map[string]bool{
	"no-new-privileges": true, "cap-drop-all": true, "baseline-anchor": true, "tier-label": true,
	"memory-limit": true, "pids-limit": true, "non-root": true, "read-only-rootfs": true,
}

// fieldsOf are the service fields of compose-go's model an edit of a rule
// may change.
var fieldsOf = map[string][]string{
	"no-new-privileges":   {"security_opt"},
	"cap-drop-all":        {"cap_drop"},
	"baseline-anchor":     {"security_opt", "cap_drop"},
	"tier-label":          {"labels"},
	"memory-limit":        {"mem_limit", "deploy"},
	"pids-limit":          {"pids_limit", "deploy"},
	"non-root":            {"user"},
	"read-only-rootfs":    {"read_only", "tmpfs"},
	"bind-mount-readonly": {"volumes"},
	"docker-socket":       {"volumes", "environment"},
	"secrets-in-env":      {"environment", "secrets"},
}

// composeModels loads every project with compose-go's full pipeline (what
// `docker compose config` prints), as JSON objects keyed by first file.
func composeModels(t *testing.T, opts lint.Options) map[string]map[string]any {
	t.Helper()
	jobs, err := lint.Projects(opts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, j := range jobs {
		po, err := cli.NewProjectOptions(j.Files, cli.WithWorkingDirectory(j.WorkDir), cli.WithEnv(nil), cli.WithDotEnv)
		if err != nil {
			continue
		}
		p, err := cli.ProjectFromOptions(context.Background(), po)
		if err != nil {
			continue // the same files fail before and after; lint's errors are compared elsewhere
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out[j.Files[0]] = m
	}
	return out
}

// commentLines are a file's comment lines (trimmed), as a multiset.
func commentLines(b []byte) map[string]int {
	m := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "#") {
			m[t]++
		}
	}
	return m
}

// TestCorpusRoundTrip fixes a copy of ../shared/corpus/real, first with the
// safe edits and then with --unsafe, and proves each time that: the files
// still load (no project that loaded stops loading); the findings each
// applied edit targets are gone and no finding is new; compose-go's merged
// model differs only in the fields the edits name; every comment line
// survives; a second fix changes nothing. It logs the figures the issue
// note reports.
func TestCorpusRoundTrip(t *testing.T) {
	corpus := corpusDir(t)
	for _, mode := range []struct {
		name   string
		unsafe bool
	}{{"safe", false}, {"unsafe", true}} {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			copyTree(t, corpus, dir)
			opts := corpusOptions(dir, mode.unsafe)
			ctx := context.Background()

			before, err := lint.Run(ctx, opts.Lint)
			if err != nil {
				t.Fatal(err)
			}
			modelsBefore := composeModels(t, opts.Lint)
			res, err := Plan(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			old := map[string][]byte{}
			for _, f := range res.Files {
				old[f.Path] = f.Old
			}
			if err := Apply(ctx, res); err != nil {
				t.Fatalf("apply: %v", err)
			}
			after, err := lint.Run(ctx, opts.Lint)
			if err != nil {
				t.Fatal(err)
			}
			if len(after.Errors) != len(before.Errors) {
				t.Errorf("%d projects failed to load before fix, %d after: %v", len(before.Errors), len(after.Errors), after.Errors)
			}

			// Findings: the targeted ones are gone, nothing is new.
			nb, na := countFindings(before.Findings), countFindings(after.Findings)
			applied := map[findingKey]int{}
			suggested := map[findingKey]bool{}
			for _, e := range res.Edits {
				k := findingKey{e.Project, e.Service, e.Rule}
				if e.Applied {
					applied[k]++
				} else {
					suggested[k] = true
				}
			}
			for k, n := range na {
				if n > nb[k] {
					t.Errorf("%v: %d findings after fix, %d before: fix made new ones", k, n, nb[k])
				}
			}
			for k, n := range applied {
				if k.service == "" {
					continue // the file-level anchor edit
				}
				switch {
				case serviceLevel[k.rule] && na[k] > 0:
					t.Errorf("%v: an edit was applied but lint still reports it", k)
				case na[k] > nb[k]-n:
					t.Errorf("%v: %d edits applied, findings went from %d to %d", k, n, nb[k], na[k])
				}
			}
			left := map[string]int{}
			for k, n := range na {
				switch k.rule {
				case "no-new-privileges", "baseline-anchor", "cap-drop-all":
				default:
					continue
				}
				if k.rule != "no-new-privileges" && !mode.unsafe {
					continue
				}
				if !suggested[k] {
					t.Errorf("%v: lint still reports it and fix printed no suggestion saying why", k)
				}
				left[k.rule] += n
			}

			// compose-go's model changes only where the edits say.
			modelsAfter := composeModels(t, opts.Lint)
			touched := map[[2]string]map[string]bool{}
			for _, e := range res.Edits {
				if !e.Applied {
					continue
				}
				k := [2]string{e.Project, e.Service}
				if touched[k] == nil {
					touched[k] = map[string]bool{}
				}
				for _, f := range fieldsOf[e.Rule] {
					touched[k][f] = true
				}
			}
			if len(modelsAfter) != len(modelsBefore) {
				t.Errorf("compose-go loads %d projects before, %d after", len(modelsBefore), len(modelsAfter))
			}
			for file, mb := range modelsBefore {
				ma, ok := modelsAfter[file]
				if !ok {
					t.Errorf("%s: compose-go no longer loads it", file)
					continue
				}
				name, _ := mb["name"].(string)
				delete(mb, "secrets")
				delete(ma, "secrets")
				for _, m := range []map[string]any{mb, ma} {
					for k := range m {
						if strings.HasPrefix(k, "x-") {
							delete(m, k)
						}
					}
				}
				sb, _ := mb["services"].(map[string]any)
				sa, _ := ma["services"].(map[string]any)
				for svc := range sb {
					b, _ := sb[svc].(map[string]any)
					a, _ := sa[svc].(map[string]any)
					for f := range touched[[2]string{name, svc}] {
						delete(b, f)
						delete(a, f)
					}
				}
				if !reflect.DeepEqual(mb, ma) {
					t.Errorf("%s: compose-go's model changed outside the edited fields:\n%s", file, firstDiff(mb, ma, ""))
				}
			}

			// Comments survive; layout outside the edits is the splices' job.
			for path, o := range old {
				n, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				cn := commentLines(n)
				for l, c := range commentLines(o) {
					if cn[l] < c {
						t.Errorf("%s: comment %q lost", path, l)
					}
				}
				if bytes.Contains(o, []byte("\r\n")) != bytes.Contains(n, []byte("\r\n")) {
					t.Errorf("%s: line endings changed", path)
				}
			}

			// Idempotent: a second fix finds nothing to change.
			again, err := Plan(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range again.Files {
				t.Errorf("second fix would change %s again:\n%s", f.Path, f.Diff(f.Path))
			}

			// The figures for the note.
			byRule := res.Applied()
			sug := res.Suggested()
			t.Logf("%s: %d projects (%d failed to load, as before), %d files changed, %d services, %d findings before, %d after",
				mode.name, len(before.Files), len(before.Errors), len(res.Files), res.Services, len(before.Findings), len(after.Findings))
			t.Logf("%s: edits applied by rule: %s", mode.name, formatCounts(byRule))
			t.Logf("%s: suggestions by rule: %s", mode.name, formatCounts(sug))
			t.Logf("%s: findings left (no-new-privileges, baseline-anchor, cap-drop-all), each with a suggestion: %s", mode.name, formatCounts(left))
		})
	}
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	total := 0
	for k, n := range m {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// firstDiff names the first path where two decoded JSON values differ.
func firstDiff(a, b any, path string) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			if !reflect.DeepEqual(x[k], y[k]) {
				return firstDiff(x[k], y[k], path+"."+k)
			}
		}
	}
	return fmt.Sprintf("%s: %v vs %v", path, a, b)
}
