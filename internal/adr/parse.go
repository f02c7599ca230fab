package adr

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/distribution/reference"
	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/yamlerr"
)

// An ADR's machine-read fields are its front matter, the YAML block between
// two "---" lines that opens the file (the MADR convention; GitHub renders it
// as a table). The prose below it is for people and is never searched for
// rule names.
//
//	---
//	status: Accepted
//	date: 2026-11-26
//	exempts: [docker-socket]
//	applies_to:
//	  - project: hyhome
//	    service: guard
//	    image: hyhome
//	---
//
//	# ADR-0001: hyhome guard is the only holder of the Docker socket
//
// status is required; exempts and applies_to go together: the rules the
// decision exempts, and the workloads it exempts them for.

// Error is a problem in an ADR file, at a line (1-based).
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Rule is one rule ID of the exempts field and where it is written.
type Rule struct {
	ID   string
	Line int
}

// Selector is one entry of applies_to: the workloads that have every
// property it names.
type Selector struct {
	Project string // compose project or Swarm stack
	Service string // compose or Swarm service
	Image   string // as written: a repository, optionally with a tag or a digest
	Line    int

	image reference.Named // Image normalised; nil when Image is empty
}

// Subject is what a selector is matched against: one workload's compose
// project, service and image reference (as the compose file, the container's
// configuration or the request gives it).
type Subject struct {
	Project, Service, Image string
}

// Matches reports whether the subject has every property the selector names.
// An image matches when it is in the selector's repository and, where the
// selector pins a tag or a digest, carries the same one. The subject's image
// is read as the engine reads it: a reference without tag or digest means
// :latest, and a digest wins over a tag written next to it.
func (s *Selector) Matches(sub Subject) bool {
	if s.Project != "" && sub.Project != s.Project {
		return false
	}
	if s.Service != "" && sub.Service != s.Service {
		return false
	}
	if s.image == nil {
		return true
	}
	ref, err := reference.ParseDockerRef(strings.TrimSpace(sub.Image))
	if err != nil || ref.Name() != s.image.Name() {
		return false
	}
	if want, ok := s.image.(reference.Digested); ok {
		got, ok := ref.(reference.Digested)
		return ok && got.Digest() == want.Digest()
	}
	if want, ok := s.image.(reference.Tagged); ok {
		got, ok := ref.(reference.Tagged)
		return ok && got.Tag() == want.Tag()
	}
	return true
}

// NamesImage reports whether the selector ties its workloads to an image.
func (s *Selector) NamesImage() bool { return s.image != nil }

func (s *Selector) String() string {
	var parts []string
	for _, f := range []struct{ k, v string }{{"project", s.Project}, {"service", s.Service}, {"image", s.Image}} {
		if f.v != "" {
			parts = append(parts, fmt.Sprintf("%s %q", f.k, f.v))
		}
	}
	return strings.Join(parts, ", ")
}

// Statuses an ADR may have. Only Accepted is in force.
var statusWords = []string{"Proposed", "Accepted", "Rejected", "Deprecated"}

const statusWant = `want Proposed, Accepted, Rejected, Deprecated or "Superseded by ADR-NNNN"`

var (
	ruleIDPattern  = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	projectPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	servicePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)
	titlePattern   = regexp.MustCompile(`^#[ \t]+(.*\S)[ \t]*$`)
	titleNumber    = regexp.MustCompile(`(?i)^adr[-_ ]?0*([0-9]{1,6})\b`)
)

var frontMatterHelp = `an ADR starts with front matter: a "---" line, status (and exempts, applies_to for exemptions), then "---"`

// parse reads an ADR's text; number comes from its file name.
func parse(path string, number int, text []byte) (*Record, error) {
	text = bytes.TrimPrefix(text, []byte("\ufeff"))
	lines := strings.Split(string(text), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	if lines[0] != "---" {
		return nil, &Error{path, 1, frontMatterHelp}
	}
	end := -1
	for i := 1; i < len(lines); i++ {
		if lines[i] == "---" {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, &Error{path, 1, `front matter is not closed by a "---" line`}
	}
	r := &Record{ID: FormatID(number), Number: number, Path: path}
	p := &fmParser{path: path, offset: 1, rec: r}
	if err := p.parse(strings.Join(lines[1:end], "\n")); err != nil {
		return nil, err
	}
	for i := end + 1; i < len(lines); i++ {
		m := titlePattern.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		r.Title = m[1]
		if n := titleNumber.FindStringSubmatch(r.Title); n != nil {
			if got, _ := ParseRef(n[1]); got != number {
				return nil, &Error{path, i + 1, fmt.Sprintf("the title names %s, but the file is numbered %04d", FormatID(got), number)}
			}
		}
		return r, nil
	}
	return nil, &Error{path, end + 2, `no title: the front matter is followed by a "# ADR-NNNN: title" line`}
}

// fmParser walks the front matter's YAML nodes, so that every error names
// the line it is about and nothing the schema does not know is accepted.
type fmParser struct {
	path   string
	offset int // file line of the front matter's first line, minus one
	rec    *Record
}

func (p *fmParser) errAt(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{p.path, line + p.offset, fmt.Sprintf(format, args...)}
}

func (p *fmParser) parse(src string) error {
	var doc yaml.Node
	ld, err := yaml.NewLoader(strings.NewReader(src))
	if err == nil {
		err = ld.Load(&doc)
	}
	if err == nil {
		// "..." ends a YAML document and another may follow it: one only.
		var extra yaml.Node
		switch e := ld.Load(&extra); {
		case errors.Is(e, io.EOF):
		case e != nil:
			return p.yamlError(e)
		default:
			return &Error{p.path, extra.Line + p.offset, "front matter holds more than one YAML document"}
		}
	}
	if errors.Is(err, io.EOF) || (err == nil && len(doc.Content) == 0) {
		return &Error{p.path, 1, "front matter is empty; it needs at least a status"}
	}
	if err != nil {
		return p.yamlError(err)
	}
	root := doc.Content[0]
	if err := p.noAliases(root); err != nil {
		return err
	}
	if root.Kind != yaml.MappingNode {
		return p.errAt(root, "front matter must be a mapping of status, date, exempts and applies_to")
	}
	seen := map[string]int{}
	var exempts, applies *yaml.Node
	var statusSeen bool
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return p.errAt(k, "front matter keys are words (status, date, exempts, applies_to)")
		}
		if first, dup := seen[k.Value]; dup {
			return p.errAt(k, "%s is given twice (first at line %d)", k.Value, first+p.offset)
		}
		seen[k.Value] = k.Line
		switch k.Value {
		case "status":
			s, err := p.scalar(v, "status")
			if err != nil {
				return err
			}
			if !validStatus(s) {
				return p.errAt(v, "status %q: %s", s, statusWant)
			}
			p.rec.Status, statusSeen = s, true
		case "date":
			s, err := p.scalar(v, "date")
			if err != nil {
				return err
			}
			if _, err := time.Parse(time.DateOnly, s); err != nil {
				return p.errAt(v, "date %q: want YYYY-MM-DD", s)
			}
			p.rec.Date = s
		case "exempts":
			exempts = v
			if err := p.exempts(v); err != nil {
				return err
			}
		case "applies_to":
			applies = v
			if err := p.appliesTo(v); err != nil {
				return err
			}
		default:
			return p.errAt(k, "unknown key %q (want status, date, exempts, applies_to)", k.Value)
		}
	}
	switch {
	case !statusSeen:
		return p.errAt(root, "front matter has no status")
	case len(p.rec.Exempts) > 0 && len(p.rec.AppliesTo) == 0:
		return p.errAt(exempts, "exempts rules but applies_to names no workload: an exemption holds only for the workloads its ADR names")
	case len(p.rec.AppliesTo) > 0 && len(p.rec.Exempts) == 0:
		return p.errAt(applies, "applies_to names workloads but exempts names no rule")
	}
	return nil
}

// noAliases refuses anchors, aliases and merge keys: a reader of the ADR
// must see what it says where it says it.
func (p *fmParser) noAliases(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" || (n.Kind == yaml.ScalarNode && n.Tag == "!!merge") {
		return p.errAt(n, "anchors, aliases and merge keys are not allowed in ADR front matter")
	}
	for _, c := range n.Content {
		if err := p.noAliases(c); err != nil {
			return err
		}
	}
	return nil
}

// scalar returns a non-empty scalar's value.
func (p *fmParser) scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", p.errAt(n, "%s must be a single value", what)
	}
	if n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
		return "", p.errAt(n, "%s is empty", what)
	}
	if strings.TrimSpace(n.Value) != n.Value || strings.ContainsFunc(n.Value, isControl) {
		return "", p.errAt(n, "%s %q has surrounding spaces or control characters", what, n.Value)
	}
	return n.Value, nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

func (p *fmParser) exempts(v *yaml.Node) error {
	if v.Kind != yaml.SequenceNode {
		return p.errAt(v, "exempts must be a list of rule IDs, e.g. [docker-socket]")
	}
	at := map[string]int{}
	for _, n := range v.Content {
		id, err := p.scalar(n, "an exempts entry")
		if err != nil {
			return err
		}
		if !ruleIDPattern.MatchString(id) {
			return p.errAt(n, "exempts: %q is not a rule ID (lower-case words joined by -, as `hyhome rules` lists them)", id)
		}
		if first, dup := at[id]; dup {
			return p.errAt(n, "exempts lists %s twice (first at line %d)", id, first)
		}
		at[id] = n.Line + p.offset
		p.rec.Exempts = append(p.rec.Exempts, Rule{ID: id, Line: n.Line + p.offset})
	}
	return nil
}

func (p *fmParser) appliesTo(v *yaml.Node) error {
	if v.Kind != yaml.SequenceNode {
		return p.errAt(v, "applies_to must be a list of workloads, e.g. [{project: hyhome, service: guard, image: hyhome}]")
	}
	for _, n := range v.Content {
		if n.Kind != yaml.MappingNode {
			return p.errAt(n, "an applies_to entry is a mapping of project, service and image")
		}
		s := Selector{Line: n.Line + p.offset}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return p.errAt(k, "applies_to keys are project, service and image")
			}
			if seen[k.Value] {
				return p.errAt(k, "applies_to: %s is given twice in one entry", k.Value)
			}
			seen[k.Value] = true
			switch k.Value {
			case "project", "service", "image":
			default:
				return p.errAt(k, "applies_to: unknown key %q (want project, service, image)", k.Value)
			}
			x, err := p.scalar(val, "applies_to "+k.Value)
			if err != nil {
				return err
			}
			switch k.Value {
			case "project":
				if !projectPattern.MatchString(x) {
					return p.errAt(val, "applies_to: project %q is not a compose project name (lower-case letters, digits, - and _, starting with a letter or digit)", x)
				}
				s.Project = x
			case "service":
				if !servicePattern.MatchString(x) {
					return p.errAt(val, "applies_to: service %q is not a service name (letters, digits, ., - and _)", x)
				}
				s.Service = x
			case "image":
				ref, err := reference.ParseNormalizedNamed(x)
				if err != nil {
					return p.errAt(val, "applies_to: image %q: %v", x, err)
				}
				_, tagged := ref.(reference.Tagged)
				_, digested := ref.(reference.Digested)
				if tagged && digested {
					return p.errAt(val, "applies_to: image %q pins both a tag and a digest; the engine runs the digest alone, so pin one", x)
				}
				s.Image, s.image = x, ref
			}
		}
		if s.Project == "" && s.Service == "" {
			return p.errAt(n, "an applies_to entry names no project or service")
		}
		p.rec.AppliesTo = append(p.rec.AppliesTo, s)
	}
	return nil
}

func validStatus(s string) bool {
	for _, w := range statusWords {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	const superseded = "superseded by "
	if len(s) > len(superseded) && strings.EqualFold(s[:len(superseded)], superseded) {
		_, err := ParseRef(s[len(superseded):])
		return err == nil
	}
	return false
}

// yamlError renders a YAML syntax error at its file line, with the
// construct it was in ("while parsing a flow sequence at line 3").
func (p *fmParser) yamlError(err error) error {
	at := yamlerr.First(err)
	msg := "front matter: " + at.Message
	if at.Context != "" {
		msg = fmt.Sprintf("front matter: %s at line %d: %s", at.Context, at.ContextLine+p.offset, at.Message)
	}
	return &Error{p.path, max(at.Line, 1) + p.offset, msg}
}
