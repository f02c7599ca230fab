package lokitest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MatchType is a label matcher operator.
type MatchType int

// The four LogQL label matcher operators.
const (
	MatchEqual     MatchType = iota // =
	MatchNotEqual                   // !=
	MatchRegexp                     // =~
	MatchNotRegexp                  // !~
)

func (m MatchType) String() string {
	switch m {
	case MatchEqual:
		return "="
	case MatchNotEqual:
		return "!="
	case MatchRegexp:
		return "=~"
	case MatchNotRegexp:
		return "!~"
	}
	return "?"
}

// Matcher is one `name op "value"` term of a stream selector or label filter.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
	re    *regexp.Regexp // anchored, for =~ and !~
}

// Matches reports whether v (the empty string for a missing label) satisfies m.
func (m *Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	case MatchNotRegexp:
		return !m.re.MatchString(v)
	}
	return false
}

// LineFilter is one `|= "x"`, `!= "x"`, `|~ "re"` or `!~ "re"` stage.
type LineFilter struct {
	Op    string // "|=", "!=", "|~", "!~"
	Value string
	re    *regexp.Regexp // unanchored, for |~ and !~
}

// Matches reports whether line passes the filter.
func (f *LineFilter) Matches(line string) bool {
	switch f.Op {
	case "|=":
		return strings.Contains(line, f.Value)
	case "!=":
		return !strings.Contains(line, f.Value)
	case "|~":
		return f.re.MatchString(line)
	case "!~":
		return !f.re.MatchString(line)
	}
	return false
}

// Query is a parsed LogQL log query: a stream selector and a pipeline of
// line filters and label filters. Metric queries are not supported.
type Query struct {
	Selector []*Matcher
	// Stages run in order. Each is a *LineFilter or a *Matcher (a label
	// filter such as `| detected_level="error"`, matched against the stream
	// labels and the entry's structured metadata).
	Stages []any
}

// parseError mirrors the shape of Loki's LogQL parse errors.
type parseError struct {
	col int
	msg string
}

func (e *parseError) Error() string {
	return fmt.Sprintf("parse error at line 1, col %d: %s", e.col, e.msg)
}

// ParseQuery parses a LogQL log query. It rejects, as Loki does, selectors
// whose every matcher also matches the empty string ({} or {a=~".*"}).
func ParseQuery(s string) (*Query, error) {
	p := &parser{src: s}
	q := &Query{}
	sel, err := p.selector()
	if err != nil {
		return nil, err
	}
	q.Selector = sel
	for {
		p.space()
		if p.eof() {
			break
		}
		start := p.pos
		switch {
		case p.consume("|="), p.consume("!="), p.consume("|~"), p.consume("!~"):
			op := s[start:p.pos]
			p.space()
			v, err := p.str()
			if err != nil {
				return nil, err
			}
			f := &LineFilter{Op: op, Value: v}
			if op == "|~" || op == "!~" {
				re, err := regexp.Compile(v)
				if err != nil {
					return nil, p.errAt(start, fmt.Sprintf("invalid regexp %q in line filter: %v", v, err))
				}
				f.re = re
			}
			p.space()
			if p.peekWord("or") {
				return nil, p.errAt(p.pos, "`or` in line filters is not supported by this test server")
			}
			q.Stages = append(q.Stages, f)
		case p.consume("|"):
			p.space()
			nameStart := p.pos
			name := p.ident()
			if name == "" {
				return nil, p.errAt(nameStart, "syntax error: expected a label filter after '|' (parsers and formatters are not supported by this test server)")
			}
			switch name {
			case "json", "logfmt", "regexp", "pattern", "unpack", "line_format", "label_format", "drop", "keep", "decolorize", "unwrap":
				return nil, p.errAt(nameStart, fmt.Sprintf("the %s stage is not supported by this test server", name))
			}
			m, err := p.matcherAfterName(name, nameStart)
			if err != nil {
				return nil, err
			}
			q.Stages = append(q.Stages, m)
		default:
			return nil, p.errAt(p.pos, fmt.Sprintf("syntax error: unexpected %q", p.rest(8)))
		}
	}
	return q, nil
}

// ParseSelector parses a bare stream selector such as {job="infra", tier=~"gate.*"}.
func ParseSelector(s string) ([]*Matcher, error) {
	q, err := ParseQuery(s)
	if err != nil {
		return nil, err
	}
	if len(q.Stages) > 0 {
		return nil, &parseError{col: 1, msg: "a stream selector without pipeline stages is required here"}
	}
	return q.Selector, nil
}

// ParseLabels parses a label set as Loki's push API receives it in the
// protobuf encoding: `{name="value", ...}` with equality matchers only. It
// returns the pairs in input order; the caller validates names and
// duplicates. "{}" and "" yield no labels.
func ParseLabels(s string) ([]Label, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	p := &parser{src: s}
	p.space()
	if !p.consume("{") {
		return nil, p.errAt(p.pos, "syntax error: a label set must start with '{'")
	}
	var out []Label
	for {
		p.space()
		if p.consume("}") {
			break
		}
		if len(out) > 0 {
			if !p.consume(",") {
				return nil, p.errAt(p.pos, "syntax error: expected ',' or '}'")
			}
			p.space()
		}
		nameStart := p.pos
		name := p.ident()
		if name == "" {
			return nil, p.errAt(nameStart, "syntax error: expected a label name")
		}
		p.space()
		if !p.consume("=") || p.peek() == '~' {
			return nil, p.errAt(p.pos, fmt.Sprintf("syntax error: label %s must be followed by '=' in a label set", name))
		}
		p.space()
		v, err := p.str()
		if err != nil {
			return nil, err
		}
		out = append(out, Label{Name: name, Value: v})
	}
	p.space()
	if !p.eof() {
		return nil, p.errAt(p.pos, fmt.Sprintf("syntax error: unexpected %q after the label set", p.rest(8)))
	}
	return out, nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

func (p *parser) rest(n int) string {
	r := p.src[p.pos:]
	if len(r) > n {
		r = r[:n]
	}
	return r
}

func (p *parser) errAt(pos int, msg string) error { return &parseError{col: pos + 1, msg: msg} }

func (p *parser) space() {
	for !p.eof() {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) consume(tok string) bool {
	if strings.HasPrefix(p.src[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *parser) peekWord(w string) bool {
	if !strings.HasPrefix(p.src[p.pos:], w) {
		return false
	}
	end := p.pos + len(w)
	return end == len(p.src) || !isIdentChar(p.src[end], false)
}

func isIdentChar(c byte, first bool) bool {
	switch {
	case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

// ident reads a label name: [a-zA-Z_][a-zA-Z0-9_]*.
func (p *parser) ident() string {
	start := p.pos
	for !p.eof() && isIdentChar(p.src[p.pos], p.pos == start) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// str reads a double-quoted (Go escapes) or back-quoted (raw) string.
func (p *parser) str() (string, error) {
	start := p.pos
	switch p.peek() {
	case '"':
		i := p.pos + 1
		for i < len(p.src) {
			switch p.src[i] {
			case '\\':
				i += 2
				continue
			case '"':
				v, err := strconv.Unquote(p.src[p.pos : i+1])
				if err != nil {
					return "", p.errAt(start, fmt.Sprintf("invalid string literal %s: %v", p.src[p.pos:i+1], err))
				}
				p.pos = i + 1
				return v, nil
			}
			i++
		}
		return "", p.errAt(start, "syntax error: unterminated string literal")
	case '`':
		end := strings.IndexByte(p.src[p.pos+1:], '`')
		if end < 0 {
			return "", p.errAt(start, "syntax error: unterminated raw string literal")
		}
		v := p.src[p.pos+1 : p.pos+1+end]
		if !utf8.ValidString(v) {
			return "", p.errAt(start, "invalid UTF-8 in raw string literal")
		}
		p.pos += end + 2
		return v, nil
	}
	return "", p.errAt(start, fmt.Sprintf("syntax error: expected a string literal, got %q", p.rest(8)))
}

func (p *parser) selector() ([]*Matcher, error) {
	p.space()
	if !p.consume("{") {
		return nil, p.errAt(p.pos, "syntax error: a log query must start with a stream selector '{...}' (metric queries are not supported by this test server)")
	}
	var ms []*Matcher
	for {
		p.space()
		if p.consume("}") {
			break
		}
		if len(ms) > 0 {
			if !p.consume(",") {
				return nil, p.errAt(p.pos, "syntax error: expected ',' or '}' in the stream selector")
			}
			p.space()
			if p.consume("}") { // a trailing comma is accepted, as Loki does
				break
			}
		}
		nameStart := p.pos
		name := p.ident()
		if name == "" {
			return nil, p.errAt(nameStart, "syntax error: expected a label name in the stream selector")
		}
		m, err := p.matcherAfterName(name, nameStart)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	nonEmpty := false
	for _, m := range ms {
		if !m.Matches("") {
			nonEmpty = true
		}
	}
	if !nonEmpty {
		return nil, &parseError{col: 1, msg: "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"}
	}
	return ms, nil
}

func (p *parser) matcherAfterName(name string, nameStart int) (*Matcher, error) {
	p.space()
	opStart := p.pos
	var t MatchType
	switch {
	case p.consume("=~"):
		t = MatchRegexp
	case p.consume("!~"):
		t = MatchNotRegexp
	case p.consume("!="):
		t = MatchNotEqual
	case p.consume("=="), p.consume("="):
		t = MatchEqual
	default:
		return nil, p.errAt(opStart, fmt.Sprintf("syntax error: expected one of = != =~ !~ after label %s", name))
	}
	p.space()
	v, err := p.str()
	if err != nil {
		return nil, err
	}
	m := &Matcher{Name: name, Type: t, Value: v}
	if t == MatchRegexp || t == MatchNotRegexp {
		// Prometheus and Loki anchor label regexps at both ends.
		re, err := regexp.Compile("^(?s:" + v + ")$")
		if err != nil {
			return nil, p.errAt(nameStart, fmt.Sprintf("invalid regexp %q for label %s: %v", v, name, err))
		}
		m.re = re
	}
	return m, nil
}
