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
	after, err := parseSource(src.path, src.mode, out)
	if err != nil {
		return err
	}
	ex := &expectations{
		appends: map[*yaml.Node][]*value{}, addKeys: map[*yaml.Node][]*group{}, sets: map[*yaml.Node]*value{},
		removed: map[*yaml.Node]bool{}, mergeAdd: map[*yaml.Node]bool{},
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
