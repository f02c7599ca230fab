// Package traefik reads the parts of Traefik's configuration that decide
// whether public traffic is TLS 1.2+ (IF-EXTERNAL): entry points and their
// TLS/redirect settings from the static configuration (command-line flags or
// a static file), TLS options and routers from the file provider's dynamic
// configuration, and routers from Docker labels.
//
// Sources call it to fill workload.Gateway and workload.Routers; the
// traefik-tls rule reads those and never parses. It must not judge anything
// itself.
package traefik

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/safefile"
	"github.com/hy-home/hyhome/internal/workload"
)

// IsTraefik reports whether a workload runs Traefik, by image or command.
func IsTraefik(w *workload.Workload) bool {
	img := strings.ToLower(w.Image)
	if i := strings.LastIndex(img, "/"); i >= 0 {
		img = img[i+1:]
	}
	name, _, _ := strings.Cut(img, ":")
	name, _, _ = strings.Cut(name, "@")
	if name == "traefik" {
		return true
	}
	return len(w.Command) > 0 && path.Base(w.Command[0]) == "traefik"
}

// MaxFileSize bounds configuration files read from the host.
const MaxFileSize = 4 << 20

// staticDefaults are the paths Traefik searches for its static file.
var staticDefaults = []string{"/etc/traefik/traefik.yml", "/etc/traefik/traefik.yaml", "/etc/traefik/traefik.toml", "traefik.yml", "traefik.yaml", "traefik.toml"}

// ReadGateway builds the gateway view of a Traefik workload from its command
// line and the configuration files it bind-mounts (read on this host). base
// resolves relative host paths (the compose project directory).
func ReadGateway(w *workload.Workload) (*workload.Gateway, error) {
	g := &workload.Gateway{
		EntryPoints: map[string]workload.EntryPoint{},
		TLSOptions:  map[string]workload.TLSOption{},
		Pos:         w.Pos,
	}
	st := parseFlags(append(envArgs(w.Env), w.Command...))
	for name, ep := range st.entryPoints {
		ep.Pos = w.Pos
		g.EntryPoints[name] = ep
	}

	// The static file: --configfile, else Traefik's default locations.
	staticPaths := staticDefaults
	if st.configFile != "" {
		staticPaths = []string{st.configFile}
	}
	for _, p := range staticPaths {
		host, ok := hostPath(w, p)
		if !ok {
			continue
		}
		doc, err := readDoc(host)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return g, err
		}
		g.Files = append(g.Files, host)
		doc.staticInto(g, &st)
		break
	}

	// The dynamic files: the file provider's filename/directory when known,
	// else every YAML/TOML file the gateway bind-mounts that looks dynamic.
	var dynamic []string
	for _, p := range st.fileProvider {
		if host, ok := hostPath(w, p); ok {
			dynamic = append(dynamic, expand(host)...)
		}
	}
	if len(st.fileProvider) == 0 {
		for _, m := range w.Mounts {
			if m.Type == "bind" {
				dynamic = append(dynamic, expand(m.Source)...)
			}
		}
	}
	sort.Strings(dynamic)
	for _, host := range dynamic {
		if contains(g.Files, host) {
			continue
		}
		doc, err := readDoc(host)
		if err != nil {
			continue // an unreadable candidate is not configuration we can judge
		}
		if doc.dynamicInto(g) {
			g.Files = append(g.Files, host)
		}
	}
	return g, nil
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

// hostPath maps a path inside the container to the host path of the bind
// mount that provides it (the longest matching target wins).
func hostPath(w *workload.Workload, inContainer string) (string, bool) {
	best := -1
	var out string
	for _, m := range w.Mounts {
		if m.Type != "bind" || m.Source == "" {
			continue
		}
		t := strings.TrimRight(m.Target, "/")
		if inContainer != t && !strings.HasPrefix(inContainer, t+"/") {
			continue
		}
		if len(t) > best {
			best = len(t)
			out = filepath.Join(m.Source, strings.TrimPrefix(inContainer, t))
		}
	}
	return out, best >= 0
}

// expand lists the configuration files at a host path: the file itself, or
// the YAML/TOML files directly inside a directory (the file provider does
// not recurse).
func expand(p string) []string {
	fi, err := os.Stat(p)
	if err != nil {
		return nil
	}
	if !fi.IsDir() {
		if isConfig(p) {
			return []string{p}
		}
		return nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && isConfig(e.Name()) {
			out = append(out, filepath.Join(p, e.Name()))
		}
	}
	return out
}

func isConfig(p string) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".yml", ".yaml", ".toml":
		return true
	}
	return false
}

// envArgs turns Traefik's static configuration from TRAEFIK_* environment
// variables into the equivalent flags: TRAEFIK_ENTRYPOINTS_WEBSECURE_HTTP_TLS
// is --entrypoints.websecure.http.tls (Traefik reads names in environment
// variables case-insensitively).
func envArgs(env []workload.EnvVar) []string {
	var out []string
	for _, e := range env {
		k, ok := strings.CutPrefix(e.Key, "TRAEFIK_")
		if !ok || !e.HasValue {
			continue
		}
		out = append(out, "--"+strings.ToLower(strings.ReplaceAll(k, "_", "."))+"="+e.Value)
	}
	return out
}

// static is what the command line says.
type static struct {
	entryPoints  map[string]workload.EntryPoint
	configFile   string
	fileProvider []string
}

// parseFlags reads Traefik's static flags (case-insensitive, "--a.b=c" or
// "--a.b c").
func parseFlags(args []string) static {
	st := static{entryPoints: map[string]workload.EntryPoint{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		key, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			val, hasVal = args[i+1], true
			i++
		}
		if !hasVal {
			val = "true"
		}
		lk := strings.ToLower(key)
		switch {
		case lk == "configfile":
			st.configFile = val
		case lk == "providers.file.filename" || lk == "providers.file.directory":
			st.fileProvider = append(st.fileProvider, val)
		case strings.HasPrefix(lk, "entrypoints."):
			parts := strings.SplitN(key, ".", 3)
			if len(parts) < 3 {
				continue
			}
			name, sub := parts[1], strings.ToLower(parts[2])
			ep := st.entryPoints[name]
			switch {
			case sub == "address":
				ep.Address = val
			case sub == "http.tls":
				ep.TLS = truthy(val)
			case strings.HasPrefix(sub, "http.tls."):
				ep.TLS = true
			case sub == "http.redirections.entrypoint.to":
				ep.RedirectTo = val
			}
			st.entryPoints[name] = ep
		}
	}
	return st
}

func truthy(s string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	return err == nil && b
}

// doc is a parsed configuration file with the position of each key path.
type doc struct {
	file  string
	root  map[string]any
	lines map[string]int // lower-cased dotted key path → line
}

func readDoc(p string) (*doc, error) {
	// The path comes from a bind mount in a compose file or a container:
	// only a regular file of bounded size is read, never a FIFO or device.
	b, err := safefile.ReadFile(p, MaxFileSize)
	if err != nil {
		return nil, err
	}
	d := &doc{file: p, lines: map[string]int{}}
	if strings.EqualFold(filepath.Ext(p), ".toml") {
		if _, err := toml.Decode(string(b), &d.root); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", p, err)
		}
		d.tomlLines(b)
		return d, nil
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", p, err)
	}
	if err := n.Decode(&d.root); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", p, err)
	}
	d.yamlLines(&n, "")
	return d, nil
}

func (d *doc) yamlLines(n *yaml.Node, prefix string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			d.yamlLines(c, prefix)
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			d.yamlLines(n.Alias, prefix)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := strings.ToLower(n.Content[i].Value)
			if prefix != "" {
				k = prefix + "." + k
			}
			if _, seen := d.lines[k]; !seen {
				d.lines[k] = n.Content[i].Line
			}
			d.yamlLines(n.Content[i+1], k)
		}
	}
}

// tomlLines finds key lines in TOML text: tables ([a.b]) and keys under them.
// The decoder does not report positions, and a line is all a finding needs.
func (d *doc) tomlLines(b []byte) {
	table := ""
	for i, raw := range bytes.Split(b, []byte("\n")) {
		line := strings.TrimSpace(string(raw))
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			table = strings.ToLower(strings.Trim(strings.Trim(line, "[]"), " \"'"))
			table = strings.ReplaceAll(table, "\"", "")
			d.lines[table] = i + 1
		default:
			k, _, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			key := strings.ToLower(strings.Trim(strings.TrimSpace(k), "\"'"))
			if table != "" {
				key = table + "." + key
			}
			if _, seen := d.lines[key]; !seen {
				d.lines[key] = i + 1
			}
		}
	}
}

func (d *doc) pos(keys ...string) workload.Position {
	for k := strings.ToLower(strings.Join(keys, ".")); k != ""; {
		if l, ok := d.lines[k]; ok {
			return workload.Position{File: d.file, Line: l}
		}
		i := strings.LastIndex(k, ".")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return workload.Position{File: d.file}
}

// get walks a case-insensitive key path (Traefik's keys are case-insensitive).
func get(m map[string]any, keys ...string) (any, bool) {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		found := false
		for kk, v := range mm {
			if strings.EqualFold(kk, k) {
				cur, found = v, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return cur, true
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func asStrings(v any) []string {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, asString(e))
		}
		return out
	case string:
		return splitList(x)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// tlsOn reads a `tls` value: a map (even empty) or true enables TLS.
func tlsOn(v any, present bool) bool {
	if !present {
		return false
	}
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return truthy(x)
	case nil:
		return true // `tls:` with no value is an empty section
	default:
		return true
	}
}

func (d *doc) staticInto(g *workload.Gateway, st *static) {
	eps := asMap(mustGet(d.root, "entryPoints"))
	for name, v := range eps {
		ep := g.EntryPoints[name]
		ep.Pos = d.pos("entrypoints", name)
		if a, ok := get(asMap(v), "address"); ok {
			ep.Address = asString(a)
		}
		if t, ok := get(asMap(v), "http", "tls"); ok {
			ep.TLS = tlsOn(t, true)
		}
		if to, ok := get(asMap(v), "http", "redirections", "entryPoint", "to"); ok {
			ep.RedirectTo = asString(to)
		}
		g.EntryPoints[name] = ep
	}
	if fn, ok := get(d.root, "providers", "file", "filename"); ok {
		st.fileProvider = append(st.fileProvider, asString(fn))
	}
	if dir, ok := get(d.root, "providers", "file", "directory"); ok {
		st.fileProvider = append(st.fileProvider, asString(dir))
	}
}

func mustGet(m map[string]any, keys ...string) any {
	v, _ := get(m, keys...)
	return v
}

// dynamicInto adds TLS options and routers; it reports whether the file
// holds dynamic configuration at all.
func (d *doc) dynamicInto(g *workload.Gateway) bool {
	found := false
	if opts, ok := get(d.root, "tls", "options"); ok {
		found = true
		for name, v := range asMap(opts) {
			o := workload.TLSOption{Pos: d.pos("tls", "options", name)}
			if mv, ok := get(asMap(v), "minVersion"); ok {
				o.MinVersion = asString(mv)
				o.Pos = d.pos("tls", "options", name, "minversion")
			}
			g.TLSOptions[name] = o
		}
	}
	for _, proto := range []string{"http", "tcp"} {
		routers, ok := get(d.root, proto, "routers")
		if !ok {
			continue
		}
		found = true
		for name, v := range asMap(routers) {
			rm := asMap(v)
			t, hasTLS := get(rm, "tls")
			r := workload.Router{
				Name:     name,
				Protocol: proto,
				TLS:      tlsOn(t, hasTLS),
				Pos:      d.pos(proto, "routers", name),
			}
			if eps, ok := get(rm, "entryPoints"); ok {
				r.EntryPoints = asStrings(eps)
			}
			if o, ok := get(rm, "tls", "options"); ok {
				r.TLSOptions = stripProvider(asString(o))
			}
			g.Routers = append(g.Routers, r)
		}
	}
	if _, ok := get(d.root, "http"); ok {
		found = true
	}
	sort.Slice(g.Routers, func(i, j int) bool { return g.Routers[i].Name < g.Routers[j].Name })
	return found
}

// stripProvider drops a "@file" style provider suffix from a reference.
func stripProvider(s string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(s), "@")
	return name
}

// RoutersFromLabels reads the routers a workload declares with traefik.*
// labels. A workload with traefik.enable=true and no router gets Traefik's
// implicit router, named after the workload.
func RoutersFromLabels(w *workload.Workload) []workload.Router {
	byName := map[string]*workload.Router{}
	var names []string
	router := func(proto, name string, pos workload.Position) *workload.Router {
		key := proto + "/" + name
		r, ok := byName[key]
		if !ok {
			r = &workload.Router{Name: name, Protocol: proto, Service: w.Name, Pos: pos}
			byName[key] = r
			names = append(names, key)
		}
		return r
	}
	enabled := false
	ruled := map[*workload.Router]bool{}
	for _, k := range w.SortedLabels() {
		v := w.Labels[k]
		lk := strings.ToLower(k)
		if lk == "traefik.enable" {
			enabled = truthy(v)
			continue
		}
		var proto string
		switch {
		case strings.HasPrefix(lk, "traefik.http.routers."):
			proto = "http"
		case strings.HasPrefix(lk, "traefik.tcp.routers."):
			proto = "tcp"
		default:
			continue
		}
		rest := k[len("traefik."+proto+".routers."):]
		name, attr, _ := strings.Cut(rest, ".")
		if name == "" {
			continue
		}
		r := router(proto, name, w.At(w.LabelPos[k]))
		la := strings.ToLower(attr)
		switch {
		case la == "rule":
			// A router is defined by its rule: findings point there.
			r.Pos = w.At(w.LabelPos[k])
			ruled[r] = true
		case la == "entrypoints":
			r.EntryPoints = splitList(v)
		case la == "tls":
			r.TLS = truthy(v)
			if !ruled[r] {
				r.Pos = w.At(w.LabelPos[k])
			}
		case la == "tls.options":
			r.TLS = true
			r.TLSOptions = stripProvider(v)
		case strings.HasPrefix(la, "tls."):
			r.TLS = true
		}
	}
	if enabled && len(names) == 0 {
		pos := w.At(w.LabelPos["traefik.enable"])
		names = append(names, "http/"+w.Name)
		byName["http/"+w.Name] = &workload.Router{Name: w.Name, Protocol: "http", Service: w.Name, Pos: pos}
	}
	out := make([]workload.Router, 0, len(names))
	for _, n := range names {
		out = append(out, *byName[n])
	}
	return out
}
