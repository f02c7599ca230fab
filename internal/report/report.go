// Package report renders results for people and machines. Findings: text,
// JSON, SARIF 2.1.0, JUnit XML and Markdown; lint and audit fill the same
// Report, so the formats and their meaning are identical whatever the
// source. Acceptance checks: text, JSON, JUnit XML and Markdown of a
// CheckReport (check.go), which verify and audit --check fill alike.
//
// It formats; it must not evaluate rules or checks or decide exit codes.
// Runners import it for its shared types; only the CLI renders.
package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/hy-home/hyhome/internal/policy"
)

// Target is one judged workload, so that formats can also show what passed.
type Target struct {
	Service string `json:"service"`
	Source  string `json:"source"` // file path, or "container x (id)"
	Kind    string `json:"kind"`
}

// InputError is an input that could not be judged: a compose file that does
// not load. Every format reports each one (JSON errors[], SARIF
// toolExecutionNotifications, JUnit <error>, a text and Markdown section),
// so that one bad file never hides the findings of the others.
type InputError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

// Location renders file:line (or the file alone).
func (e InputError) Location() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return e.File
}

// Report is everything a format may print.
type Report struct {
	Tool     string
	Version  string
	Command  string // "lint" or "audit"
	Findings []policy.Finding
	Summary  policy.Summary
	Targets  []Target
	// Errors are the inputs that could not be judged, in file order.
	Errors []InputError
	// Rules is the catalogue the findings come from (rule metadata for SARIF
	// and JUnit); nil means policy.Default.
	Rules []*policy.Rule
	// Notices are things the user should know that are not findings
	// (a container gone before inspect, Swarm skipped on a worker).
	Notices []string
	// Scope, when set, says what was judged in the text summary line instead
	// of the file and service counts (audit: "12 containers, 2 Swarm services").
	Scope string
}

// Options tune rendering.
type Options struct {
	// Color enables ANSI colours in the text format (terminals only).
	Color bool
	// BaseDir makes file paths relative in SARIF (repository root).
	BaseDir string
}

// Writer renders a report in one format.
type Writer func(w io.Writer, r *Report, o Options) error

// Formats maps a --format name to its writer.
var Formats = map[string]Writer{
	"text":     writeText,
	"json":     writeJSON,
	"sarif":    writeSARIF,
	"junit":    writeJUnit,
	"markdown": writeMarkdown,
}

// FormatNames lists the formats, sorted, for flag help and errors.
func FormatNames() []string { return names(Formats) }

// Write renders r in the named format.
func Write(w io.Writer, format string, r *Report, o Options) error {
	f, ok := Formats[format]
	if !ok {
		return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(FormatNames(), ", "))
	}
	if r.Tool == "" {
		r.Tool = "hyhome"
	}
	if r.Rules == nil {
		r.Rules = policy.Default.Rules()
	}
	return f(w, r, o)
}

func (r *Report) rule(id string) *policy.Rule {
	for _, x := range r.Rules {
		if x.ID == id {
			return x
		}
	}
	return nil
}

// groupKey is the heading a finding is grouped under: its file, or its
// runtime source.
func groupKey(f *policy.Finding) string { return f.Group() }
