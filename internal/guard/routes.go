package guard

import (
	"fmt"
	"slices"
	"strings"
)

// BodyKind says what a route's request body is to the engine, and so how the
// guard reads it.
type BodyKind int

const (
	// BodyNone: the engine reads no body. The guard buffers it (under the
	// cap) and refuses anything but an empty body, "{}" or "null".
	BodyNone BodyKind = iota
	// BodyJSON: a JSON document, buffered under the cap. Routes with a judge
	// decode it strictly; the engine receives the buffered bytes (with only
	// the values the judge pinned replaced).
	BodyJSON
	// BodyStream: an archive the engine unpacks as files (build context,
	// docker cp, image load/import, plugin rootfs). It is streamed, never
	// buffered: no verdict depends on its content, only on the route, the
	// query and the object it targets.
	BodyStream
)

func (b BodyKind) String() string {
	switch b {
	case BodyNone:
		return "none"
	case BodyJSON:
		return "json"
	case BodyStream:
		return "stream"
	}
	return "unknown"
}

// judgeKind names the admission check a route gets in every profile that
// allows it. Judges are tied to routes, not profiles, so that a custom
// profile allowing container create is judged exactly as admission is.
type judgeKind int

const (
	judgeNone             judgeKind = iota
	judgeContainerCreate            // the request body is the workload
	judgeContainerUpdate            // resources only: no regression of limits
	judgeContainerUse               // start, attach, cp, export: the existing container's isolation
	judgeExecCreate                 // exec user and privileges, inside the target container
	judgeExecStart                  // the exec instance as the engine recorded it
	judgeServiceCreate              // the service spec is the workload
	judgeServiceUpdate              // the new spec (or, on rollback, the previous one)
	judgeVolumeCreate               // local driver options that bind host paths
	judgePluginCreate               // a plugin from the client's archive: the profile must name it
	judgePluginPrivileges           // privileges accepted on plugin pull/upgrade
	judgePluginEnable               // the installed plugin's configuration, as it will run
	judgeBuild                      // networkmode of build containers
	judgeImageTag                   // tag, commit, import: the reference an image is given
	judgeNetworkCreate              // drivers and options that reach a host interface
	judgeNetworkConnect             // aliases that would answer an infrastructure service's name
	judgeContainerRename            // a new name that is an infrastructure service's
	judgeNetwork                    // network disconnect: the body's fields (create and connect are judged by the field table too)
	judgeUnjudgeable                // traffic the guard cannot see into (BuildKit gRPC)
)

// Route is one Engine API route as the engine's router registers it.
type Route struct {
	Method string
	// Template is the daemon's gorilla/mux path template, without the
	// /v{version} prefix, e.g. "/containers/{name:.*}/json".
	Template string
	// Name is how profiles and logs refer to the route: the method and the
	// template with variable patterns dropped, e.g.
	// "GET /containers/{name}/json".
	Name string
	Body BodyKind
	// Hijack routes may take over the connection (attach, exec start,
	// BuildKit session) after the response head.
	Hijack bool
	// Stream routes may answer for as long as the client listens (events,
	// logs with follow, stats); graceful shutdown ends them first.
	Stream bool
	judge  judgeKind

	// segs is the template parsed into literal text and variables; vars
	// names the variables in order.
	segs []segment
	vars []string
	// literal is the template's text before its first variable: a path
	// that does not start with it cannot match, and a template without
	// variables matches only itself.
	literal string
	// suffix is the text after the last variable, which a match must end
	// with.
	suffix  string
	hasVars bool
}

// varKind is a variable pattern of the engine's route templates. The engine
// registers its routes with gorilla/mux, which compiles a template into an
// anchored regexp; the templates use three patterns only, and the guard
// matches them without a regexp (faster, and no compiled programs held in
// memory), with the regexp's semantics. The mux oracle in the tests and the
// classifier fuzz target hold the two equal.
type varKind uint8

const (
	varNoSlash varKind = iota // {name} = [^/]+: one or more bytes, no "/"
	varAny                    // {name:.*}: any text without a newline, possibly empty
	varSome                   // {name:.+}: any text without a newline, not empty
)

// segment is literal text, or a variable when lit is empty.
type segment struct {
	lit  string
	kind varKind
}

// Vars are the route variables of a matched path, by name.
type Vars map[string]string

// match reports whether the (unversioned, decoded) path matches the route's
// template, with its variables, as the engine's router matches it.
func (r *Route) match(path string) (Vars, bool) {
	if !r.hasVars {
		if path == r.literal {
			return Vars{}, true
		}
		return nil, false
	}
	if !strings.HasPrefix(path, r.literal) || !strings.HasSuffix(path, r.suffix) {
		return nil, false
	}
	vals := make([]string, 0, len(r.vars))
	vals, ok := matchSegs(r.segs, path, vals)
	if !ok {
		return nil, false
	}
	vars := make(Vars, len(r.vars))
	for i, name := range r.vars {
		vars[name] = vals[i]
	}
	return vars, true
}

// matchSegs matches the whole of s against segs the way Go's regexp does for
// the anchored pattern mux builds: variables are greedy and the first match
// found trying longer values first is the one reported (leftmost-first
// semantics), so a variable followed by literal text takes the longest value
// after which the rest still matches.
//
// It runs in time linear in len(s), as the regexp does (a path can be as
// long as the server's header limit, 1 MB): every value a variable is tried
// with is a prefix of the text before the first byte its pattern excludes,
// so no value is scanned again, and parseTemplate admits a variable before
// the last only as {name} followed by "/", which leaves one candidate value
// that the next literal can follow.
func matchSegs(segs []segment, s string, vals []string) ([]string, bool) {
	if len(segs) == 0 {
		return vals, s == ""
	}
	sg := segs[0]
	if sg.lit != "" {
		if matchWork != nil {
			*matchWork += int64(min(len(sg.lit), len(s))) + 1
		}
		if !strings.HasPrefix(s, sg.lit) {
			return vals, false
		}
		return matchSegs(segs[1:], s[len(sg.lit):], vals)
	}
	// The longest value the pattern can take ends at the first byte it
	// excludes; every shorter prefix is a value too, down to the shortest
	// the pattern allows.
	limit, shortest := len(s), 1
	excluded := byte('\n') // "." in Go's regexp syntax does not match "\n"
	switch sg.kind {
	case varNoSlash:
		excluded = '/'
	case varAny:
		shortest = 0
	}
	if i := strings.IndexByte(s, excluded); i >= 0 {
		limit = i
	}
	if matchWork != nil {
		*matchWork += int64(limit) + 1
	}
	for n := limit; n >= shortest; n-- {
		if out, ok := matchSegs(segs[1:], s[n:], append(vals, s[:n])); ok {
			return out, true
		}
	}
	return vals, false
}

// matchWork, when set (by a test, never concurrently with matching),
// counts the bytes matchSegs compares or scans plus one per step: the
// operation count that shows matching is linear in the path's length
// (TestRouteMatchLongPathsWork).
var matchWork *int64

// path renders the route's path with the given variables, for forwarding a
// request whose variables the guard pinned (a name replaced by the ID it
// judged).
func (r *Route) path(vars Vars) string {
	var b strings.Builder
	rest := r.Template
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		j := strings.IndexByte(rest[i:], '}') + i
		b.WriteString(rest[:i])
		name, _, _ := strings.Cut(rest[i+1:j], ":")
		b.WriteString(vars[name])
		rest = rest[j+1:]
	}
}

// parseTemplate splits a gorilla/mux path template into literal text and
// variables: {name} is [^/]+ as in mux, {name:pattern} takes one of the
// patterns the engine's templates use (.* or .+); any other pattern is an
// error, so a template the matcher could read differently from mux cannot
// enter the table.
func parseTemplate(tpl string) ([]segment, []string, error) {
	var segs []segment
	var vars []string
	rest := tpl
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return nil, nil, fmt.Errorf("template %q: unbalanced braces", tpl)
			}
			if rest != "" {
				segs = append(segs, segment{lit: rest})
			}
			// A variable before the last must be {name} followed by "/":
			// matchSegs is linear in the path's length only then.
			for i, sg := range segs[:max(lastVar(segs), 0)] {
				if sg.lit == "" && (sg.kind != varNoSlash || !strings.HasPrefix(segs[i+1].lit, "/")) {
					return nil, nil, fmt.Errorf("template %q: a variable before the last must be {name} followed by \"/\"", tpl)
				}
			}
			return segs, vars, nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 || strings.IndexByte(rest[:i], '}') >= 0 {
			return nil, nil, fmt.Errorf("template %q: unbalanced braces", tpl)
		}
		j += i
		if i > 0 {
			segs = append(segs, segment{lit: rest[:i]})
		}
		name, p, hasPattern := strings.Cut(rest[i+1:j], ":")
		if name == "" {
			return nil, nil, fmt.Errorf("template %q: empty variable name", tpl)
		}
		kind := varNoSlash
		if hasPattern {
			switch p {
			case ".*":
				kind = varAny
			case ".+":
				kind = varSome
			default:
				return nil, nil, fmt.Errorf("template %q: variable pattern %q is not one the guard matches (.* or .+)", tpl, p)
			}
		}
		if slices.Contains(vars, name) {
			return nil, nil, fmt.Errorf("template %q: variable %q twice", tpl, name)
		}
		segs = append(segs, segment{kind: kind})
		vars = append(vars, name)
		rest = rest[j+1:]
	}
}

// lastVar is the index of the last variable segment.
func lastVar(segs []segment) int {
	for i := len(segs) - 1; i >= 0; i-- {
		if segs[i].lit == "" {
			return i
		}
	}
	return -1
}

// routeName drops the patterns from a template's variables.
func routeName(method, tpl string) string {
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte(' ')
	rest := tpl
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		j := strings.IndexByte(rest[i:], '}') + i
		name, _, _ := strings.Cut(rest[i+1:j], ":")
		b.WriteString(rest[:i] + "{" + name + "}")
		rest = rest[j+1:]
	}
}

// route declares one entry of the table.
func route(method, tpl string, body BodyKind, opts ...func(*Route)) *Route {
	r := &Route{Method: method, Template: tpl, Name: routeName(method, tpl), Body: body}
	for _, o := range opts {
		o(r)
	}
	return r
}

func judged(j judgeKind) func(*Route) { return func(r *Route) { r.judge = j } }
func hijack(r *Route)                 { r.Hijack = true }
func stream(r *Route)                 { r.Stream = true }

const (
	get   = "GET"
	head  = "HEAD"
	post  = "POST"
	put   = "PUT"
	del   = "DELETE"
	none  = BodyNone
	jsonb = BodyJSON
	files = BodyStream
)

// engineRoutes is the Engine API as the engine registers it, in the same
// order: gorilla/mux takes the first route that matches, and some paths
// match two (DELETE /containers/x/checkpoints/y is a checkpoint, not a
// container, because the checkpoint router comes first). It is the union of
// Docker 20.10 (API 1.41) and later releases; a route the table does not
// know is refused. OPTIONS (CORS pre-flight) and /debug (pprof, any method)
// are left out on purpose, so both are refused.
var engineRoutes = []*Route{
	// checkpoint router (experimental engines only)
	route(get, "/containers/{name:.*}/checkpoints", none),
	route(post, "/containers/{name:.*}/checkpoints", jsonb),
	route(del, "/containers/{name}/checkpoints/{checkpoint}", none),

	// container router
	route(head, "/containers/{name:.*}/archive", none, judged(judgeContainerUse)),
	route(get, "/containers/json", none),
	route(get, "/containers/{name:.*}/export", none, judged(judgeContainerUse)),
	route(get, "/containers/{name:.*}/changes", none),
	route(get, "/containers/{name:.*}/json", none),
	route(get, "/containers/{name:.*}/top", none),
	route(get, "/containers/{name:.*}/logs", none, stream),
	route(get, "/containers/{name:.*}/stats", none, stream),
	route(get, "/containers/{name:.*}/attach/ws", none, judged(judgeContainerUse), hijack, stream),
	route(get, "/exec/{id:.*}/json", none),
	route(get, "/containers/{name:.*}/archive", none, judged(judgeContainerUse)),
	route(post, "/containers/create", jsonb, judged(judgeContainerCreate)),
	route(post, "/containers/{name:.*}/kill", none),
	route(post, "/containers/{name:.*}/pause", none),
	route(post, "/containers/{name:.*}/unpause", none),
	route(post, "/containers/{name:.*}/restart", none, judged(judgeContainerUse)),
	route(post, "/containers/{name:.*}/start", none, judged(judgeContainerUse)),
	route(post, "/containers/{name:.*}/stop", none),
	route(post, "/containers/{name:.*}/wait", none, stream),
	route(post, "/containers/{name:.*}/resize", none),
	route(post, "/containers/{name:.*}/attach", none, judged(judgeContainerUse), hijack, stream),
	route(post, "/containers/{name:.*}/copy", jsonb, judged(judgeContainerUse)),
	route(post, "/containers/{name:.*}/exec", jsonb, judged(judgeExecCreate)),
	route(post, "/exec/{name:.*}/start", jsonb, judged(judgeExecStart), hijack, stream),
	route(post, "/exec/{name:.*}/resize", none),
	route(post, "/containers/{name:.*}/rename", none, judged(judgeContainerRename)),
	route(post, "/containers/{name:.*}/update", jsonb, judged(judgeContainerUpdate)),
	route(post, "/containers/prune", none),
	route(post, "/commit", jsonb, judged(judgeImageTag)),
	route(put, "/containers/{name:.*}/archive", files, judged(judgeContainerUse)),
	route(del, "/containers/{name:.*}", none),

	// image router
	route(get, "/images/json", none),
	route(get, "/images/search", none),
	route(get, "/images/get", none),
	route(get, "/images/{name:.*}/get", none),
	route(get, "/images/{name:.*}/history", none),
	route(get, "/images/{name:.*}/json", none),
	route(post, "/images/load", files, stream),
	route(post, "/images/create", files, judged(judgeImageTag), stream),
	route(post, "/images/{name:.*}/push", none, stream),
	route(post, "/images/{name:.*}/tag", none, judged(judgeImageTag)),
	route(post, "/images/prune", none),
	route(del, "/images/{name:.*}", none),

	// system router
	route(get, "/_ping", none),
	route(head, "/_ping", none),
	route(get, "/events", none, stream),
	route(get, "/info", none),
	route(get, "/version", none),
	route(get, "/system/df", none),
	route(post, "/auth", jsonb),

	// volume router
	route(get, "/volumes", none),
	route(get, "/volumes/{name:.*}", none),
	route(post, "/volumes/create", jsonb, judged(judgeVolumeCreate)),
	route(post, "/volumes/prune", none),
	route(put, "/volumes/{name:.*}", jsonb),
	route(del, "/volumes/{name:.*}", none),

	// build router
	route(post, "/build", files, judged(judgeBuild), stream),
	route(post, "/build/prune", none),
	route(post, "/build/cancel", none),

	// session router: the engine calls back into the client for build
	// context, secrets and SSH during a build; it starts nothing itself.
	route(post, "/session", none, hijack, stream),

	// swarm router
	route(post, "/swarm/init", jsonb),
	route(post, "/swarm/join", jsonb),
	route(post, "/swarm/leave", none),
	route(get, "/swarm", none),
	route(get, "/swarm/unlockkey", none),
	route(post, "/swarm/update", jsonb),
	route(post, "/swarm/unlock", jsonb),
	route(get, "/services", none),
	route(get, "/services/{id}", none),
	route(post, "/services/create", jsonb, judged(judgeServiceCreate)),
	route(post, "/services/{id}/update", jsonb, judged(judgeServiceUpdate)),
	route(del, "/services/{id}", none),
	route(get, "/services/{id}/logs", none, stream),
	route(get, "/nodes", none),
	route(get, "/nodes/{id}", none),
	route(del, "/nodes/{id}", none),
	route(post, "/nodes/{id}/update", jsonb),
	route(get, "/tasks", none),
	route(get, "/tasks/{id}", none),
	route(get, "/tasks/{id}/logs", none, stream),
	route(get, "/secrets", none),
	route(post, "/secrets/create", jsonb),
	route(del, "/secrets/{id}", none),
	route(get, "/secrets/{id}", none),
	route(post, "/secrets/{id}/update", jsonb),
	route(get, "/configs", none),
	route(post, "/configs/create", jsonb),
	route(del, "/configs/{id}", none),
	route(get, "/configs/{id}", none),
	route(post, "/configs/{id}/update", jsonb),

	// plugin router
	route(get, "/plugins", none),
	route(get, "/plugins/{name:.*}/json", none),
	route(get, "/plugins/privileges", none),
	route(del, "/plugins/{name:.*}", none),
	route(post, "/plugins/{name:.*}/enable", none, judged(judgePluginEnable)),
	route(post, "/plugins/{name:.*}/disable", none),
	route(post, "/plugins/pull", jsonb, judged(judgePluginPrivileges), stream),
	route(post, "/plugins/{name:.*}/push", none, stream),
	route(post, "/plugins/{name:.*}/upgrade", jsonb, judged(judgePluginPrivileges), stream),
	route(post, "/plugins/{name:.*}/set", jsonb),
	route(post, "/plugins/create", files, judged(judgePluginCreate)),

	// distribution router
	route(get, "/distribution/{name:.*}/json", none),

	// grpc router: BuildKit's control API over h2c
	route(post, "/grpc", none, judged(judgeUnjudgeable), hijack, stream),

	// network router
	route(get, "/networks", none),
	route(get, "/networks/", none),
	route(get, "/networks/{id:.+}", none),
	route(post, "/networks/create", jsonb, judged(judgeNetworkCreate)),
	route(post, "/networks/{id:.*}/connect", jsonb, judged(judgeNetworkConnect)),
	route(post, "/networks/{id:.*}/disconnect", jsonb, judged(judgeNetwork)),
	route(post, "/networks/prune", none),
	route(del, "/networks/{id:.*}", none),
}

// routeTable indexes the routes by method, keeping the engine's order.
type routeTable struct {
	byMethod map[string][]*Route
	byName   map[string]*Route
	all      []*Route
}

func newRouteTable(routes []*Route) (*routeTable, error) {
	t := &routeTable{byMethod: map[string][]*Route{}, byName: map[string]*Route{}}
	for _, r := range routes {
		segs, vars, err := parseTemplate(r.Template)
		if err != nil {
			return nil, err
		}
		r.segs, r.vars = segs, vars
		r.literal, _, _ = strings.Cut(r.Template, "{")
		r.suffix = r.Template[strings.LastIndexByte(r.Template, '}')+1:]
		r.hasVars = len(vars) > 0
		if _, dup := t.byName[r.Name]; dup {
			return nil, fmt.Errorf("duplicate route %s", r.Name)
		}
		t.byName[r.Name] = r
		t.byMethod[r.Method] = append(t.byMethod[r.Method], r)
		t.all = append(t.all, r)
	}
	return t, nil
}

// routes is the compiled table. The table is a constant of this package and
// TestRouteTable compiles it, so an error here is a programming error.
var routes = func() *routeTable {
	t, err := newRouteTable(engineRoutes)
	if err != nil {
		panic("guard: route table: " + err.Error())
	}
	return t
}()

// Routes returns the Engine API routes the guard knows, in the engine's
// order, for documentation (`hyhome guard routes`).
func Routes() []Route {
	out := make([]Route, 0, len(routes.all))
	for _, r := range routes.all {
		out = append(out, *r)
	}
	return out
}

// knownMethod reports whether any route uses the method. Methods are
// case-sensitive: the engine's router matches them upper-case only.
func (t *routeTable) knownMethod(m string) bool { return len(t.byMethod[m]) > 0 }

// match finds the route the engine's router would dispatch an unversioned,
// decoded path to: the first matching route of the method, in registration
// order.
func (t *routeTable) match(method, path string) (*Route, Vars) {
	for _, r := range t.byMethod[method] {
		if vars, ok := r.match(path); ok {
			return r, vars
		}
	}
	return nil, nil
}

// Judged reports whether requests on the route pass an admission judge.
func (r *Route) Judged() bool { return r.judge != judgeNone }
