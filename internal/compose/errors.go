package compose

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/format"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// compose-go's messages name services and keys but rarely a file or line.
// explainLoadError finds the node a message is about in the parsed files
// and returns a ParseError at its line; a message it cannot place keeps
// the project's first file.

var (
	located         = regexp.MustCompile(`\.ya?ml:[0-9]+`)
	falseSchema     = regexp.MustCompile(`services\.(\S+?)\.([A-Za-z0-9_]+) false schema`)
	additionalProp  = regexp.MustCompile(`[Aa]dditional propert(?:y|ies) '?([^' ]+)'? (?:(?:is|are) )?not allowed`)
	undefinedRef    = regexp.MustCompile(`service "([^"]+)" refers to undefined (volume|network|secret|config) (\S+?):? `)
	undefinedDep    = regexp.MustCompile(`service "([^"]+)" depends on undefined service "?([^":]+)"?`)
	missingEnvFile  = regexp.MustCompile(`env file (\S+) not found`)
	requiredVar     = regexp.MustCompile(`required variable ([A-Za-z_][A-Za-z0-9_]*) is missing a value`)
	dependencyCycle = regexp.MustCompile(`dependency cycle detected: (\S+) -> (\S+)`)
	missingFile     = regexp.MustCompile(`open (\S+?): no such file or directory`)
	resourcePath    = regexp.MustCompile(`\b(volumes|networks|secrets|configs)\.([^.\s:]+)\.([A-Za-z0-9_]+)`)
	quotedValue     = regexp.MustCompile(`parsing "([^"]*)"`)
	invalidVolume   = regexp.MustCompile(`invalid spec: (.+?): (?:empty section between colons|invalid mode|too many colons|invalid volume specification)`)
	portErrorPrefix = []string{"invalid IP address", "invalid hostPort", "invalid containerPort", "invalid port", "invalid proto", "invalid range", "ports "}
)

// relatedFiles are the documents an error may be about: the project's
// files, the files they include and the bases they extend.
func relatedFiles(cache *loadCache, top []*yamlFile) []*yamlFile {
	var out []*yamlFile
	seen := map[*yamlFile]bool{}
	var add func(f *yamlFile, depth int)
	add = func(f *yamlFile, depth int) {
		if f == nil || seen[f] || depth > 16 {
			return
		}
		seen[f] = true
		out = append(out, f.documents()...)
		includes, extends := f.referenced()
		for _, p := range append(includes, extends...) {
			if g, err := cache.get(p); err == nil {
				add(g, depth+1)
			}
		}
	}
	for _, f := range top {
		add(f, 0)
	}
	return out
}

// explainLoadError places err at a file and line.
func explainLoadError(err error, docs []*yamlFile, env types.Mapping) error {
	msg := trimValidating(err.Error())
	for _, f := range docs {
		if located.MatchString(msg) && strings.Contains(msg, f.path+":") {
			return err // already located
		}
	}
	at := func(f *yamlFile, n *yaml.Node, text string) error {
		return &ParseError{File: f.path, Line: n.Line, Column: n.Column, Msg: text}
	}
	first := strings.SplitN(msg, "\n", 2)[0]
	in := newInterpolator(env)
	text := func(n *yaml.Node) string {
		n = resolve(n)
		if n == nil || n.Kind != yaml.ScalarNode {
			return ""
		}
		if strings.Contains(n.Value, "$") {
			if r, err := in.opts.Substitute(n.Value, template.Mapping(in.opts.LookupValue)); err == nil {
				return r
			}
		}
		return n.Value
	}

	if m := falseSchema.FindStringSubmatch(first); m != nil {
		// The schema's way of saying "no such key".
		if f, svc := findService(docs, m[1]); svc != nil {
			if k, _ := flatGetKV(svc, m[2]); k != nil {
				return at(f, k, fmt.Sprintf("service %s: unknown key %s (not in the compose specification)", m[1], m[2]))
			}
		}
	}
	if m := undefinedRef.FindStringSubmatch(first); m != nil {
		field := map[string]string{"volume": "volumes", "network": "networks", "secret": "secrets", "config": "configs"}[m[2]]
		if f, n := findItem(docs, m[1], field, func(it *yaml.Node) bool { return refersTo(it, m[2], m[3], text) }); n != nil {
			return at(f, n, msg)
		}
	}
	if m := undefinedDep.FindStringSubmatch(first); m != nil {
		if f, n := findItem(docs, m[1], "depends_on", func(it *yaml.Node) bool { return text(it) == m[2] }); n != nil {
			return at(f, n, msg)
		}
	}
	if m := missingEnvFile.FindStringSubmatch(first); m != nil {
		for _, f := range docs {
			for name := range f.services {
				if g, n := findItem([]*yamlFile{f}, name, "env_file", func(it *yaml.Node) bool {
					p := text(it)
					if it.Kind == yaml.MappingNode {
						p = text(flatGet(it, "path"))
					}
					return p != "" && absJoin(dirOf(f), p) == m[1]
				}); n != nil {
					return at(g, n, msg)
				}
			}
		}
	}
	if m := requiredVar.FindStringSubmatch(first); m != nil {
		if f, n := findScalar(docs, func(s string) bool {
			return strings.Contains(s, "${"+m[1]+":?") || strings.Contains(s, "${"+m[1]+"?")
		}); n != nil {
			return at(f, n, msg)
		}
	}
	if m := dependencyCycle.FindStringSubmatch(first); m != nil {
		if f, n := findItem(docs, m[1], "depends_on", func(it *yaml.Node) bool { return text(it) == m[2] }); n != nil {
			return at(f, n, msg)
		}
	}
	if m := missingFile.FindStringSubmatch(first); m != nil {
		// An include or extends file that does not exist.
		for _, f := range docs {
			if _, n := findScalar([]*yamlFile{f}, func(s string) bool { return s != "" && absJoin(dirOf(f), s) == m[1] }); n != nil {
				return at(f, n, msg)
			}
		}
	}
	if m := resourcePath.FindStringSubmatch(first); m != nil && !strings.Contains(first, "services.") {
		for _, f := range docs {
			if sec := resolve(mapValue(f.root, m[1])); sec != nil {
				if k, _ := flatGetKV(resolve(mapValue(sec, m[2])), m[3]); k != nil {
					return at(f, k, msg)
				}
			}
		}
	}
	if m := invalidVolume.FindStringSubmatch(first); m != nil {
		if f, n := findAnyItem(docs, "volumes", func(it *yaml.Node) bool { return it.Kind == yaml.ScalarNode && text(it) == m[1] }); n != nil {
			return at(f, n, "invalid volume: "+msg)
		}
	}
	for _, prefix := range portErrorPrefix {
		if !strings.HasPrefix(first, prefix) {
			continue
		}
		if f, n := findAnyItem(docs, "ports", func(it *yaml.Node) bool {
			if it.Kind != yaml.ScalarNode {
				return false
			}
			_, err := types.ParsePortConfig(text(it))
			return err != nil && err.Error() == first
		}); n != nil {
			return at(f, n, "invalid port: "+msg)
		}
	}
	if m := additionalProp.FindStringSubmatch(first); m != nil {
		if f, svc := findServiceIn(docs, first); svc != nil {
			if k, _ := flatGetKV(svc, m[1]); k != nil {
				return at(f, k, msg)
			}
		}
		for _, f := range docs {
			if k := f.topLevelKey(m[1]); k != nil {
				return at(f, k, msg)
			}
		}
	}
	// A message about services.NAME[.key]: the key, else the service.
	if f, name := findServiceNameIn(docs, first); f != nil {
		rest := strings.TrimPrefix(first[strings.Index(first, "services."+name)+len("services."+name):], ".")
		key, _, _ := strings.Cut(rest, ".")
		key = strings.TrimRight(key, ":[] ")
		if svc := f.services[name]; svc != nil && key != "" {
			if k, v := flatGetKV(svc, key); k != nil {
				// A cast error quotes the value: point at it.
				if q := quotedValue.FindStringSubmatch(first); q != nil {
					if n := scalarUnder(v, func(s string) bool { return s == q[1] }); n != nil {
						return at(f, n, msg)
					}
				}
				return at(f, k, msg)
			}
		}
		return at(f, f.serviceKeys[name], msg)
	}
	if len(docs) > 0 {
		return &ParseError{File: docs[0].path, Msg: msg}
	}
	return err
}

func dirOf(f *yamlFile) string { return filepath.Dir(f.path) }

func trimValidating(msg string) string {
	if strings.HasPrefix(msg, "validating ") {
		if i := strings.Index(msg, ": "); i >= 0 {
			return msg[i+2:]
		}
	}
	return msg
}

// findService finds a service's mapping by name.
func findService(docs []*yamlFile, name string) (*yamlFile, *yaml.Node) {
	for _, f := range docs {
		if svc := f.services[name]; svc != nil {
			return f, svc
		}
	}
	return nil, nil
}

// findServiceNameIn finds the longest service name that a message writes
// as "services.NAME" (names may hold dots: services.wazuh.dashboard).
func findServiceNameIn(docs []*yamlFile, msg string) (*yamlFile, string) {
	var best *yamlFile
	bestName := ""
	for _, f := range docs {
		names := make([]string, 0, len(f.serviceKeys))
		for n := range f.serviceKeys {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			i := strings.Index(msg, "services."+n)
			if i < 0 || len(n) <= len(bestName) {
				continue
			}
			if end := i + len("services."+n); end < len(msg) && !strings.ContainsRune(".: [", rune(msg[end])) {
				continue // a longer name that only starts like this one
			}
			best, bestName = f, n
		}
	}
	return best, bestName
}

func findServiceIn(docs []*yamlFile, msg string) (*yamlFile, *yaml.Node) {
	if f, name := findServiceNameIn(docs, msg); f != nil {
		return f, f.services[name]
	}
	return nil, nil
}

// findItem finds the first item of service.field (a list, or a mapping's
// keys) that match accepts.
func findItem(docs []*yamlFile, service, field string, match func(*yaml.Node) bool) (*yamlFile, *yaml.Node) {
	for _, f := range docs {
		svc := f.services[service]
		if svc == nil {
			continue
		}
		n := resolve(flatGet(svc, field))
		if n == nil {
			continue
		}
		switch n.Kind {
		case yaml.SequenceNode:
			for _, it := range n.Content {
				if match(resolve(it)) {
					return f, resolve(it)
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if match(n.Content[i]) {
					return f, n.Content[i]
				}
			}
		case yaml.ScalarNode:
			if match(n) {
				return f, n
			}
		}
	}
	return nil, nil
}

// findAnyItem is findItem over every service.
func findAnyItem(docs []*yamlFile, field string, match func(*yaml.Node) bool) (*yamlFile, *yaml.Node) {
	for _, f := range docs {
		names := make([]string, 0, len(f.services))
		for n := range f.services {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if g, it := findItem([]*yamlFile{f}, n, field, match); it != nil {
				return g, it
			}
		}
	}
	return nil, nil
}

// findScalar finds the first scalar (in document order) whose text match
// accepts.
func findScalar(docs []*yamlFile, match func(string) bool) (*yamlFile, *yaml.Node) {
	for _, f := range docs {
		if n := scalarUnder(f.root, match); n != nil {
			return f, n
		}
	}
	return nil, nil
}

// scalarUnder finds the first scalar under n whose text match accepts;
// aliases are not followed (the anchored node is found where it is written).
func scalarUnder(n *yaml.Node, match func(string) bool) *yaml.Node {
	var walk func(n *yaml.Node, depth int) *yaml.Node
	walk = func(n *yaml.Node, depth int) *yaml.Node {
		if n == nil || n.Kind == yaml.AliasNode || depth > maxNodeDepth {
			return nil
		}
		if n.Kind == yaml.ScalarNode && match(n.Value) {
			return n
		}
		for _, c := range n.Content {
			if r := walk(c, depth+1); r != nil {
				return r
			}
		}
		return nil
	}
	return walk(n, 0)
}

// refersTo reports whether a volumes/networks/secrets/configs item names
// the resource.
func refersTo(it *yaml.Node, kind, name string, text func(*yaml.Node) string) bool {
	switch {
	case it.Kind == yaml.MappingNode && kind == "network":
		return false // a networks mapping's keys are matched by findItem
	case it.Kind == yaml.MappingNode:
		return text(flatGet(it, "source")) == name
	case kind == "volume":
		v, err := format.ParseVolume(text(it))
		return err == nil && v.Source == name
	}
	return text(it) == name
}

// topLevelKey returns a top-level key node, nil if absent.
func (f *yamlFile) topLevelKey(key string) *yaml.Node {
	for i := 0; i+1 < len(f.root.Content); i += 2 {
		if f.root.Content[i].Value == key {
			return f.root.Content[i]
		}
	}
	return nil
}
