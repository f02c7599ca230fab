package report

// The writers as they were before the report was streamed (issue 16), kept
// as the oracle TestStreamMatchesLegacy compares the streaming writers to.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/human"
	"github.com/hy-home/hyhome/internal/parallel"
	"github.com/hy-home/hyhome/internal/policy"
)

var legacyFormats = map[string]Writer{
	"text":     legacyText,
	"json":     legacyJSON,
	"sarif":    legacySARIF,
	"junit":    legacyJUnit,
	"markdown": legacyMarkdown,
}

// legacyWrite is Write as it was.
func legacyWrite(w io.Writer, format string, r *Report, o Options) error {
	if r.Tool == "" {
		r.Tool = "hyhome"
	}
	if r.Rules == nil {
		r.Rules = policy.Default.Rules()
	}
	return legacyFormats[format](w, r, o)
}

func legacyText(out io.Writer, r *Report, o Options) error {
	w := bufio.NewWriter(out)
	fs := r.Findings
	var lastGroup, lastService string
	fired := map[string]bool{}
	for i := range fs {
		f := &fs[i]
		if g := groupKey(f); g != lastGroup {
			if lastGroup != "" {
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, paint(o.Color, ansiBold, g))
			lastGroup, lastService = g, ""
		}
		if f.Service != lastService {
			name := f.Service
			if f.Project != "" && f.File != "" {
				name = fmt.Sprintf("%s (project %s)", f.Service, f.Project)
			}
			fmt.Fprintf(w, "  %s\n", paint(o.Color, ansiCyan, name))
			lastService = f.Service
		}
		loc := ""
		if f.Line > 0 {
			loc = fmt.Sprintf("%d", f.Line)
			if f.File != "" && f.File != lastGroup {
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
			fired[f.Rule] = true
		}
		fmt.Fprintf(w, "    %5s  %-7s  %-19s %s  [%s]\n", loc, sev, f.Rule, msg, strings.Join(f.Requirements, ", "))
	}
	if len(fs) > 0 {
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
	if len(fired) > 0 {
		fmt.Fprintln(w, paint(o.Color, ansiBold, "How to fix:"))
		ids := make([]string, 0, len(fired))
		for id := range fired {
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

func legacyJSON(out io.Writer, r *Report, _ Options) error {
	w := bufio.NewWriterSize(out, 64<<10)
	head := func(k string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %q: %s,\n", k, b)
		return nil
	}
	w.WriteString("{\n")
	for _, kv := range []struct {
		k string
		v any
	}{{"tool", r.Tool}, {"version", r.Version}, {"command", r.Command}} {
		if err := head(kv.k, kv.v); err != nil {
			return err
		}
	}
	w.WriteString("  \"findings\": [")
	// Encode chunks of findings on every core and write them in order, a
	// wave at a time, so that only a wave's worth of JSON is ever held.
	const chunk = 512
	n := (len(r.Findings) + chunk - 1) / chunk
	wave := 4 * runtime.GOMAXPROCS(0)
	for first := 0; first < n; first += wave {
		count := min(wave, n-first)
		bufs := make([][]byte, count)
		errs := make([]error, count)
		parallel.ForEach(context.Background(), count, 0, func(k int) {
			c := first + k
			var b []byte
			for i := c * chunk; i < len(r.Findings) && i < (c+1)*chunk; i++ {
				enc, err := json.Marshal(&r.Findings[i])
				if err != nil {
					errs[k] = err
					return
				}
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, "\n    "...)
				b = append(b, enc...)
			}
			bufs[k] = b
		})
		for k := range bufs {
			if errs[k] != nil {
				return errs[k]
			}
			w.Write(bufs[k])
		}
	}
	if len(r.Findings) > 0 {
		w.WriteString("\n  ")
	}
	w.WriteString("],\n")
	inputErrors := r.Errors
	if inputErrors == nil {
		inputErrors = []InputError{}
	}
	if err := head("errors", inputErrors); err != nil {
		return err
	}
	if err := head("summary", r.Summary); err != nil {
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

func legacyJUnit(w io.Writer, r *Report, _ Options) error {
	type key struct{ group, service, rule string }
	byKey := map[key][]*policy.Finding{}
	for i := range r.Findings {
		f := &r.Findings[i]
		k := key{groupKey(f), f.Service, f.Rule}
		byKey[k] = append(byKey[k], f)
	}
	groups := map[string][]Target{}
	var order []string
	addTarget := func(group string, t Target) {
		if _, ok := groups[group]; !ok {
			order = append(order, group)
		}
		for _, x := range groups[group] {
			if x.Service == t.Service {
				return
			}
		}
		groups[group] = append(groups[group], t)
	}
	for _, t := range r.Targets {
		addTarget(t.Source, t)
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		addTarget(groupKey(f), Target{Service: f.Service, Source: groupKey(f)})
	}
	sort.Strings(order)
	out := JUnitSuites{Name: r.Tool + " " + r.Command}
	// An input that did not load is a suite of its own with one <error>:
	// nothing in it was judged.
	for _, e := range r.Errors {
		out.Tests++
		out.Errors++
		out.Suites = append(out.Suites, JUnitSuite{Name: e.File, Tests: 1, Errors: 1, Cases: []JUnitCase{{
			Name: "load", Classname: e.File,
			Error: &JUnitMessage{Message: e.Message, Type: "load", Body: e.Location() + ": " + e.Message},
		}}})
	}
	for _, g := range order {
		suite := JUnitSuite{Name: g}
		for _, t := range groups[g] {
			for _, rule := range r.Rules {
				c := JUnitCase{Name: rule.ID + " [" + strings.Join(rule.Requirements, ", ") + "]", Classname: t.Service}
				var failing, exempted []string
				for _, f := range byKey[key{g, t.Service, rule.ID}] {
					line := f.Location() + ": " + f.Message
					if f.Exempted {
						exempted = append(exempted, line+" (exempted by "+f.ADR+")")
					} else {
						failing = append(failing, line)
					}
				}
				switch {
				case len(failing) > 0:
					c.Failure = &JUnitMessage{Message: failing[0], Type: rule.Severity.String(), Body: strings.Join(failing, "\n") + "\n" + rule.Remediation}
					suite.Failures++
				case len(exempted) > 0:
					c.Skipped = &JUnitMessage{Message: strings.Join(exempted, "; ")}
					suite.Skipped++
				}
				suite.Tests++
				suite.Cases = append(suite.Cases, c)
			}
		}
		out.Tests += suite.Tests
		out.Failures += suite.Failures
		out.Skipped += suite.Skipped
		out.Suites = append(out.Suites, suite)
	}
	return WriteJUnit(w, out)
}

func legacyMarkdown(out io.Writer, r *Report, _ Options) error {
	w := bufio.NewWriter(out)
	s := r.Summary
	fmt.Fprintf(w, "# hyhome %s report\n\n", r.Command)
	fmt.Fprintf(w, "| files | services | errors | warnings | exempted |\n|---:|---:|---:|---:|---:|\n| %d | %d | %d | %d | %d |\n\n",
		s.Files, s.Services, s.Errors, s.Warnings, s.Exempted)
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "No findings.")
	} else {
		fmt.Fprintln(w, "| location | service | severity | rule | requirements | message |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for i := range r.Findings {
			f := &r.Findings[i]
			sev := f.Severity.String()
			msg := f.Message
			if f.Exempted {
				sev = "exempt"
				msg += " (exempted by " + f.ADR + ")"
			}
			fmt.Fprintf(w, "| `%s` | %s | %s | [%s](%s#%s) | %s | %s |\n", mdEscape(f.Location()), mdEscape(f.Service), sev,
				f.Rule, "docs/rules.md", f.Rule, strings.Join(f.Requirements, ", "), mdEscape(msg))
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

func legacySARIF(w io.Writer, r *Report, o Options) error {
	driver := sarifDriver{Name: r.Tool, Version: r.Version, InformationURI: SARIFInformationURI, Rules: []sarifRule{}}
	ruleIndex := make(map[string]int, len(r.Rules))
	for i, rule := range r.Rules {
		ruleIndex[rule.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID:                   rule.ID,
			Name:                 ruleName(rule.ID),
			ShortDescription:     sarifText{rule.Description},
			FullDescription:      sarifText{rule.Description},
			Help:                 sarifText{rule.Remediation},
			HelpURI:              SARIFInformationURI + "#" + rule.ID,
			DefaultConfiguration: sarifRuleConfig{Level: sarifLevel[rule.Severity]},
			Properties: map[string]any{
				"requirements":      rule.Requirements,
				"tags":              append([]string{"security"}, rule.Requirements...),
				"security-severity": securitySeverity[rule.Severity],
			},
		})
	}
	arts := &legacyArtifacts{index: map[string]int{}, base: o.BaseDir}
	results := make([]sarifResult, 0, len(r.Findings))
	for i := range r.Findings {
		f := &r.Findings[i]
		idx, ok := ruleIndex[f.Rule]
		if !ok {
			return fmt.Errorf("finding of rule %q, which the report's catalogue lacks", f.Rule)
		}
		loc := sarifLocation{
			PhysicalLocation: arts.location(f.File, f.Line, f.Column),
			LogicalLocations: []sarifLogicalLocation{{Name: f.Service, FullyQualifiedName: strings.TrimSpace(f.Project + "/" + f.Service), Kind: "resource"}},
		}
		res := sarifResult{
			RuleID:              f.Rule,
			RuleIndex:           idx,
			Level:               sarifLevel[f.Severity],
			Message:             sarifText{fmt.Sprintf("%s: %s", f.Service, f.Message)},
			Locations:           []sarifLocation{loc},
			PartialFingerprints: map[string]string{"hyhome/v1": fingerprint(f)},
			Properties:          map[string]any{"requirements": f.Requirements},
		}
		if f.Source != "" {
			res.Properties["source"] = f.Source
		}
		if f.Exempted {
			res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: "exempted by " + f.ADR}}
		}
		results = append(results, res)
	}
	inv := sarifInvocation{ExecutionSuccessful: len(r.Errors) == 0}
	for _, e := range r.Errors {
		n := sarifNotification{Level: "error", Message: sarifText{e.Message}}
		if pl := arts.location(e.File, e.Line, e.Column); pl != nil {
			n.Locations = []sarifLocation{{PhysicalLocation: pl}}
		}
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, n)
	}
	doc := sarifLog{Schema: SARIFSchema, Version: SARIFVersion, Runs: []sarifRun{{
		Tool:        sarifTool{Driver: driver},
		Invocations: []sarifInvocation{inv},
		Artifacts:   arts.list,
		Results:     results,
	}}}
	// Compact: SARIF is read by tools, and indenting a large log doubles
	// the memory and time it takes to write.
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := json.NewEncoder(bw).Encode(doc); err != nil {
		return err
	}
	return bw.Flush()
}

// legacyArtifacts lists each file once and gives its index in run.artifacts.
type legacyArtifacts struct {
	list  []sarifArtifact
	index map[string]int
	base  string
}

// location makes the physical location of file:line:column; nil for a
// runtime source with no file.
func (a *legacyArtifacts) location(file string, line, column int) *sarifPhysicalLocation {
	if file == "" {
		return nil
	}
	uri := sarifURI(file, a.base)
	baseID := ""
	if !filepath.IsAbs(file) || a.base != "" && !strings.HasPrefix(uri, "file://") {
		baseID = "%SRCROOT%"
	}
	i, ok := a.index[uri]
	if !ok {
		i = len(a.list)
		a.index[uri] = i
		a.list = append(a.list, sarifArtifact{Location: sarifArtifactLocation{URI: uri, URIBaseID: baseID}})
	}
	pl := &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: uri, URIBaseID: baseID, Index: &i}}
	if line > 0 {
		pl.Region = &sarifRegion{StartLine: line, StartColumn: column}
	}
	return pl
}
