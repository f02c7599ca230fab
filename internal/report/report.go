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
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/hy-home/hyhome/internal/parallel"
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

// formats makes each format's streaming writer.
var formats = map[string]func(w io.Writer, r *Report, o Options) (streamer, error){
	"text":     newTextStream,
	"json":     newJSONStream,
	"sarif":    newSARIFStream,
	"junit":    newJUnitStream,
	"markdown": newMarkdownStream,
}

// Formats maps a --format name to its writer.
var Formats = map[string]Writer{}

func init() {
	for name := range formats {
		Formats[name] = func(w io.Writer, r *Report, o Options) error { return Write(w, name, r, o) }
	}
}

// FormatNames lists the formats, sorted, for flag help and errors.
func FormatNames() []string { return names(formats) }

// Write renders r in the named format: a Stream given r as one part.
func Write(w io.Writer, format string, r *Report, o Options) error {
	if r.Tool == "" {
		r.Tool = "hyhome"
	}
	if r.Rules == nil {
		r.Rules = policy.Default.Rules()
	}
	s, err := NewStream(w, format, r, o)
	if err != nil {
		return err
	}
	defer s.Close()
	// Parts of a few hundred findings, prepared (encoded) a wave at a
	// time on every core and added in order: a wave's worth is held
	// rendered at once, never the whole report twice.
	const chunk = 512
	parts := []*Part{{Targets: r.Targets}}
	for i := 0; i < len(r.Findings); i += chunk {
		fs := r.Findings[i:min(i+chunk, len(r.Findings))]
		if i == 0 {
			parts[0].Findings = fs
		} else {
			parts = append(parts, &Part{Findings: fs})
		}
	}
	wave := 4 * runtime.GOMAXPROCS(0)
	for first := 0; first < len(parts); first += wave {
		ps := parts[first:min(first+wave, len(parts))]
		if len(ps) > 1 {
			parallel.ForEach(context.Background(), len(ps), 0, func(k int) { s.Prepare(ps[k]) })
		}
		for _, p := range ps {
			if err := s.Add(p); err != nil {
				return err
			}
			*p = Part{}
		}
	}
	return s.End(r.Errors, r.Summary, r.Notices)
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
