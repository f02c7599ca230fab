package report

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/spool"
	"github.com/hy-home/hyhome/internal/workload"
)

// randomReport makes a report with the shapes the formats must render the
// same whether written whole or streamed: findings in and out of file
// order, files shared between parts, runtime sources, exemptions, text
// that JSON, XML and Markdown escape, errors and notices.
func randomReport(rng *rand.Rand) *Report {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	files := []string{"a/compose.yaml", "/abs/b/compose.yml", "a-c/x.yaml", "deploy/<odd> & \"q\".yaml", "", "z/include.yaml"}
	services := []string{"web", "db", "cache", "w<e>b", "svc|pipe"}
	rules := policy.Default.Rules()
	r := &Report{Version: pick("1.0", "test"), Command: pick("lint", "audit")}
	if rng.IntN(4) == 0 {
		r.Scope = "3 containers"
	}
	n := rng.IntN(60)
	for i := 0; i < n; i++ {
		rule := rules[rng.IntN(len(rules))]
		f := policy.Finding{
			Rule: rule.ID, Requirements: rule.Requirements, Severity: policy.Severity(rng.IntN(3)),
			Service: pick(services...), File: pick(files...), Line: rng.IntN(3) * rng.IntN(50),
			Column:  rng.IntN(2) * rng.IntN(20),
			Message: pick("runs privileged", "a \"quoted\" <tag> & amp", "multi\nline | pipe", `"artifactLocation":{"uri":"x"}`, "ünïcode ✓"),
			Project: pick("", "proj"), Remediation: rule.Remediation,
		}
		if f.File == "" {
			f.Source = pick("container web (0123456789ab)", "service s")
			f.Kind = workload.KindContainer
		} else {
			f.Source = f.File + ":" + fmt.Sprint(f.Line)
			f.ServicePos = workload.Position{File: pick(f.File, f.File, "z/include.yaml"), Line: 3}
		}
		if rng.IntN(5) == 0 {
			f.Exempted, f.ADR = true, pick("ADR-0001", "ADR-0002")
		}
		r.Findings = append(r.Findings, f)
	}
	for i := rng.IntN(10); i > 0; i-- {
		r.Targets = append(r.Targets, Target{Service: pick(services...), Source: pick(files...), Kind: "service"})
	}
	for i := rng.IntN(4); i > 0; i-- {
		r.Errors = append(r.Errors, InputError{File: pick(files[:4]...), Line: rng.IntN(20), Column: rng.IntN(3), Message: pick("invalid YAML", "bad\nthing | x <y>")})
	}
	for i := rng.IntN(3); i > 0; i-- {
		r.Notices = append(r.Notices, pick("container gone", "swarm | skipped"))
	}
	r.Summary = policy.Summarize(r.Findings)
	r.Summary.Files, r.Summary.Services = rng.IntN(9), rng.IntN(9)
	return r
}

// TestStreamMatchesLegacy: every format writes the bytes the writers
// before streaming wrote (legacy_test.go), for the report written whole
// and streamed in parts cut anywhere (empty parts, targets spread out),
// prepared concurrently or not at all, with spools in memory and on disk.
func TestStreamMatchesLegacy(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 2026))
	for iter := 0; iter < 300; iter++ {
		r := randomReport(rng)
		o := Options{Color: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			o.BaseDir = "/abs"
		}
		for _, format := range FormatNames() {
			var want bytes.Buffer
			legacy := *r
			if err := legacyWrite(&want, format, &legacy, o); err != nil {
				t.Fatal(err)
			}
			var whole bytes.Buffer
			w := *r
			if err := Write(&whole, format, &w, o); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(whole.Bytes(), want.Bytes()) {
				t.Fatalf("iteration %d, %s, written whole:\n%s", iter, format, diffAt(whole.Bytes(), want.Bytes()))
			}

			// Streamed: parts cut at random, targets dealt out among them.
			var streamed bytes.Buffer
			s, err := NewStream(&streamed, format, r, o)
			if err != nil {
				t.Fatal(err)
			}
			var parts []*Part
			for i := 0; i < len(r.Findings) || len(parts) == 0; {
				n := min(rng.IntN(8), len(r.Findings)-i)
				parts = append(parts, &Part{Findings: r.Findings[i : i+n]})
				i += n
			}
			// Targets dealt out in order, some parts getting none.
			k := 0
			for _, tg := range r.Targets {
				k = min(len(parts)-1, k+rng.IntN(2))
				parts[k].Targets = append(parts[k].Targets, tg)
			}
			done := make(chan bool)
			for _, p := range parts {
				if rng.IntN(2) == 0 {
					go func() { s.Prepare(p); done <- true }()
					<-done
				}
			}
			for _, p := range parts {
				if err := s.Add(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.End(r.Errors, r.Summary, r.Notices); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if !bytes.Equal(streamed.Bytes(), want.Bytes()) {
				t.Fatalf("iteration %d, %s, in %d parts:\n%s", iter, format, len(parts), diffAt(streamed.Bytes(), want.Bytes()))
			}
		}
	}
}

// TestStreamSpoolsOnDisk: a report larger than a spool's memory goes
// through the temporary file, and nothing is left behind.
func TestStreamSpoolsOnDisk(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	rng := rand.New(rand.NewPCG(7, 7))
	r := randomReport(rng)
	for len(r.Findings) < 3*spool.DefaultLimit/200 {
		r.Findings = append(r.Findings, randomReport(rng).Findings...)
	}
	for _, format := range []string{"sarif", "junit", "markdown"} {
		var want, got bytes.Buffer
		legacy := *r
		if err := legacyWrite(&want, format, &legacy, Options{}); err != nil {
			t.Fatal(err)
		}
		w := *r
		if err := Write(&got, format, &w, Options{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%s (%d bytes):\n%s", format, want.Len(), diffAt(got.Bytes(), want.Bytes()))
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%s left in TMPDIR", ents[0].Name())
	}
}

func diffAt(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-150)
	return fmt.Sprintf("first difference at byte %d of %d (want %d):\n got: %q\nwant: %q", i, len(got), len(want), got[lo:min(len(got), i+150)], want[lo:min(len(want), i+150)])
}
