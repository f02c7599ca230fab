package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

func sample() *Report {
	return &Report{
		Version: "test",
		Command: "lint",
		Findings: []policy.Finding{
			{Rule: "privileged", Requirements: []string{"NFR-SEC-01", "SEC-IDENTITY"}, Severity: policy.Error, Service: "cadvisor",
				File: "deploy/compose.yaml", Line: 12, Message: "runs privileged", Remediation: "Remove it.",
				ServicePos: workload.Position{File: "deploy/compose.yaml", Line: 10}},
			{Rule: "host-namespaces", Requirements: []string{"NFR-SEC-01"}, Severity: policy.Error, Service: "node-exporter",
				File: "deploy/compose.yaml", Line: 30, Message: "shares the host's pid namespace | pipe", Exempted: true, ADR: "ADR-0001",
				ServicePos: workload.Position{File: "deploy/compose.yaml", Line: 28}},
			{Rule: "non-root", Requirements: []string{"SEC-IDENTITY"}, Severity: policy.Error, Service: "web",
				Source: "container web (0123456789ab)", Message: "runs as root", Kind: workload.KindContainer},
		},
		Summary: policy.Summary{Files: 1, Services: 3, Errors: 2, Exempted: 1},
		Targets: []Target{{Service: "cadvisor", Source: "deploy/compose.yaml"}, {Service: "node-exporter", Source: "deploy/compose.yaml"}},
		Notices: []string{"container gone before inspect"},
	}
}

func render(t *testing.T, format string, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, format, r, Options{BaseDir: ""}); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	return b.String()
}

func TestEveryFormatRendersEmptyAndFullReports(t *testing.T) {
	for _, f := range FormatNames() {
		for _, r := range []*Report{{Command: "lint"}, sample()} {
			if out := render(t, f, r); out == "" {
				t.Errorf("%s: empty output", f)
			}
		}
	}
	if err := Write(&bytes.Buffer{}, "yaml", sample(), Options{}); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("unknown format: %v", err)
	}
}

func TestText(t *testing.T) {
	out := render(t, "text", sample())
	for _, want := range []string{
		"deploy/compose.yaml\n  cadvisor\n",
		"12  error    privileged",
		"exempted by ADR-0001",
		"container web (0123456789ab)\n  web\n",
		"notice: container gone before inspect",
		"How to fix:",
		"lint: 1 file, 3 services: 2 errors, 0 warnings, 1 exempted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes without Color")
	}
	var b bytes.Buffer
	Write(&b, "text", sample(), Options{Color: true})
	if !strings.Contains(b.String(), "\x1b[31merror") {
		t.Error("Color does not colour errors")
	}
}

func TestJSON(t *testing.T) {
	var got struct {
		Findings []map[string]any `json:"findings"`
		Summary  map[string]int   `json:"summary"`
		Notices  []string         `json:"notices"`
	}
	if err := json.Unmarshal([]byte(render(t, "json", sample())), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Findings) != 3 || got.Findings[1]["exempted"] != true || got.Findings[1]["adr"] != "ADR-0001" || got.Findings[0]["severity"] != "error" {
		t.Errorf("findings = %v", got.Findings)
	}
	empty := render(t, "json", &Report{Command: "lint"})
	if !strings.Contains(empty, `"errors": []`) {
		t.Errorf("an empty report must have errors: [], got %s", empty)
	}
	if !strings.Contains(empty, `"findings": []`) {
		t.Errorf("an empty report must have findings: [], got %s", empty)
	}
}

func TestSARIFSuppressesExemptions(t *testing.T) {
	var doc sarifLog
	if err := json.Unmarshal([]byte(render(t, "sarif", sample())), &doc); err != nil {
		t.Fatal(err)
	}
	res := doc.Runs[0].Results
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	if len(res[1].Suppressions) != 1 || res[1].Suppressions[0].Justification != "exempted by ADR-0001" {
		t.Errorf("exempted finding not suppressed: %+v", res[1].Suppressions)
	}
	if res[2].Locations[0].PhysicalLocation != nil {
		t.Error("a runtime finding has no file, so no physical location")
	}
}

func TestJUnitCountsEveryRulePerService(t *testing.T) {
	r := sample()
	r.Rules = []*policy.Rule{policy.Default.Get("privileged"), policy.Default.Get("host-namespaces"), policy.Default.Get("non-root")}
	var s struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
	}
	if err := xml.Unmarshal([]byte(render(t, "junit", r)), &s); err != nil {
		t.Fatal(err)
	}
	// 3 services (2 files targets + 1 runtime) × 3 rules; privileged and
	// non-root fail, the exempted host-namespaces is skipped.
	if s.Tests != 9 || s.Failures != 2 || s.Skipped != 1 {
		t.Errorf("tests=%d failures=%d skipped=%d, want 9/2/1", s.Tests, s.Failures, s.Skipped)
	}
}

func TestMarkdownEscapesPipes(t *testing.T) {
	out := render(t, "markdown", sample())
	if !strings.Contains(out, `namespace \| pipe`) {
		t.Errorf("pipe not escaped:\n%s", out)
	}
}
