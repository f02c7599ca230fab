package compose

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/format"
	interp "github.com/compose-spec/compose-go/v2/interpolation"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/paths"
	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/tree"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// The fast path.
//
// compose-go's loader walks every value of a project through generic,
// path-matching passes (interpolation casts, canonical transforms, path
// resolution, defaults, schema validation, mapstructure); on two cores that
// caps linting at about a thousand services a second, most of it spent on
// fields no rule reads. For the common case — one file, no include, no
// extends, no !reset/!override, no env_file/label_file, consistent
// references — fastProject builds the same types.Project from the parsed
// file with compose-go's own building blocks (template substitution and
// type casts through its interpolation package, format.ParseVolume,
// types.ParsePortConfig, the types' own decoders, paths.ExpandUser), only for
// the fields the rules read. Anything it does not recognise — an unknown
// key, an unexpected type, an interpolation or parse error, a dangling
// reference — makes it decline, and the project goes through compose-go's
// full pipeline, which then reports the problem in its own words. A
// differential test (TestFastPathMatchesComposeGo) holds the two paths equal
// on every fixture and on the real corpus.
//
// What the fast path does not do is validate values of fields no rule reads
// (e.g. a malformed `logging:` block); `hyhome lint --validate` sends every
// project through compose-go's full validation.

// serviceKeys are the keys the compose specification allows in a service,
// read from compose-go's embedded JSON schema.
var serviceKeys = sync.OnceValue(func() map[string]bool {
	type def struct {
		Properties map[string]json.RawMessage `json:"properties"`
		AllOf      []struct {
			Ref string `json:"$ref"`
		} `json:"allOf"`
	}
	var s struct {
		Defs map[string]def `json:"$defs"`
	}
	keys := map[string]bool{}
	if err := json.Unmarshal([]byte(schema.Schema), &s); err != nil {
		return keys // an empty set makes every project take the full path
	}
	// A service is its own properties plus those of the specs it composes
	// (allOf: container_spec, workload_spec).
	var collect func(name string, depth int)
	collect = func(name string, depth int) {
		d, ok := s.Defs[name]
		if !ok || depth > 8 {
			return
		}
		for k := range d.Properties {
			keys[k] = true
		}
		for _, a := range d.AllOf {
			collect(strings.TrimPrefix(a.Ref, "#/$defs/"), depth+1)
		}
	}
	collect("service", 0)
	return keys
})

// topLevelKeys the fast path handles; include needs compose-go.
var topLevelKeys = map[string]bool{"version": true, "name": true, "services": true, "networks": true, "volumes": true, "secrets": true, "configs": true, "models": true}

// needsFullPath are service keys whose semantics need compose-go: other
// files, or services merged from elsewhere.
var needsFullPath = map[string]bool{"extends": true, "env_file": true, "label_file": true}

// castPatterns are compose-go's type casts (services.*.privileged → bool,
// ...), split once and indexed by their last element, so that a value's
// path is compared only with the patterns that can match it.
var castPatterns = sync.OnceValue(func() map[string][][]string {
	opts := loader.ToOptions(&types.ConfigDetails{}, nil)
	out := map[string][][]string{}
	for p := range opts.Interpolate.TypeCastMapping {
		parts := strings.Split(string(p), ".")
		last := parts[len(parts)-1]
		out[last] = append(out[last], parts)
	}
	return out
})

func isCastPath(p []string) bool {
	if len(p) == 0 {
		return false
	}
	idx := castPatterns()
	last := p[len(p)-1]
	return matchAny(idx[last], p) || matchAny(idx[tree.PathMatchAll], p) || last == tree.PathMatchList && matchAny(idx[tree.PathMatchList], p)
}

func matchAny(patterns [][]string, p []string) bool {
	for _, pat := range patterns {
		if len(pat) != len(p) {
			continue
		}
		ok := true
		for i := range pat {
			if pat[i] != p[i] && pat[i] != tree.PathMatchAll {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// interpolator runs compose-go's interpolation on single values.
type interpolator struct {
	opts interp.Options
}

func newInterpolator(env types.Mapping) *interpolator {
	o := loader.ToOptions(&types.ConfigDetails{Environment: env}, nil)
	return &interpolator{opts: *o.Interpolate}
}

// value interpolates and casts one string at path p exactly as compose-go
// would, by handing compose-go a map holding only that value.
func (in *interpolator) value(p []string, s string) (any, error) {
	var leaf any = s
	for i := len(p) - 1; i >= 1; i-- {
		if p[i] == tree.PathMatchList {
			leaf = []any{leaf}
		} else {
			leaf = map[string]any{p[i]: leaf}
		}
	}
	out, err := interp.Interpolate(map[string]any{p[0]: leaf}, in.opts)
	if err != nil {
		return nil, err
	}
	var cur any = out[p[0]]
	for i := 1; i < len(p); i++ {
		if p[i] == tree.PathMatchList {
			cur = cur.([]any)[0]
		} else {
			cur = cur.(map[string]any)[p[i]]
		}
	}
	return cur, nil
}

// walk interpolates every string of v in place: those with a `$` and those
// at a cast path. It reports false on any error (the full path reports it).
func (in *interpolator) walk(v any, p []string) (any, bool) {
	switch x := v.(type) {
	case string:
		cast := isCastPath(p)
		switch {
		case cast:
			r, err := in.value(append([]string(nil), p...), x)
			return r, err == nil
		case strings.Contains(x, "$"):
			// What compose-go's interpolation does for a value no cast
			// applies to: its substitution function, nothing more.
			r, err := in.opts.Substitute(x, template.Mapping(in.opts.LookupValue))
			return r, err == nil
		}
		return x, true
	case map[string]any:
		for k, e := range x {
			r, ok := in.walk(e, append(p, k))
			if !ok {
				return nil, false
			}
			x[k] = r
		}
		return x, true
	case []any:
		for i, e := range x {
			r, ok := in.walk(e, append(p, tree.PathMatchList))
			if !ok {
				return nil, false
			}
			x[i] = r
		}
		return x, true
	}
	return v, true
}

// fastProject builds the project from one parsed file, or declines.
func fastProject(yf *yamlFile, name, workDir string, env types.Mapping, profiles []string) (p *types.Project, ok bool) {
	// compose-go's decoders assume values its schema validation already
	// checked; on input that would fail validation they may panic. The
	// fast path then declines and the full pipeline reports the problem.
	defer func() {
		if r := recover(); r != nil {
			p, ok = nil, false
		}
	}()
	if yf.rawTags || len(yf.includes) > 0 || len(yf.extendsFiles) > 0 || len(yf.more) > 0 {
		return nil, false
	}
	for i := 0; i+1 < len(yf.root.Content); i += 2 {
		k := yf.root.Content[i]
		if k.Kind != yaml.ScalarNode || !topLevelKeys[k.Value] && !strings.HasPrefix(k.Value, "x-") {
			return nil, false
		}
	}
	if name == "" {
		return nil, false
	}
	in := newInterpolator(env)
	p = &types.Project{Name: name, WorkingDir: workDir, Environment: env, Services: types.Services{},
		Networks: types.Networks{}, Volumes: types.Volumes{}, Secrets: types.Secrets{}}

	// Top-level resources: decode each from its node (fresh values, so the
	// shared parsed file is never modified), interpolate, read what rules use.
	sections := map[string]map[string]any{}
	for _, sec := range []string{"networks", "volumes", "secrets", "configs"} {
		n := mapValue(yf.root, sec)
		if n == nil {
			continue
		}
		var m map[string]any
		if resolve(n).Tag == "!!null" {
			continue
		}
		if err := n.Decode(&m); err != nil {
			return nil, false
		}
		for _, entry := range m {
			if hasExtensionKey(entry) {
				return nil, false
			}
		}
		r, ok := in.walk(m, []string{sec})
		if !ok {
			return nil, false
		}
		if r != nil {
			m, _ = r.(map[string]any)
		}
		sections[sec] = m
	}
	for k, v := range sections["networks"] {
		cfg := types.NetworkConfig{}
		if mv, ok := v.(map[string]any); ok {
			cfg.Name, _ = mv["name"].(string)
			if e, ok := mv["external"].(bool); ok && e {
				cfg.External = true
			} else if _, ok := mv["external"].(map[string]any); ok {
				cfg.External = true
			}
		} else if v != nil {
			return nil, false
		}
		// compose-go's normalisation names networks <project>_<key>.
		if cfg.Name == "" {
			if cfg.External {
				cfg.Name = k
			} else {
				cfg.Name = name + "_" + k
			}
		}
		p.Networks[k] = cfg
	}
	for k, v := range sections["volumes"] {
		cfg := types.VolumeConfig{}
		if mv, ok := v.(map[string]any); ok {
			cfg.Name, _ = mv["name"].(string)
			cfg.Driver, _ = mv["driver"].(string)
			switch e := mv["external"].(type) {
			case bool:
				cfg.External = types.External(e)
			case map[string]any:
				cfg.External = true
			case nil:
			default:
				return nil, false
			}
			if do, ok := mv["driver_opts"].(map[string]any); ok {
				cfg.DriverOpts = types.Options{}
				for ok, ov := range do {
					cfg.DriverOpts[ok] = fmt.Sprint(ov)
				}
				// compose-go resolves a bind-style local volume's device.
				if (cfg.Driver == "local") && cfg.DriverOpts["o"] == "bind" && cfg.DriverOpts["device"] != "" {
					cfg.DriverOpts["device"] = absUnixPath(workDir, cfg.DriverOpts["device"])
				}
			}
		} else if v != nil {
			return nil, false
		}
		p.Volumes[k] = cfg
	}
	for k := range sections["secrets"] {
		p.Secrets[k] = types.SecretConfig{}
	}

	svcs := resolve(mapValue(yf.root, "services"))
	if svcs == nil || svcs.Kind != yaml.MappingNode {
		return nil, false
	}
	keys := serviceKeys()
	active := map[string]bool{}
	all := map[string]types.ServiceConfig{}
	withNetworkMode := map[string]bool{}
	for i := 0; i+1 < len(svcs.Content); i += 2 {
		if isMergeKey(svcs.Content[i]) {
			return nil, false // services merged in with `<<`: the full path
		}
		sname := svcs.Content[i].Value
		budget := maxServiceValues
		v, ok := nodeValue(svcs.Content[i+1], &budget)
		m, isMap := v.(map[string]any)
		if !ok || !isMap {
			return nil, false
		}
		for k := range m {
			if strings.HasPrefix(k, "x-") {
				delete(m, k) // extensions: no rule reads them (as in the full path)
				continue
			}
			if !keys[k] || needsFullPath[k] {
				return nil, false
			}
		}
		for k, v := range m {
			if k != "depends_on" && hasExtensionKey(v) {
				// compose-go moves x-* keys out of nested maps (into
				// "#extensions"), environment and labels included.
				return nil, false
			}
		}
		r, ok := in.walk(m, []string{"services", sname})
		if !ok {
			return nil, false
		}
		s, ok := fastService(sname, r.(map[string]any), workDir, env)
		if !ok {
			return nil, false
		}
		all[sname] = s
		if _, present := r.(map[string]any)["network_mode"]; present {
			withNetworkMode[sname] = true
		}
		active[sname] = profileActive(s.Profiles, profiles)
	}
	if !consistent(p, all) {
		return nil, false
	}
	// Services on no network join the project's default network, as
	// compose-go's normalisation makes them.
	for n, s := range all {
		// compose-go looks at whether network_mode is written, not at its
		// value: an empty network_mode joins no network.
		if !withNetworkMode[n] && len(s.Networks) == 0 {
			s.Networks = map[string]*types.ServiceNetworkConfig{"default": nil}
			all[n] = s
		}
		if _, onDefault := s.Networks["default"]; onDefault {
			if _, ok := p.Networks["default"]; !ok {
				p.Networks["default"] = types.NetworkConfig{Name: name + "_default"}
			}
		}
	}
	for n, s := range all {
		if active[n] {
			p.Services[n] = s
		}
	}
	return p, true
}

// maxServiceValues bounds what one service may expand to through aliases;
// beyond it the full path (and the YAML library's own alias limits) decide.
const maxServiceValues = 100000

// nodeValue converts a parsed node to the value the YAML library's decoder
// would produce into an `any` — plain strings straight from the node, other
// scalars through the library itself, merge keys with YAML's precedence
// (explicit keys, then merged mappings in order) — without decoding whole
// documents. It declines (false) on anything unusual: non-string keys,
// duplicate keys, alias blow-up.
func nodeValue(n *yaml.Node, budget *int) (any, bool) {
	*budget--
	if *budget < 0 || n == nil {
		return nil, false
	}
	switch n.Kind {
	case yaml.AliasNode:
		return nodeValue(n.Alias, budget)
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return nil, false
		}
		return nodeValue(n.Content[0], budget)
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Tag == "" && n.Style != 0 {
			return n.Value, true
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, false
		}
		return v, true
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, ok := nodeValue(c, budget)
			if !ok {
				return nil, false
			}
			out = append(out, v)
		}
		return out, true
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		explicit := make(map[string]bool, len(n.Content)/2)
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if isMergeKey(k) {
				merges = append(merges, n.Content[i+1])
				continue
			}
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" && k.Tag != "" {
				return nil, false
			}
			if explicit[k.Value] {
				return nil, false // the decoder refuses duplicate keys
			}
			explicit[k.Value] = true
			v, ok := nodeValue(n.Content[i+1], budget)
			if !ok {
				return nil, false
			}
			out[k.Value] = v
		}
		// Merged keys fill what is not explicit; among merged mappings the
		// earlier one wins.
		for _, m := range merges {
			var sources []*yaml.Node
			switch rm := resolve(m); {
			case rm == nil:
				return nil, false
			case rm.Kind == yaml.MappingNode:
				sources = []*yaml.Node{m}
			case rm.Kind == yaml.SequenceNode:
				sources = rm.Content
			default:
				return nil, false
			}
			for _, src := range sources {
				v, ok := nodeValue(src, budget)
				sm, isMap := v.(map[string]any)
				if !ok || !isMap {
					return nil, false
				}
				for k, mv := range sm {
					if _, set := out[k]; !set {
						out[k] = mv
					}
				}
			}
		}
		return out, true
	}
	return nil, false
}

// hasExtensionKey reports whether any map in v has an x-* key.
func hasExtensionKey(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if strings.HasPrefix(k, "x-") || hasExtensionKey(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasExtensionKey(e) {
				return true
			}
		}
	}
	return false
}

// profileActive follows compose: a service without profiles is always on;
// otherwise one of its profiles must be enabled ("*" enables all).
func profileActive(svc, enabled []string) bool {
	if len(svc) == 0 {
		return true
	}
	for _, e := range enabled {
		if e == "*" {
			return true
		}
		for _, s := range svc {
			if s == e {
				return true
			}
		}
	}
	return false
}

// consistent declines projects with references compose-go would refuse or
// resolve specially: undeclared networks, volumes or secrets, joins of
// unknown services, depends_on cycles.
func consistent(p *types.Project, all map[string]types.ServiceConfig) bool {
	for _, s := range all {
		for n := range s.Networks {
			if _, ok := p.Networks[n]; !ok && n != "default" {
				return false
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source != "" {
				if _, ok := p.Volumes[v.Source]; !ok {
					return false
				}
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := p.Secrets[sec.Source]; !ok {
				return false
			}
		}
		for _, mode := range []string{s.NetworkMode, s.Pid, s.Ipc} {
			if ref, ok := strings.CutPrefix(mode, "service:"); ok {
				if _, ok := all[ref]; !ok {
					return false
				}
			}
		}
		if s.NetworkMode != "" && len(s.Networks) > 0 {
			return false
		}
	}
	// depends_on: every target exists and there is no cycle.
	state := map[string]int{}
	var visit func(n string) bool
	visit = func(n string) bool {
		switch state[n] {
		case 1:
			return false
		case 2:
			return true
		}
		state[n] = 1
		for d := range all[n].DependsOn {
			if _, ok := all[d]; !ok || !visit(d) {
				return false
			}
		}
		state[n] = 2
		return true
	}
	for n := range all {
		if !visit(n) {
			return false
		}
	}
	return true
}

func absUnixPath(workDir, p string) string {
	p = paths.ExpandUser(p)
	if !path.IsAbs(p) && !paths.IsWindowsAbs(p) {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(workDir, p)
	}
	return p
}

// uniqueKeys index list entries the way compose-go's EnforceUnicity does
// (override/uncity.go): an entry with the key of an earlier one replaces it.
// The fast path declines such lists rather than reproduce the merge.
var uniqueKeys = map[string]func(any) string{
	"cap_add": keyValueKey, "cap_drop": keyValueKey, "environment": keyValueKey, "labels": keyValueKey,
	"profiles": keyValueKey, "tmpfs": keyValueKey, "security_opt": nil,
	"volumes": func(v any) string {
		switch x := v.(type) {
		case map[string]any:
			t, _ := x["target"].(string)
			return t
		case string:
			if vol, err := format.ParseVolume(x); err == nil {
				return vol.Target
			}
		}
		return fmt.Sprint(v)
	},
	"secrets": func(v any) string {
		switch x := v.(type) {
		case string:
			return "/run/secrets/" + x
		case map[string]any:
			if t, ok := x["target"]; ok {
				return fmt.Sprint(t)
			}
			return fmt.Sprint("/run/secrets/", x["source"])
		}
		return fmt.Sprint(v)
	},
	"devices": func(v any) string {
		switch x := v.(type) {
		case map[string]any:
			return fmt.Sprint(x["target"])
		case string:
			arr := strings.Split(x, ":")
			if len(arr) == 1 {
				return arr[0]
			}
			return arr[1]
		}
		return fmt.Sprint(v)
	},
	"ports": func(v any) string { return fmt.Sprintf("%v", v) },
}

func keyValueKey(v any) string {
	s := fmt.Sprint(v)
	k, _, _ := strings.Cut(s, "=")
	return k
}

// hasDuplicates reports whether a list has two entries with one key.
func hasDuplicates(v any, key func(any) string) bool {
	list, ok := v.([]any)
	if !ok || key == nil || len(list) < 2 {
		return false
	}
	seen := make(map[string]bool, len(list))
	for _, e := range list {
		k := key(e)
		if seen[k] {
			return true
		}
		seen[k] = true
	}
	return false
}

// fastService reads the fields the rules use, with compose-go's decoders.
func fastService(name string, m map[string]any, workDir string, env types.Mapping) (types.ServiceConfig, bool) {
	s := types.ServiceConfig{Name: name}
	for field, key := range uniqueKeys {
		if hasDuplicates(m[field], key) {
			return s, false
		}
	}
	if d, ok := m["deploy"].(map[string]any); ok && hasDuplicates(d["labels"], keyValueKey) {
		return s, false
	}
	ok := true
	// These fields are strings in the compose specification: `user: 1000`
	// unquoted is refused by docker compose, so the full path reports it.
	str := func(k string) string {
		switch v := m[k].(type) {
		case nil:
			return ""
		case string:
			return v
		default:
			ok = false
			return ""
		}
	}
	boolean := func(k string) bool {
		switch v := m[k].(type) {
		case nil:
			return false
		case bool:
			return v
		default:
			ok = false
			return false
		}
	}
	strs := func(k string) []string {
		switch v := m[k].(type) {
		case nil:
			return nil
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				es, isStr := e.(string)
				if !isStr {
					ok = false
					return nil
				}
				out = append(out, es)
			}
			return out
		default:
			ok = false
			return nil
		}
	}
	s.Image = str("image")
	if _, hasBuild := m["build"]; s.Image == "" && !hasBuild {
		return s, false // compose-go: "has neither an image nor a build context"
	}
	s.User = str("user")
	s.ContainerName = str("container_name")
	s.Pid = str("pid")
	s.Ipc = str("ipc")
	s.Uts = str("uts")
	s.UserNSMode = str("userns_mode")
	s.NetworkMode = str("network_mode")
	s.Privileged = boolean("privileged")
	s.ReadOnly = boolean("read_only")
	s.SecurityOpt = strs("security_opt")
	s.CapAdd = strs("cap_add")
	s.CapDrop = strs("cap_drop")
	s.Profiles = strs("profiles")
	s.Cgroup = str("cgroup")
	s.GroupAdd = strs("group_add")
	s.DeviceCgroupRules = strs("device_cgroup_rules")
	if !ok {
		return s, false
	}
	if v, present := m["logging"]; present && v != nil {
		lm, isMap := v.(map[string]any)
		if !isMap {
			return s, false
		}
		l := &types.LoggingConfig{}
		for k, x := range lm {
			switch k {
			case "driver":
				d, isStr := x.(string)
				if !isStr {
					return s, false
				}
				l.Driver = d
			case "options":
				om, isMap := x.(map[string]any)
				if !isMap {
					return s, false
				}
				l.Options = map[string]string{}
				for ok, ov := range om {
					o, isStr := ov.(string)
					if !isStr {
						return s, false // numbers and nulls: compose-go's casts decide
					}
					l.Options[ok] = o
				}
			default:
				return s, false
			}
		}
		s.Logging = l
	}
	if v, present := m["pids_limit"]; present {
		n, isInt := asInt64(v)
		if !isInt {
			return s, false
		}
		s.PidsLimit = n
	}
	if v, present := m["scale"]; present {
		n, isInt := asInt64(v)
		if !isInt {
			return s, false
		}
		i := int(n)
		s.Scale = &i
	}
	if v, present := m["mem_limit"]; present {
		if err := s.MemLimit.DecodeMapstructure(v); err != nil {
			return s, false
		}
	}
	if v, present := m["environment"]; present && v != nil {
		if err := s.Environment.DecodeMapstructure(v); err != nil {
			return s, false
		}
		s.Environment = s.Environment.Resolve(env.Resolve)
	}
	if v, present := m["labels"]; present && v != nil {
		if err := s.Labels.DecodeMapstructure(v); err != nil {
			return s, false
		}
	}
	for _, k := range []string{"entrypoint", "command"} {
		if v, present := m[k]; present && v != nil {
			if !stringOrStrings(v) {
				return s, false
			}
			var c types.ShellCommand
			if err := c.DecodeMapstructure(v); err != nil {
				return s, false
			}
			if k == "entrypoint" {
				s.Entrypoint = c
			} else {
				s.Command = c
			}
		}
	}
	if v, present := m["deploy"]; present && v != nil {
		d, isMap := v.(map[string]any)
		if !isMap {
			return s, false
		}
		s.Deploy = &types.DeployConfig{}
		if r, present := d["replicas"]; present {
			n, isInt := asInt64(r)
			if !isInt {
				return s, false
			}
			i := int(n)
			s.Deploy.Replicas = &i
		}
		if l, present := d["labels"]; present && l != nil {
			if err := s.Deploy.Labels.DecodeMapstructure(l); err != nil {
				return s, false
			}
		}
		if res, present := d["resources"]; present && res != nil {
			rm, isMap := res.(map[string]any)
			if !isMap {
				return s, false
			}
			if lim, present := rm["limits"]; present && lim != nil {
				lm, isMap := lim.(map[string]any)
				if !isMap {
					return s, false
				}
				s.Deploy.Resources.Limits = &types.Resource{}
				if mem, present := lm["memory"]; present {
					if err := s.Deploy.Resources.Limits.MemoryBytes.DecodeMapstructure(mem); err != nil {
						return s, false
					}
				}
				if pids, present := lm["pids"]; present {
					n, isInt := asInt64(pids)
					if !isInt {
						return s, false
					}
					s.Deploy.Resources.Limits.Pids = n
				}
			}
		}
		// compose-go refuses distinct pids_limit and deploy limits.
		if s.PidsLimit != 0 && s.Deploy.Resources.Limits != nil && s.Deploy.Resources.Limits.Pids != 0 && s.PidsLimit != s.Deploy.Resources.Limits.Pids {
			return s, false
		}
	}
	if v, present := m["volumes"]; present && v != nil {
		list, isList := v.([]any)
		if !isList {
			return s, false
		}
		for _, e := range list {
			vol, good := fastVolume(e, workDir)
			if !good {
				return s, false
			}
			s.Volumes = append(s.Volumes, vol)
		}
	}
	switch v := m["tmpfs"].(type) {
	case nil:
	case string:
		s.Tmpfs = []string{v}
	case []any:
		s.Tmpfs = strs("tmpfs")
		if !ok {
			return s, false
		}
	default:
		return s, false
	}
	if v, present := m["secrets"]; present && v != nil {
		list, isList := v.([]any)
		if !isList {
			return s, false
		}
		for _, e := range list {
			switch x := e.(type) {
			case string:
				s.Secrets = append(s.Secrets, types.ServiceSecretConfig{Source: x})
			case map[string]any:
				src, _ := x["source"].(string)
				tgt, _ := x["target"].(string)
				if src == "" {
					return s, false
				}
				s.Secrets = append(s.Secrets, types.ServiceSecretConfig{Source: src, Target: tgt})
			default:
				return s, false
			}
		}
	}
	if v, present := m["ports"]; present && v != nil {
		list, isList := v.([]any)
		if !isList {
			return s, false
		}
		for _, e := range list {
			switch x := e.(type) {
			case int, string:
				ps, err := types.ParsePortConfig(fmt.Sprint(x))
				if err != nil {
					return s, false
				}
				for _, pc := range ps {
					s.Ports = append(s.Ports, portDefaults(pc))
				}
			case map[string]any:
				var pc types.ServicePortConfig
				t, isInt := asInt64(x["target"])
				if !isInt {
					return s, false
				}
				pc.Target = uint32(t)
				if pub, present := x["published"]; present && pub != nil {
					pc.Published = fmt.Sprint(pub)
				}
				pc.HostIP, _ = x["host_ip"].(string)
				pc.Protocol, _ = x["protocol"].(string)
				pc.Mode, _ = x["mode"].(string)
				s.Ports = append(s.Ports, portDefaults(pc))
			default:
				return s, false
			}
		}
	}
	seenPorts := make(map[string]bool, len(s.Ports))
	for _, pc := range s.Ports {
		k := fmt.Sprintf("%s|%s|%d|%s|%s", pc.HostIP, pc.Published, pc.Target, pc.Protocol, pc.Mode)
		if seenPorts[k] {
			return s, false // compose-go would merge them
		}
		seenPorts[k] = true
	}
	if v, present := m["devices"]; present && v != nil {
		list, isList := v.([]any)
		if !isList {
			return s, false
		}
		for _, e := range list {
			switch x := e.(type) {
			case string:
				arr := strings.Split(x, ":")
				d := types.DeviceMapping{Permissions: "rwm"}
				switch len(arr) {
				case 3:
					d.Permissions = arr[2]
					fallthrough
				case 2:
					d.Target = arr[1]
					fallthrough
				case 1:
					d.Source = arr[0]
				default:
					return s, false
				}
				if d.Target == "" {
					d.Target = d.Source
				}
				s.Devices = append(s.Devices, d)
			case map[string]any:
				var d types.DeviceMapping
				d.Source, _ = x["source"].(string)
				d.Target, _ = x["target"].(string)
				d.Permissions, _ = x["permissions"].(string)
				s.Devices = append(s.Devices, d)
			default:
				return s, false
			}
		}
	}
	if v, present := m["healthcheck"]; present && v != nil {
		hm, isMap := v.(map[string]any)
		if !isMap {
			return s, false
		}
		hc := &types.HealthCheckConfig{}
		if t, present := hm["test"]; present && t != nil {
			if !stringOrStrings(t) {
				return s, false
			}
			if err := hc.Test.DecodeMapstructure(t); err != nil {
				return s, false
			}
		}
		if d, present := hm["disable"]; present {
			b, isBool := d.(bool)
			if !isBool {
				return s, false
			}
			hc.Disable = b
		}
		s.HealthCheck = hc
	}
	switch v := m["networks"].(type) {
	case nil:
	case []any:
		s.Networks = map[string]*types.ServiceNetworkConfig{}
		for _, e := range v {
			n, isStr := e.(string)
			if !isStr {
				return s, false
			}
			s.Networks[n] = nil
		}
	case map[string]any:
		s.Networks = map[string]*types.ServiceNetworkConfig{}
		for n := range v {
			s.Networks[n] = nil
		}
	default:
		return s, false
	}
	switch v := m["depends_on"].(type) {
	case nil:
	case []any:
		s.DependsOn = types.DependsOnConfig{}
		for _, e := range v {
			n, isStr := e.(string)
			if !isStr {
				return s, false
			}
			s.DependsOn[n] = types.ServiceDependency{}
		}
	case map[string]any:
		s.DependsOn = types.DependsOnConfig{}
		for n := range v {
			s.DependsOn[n] = types.ServiceDependency{}
		}
	default:
		return s, false
	}
	for _, k := range []string{"links", "volumes_from"} {
		if _, present := m[k]; present {
			return s, false // references compose-go checks and rewrites
		}
	}
	return s, true
}

// portDefaults are compose-go's defaults for a port (transform/ports.go).
func portDefaults(pc types.ServicePortConfig) types.ServicePortConfig {
	if pc.Protocol == "" {
		pc.Protocol = "tcp"
	}
	if pc.Mode == "" {
		pc.Mode = "ingress"
	}
	return pc
}

// stringOrStrings reports whether v is a string or a list of strings, the
// shapes compose-go's command decoders accept.
func stringOrStrings(v any) bool {
	switch x := v.(type) {
	case string:
		return true
	case []any:
		for _, e := range x {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

func asInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		return int64(x), true
	}
	return 0, false
}

// fastVolume reads one volumes: entry the way compose-go's canonical
// transform and path resolution do.
func fastVolume(e any, workDir string) (types.ServiceVolumeConfig, bool) {
	var v types.ServiceVolumeConfig
	switch x := e.(type) {
	case string:
		parsed, err := format.ParseVolume(x)
		if err != nil {
			return v, false
		}
		v = parsed
		if v.Target != "" {
			v.Target = path.Clean(v.Target)
		}
	case map[string]any:
		v.Type, _ = x["type"].(string)
		v.Source, _ = x["source"].(string)
		v.Target, _ = x["target"].(string)
		if ro, present := x["read_only"]; present {
			b, isBool := ro.(bool)
			if !isBool {
				return v, false
			}
			v.ReadOnly = b
		}
		if v.Type == "" {
			return v, false
		}
	default:
		return v, false
	}
	if v.Type == types.VolumeTypeBind {
		if v.Source == "" {
			return v, false
		}
		v.Source = absUnixPath(workDir, v.Source)
	}
	return v, true
}
