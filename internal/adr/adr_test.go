package adr

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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

// record is a minimal valid ADR numbered n.
func record(status, title string, exempts ...string) string {
	fm := "---\nstatus: " + status + "\n"
	if len(exempts) > 0 {
		fm += "exempts: [" + strings.Join(exempts, ", ") + "]\napplies_to: [{service: web, image: example/web}]\n"
	}
	return fm + "---\n\n# " + title + "\n"
}

// knownRules stands in for the rule catalogue (package policy imports this
// one; repo_test.go checks against the real catalogue).
var knownRules = map[string]bool{"docker-socket": true, "host-namespaces": true, "privileged": true, "non-root": true, "healthcheck": true}

func known(id string) bool { return knownRules[id] }

func TestParseValid(t *testing.T) {
	r := mustParseFile(t, "testdata/valid-full.md")
	if r.Status != "Accepted" || !r.Accepted() || r.Date != "2026-11-26" || r.Title != "ADR-0001: a full record" {
		t.Errorf("record %+v", r)
	}
	if want := []Rule{{"docker-socket", 4}, {"host-namespaces", 4}}; !reflect.DeepEqual(r.Exempts, want) {
		t.Errorf("exempts %+v, want %+v", r.Exempts, want)
	}
	if len(r.AppliesTo) != 2 {
		t.Fatalf("applies_to %+v, want 2 entries", r.AppliesTo)
	}
	if s := r.AppliesTo[0]; s.Project != "hyhome" || s.Service != "guard" || s.Image != "hyhome" || s.Line != 6 || !s.NamesImage() {
		t.Errorf("first entry %+v", s)
	}
	if s := r.AppliesTo[1]; s.Project != "" || s.Service != "node-exporter" || s.Image != "prom/node-exporter:v1.12.1" || s.Line != 9 {
		t.Errorf("second entry %+v", s)
	}
	// The prose names privileged; only the front matter exempts.
	if !r.ExemptsRule("docker-socket") || r.ExemptsRule("privileged") {
		t.Error("ExemptsRule must read the exempts field only")
	}
	if err := r.Validate(known); err != nil {
		t.Error(err)
	}

	m := mustParseFile(t, "testdata/valid-minimal.md")
	if m.Accepted() || m.Status != "Superseded by ADR-0007" || len(m.Exempts) != 0 || len(m.AppliesTo) != 0 {
		t.Errorf("minimal record %+v", m)
	}
}

func mustParseFile(t *testing.T, path string) *Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parse(path, 1, b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestParseInvalid: one testdata/invalid-*.md per error, with the exact
// message (file:line: what is wrong). Every fixture is listed, and every
// listed fixture exists.
func TestParseInvalid(t *testing.T) {
	want := map[string]string{
		"invalid-no-front-matter.md":         `1: an ADR starts with front matter: a "---" line, status (and exempts, applies_to for exemptions), then "---"`,
		"invalid-unclosed.md":                `1: front matter is not closed by a "---" line`,
		"invalid-empty.md":                   `1: front matter is empty; it needs at least a status`,
		"invalid-yaml.md":                    `4: front matter: while parsing a flow sequence at line 3: did not find expected ',' or ']'`,
		"invalid-two-documents.md":           `4: front matter holds more than one YAML document`,
		"invalid-not-mapping.md":             `2: front matter must be a mapping of status, date, exempts and applies_to`,
		"invalid-unknown-key.md":             `3: unknown key "exempt" (want status, date, exempts, applies_to)`,
		"invalid-duplicate-key.md":           `3: status is given twice (first at line 2)`,
		"invalid-no-status.md":               `2: front matter has no status`,
		"invalid-status.md":                  `2: status "Acepted": want Proposed, Accepted, Rejected, Deprecated or "Superseded by ADR-NNNN"`,
		"invalid-status-list.md":             `2: status must be a single value`,
		"invalid-superseded.md":              `2: status "Superseded by the next one": want Proposed, Accepted, Rejected, Deprecated or "Superseded by ADR-NNNN"`,
		"invalid-date.md":                    `3: date "26.11.2026": want YYYY-MM-DD`,
		"invalid-exempts-not-list.md":        `3: exempts must be a list of rule IDs, e.g. [docker-socket]`,
		"invalid-exempts-entry.md":           "3: exempts: \"Docker Socket\" is not a rule ID (lower-case words joined by -, as `hyhome rules` lists them)",
		"invalid-exempts-empty-entry.md":     `5: an exempts entry is empty`,
		"invalid-exempts-twice.md":           `5: exempts lists privileged twice (first at line 4)`,
		"invalid-unknown-rule.md":            "5: exempts names unknown rule \"privilegd\" (`hyhome rules` lists them)",
		"invalid-exempts-without-applies.md": `3: exempts rules but applies_to names no workload: an exemption holds only for the workloads its ADR names`,
		"invalid-applies-without-exempts.md": `4: applies_to names workloads but exempts names no rule`,
		"invalid-applies-not-list.md":        `5: applies_to must be a list of workloads, e.g. [{project: hyhome, service: guard, image: hyhome}]`,
		"invalid-applies-entry.md":           `4: an applies_to entry is a mapping of project, service and image`,
		"invalid-applies-unknown-key.md":     `6: applies_to: unknown key "images" (want project, service, image)`,
		"invalid-applies-no-workload.md":     `5: an applies_to entry names no project or service`,
		"invalid-applies-twice.md":           `6: applies_to: service is given twice in one entry`,
		"invalid-project.md":                 `5: applies_to: project "Hy Home" is not a compose project name (lower-case letters, digits, - and _, starting with a letter or digit)`,
		"invalid-service.md":                 `5: applies_to: service "web/*" is not a service name (letters, digits, ., - and _)`,
		"invalid-image.md":                   `6: applies_to: image "Example/Web:1": invalid reference format: repository name (Web) must be lowercase`,
		"invalid-image-tag-and-digest.md":    `6: applies_to: image "example/web:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" pins both a tag and a digest; the engine runs the digest alone, so pin one`,
		"invalid-alias.md":                   `5: anchors, aliases and merge keys are not allowed in ADR front matter`,
		"invalid-spaces.md":                  `5: applies_to service " web" has surrounding spaces or control characters`,
		"invalid-no-title.md":                `4: no title: the front matter is followed by a "# ADR-NNNN: title" line`,
		"invalid-title-number.md":            `4: the title names ADR-0002, but the file is numbered 0001`,
	}
	files, err := filepath.Glob("testdata/invalid-*.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		seen[name] = true
		t.Run(strings.TrimSuffix(name, ".md"), func(t *testing.T) {
			msg, ok := want[name]
			if !ok {
				t.Fatalf("%s has no expected message in this table", name)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := parse(path, 1, b)
			if err == nil {
				err = r.Validate(known)
			}
			if err == nil {
				t.Fatalf("parsed without error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *adr.Error", err, err)
			}
			if got, want := err.Error(), path+":"+msg; got != want {
				t.Errorf("error\n got %s\nwant %s", got, want)
			}
		})
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("fixture testdata/%s is missing", name)
		}
	}
}

func TestStatuses(t *testing.T) {
	for status, accepted := range map[string]bool{
		"Accepted": true, "accepted": true, "ACCEPTED": true,
		"Proposed": false, "Rejected": false, "Deprecated": false, "Superseded by ADR-0009": false, "superseded by adr-9": false,
	} {
		r, err := parse("x.md", 1, []byte(record(status, "ADR-0001: x")))
		if err != nil {
			t.Errorf("status %q: %v", status, err)
			continue
		}
		if r.Accepted() != accepted {
			t.Errorf("status %q: Accepted() = %v", status, r.Accepted())
		}
	}
	// The forms the prose-searching parser used to accept are not status
	// values: "Accepted (2026-01-02)" has a date field now.
	for _, status := range []string{"Accepted (2026-01-02)", "Accepted, mostly", "Superseded", "yes"} {
		if _, err := parse("x.md", 1, []byte(record(status, "ADR-0001: x"))); err == nil {
			t.Errorf("status %q was accepted", status)
		}
	}
}

// TestLineEndingsAndBOM: files written on Windows (CRLF, a byte-order mark)
// read the same.
func TestLineEndingsAndBOM(t *testing.T) {
	text := "\ufeff" + strings.ReplaceAll(record("Accepted", "ADR-0001: x", "privileged"), "\n", "\r\n")
	r, err := parse("x.md", 1, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Accepted() || !r.ExemptsRule("privileged") || r.Title != "ADR-0001: x" || r.AppliesTo[0].Image != "example/web" {
		t.Errorf("record %+v", r)
	}
}

func TestSelectorMatches(t *testing.T) {
	sel := func(project, service, image string) *Selector {
		t.Helper()
		text := "---\nstatus: Accepted\nexempts: [privileged]\napplies_to:\n  - {"
		var f []string
		for _, kv := range [][2]string{{"project", project}, {"service", service}, {"image", image}} {
			if kv[1] != "" {
				f = append(f, kv[0]+": '"+kv[1]+"'")
			}
		}
		text += strings.Join(f, ", ") + "}\n---\n# t\n"
		r, err := parse("x.md", 1, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return &r.AppliesTo[0]
	}
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const other = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	for _, c := range []struct {
		sel  *Selector
		sub  Subject
		want bool
	}{
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", "hyhome:local"}, true},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", "docker.io/library/hyhome:1.2"}, true},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", "hyhome@" + digest}, true},
		{sel("hyhome", "guard", "hyhome"), Subject{"shop", "guard", "hyhome:local"}, false},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "web", "hyhome:local"}, false},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", "busybox"}, false},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", "example.com/hyhome:local"}, false},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", "hyhome-extra:local"}, false},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", ""}, false},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", "sha256:" + digest[7:]}, false},
		{sel("hyhome", "guard", "hyhome"), Subject{"hyhome", "guard", "Not A Reference"}, false},
		// A pinned tag: "no tag" is latest, as the engine reads it; a
		// digest wins over a tag written beside it.
		{sel("", "web", "example/web:1.2"), Subject{"", "web", "example/web:1.2"}, true},
		{sel("", "web", "example/web:1.2"), Subject{"any", "web", "docker.io/example/web:1.2"}, true},
		{sel("", "web", "example/web:1.2"), Subject{"", "web", "example/web:1.3"}, false},
		{sel("", "web", "example/web:1.2"), Subject{"", "web", "example/web"}, false},
		{sel("", "web", "example/web:latest"), Subject{"", "web", "example/web"}, true},
		{sel("", "web", "example/web:1.2"), Subject{"", "web", "example/web:1.2@" + digest}, false},
		{sel("", "web", "example/web@"+digest), Subject{"", "web", "example/web:1.2@" + digest}, true},
		{sel("", "web", "example/web@"+digest), Subject{"", "web", "example/web@" + other}, false},
		{sel("", "web", "example/web@"+digest), Subject{"", "web", "example/web:1.2"}, false},
		// No image: lint's compose services match by project and service.
		{sel("shop", "", ""), Subject{"shop", "anything", "whatever:1"}, true},
		{sel("shop", "", ""), Subject{"shop2", "anything", "whatever:1"}, false},
	} {
		if got := c.sel.Matches(c.sub); got != c.want {
			t.Errorf("{%s}.Matches(%+v) = %v, want %v", c.sel, c.sub, got, c.want)
		}
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

func TestParseNeedsANumberedFileName(t *testing.T) {
	if _, err := Parse("docs/adr/notes.md", []byte(record("Accepted", "x"))); err == nil || err.Error() != "docs/adr/notes.md:1: ADR file names must look like NNNN-title.md" {
		t.Errorf("Parse(notes.md) = %v", err)
	}
	r, err := Parse("docs/adr/ADR-0007-prefix.md", []byte(record("Accepted", "ADR-0007: x")))
	if err != nil || r.ID != "ADR-0007" || r.Number != 7 {
		t.Errorf("Parse(ADR-0007-prefix.md) = %+v, %v", r, err)
	}
}

// TestDefaultSearchOrder: docs/adr next to the compose file wins, then the
// repository root's docs/adr; an explicit --adr-dir replaces both.
func TestDefaultSearchOrder(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, ".git"), 0o755)
	write(t, filepath.Join(root, "docs", "adr"), "0001-root.md", record("Accepted", "root"))
	write(t, filepath.Join(root, "docs", "adr"), "0002-root-only.md", record("Accepted", "root only"))
	write(t, filepath.Join(root, "stack", "docs", "adr"), "0001-local.md", record("Proposed", "local"))
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

// TestBadFilesFailTheirNumberOnly: two files with one number, or a file
// that does not parse, make that number an error (never a miss that a
// later directory could fill); other numbers still resolve.
func TestBadFilesFailTheirNumberOnly(t *testing.T) {
	dir := t.TempDir()
	later := t.TempDir()
	write(t, dir, "0001-a.md", record("Accepted", "a"))
	write(t, dir, "0001-b.md", record("Accepted", "b"))
	write(t, dir, "0002-old-form.md", "# ADR-0002: old\n\nStatus: Accepted\nExempts: `privileged`\n")
	write(t, dir, "0003-good.md", record("Accepted", "ADR-0003: good"))
	write(t, dir, "README.md", "# not an ADR\n")
	write(t, later, "0002-fallback.md", record("Accepted", "ADR-0002: fallback", "privileged"))
	r := NewResolver(dir, later)
	if _, err := r.Lookup("ADR-0001", ""); err == nil || !strings.Contains(err.Error(), "two ADR files share number 0001") {
		t.Errorf("ADR-0001: %v, want the clash", err)
	}
	want := filepath.Join(dir, "0002-old-form.md") + ":1: an ADR starts with front matter"
	if _, err := r.Lookup("ADR-0002", ""); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("ADR-0002: %v, want %q...", err, want)
	}
	if rec, err := r.Lookup("ADR-0003", ""); err != nil || rec.Title != "ADR-0003: good" {
		t.Errorf("ADR-0003 = %+v, %v", rec, err)
	}
}

// FuzzParse: no input panics the parser, and what it accepts keeps the
// invariants the policy relies on.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.md")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("---\nstatus: Accepted\nexempts: [a]\napplies_to: [{service: s, image: 'x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}]\n---\n# ADR-0001: t\n"))
	f.Add([]byte("---\n---\n---\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parse("f.md", 1, b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 || e.File != "f.md" {
				t.Fatalf("error %v is not an *Error with a line", err)
			}
			return
		}
		if !validStatus(r.Status) {
			t.Fatalf("accepted status %q", r.Status)
		}
		if (len(r.Exempts) == 0) != (len(r.AppliesTo) == 0) {
			t.Fatalf("exempts %v without applies_to %v, or the reverse", r.Exempts, r.AppliesTo)
		}
		ids := map[string]bool{}
		for _, e := range r.Exempts {
			if ids[e.ID] || !ruleIDPattern.MatchString(e.ID) || e.Line < 2 {
				t.Fatalf("exempts entry %+v", e)
			}
			ids[e.ID] = true
		}
		for _, s := range r.AppliesTo {
			if s.Project == "" && s.Service == "" {
				t.Fatalf("applies_to entry %+v names no workload", s)
			}
			if (s.Image == "") == s.NamesImage() {
				t.Fatalf("applies_to entry %+v: image written but not parsed, or the reverse", s)
			}
			// A selector always matches the workload it describes.
			if s.Image != "" && !s.Matches(Subject{Project: s.Project, Service: s.Service, Image: s.Image}) {
				t.Fatalf("applies_to entry %+v does not match its own image", s)
			}
		}
	})
}
