package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/hy-home/hyhome/internal/human"
)

// CheckWriter renders a check report in one format.
type CheckWriter func(w io.Writer, r *CheckReport) error

// CheckFormats maps a --format name to its check writer.
var CheckFormats = map[string]CheckWriter{
	"text":     writeChecksText,
	"json":     writeChecksJSON,
	"junit":    writeChecksJUnit,
	"markdown": writeChecksMarkdown,
}

// CheckFormatNames lists the check formats, sorted.
func CheckFormatNames() []string { return names(CheckFormats) }

// names are a format map's keys, sorted, for flag help and errors.
func names[W any](formats map[string]W) []string {
	out := make([]string, 0, len(formats))
	for n := range formats {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// WriteChecks renders r in the named format.
func WriteChecks(w io.Writer, format string, r *CheckReport) error {
	f, ok := CheckFormats[format]
	if !ok {
		return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(CheckFormatNames(), ", "))
	}
	return f(w, r)
}

// heading is "hyhome verify: SPEC-SYS-01 acceptance checks".
func (r *CheckReport) heading() string {
	return fmt.Sprintf("%s %s: %s acceptance checks", r.Tool, r.Command, r.Spec)
}

// engineLine says what the checks ran on.
func (r *CheckReport) engineLine() string {
	e := r.Engine
	return fmt.Sprintf("engine %s: %s, Docker %s, cgroup v%s, %d CPUs, %s memory", e.Host, e.Name, e.ServerVersion, e.CgroupVersion, e.NCPU, human.Bytes(e.MemTotal))
}

// tally is "6 checks: 4 passed, 1 failed, 1 skipped".
func (r *CheckReport) tally() string {
	var parts []string
	for _, s := range []struct {
		st   CheckStatus
		word string
	}{{CheckPass, "passed"}, {CheckFail, "failed"}, {CheckError, "could not run"}, {CheckSkip, "skipped"}} {
		if n := r.count(s.st); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s.word))
		}
	}
	noun := "checks"
	if len(r.Checks) == 1 {
		noun = "check"
	}
	return fmt.Sprintf("%d %s: %s", len(r.Checks), noun, strings.Join(parts, ", "))
}

// only is r with one check and no notices: what JUnit and Markdown show
// per check.
func (r *CheckReport) only(c *CheckResult) *CheckReport {
	one := *r
	one.Checks = []*CheckResult{c}
	one.Notices = nil
	return &one
}

// --- text ---------------------------------------------------------------------

func writeChecksText(w io.Writer, r *CheckReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\n\n", r.heading(), r.engineLine())
	shown := map[CheckDetail]bool{}
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-10s  %-5s  %s: %s\n", c.ID, c.Status, c.Title, c.Summary)
		var d strings.Builder
		if c.Detail != nil {
			if s, ok := c.Detail.(SharedDetail); ok && shown[c.Detail] {
				d.WriteString(s.ShownAbove() + "\n")
			} else {
				shown[c.Detail] = true
				var det Detail
				c.Detail.Describe(&det)
				det.writeText(&d)
			}
		}
		for _, wn := range c.Warnings {
			fmt.Fprintf(&d, "warning: %s\n", wn)
		}
		for _, line := range strings.Split(strings.TrimRight(d.String(), "\n"), "\n") {
			if line != "" {
				b.WriteString("    " + line + "\n")
			}
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notices {
		fmt.Fprintf(&b, "notice: %s\n", n)
	}
	fmt.Fprintf(&b, "%s: %s in %.1f s\n", r.Command, r.tally(), r.DurationSeconds)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeText lays the detail out: each line as it is, each table aligned in
// columns two spaces apart, without trailing blanks.
func (d *Detail) writeText(w io.Writer) {
	for _, blk := range d.blocks {
		if blk.table == nil {
			fmt.Fprintln(w, blk.line)
			continue
		}
		var buf bytes.Buffer
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		for _, row := range blk.table {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		_ = tw.Flush()
		for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
}

// --- json ---------------------------------------------------------------------

func writeChecksJSON(w io.Writer, r *CheckReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// --- junit --------------------------------------------------------------------

// writeChecksJUnit makes one test case per check, its text in system-out.
func writeChecksJUnit(w io.Writer, r *CheckReport) error {
	s := JUnitSuite{Name: fmt.Sprintf("%s %s (%s)", r.Tool, r.Command, r.Spec), Time: r.DurationSeconds}
	for _, c := range r.Checks {
		var detail bytes.Buffer
		_ = writeChecksText(&detail, r.only(c))
		tc := JUnitCase{Name: c.ID + " " + c.Title, Classname: r.Spec, Time: c.DurationSeconds, Output: detail.String()}
		m := &JUnitMessage{Message: c.Summary, Body: strings.Join(c.Warnings, "\n")}
		switch c.Status {
		case CheckFail:
			tc.Failure = m
			s.Failures++
		case CheckError:
			tc.Error = m
			s.Errors++
		case CheckSkip:
			tc.Skipped = m
			s.Skipped++
		}
		s.Cases = append(s.Cases, tc)
	}
	s.Tests = len(s.Cases)
	return WriteJUnit(w, s)
}

// --- markdown -----------------------------------------------------------------

// writeChecksMarkdown is a table of verdicts, then each check that ran with
// its text in a code block.
func writeChecksMarkdown(w io.Writer, r *CheckReport) error {
	var b strings.Builder
	e := r.Engine
	fmt.Fprintf(&b, "# %s\n\n", r.heading())
	fmt.Fprintf(&b, "Engine `%s`: %s, Docker %s, cgroup v%s, %d CPUs, %s memory. %s.\n\n", e.Host, mdEscape(e.Name), e.ServerVersion, e.CgroupVersion, e.NCPU, human.Bytes(e.MemTotal), r.tally())
	b.WriteString("| check | result | summary |\n|---|---|---|\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "| %s %s | **%s** | %s |\n", c.ID, mdEscape(c.Title), c.Status, mdEscape(c.Summary))
	}
	b.WriteString("\n")
	for _, c := range r.Checks {
		if c.Status == CheckSkip {
			continue
		}
		var d bytes.Buffer
		_ = writeChecksText(&d, r.only(c))
		lines := strings.Split(strings.TrimRight(d.String(), "\n"), "\n")
		// Drop the engine header and the tally: the table above has them.
		if len(lines) > 4 {
			lines = lines[3 : len(lines)-1]
		}
		fmt.Fprintf(&b, "## %s %s: %s\n\n```\n%s\n```\n\n", c.ID, c.Title, c.Status, strings.TrimRight(strings.Join(lines, "\n"), "\n"))
	}
	for _, n := range r.Notices {
		fmt.Fprintf(&b, "- notice: %s\n", mdEscape(n))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
