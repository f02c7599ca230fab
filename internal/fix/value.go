package fix

import (
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v4"
)

// value is new YAML content: a scalar, a sequence or a mapping. Fix writes
// it in the style of the place it goes (block or flow, the surrounding
// quoting) and checks after the edit that the parser reads back exactly it.
type value struct {
	// str is the scalar as the parser must read it back; tag is its type
	// ("!!str", "!!int", "!!bool"); alias names an anchor (*name).
	str, tag, alias string
	seq             []*value
	keys            []string
	vals            []*value
	isSeq, isMap    bool
}

func str(s string) *value      { return &value{str: s, tag: "!!str"} }
func integer(n int64) *value   { return &value{str: strconv.FormatInt(n, 10), tag: "!!int"} }
func boolean(b bool) *value    { return &value{str: strconv.FormatBool(b), tag: "!!bool"} }
func alias(name string) *value { return &value{alias: name} }

func seqOf(items ...*value) *value { return &value{isSeq: true, seq: items} }

func mapOf(kv ...any) *value {
	v := &value{isMap: true}
	for i := 0; i+1 < len(kv); i += 2 {
		v.keys = append(v.keys, kv[i].(string))
		v.vals = append(v.vals, kv[i+1].(*value))
	}
	return v
}

func (v *value) scalar() bool { return !v.isSeq && !v.isMap }

// same reports whether two values are equal.
func (v *value) same(o *value) bool {
	switch {
	case v.scalar() != o.scalar() || v.isSeq != o.isSeq:
		return false
	case v.scalar():
		return v.str == o.str && v.tag == o.tag && v.alias == o.alias
	case v.isSeq:
		if len(v.seq) != len(o.seq) {
			return false
		}
		for i := range v.seq {
			if !v.seq[i].same(o.seq[i]) {
				return false
			}
		}
		return true
	}
	if len(v.keys) != len(o.keys) {
		return false
	}
	for i := range v.keys {
		if v.keys[i] != o.keys[i] || !v.vals[i].same(o.vals[i]) {
			return false
		}
	}
	return true
}

// merge adds o's content to v (both sequences or both mappings); a scalar
// must be the same.
func (v *value) merge(o *value) bool {
	switch {
	case v.isSeq && o.isSeq:
	next:
		for _, it := range o.seq {
			for _, have := range v.seq {
				if have.same(it) {
					continue next
				}
			}
			v.seq = append(v.seq, it)
		}
		return true
	case v.isMap && o.isMap:
		for i, k := range o.keys {
			found := false
			for j, hk := range v.keys {
				if hk == k {
					found = true
					if !v.vals[j].merge(o.vals[i]) {
						return false
					}
				}
			}
			if !found {
				v.keys = append(v.keys, k)
				v.vals = append(v.vals, o.vals[i])
			}
		}
		return true
	}
	return v.same(o)
}

// quoting is the quote style of the scalars around an insertion point.
type quoting int

const (
	quotePlain quoting = iota
	quoteDouble
	quoteSingle
)

// quotingOf reads the style the existing string items of a collection
// use: a style all of them share, else plain (a value quoted because it
// needs quotes says nothing about the others).
func quotingOf(n *yaml.Node) quoting {
	if n == nil {
		return quotePlain
	}
	items := n.Content
	if n.Kind == yaml.MappingNode {
		var vals []*yaml.Node
		for i := 1; i < len(items); i += 2 {
			vals = append(vals, items[i])
		}
		items = vals
	}
	style, seen := quotePlain, false
	for _, it := range items {
		if it.Kind != yaml.ScalarNode || it.Tag != "!!str" {
			continue
		}
		q := quotePlain
		switch {
		case it.Style&yaml.DoubleQuotedStyle != 0:
			q = quoteDouble
		case it.Style&yaml.SingleQuotedStyle != 0:
			q = quoteSingle
		}
		if seen && q != style {
			return quotePlain
		}
		style, seen = q, true
	}
	return style
}

// text renders a scalar as it is written: plain when the parser reads the
// plain text back as the same string (or the typed value), quoted otherwise
// or when the neighbours are quoted.
func (v *value) text(q quoting, flow bool) string {
	if v.alias != "" {
		return "*" + v.alias
	}
	if v.tag != "!!str" {
		return v.str
	}
	switch {
	case q == quoteSingle && !strings.ContainsAny(v.str, "\n\r\t"):
		return "'" + strings.ReplaceAll(v.str, "'", "''") + "'"
	case q == quoteDouble || !plainSafe(v.str, flow):
		return strconv.Quote(v.str)
	}
	return v.str
}

var yaml11NonString = regexp.MustCompile(`^(?i:y|n|yes|no|on|off|true|false|null|~)$|^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$|^[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]+|[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?)$`)

// plainSafe reports whether s, written plain, reads back as the string s.
// The YAML library itself decides: what it resolves to anything but that
// string (a number, a boolean, null, a mapping, a comment) is quoted.
func plainSafe(s string, flow bool) bool {
	key := plainKey{s, flow}
	if v, ok := plainCache.Load(key); ok {
		return v.(bool)
	}
	ok := plainSafeUncached(s, flow)
	plainCache.Store(key, ok)
	return ok
}

type plainKey struct {
	s    string
	flow bool
}

// plainCache remembers plainSafe's answers: fix writes the same few values
// (no-new-privileges:true, ALL, a tier) thousands of times on a corpus.
var plainCache sync.Map

func plainSafeUncached(s string, flow bool) bool {
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, "\n\r\t\"'`") {
		return false
	}
	if flow && strings.ContainsAny(s, ",[]{}") {
		return false
	}
	switch s[0] {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '%', '@':
		return false
	}
	// What a YAML 1.1 reader (older tools) takes for a number or a
	// boolean is quoted too, so that every reader agrees.
	if yaml11NonString.MatchString(s) {
		return false
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("- "+s+"\n"), &n); err != nil || len(n.Content) != 1 {
		return false
	}
	seq := n.Content[0]
	if seq.Kind != yaml.SequenceNode || len(seq.Content) != 1 {
		return false
	}
	it := seq.Content[0]
	return it.Kind == yaml.ScalarNode && it.Tag == "!!str" && it.Value == s
}

// layout is how new block content is indented: the mapping step and the
// offset of a sequence's dash from its key.
type layout struct {
	step, seq int
	nl        string
}

// block renders v as the value of a key (after "key:") in block style, at
// the given indentation of the key.
func (v *value) block(lay layout, indent int, q quoting) string {
	switch {
	case v.scalar():
		return " " + v.text(q, false) + lay.nl
	case v.isSeq:
		var b strings.Builder
		b.WriteString(lay.nl)
		pad := strings.Repeat(" ", indent+lay.seq)
		for _, it := range v.seq {
			// The items of a new list are plain unless they need quotes:
			// the quoting of the mapping around says nothing about them.
			if it.scalar() {
				b.WriteString(pad + "- " + it.text(quotePlain, false) + lay.nl)
				continue
			}
			// A nested collection in a sequence item is written flow.
			b.WriteString(pad + "- " + it.flow(quotePlain) + lay.nl)
		}
		return b.String()
	}
	var b strings.Builder
	b.WriteString(lay.nl)
	pad := strings.Repeat(" ", indent+lay.step)
	for i, k := range v.keys {
		b.WriteString(pad + keyText(k) + ":" + v.vals[i].block(lay, indent+lay.step, q))
	}
	return b.String()
}

// flow renders v in flow style.
func (v *value) flow(q quoting) string {
	switch {
	case v.scalar():
		return v.text(q, true)
	case v.isSeq:
		parts := make([]string, len(v.seq))
		for i, it := range v.seq {
			parts[i] = it.flow(q)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	parts := make([]string, len(v.keys))
	for i, k := range v.keys {
		parts[i] = keyText(k) + ": " + v.vals[i].flow(q)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func keyText(k string) string {
	if k == "<<" || plainSafe(k, true) {
		return k
	}
	return strconv.Quote(k)
}

// matches reports whether a parsed node is exactly v.
func (v *value) matches(n *yaml.Node) bool {
	if n == nil {
		return false
	}
	switch {
	case v.alias != "":
		return n.Kind == yaml.AliasNode && n.Value == v.alias
	case v.scalar():
		return n.Kind == yaml.ScalarNode && n.Value == v.str && n.Tag == v.tag
	case v.isSeq:
		if n.Kind != yaml.SequenceNode || len(n.Content) != len(v.seq) {
			return false
		}
		for i, it := range v.seq {
			if !it.matches(n.Content[i]) {
				return false
			}
		}
		return true
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2*len(v.keys) {
		return false
	}
	for i, k := range v.keys {
		if n.Content[2*i].Value != k || !v.vals[i].matches(n.Content[2*i+1]) {
			return false
		}
	}
	return true
}
