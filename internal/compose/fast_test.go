package compose

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/testenv"
	"github.com/hy-home/hyhome/internal/workload"
)

// fastJob is one project loaded through both paths.
type fastJob struct {
	name string
	opts Options
}

// TestFastPathMatchesComposeGo loads every fixture, and in a subtest every
// project of the real corpus, twice: through the fast path and through
// compose-go's full pipeline, and requires identical workloads (values and
// positions). It is what keeps the fast path honest. Without the corpus the
// RealCorpus subtest skips, visibly (or fails under CI): it is never
// silently left out.
func TestFastPathMatchesComposeGo(t *testing.T) {
	var jobs []fastJob
	for _, pattern := range []string{"testdata/*/*.yaml", "../policy/testdata/*/*.yaml", "../../examples/*/compose.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			jobs = append(jobs, fastJob{f, Options{Files: []string{f}, Environ: []string{"SHELL_ONLY=x"}}})
		}
	}
	if len(jobs) < 50 {
		t.Fatalf("only %d fixture projects found: the globs no longer match the fixtures", len(jobs))
	}
	t.Run("Fixtures", func(t *testing.T) { compareFastAndFull(t, jobs) })
	t.Run("RealCorpus", func(t *testing.T) {
		corpus := testenv.CorpusDir(t)
		set, err := FindProjects(corpus)
		if err != nil {
			t.Fatal(err)
		}
		var jobs []fastJob
		for _, ps := range set.Projects {
			rel, _ := filepath.Rel(corpus, ps.Files[0])
			jobs = append(jobs, fastJob{rel, set.Options(ps, Options{})})
		}
		if len(jobs) < minCorpusProjects {
			t.Fatalf("%d projects in %s, want at least %d: the corpus is incomplete", len(jobs), corpus, minCorpusProjects)
		}
		compareFastAndFull(t, jobs)
	})
}

// minCorpusProjects is a floor under the real corpus's size (274 projects
// when this was written), so that a truncated copy is noticed.
const minCorpusProjects = 250

func compareFastAndFull(t *testing.T, jobs []fastJob) {
	t.Helper()
	fastCount := 0
	for _, j := range jobs {
		fastRes, fastErr := Load(context.Background(), j.opts)
		slowOpts := j.opts
		slowOpts.Validate = true
		slowRes, slowErr := Load(context.Background(), slowOpts)
		switch {
		case fastErr != nil && slowErr != nil:
			// Both come from compose-go (the fast path declines, never
			// fails), whose messages may order map entries differently.
			continue
		case slowErr != nil:
			// The fast path does not validate fields no rule reads; say which.
			t.Logf("%s: accepted by the fast path, refused by full validation: %v", j.name, slowErr)
			continue
		case fastErr != nil:
			t.Errorf("%s: fast path failed where compose-go succeeds: %v", j.name, fastErr)
			continue
		}
		if fastRes.Fast {
			fastCount++
		}
		if diff := diffProjects(fastRes.Project, slowRes.Project); diff != "" {
			t.Errorf("%s: fast path and compose-go disagree:\n%s", j.name, diff)
		}
	}
	t.Logf("%d of %d projects took the fast path", fastCount, len(jobs))
	if fastCount < len(jobs)/2 {
		t.Errorf("only %d of %d projects took the fast path", fastCount, len(jobs))
	}
}

func diffProjects(a, b *workload.Project) string {
	var out []string
	if a.Name != b.Name {
		out = append(out, fmt.Sprintf("project name %q vs %q", a.Name, b.Name))
	}
	if len(a.Workloads) != len(b.Workloads) {
		return fmt.Sprintf("%d vs %d workloads", len(a.Workloads), len(b.Workloads))
	}
	for i := range a.Workloads {
		wa, wb := *a.Workloads[i], *b.Workloads[i]
		va, vb := reflect.ValueOf(wa), reflect.ValueOf(wb)
		for f := 0; f < va.NumField(); f++ {
			if !reflect.DeepEqual(va.Field(f).Interface(), vb.Field(f).Interface()) {
				out = append(out, fmt.Sprintf("service %s field %s:\n   fast %#v\n   full %#v", wa.Name, va.Type().Field(f).Name, va.Field(f).Interface(), vb.Field(f).Interface()))
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestFastPathDeclinesWhatComposeGoTreatsSpecially pins inputs the review
// found: x-* keys inside environment and labels, and an unquoted number as
// the user.
func TestFastPathDeclinesWhatComposeGoTreatsSpecially(t *testing.T) {
	res, err := Load(context.Background(), Options{Files: []string{"testdata/fastpath/extensions.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fast {
		t.Error("x-* keys in environment took the fast path")
	}
	for _, e := range res.Project.Workloads[0].Env {
		if e.Key == "x-api-token" {
			t.Errorf("x-api-token read as an environment variable: %+v", e)
		}
	}
	if _, err := Load(context.Background(), Options{Files: []string{"testdata/fastpath/int-user.yaml"}}); err == nil || !strings.Contains(err.Error(), "user") {
		t.Errorf("user: 1000 accepted (%v); docker compose refuses it", err)
	}
}
