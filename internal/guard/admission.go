package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// Rule IDs the admission judges name directly; every other rule set is
// derived from the registry, so rules added to the catalogue are judged
// without changes here.
const (
	ruleHostNamespaces = "host-namespaces"
	ruleNonRoot        = "non-root"
	ruleBindReadonly   = "bind-mount-readonly"
	ruleDockerSocket   = "docker-socket"
	ruleMemoryLimit    = "memory-limit"
	rulePidsLimit      = "pids-limit"
	ruleADRExemption   = policy.RuleADRExemption
)

// isolationRequirements are the requirements whose rules decide whether a
// process in a container can reach the host or run as root.
var isolationRequirements = []string{"NFR-SEC-01", "SEC-IDENTITY", "Strategy-ST-03"}

// admission judges write requests by turning them into workloads and
// evaluating the rule catalogue on them.
type admission struct {
	registry *policy.Registry
	adrs     *adr.Resolver
	strict   bool
	failOn   policy.Severity
	engine   lookups

	// Rule sets, by what a request can change.
	create    map[string]bool // a new container or service: every per-workload rule
	isolation map[string]bool // a process handed out in an existing container
	plugin    map[string]bool // a plugin's privileges (plugins have no user to judge)
	update    map[string]bool // resources of an existing container
	build     map[string]bool // build containers' network
	volume    map[string]bool // a volume that binds a host path
}

func newAdmission(reg *policy.Registry, adrs *adr.Resolver, strict bool, failOn policy.Severity, eng lookups) *admission {
	a := &admission{
		registry: reg, adrs: adrs, strict: strict, failOn: failOn, engine: eng,
		create: map[string]bool{}, isolation: map[string]bool{}, plugin: map[string]bool{},
		update: map[string]bool{}, build: map[string]bool{}, volume: map[string]bool{},
	}
	for _, r := range reg.Rules() {
		// Project rules (memory-budget, traefik-tls) judge how workloads add
		// up or refer to each other; one request does not carry that, and
		// replacing a container would count it twice. lint and audit judge
		// them on the whole project.
		if r.Check == nil || !r.AppliesTo(workload.KindRequest) {
			continue
		}
		a.create[r.ID] = true
		for _, req := range r.Requirements {
			if slices.Contains(isolationRequirements, req) {
				a.isolation[r.ID] = true
				if r.ID != ruleNonRoot {
					a.plugin[r.ID] = true
				}
			}
		}
	}
	for _, id := range []string{ruleMemoryLimit, rulePidsLimit} {
		a.update[id] = reg.Get(id) != nil
	}
	a.build[ruleHostNamespaces] = reg.Get(ruleHostNamespaces) != nil
	for _, id := range []string{ruleBindReadonly, ruleDockerSocket, ruleADRExemption} {
		a.volume[id] = reg.Get(id) != nil
	}
	return a
}

// verdict is what a judge decided.
type verdict struct {
	deny *denial
	// findings are every finding evaluated, warnings and exempted ones
	// included, for the log.
	findings []policy.Finding
	// body, when set, replaces the request body: the judged body with the
	// values the judge pinned (resolved IDs, the image's user).
	body []byte
	// vars, when set, replace the route variables (a name pinned to the ID
	// that was judged, so that a rename cannot swap the target).
	vars Vars
}

func refused(d *denial) verdict { return verdict{deny: d} }

// judge runs the route's judge on a canonical request and its buffered body.
func (a *admission) judge(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	switch t.route.judge {
	case judgeContainerCreate:
		return a.containerCreate(ctx, t, r, body)
	case judgeContainerUpdate:
		return a.containerUpdate(ctx, t, r, body)
	case judgeContainerUse:
		return a.containerUse(ctx, t)
	case judgeExecCreate:
		return a.execCreate(ctx, t, r, body)
	case judgeExecStart:
		return a.execStart(ctx, t)
	case judgeServiceCreate, judgeServiceUpdate:
		return a.service(ctx, t, r, body)
	case judgeVolumeCreate:
		return a.volumeCreate(t, r, body)
	case judgePluginPrivileges:
		return a.pluginPrivileges(t, r, body)
	case judgePluginEnable:
		return a.pluginEnable(ctx, t)
	case judgeBuild:
		return a.buildRequest(ctx, t)
	case judgeUnjudgeable:
		return refused(deny(http.StatusForbidden, reasonUnjudgeable,
			"%s is BuildKit's control API: build requests and their entitlements (network.host is granted by default on Docker 20.10) travel inside an HTTP/2 stream the guard cannot judge; build through POST /build (the classic builder)", t.route.Name))
	case judgeNone:
		return verdict{}
	}
	// A route with a judge this switch does not know must not pass unjudged.
	return refused(deny(http.StatusForbidden, reasonUnjudgeable, "%s has no admission judge", t.route.Name))
}

// evaluate runs the rules in only on one workload and returns every finding
// and the failing ones (not exempted, at or above the fail-on severity).
func (a *admission) evaluate(w *workload.Workload, only map[string]bool) (all, failing []policy.Finding) {
	env := &policy.Env{Registry: a.registry, ADRs: a.adrs, Strict: a.strict, Only: only}
	all = policy.Evaluate(&workload.Project{Name: w.Name, Workloads: []*workload.Workload{w}}, env)
	for _, f := range all {
		if !f.Exempted && f.Severity >= a.failOn {
			failing = append(failing, f)
		}
	}
	return all, failing
}

// conclude turns an evaluation into a verdict.
func (a *admission) conclude(w *workload.Workload, only map[string]bool) verdict {
	all, failing := a.evaluate(w, only)
	if len(failing) > 0 {
		return verdict{deny: policyDenial(http.StatusForbidden, failing), findings: all}
	}
	return verdict{findings: all}
}

// decodeBody checks that a judged body is present and JSON, and decodes it
// strictly into v.
func decodeBody(r *http.Request, body []byte, v any) *denial {
	if len(bytes.TrimSpace(body)) == 0 {
		// CVE-2024-41110: AuthZ plugins skipped bodies the request did not
		// announce (Content-Length 0, chunked); the guard reads the body
		// whatever the framing says, and an empty one has nothing to admit.
		return deny(http.StatusForbidden, reasonBody, "the request body is empty; there is nothing to admit")
	}
	if !isJSON(r) {
		return deny(http.StatusForbidden, reasonBody, "the request body must be declared application/json, not %q", r.Header.Get("Content-Type"))
	}
	if err := decodeStrict(body, v); err != nil {
		return deny(http.StatusBadRequest, reasonBody, "request body: %v", err)
	}
	return nil
}

// lookupDenial turns a failed lookup into a denial: a missing object is the
// engine's own 404 (so that clients react as they would without the guard,
// e.g. the docker CLI pulls a missing image), anything else fails closed.
func lookupDenial(kind, ref string, err error, why string) *denial {
	if errors.Is(err, errNotFound) {
		d := deny(http.StatusNotFound, reasonNotFound, "No such %s: %s", kind, ref)
		if why != "" {
			d.message += " (" + why + ")"
		}
		return d
	}
	return deny(http.StatusBadGateway, reasonLookup, "cannot check %s %s: %v", kind, ref, err)
}

// validRef reports whether a container, volume, network, exec, service or
// plugin reference can be looked up by path without being read as another
// path: no slashes, no dot segments.
func validRef(ref string) bool {
	ref = strings.TrimPrefix(ref, "/")
	return ref != "" && ref != "." && ref != ".." && !strings.ContainsAny(ref, "/?#\\") && !strings.ContainsFunc(ref, isSpaceOrControl)
}

// validImageRef is validRef for image references, which may hold slashes
// (repository paths) but no dot segments.
func validImageRef(ref string) bool {
	if ref == "" || strings.HasPrefix(ref, "/") || strings.ContainsAny(ref, "?#\\") || strings.ContainsFunc(ref, isSpaceOrControl) {
		return false
	}
	for _, seg := range strings.Split(ref, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// --- containers -------------------------------------------------------

// containerCreate judges POST /containers/create: the request is the
// workload. The image's default user, namespace joins, volumes-from and
// named volumes are resolved on the engine, and what was resolved is pinned
// into the forwarded body so that the engine creates what was judged.
func (a *admission) containerCreate(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var req container.CreateRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	if req.Config == nil || strings.TrimSpace(req.Config.Image) == "" {
		return refused(deny(http.StatusForbidden, reasonBody, "the request names no image"))
	}
	hc := req.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	name := ""
	if v := t.query["name"]; len(v) > 0 {
		name = strings.TrimPrefix(v[0], "/")
	}
	var nets []string
	if req.NetworkingConfig != nil {
		for n := range req.NetworkingConfig.EndpointsConfig {
			nets = append(nets, n)
		}
		sort.Strings(nets)
	}
	w := engine.Container(engine.ContainerInput{Name: name, Config: req.Config, HostConfig: hc, Networks: nets, Kind: workload.KindRequest})
	res := newRefs(ctx, a.engine)
	pins := createPins{}
	missingImage := ""

	// The engine runs a container without a user as the image's USER.
	if strings.TrimSpace(req.Config.User) == "" {
		ref := req.Config.Image
		if !validImageRef(ref) {
			return refused(deny(http.StatusForbidden, reasonBody, "image reference %q is not valid", ref))
		}
		img, err := a.engine.image(ctx, ref)
		switch {
		case errors.Is(err, errNotFound):
			// Judged below without the image's user; if nothing else
			// fails, the engine's own 404 lets the client pull and retry.
			missingImage = ref
		case err != nil:
			return refused(lookupDenial("image", ref, err, ""))
		default:
			user := ""
			if img.Config != nil {
				user = img.Config.User
			}
			w.ImageUser, w.ImageUserKnown = user, true
			// Pin the user: a tag moved between this check and the
			// create would otherwise run another image's USER.
			if user != "" {
				pins.user = &user
			}
		}
	}

	// Namespace joins: container:<ref> shares that container's namespace,
	// which may be the host's. Pinned to the container ID.
	for _, j := range []struct {
		field string
		mode  string
	}{{"PidMode", string(hc.PidMode)}, {"NetworkMode", string(hc.NetworkMode)}, {"IpcMode", string(hc.IpcMode)}} {
		ref, ok := strings.CutPrefix(j.mode, "container:")
		if !ok {
			continue
		}
		c, d := res.container(ref)
		if d != nil {
			return refused(d)
		}
		pins.setMode(j.field, "container:"+c.ID)
	}
	engine.ResolveJoins(w, res.workload)
	if res.err != nil {
		return refused(res.err)
	}
	if d := a.hostNetworkByReference(ctx, w, hc, nets); d != nil {
		return refused(d)
	}

	// volumes_from inherits every mount of the other container, the Docker
	// socket included; read-only only when the mode says so.
	for _, spec := range hc.VolumesFrom {
		ref, mode, _ := strings.Cut(spec, ":")
		c, d := res.container(ref)
		if d != nil {
			return refused(d)
		}
		ro := slices.Contains(strings.Split(mode, ","), "ro")
		for _, m := range c.Mounts {
			src := m.Source
			if m.Type == "volume" {
				src = m.Name
			}
			w.Mounts = append(w.Mounts, workload.Mount{Type: string(m.Type), Source: src, Target: m.Destination, ReadOnly: !m.RW || ro})
		}
		pinned := c.ID
		if mode != "" {
			pinned += ":" + mode
		}
		pins.volumesFrom = append(pins.volumesFrom, pinned)
	}
	if d := a.volumeBinds(ctx, w, inlineVolumeDrivers(hc)); d != nil {
		return refused(d)
	}

	all, failing := a.evaluate(w, a.create)
	if missingImage != "" && !slices.ContainsFunc(failing, func(f policy.Finding) bool { return f.Rule != ruleNonRoot }) {
		return refused(lookupDenial("image", missingImage, errNotFound, "hyhome guard: the image must be present so that its default user can be checked"))
	}
	if len(failing) > 0 {
		return verdict{deny: policyDenial(http.StatusForbidden, failing), findings: all}
	}
	v := verdict{findings: all}
	if !pins.empty() {
		patched, err := pins.apply(body)
		if err != nil {
			return refused(deny(http.StatusBadRequest, reasonBody, "request body: %v", err))
		}
		v.body = patched
	}
	return v
}

// hostNetworkByReference catches the host network named by ID or through a
// network attachment rather than as network_mode: host: the engine resolves
// names and IDs (and unique ID prefixes) to the same host network.
func (a *admission) hostNetworkByReference(ctx context.Context, w *workload.Workload, hc *container.HostConfig, endpoints []string) *denial {
	if w.Namespaces.Network.IsHost() {
		return nil
	}
	refs := append([]string(nil), endpoints...)
	if nm := string(hc.NetworkMode); nm != "" && !strings.HasPrefix(nm, "container:") {
		refs = append(refs, nm)
	}
	for _, ref := range refs {
		switch ref {
		case "host":
			w.Namespaces.Network = workload.Namespace{Mode: ref, Effective: "host"}
			return nil
		case "", "default", "bridge", "none":
			continue
		}
		if !validRef(ref) {
			return deny(http.StatusForbidden, reasonBody, "network reference %q is not valid", ref)
		}
		n, err := a.engine.network(ctx, ref)
		if errors.Is(err, errNotFound) {
			// Only one host network can exist, and it cannot be
			// re-created: a network that does not exist now never is it.
			continue
		}
		if err != nil {
			return lookupDenial("network", ref, err, "")
		}
		if n.Name == "host" || n.Driver == "host" {
			w.Namespaces.Network = workload.Namespace{Mode: ref, Effective: "host", Via: "network " + n.Name}
			return nil
		}
	}
	return nil
}

// containerUse judges requests that hand the client a process in, or the
// filesystem of, an existing container (start, restart, attach, docker cp,
// export) by the isolation rules on the container as the engine reports
// it. Without this, a container created outside the guard (privileged, the
// host's namespaces, the Docker socket) would be one `docker start` away.
func (a *admission) containerUse(ctx context.Context, t *target) verdict {
	ref := t.vars["name"]
	res := newRefs(ctx, a.engine)
	c, d := res.container(ref)
	if d != nil {
		return refused(d)
	}
	w, d := a.existingContainer(ctx, c, res)
	if d != nil {
		return refused(d)
	}
	v := a.conclude(w, a.isolation)
	v.vars = pinVar(t.vars, "name", c.ID)
	return v
}

// existingContainer builds the workload of a container the engine reports.
func (a *admission) existingContainer(ctx context.Context, c *container.InspectResponse, res *refs) (*workload.Workload, *denial) {
	var nets []string
	if c.NetworkSettings != nil {
		for n := range c.NetworkSettings.Networks {
			nets = append(nets, n)
		}
		sort.Strings(nets)
	}
	mounts := c.Mounts
	if mounts == nil {
		mounts = []container.MountPoint{}
	}
	w := engine.Container(engine.ContainerInput{
		ID: c.ID, Name: c.Name, Config: c.Config, HostConfig: c.HostConfig,
		Networks: nets, MountPoints: mounts, Kind: workload.KindContainer,
	})
	if slices.Contains(nets, "host") && !w.Namespaces.Network.IsHost() {
		w.Namespaces.Network = workload.Namespace{Mode: "host", Effective: "host"}
	}
	// The engine merges the image's USER into Config.User at create, so an
	// empty user on inspect means root.
	if c.Config != nil && strings.TrimSpace(c.Config.User) == "" {
		w.ImageUser, w.ImageUserKnown = "", true
	}
	engine.ResolveJoins(w, res.workload)
	if res.err != nil {
		return nil, res.err
	}
	if d := a.volumeBinds(ctx, w, nil); d != nil {
		return nil, d
	}
	return w, nil
}

// containerUpdate judges POST /containers/{name}/update. An update changes
// resources only, so it is judged on what it changes: it is refused when
// it makes a limit rule fail that did not fail before (removing the memory
// limit), not for what the container lacked already.
func (a *admission) containerUpdate(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var upd container.UpdateConfig
	if d := decodeBody(r, body, &upd); d != nil {
		return refused(d)
	}
	ref := t.vars["name"]
	res := newRefs(ctx, a.engine)
	c, d := res.container(ref)
	if d != nil {
		return refused(d)
	}
	before := engine.Container(engine.ContainerInput{ID: c.ID, Name: c.Name, Config: c.Config, HostConfig: c.HostConfig, MountPoints: c.Mounts, Kind: workload.KindContainer})
	after := *before
	// The engine applies non-zero values only (container.UpdateContainer).
	if upd.Memory != 0 {
		after.MemoryLimit = max(upd.Memory, 0)
	}
	if upd.PidsLimit != nil {
		after.PidsLimit = *upd.PidsLimit
	}
	_, wasFailing := a.evaluate(before, a.update)
	all, failing := a.evaluate(&after, a.update)
	var regressions []policy.Finding
	for _, f := range failing {
		if !slices.ContainsFunc(wasFailing, func(b policy.Finding) bool { return b.Rule == f.Rule }) {
			regressions = append(regressions, f)
		}
	}
	v := verdict{findings: all, vars: pinVar(t.vars, "name", c.ID)}
	if len(regressions) > 0 {
		v.deny = policyDenial(http.StatusForbidden, regressions)
	}
	return v
}

// execCreateRequest is the exec create body. Detach is not in the current
// API type, but the docker CLI still sends it and engines ignore it.
type execCreateRequest struct {
	container.ExecCreateRequest
	Detach bool
}

// execCreate judges POST /containers/{name}/exec: the exec process runs as
// the exec's user (or the container's), with the container's privileges
// plus its own.
func (a *admission) execCreate(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var req execCreateRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	res := newRefs(ctx, a.engine)
	c, d := res.container(t.vars["name"])
	if d != nil {
		return refused(d)
	}
	w, d := a.existingContainer(ctx, c, res)
	if d != nil {
		return refused(d)
	}
	execAs(w, req.User, req.Privileged)
	v := a.conclude(w, a.isolation)
	v.vars = pinVar(t.vars, "name", c.ID)
	return v
}

// execStart judges POST /exec/{id}/start on the exec instance as the engine
// recorded it, so that an exec created outside the guard (privileged, as
// root) cannot be started through it.
func (a *admission) execStart(ctx context.Context, t *target) verdict {
	id := t.vars["name"]
	if !validRef(id) {
		return refused(deny(http.StatusForbidden, reasonRoute, "exec ID %q is not valid", id))
	}
	e, err := a.engine.exec(ctx, id)
	if err != nil {
		return refused(lookupDenial("exec instance", id, err, ""))
	}
	res := newRefs(ctx, a.engine)
	c, d := res.container(e.ContainerID)
	if d != nil {
		return refused(d)
	}
	w, d := a.existingContainer(ctx, c, res)
	if d != nil {
		return refused(d)
	}
	if pc := e.ProcessConfig; pc != nil {
		execAs(w, pc.User, pc.Privileged != nil && *pc.Privileged)
	}
	v := a.conclude(w, a.isolation)
	v.vars = pinVar(t.vars, "name", e.ID)
	return v
}

// execAs makes a container's workload the exec process's.
func execAs(w *workload.Workload, user string, privileged bool) {
	if strings.TrimSpace(user) != "" {
		w.User = user
	}
	w.Privileged = w.Privileged || privileged
	w.Display = "exec in " + w.Display
}

func pinVar(vars Vars, key, value string) Vars {
	out := make(Vars, len(vars))
	for k, v := range vars {
		out[k] = v
	}
	out[key] = value
	return out
}

// --- references to other containers ---------------------------------------

// refs looks up containers a request refers to, once each.
type refs struct {
	ctx    context.Context
	engine lookups
	byRef  map[string]*container.InspectResponse
	byID   map[string]*workload.Workload
	err    *denial
}

func newRefs(ctx context.Context, eng lookups) *refs {
	return &refs{ctx: ctx, engine: eng, byRef: map[string]*container.InspectResponse{}, byID: map[string]*workload.Workload{}}
}

func (r *refs) container(ref string) (*container.InspectResponse, *denial) {
	if c, ok := r.byRef[ref]; ok {
		return c, nil
	}
	if !validRef(ref) {
		return nil, deny(http.StatusForbidden, reasonBody, "container reference %q is not valid", ref)
	}
	c, err := r.engine.container(r.ctx, ref)
	if err != nil {
		return nil, lookupDenial("container", ref, err, "")
	}
	r.byRef[ref] = c
	return c, nil
}

// workload is the lookup engine.ResolveJoins follows; the first failure is
// kept in err, because a join that cannot be followed must not pass.
func (r *refs) workload(ref string) *workload.Workload {
	if r.err != nil {
		return nil
	}
	c, d := r.container(ref)
	if d != nil {
		r.err = d
		return nil
	}
	if w, ok := r.byID[c.ID]; ok {
		return w
	}
	w := engine.Container(engine.ContainerInput{ID: c.ID, Name: c.Name, Config: c.Config, HostConfig: c.HostConfig, Kind: workload.KindContainer})
	r.byID[c.ID] = w
	return w
}

// --- pins -------------------------------------------------------------------

// createPins are values of a container create body the guard resolved and
// judged, written back so the engine cannot resolve them differently.
type createPins struct {
	user        *string
	modes       map[string]string
	volumesFrom []string
}

func (p *createPins) setMode(field, value string) {
	if p.modes == nil {
		p.modes = map[string]string{}
	}
	p.modes[field] = value
}

func (p *createPins) empty() bool {
	return p.user == nil && len(p.modes) == 0 && len(p.volumesFrom) == 0
}

// apply writes the pins into the original body. Every other value keeps
// its exact bytes: decodeStrict established that each key is spelled
// exactly and appears once, so replacing a key's value is unambiguous.
func (p *createPins) apply(body []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	if p.user != nil {
		b, err := json.Marshal(*p.user)
		if err != nil {
			return nil, err
		}
		top["User"] = b
	}
	if len(p.modes) > 0 || len(p.volumesFrom) > 0 {
		var hc map[string]json.RawMessage
		if err := json.Unmarshal(top["HostConfig"], &hc); err != nil || hc == nil {
			return nil, fmt.Errorf("pinning HostConfig: %v", err)
		}
		for field, v := range p.modes {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			hc[field] = b
		}
		if len(p.volumesFrom) > 0 {
			b, err := json.Marshal(p.volumesFrom)
			if err != nil {
				return nil, err
			}
			hc["VolumesFrom"] = b
		}
		b, err := json.Marshal(hc)
		if err != nil {
			return nil, err
		}
		top["HostConfig"] = b
	}
	return json.Marshal(top)
}
