package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/parallel"
	"github.com/hy-home/hyhome/internal/spool"
)

// JUnit is the JUnit XML model every hyhome report that speaks JUnit shares
// (lint and audit findings, the AC-SPEC-01 check, verify's checks).

// JUnitSuites is a <testsuites> document.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr,omitempty"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one <testsuite>.
type JUnitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr,omitempty"`
	Skipped  int         `xml:"skipped,attr,omitempty"`
	Time     float64     `xml:"time,attr,omitempty"`
	Cases    []JUnitCase `xml:"testcase"`
}

// JUnitCase is one <testcase>; at most one of Failure, Error, Skipped.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr,omitempty"`
	Failure   *JUnitMessage `xml:"failure,omitempty"`
	Error     *JUnitMessage `xml:"error,omitempty"`
	Skipped   *JUnitMessage `xml:"skipped,omitempty"`
	Output    string        `xml:"system-out,omitempty"`
}

// JUnitMessage is a failure, error or skip: a message and details.
type JUnitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes v (a JUnitSuites or JUnitSuite) as an indented XML
// document.
func WriteJUnit(w io.Writer, v any) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// junitStream makes one suite per file (or runtime source) and one test
// case per service and rule, so CI systems show what passed as well as
// what failed. The suites are in file order and the document opens with
// the totals, so the parts are spooled as records, one per part and file
// (the services judged there and the findings, already rendered as the
// case lines they become), and End merges each file's records into its
// suite: a file that several parts reach (a file two projects include) is
// one suite, as if the report had been one part.
type junitStream struct {
	out   io.Writer
	r     *Report
	recs  *spool.Spool
	spans map[string][]junitSpan
	// caseNames are the test case names, one per rule of r.Rules.
	caseNames []string
}

type junitSpan struct{ off, n int64 }

// junitRecord is one part's share of one suite.
type junitRecord struct {
	// targets are the services the part judged there, findings the
	// services its findings are about, each in the part's order.
	targets, findings []string
	cases             []junitEntry
}

// junitEntry is one finding as its test case shows it.
type junitEntry struct {
	service, rule string
	exempted      bool
	line          string
}

func newJUnitStream(out io.Writer, r *Report, _ Options) (streamer, error) {
	j := &junitStream{out: out, r: r, recs: spool.New(0), spans: map[string][]junitSpan{}}
	for _, rule := range r.Rules {
		j.caseNames = append(j.caseNames, rule.ID+" ["+strings.Join(rule.Requirements, ", ")+"]")
	}
	return j, nil
}

func (j *junitStream) close() { j.recs.Close() }

// junitPrepared is a part's records, encoded one after the other in data.
type junitPrepared struct {
	groups []string
	ends   []int
}

func (j *junitStream) prepare(p *Part) {
	recs := map[string]*junitRecord{}
	var order []string
	rec := func(g string) *junitRecord {
		r, ok := recs[g]
		if !ok {
			r = &junitRecord{}
			recs[g] = r
			order = append(order, g)
		}
		return r
	}
	for _, t := range p.Targets {
		r := rec(t.Source)
		r.targets = append(r.targets, t.Service)
	}
	for i := range p.Findings {
		f := &p.Findings[i]
		r := rec(groupKey(f))
		r.findings = append(r.findings, f.Service)
		line := f.Location() + ": " + f.Message
		if f.Exempted {
			line += " (exempted by " + f.ADR + ")"
		}
		r.cases = append(r.cases, junitEntry{service: f.Service, rule: f.Rule, exempted: f.Exempted, line: line})
	}
	var b []byte
	prep := &junitPrepared{groups: order}
	for _, g := range order {
		b = recs[g].append(b)
		prep.ends = append(prep.ends, len(b))
	}
	p.data, p.aux = b, prep
}

func (j *junitStream) add(p *Part) error {
	prep := p.aux.(*junitPrepared)
	start := 0
	for i, g := range prep.groups {
		end := prep.ends[i]
		j.spans[g] = append(j.spans[g], junitSpan{off: j.recs.Len(), n: int64(end - start)})
		if _, err := j.recs.Write(p.data[start:end]); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// suite merges a file's records into its suite.
func (j *junitStream) suite(g string) (JUnitSuite, error) {
	var recs []*junitRecord
	for _, sp := range j.spans[g] {
		b := make([]byte, sp.n)
		if _, err := j.recs.ReadAt(b, sp.off); err != nil {
			return JUnitSuite{}, fmt.Errorf("reading the spooled report: %w", err)
		}
		r, err := decodeJUnitRecord(b)
		if err != nil {
			return JUnitSuite{}, err
		}
		recs = append(recs, r)
	}
	var services []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			services = append(services, s)
		}
	}
	for _, r := range recs {
		for _, s := range r.targets {
			add(s)
		}
	}
	for _, r := range recs {
		for _, s := range r.findings {
			add(s)
		}
	}
	type key struct{ service, rule string }
	byKey := map[key][]*junitEntry{}
	for _, r := range recs {
		for i := range r.cases {
			e := &r.cases[i]
			byKey[key{e.service, e.rule}] = append(byKey[key{e.service, e.rule}], e)
		}
	}
	suite := JUnitSuite{Name: g}
	for _, svc := range services {
		for ri, rule := range j.r.Rules {
			c := JUnitCase{Name: j.caseNames[ri], Classname: svc}
			var failing, exempted []string
			for _, e := range byKey[key{svc, rule.ID}] {
				if e.exempted {
					exempted = append(exempted, e.line)
				} else {
					failing = append(failing, e.line)
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
	return suite, nil
}

// junitSuiteXML renders a suite as WriteJUnit renders it inside the
// document: indented one level.
func junitSuiteXML(s *JUnitSuite) ([]byte, error) {
	var b bytes.Buffer
	enc := xml.NewEncoder(&b)
	enc.Indent("  ", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (j *junitStream) end(r *Report) error {
	if err := j.recs.Flush(); err != nil {
		return err
	}
	suites := spool.New(0)
	defer suites.Close()
	head := JUnitSuites{Name: r.Tool + " " + r.Command}
	// An input that did not load is a suite of its own with one <error>:
	// nothing in it was judged.
	for _, e := range r.Errors {
		head.Tests++
		head.Errors++
		s := JUnitSuite{Name: e.File, Tests: 1, Errors: 1, Cases: []JUnitCase{{
			Name: "load", Classname: e.File,
			Error: &JUnitMessage{Message: e.Message, Type: "load", Body: e.Location() + ": " + e.Message},
		}}}
		b, err := junitSuiteXML(&s)
		if err != nil {
			return err
		}
		suites.WriteString("\n")
		if _, err := suites.Write(b); err != nil {
			return err
		}
	}
	groups := make([]string, 0, len(j.spans))
	for g := range j.spans {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	// Suites are merged and rendered a wave at a time on every core and
	// written in order.
	wave := 16 * runtime.GOMAXPROCS(0)
	for first := 0; first < len(groups); first += wave {
		gs := groups[first:min(first+wave, len(groups))]
		out := make([][]byte, len(gs))
		counts := make([]JUnitSuite, len(gs)) // the suites' counts, not their cases
		errs := make([]error, len(gs))
		parallel.ForEach(context.Background(), len(gs), 0, func(k int) {
			s, err := j.suite(gs[k])
			if err == nil {
				out[k], err = junitSuiteXML(&s)
			}
			counts[k] = JUnitSuite{Tests: s.Tests, Failures: s.Failures, Skipped: s.Skipped}
			errs[k] = err
		})
		for k := range gs {
			if errs[k] != nil {
				return errs[k]
			}
			head.Tests += counts[k].Tests
			head.Failures += counts[k].Failures
			head.Skipped += counts[k].Skipped
			suites.WriteString("\n")
			if _, err := suites.Write(out[k]); err != nil {
				return err
			}
		}
	}
	// The document: <testsuites> with the totals, the suites, its end, as
	// WriteJUnit writes it whole.
	var hb bytes.Buffer
	enc := xml.NewEncoder(&hb)
	enc.Indent("", "  ")
	if err := enc.Encode(head); err != nil {
		return err
	}
	w := bufio.NewWriterSize(j.out, 64<<10)
	w.WriteString(xml.Header)
	if suites.Len() == 0 {
		w.Write(hb.Bytes())
	} else {
		w.Write(bytes.TrimSuffix(hb.Bytes(), []byte("</testsuites>")))
		if _, err := suites.WriteTo(w); err != nil {
			return err
		}
		w.WriteString("\n</testsuites>")
	}
	w.WriteString("\n")
	return w.Flush()
}

// The records' encoding: lengths as uvarints, strings as a length and
// their bytes.

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrs(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

func (r *junitRecord) append(b []byte) []byte {
	b = appendStrs(b, r.targets)
	b = appendStrs(b, r.findings)
	b = binary.AppendUvarint(b, uint64(len(r.cases)))
	for _, c := range r.cases {
		b = appendStr(b, c.service)
		b = appendStr(b, c.rule)
		if c.exempted {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = appendStr(b, c.line)
	}
	return b
}

var errBadRecord = errors.New("reading the spooled report: a corrupt record")

type recordReader struct {
	b   []byte
	err error
}

func (d *recordReader) uvarint() int {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > uint64(len(d.b)) {
		d.err = errBadRecord
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return int(v)
}

func (d *recordReader) str() string {
	n := d.uvarint()
	if n > len(d.b) {
		d.err = errBadRecord
		d.b = nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *recordReader) strs() []string {
	n := d.uvarint()
	out := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.str())
	}
	return out
}

func decodeJUnitRecord(b []byte) (*junitRecord, error) {
	d := &recordReader{b: b}
	r := &junitRecord{targets: d.strs(), findings: d.strs()}
	n := d.uvarint()
	for i := 0; i < n && d.err == nil; i++ {
		e := junitEntry{service: d.str(), rule: d.str()}
		if len(d.b) == 0 {
			d.err = errBadRecord
			break
		}
		e.exempted = d.b[0] == 1
		d.b = d.b[1:]
		e.line = d.str()
		r.cases = append(r.cases, e)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errBadRecord
	}
	return r, d.err
}
