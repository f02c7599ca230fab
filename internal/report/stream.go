package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/human"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/spool"
)

// Part is a piece of a report, in the order the report lists it: lint
// hands over one project's findings and targets at a time. A report is the
// same whatever its parts: Write renders a whole Report as parts of its
// own, and a Stream of many parts writes the bytes Write would for their
// concatenation.
type Part struct {
	Findings []policy.Finding
	Targets  []Target

	// What Prepare rendered, for Add to write.
	prepared bool
	data     []byte
	aux      any
	err      error
}

// streamer is one format's streaming writer.
type streamer interface {
	// prepare renders what it can of p without the parts before it; it
	// runs concurrently for different parts.
	prepare(p *Part)
	// add writes p (prepared) after the parts before it.
	add(p *Part) error
	// end writes what follows the parts; r has the tail (Errors,
	// Summary, Notices).
	end(r *Report) error
	// close releases what the writer holds (spools).
	close()
}

// Stream writes one report as its parts come: the text and JSON formats
// straight to the writer, the formats whose head depends on the whole
// report (SARIF's artifacts and invocation, JUnit's totals, Markdown's
// summary table) through a spool (memory, then an unlinked temporary file)
// copied out at End. Memory holds the parts in flight and, per file, a
// name (distinct files, SARIF artifacts, JUnit suites), never the
// findings of the parts already added.
type Stream struct {
	r Report
	f streamer
}

// NewStream starts a report in the named format. head gives what is known
// before any part: Tool, Version, Command, Rules, Scope; its findings,
// targets and tail are ignored.
func NewStream(w io.Writer, format string, head *Report, o Options) (*Stream, error) {
	mk, ok := formats[format]
	if !ok {
		return nil, fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(FormatNames(), ", "))
	}
	s := &Stream{r: *head}
	s.r.Findings, s.r.Targets, s.r.Errors, s.r.Notices = nil, nil, nil, nil
	if s.r.Tool == "" {
		s.r.Tool = "hyhome"
	}
	if s.r.Rules == nil {
		s.r.Rules = policy.Default.Rules()
	}
	f, err := mk(w, &s.r, o)
	if err != nil {
		return nil, err
	}
	s.f = f
	return s, nil
}

// Prepare renders what can be rendered of p on its own. It is optional
// (Add prepares a part that was not) and safe to call concurrently for
// different parts: the place to spread the rendering over the cores.
func (s *Stream) Prepare(p *Part) {
	if !p.prepared {
		s.f.prepare(p)
		p.prepared = true
	}
}

// Add writes p after the parts added before it. p may be reused once Add
// returns.
func (s *Stream) Add(p *Part) error {
	s.Prepare(p)
	if p.err != nil {
		return p.err
	}
	return s.f.add(p)
}

// End writes the rest of the report: the inputs that could not be judged,
// the summary and the notices.
func (s *Stream) End(errs []InputError, summary policy.Summary, notices []string) error {
	s.r.Errors, s.r.Summary, s.r.Notices = errs, summary, notices
	return s.f.end(&s.r)
}

// Close releases the stream's spools; call it whatever happened.
func (s *Stream) Close() { s.f.close() }

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

func paint(on bool, code, s string) string {
	if !on {
		return s
	}
	return code + s + ansiReset
}

// textStream groups findings by file (or runtime source) and service. The
// grouping runs on across parts: a part that goes on with the previous
// part's file and service adds no heading.
type textStream struct {
	w                      *bufio.Writer
	o                      Options
	lastGroup, lastService string
	fired                  map[string]bool
	any                    bool
}

func newTextStream(out io.Writer, _ *Report, o Options) (streamer, error) {
	return &textStream{w: bufio.NewWriterSize(out, 64<<10), o: o, fired: map[string]bool{}}, nil
}

func (t *textStream) prepare(*Part) {}
func (t *textStream) close()        {}

func (t *textStream) add(p *Part) error {
	w, o := t.w, t.o
	fs := p.Findings
	for i := range fs {
		f := &fs[i]
		if g := groupKey(f); g != t.lastGroup {
			if t.lastGroup != "" {
				w.WriteByte('\n')
			}
			w.WriteString(paint(o.Color, ansiBold, g))
			w.WriteByte('\n')
			t.lastGroup, t.lastService = g, ""
		}
		if f.Service != t.lastService {
			name := f.Service
			if f.Project != "" && f.File != "" {
				name = fmt.Sprintf("%s (project %s)", f.Service, f.Project)
			}
			fmt.Fprintf(w, "  %s\n", paint(o.Color, ansiCyan, name))
			t.lastService = f.Service
		}
		loc := ""
		if f.Line > 0 {
			loc = fmt.Sprintf("%d", f.Line)
			if f.File != "" && f.File != t.lastGroup {
				loc = fmt.Sprintf("%s:%d", filepath.Base(f.File), f.Line)
			}
		}
		sev := f.Severity.String()
		switch {
		case f.Exempted:
			sev = "exempt"
		case f.Severity == policy.Error:
			sev = paint(o.Color, ansiRed, sev)
		case f.Severity == policy.Warning:
			sev = paint(o.Color, ansiYellow, sev)
		}
		msg := f.Message
		if f.Exempted {
			msg = paint(o.Color, ansiDim, fmt.Sprintf("%s (exempted by %s)", msg, f.ADR))
		} else {
			t.fired[f.Rule] = true
		}
		fmt.Fprintf(w, "    %5s  %-7s  %-19s %s  [%s]\n", loc, sev, f.Rule, msg, strings.Join(f.Requirements, ", "))
	}
	t.any = t.any || len(fs) > 0
	return nil
}

func (t *textStream) end(r *Report) error {
	w, o := t.w, t.o
	if t.any {
		fmt.Fprintln(w)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, paint(o.Color, ansiBold, "Not linted (could not be loaded):"))
		for _, e := range r.Errors {
			msg := strings.ReplaceAll(strings.TrimSpace(e.Message), "\n", "\n      ")
			fmt.Fprintf(w, "  %s: %s  %s\n", e.Location(), paint(o.Color, ansiRed, "error"), msg)
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.Notices {
		fmt.Fprintf(w, "notice: %s\n", n)
	}
	if len(t.fired) > 0 {
		fmt.Fprintln(w, paint(o.Color, ansiBold, "How to fix:"))
		ids := make([]string, 0, len(t.fired))
		for id := range t.fired {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			if rule := r.rule(id); rule != nil {
				fmt.Fprintf(w, "  %-19s %s\n", id, rule.Remediation)
			}
		}
		fmt.Fprintln(w)
	}
	s := r.Summary
	scope := r.Scope
	if scope == "" {
		scope = human.Plural(s.Files, "file") + ", " + human.Plural(s.Services, "service")
	}
	notLoaded := ""
	if len(r.Errors) > 0 {
		notLoaded = fmt.Sprintf("; %s not loaded", human.Plural(len(r.Errors), "file"))
	}
	fmt.Fprintf(w, "%s: %s: %s, %s, %s exempted%s\n",
		r.Command, scope, human.Plural(s.Errors, "error"), human.Plural(s.Warnings, "warning"), fmt.Sprint(s.Exempted), notLoaded)
	return w.Flush()
}

// jsonStream writes one JSON document as it goes: the head, then each
// part's findings (encoded by Prepare, one per line, so the report stays
// easy to grep), then the tail.
type jsonStream struct {
	w       *bufio.Writer
	r       *Report
	started bool
	n       int
}

func newJSONStream(out io.Writer, r *Report, _ Options) (streamer, error) {
	return &jsonStream{w: bufio.NewWriterSize(out, 64<<10), r: r}, nil
}

func (j *jsonStream) close() {}

func (j *jsonStream) head(k string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Fprintf(j.w, "  %q: %s,\n", k, b)
	return nil
}

func (j *jsonStream) start() error {
	if j.started {
		return nil
	}
	j.started = true
	j.w.WriteString("{\n")
	for _, kv := range []struct {
		k string
		v any
	}{{"tool", j.r.Tool}, {"version", j.r.Version}, {"command", j.r.Command}} {
		if err := j.head(kv.k, kv.v); err != nil {
			return err
		}
	}
	j.w.WriteString("  \"findings\": [")
	return nil
}

func (j *jsonStream) prepare(p *Part) {
	var b []byte
	for i := range p.Findings {
		enc, err := json.Marshal(&p.Findings[i])
		if err != nil {
			p.err = err
			return
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		b = append(b, enc...)
	}
	p.data = b
}

func (j *jsonStream) add(p *Part) error {
	if err := j.start(); err != nil {
		return err
	}
	if len(p.Findings) == 0 {
		return nil
	}
	if j.n > 0 {
		j.w.WriteByte(',')
	}
	j.w.Write(p.data)
	j.n += len(p.Findings)
	return nil
}

func (j *jsonStream) end(r *Report) error {
	if err := j.start(); err != nil {
		return err
	}
	w := j.w
	if j.n > 0 {
		w.WriteString("\n  ")
	}
	w.WriteString("],\n")
	inputErrors := r.Errors
	if inputErrors == nil {
		inputErrors = []InputError{}
	}
	if err := j.head("errors", inputErrors); err != nil {
		return err
	}
	if err := j.head("summary", r.Summary); err != nil {
		return err
	}
	notices := r.Notices
	if notices == nil {
		notices = []string{}
	}
	b, err := json.Marshal(notices)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  \"notices\": %s\n}\n", b)
	return w.Flush()
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// markdownStream opens with the summary table, known only at the end: the
// findings' rows go to a spool and follow it.
type markdownStream struct {
	out  io.Writer
	rows *spool.Spool
	n    int
}

func newMarkdownStream(out io.Writer, _ *Report, _ Options) (streamer, error) {
	return &markdownStream{out: out, rows: spool.New(0)}, nil
}

func (m *markdownStream) close() { m.rows.Close() }

func (m *markdownStream) prepare(p *Part) {
	var b strings.Builder
	for i := range p.Findings {
		f := &p.Findings[i]
		sev := f.Severity.String()
		msg := f.Message
		if f.Exempted {
			sev = "exempt"
			msg += " (exempted by " + f.ADR + ")"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | [%s](%s#%s) | %s | %s |\n", mdEscape(f.Location()), mdEscape(f.Service), sev,
			f.Rule, "docs/rules.md", f.Rule, strings.Join(f.Requirements, ", "), mdEscape(msg))
	}
	p.data = []byte(b.String())
}

func (m *markdownStream) add(p *Part) error {
	m.n += len(p.Findings)
	_, err := m.rows.Write(p.data)
	return err
}

func (m *markdownStream) end(r *Report) error {
	w := bufio.NewWriterSize(m.out, 64<<10)
	s := r.Summary
	fmt.Fprintf(w, "# hyhome %s report\n\n", r.Command)
	fmt.Fprintf(w, "| files | services | errors | warnings | exempted |\n|---:|---:|---:|---:|---:|\n| %d | %d | %d | %d | %d |\n\n",
		s.Files, s.Services, s.Errors, s.Warnings, s.Exempted)
	if m.n == 0 {
		fmt.Fprintln(w, "No findings.")
	} else {
		fmt.Fprintln(w, "| location | service | severity | rule | requirements | message |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		if _, err := m.rows.WriteTo(w); err != nil {
			return err
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "\n## Not linted (could not be loaded)\n\n| location | error |\n|---|---|")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "| `%s` | %s |\n", mdEscape(e.Location()), mdEscape(e.Message))
		}
	}
	for _, n := range r.Notices {
		fmt.Fprintf(w, "\n> notice: %s\n", mdEscape(n))
	}
	return w.Flush()
}
