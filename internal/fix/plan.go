package fix

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// opKind is what a change does to its node.
type opKind int

const (
	opAppend     opKind = iota // add items to a sequence
	opAddKey                   // add a key to a mapping
	opSetScalar                // rewrite a scalar
	opRemoveItem               // remove an item from a sequence
	opRemoveKey                // remove a key and its value from a mapping
	opAnchor                   // define x-security-baseline before services:
	opMergeAdd                 // add *security-baseline to an existing << value
)

// change is one edit of one node, before it is rendered.
type change struct {
	src  *source
	kind opKind
	node *yaml.Node // the collection, scalar or mapping edited
	key  string     // opAddKey
	val  *value     // opAppend: the item; opAddKey: the value
	// text is opSetScalar's new scalar as the parser reads it back; quoted
	// in the scalar's own style when rendered.
	text  string
	item  *yaml.Node // opRemoveItem: the item; opRemoveKey: the key node
	first bool       // opAddKey: as the mapping's first entry
	// tag is opSetScalar's type ("" means a string).
	tag  string
	edit *Edit
	// redact is a secret value the change moves: never shown.
	redact string
}

// planner turns one project's findings into changes.
type planner struct {
	opts    *Options
	files   *sourceCache
	res     *compose.Result
	changes []*change
	edits   []*Edit
	secrets []*SecretFile
	manual  map[string]int
	// anchors planned in this project, by file.
	anchorPlanned map[*source]bool
}

// fixable are the rules fix has an edit for.
var fixable = map[string]bool{
	"no-new-privileges": true, "cap-drop-all": true, "baseline-anchor": true, "tier-label": true,
	"memory-limit": true, "pids-limit": true, "non-root": true, "read-only-rootfs": true,
	"bind-mount-readonly": true, "docker-socket": true, "secrets-in-env": true,
}

const (
	nnpValue    = "no-new-privileges:true"
	anchorKey   = "x-security-baseline"
	secretsRoot = "/run/secrets/"
)

// note records an edit: applied when its changes go in, a suggestion when
// it is unsafe and --unsafe is off, or when err says why fix declined.
func (p *planner) note(w *workload.Workload, rule string, safe bool, line int, file string, after string, err error, cs ...*change) *Edit {
	e := &Edit{File: file, Line: line, Project: w.Project, Service: w.Name, Rule: rule, Safe: safe, After: after}
	if err == nil && len(cs) == 0 {
		// Nothing to change: the value is there already, or another edit
		// (the baseline merge) brings it.
		e.Applied = true
		return e
	}
	p.edits = append(p.edits, e)
	switch {
	case err != nil:
		e.Reason = strings.TrimPrefix(err.Error(), errDecline.Error()+": ")
	case !safe && !p.opts.Unsafe:
		e.Reason = "unsafe: it can take away something the service uses; review it and run with --unsafe"
	default:
		e.Applied = true
		for _, c := range cs {
			c.edit = e
			p.changes = append(p.changes, c)
		}
	}
	return e
}

// serviceTarget is where new keys of a service go: its mapping in the
// first -f file that declares it, else where lint says it is defined (an
// included file).
func (p *planner) serviceTarget(w *workload.Workload) (*source, *yaml.Node, error) {
	try := func(file string) (*source, *yaml.Node, error) {
		src, err := p.files.get(file)
		if err != nil {
			return nil, nil, err
		}
		_, svcs := mapGet(src.root, "services")
		if svcs == nil || svcs.Kind != yaml.MappingNode {
			return src, nil, nil
		}
		k, v := mapGet(svcs, w.Name)
		switch {
		case k == nil:
			return src, nil, nil
		case v.Kind == yaml.AliasNode:
			return nil, nil, declinef("%s:%d: service %s is an alias of another node; edit that node by hand", file, k.Line, w.Name)
		case v.Kind != yaml.MappingNode || v.Tag != "!!map":
			return nil, nil, declinef("%s:%d: service %s is not a plain mapping", file, k.Line, w.Name)
		}
		return src, v, nil
	}
	for _, f := range p.res.Files {
		if src, m, err := try(f); err != nil || m != nil {
			return src, m, err
		}
	}
	if w.Pos.File != "" {
		if src, m, err := try(w.Pos.File); err != nil || m != nil {
			return src, m, err
		}
	}
	return nil, nil, declinef("cannot find service %s's mapping", w.Name)
}

// keyed finds, among the nodes at a position, the value of key in the
// mapping holding it: the position may name the key or its value.
func (p *planner) keyed(pos workload.Position, key string) (*source, *yaml.Node, *yaml.Node, *yaml.Node) {
	if !pos.Known() || pos.Line == 0 {
		return nil, nil, nil, nil
	}
	src, err := p.files.get(pos.File)
	if err != nil {
		return nil, nil, nil, nil
	}
	for _, n := range src.nodeAt(pos.Line, pos.Column) {
		m := src.parent[n]
		if m == nil || m.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if (m.Content[i] == n || m.Content[i+1] == n) && m.Content[i].Value == key && !isMergeKey(m.Content[i]) {
				return src, m, m.Content[i], m.Content[i+1]
			}
		}
	}
	return nil, nil, nil, nil
}

// collection resolves a value to the sequence or mapping that defines it
// (following an alias to its anchor), refusing what fix must not edit.
func collection(src *source, k, v *yaml.Node, kind yaml.Kind) (*yaml.Node, error) {
	v = resolve(v)
	switch {
	case v == nil:
		return nil, declinef("%s:%d: %s has no value", src.path, k.Line, k.Value)
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		return nil, declinef("%s:%d: %s is empty (null); write the list by hand", src.path, k.Line, k.Value)
	case v.Kind != kind:
		return nil, declinef("%s:%d: %s is not a %s", src.path, k.Line, k.Value, kindName(kind))
	case v.Tag != "!!seq" && v.Tag != "!!map":
		return nil, declinef("%s:%d: %s carries the tag %s; edit it by hand", src.path, k.Line, k.Value, v.Tag)
	}
	return v, nil
}

func kindName(k yaml.Kind) string {
	if k == yaml.MappingNode {
		return "mapping"
	}
	return "list"
}

// ensureItem makes a list under key contain item: the list lint located
// (pos), else the one the service mapping has or merges, else a new key —
// unless skipNew says the new key is not needed (a merge brings the value).
func (p *planner) ensureItem(src *source, svc *yaml.Node, pos workload.Position, key string, item *value, skipNew bool) ([]*change, int, error) {
	lsrc, _, k, v := p.keyed(pos, key)
	if k == nil {
		if _, k2, v2 := lookup(svc, key); k2 != nil {
			lsrc, k, v = src, k2, v2
		}
	}
	if k == nil {
		if skipNew {
			return nil, svc.Line, nil
		}
		return []*change{{src: src, kind: opAddKey, node: svc, key: key, val: seqOf(item)}}, svc.Line, nil
	}
	seq, err := collection(lsrc, k, v, yaml.SequenceNode)
	if err != nil {
		return nil, 0, err
	}
	for _, it := range seq.Content {
		if it.Kind == yaml.ScalarNode && it.Value == item.str {
			return nil, k.Line, nil // already there
		}
	}
	return []*change{{src: lsrc, kind: opAppend, node: seq, val: item}}, k.Line, nil
}

// workload plans the edits for one service's unexempted findings.
func (p *planner) workload(w *workload.Workload, fs []policy.Finding) {
	byRule := map[string][]policy.Finding{}
	for _, f := range fs {
		if fixable[f.Rule] {
			byRule[f.Rule] = append(byRule[f.Rule], f)
		} else {
			p.manual[f.Rule]++
		}
	}
	if len(byRule) == 0 {
		return
	}
	src, svc, terr := p.serviceTarget(w)
	declineAll := func(err error) {
		for rule, list := range byRule {
			for _, f := range list {
				p.note(w, rule, isSafe(rule), f.Line, f.File, "", err)
			}
		}
	}
	if terr != nil {
		declineAll(terr)
		return
	}

	// The baseline first: whether the service will merge it decides
	// whether the security_opt and cap_drop edits need a key of their own.
	merged := false
	if bf := byRule["baseline-anchor"]; len(bf) > 0 {
		f := bf[0]
		if !w.Baseline.FileDefines && w.Baseline.File != "" {
			if bsrc, err := p.files.get(w.Baseline.File); err != nil {
				p.note(w, "baseline-anchor", true, f.Line, f.File, "", err)
			} else if !p.anchorPlanned[bsrc] {
				cs, err := p.planAnchor(bsrc)
				line := 0
				if k, _ := mapGet(bsrc.root, "services"); k != nil {
					line = k.Line
				}
				e := p.note(w, "baseline-anchor", true, line, bsrc.path, anchorKey+": &"+compose.BaselineAnchor+" {security_opt: ["+nnpValue+"], cap_drop: [ALL]}", err, cs...)
				e.Service = "" // the file's, not one service's
			}
		}
		if !w.Baseline.Merged {
			cs, err := p.planMerge(src, svc)
			e := p.note(w, "baseline-anchor", false, svc.Line, src.path, "<<: *"+compose.BaselineAnchor, err, cs...)
			merged = e.Applied
		}
	}

	for _, f := range byRule["no-new-privileges"] {
		p.planNoNewPrivileges(w, f, src, svc, merged)
	}
	for _, f := range byRule["cap-drop-all"] {
		cs, line, err := p.ensureItem(src, svc, workload.Position{File: f.File, Line: f.Line, Column: f.Column}, "cap_drop", str("ALL"), merged && p.anchorProvides(src, "cap_drop", "ALL"))
		p.note(w, "cap-drop-all", false, line, fileOf(cs, src), "cap_drop += [ALL]", err, cs...)
	}
	if fl := byRule["tier-label"]; len(fl) > 0 {
		p.planTier(w, fl[0], src, svc)
	}
	p.planLimits(w, byRule["memory-limit"], byRule["pids-limit"], src, svc)
	if fl := byRule["non-root"]; len(fl) > 0 {
		p.planUser(w, fl[0], src, svc)
	}
	if fl := byRule["read-only-rootfs"]; len(fl) > 0 {
		p.planReadOnly(w, fl[0], src, svc)
	}
	socket := map[workload.Position]bool{}
	for _, f := range byRule["docker-socket"] {
		if pos := p.planSocket(w, f, src, svc); pos.Known() {
			socket[pos] = true
		}
	}
	for _, f := range byRule["bind-mount-readonly"] {
		p.planBindReadOnly(w, f, src, svc, socket)
	}
	for _, f := range byRule["secrets-in-env"] {
		p.planSecret(w, f)
	}
}

func isSafe(rule string) bool {
	switch rule {
	case "no-new-privileges", "tier-label", "memory-limit", "pids-limit":
		return true
	}
	return false
}

func fileOf(cs []*change, def *source) string {
	if len(cs) > 0 {
		return cs[0].src.path
	}
	return def.path
}

// anchorProvides reports whether merging the file's &security-baseline
// (existing, or the one fix adds) brings item under key.
func (p *planner) anchorProvides(src *source, key, item string) bool {
	a := definesAnchor(src.root, compose.BaselineAnchor, 0)
	if a == nil {
		return p.anchorPlanned[src]
	}
	_, _, v := lookup(a, key)
	if v = resolve(v); v == nil || v.Kind != yaml.SequenceNode {
		return false
	}
	for _, it := range v.Content {
		if it = resolve(it); it != nil && it.Kind == yaml.ScalarNode && strings.EqualFold(it.Value, item) {
			return true
		}
	}
	return false
}

// planAnchor defines x-security-baseline once in a file, before services:
// (an alias must come after its anchor).
func (p *planner) planAnchor(src *source) ([]*change, error) {
	if definesAnchor(src.root, compose.BaselineAnchor, 0) != nil {
		return nil, nil
	}
	if src.root.Style&yaml.FlowStyle != 0 {
		return nil, declinef("%s: the top level is a flow mapping; define the anchor by hand", src.path)
	}
	if k, _ := mapGet(src.root, anchorKey); k != nil {
		return nil, declinef("%s:%d: %s exists without the &%s anchor; add the anchor by hand", src.path, k.Line, anchorKey, compose.BaselineAnchor)
	}
	k, _ := mapGet(src.root, "services")
	if k == nil {
		return nil, declinef("%s: no services: key to define the anchor before", src.path)
	}
	if !src.onlySpacesBefore(k.Line, k.Column) {
		return nil, declinef("%s:%d: services: does not start its line", src.path, k.Line)
	}
	p.anchorPlanned[src] = true
	return []*change{{src: src, kind: opAnchor, node: src.root}}, nil
}

// planMerge adds `<<: *security-baseline` to a service mapping, defining
// the anchor in the same file when needed (anchors are file-local).
func (p *planner) planMerge(src *source, svc *yaml.Node) ([]*change, error) {
	var out []*change
	if a := definesAnchor(src.root, compose.BaselineAnchor, 0); a != nil {
		if resolve(a).Kind != yaml.MappingNode {
			return nil, declinef("%s:%d: &%s is not a mapping, so it cannot be merged", src.path, a.Line, compose.BaselineAnchor)
		}
		if a.Line >= svc.Line {
			return nil, declinef("%s:%d: &%s is defined after service line %d; an alias must follow its anchor", src.path, a.Line, compose.BaselineAnchor, svc.Line)
		}
	} else {
		cs, err := p.planAnchor(src)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	for i := 0; i+1 < len(svc.Content); i += 2 {
		if !isMergeKey(svc.Content[i]) {
			continue
		}
		v := svc.Content[i+1]
		switch {
		case v.Kind == yaml.AliasNode, v.Kind == yaml.SequenceNode && v.Tag == "!!seq":
			return append(out, &change{src: src, kind: opMergeAdd, node: v}), nil
		default:
			return nil, declinef("%s:%d: the service merges an inline mapping; add *%s by hand", src.path, svc.Content[i].Line, compose.BaselineAnchor)
		}
	}
	return append(out, &change{src: src, kind: opAddKey, node: svc, key: "<<", val: alias(compose.BaselineAnchor), first: true}), nil
}

func (p *planner) planNoNewPrivileges(w *workload.Workload, f policy.Finding, src *source, svc *yaml.Node, merged bool) {
	if _, idx, _ := w.NoNewPrivileges(); idx >= 0 {
		// An explicit false (or a value the engine refuses): the author's
		// choice, so rewriting it is not safe.
		pos := w.SecurityOptPosition(idx)
		cs, line, err := p.setItem(pos, "security_opt", w.SecurityOpt[idx], nnpValue)
		p.note(w, "no-new-privileges", false, line, pos.File, nnpValue, err, cs...)
		return
	}
	cs, line, err := p.ensureItem(src, svc, workload.Position{File: f.File, Line: f.Line, Column: f.Column}, "security_opt", str(nnpValue), merged && p.anchorProvides(src, "security_opt", nnpValue))
	p.note(w, "no-new-privileges", true, line, fileOf(cs, src), "security_opt += ["+nnpValue+"]", err, cs...)
}

// setItem rewrites the list item at pos (under key) from old to new.
func (p *planner) setItem(pos workload.Position, key, old, text string) ([]*change, int, error) {
	if !pos.Known() {
		return nil, 0, declinef("cannot locate %s item %q", key, old)
	}
	src, err := p.files.get(pos.File)
	if err != nil {
		return nil, 0, err
	}
	for _, n := range src.nodeAt(pos.Line, pos.Column) {
		if n.Kind != yaml.ScalarNode || n.Value != old {
			continue
		}
		if seq := src.parent[n]; seq != nil && seq.Kind == yaml.SequenceNode {
			if strings.Contains(n.Value, "$") {
				return nil, n.Line, declinef("%s:%d: %q is interpolated; change the variable that defines it", src.path, n.Line, n.Value)
			}
			return []*change{{src: src, kind: opSetScalar, node: n, text: text}}, n.Line, nil
		}
	}
	return nil, pos.Line, declinef("%s:%d: cannot locate %s item %q", pos.File, pos.Line, key, old)
}

func (p *planner) planTier(w *workload.Workload, f policy.Finding, src *source, svc *yaml.Node) {
	tier := p.opts.Tier.For(w.Name)
	after := workload.LabelTier + ": " + tier
	if tier == "" {
		p.note(w, "tier-label", true, f.Line, f.File, "", declinef("pass --tier TIER (or --tier %s=TIER) to add the hy-home.tier label", w.Name))
		return
	}
	if _, _, ok := w.Label(workload.LabelTier); ok {
		// Present but empty: rewrite the value where it is written. A tier
		// only under deploy.labels is not present: containers never carry
		// it, so the label is added where they do.
		lp := w.LabelPos[workload.LabelTier]
		if lsrc, _, k, v := p.keyed(lp, workload.LabelTier); k != nil && v.Kind == yaml.ScalarNode {
			p.note(w, "tier-label", true, k.Line, lsrc.path, after, p.checkLiteral(lsrc, v), &change{src: lsrc, kind: opSetScalar, node: v, text: tier})
			return
		}
		cs, line, err := p.setItem(lp, "labels", workload.LabelTier+"=", workload.LabelTier+"="+tier)
		p.note(w, "tier-label", true, line, lp.File, after, err, cs...)
		return
	}
	_, k, v := lookup(svc, "labels")
	if k == nil {
		p.note(w, "tier-label", true, svc.Line, src.path, "labels: {"+after+"}", nil,
			&change{src: src, kind: opAddKey, node: svc, key: "labels", val: mapOf(workload.LabelTier, str(tier))})
		return
	}
	switch rv := resolve(v); {
	case rv != nil && rv.Kind == yaml.SequenceNode:
		seq, err := collection(src, k, v, yaml.SequenceNode)
		p.note(w, "tier-label", true, k.Line, src.path, "labels += ["+workload.LabelTier+"="+tier+"]", err,
			&change{src: src, kind: opAppend, node: seq, val: str(workload.LabelTier + "=" + tier)})
	default:
		m, err := collection(src, k, v, yaml.MappingNode)
		p.note(w, "tier-label", true, k.Line, src.path, "labels += {"+after+"}", err,
			&change{src: src, kind: opAddKey, node: m, key: workload.LabelTier, val: str(tier)})
	}
}

// checkLiteral declines rewriting a scalar whose value comes from the
// environment: the variable defines it, not this node.
func (p *planner) checkLiteral(src *source, n *yaml.Node) error {
	if strings.Contains(n.Value, "$") {
		return declinef("%s:%d: %q is interpolated; set the variable that defines it", src.path, n.Line, n.Value)
	}
	return nil
}

// planLimits adds the memory and pids limits. Where the service already
// has deploy.resources.limits they go there; otherwise mem_limit and
// pids_limit, because compose refuses a limits block that disagrees with
// them (an empty limits.pids next to pids_limit is such a disagreement).
func (p *planner) planLimits(w *workload.Workload, mem, pids []policy.Finding, src *source, svc *yaml.Node) {
	var memSize int64
	var memWhy string
	if len(mem) > 0 {
		memSize, memWhy = p.opts.memoryFor(w)
		if memSize == 0 {
			p.note(w, "memory-limit", true, mem[0].Line, mem[0].File, "", declinef("pass --memory SIZE, --memory %s=SIZE or --memory-table FILE to add a memory limit", w.Name))
			mem = nil
		}
	}
	if len(pids) > 0 {
		switch {
		case p.opts.PidsLimit <= 0:
			p.note(w, "pids-limit", true, pids[0].Line, pids[0].File, "", declinef("pass --pids-limit N to add a pids limit"))
			pids = nil
		case w.PidsLimitPos.Known():
			p.note(w, "pids-limit", true, w.PidsLimitPos.Line, w.PidsLimitPos.File, "", declinef("the pids limit is set to unlimited explicitly; change it by hand"))
			pids = nil
		}
	}
	if len(mem) == 0 && len(pids) == 0 {
		return
	}
	var limits *yaml.Node
	var limitsErr error
	limitsKey := 0
	if _, dk, dv := lookup(svc, "deploy"); dk != nil {
		if d := resolve(dv); d != nil && d.Kind == yaml.MappingNode {
			if _, rk, rv := lookup(d, "resources"); rk != nil {
				if r := resolve(rv); r != nil && r.Kind == yaml.MappingNode {
					if _, lk, lv := lookup(r, "limits"); lk != nil {
						limits, limitsErr = collection(src, lk, lv, yaml.MappingNode)
						limitsKey = lk.Line
					}
				}
			}
		}
	}
	if mk, _ := mapGet(svc, "mem_limit"); mk != nil && len(mem) > 0 {
		p.note(w, "memory-limit", true, mk.Line, src.path, "", declinef("mem_limit is written but sets no limit; change it by hand"))
		mem = nil
	}
	add := func(rule, key string, v *value, fs []policy.Finding, why string) {
		if len(fs) == 0 {
			return
		}
		written, _ := mapGet(limits, key)
		switch {
		case limitsErr != nil:
			p.note(w, rule, true, limitsKey, src.path, "", limitsErr)
		case written != nil:
			// Written, yet lint still finds no usable limit (a value the
			// engine reads differently, such as memory: 2.0, two bytes):
			// adding the key again would make a duplicate key.
			p.note(w, rule, true, written.Line, src.path, "", declinef("deploy.resources.limits.%s is written but sets no usable limit; change it by hand", key))
		case limits != nil:
			p.note(w, rule, true, limitsKey, src.path, "deploy.resources.limits."+key+": "+v.str+why, nil,
				&change{src: src, kind: opAddKey, node: limits, key: key, val: v})
		default:
			top := map[string]string{"memory": "mem_limit", "pids": "pids_limit"}[key]
			p.note(w, rule, true, svc.Line, src.path, top+": "+v.str+why, nil,
				&change{src: src, kind: opAddKey, node: svc, key: top, val: v})
		}
	}
	add("memory-limit", "memory", str(memoryText(memSize)), mem, " ("+memWhy+")")
	add("pids-limit", "pids", integer(p.opts.PidsLimit), pids, "")
}

func (p *planner) planUser(w *workload.Workload, f policy.Finding, src *source, svc *yaml.Node) {
	user := p.opts.User.For(w.Name)
	if user == "" {
		p.note(w, "non-root", false, f.Line, f.File, "", declinef("pass --user UID:GID (or --user %s=UID:GID), the image's documented non-root user", w.Name))
		return
	}
	if w.UserPos.Known() {
		usrc, _, k, v := p.keyed(w.UserPos, "user")
		if k == nil || v.Kind != yaml.ScalarNode {
			p.note(w, "non-root", false, w.UserPos.Line, w.UserPos.File, "", declinef("cannot locate the user: key lint reports"))
			return
		}
		p.note(w, "non-root", false, k.Line, usrc.path, "user: "+user, p.checkLiteral(usrc, v), &change{src: usrc, kind: opSetScalar, node: v, text: user})
		return
	}
	p.note(w, "non-root", false, svc.Line, src.path, "user: "+user, nil, &change{src: src, kind: opAddKey, node: svc, key: "user", val: str(user)})
}

func (p *planner) planReadOnly(w *workload.Workload, f policy.Finding, src *source, svc *yaml.Node) {
	var cs []*change
	line := svc.Line
	var err error
	if w.ReadOnlyRootfsPos.Known() {
		rsrc, _, k, v := p.keyed(w.ReadOnlyRootfsPos, "read_only")
		if k == nil || v.Kind != yaml.ScalarNode {
			err = declinef("cannot locate the read_only: key lint reports")
		} else if err = p.checkLiteral(rsrc, v); err == nil {
			cs = append(cs, &change{src: rsrc, kind: opSetScalar, node: v, text: "true", tag: "!!bool"})
			line = k.Line
		}
	} else {
		cs = append(cs, &change{src: src, kind: opAddKey, node: svc, key: "read_only", val: boolean(true)})
	}
	all := p.opts.Tmpfs.All(w.Name)
	// A path the service already mounts something at (a volume, a bind, a
	// long-form tmpfs) is writable or deliberately not: a second mount at the
	// same target is a file compose refuses to load.
	paths := slices.DeleteFunc(slices.Clone(all), func(pth string) bool {
		return slices.ContainsFunc(w.Mounts, func(m workload.Mount) bool { return path.Clean(m.Target) == path.Clean(pth) })
	})
	after := "read_only: true"
	if err == nil && len(paths) > 0 {
		after += ", tmpfs += [" + strings.Join(paths, ", ") + "]"
		_, k, v := lookup(svc, "tmpfs")
		if k == nil {
			items := make([]*value, len(paths))
			for i, pth := range paths {
				items[i] = str(pth)
			}
			cs = append(cs, &change{src: src, kind: opAddKey, node: svc, key: "tmpfs", val: seqOf(items...)})
		} else {
			seq, cerr := collection(src, k, v, yaml.SequenceNode)
			if cerr != nil {
				err = cerr
			}
			for _, pth := range paths {
				if seq != nil && !hasScalar(seq, pth) {
					cs = append(cs, &change{src: src, kind: opAppend, node: seq, val: str(pth)})
				}
			}
		}
	}
	if len(all) == 0 {
		after += " (no --tmpfs paths given: the service gets no writable path)"
	}
	p.note(w, "read-only-rootfs", false, line, src.path, after, err, cs...)
}

func hasScalar(seq *yaml.Node, v string) bool {
	for _, it := range seq.Content {
		if it.Kind == yaml.ScalarNode && it.Value == v {
			return true
		}
	}
	return false
}

// mountFor pairs a mount finding with the workload's mount: same position,
// and, where several mounts share it, the one the message names.
func mountFor(w *workload.Workload, f policy.Finding) (workload.Mount, bool) {
	var cands []workload.Mount
	for _, m := range w.Mounts {
		p := w.At(m.Pos)
		if p.File == f.File && p.Line == f.Line && p.Column == f.Column {
			cands = append(cands, m)
		}
	}
	if len(cands) == 1 {
		return cands[0], true
	}
	for _, m := range cands {
		if strings.Contains(f.Message, "→ "+m.Target+" ") || strings.Contains(f.Message, "→ "+m.Target+",") {
			return m, true
		}
	}
	return workload.Mount{}, false
}

// volumeItem finds the volumes: entry of a mount: at the mount's position
// when the entry there has the mount's target, else by target among the
// service's own volumes.
func (p *planner) volumeItem(m workload.Mount, src *source, svc *yaml.Node) (*source, *yaml.Node, error) {
	if m.Pos.Known() && m.Pos.Line > 0 {
		if msrc, err := p.files.get(m.Pos.File); err == nil {
			for _, n := range msrc.nodeAt(m.Pos.Line, m.Pos.Column) {
				if seq := msrc.parent[n]; seq != nil && seq.Kind == yaml.SequenceNode && isVolumesSeq(msrc, seq) && rawTarget(n) == path.Clean(m.Target) {
					return msrc, n, nil
				}
			}
		}
	}
	if _, k, v := lookup(svc, "volumes"); k != nil {
		if seq := resolve(v); seq != nil && seq.Kind == yaml.SequenceNode {
			for _, n := range seq.Content {
				if rawTarget(n) == path.Clean(m.Target) {
					return src, n, nil
				}
			}
		}
	}
	return nil, nil, declinef("cannot locate the volumes: entry for %s (an interpolated target?)", m.Target)
}

func isVolumesSeq(src *source, seq *yaml.Node) bool {
	m := src.parent[seq]
	if m == nil || m.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i+1] == seq {
			return m.Content[i].Value == "volumes"
		}
	}
	return false
}

// rawTarget reads the container path of a volumes: entry as written.
func rawTarget(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		if _, t := mapGet(n, "target"); t != nil && t.Kind == yaml.ScalarNode {
			return path.Clean(t.Value)
		}
	case yaml.ScalarNode:
		parts, _, err := splitVolume(n.Value)
		if err != nil {
			return ""
		}
		if len(parts) == 1 {
			return path.Clean(parts[0])
		}
		return path.Clean(parts[1])
	}
	return ""
}

var interpolation = regexp.MustCompile(`\$\$|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// splitVolume splits a short-syntax volume at its colons, leaving the
// colons inside ${VAR:-default} alone, and counts its interpolations.
func splitVolume(raw string) ([]string, int, error) {
	masked := []byte(raw)
	count := 0
	for _, loc := range interpolation.FindAllStringIndex(raw, -1) {
		if raw[loc[0]:loc[1]] != "$$" {
			count++
		}
		for i := loc[0]; i < loc[1]; i++ {
			masked[i] = 'x'
		}
	}
	var parts []string
	start := 0
	for i, c := range masked {
		if c == ':' {
			parts = append(parts, raw[start:i])
			start = i + 1
		}
	}
	parts = append(parts, raw[start:])
	if len(parts) >= 3 && len(parts[0]) == 1 && isLetter(parts[0][0]) {
		return nil, count, declinef("%q has a Windows drive letter", raw)
	}
	if len(parts) > 3 {
		return nil, count, declinef("%q has more than three fields", raw)
	}
	return parts, count, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// readOnlyVolume adds the ro option to a short-syntax volume.
func readOnlyVolume(raw string) (string, error) {
	parts, interp, err := splitVolume(raw)
	if err != nil {
		return "", err
	}
	switch {
	case interp > 1:
		return "", declinef("%q is built from several interpolations; add :ro by hand", raw)
	case len(parts) < 2:
		return "", declinef("%q is not a bind mount", raw)
	case len(parts) == 2:
		if interpolation.MatchString(parts[1]) && strings.Contains(parts[1], "$") {
			return "", declinef("%q takes its target from the environment; add :ro by hand", raw)
		}
		return raw + ":ro", nil
	}
	if strings.Contains(parts[2], "$") {
		return "", declinef("%q takes its mode from the environment; change the variable", raw)
	}
	opts := strings.Split(parts[2], ",")
	out := make([]string, 0, len(opts)+1)
	for _, o := range opts {
		switch o {
		case "rw":
			continue
		case "ro":
			return raw, nil
		}
		out = append(out, o)
	}
	out = append(out, "ro")
	return parts[0] + ":" + parts[1] + ":" + strings.Join(out, ","), nil
}

func (p *planner) planBindReadOnly(w *workload.Workload, f policy.Finding, src *source, svc *yaml.Node, socket map[workload.Position]bool) {
	m, ok := mountFor(w, f)
	if !ok {
		p.note(w, "bind-mount-readonly", false, f.Line, f.File, "", declinef("cannot pair the finding with a mount"))
		return
	}
	if socket[m.Pos] && p.opts.Unsafe {
		return // the socket mount is removed instead
	}
	msrc, item, err := p.volumeItem(m, src, svc)
	if err != nil {
		p.note(w, "bind-mount-readonly", false, f.Line, f.File, "", err)
		return
	}
	if item.Kind == yaml.MappingNode {
		if k, v := mapGet(item, "read_only"); k != nil {
			p.note(w, "bind-mount-readonly", false, k.Line, msrc.path, "read_only: true", p.checkLiteral(msrc, v), &change{src: msrc, kind: opSetScalar, node: v, text: "true", tag: "!!bool"})
			return
		}
		p.note(w, "bind-mount-readonly", false, item.Line, msrc.path, "read_only: true", nil, &change{src: msrc, kind: opAddKey, node: item, key: "read_only", val: boolean(true)})
		return
	}
	nv, err := readOnlyVolume(item.Value)
	p.note(w, "bind-mount-readonly", false, item.Line, msrc.path, nv, err, &change{src: msrc, kind: opSetScalar, node: item, text: nv})
}

// planSocket replaces a Docker socket mount with DOCKER_HOST pointing at
// the guard. It returns the mount's position so that the bind-mount edit
// of the same entry is left out.
func (p *planner) planSocket(w *workload.Workload, f policy.Finding, src *source, svc *yaml.Node) workload.Position {
	m, ok := mountFor(w, f)
	if !ok {
		p.note(w, "docker-socket", false, f.Line, f.File, "", declinef("cannot pair the finding with a mount"))
		return workload.Position{}
	}
	after := "DOCKER_HOST: " + p.opts.DockerHost + " instead of the socket mount"
	if !strings.HasSuffix(path.Clean(m.Source), ".sock") {
		p.note(w, "docker-socket", false, f.Line, f.File, "", declinef("%s is a directory that holds the Docker socket; narrow the mount by hand", m.Source))
		return workload.Position{}
	}
	msrc, item, err := p.volumeItem(m, src, svc)
	if err != nil {
		p.note(w, "docker-socket", false, f.Line, f.File, after, err)
		return m.Pos
	}
	seq := msrc.parent[item]
	owner := msrc.parent[seq]
	var cs []*change
	if owner != svc || msrc != src {
		p.note(w, "docker-socket", false, item.Line, msrc.path, after, declinef("the socket mount is shared with other services (an anchor or another file); replace it by hand"))
		return m.Pos
	}
	if p.opts.DockerHost == "" {
		p.note(w, "docker-socket", false, item.Line, msrc.path, "", declinef("pass --docker-host URL (the guard's endpoint)"))
		return m.Pos
	}
	if len(seq.Content) == 1 {
		k, _ := keyOfValue(svc, seq)
		cs = append(cs, &change{src: src, kind: opRemoveKey, node: svc, item: k})
	} else {
		cs = append(cs, &change{src: src, kind: opRemoveItem, node: seq, item: item})
	}
	_, ek, ev := lookup(svc, "environment")
	switch rv := resolve(ev); {
	case ek == nil:
		cs = append(cs, &change{src: src, kind: opAddKey, node: svc, key: "environment", val: mapOf("DOCKER_HOST", str(p.opts.DockerHost))})
	case rv != nil && rv.Kind == yaml.MappingNode && rv.Tag == "!!map":
		if k, _ := mapGet(rv, "DOCKER_HOST"); k != nil {
			err = declinef("%s:%d: DOCKER_HOST is already set; remove the socket mount by hand", src.path, k.Line)
		}
		cs = append(cs, &change{src: src, kind: opAddKey, node: rv, key: "DOCKER_HOST", val: str(p.opts.DockerHost)})
	case rv != nil && rv.Kind == yaml.SequenceNode && rv.Tag == "!!seq":
		for _, it := range rv.Content {
			if strings.HasPrefix(it.Value, "DOCKER_HOST=") || it.Value == "DOCKER_HOST" {
				err = declinef("%s:%d: DOCKER_HOST is already set; remove the socket mount by hand", src.path, it.Line)
			}
		}
		cs = append(cs, &change{src: src, kind: opAppend, node: rv, val: str("DOCKER_HOST=" + p.opts.DockerHost)})
	default:
		err = declinef("%s:%d: environment is neither a mapping nor a list", src.path, ek.Line)
	}
	if err == nil && resolve(ev) != nil && src.parent[resolve(ev)] != svc {
		err = declinef("%s:%d: the service's environment is shared (an anchor); add DOCKER_HOST by hand", src.path, ek.Line)
	}
	p.note(w, "docker-socket", false, item.Line, src.path, after, err, cs...)
	return m.Pos
}

func keyOfValue(m, v *yaml.Node) (*yaml.Node, bool) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i+1] == v {
			return m.Content[i], true
		}
	}
	return nil, false
}

var secretNameChars = regexp.MustCompile(`[^a-z0-9_]+`)

// planSecret moves a literal credential into a Docker secret: a file
// beside the compose file (mode 0600), a top-level secrets: entry, the
// service's secrets: list, and KEY_FILE=/run/secrets/NAME instead of the
// value. The value itself is never printed.
func (p *planner) planSecret(w *workload.Workload, f policy.Finding) {
	var env *workload.EnvVar
	for i := range w.Env {
		e := &w.Env[i]
		pos := w.At(e.Pos)
		if pos.File == f.File && pos.Line == f.Line && pos.Column == f.Column && strings.HasPrefix(f.Message, e.Key+" ") {
			env = e
			break
		}
	}
	decline := func(err error) { p.note(w, "secrets-in-env", false, f.Line, f.File, "", err) }
	switch {
	case env == nil:
		decline(declinef("cannot pair the finding with an environment variable"))
		return
	case !env.HasValue:
		decline(declinef("%s passes the host's value through; declare `secrets: NAME: environment: %s` and read it from /run/secrets/NAME", env.Key, env.Key))
		return
	case env.Interpolated:
		decline(declinef("%s takes its value from the host environment (%s); declare a secret from that variable (`secrets: NAME: environment: VAR`) by hand", env.Key, env.Raw))
		return
	case strings.HasSuffix(strings.ToUpper(env.Key), "_FILE"):
		decline(declinef("%s points at a file outside /run/secrets/; mount that file as a secret by hand", env.Key))
		return
	case env.Value == "":
		decline(declinef("%s is empty", env.Key))
		return
	}
	src, err := p.files.get(env.Pos.File)
	if err != nil {
		decline(err)
		return
	}
	// The variable must be written in the service's own mapping: moving a
	// shared (anchored) one would change other services.
	var node, coll, svc *yaml.Node
	for _, n := range src.nodeAt(env.Pos.Line, env.Pos.Column) {
		if c := src.parent[n]; c != nil && (c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode) {
			node, coll = n, c
			break
		}
	}
	if coll != nil {
		if m := src.parent[coll]; m != nil && m.Kind == yaml.MappingNode {
			if k, ok := keyOfValue(m, coll); ok && k.Value == "environment" && isServiceMapping(src, m) {
				svc = m
			}
		}
	}
	if svc == nil {
		decline(declinef("%s:%d: %s is not written in the service's own environment (an anchor?); move it by hand", src.path, env.Pos.Line, env.Key))
		return
	}
	// A name no other edit claimed, whose file and declaration, if they
	// exist, hold this very value.
	base := strings.Trim(secretNameChars.ReplaceAllString(strings.ToLower(w.Name+"_"+env.Key), "_"), "_")
	_, decls := mapGet(src.root, "secrets")
	decls = resolve(decls)
	var name, rel, file string
	exists := false
	for i := 1; i <= 100 && name == ""; i++ {
		cand := base
		if i > 1 {
			cand = fmt.Sprintf("%s_%d", base, i)
		}
		r := "./secrets/" + cand + ".txt"
		f := filepath.Join(filepath.Dir(src.path), "secrets", cand+".txt")
		if decls != nil && decls.Kind == yaml.MappingNode {
			if dk, dv := mapGet(decls, cand); dk != nil {
				if _, fv := mapGet(resolve(dv), "file"); fv == nil || path.Clean(fv.Value) != path.Clean(r) {
					continue
				}
			}
		}
		same := false
		if b, err := os.ReadFile(f); err == nil {
			if !bytes.Equal(b, []byte(env.Value)) {
				continue
			}
			same = true
		}
		if p.files.claim(f) {
			name, rel, file, exists = cand, r, f, same
		}
	}
	if name == "" {
		decline(declinef("no free secret name for %s", env.Key))
		return
	}
	newKey := env.Key + "_FILE"
	var cs []*change
	if coll.Kind == yaml.MappingNode {
		if k, _ := mapGet(coll, newKey); k != nil {
			decline(declinef("%s:%d: %s is already set", src.path, k.Line, newKey))
			return
		}
		k, _ := keyOfValue(coll, node)
		if k == nil || k.Value != env.Key {
			decline(declinef("%s:%d: cannot locate %s", src.path, env.Pos.Line, env.Key))
			return
		}
		cs = append(cs, &change{src: src, kind: opSetScalar, node: k, text: newKey},
			&change{src: src, kind: opSetScalar, node: node, text: secretsRoot + name})
	} else {
		for _, it := range coll.Content {
			if strings.HasPrefix(it.Value, newKey+"=") || it.Value == newKey {
				decline(declinef("%s:%d: %s is already set", src.path, it.Line, newKey))
				return
			}
		}
		cs = append(cs, &change{src: src, kind: opSetScalar, node: node, text: newKey + "=" + secretsRoot + name})
	}
	// The service's secrets: list.
	switch _, k, v := lookup(svc, "secrets"); {
	case k == nil:
		cs = append(cs, &change{src: src, kind: opAddKey, node: svc, key: "secrets", val: seqOf(str(name))})
	default:
		seq, err := collection(src, k, v, yaml.SequenceNode)
		if err == nil && src.parent[seq] != svc {
			err = declinef("%s:%d: the service's secrets: list is shared (an anchor); add %s by hand", src.path, k.Line, name)
		}
		if err != nil {
			decline(err)
			return
		}
		cs = append(cs, &change{src: src, kind: opAppend, node: seq, val: str(name)})
	}
	// The top-level declaration.
	decl := mapOf("file", str(rel))
	switch k, v := mapGet(src.root, "secrets"); {
	case k == nil:
		cs = append(cs, &change{src: src, kind: opAddKey, node: src.root, key: "secrets", val: mapOf(name, decl)})
	default:
		m, err := collection(src, k, v, yaml.MappingNode)
		if err != nil {
			decline(err)
			return
		}
		if dk, _ := mapGet(m, name); dk == nil {
			cs = append(cs, &change{src: src, kind: opAddKey, node: m, key: name, val: decl})
		}
	}
	sf := &SecretFile{Path: file, value: env.Value, Exists: exists}
	e := p.note(w, "secrets-in-env", false, env.Pos.Line, src.path, newKey+": "+secretsRoot+name+" (value moved to "+rel+", mode 0600)", nil, cs...)
	e.Before = env.Key + ": <redacted>"
	if e.Applied {
		sf.edit = e
		p.secrets = append(p.secrets, sf)
		for _, c := range cs {
			c.redact = env.Value
		}
	}
}

// isServiceMapping reports whether m is a service's own mapping in its
// file (not an anchor merged into it).
func isServiceMapping(src *source, m *yaml.Node) bool {
	_, svcs := mapGet(src.root, "services")
	if svcs == nil || svcs.Kind != yaml.MappingNode {
		return false
	}
	for i := 1; i < len(svcs.Content); i += 2 {
		if svcs.Content[i] == m {
			return true
		}
	}
	return false
}
