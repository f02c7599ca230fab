package guard

import (
	"context"
	"net/http"
	"slices"

	"github.com/moby/moby/api/types/plugin"

	"github.com/hy-home/hyhome/internal/workload"
)

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
