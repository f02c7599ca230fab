package compose

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/safefile"
	"github.com/hy-home/hyhome/internal/yamlerr"
)

// BaselineAnchor is the anchor name SPEC-SYS-01 §4 prescribes.
const BaselineAnchor = "security-baseline"

// DefaultMaxFileSize bounds a compose file unless Options.MaxFileSize
// says otherwise (`hyhome lint --max-file-size`); larger input is refused,
// not parsed, so that a stray multi-gigabyte YAML file cannot exhaust memory.
const DefaultMaxFileSize = 16 << 20

// yamlFile is one compose file parsed once: its node tree (for positions
// and anchors) and the plain value handed to compose-go.
type yamlFile struct {
	path string
	root *yaml.Node // the top-level mapping
	// services maps a service name to its mapping node (aliases resolved),
	// serviceKeys every service name (a mapping or not) to the key node
	// that names it; both include services a `<<` merge brings in.
	services    map[string]*yaml.Node
	serviceKeys map[string]*yaml.Node
	// defines reports whether the file defines the &security-baseline anchor.
	definesBaseline bool
	// rawTags is true when the file uses !reset/!override, which compose-go
	// implements in its own YAML pass: it is then given the bytes.
	rawTags bool
	content []byte
	// config is the decoded document with x-* blocks removed, made on first
	// use: the fast path reads services from the nodes and never needs it.
	configOnce sync.Once
	config     map[string]any
	configErr  error
	// includes and extendsFiles are files this document pulls in (absolute).
	includes     []string
	extendsFiles []string
	// more are the file's later YAML documents (the first is f itself).
	more []*yamlFile
}

// ParseError is a YAML or structure error at a position in a file.
type ParseError struct {
	File   string
	Line   int
	Column int // 0 when unknown
	Msg    string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// readFile reads and parses a compose file. Only regular files are read
// (a FIFO would block, a device could be endless).
func readFile(path string, limit int64) (*yamlFile, error) {
	if limit <= 0 {
		limit = DefaultMaxFileSize
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file", path)
		}
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a compose file", path)
	}
	b, err := safefile.ReadFile(path, limit)
	if errors.Is(err, safefile.ErrTooLarge) {
		return nil, &ParseError{File: path, Msg: fmt.Sprintf("larger than the %s limit on compose files (--max-file-size raises it)", humanBytes(limit))}
	}
	if err != nil {
		return nil, fmt.Errorf("reading compose file: %w", err)
	}
	return parseFile(path, b)
}

// parseFile parses compose YAML. Errors name the file and line.
func parseFile(path string, b []byte) (f *yamlFile, err error) {
	// The YAML library is third-party code fed untrusted input: a panic in
	// it must become an error naming the file, never a crash.
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, &ParseError{File: path, Msg: fmt.Sprintf("cannot parse YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	// A file may hold several YAML documents; compose-go merges them in
	// order, as it merges -f files. Each document is a part of its own.
	for n := 1; ; n++ {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, yamlError(path, err)
		}
		part, err := parseDocument(path, b, &doc, n)
		if err != nil {
			return nil, err
		}
		if f == nil {
			f = part
		} else {
			f.more = append(f.more, part)
		}
	}
	if f == nil {
		return nil, &ParseError{File: path, Msg: "empty compose file"}
	}
	return f, nil
}

// parseDocument reads the n-th document of a file.
func parseDocument(path string, b []byte, doc *yaml.Node, n int) (*yamlFile, error) {
	f := &yamlFile{path: path, content: b, services: map[string]*yaml.Node{}, serviceKeys: map[string]*yaml.Node{}}
	if len(doc.Content) == 0 || resolve(doc.Content[0]).Tag == "!!null" {
		if n == 1 {
			return nil, &ParseError{File: path, Line: doc.Line, Msg: "empty compose file"}
		}
		return nil, &ParseError{File: path, Line: doc.Line, Msg: fmt.Sprintf("YAML document %d is empty: every document of a compose file must be a mapping", n)}
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, &ParseError{File: path, Line: root.Line, Msg: "the top level of a compose file must be a mapping"}
	}
	if err := duplicateKey(path, doc.Content[0], 0); err != nil {
		return nil, err
	}
	f.root = root
	f.definesBaseline = definesAnchor(root, BaselineAnchor)
	if svcs := mapValue(root, "services"); svcs != nil {
		svcs = resolve(svcs)
		for _, e := range mergedEntries(svcs) {
			f.serviceKeys[e.key.Value] = e.key
			if v := resolve(e.value); v != nil && v.Kind == yaml.MappingNode {
				f.services[e.key.Value] = v
			}
		}
	}
	dir := filepath.Dir(path)
	f.includes = includePaths(root, dir)
	for _, svc := range f.services {
		if ext := flatGet(svc, "extends"); ext != nil {
			ext = resolve(ext)
			if file := flatGet(ext, "file"); ext.Kind == yaml.MappingNode && file != nil && file.Kind == yaml.ScalarNode {
				f.extendsFiles = append(f.extendsFiles, absJoin(dir, file.Value))
			}
		}
	}
	f.rawTags = hasTag(root, "!reset") || hasTag(root, "!override")
	return f, nil
}

// documents are the file's YAML documents in order (later ones override
// earlier ones, as compose-go merges them).
func (f *yamlFile) documents() []*yamlFile {
	return append([]*yamlFile{f}, f.more...)
}

// referenced lists the files any document of f includes or extends.
func (f *yamlFile) referenced() (includes, extends []string) {
	for _, d := range f.documents() {
		includes = append(includes, d.includes...)
		extends = append(extends, d.extendsFiles...)
	}
	return includes, extends
}

// duplicateKey finds a mapping that writes one key twice, the way the YAML
// library's decoder does (same node kind and value, merge keys included) and
// docker compose refuses ("mapping key already defined"). Every path must
// refuse it: the fast path reads nodes, where a duplicate is silently one of
// two definitions, and a second `services:` block could hide a privileged
// service. Aliases are not followed: the node they name is checked where it
// is written.
func duplicateKey(path string, n *yaml.Node, depth int) error {
	if n == nil || n.Kind == yaml.AliasNode || depth > maxNodeDepth {
		return nil
	}
	if n.Kind == yaml.MappingNode {
		if err := duplicateInMapping(path, n); err != nil {
			return err
		}
	}
	for _, c := range n.Content {
		if err := duplicateKey(path, c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// maxNodeDepth bounds the walk; the YAML library refuses deeper documents.
const maxNodeDepth = 10000

func duplicateInMapping(path string, m *yaml.Node) error {
	type id struct {
		kind  yaml.Kind
		value string
	}
	// Small mappings (most of them) are compared pairwise, without a map.
	if len(m.Content) <= 32 {
		for i := 0; i+1 < len(m.Content); i += 2 {
			ki := m.Content[i]
			for j := i + 2; j+1 < len(m.Content); j += 2 {
				if kj := m.Content[j]; kj.Kind == ki.Kind && kj.Value == ki.Value {
					return duplicateError(path, ki, kj)
				}
			}
		}
		return nil
	}
	seen := make(map[id]*yaml.Node, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if first, dup := seen[id{k.Kind, k.Value}]; dup {
			return duplicateError(path, first, k)
		}
		seen[id{k.Kind, k.Value}] = k
	}
	return nil
}

func duplicateError(path string, first, again *yaml.Node) error {
	return &ParseError{File: path, Line: again.Line,
		Msg: fmt.Sprintf("invalid YAML: mapping key %q already defined at line %d", again.Value, first.Line)}
}

// decoded returns the document as compose-go takes it (x-* blocks removed).
func (f *yamlFile) decoded() (map[string]any, error) {
	f.configOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				f.configErr = &ParseError{File: f.path, Msg: fmt.Sprintf("cannot decode YAML: %v", r)}
			}
		}()
		var v any
		if err := f.root.Decode(&v); err != nil {
			f.configErr = yamlError(f.path, err)
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			f.configErr = &ParseError{File: f.path, Line: f.root.Line, Msg: "the top level of a compose file must be a mapping with string keys"}
			return
		}
		stripExtensions(m)
		f.config = m
	})
	return f.config, f.configErr
}

// yamlError turns a YAML library error into "file:line: message".
func yamlError(path string, err error) error {
	at := yamlerr.First(err)
	return &ParseError{File: path, Line: at.Line, Msg: "invalid YAML: " + at.Message}
}

// stripExtensions drops x-* blocks that no rule reads, at the top level and
// in services. Anchors inside them were already expanded by decoding, so
// nothing that references them is lost; compose-go does not spend time
// walking and interpolating them (DESIGN.md: 57% of its load time on large
// x-* blocks).
func stripExtensions(m map[string]any) {
	for k := range m {
		if strings.HasPrefix(k, "x-") {
			delete(m, k)
		}
	}
	if svcs, ok := m["services"].(map[string]any); ok {
		for _, s := range svcs {
			if sm, ok := s.(map[string]any); ok {
				for k := range sm {
					if strings.HasPrefix(k, "x-") {
						delete(sm, k)
					}
				}
			}
		}
	}
}

func absJoin(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// includePaths reads `include:` entries: a path, or a mapping whose `path`
// is a string or a list.
func includePaths(root *yaml.Node, dir string) []string {
	inc := mapValue(root, "include")
	if inc == nil {
		return nil
	}
	inc = resolve(inc)
	var out []string
	add := func(n *yaml.Node) {
		n = resolve(n)
		switch n.Kind {
		case yaml.ScalarNode:
			if n.Value != "" {
				out = append(out, absJoin(dir, n.Value))
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				if c = resolve(c); c.Kind == yaml.ScalarNode {
					out = append(out, absJoin(dir, c.Value))
				}
			}
		}
	}
	if inc.Kind != yaml.SequenceNode {
		return nil
	}
	for _, e := range inc.Content {
		e = resolve(e)
		switch e.Kind {
		case yaml.ScalarNode:
			add(e)
		case yaml.MappingNode:
			if p := mapValue(e, "path"); p != nil {
				add(p)
			}
		}
	}
	return out
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return resolve(n.Content[0])
	}
	return n
}

// mapValue returns the value of key in a mapping, ignoring merge keys.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i].Tag != "!!merge" {
			return m.Content[i+1]
		}
	}
	return nil
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "!!merge" || k.Tag == "" || k.Tag == "!!str" && k.Style == 0)
}

// mergeSources returns the mappings a mapping merges with `<<`, in
// precedence order (earlier wins, as YAML merge keys specify).
func mergeSources(m *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !isMergeKey(m.Content[i]) {
			continue
		}
		v := m.Content[i+1]
		switch rv := resolve(v); rv.Kind {
		case yaml.MappingNode:
			out = append(out, rv)
		case yaml.SequenceNode:
			for _, c := range rv.Content {
				if rc := resolve(c); rc.Kind == yaml.MappingNode {
					out = append(out, rc)
				}
			}
		}
	}
	return out
}

// flatGetKV looks key up in a mapping the way a merge-aware decoder sees it:
// explicit keys first, then merged mappings in order. It returns the key
// and value nodes where they are written.
func flatGetKV(m *yaml.Node, key string) (k, v *yaml.Node) {
	return flatGetDepth(m, key, 0)
}

func flatGetDepth(m *yaml.Node, key string, depth int) (k, v *yaml.Node) {
	if m == nil || depth > 32 {
		return nil, nil
	}
	m = resolve(m)
	if m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !isMergeKey(m.Content[i]) && m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	for _, src := range mergeSources(m) {
		if k, v := flatGetDepth(src, key, depth+1); k != nil {
			return k, v
		}
	}
	return nil, nil
}

// entry is one key and its value in a mapping.
type entry struct{ key, value *yaml.Node }

// mergedEntries lists a mapping's entries as a merge-aware decoder sees
// them: explicit keys first, then the keys merged mappings add, earlier
// merges first. Each entry keeps the nodes where it is written.
func mergedEntries(m *yaml.Node) []entry {
	var out []entry
	seen := map[string]bool{}
	var walk func(m *yaml.Node, depth int)
	walk = func(m *yaml.Node, depth int) {
		m = resolve(m)
		if m == nil || m.Kind != yaml.MappingNode || depth > 32 {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := m.Content[i]
			if isMergeKey(k) || seen[k.Value] {
				continue
			}
			seen[k.Value] = true
			out = append(out, entry{k, m.Content[i+1]})
		}
		for _, src := range mergeSources(m) {
			walk(src, depth+1)
		}
	}
	walk(m, 0)
	return out
}

func flatGet(m *yaml.Node, key string) *yaml.Node {
	_, v := flatGetKV(m, key)
	return v
}

// mergesAnchor reports whether a mapping merges the anchored node name,
// directly or through the mappings it merges.
func mergesAnchor(m *yaml.Node, name string, depth int) bool {
	if m == nil || depth > 32 {
		return false
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !isMergeKey(m.Content[i]) {
			continue
		}
		v := m.Content[i+1]
		var refs []*yaml.Node
		if v.Kind == yaml.SequenceNode {
			refs = v.Content
		} else {
			refs = []*yaml.Node{v}
		}
		for _, r := range refs {
			target := resolve(r)
			if r.Kind == yaml.AliasNode && r.Alias != nil && r.Alias.Anchor == name || target != nil && target.Anchor == name {
				return true
			}
			if target != nil && mergesAnchor(target, name, depth+1) {
				return true
			}
		}
	}
	return false
}

// definesAnchor reports whether any node in the tree carries the anchor.
func definesAnchor(n *yaml.Node, name string) bool {
	if n == nil {
		return false
	}
	if n.Anchor == name {
		return true
	}
	if n.Kind == yaml.AliasNode {
		return false
	}
	for _, c := range n.Content {
		if definesAnchor(c, name) {
			return true
		}
	}
	return false
}

func hasTag(n *yaml.Node, tag string) bool {
	if n == nil || n.Kind == yaml.AliasNode {
		return false
	}
	if n.Tag == tag {
		return true
	}
	for _, c := range n.Content {
		if hasTag(c, tag) {
			return true
		}
	}
	return false
}

// humanBytes renders a size the way --max-file-size takes it.
func humanBytes(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.unit)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
