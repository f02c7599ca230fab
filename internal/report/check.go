package report

import (
	"encoding/json"
	"fmt"
	"time"
)

// The acceptance checks' model. hyhome verify and hyhome audit --check fill
// a CheckReport; the check formats (checkformats.go) render it, so a check
// reads the same whichever command ran it. A check's own figures travel as
// its CheckDetail: JSON as the check defines it, and lines and tables for
// the formats people read.

// CheckStatus is a check's verdict.
type CheckStatus string

// Verdicts. ERROR is a check that could not run on a host where it should
// (the canary image is missing, a query failed); SKIP is a check whose inputs
// were not given (no --loki-url).
const (
	CheckPass  CheckStatus = "PASS"
	CheckFail  CheckStatus = "FAIL"
	CheckSkip  CheckStatus = "SKIP"
	CheckError CheckStatus = "ERROR"
)

// CheckEngine is the Docker Engine the checks ran against.
type CheckEngine struct {
	Host          string `json:"host"`
	Name          string `json:"name"`
	ServerVersion string `json:"server_version"`
	CgroupVersion string `json:"cgroup_version"`
	NCPU          int    `json:"ncpu"`
	MemTotal      int64  `json:"mem_total_bytes"`
	// Clock says how engine timestamps were related to the checks' clock.
	Clock string `json:"clock,omitempty"`
}

// CheckReport is one run of acceptance checks.
type CheckReport struct {
	Tool    string `json:"tool"`
	Version string `json:"version"`
	// Command ("verify", "audit") and Spec ("SPEC-SYS-01") name the run in
	// the headings.
	Command         string         `json:"-"`
	Spec            string         `json:"-"`
	Engine          CheckEngine    `json:"engine"`
	Started         time.Time      `json:"started"`
	DurationSeconds float64        `json:"duration_seconds"`
	Checks          []*CheckResult `json:"checks"`
	// Notices are things the operator should know that belong to no check:
	// expired canaries of earlier runs removed, a container gone mid-read.
	Notices []string `json:"notices,omitempty"`
}

// CheckResult is one check's verdict with its measured figures.
type CheckResult struct {
	ID              string      `json:"id"`
	Title           string      `json:"title"`
	Requirement     string      `json:"requirement"`
	Status          CheckStatus `json:"status"`
	Summary         string      `json:"summary"`
	Warnings        []string    `json:"warnings,omitempty"`
	DurationSeconds float64     `json:"duration_seconds"`
	// Detail is what the check measured; nil when it measured nothing.
	Detail CheckDetail `json:"-"`
}

// CheckDetail is what one check measured. Its JSON is the check's own and
// goes into the result under DetailKey; Describe lays it out, as lines and
// tables, for the formats people read.
type CheckDetail interface {
	DetailKey() string
	Describe(d *Detail)
}

// SharedDetail is a detail several checks judge (one set of trials against
// two bounds). The text format lays it out at its first check and prints
// ShownAbove at the others.
type SharedDetail interface {
	CheckDetail
	ShownAbove() string
}

// Detail is a check's figures laid out: lines, and tables whose columns the
// formats align.
type Detail struct {
	blocks []detailBlock
}

type detailBlock struct {
	line  string
	table [][]string
}

// Linef adds a line.
func (d *Detail) Linef(format string, args ...any) {
	d.blocks = append(d.blocks, detailBlock{line: fmt.Sprintf(format, args...)})
}

// Table adds a table, one row per slice; cells are aligned in columns.
func (d *Detail) Table(rows [][]string) {
	if len(rows) > 0 {
		d.blocks = append(d.blocks, detailBlock{table: rows})
	}
}

// Fail, Error and Warn finish a result: the verdict and why.
func (r *CheckResult) Fail(format string, args ...any) *CheckResult {
	r.Status, r.Summary = CheckFail, fmt.Sprintf(format, args...)
	return r
}

// Error is a check that could not run.
func (r *CheckResult) Error(format string, args ...any) *CheckResult {
	r.Status, r.Summary = CheckError, fmt.Sprintf(format, args...)
	return r
}

// Pass is a check that holds.
func (r *CheckResult) Pass(format string, args ...any) *CheckResult {
	r.Status, r.Summary = CheckPass, fmt.Sprintf(format, args...)
	return r
}

// Warn adds something the operator should look at, whatever the verdict.
func (r *CheckResult) Warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// MarshalJSON writes the result's fields, then its detail under its key.
func (r CheckResult) MarshalJSON() ([]byte, error) {
	type plain CheckResult // without this method
	b, err := json.Marshal(plain(r))
	if err != nil || r.Detail == nil {
		return b, err
	}
	key, err := json.Marshal(r.Detail.DetailKey())
	if err != nil {
		return nil, err
	}
	d, err := json.Marshal(r.Detail)
	if err != nil {
		return nil, err
	}
	out := append(b[:len(b)-1:len(b)-1], ',')
	out = append(append(append(out, key...), ':'), d...)
	return append(out, '}'), nil
}

// Failed reports whether any check failed.
func (r *CheckReport) Failed() bool { return r.count(CheckFail) > 0 }

// Errored reports whether any check could not run.
func (r *CheckReport) Errored() bool { return r.count(CheckError) > 0 }

func (r *CheckReport) count(s CheckStatus) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}
