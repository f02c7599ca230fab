package adr

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseStatusForms(t *testing.T) {
	for name, tc := range map[string]struct {
		body     string
		status   string
		accepted bool
	}{
		"0001-kv.md":         {"# A\n\nStatus: Accepted\n", "Accepted", true},
		"0002-bold.md":       {"# B\n\n**Status:** accepted\n", "accepted", true},
		"0003-heading.md":    {"# C\n\n## Status\n\nAccepted (2026-01-02)\n", "Accepted (2026-01-02)", true},
		"0004-proposed.md":   {"# D\n\nStatus: Proposed\n", "Proposed", false},
		"0005-superseded.md": {"# E\n\n## Status\n\nSuperseded by ADR-0009\n", "Superseded by ADR-0009", false},
		"0006-none.md":       {"# F\n\nNo status here.\n", "", false},
		"ADR-0007-prefix.md": {"# G\nstatus: Accepted\n", "Accepted", true},
	} {
		r, err := Parse(name, []byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Status != tc.status || r.Accepted() != tc.accepted {
			t.Errorf("%s: status %q accepted %v, want %q %v", name, r.Status, r.Accepted(), tc.status, tc.accepted)
		}
	}
	if _, err := Parse("notes.md", nil); err == nil {
		t.Error("a file not named NNNN-*.md parsed as an ADR")
	}
}

func TestNamesIsWholeWord(t *testing.T) {
	r, _ := Parse("0001-x.md", []byte("Exempts `host-namespaces` and cap-add-extra.\n"))
	if !r.Names("host-namespaces") || r.Names("cap-add") || r.Names("namespaces") {
		t.Error("rule names must match as whole words")
	}
}

func TestRefs(t *testing.T) {
	for ref, n := range map[string]int{"ADR-0003": 3, "adr-3": 3, "0003": 3, "3": 3, "ADR_12": 12, " ADR-0010 ": 10} {
		if got, err := ParseRef(ref); err != nil || got != n {
			t.Errorf("ParseRef(%q) = %d, %v; want %d", ref, got, err, n)
		}
	}
	for _, bad := range []string{"", "ADR-", "x-1", "ADR-1a"} {
		if _, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) succeeded", bad)
		}
	}
}

// TestDefaultSearchOrder: docs/adr next to the compose file wins, then the
// repository root's docs/adr; an explicit --adr-dir replaces both.
func TestDefaultSearchOrder(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, ".git"), 0o755)
	write(t, filepath.Join(root, "docs", "adr"), "0001-root.md", "# root\nStatus: Accepted\n")
	write(t, filepath.Join(root, "docs", "adr"), "0002-root-only.md", "# root only\nStatus: Accepted\n")
	write(t, filepath.Join(root, "stack", "docs", "adr"), "0001-local.md", "# local\nStatus: Proposed\n")
	compose := filepath.Join(root, "stack", "compose.yaml")

	r := NewResolver()
	if rec, err := r.Lookup("ADR-0001", compose); err != nil || rec.Title != "local" {
		t.Errorf("ADR-0001 = %+v, %v; want the one next to the compose file", rec, err)
	}
	if rec, err := r.Lookup("ADR-0002", compose); err != nil || rec.Title != "root only" {
		t.Errorf("ADR-0002 = %+v, %v; want the repository root's", rec, err)
	}
	if _, err := r.Lookup("ADR-0003", compose); !errors.Is(err, ErrNotFound) {
		t.Errorf("ADR-0003: %v, want ErrNotFound", err)
	}
	explicit := NewResolver(filepath.Join(root, "docs", "adr"))
	if rec, err := explicit.Lookup("ADR-0001", compose); err != nil || rec.Title != "root" {
		t.Errorf("--adr-dir: ADR-0001 = %+v, %v; want the root's", rec, err)
	}
}

func TestDuplicateNumbersAreAnError(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "0001-a.md", "# a\nStatus: Accepted\n")
	write(t, dir, "0001-b.md", "# b\nStatus: Accepted\n")
	if _, err := NewResolver(dir).Lookup("ADR-0001", ""); err == nil {
		t.Error("two files numbered 0001 were accepted")
	}
}
