package fix

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/compose"
)

// splice replaces data[start:end] with text.
type splice struct {
	start, end int
	text       string
	changes    []*change
	// col orders insertions at one offset: the deeper collection's
	// entries come first, so that they stay inside it.
	col int
}

// group is the changes of one kind to one node, rendered as one splice.
type group struct {
	kind    opKind
	node    *yaml.Node
	changes []*change
	// merged content: opAppend items, opAddKey keys and values.
	items []*value
	keys  []string
	vals  []*value
	first bool
	// before is the key new keys were put in front of (after a block
	// scalar they cannot follow).
	before *yaml.Node
}

// filePlan is the merged, conflict-free set of changes to one file.
type filePlan struct {
	groups []*group
	// splices are the rendered groups in file order (set by apply).
	splices []splice
	byKey   map[groupKey]*group
}

type groupKey struct {
	kind  opKind
	node  *yaml.Node
	first bool
}

// renderFile applies the changes to one file. Changes that cannot be
// rendered, that conflict, or whose result does not parse back as exactly
// the intended change are dropped and their edits become suggestions;
// what remains is rendered again.
// renderFileSafe is renderFile on one of the files rendered in parallel: a
// panic there (a defect of fix, whatever the input) leaves that file's
// edits to a human, with the reason, instead of ending the process.
func renderFileSafe(src *source, cs []*change) (f *File) {
	defer func() {
		if r := recover(); r != nil {
			for _, c := range cs {
				if c.edit.Applied {
					fail(c.edit, fmt.Sprintf("%s: %s (%v), so it leaves this edit to a human", src.path, errRenderDefect, r))
				}
			}
			f = nil
		}
	}()
	return renderFile(src, cs)
}

// errRenderDefect names a panic while rendering; FuzzFix fails on it.
const errRenderDefect = "fix failed while rendering this file (a defect of fix)"

func renderFile(src *source, cs []*change) *File {
	for round := 0; round < 16; round++ {
		var live []*change
		for _, c := range cs {
			if c.edit.Applied {
				live = append(live, c)
			}
		}
		if len(live) == 0 {
			return nil
		}
		fp, failed := mergeChanges(live)
		if len(failed) == 0 {
			var out []byte
			out, failed = apply(src, fp)
			if len(failed) == 0 {
				if err := verify(src, fp, out); err != nil {
					// Find the edits that fail on their own; the others
					// are rendered again without them.
					failed = map[*Edit]string{}
					for e, cs := range byEdit(live) {
						why := err
						if efp, f := mergeChanges(cs); len(f) == 0 {
							if eout, f := apply(src, efp); len(f) == 0 {
								if why = verify(src, efp, eout); why == nil {
									continue
								}
							}
						}
						failed[e] = "fix could not verify this edit, so it leaves it to a human: " + why.Error()
					}
					if len(failed) == 0 {
						for _, c := range live {
							fail(c.edit, "fix could not verify the edits of this file together, so it leaves them to a human: "+err.Error())
						}
						return nil
					}
					for e, why := range failed {
						fail(e, why)
					}
					continue
				}
				f := &File{Path: src.path, Mode: src.mode, Old: src.data, New: out}
				seen := map[*Edit]bool{}
				for _, c := range live {
					if c.redact != "" {
						f.Redact = append(f.Redact, c.redact)
					}
					if !seen[c.edit] {
						seen[c.edit] = true
						f.Edits = append(f.Edits, c.edit)
					}
				}
				return f
			}
		}
		for e, why := range failed {
			fail(e, why)
		}
	}
	for _, c := range cs {
		fail(c.edit, "fix could not settle the edits of this file")
	}
	return nil
}

func byEdit(cs []*change) map[*Edit][]*change {
	m := map[*Edit][]*change{}
	for _, c := range cs {
		m[c.edit] = append(m[c.edit], c)
	}
	return m
}

func fail(e *Edit, why string) {
	if e.Applied {
		e.Applied = false
		e.Reason = why
	}
}

// mergeChanges groups changes by node, merging what several services add
// to one shared node. Contradicting changes to one node (two tiers for one
// anchored labels mapping) fail together: neither value is right for all.
func mergeChanges(cs []*change) (*filePlan, map[*Edit]string) {
	fp := &filePlan{byKey: map[groupKey]*group{}}
	failed := map[*Edit]string{}
	failAll := func(g *group, why string) {
		for _, c := range g.changes {
			failed[c.edit] = why
		}
	}
	for _, c := range cs {
		k := groupKey{c.kind, c.node, c.first}
		if c.kind == opRemoveItem || c.kind == opRemoveKey {
			k = groupKey{c.kind, c.item, false}
		}
		g := fp.byKey[k]
		if g == nil {
			g = &group{kind: c.kind, node: c.node, first: c.first}
			fp.byKey[k] = g
			fp.groups = append(fp.groups, g)
		}
		g.changes = append(g.changes, c)
		switch c.kind {
		case opAppend:
			dup := false
			for _, it := range g.items {
				dup = dup || it.same(c.val)
			}
			if !dup {
				g.items = append(g.items, c.val)
			}
		case opAddKey:
			found := false
			for i, key := range g.keys {
				if key == c.key {
					found = true
					merged := *g.vals[i]
					if !merged.merge(c.val) {
						failAll(g, fmt.Sprintf("services sharing this node need different values for %s; set them by hand", c.key))
					}
					g.vals[i] = &merged
				}
			}
			if !found {
				v := *c.val
				g.keys = append(g.keys, c.key)
				g.vals = append(g.vals, &v)
			}
		case opSetScalar:
			if first := g.changes[0]; first.text != c.text || first.tag != c.tag {
				failAll(g, "services sharing this value need different values; set it by hand")
			}
		}
	}
	return fp, failed
}

// apply renders every group and splices the results into the file.
func apply(src *source, fp *filePlan) ([]byte, map[*Edit]string) {
	failed := map[*Edit]string{}
	var sp []splice
	for _, g := range fp.groups {
		s, err := renderGroup(src, g)
		if err != nil {
			why := strings.TrimPrefix(err.Error(), errDecline.Error()+": ")
			for _, c := range g.changes {
				failed[c.edit] = why
			}
			continue
		}
		s.changes = g.changes
		if len(g.node.Content) > 0 {
			s.col = g.node.Content[0].Column
		}
		sp = append(sp, s)
	}
	if len(failed) > 0 {
		return nil, failed
	}
	// At one offset, insertions go first (the deeper collection's before
	// the shallower's), then the one replacement or removal that may start
	// there.
	sort.SliceStable(sp, func(a, b int) bool {
		x, y := sp[a], sp[b]
		if x.start != y.start {
			return x.start < y.start
		}
		if (x.end == x.start) != (y.end == y.start) {
			return x.end == x.start
		}
		return x.col > y.col
	})
	for i := 1; i < len(sp); i++ {
		prev, cur := sp[i-1], sp[i]
		if cur.start < prev.end {
			for _, c := range cur.changes {
				failed[c.edit] = fmt.Sprintf("this edit overlaps another one at line %d; apply it by hand", lineOf(src, cur.start))
			}
		}
	}
	if len(failed) > 0 {
		return nil, failed
	}
	var b bytes.Buffer
	b.Grow(len(src.data) + 256)
	last := 0
	for _, s := range sp {
		b.Write(src.data[last:s.start])
		b.WriteString(s.text)
		last = s.end
	}
	b.Write(src.data[last:])
	fp.splices = sp
	return b.Bytes(), nil
}

func lineOf(src *source, off int) int {
	return sort.Search(len(src.lineStart), func(i int) bool { return src.lineStart[i] > off })
}

// renderGroup renders one group as a splice.
func renderGroup(src *source, g *group) (splice, error) {
	switch g.kind {
	case opAppend:
		return src.renderAppend(g.node, g.items)
	case opAddKey:
		return src.renderAddKeys(g)
	case opSetScalar:
		c := g.changes[0]
		start, end, err := src.scalarSpan(g.node)
		if err != nil {
			return splice{}, err
		}
		text := c.text
		switch {
		case c.tag != "" && c.tag != "!!str":
		case g.node.Style&yaml.DoubleQuotedStyle != 0:
			text = strconv.Quote(text)
		case g.node.Style&yaml.SingleQuotedStyle != 0 && !strings.ContainsAny(text, "\n\r\t"):
			text = "'" + strings.ReplaceAll(text, "'", "''") + "'"
		case !plainSafe(text, src.inFlow(g.node)):
			text = strconv.Quote(text)
		}
		for _, ch := range g.changes {
			if ch.edit.Before == "" {
				ch.edit.Before = string(src.data[start:end])
			}
		}
		return splice{start: start, end: end, text: text}, nil
	case opRemoveItem:
		return src.renderRemoveItem(g.node, g.changes[0].item)
	case opRemoveKey:
		return src.renderRemoveKey(g.node, g.changes[0].item)
	case opAnchor:
		return src.renderAnchor()
	case opMergeAdd:
		if g.node.Kind == yaml.AliasNode {
			start, err := src.offset(g.node.Line, g.node.Column)
			if err != nil {
				return splice{}, err
			}
			end := start + 1 + len(g.node.Value)
			if end > len(src.data) || string(src.data[start:end]) != "*"+g.node.Value {
				return splice{}, declinef("line %d: cannot find the merged alias", g.node.Line)
			}
			return splice{start: start, end: end, text: "[*" + g.node.Value + ", *" + compose.BaselineAnchor + "]"}, nil
		}
		return src.renderAppend(g.node, []*value{alias(compose.BaselineAnchor)})
	}
	return splice{}, declinef("unknown change")
}

// localLayout reads the indentation a mapping's own nested blocks use,
// falling back on the file's.
func (s *source) localLayout(m *yaml.Node) layout {
	lay := layout{step: s.indent, seq: s.seqIndent, nl: s.nl()}
	stepSet, seqSet := false, false
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Style&yaml.FlowStyle != 0 || len(v.Content) == 0 || v.Content[0].Line <= k.Line {
			continue
		}
		switch v.Kind {
		case yaml.MappingNode:
			if d := v.Content[0].Column - k.Column; d > 0 && !stepSet {
				lay.step, stepSet = d, true
			}
		case yaml.SequenceNode:
			if c, err := s.keyColumn(v); err == nil && c >= k.Column && !seqSet {
				lay.seq, seqSet = c-k.Column, true
			}
		}
	}
	return lay
}

// atEnd prefixes text with a line break when it goes at the very end of a
// file that does not end with one.
func (s *source) atEnd(off int, text string) string {
	if off == len(s.data) && len(s.data) > 0 && s.data[len(s.data)-1] != '\n' {
		return s.nl() + text
	}
	return text
}

// flowInsert finds where new entries of a flow collection go: after its
// last entry, and whether a separating comma is needed.
func (s *source) flowInsert(n *yaml.Node) (int, string, error) {
	end, err := s.flowEnd(n)
	if err != nil {
		return 0, "", err
	}
	i := end
	for i > 0 && isBlank(s.data[i-1]) {
		i--
	}
	switch {
	case len(n.Content) == 0:
		return i, "", nil
	case s.data[i-1] == ',':
		return i, " ", nil
	}
	return i, ", ", nil
}

func (s *source) renderAppend(seq *yaml.Node, items []*value) (splice, error) {
	q := quotingOf(seq)
	if seq.Style&yaml.FlowStyle != 0 {
		at, sep, err := s.flowInsert(seq)
		if err != nil {
			return splice{}, err
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = it.flow(q)
		}
		return splice{start: at, end: at, text: sep + strings.Join(parts, ", ")}, nil
	}
	col, err := s.keyColumn(seq)
	if err != nil {
		return splice{}, err
	}
	last := seq.Content[len(seq.Content)-1]
	dash, err := s.offset(last.Line, col)
	if err != nil {
		return splice{}, err
	}
	if s.data[dash] != '-' {
		return splice{}, declinef("line %d: the last item does not start its line with a dash", last.Line)
	}
	gap := 0
	for i := dash + 1; i < len(s.data) && s.data[i] == ' '; i++ {
		gap++
	}
	if gap == 0 || dash+1+gap < len(s.data) && (s.data[dash+1+gap] == '\n' || s.data[dash+1+gap] == '\r') {
		gap = 1
	}
	at, err := s.blockEnd(seq, col)
	if err != nil {
		return splice{}, err
	}
	var b strings.Builder
	prefix := strings.Repeat(" ", col-1) + "-" + strings.Repeat(" ", gap)
	for _, it := range items {
		if it.scalar() {
			b.WriteString(prefix + it.text(q, false) + s.nl())
		} else {
			b.WriteString(prefix + it.flow(q) + s.nl())
		}
	}
	return splice{start: at, end: at, text: s.atEnd(at, b.String())}, nil
}

func (s *source) renderAddKeys(g *group) (splice, error) {
	m := g.node
	q := quotingOf(m)
	if m.Style&yaml.FlowStyle != 0 {
		g.first = false // a flow mapping gets new entries at its end
		at, sep, err := s.flowInsert(m)
		if err != nil {
			return splice{}, err
		}
		parts := make([]string, len(g.keys))
		for i, k := range g.keys {
			parts[i] = keyText(k) + ": " + g.vals[i].flow(q)
		}
		return splice{start: at, end: at, text: sep + strings.Join(parts, ", ")}, nil
	}
	if len(m.Content) == 0 {
		return splice{}, declinef("line %d: empty block mapping", m.Line)
	}
	first := m.Content[0]
	col := first.Column
	lay := s.localLayout(m)
	var b strings.Builder
	for i, k := range g.keys {
		b.WriteString(strings.Repeat(" ", col-1) + keyText(k) + ":" + g.vals[i].block(lay, col-1, q))
	}
	if g.first && s.onlySpacesBefore(first.Line, first.Column) {
		at := s.lineStart[first.Line-1]
		return splice{start: at, end: at, text: b.String()}, nil
	}
	g.first = false
	// After a block scalar (| or >) new keys would change its value at
	// the end of a file (its final line break) or drop its kept blank
	// lines (|+): they go before it instead.
	if lastKey, lastVal := m.Content[len(m.Content)-2], m.Content[len(m.Content)-1]; lastVal.Kind == yaml.ScalarNode && lastVal.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 && s.onlySpacesBefore(lastKey.Line, lastKey.Column) {
		at := s.lineStart[lastKey.Line-1]
		g.before = lastKey
		return splice{start: at, end: at, text: b.String()}, nil
	}
	at, err := s.blockEnd(m, col)
	if err != nil {
		return splice{}, err
	}
	return splice{start: at, end: at, text: s.atEnd(at, b.String())}, nil
}

// itemEnd is the end of the last line of a block sequence item whose dash
// is at col.
func (s *source) itemEnd(item *yaml.Node, col int, zeroSeq bool) int {
	lastContent := item.Line
	for l := item.Line + 1; l <= len(s.lineStart); l++ {
		text := s.line(l)
		trimmed := strings.TrimLeft(text, " ")
		ind := len(text) - len(trimmed)
		switch {
		case strings.TrimSpace(trimmed) == "":
			continue
		case ind > col-1:
			lastContent = l
			continue
		case zeroSeq && ind == col-1 && (trimmed == "-" || strings.HasPrefix(trimmed, "- ")):
			lastContent = l
			continue
		}
		break
	}
	return s.lineEnd(lastContent)
}

func (s *source) renderRemoveItem(seq, item *yaml.Node) (splice, error) {
	if seq.Style&yaml.FlowStyle != 0 {
		return splice{}, declinef("line %d: removing an item from a flow list is left to a human", item.Line)
	}
	col, err := s.keyColumn(seq)
	if err != nil {
		return splice{}, err
	}
	dash, err := s.offset(item.Line, col)
	if err != nil || s.data[dash] != '-' || !s.onlySpacesBefore(item.Line, col) {
		return splice{}, declinef("line %d: the item does not start its line with a dash", item.Line)
	}
	start := s.lineStart[item.Line-1]
	end := s.itemEnd(item, col, false)
	return splice{start: start, end: end, text: s.keptComments(start, end)}, nil
}

// keptComments are the whole-line comments of a removed region: the text
// they annotate goes, the comments stay where they were.
func (s *source) keptComments(start, end int) string {
	var b strings.Builder
	for l := lineOf(s, start); l <= len(s.lineStart) && s.lineStart[l-1] < end; l++ {
		if strings.HasPrefix(strings.TrimSpace(s.line(l)), "#") {
			b.Write(s.data[s.lineStart[l-1]:min(s.lineEnd(l), end)])
		}
	}
	return b.String()
}

func (s *source) renderRemoveKey(m, k *yaml.Node) (splice, error) {
	if m.Style&yaml.FlowStyle != 0 || !s.onlySpacesBefore(k.Line, k.Column) {
		return splice{}, declinef("line %d: removing %s is left to a human", k.Line, k.Value)
	}
	start := s.lineStart[k.Line-1]
	end := s.itemEnd(k, k.Column, true)
	return splice{start: start, end: end, text: s.keptComments(start, end)}, nil
}

// anchorValue is the baseline fix defines.
func anchorValue() *value {
	return mapOf("security_opt", seqOf(str(nnpValue)), "cap_drop", seqOf(str("ALL")))
}

// renderAnchor defines x-security-baseline before services:, above the
// comments that introduce services: unless they are the file's header.
func (s *source) renderAnchor() (splice, error) {
	k, _ := mapGet(s.root, "services")
	if k == nil {
		return splice{}, declinef("no services: key")
	}
	line := k.Line
	for line > 1 && strings.HasPrefix(strings.TrimSpace(s.line(line-1)), "#") {
		line--
	}
	header := true
	for l := 1; l < line; l++ {
		if t := strings.TrimSpace(s.line(l)); t != "" && t != "---" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "%") {
			header = false
		}
	}
	if header {
		line = k.Line
	}
	col := s.root.Content[0].Column
	lay := s.localLayout(s.root)
	text := strings.Repeat(" ", col-1) + anchorKey + ": &" + compose.BaselineAnchor + anchorValue().block(lay, col-1, quotePlain) + lay.nl
	at := s.lineStart[line-1]
	return splice{start: at, end: at, text: text}, nil
}
