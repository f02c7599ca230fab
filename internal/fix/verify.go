package fix

import (
	"fmt"

	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/compose"
)

// expectations say how each edited node of the original must read in the
// edited file; every other node must read exactly as before.
type expectations struct {
	appends  map[*yaml.Node][]*value
	addKeys  map[*yaml.Node][]*group
	sets     map[*yaml.Node]*value
	removed  map[*yaml.Node]bool // sequence items, and mapping keys with their values
	anchor   bool
	mergeAdd map[*yaml.Node]bool
}

// verify parses the edited file and compares it with the original, node
// by node: the edits must be there, exactly, and nothing else may differ.
// Byte-level layout outside the edits is unchanged by construction (they
// are splices); this proves the splices mean what they were meant to.
func verify(src *source, fp *filePlan, out []byte) error {
	ex := &expectations{
		appends: map[*yaml.Node][]*value{}, addKeys: map[*yaml.Node][]*group{}, sets: map[*yaml.Node]*value{},
		removed: map[*yaml.Node]bool{}, mergeAdd: map[*yaml.Node]bool{},
	}
	reduced, dropped := src.reduce(fp.splices, out)
	for _, k := range dropped {
		ex.removed[k] = true
	}
	after, err := parseSource(src.path, src.mode, reduced)
	if err != nil {
		return err
	}
	for _, g := range fp.groups {
		switch g.kind {
		case opAppend:
			ex.appends[g.node] = append(ex.appends[g.node], g.items...)
		case opAddKey:
			ex.addKeys[g.node] = append(ex.addKeys[g.node], g)
		case opSetScalar:
			tag := g.changes[0].tag
			if tag == "" {
				tag = "!!str"
			}
			ex.sets[g.node] = &value{str: g.changes[0].text, tag: tag}
		case opRemoveItem, opRemoveKey:
			ex.removed[g.changes[0].item] = true
		case opAnchor:
			ex.anchor = true
		case opMergeAdd:
			ex.mergeAdd[g.node] = true
		}
	}
	return ex.compare(src.root, after.root, true, "")
}

// reduce leaves out of the edited file the top-level entries no splice
// comes near that define no anchor (CasaOS's large x-casaos blocks, say):
// top-level entries of a block mapping are parsed independently of each
// other but for anchors, so the parser reads the others exactly as in the
// whole file, and verify need not parse those twice. It returns the bytes
// to parse and the keys left out (which verify then expects to be
// missing).
func (s *source) reduce(sp []splice, out []byte) ([]byte, []*yaml.Node) {
	root := s.root
	if root.Style&yaml.FlowStyle != 0 || len(root.Content) < 4 {
		return out, nil
	}
	type entry struct {
		key        *yaml.Node
		start, end int
	}
	var entries []entry
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Kind != yaml.ScalarNode || k.Column != 1 || isMergeKey(k) || !s.onlySpacesBefore(k.Line, k.Column) {
			return out, nil
		}
		entries = append(entries, entry{key: k, start: s.lineStart[k.Line-1], end: len(s.data)})
		if n := len(entries); n > 1 {
			entries[n-2].end = entries[n-1].start
		}
	}
	var b []byte
	var dropped []*yaml.Node
	last, delta, si := 0, 0, 0 // last: new-file offset copied up to
	for i, e := range entries {
		for si < len(sp) && sp[si].start < e.start {
			delta += len(sp[si].text) - (sp[si].end - sp[si].start)
			si++
		}
		touched := false
		for _, x := range sp {
			if x.start <= e.end && x.end >= e.start {
				touched = true
				break
			}
		}
		if touched || e.key.Value == anchorKey || e.key.Value == "services" || hasAnchor(root.Content[2*i+1], 0) {
			continue
		}
		if b == nil {
			b = make([]byte, 0, len(out))
		}
		b = append(b, out[last:e.start+delta]...)
		last = e.end + delta
		dropped = append(dropped, e.key)
	}
	if dropped == nil {
		return out, nil
	}
	return append(b, out[last:]...), dropped
}

func hasAnchor(n *yaml.Node, depth int) bool {
	if n == nil || depth > 256 {
		return n != nil
	}
	if n.Anchor != "" {
		return true
	}
	if n.Kind == yaml.AliasNode {
		return false
	}
	for _, c := range n.Content {
		if hasAnchor(c, depth+1) {
			return true
		}
	}
	return false
}

func describe(n *yaml.Node) string {
	return fmt.Sprintf("line %d", n.Line)
}

func (ex *expectations) compare(o, n *yaml.Node, root bool, path string) error {
	if v, ok := ex.sets[o]; ok {
		if !v.matches(n) {
			return fmt.Errorf("%s: %s reads %q (%s), want %q (%s)", describe(o), path, n.Value, n.Tag, v.str, v.tag)
		}
		return nil
	}
	if ex.mergeAdd[o] {
		want := alias(compose.BaselineAnchor)
		if o.Kind == yaml.AliasNode {
			if n.Kind != yaml.SequenceNode || len(n.Content) != 2 || n.Content[0].Kind != yaml.AliasNode || n.Content[0].Value != o.Value || !want.matches(n.Content[1]) {
				return fmt.Errorf("%s: the merge key does not read [*%s, *%s]", describe(o), o.Value, compose.BaselineAnchor)
			}
			return nil
		}
		ex.appends[o] = append(ex.appends[o], want)
	}
	if o.Kind != n.Kind || o.Tag != n.Tag || o.Anchor != n.Anchor || o.Style != n.Style {
		return fmt.Errorf("%s: %s changed (kind, tag, anchor or style)", describe(o), path)
	}
	switch o.Kind {
	case yaml.ScalarNode, yaml.AliasNode:
		if o.Value != n.Value {
			return fmt.Errorf("%s: %s changed from %q to %q", describe(o), path, o.Value, n.Value)
		}
		return nil
	case yaml.SequenceNode:
		var kept []*yaml.Node
		for _, it := range o.Content {
			if !ex.removed[it] {
				kept = append(kept, it)
			}
		}
		add := ex.appends[o]
		if len(n.Content) != len(kept)+len(add) {
			return fmt.Errorf("%s: %s has %d items, want %d", describe(o), path, len(n.Content), len(kept)+len(add))
		}
		for i, it := range kept {
			if err := ex.compare(it, n.Content[i], false, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		for i, v := range add {
			if !v.matches(n.Content[len(kept)+i]) {
				return fmt.Errorf("%s: %s item %d is not the one added", describe(o), path, len(kept)+i)
			}
		}
		return nil
	case yaml.MappingNode:
		type pair struct{ k, v *yaml.Node }
		var kept []pair
		for i := 0; i+1 < len(o.Content); i += 2 {
			if !ex.removed[o.Content[i]] {
				kept = append(kept, pair{o.Content[i], o.Content[i+1]})
			}
		}
		var got []pair
		for i := 0; i+1 < len(n.Content); i += 2 {
			got = append(got, pair{n.Content[i], n.Content[i+1]})
		}
		var added []pair
		for _, g := range ex.addKeys[o] {
			if len(got) < len(g.keys) {
				return fmt.Errorf("%s: %s lacks the added keys", describe(o), path)
			}
			switch {
			case g.first:
				added, got = got[:len(g.keys)], got[len(g.keys):]
			case g.before != nil:
				at := len(got) - len(g.keys) - 1
				if at < 0 {
					return fmt.Errorf("%s: %s lacks the added keys", describe(o), path)
				}
				added = append([]pair(nil), got[at:at+len(g.keys)]...)
				got = append(got[:at:at], got[at+len(g.keys):]...)
			default:
				added, got = got[len(got)-len(g.keys):], got[:len(got)-len(g.keys)]
			}
			for i, k := range g.keys {
				if added[i].k.Value != k || !g.vals[i].matches(added[i].v) {
					return fmt.Errorf("%s: %s: key %s is not the one added", describe(o), path, k)
				}
			}
		}
		if root && ex.anchor {
			found := false
			for i, p := range got {
				if p.k.Value == anchorKey {
					if p.v.Anchor != compose.BaselineAnchor || !anchorValue().matches(p.v) {
						return fmt.Errorf("the added %s does not read as the baseline", anchorKey)
					}
					got = append(got[:i:i], got[i+1:]...)
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("the added %s is missing", anchorKey)
			}
		}
		if len(got) != len(kept) {
			return fmt.Errorf("%s: %s has %d keys, want %d", describe(o), path, len(got), len(kept))
		}
		for i, p := range kept {
			if err := ex.compare(p.k, got[i].k, false, path+".key"); err != nil {
				return err
			}
			if err := ex.compare(p.v, got[i].v, false, path+"."+p.k.Value); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}
