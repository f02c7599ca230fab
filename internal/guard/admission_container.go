package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// containerCreate judges POST /containers/create: the request is the
// workload. The image's default user, user and group names, namespace
// joins, volumes-from and named volumes are resolved on the engine, and
// what was resolved is pinned into the forwarded body so that the engine
// creates what was judged.
func (a *admission) containerCreate(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var req container.CreateRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	if req.Config == nil || strings.TrimSpace(req.Config.Image) == "" {
		return refused(deny(http.StatusForbidden, reasonBody, "the request names no image"))
	}
	if d := judgeFields(&req); d != nil {
		return refused(d)
	}
	f, d := a.facts(ctx)
	if d != nil {
		return refused(d)
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
	res := newRefs(ctx, a.engine)
	w := engine.Container(engine.ContainerInput{Name: name, Config: req.Config, HostConfig: hc, Networks: nets, Kind: workload.KindRequest, Volume: res.volume})
	if res.err != nil {
		return refused(res.err)
	}
	pins := createPins{}

	// The engine runs a container without a user as the image's USER, and
	// resolves user and group names from the image's /etc/passwd and
	// /etc/group when it starts it.
	missingImage := ""
	spec := req.Config.User
	needImage := strings.TrimSpace(spec) == "" || workload.NeedsFiles(spec, hc.GroupAdd) ||
		(hc.MaskedPaths != nil || hc.ReadonlyPaths != nil) && !a.defaultsLearned()
	if needImage {
		ref := req.Config.Image
		if !validImageRef(ref) {
			return refused(deny(http.StatusForbidden, reasonBody, "image reference %q is not valid", ref))
		}
		img, err := a.engine.image(ctx, ref)
		switch {
		case errors.Is(err, errNotFound):
			// Judged below without the image; if nothing else fails, the
			// engine's own 404 lets the client pull and retry.
			missingImage = ref
		case err != nil:
			return refused(lookupDenial("image", ref, err, ""))
		default:
			if strings.TrimSpace(spec) == "" {
				if img.Config != nil {
					spec = img.Config.User
				}
				w.ImageUser, w.ImageUserKnown = spec, true
			}
			id, d := resolveIdentity(spec, hc.GroupAdd, "image "+engine.ShortID(strings.TrimPrefix(img.ID, "sha256:")), func() (userFiles, *denial) {
				return a.imageUsers(ctx, img.ID)
			})
			if d != nil {
				return refused(d)
			}
			w.Identity = id
			if (hc.MaskedPaths != nil || hc.ReadonlyPaths != nil) && !a.defaultsLearned() {
				if _, d := a.imageUsers(ctx, img.ID); d != nil {
					return refused(d)
				}
				// The facts now hold the engine's default lists.
				if f, d = a.facts(ctx); d != nil {
					return refused(d)
				}
			}
			// Pin the identity the engine would resolve now, numerically:
			// a tag moved, or files written into the container, between
			// this check and the start would otherwise change who runs.
			if id.Err == "" && (workload.NeedsFiles(spec, hc.GroupAdd) || spec != req.Config.User) {
				u, groups := id.Pinned()
				pins.user, pins.groupAdd = &u, groups
			}
		}
	} else {
		w.Identity, _ = resolveIdentity(spec, hc.GroupAdd, "", nil)
	}

	// Namespace joins: container:<ref> shares that container's namespace
	// and sees what it sees. Pinned to the container ID.
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
	// socket included; read-only only when the mode says so. The same
	// container named again (in any spelling) with the same mode adds the
	// same mounts: judged once, so that the work follows the containers
	// named, not the length of the list.
	type source struct {
		id string
		ro bool
	}
	inherited := map[source]bool{}
	for _, spec := range hc.VolumesFrom {
		ref, mode, _ := strings.Cut(spec, ":")
		c, d := res.container(ref)
		if d != nil {
			return refused(d)
		}
		ro := slices.Contains(strings.Split(mode, ","), "ro")
		if !inherited[source{c.ID, ro}] {
			inherited[source{c.ID, ro}] = true
			from := res.workloadOf(c)
			if res.err != nil {
				return refused(res.err)
			}
			for _, m := range from.Mounts {
				m.ReadOnly = m.ReadOnly || ro
				w.Mounts = append(w.Mounts, m)
			}
		}
		pinned := c.ID
		if mode != "" {
			pinned += ":" + mode
		}
		pins.volumesFrom = append(pins.volumesFrom, pinned)
	}

	all, failing := a.evaluate(w, a.rules(policy.RequestCreate), f)
	if missingImage != "" && !slices.ContainsFunc(failing, func(f policy.Finding) bool { return f.Rule != ruleNonRoot }) {
		return refused(lookupDenial("image", missingImage, errNotFound, "hyhome guard: the image must be present so that its users can be checked"))
	}
	if len(failing) > 0 {
		return verdict{deny: policyDenial(http.StatusForbidden, failing), findings: all}
	}
	v := verdict{findings: all}
	if !pins.empty() {
		patched, err := pins.apply(body)
		if err != nil {
			return refused(deny(http.StatusForbidden, reasonBody, "request body: %v", err))
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
	f, d := a.facts(ctx)
	if d != nil {
		return refused(d)
	}
	ref := t.vars["name"]
	res := newRefs(ctx, a.engine)
	c, d := res.container(ref)
	if d != nil {
		return refused(d)
	}
	w, d := a.existingContainer(ctx, c, res, "")
	if d != nil {
		return refused(d)
	}
	v := a.concludeWith(w, a.rules(policy.RequestExec), f)
	v.vars = pinVar(t.vars, "name", c.ID)
	return v
}

// existingContainer builds the workload of a container the engine
// reports, its volumes, joins and identity resolved; user, when not empty,
// is an exec's user.
func (a *admission) existingContainer(ctx context.Context, c *container.InspectResponse, res *refs, user string) (*workload.Workload, *denial) {
	w := res.workloadOf(c)
	if res.err != nil {
		return nil, res.err
	}
	w = cloneWorkload(w)
	engine.ResolveJoins(w, res.workload)
	if res.err != nil {
		return nil, res.err
	}
	spec := c.Config.User
	if strings.TrimSpace(user) != "" {
		spec, w.User = user, user
	}
	id, d := containerIdentity(ctx, a.engine, c, spec, w.Mounts)
	if d != nil {
		return nil, d
	}
	w.Identity = id
	return w, nil
}

// containerIdentity resolves a user spec inside an existing container, as
// the engine will when it starts the container or an exec in it: from the
// container's own /etc/passwd and /etc/group. Those files are read through
// the archive API, which sees the container's mounts where the engine sees
// its layers only, and a writable root filesystem can change them before
// the engine reads them: a name is judged only when neither can happen.
func containerIdentity(ctx context.Context, eng admissionEngine, c *container.InspectResponse, spec string, mounts []workload.Mount) (*workload.Identity, *denial) {
	var groupAdd []string
	readOnly := false
	if hc := c.HostConfig; hc != nil {
		groupAdd, readOnly = hc.GroupAdd, hc.ReadonlyRootfs
	}
	from := "container " + engine.ShortID(c.ID)
	if !workload.NeedsFiles(spec, groupAdd) || rootWithoutFiles(spec) {
		return resolveIdentity(spec, groupAdd, from, nil)
	}
	targets := make([]string, 0, len(mounts))
	for _, m := range mounts {
		targets = append(targets, m.Target)
	}
	if hc := c.HostConfig; hc != nil {
		for t := range hc.Tmpfs {
			targets = append(targets, t)
		}
	}
	for _, t := range targets {
		switch path.Clean(t) {
		case "/", "/etc", "/etc/passwd", "/etc/group":
			return &workload.Identity{From: from, Err: fmt.Sprintf("a mount at %s covers /etc/passwd, which the engine reads from the container's layers, not the mount; use numeric UID:GID", t)}, nil
		}
	}
	if !readOnly {
		return &workload.Identity{From: from, Err: "the container's root filesystem is writable, so /etc/passwd can change before the engine reads it; use numeric UID:GID or a read-only root filesystem"}, nil
	}
	return resolveIdentity(spec, groupAdd, from, func() (userFiles, *denial) {
		f, err := eng.containerFiles(ctx, c.ID)
		if err != nil {
			return f, deny(http.StatusBadGateway, reasonLookup, "cannot read the user database of container %s: %v", engine.ShortID(c.ID), err)
		}
		return f, nil
	})
}

// cloneWorkload copies a workload deeply enough that namespaces, mounts
// and identity can be changed without changing the cached original.
func cloneWorkload(w *workload.Workload) *workload.Workload {
	cp := *w
	cp.Mounts = slices.Clone(w.Mounts)
	return &cp
}

// containerUpdate judges POST /containers/{name}/update. An update changes
// resources only, so it is judged on what it changes: it is refused when
// it makes a limit rule fail that did not fail before (removing the memory
// limit, or raising it to the host's memory), not for what the container
// lacked already.
func (a *admission) containerUpdate(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var upd container.UpdateConfig
	if d := decodeBody(r, body, &upd); d != nil {
		return refused(d)
	}
	if d := judgeFields(&upd); d != nil {
		return refused(d)
	}
	f, d := a.facts(ctx)
	if d != nil {
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
	_, wasFailing := a.evaluate(before, a.rules(policy.RequestUpdate), f)
	all, failing := a.evaluate(&after, a.rules(policy.RequestUpdate), f)
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
// plus its own. The user it resolves to is pinned, numerically, into the
// forwarded body.
func (a *admission) execCreate(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var req execCreateRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	if d := judgeFields(&req); d != nil {
		return refused(d)
	}
	f, d := a.facts(ctx)
	if d != nil {
		return refused(d)
	}
	res := newRefs(ctx, a.engine)
	c, d := res.container(t.vars["name"])
	if d != nil {
		return refused(d)
	}
	w, d := a.existingContainer(ctx, c, res, req.User)
	if d != nil {
		return refused(d)
	}
	execAs(w, req.Privileged)
	v := a.concludeWith(w, a.rules(policy.RequestExec), f)
	v.vars = pinVar(t.vars, "name", c.ID)
	if v.deny == nil && w.Identity != nil && w.Identity.Err == "" && workload.NeedsFiles(w.User, nil) {
		patched, err := pinExecUser(body, *w.Identity)
		if err != nil {
			return refused(deny(http.StatusBadRequest, reasonBody, "request body: %v", err))
		}
		v.body = patched
	}
	return v
}

// pinExecUser writes the exec's resolved user into its body as uid:gid. An
// exec takes the container's extra groups (GroupAdd) and has none of its
// own, so a name's supplementary groups from /etc/group are dropped: the
// exec runs with fewer groups, never more.
func pinExecUser(body []byte, id workload.Identity) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	u, _ := id.Pinned()
	b, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	top["User"] = b
	return json.Marshal(top)
}

// execStart judges POST /exec/{id}/start on the exec instance as the engine
// recorded it, so that an exec created outside the guard (privileged, as
// root) cannot be started through it.
func (a *admission) execStart(ctx context.Context, t *target) verdict {
	id := t.vars["name"]
	if !validRef(id) {
		return refused(deny(http.StatusForbidden, reasonRoute, "exec ID %q is not valid", id))
	}
	f, d := a.facts(ctx)
	if d != nil {
		return refused(d)
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
	user, privileged := "", false
	if pc := e.ProcessConfig; pc != nil {
		user, privileged = pc.User, pc.Privileged != nil && *pc.Privileged
	}
	w, d := a.existingContainer(ctx, c, res, user)
	if d != nil {
		return refused(d)
	}
	execAs(w, privileged)
	v := a.concludeWith(w, a.rules(policy.RequestExec), f)
	v.vars = pinVar(t.vars, "name", e.ID)
	return v
}

// execAs makes a container's workload the exec process's.
func execAs(w *workload.Workload, privileged bool) {
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

// refs looks up the containers and volumes a request refers to, once each.
type refs struct {
	ctx    context.Context
	engine admissionEngine
	byRef  map[string]*container.InspectResponse
	byID   map[string]*workload.Workload
	vols   map[string]*workload.VolumeConfig
	noVols map[string]bool
	// err is the first failed lookup: what cannot be looked up must not
	// pass.
	err *denial
}

func newRefs(ctx context.Context, eng admissionEngine) *refs {
	return &refs{ctx: ctx, engine: eng, byRef: map[string]*container.InspectResponse{}, byID: map[string]*workload.Workload{},
		vols: map[string]*workload.VolumeConfig{}, noVols: map[string]bool{}}
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
	if c.Config == nil {
		c.Config = &container.Config{}
	}
	r.byRef[ref] = c
	return c, nil
}

// volume is the lookup engine.Container mounts volumes with: an existing
// volume's driver configuration, or exists false.
func (r *refs) volume(name string) (*workload.VolumeConfig, bool) {
	if cfg, ok := r.vols[name]; ok {
		return cfg, true
	}
	if r.noVols[name] || r.err != nil {
		return nil, false
	}
	if !validRef(name) {
		r.err = deny(http.StatusForbidden, reasonBody, "volume name %q is not valid", name)
		return nil, false
	}
	v, err := r.engine.volume(r.ctx, name)
	switch {
	case errors.Is(err, errNotFound):
		r.noVols[name] = true
		return nil, false
	case err != nil:
		r.err = lookupDenial("volume", name, err, "")
		return nil, false
	}
	cfg := &workload.VolumeConfig{Driver: v.Driver, Options: v.Options}
	r.vols[name] = cfg
	return cfg, true
}

// workloadOf builds the workload of a container the engine reports, with
// its effective mounts and their volumes.
func (r *refs) workloadOf(c *container.InspectResponse) *workload.Workload {
	if w, ok := r.byID[c.ID]; ok {
		return w
	}
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
		Networks: nets, MountPoints: mounts, Kind: workload.KindContainer, Volume: r.volume,
	})
	if slices.Contains(nets, "host") && !w.Namespaces.Network.IsHost() {
		w.Namespaces.Network = workload.Namespace{Mode: "host", Effective: "host"}
	}
	// The engine merges the image's USER into Config.User at create, so an
	// empty user on inspect means root.
	if strings.TrimSpace(c.Config.User) == "" {
		w.ImageUser, w.ImageUserKnown = "", true
	}
	r.byID[c.ID] = w
	return w
}

// workload is the lookup engine.ResolveJoins follows: a joined container
// with its whole configuration and identity, for namespace-join to judge.
// The first failure is kept in err, because a join that cannot be followed
// must not pass.
func (r *refs) workload(ref string) *workload.Workload {
	if r.err != nil {
		return nil
	}
	c, d := r.container(ref)
	if d != nil {
		r.err = d
		return nil
	}
	w := r.workloadOf(c)
	if r.err != nil {
		return nil
	}
	if w.Identity == nil {
		id, d := containerIdentity(r.ctx, r.engine, c, c.Config.User, w.Mounts)
		if d != nil {
			r.err = d
			return nil
		}
		w.Identity = id
	}
	return w
}

// createPins are values of a container create body the guard resolved and
// judged, written back so the engine cannot resolve them differently.
type createPins struct {
	user        *string
	groupAdd    []string
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
	if p.user != nil || len(p.modes) > 0 || len(p.volumesFrom) > 0 {
		hc := map[string]json.RawMessage{}
		if raw, ok := top["HostConfig"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &hc); err != nil {
				return nil, fmt.Errorf("pinning HostConfig: %v", err)
			}
		}
		set := func(k string, v any) error {
			b, err := json.Marshal(v)
			hc[k] = b
			return err
		}
		for field, v := range p.modes {
			if err := set(field, v); err != nil {
				return nil, err
			}
		}
		if len(p.volumesFrom) > 0 {
			if err := set("VolumesFrom", p.volumesFrom); err != nil {
				return nil, err
			}
		}
		if p.user != nil {
			// The user's groups, resolved with it, replace names.
			if err := set("GroupAdd", p.groupAdd); err != nil {
				return nil, err
			}
		}
		b, err := json.Marshal(hc)
		if err != nil {
			return nil, err
		}
		top["HostConfig"] = b
	}
	return json.Marshal(top)
}
