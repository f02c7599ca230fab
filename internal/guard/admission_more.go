package guard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/workload"
)

// --- volumes that bind host paths ----------------------------------------

// hostDevice reports whether a volume driver and its options mount a host
// resource: the local driver mounts `device` with `type` and `o` (mount(8)
// options), so o=bind,device=/ is a bind mount of the host's root and
// type=ext4,device=/dev/sda1 mounts a host disk. Network file systems and
// memory-backed types are not host resources. ro among the options makes it
// read-only. Other drivers are plugins the guard does not know.
func hostDevice(driver string, opts map[string]string) (device string, readOnly, ok bool) {
	if driver != "" && driver != "local" {
		return "", false, false
	}
	device = strings.TrimSpace(opts["device"])
	if device == "" {
		return "", false, false
	}
	switch strings.ToLower(strings.TrimSpace(opts["type"])) {
	case "nfs", "nfs4", "cifs", "smb3", "tmpfs", "ramfs":
		return "", false, false
	}
	for _, o := range strings.Split(opts["o"], ",") {
		if strings.TrimSpace(o) == "ro" {
			readOnly = true
		}
	}
	return device, readOnly, true
}

// inlineVolumeDrivers returns, by target, the volume driver configuration a
// create request gives the named volumes it mounts; the engine uses it when
// it creates the volume.
func inlineVolumeDrivers(hc *container.HostConfig) map[string]*mount.Driver {
	out := map[string]*mount.Driver{}
	for _, m := range hc.Mounts {
		if m.Type == mount.TypeVolume && m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil {
			out[m.Target] = m.VolumeOptions.DriverConfig
		}
	}
	return out
}

// volumeBinds turns named volumes that are really host mounts into the bind
// mounts they are, so the bind and socket rules judge them: an existing
// volume by its driver options on the engine, a new one by the driver
// configuration the request gives it.
func (a *admission) volumeBinds(ctx context.Context, w *workload.Workload, inline map[string]*mount.Driver) *denial {
	for i, m := range w.Mounts {
		if m.Type != "volume" || m.Source == "" {
			continue
		}
		if !validRef(m.Source) {
			return deny(http.StatusForbidden, reasonBody, "volume name %q is not valid", m.Source)
		}
		var driver string
		var opts map[string]string
		v, err := a.engine.volume(ctx, m.Source)
		switch {
		case err == nil:
			driver, opts = v.Driver, v.Options
		case errors.Is(err, errNotFound):
			d := inline[m.Target]
			if d == nil {
				continue
			}
			driver, opts = d.Name, d.Options
		default:
			return lookupDenial("volume", m.Source, err, "")
		}
		if dev, ro, ok := hostDevice(driver, opts); ok {
			w.Mounts[i] = workload.Mount{Type: "bind", Source: dev, Target: m.Target, ReadOnly: m.ReadOnly || ro, ViaVolumeDriver: m.Source, Pos: m.Pos}
		}
	}
	return nil
}

// volumeCreate judges POST /volumes/create: a local volume with a host
// device is a bind mount waiting to happen, judged by the bind and socket
// rules (with the volume's own exemption labels).
func (a *admission) volumeCreate(t *target, r *http.Request, body []byte) verdict {
	var req volume.CreateRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	dev, ro, ok := hostDevice(req.Driver, req.DriverOpts)
	if !ok {
		return verdict{}
	}
	name := req.Name
	if name == "" {
		name = "(unnamed)"
	}
	w := &workload.Workload{
		Kind:    workload.KindRequest,
		Name:    name,
		Display: "volume request " + name,
		Labels:  maps.Clone(req.Labels),
		Mounts:  []workload.Mount{{Type: "bind", Source: dev, Target: "every container that mounts it", ReadOnly: ro, ViaVolumeDriver: name}},
	}
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	return a.conclude(w, a.volume)
}

// --- services -------------------------------------------------------------

// service judges POST /services/create and /services/{id}/update: the
// spec is the service's whole desired state, judged like a container
// create. A rollback (rollback=previous) makes the engine deploy the
// previous spec instead of the body, so that spec is judged too.
func (a *admission) service(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var spec swarm.ServiceSpec
	if d := decodeBody(r, body, &spec); d != nil {
		return refused(d)
	}
	engineVersion, err := a.engine.apiVersion(ctx)
	if err != nil {
		return refused(deny(http.StatusBadGateway, reasonLookup, "cannot ask the engine for its API version: %v", err))
	}
	version := engineVersion
	if t.version != "" && compareVersions(t.version, engineVersion) < 0 {
		version = t.version
	}
	notes := serviceForAPIVersion(version, &spec)
	v := a.serviceSpec(ctx, spec)
	if v.deny != nil && len(notes) > 0 {
		v.deny.message += " (" + strings.Join(notes, "; ") + ")"
	}
	if v.deny != nil || t.route.judge != judgeServiceUpdate {
		return v
	}
	rollback := false
	for _, val := range queryValues(t.query, "rollback") {
		rollback = rollback || strings.TrimSpace(val) != ""
	}
	if !rollback {
		return v
	}
	id := t.vars["id"]
	if !validRef(id) {
		return refused(deny(http.StatusForbidden, reasonRoute, "service reference %q is not valid", id))
	}
	svc, err := a.engine.service(ctx, id)
	if err != nil {
		return refused(lookupDenial("service", id, err, ""))
	}
	if svc.PreviousSpec != nil {
		prevSpec := *svc.PreviousSpec
		serviceForAPIVersion(engineVersion, &prevSpec)
		prev := a.serviceSpec(ctx, prevSpec)
		prev.findings = append(v.findings, prev.findings...)
		if prev.deny != nil {
			prev.deny.message = "rolling back to the previous spec: " + prev.deny.message
			return prev
		}
		v.findings = prev.findings
	}
	v.vars = pinVar(t.vars, "id", svc.ID)
	return v
}

// serviceForAPIVersion clears the fields of a service spec that the engine
// ignores at the API version the request is served at (the lower of the
// request's and the engine's): Swarm learnt capabilities and pids limits in
// API 1.41 (the engine drops them for older requests) and
// Privileges.NoNewPrivileges in 1.46 (older engines do not have the field).
// The guard judges what the engine will run, not what the request hoped
// for. It returns what it cleared, for the denial message.
func serviceForAPIVersion(version string, spec *swarm.ServiceSpec) []string {
	var notes []string
	cs := spec.TaskTemplate.ContainerSpec
	if compareVersions(version, "1.41") < 0 {
		if cs != nil && (cs.CapabilityAdd != nil || cs.CapabilityDrop != nil) {
			cs.CapabilityAdd, cs.CapabilityDrop = nil, nil
			notes = append(notes, fmt.Sprintf("at API %s the engine ignores CapabilityAdd and CapabilityDrop (API 1.41)", version))
		}
		if r := spec.TaskTemplate.Resources; r != nil && r.Limits != nil && r.Limits.Pids != 0 {
			r.Limits.Pids = 0
			notes = append(notes, fmt.Sprintf("at API %s the engine ignores Resources.Limits.Pids (API 1.41)", version))
		}
	}
	if compareVersions(version, "1.46") < 0 && cs != nil && cs.Privileges != nil && cs.Privileges.NoNewPrivileges {
		cs.Privileges.NoNewPrivileges = false
		notes = append(notes, fmt.Sprintf("at API %s Swarm ignores Privileges.NoNewPrivileges (API 1.46, Docker 27)", version))
	}
	return notes
}

func (a *admission) serviceSpec(ctx context.Context, spec swarm.ServiceSpec) verdict {
	tt := spec.TaskTemplate
	if ps := tt.PluginSpec; ps != nil {
		privs := make([]plugin.Privilege, 0, len(ps.Privileges))
		for _, p := range ps.Privileges {
			if p != nil {
				privs = append(privs, plugin.Privilege{Name: p.Name, Value: p.Value})
			}
		}
		w, d := pluginWorkload("service request "+spec.Name+" (plugin "+ps.Remote+")", privs)
		if d != nil {
			return refused(d)
		}
		return a.conclude(w, a.plugin)
	}
	if tt.ContainerSpec == nil {
		return refused(deny(http.StatusForbidden, reasonBody, "the service spec has no container spec (runtime %q) the guard can judge", tt.Runtime))
	}
	var lookupErr *denial
	w := engine.Service(engine.ServiceInput{
		Spec: spec,
		Kind: workload.KindRequest,
		// Networks may be named by ID; the host network's name is what
		// makes the workload share the host's namespace.
		NetworkName: func(ref string) string {
			if lookupErr != nil || !validRef(ref) {
				return ref
			}
			n, err := a.engine.network(ctx, ref)
			switch {
			case err == nil:
				if n.Driver == "host" {
					return "host"
				}
				return n.Name
			case errors.Is(err, errNotFound):
				return ref
			default:
				lookupErr = lookupDenial("network", ref, err, "")
				return ref
			}
		},
	})
	if lookupErr != nil {
		return refused(lookupErr)
	}
	// Volumes on Swarm nodes are the nodes' own: only the driver
	// configuration the spec gives is known here.
	for _, m := range tt.ContainerSpec.Mounts {
		if m.Type != mount.TypeVolume || m.VolumeOptions == nil || m.VolumeOptions.DriverConfig == nil {
			continue
		}
		dc := m.VolumeOptions.DriverConfig
		dev, ro, ok := hostDevice(dc.Name, dc.Options)
		if !ok {
			continue
		}
		for i := range w.Mounts {
			if w.Mounts[i].Target == m.Target {
				w.Mounts[i] = workload.Mount{Type: "bind", Source: dev, Target: m.Target, ReadOnly: m.ReadOnly || ro, ViaVolumeDriver: m.Source}
			}
		}
	}
	return a.conclude(w, a.create)
}

// --- plugins -------------------------------------------------------------

// pluginWorkload maps the privileges a plugin asks for (as the engine
// computes them from its config) onto a workload: plugins run as root
// under runc with exactly these grants.
func pluginWorkload(display string, privs []plugin.Privilege) (*workload.Workload, *denial) {
	w := &workload.Workload{Kind: workload.KindRequest, Name: display, Display: display, Labels: map[string]string{}}
	for _, p := range privs {
		switch p.Name {
		case "network":
			for _, v := range p.Value {
				if v == "host" {
					w.Namespaces.Network = workload.Namespace{Mode: "host", Effective: "host"}
				}
			}
		case "host pid namespace":
			if slices.Contains(p.Value, "true") {
				w.Namespaces.PID = workload.Namespace{Mode: "host", Effective: "host"}
			}
		case "host ipc namespace":
			if slices.Contains(p.Value, "true") {
				w.Namespaces.IPC = workload.Namespace{Mode: "host", Effective: "host"}
			}
		case "mount":
			for _, v := range p.Value {
				w.Mounts = append(w.Mounts, workload.Mount{Type: "bind", Source: v, Target: "the plugin"})
			}
		case "device":
			for _, v := range p.Value {
				w.Devices = append(w.Devices, workload.Device{Host: v})
			}
		case "allow-all-devices":
			if slices.Contains(p.Value, "true") {
				// rwm on every device includes /dev/mem, which is what
				// makes host-devices treat it as root on the host.
				w.Devices = append(w.Devices, workload.Device{Host: "/dev/mem", Permissions: "rwm (allow-all-devices)"})
			}
		case "capabilities":
			w.CapAdd = append(w.CapAdd, p.Value...)
		default:
			return nil, deny(http.StatusForbidden, reasonBody, "unknown plugin privilege %q", p.Name)
		}
	}
	return w, nil
}

// pluginPrivileges judges POST /plugins/pull and /plugins/{name}/upgrade:
// the body lists the privileges the client accepts, which the engine
// requires to equal the plugin's.
func (a *admission) pluginPrivileges(t *target, r *http.Request, body []byte) verdict {
	var privs []plugin.Privilege
	if d := decodeBody(r, body, &privs); d != nil {
		return refused(d)
	}
	name := firstOf(t.query, "remote")
	if name == "" {
		name = t.vars["name"]
	}
	w, d := pluginWorkload("plugin "+name, privs)
	if d != nil {
		return refused(d)
	}
	return a.conclude(w, a.plugin)
}

// pluginEnable judges POST /plugins/{name}/enable on the installed plugin's
// configuration and settings, which decide what it runs with. Plugins
// created from a local archive (POST /plugins/create) accept no privileges
// at install: this is where they are judged.
func (a *admission) pluginEnable(ctx context.Context, t *target) verdict {
	ref := t.vars["name"]
	if !validImageRef(ref) {
		return refused(deny(http.StatusForbidden, reasonRoute, "plugin reference %q is not valid", ref))
	}
	p, err := a.engine.plugin(ctx, ref)
	if err != nil {
		return refused(lookupDenial("plugin", ref, err, ""))
	}
	w, d := pluginWorkload("plugin "+p.Name, runtimePrivileges(p))
	if d != nil {
		return refused(d)
	}
	v := a.conclude(w, a.plugin)
	if p.ID != "" {
		v.vars = pinVar(t.vars, "name", p.ID)
	}
	return v
}

// runtimePrivileges computes a plugin's privileges as the engine does when
// it installs one (plugin.computePrivileges), from its settings where the
// user may have changed mount sources and devices.
func runtimePrivileges(p *plugin.Plugin) []plugin.Privilege {
	c := p.Config
	var out []plugin.Privilege
	if nt := c.Network.Type; nt != "" && nt != "null" && nt != "bridge" {
		out = append(out, plugin.Privilege{Name: "network", Value: []string{nt}})
	}
	if c.IpcHost {
		out = append(out, plugin.Privilege{Name: "host ipc namespace", Value: []string{"true"}})
	}
	if c.PidHost {
		out = append(out, plugin.Privilege{Name: "host pid namespace", Value: []string{"true"}})
	}
	mounts := p.Settings.Mounts
	if len(mounts) == 0 {
		mounts = c.Mounts
	}
	for _, m := range mounts {
		if m.Source != nil && *m.Source != "" {
			out = append(out, plugin.Privilege{Name: "mount", Value: []string{*m.Source}})
		}
	}
	devices := p.Settings.Devices
	if len(devices) == 0 {
		devices = c.Linux.Devices
	}
	for _, d := range devices {
		if d.Path != nil && *d.Path != "" {
			out = append(out, plugin.Privilege{Name: "device", Value: []string{*d.Path}})
		}
	}
	if c.Linux.AllowAllDevices {
		out = append(out, plugin.Privilege{Name: "allow-all-devices", Value: []string{"true"}})
	}
	if len(c.Linux.Capabilities) > 0 {
		out = append(out, plugin.Privilege{Name: "capabilities", Value: c.Linux.Capabilities})
	}
	return out
}

// --- build ------------------------------------------------------------------

// buildRequest judges POST /build by the network its build containers get
// (networkmode: host runs every RUN step in the host's network namespace).
// Every value of every spelling of the parameter is judged.
func (a *admission) buildRequest(ctx context.Context, t *target) verdict {
	var all []verdict
	for _, mode := range queryValues(t.query, "networkmode") {
		w := &workload.Workload{Kind: workload.KindRequest, Name: "build", Display: "build request", Labels: map[string]string{}}
		hc := &container.HostConfig{NetworkMode: container.NetworkMode(mode)}
		w.Namespaces.Network = workload.Namespace{Mode: mode}
		if mode == "host" {
			w.Namespaces.Network.Effective = "host"
		}
		res := newRefs(ctx, a.engine)
		if strings.HasPrefix(mode, "container:") {
			engine.ResolveJoins(w, res.workload)
			if res.err != nil {
				return refused(res.err)
			}
		} else if d := a.hostNetworkByReference(ctx, w, hc, nil); d != nil {
			return refused(d)
		}
		v := a.conclude(w, a.build)
		if v.deny != nil {
			return v
		}
		all = append(all, v)
	}
	var out verdict
	for _, v := range all {
		out.findings = append(out.findings, v.findings...)
	}
	return out
}

func firstOf(q map[string][]string, key string) string {
	if v := q[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
