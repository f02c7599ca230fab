package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// figures is a detail shared by two checks, as verify's trials are.
type figures struct {
	N int `json:"n"`
}

func (f *figures) DetailKey() string  { return "figures" }
func (f *figures) ShownAbove() string { return "figures above" }
func (f *figures) Describe(d *Detail) {
	d.Linef("measured %d", f.N)
	d.Table([][]string{{"a", "bb", ""}, {"ccc", "d", "note"}})
}

func checkSample() *CheckReport {
	f := &figures{N: 2}
	return &CheckReport{Tool: "hyhome", Version: "test", Command: "verify", Spec: "SPEC-SYS-01",
		Engine: CheckEngine{Host: "unix:///var/run/docker.sock", Name: "h", ServerVersion: "20.10.24", CgroupVersion: "2", NCPU: 2, MemTotal: 1 << 30},
		Checks: []*CheckResult{
			(&CheckResult{ID: "ONE", Title: "First", Detail: f}).Pass("ok"),
			(&CheckResult{ID: "TWO", Title: "Second", Detail: f}).Fail("%d over", 1),
			{ID: "THREE", Title: "Third", Status: CheckSkip, Summary: "no input"},
		},
		Notices: []string{"n | 1"},
	}
}

func TestCheckText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteChecks(&b, "text", checkSample()); err != nil {
		t.Fatal(err)
	}
	want := `hyhome verify: SPEC-SYS-01 acceptance checks
engine unix:///var/run/docker.sock: h, Docker 20.10.24, cgroup v2, 2 CPUs, 1.00 GiB memory

ONE         PASS   First: ok
    measured 2
    a    bb
    ccc  d   note

TWO         FAIL   Second: 1 over
    figures above

THREE       SKIP   Third: no input

notice: n | 1
verify: 3 checks: 1 passed, 1 failed, 1 skipped in 0.0 s
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestCheckJSONPutsTheDetailUnderItsKey(t *testing.T) {
	var b bytes.Buffer
	if err := WriteChecks(&b, "json", checkSample()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Checks []struct {
			Status  CheckStatus
			Figures *figures
		}
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if c := doc.Checks; c[1].Status != CheckFail || c[1].Figures == nil || c[1].Figures.N != 2 || c[2].Figures != nil {
		t.Errorf("details: %s", b.String())
	}
	if !strings.Contains(b.String(), "\"summary\": \"1 over\",\n      \"duration_seconds\": 0,\n      \"figures\": {\n        \"n\": 2\n      }") {
		t.Errorf("the detail is not the last field, indented with the rest:\n%s", b.String())
	}
}

func TestCheckFormats(t *testing.T) {
	if got := strings.Join(CheckFormatNames(), ","); got != "json,junit,markdown,text" {
		t.Errorf("formats %s", got)
	}
	for _, f := range CheckFormatNames() {
		if err := WriteChecks(&bytes.Buffer{}, f, &CheckReport{}); err != nil {
			t.Errorf("%s of an empty report: %v", f, err)
		}
	}
	if err := WriteChecks(&bytes.Buffer{}, "sarif", checkSample()); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("sarif: %v", err)
	}
	r := checkSample()
	if !r.Failed() || r.Errored() {
		t.Error("Failed/Errored")
	}
}
