package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

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
