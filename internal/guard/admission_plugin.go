package guard

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/plugin"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// Plugins run as root under runc with Docker's default capabilities,
// without no-new-privileges, seccomp or a memory limit, whatever their
// configuration asks for: no rule of the catalogue can make one compliant.
// So a plugin is created, pulled, upgraded or enabled only when the
// listener's profile names it (plugins: [...]), and its configuration is
// judged on top of that.

// pluginRef normalises a plugin reference the way the engine names plugins
// (reference.FamiliarString of the name with its tag, "latest" when none),
// keeping a digest when there is one.
func pluginRef(s string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", err
	}
	if _, ok := ref.(reference.Canonical); ok {
		return reference.FamiliarString(ref), nil
	}
	return reference.FamiliarString(reference.TagNameOnly(ref)), nil
}

// pluginNamed checks that the profile names every reference a plugin
// request involves (its local name, the remote its code comes from).
func pluginNamed(p *Profile, route string, refs ...string) *denial {
	for _, r := range refs {
		if r == "" {
			continue
		}
		ref, err := pluginRef(r)
		if err != nil {
			return deny(http.StatusForbidden, reasonBody, "%s: plugin reference %q is not valid: %v", route, r, err)
		}
		if !p.AllowsPlugin(ref) {
			return deny(http.StatusForbidden, reasonPlugin, "%s: plugin %s is not named in profile %s (plugins run as root with default capabilities; a profile must name each plugin it may install or enable)", route, ref, p.Name)
		}
	}
	return nil
}

// pluginCreate judges POST /plugins/create: the plugin is whatever archive
// the client sends, under the name it asks for.
func (a *admission) pluginCreate(p *Profile, t *target) verdict {
	names := queryValues(t.query, "name")
	if len(names) == 0 {
		return refused(deny(http.StatusForbidden, reasonPlugin, "%s: no plugin name given", t.route.Name))
	}
	if d := pluginNamed(p, t.route.Name, names...); d != nil {
		return refused(d)
	}
	return verdict{}
}

// pluginWorkload maps the privileges a plugin asks for (as the engine
// computes them from its config) onto a workload: plugins run as root
// under runc with exactly these grants. Mounts are read-only when ro names
// their source (the mode is in the plugin's config, not in its privileges;
// see runtimePrivileges).
func pluginWorkload(display string, privs []plugin.Privilege, ro map[string]bool) (*workload.Workload, *denial) {
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
				w.Mounts = append(w.Mounts, workload.Mount{Type: "bind", Source: v, Target: "the plugin", ReadOnly: ro[v]})
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

// servicePlugin refuses a Swarm service whose tasks are a plugin (runtime
// plugin) the profile does not name: each node pulls and enables it. It
// runs after the service judge, which decoded the body strictly.
func servicePlugin(p *Profile, t *target, body []byte) *denial {
	var spec struct {
		TaskTemplate struct {
			PluginSpec *struct{ Name, Remote string }
		}
	}
	if err := json.Unmarshal(body, &spec); err != nil {
		return deny(http.StatusForbidden, reasonBody, "request body: %v", err)
	}
	if ps := spec.TaskTemplate.PluginSpec; ps != nil {
		if ps.Remote == "" {
			return deny(http.StatusForbidden, reasonPlugin, "%s: the service's plugin names no remote", t.route.Name)
		}
		return pluginNamed(p, t.route.Name, ps.Remote, ps.Name)
	}
	return nil
}

// pluginPrivileges judges POST /plugins/pull and /plugins/{name}/upgrade:
// the profile must name the plugin (its remote, and the local name it is
// installed under), and the body lists the privileges the client accepts,
// which the engine requires to equal the plugin's. A pull installs without
// running; whether a mount is read-only is in the plugin's config, which
// enable judges, so mounts are judged here by their sources only.
func (a *admission) pluginPrivileges(p *Profile, t *target, r *http.Request, body []byte) verdict {
	remotes := queryValues(t.query, "remote")
	if len(remotes) == 0 {
		return refused(deny(http.StatusForbidden, reasonPlugin, "%s: no remote plugin reference given", t.route.Name))
	}
	local := queryValues(t.query, "name")
	if t.route.judge == judgePluginPrivileges && t.vars["name"] != "" {
		local = append(local, t.vars["name"]) // upgrade: the installed plugin
	}
	if len(queryValues(t.query, "name")) == 0 && t.vars["name"] == "" {
		// Pulled without a name, the plugin is named after its remote,
		// as the engine names it: a digest dropped, the tag kept.
		for _, rm := range remotes {
			if ref, err := reference.ParseNormalizedNamed(rm); err == nil {
				if _, digested := ref.(reference.Canonical); digested {
					trimmed := reference.TrimNamed(ref)
					if tagged, ok := ref.(reference.NamedTagged); ok {
						if withTag, err := reference.WithTag(trimmed, tagged.Tag()); err == nil {
							trimmed = withTag
						}
					}
					ref = trimmed
				}
				local = append(local, reference.FamiliarString(reference.TagNameOnly(ref)))
			}
		}
	}
	if d := pluginNamed(p, t.route.Name, append(remotes, local...)...); d != nil {
		return refused(d)
	}
	var privs []plugin.Privilege
	if d := decodeBody(r, body, &privs); d != nil {
		return refused(d)
	}
	ro := map[string]bool{}
	for _, pr := range privs {
		if pr.Name == "mount" {
			for _, v := range pr.Value {
				ro[v] = true
			}
		}
	}
	w, d := pluginWorkload("plugin "+remotes[0], privs, ro)
	if d != nil {
		return refused(d)
	}
	return a.conclude(w, a.rules(policy.RequestPlugin))
}

// pluginEnable judges POST /plugins/{name}/enable on the installed plugin's
// configuration and settings, which decide what it runs with. Plugins
// created from a local archive (POST /plugins/create) accept no privileges
// at install: this is where they are judged. The profile must name the
// plugin (and the remote it was pulled from).
func (a *admission) pluginEnable(ctx context.Context, p *Profile, t *target) verdict {
	ref := t.vars["name"]
	if !validImageRef(ref) {
		return refused(deny(http.StatusForbidden, reasonRoute, "plugin reference %q is not valid", ref))
	}
	pl, err := a.engine.plugin(ctx, ref)
	if err != nil {
		return refused(lookupDenial("plugin", ref, err, ""))
	}
	if d := pluginNamed(p, t.route.Name, pl.Name, pl.PluginReference); d != nil {
		return refused(d)
	}
	privs, ro := runtimePrivileges(pl)
	w, d := pluginWorkload("plugin "+pl.Name, privs, ro)
	if d != nil {
		return refused(d)
	}
	v := a.conclude(w, a.rules(policy.RequestPlugin))
	if pl.ID != "" {
		v.vars = pinVar(t.vars, "name", pl.ID)
	}
	return v
}

// runtimePrivileges computes a plugin's privileges as the engine does when
// it installs one (plugin.computePrivileges), from its settings where the
// user may have changed mount sources and devices, and reports which mount
// sources are read-only: those whose every mount has the "ro" option, as
// the engine passes the options to mount(2).
func runtimePrivileges(p *plugin.Plugin) ([]plugin.Privilege, map[string]bool) {
	c := p.Config
	var out []plugin.Privilege
	ro := map[string]bool{}
	rw := map[string]bool{}
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
			if readOnlyOptions(m.Options) {
				ro[*m.Source] = true
			} else {
				rw[*m.Source] = true
			}
		}
	}
	for src := range rw {
		delete(ro, src)
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
	return out, ro
}

// readOnlyOptions reports whether runc leaves a plugin mount with these
// options read-only: the last of "ro" and "rw" wins, as in mount(8), and a
// recursive bind ("rbind") is read-only only with "rro": runc remounts
// just the top of an rbind read-only, so mounts beneath its source stay
// writable.
func readOnlyOptions(opts []string) bool {
	ro, recursive, rro := false, false, false
	for _, o := range opts {
		switch o {
		case "ro":
			ro = true
		case "rw":
			ro = false
		case "rbind":
			recursive = true
		case "rro":
			rro = true
		}
	}
	return rro || ro && !recursive
}
