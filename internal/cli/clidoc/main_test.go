package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// reference is the committed CLI reference, from this package's directory.
var reference = filepath.Join("..", "..", "..", "docs", "cli")

// TestReferenceIsCurrent: docs/cli is exactly what `make docs` writes from
// the commands as they are, page for page (as TestRulesDocIsCurrent holds
// docs/rules.md); `make docs-check` says the same in CI.
func TestReferenceIsCurrent(t *testing.T) {
	dir := t.TempDir()
	if err := generate(dir); err != nil {
		t.Fatal(err)
	}
	want, err := pages(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pages(reference)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs/cli holds %v, the commands make %v: run `make docs`", got, want)
	}
	for _, name := range want {
		w, _ := os.ReadFile(filepath.Join(dir, name))
		g, err := os.ReadFile(filepath.Join(reference, name))
		if err != nil || string(g) != string(w) {
			t.Errorf("docs/cli/%s differs from the %s command: run `make docs`", name, name)
		}
	}
	for _, hidden := range []string{"hyhome_canary.md", "hyhome_completion.md", "hyhome_help.md"} {
		if slices.Contains(want, hidden) {
			t.Errorf("the reference documents %s", hidden)
		}
	}
}

// TestGenerateIsStable: two runs write the same bytes (no date, nothing of
// the machine or the environment), and a stale page is removed.
func TestGenerateIsStable(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(b, "hyhome_gone.md"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := generate(a); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_HOST", "tcp://192.0.2.1:2375")
	t.Setenv("HOME", t.TempDir())
	if err := generate(b); err != nil {
		t.Fatal(err)
	}
	pa, _ := pages(a)
	pb, _ := pages(b)
	if !slices.Equal(pa, pb) {
		t.Fatalf("pages %v, then %v", pa, pb)
	}
	for _, name := range pa {
		x, _ := os.ReadFile(filepath.Join(a, name))
		y, _ := os.ReadFile(filepath.Join(b, name))
		if string(x) != string(y) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}
