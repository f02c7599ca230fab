// Package engine turns Docker Engine API objects into workloads: container
// configurations (from inspect, or from a create request the guard sees) and
// Swarm service specs, Traefik routers read from their labels included. Audit and guard both call it, so a container is judged
// the same whether it is asked for or already running.
//
// It converts; it must not talk to the engine or judge anything.
package engine

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"

	"github.com/hy-home/hyhome/internal/traefik"
	"github.com/hy-home/hyhome/internal/workload"
)

// ContainerInput is what is known about one container.
type ContainerInput struct {
	ID         string
	Name       string // without the leading "/"
	Config     *container.Config
	HostConfig *container.HostConfig
	// Networks the container is (or will be) attached to, by name.
	Networks []string
	// MountPoints are the effective mounts from inspect; nil for requests,
	// which are judged from HostConfig.Binds/Mounts/Tmpfs instead.
	MountPoints []container.MountPoint
	// ImageUser is the image's default USER when known.
	ImageUser      string
	ImageUserKnown bool
	// Kind is KindContainer for running containers, KindRequest for the guard.
	Kind workload.Kind
	// Volume looks up an existing volume's driver configuration by name
	// (exists false when there is no such volume). An existing volume is
	// mounted as it is, whatever driver configuration a request gives; a
	// missing one is created from the request's. nil: nothing is looked up.
	Volume func(name string) (cfg *workload.VolumeConfig, exists bool)
}

// ShortID is the 12-character form of a container or service ID.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Container converts a container's configuration to a workload.
func Container(in ContainerInput) *workload.Workload {
	cfg, hc := in.Config, in.HostConfig
	if cfg == nil {
		cfg = &container.Config{}
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	kind := in.Kind
	if kind == "" {
		kind = workload.KindContainer
	}
	name := strings.TrimPrefix(in.Name, "/")
	w := &workload.Workload{
		Kind:           kind,
		Name:           name,
		ID:             in.ID,
		Image:          cfg.Image,
		ImageUser:      in.ImageUser,
		ImageUserKnown: in.ImageUserKnown,
		User:           cfg.User,
		Privileged:     hc.Privileged,
		SecurityOpt:    requestedSecurityOpt(kind, hc),
		CapAdd:         append([]string(nil), hc.CapAdd...),
		CapDrop:        append([]string(nil), hc.CapDrop...),
		Labels:         copyLabels(cfg.Labels),
		MemoryLimit:    hc.Memory,
		ReadOnlyRootfs: hc.ReadonlyRootfs,
		Networks:       append([]string(nil), in.Networks...),
		Command:        append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...),
	}
	w.Project = w.Labels[workload.LabelComposeProject]
	w.Service = w.Labels[workload.LabelComposeService]
	w.GroupAdd = append([]string(nil), hc.GroupAdd...)
	// nil is the engine's default list; the docker CLI sends empty lists
	// for --security-opt systempaths=unconfined, and inspect shows the
	// list the container got.
	if hc.MaskedPaths != nil {
		w.MaskedPaths = append([]string{}, hc.MaskedPaths...)
	}
	if hc.ReadonlyPaths != nil {
		w.ReadonlyPaths = append([]string{}, hc.ReadonlyPaths...)
	}
	w.DeviceCgroupRules = append([]string(nil), hc.DeviceCgroupRules...)
	w.Logging = workload.Logging{Driver: hc.LogConfig.Type, Options: copyLabels(hc.LogConfig.Config)}
	switch {
	case kind == workload.KindRequest && name == "":
		w.Display = "create request"
	case kind == workload.KindRequest:
		w.Display = fmt.Sprintf("create request %s", name)
	default:
		w.Display = fmt.Sprintf("container %s (%s)", name, ShortID(in.ID))
	}
	if hc.PidsLimit != nil {
		w.PidsLimit = *hc.PidsLimit
	}
	w.Namespaces = workload.Namespaces{
		PID:     ns(string(hc.PidMode)),
		Network: ns(string(hc.NetworkMode)),
		IPC:     ns(string(hc.IpcMode)),
		UTS:     ns(string(hc.UTSMode)),
		UserNS:  ns(string(hc.UsernsMode)),
		Cgroup:  ns(string(hc.CgroupnsMode)),
	}
	// A container attached to the network named "host" shares the host's
	// network namespace however its NetworkMode spells it (the network's
	// ID works too).
	if containsStr(in.Networks, "host") && !w.Namespaces.Network.IsHost() {
		w.Namespaces.Network.Effective = "host"
		if w.Namespaces.Network.Mode == "" {
			w.Namespaces.Network.Mode = "host"
		}
	}
	if nm := string(hc.NetworkMode); nm != "" && nm != "default" && nm != "host" && nm != "none" &&
		!strings.HasPrefix(nm, "container:") && !containsStr(w.Networks, nm) && len(in.Networks) == 0 {
		w.Networks = append(w.Networks, nm)
	}
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		// An entry without "=" unsets the variable at the API level.
		w.Env = append(w.Env, workload.EnvVar{Key: k, Value: v, HasValue: true})
	}
	if hc := cfg.Healthcheck; hc != nil && len(hc.Test) > 0 {
		w.Healthcheck.Defined = true
		w.Healthcheck.Disabled = strings.EqualFold(hc.Test[0], "NONE")
	}
	for _, d := range hc.Devices {
		w.Devices = append(w.Devices, workload.Device{Host: d.PathOnHost, Container: d.PathInContainer, Permissions: d.CgroupPermissions})
	}
	w.Ports = containerPorts(cfg, hc)
	if in.MountPoints != nil {
		for _, m := range in.MountPoints {
			src := m.Source
			if m.Type == mount.TypeVolume {
				src = m.Name
			}
			wm := workload.Mount{Type: string(m.Type), Source: src, Target: m.Destination, ReadOnly: !m.RW}
			if m.Type == mount.TypeVolume {
				// Inspect names the driver, not its options.
				wm.SetVolume(existingVolume(in.Volume, m.Name, &workload.VolumeConfig{Driver: m.Driver}))
			}
			w.Mounts = append(w.Mounts, wm)
		}
	} else {
		w.Mounts = requestMounts(hc, in.Volume)
		w.Mounts = append(w.Mounts, anonymousVolumes(cfg, hc, w.Mounts)...)
	}
	// Compose implements non-Swarm secrets as read-only binds under /run/secrets.
	for _, m := range w.Mounts {
		if m.Type == "bind" && strings.HasPrefix(path.Clean(m.Target), "/run/secrets/") {
			w.Secrets = append(w.Secrets, workload.Secret{Source: path.Base(m.Source), Target: m.Target})
		}
	}
	w.Routers = traefik.RoutersFromLabels(w)
	return w
}

// requestedSecurityOpt returns the security options as the container's
// create request gave them. For a privileged container, or one sharing the
// host's pid or ipc namespace, the daemon appends "label=disable" at create
// time unless the request had a label option of its own (daemon/create.go,
// generateSecurityOpt: SELinux labels cannot apply there). Inspect shows the
// appended entry, a create request does not; dropping it judges a running
// container exactly as the guard judged its request, and the cause is
// reported by the privileged or host-namespaces rule anyway. The effective
// confinement is the same with or without the entry.
func requestedSecurityOpt(kind workload.Kind, hc *container.HostConfig) []string {
	opts := append([]string(nil), hc.SecurityOpt...)
	if kind != workload.KindContainer || len(opts) == 0 || opts[len(opts)-1] != "label=disable" {
		return opts
	}
	if !hc.Privileged && !hc.PidMode.IsHost() && !hc.IpcMode.IsHost() {
		return opts
	}
	for _, o := range opts[:len(opts)-1] {
		if workload.ParseSecurityOpt(o).Key == "label" {
			return opts // the request set labels itself, so the daemon added nothing
		}
	}
	return opts[:len(opts)-1]
}

func containsStr(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

func copyLabels(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// ns reads a namespace mode; joins of other containers are resolved later
// (ResolveJoins) because they need the other container.
func ns(mode string) workload.Namespace {
	n := workload.Namespace{Mode: mode}
	if mode == "host" {
		n.Effective = "host"
	}
	return n
}

// ResolveJoins follows `container:<ref>` namespace modes: a container that
// joins a container sharing the host's namespace shares it too, and the
// joined container is recorded (Namespace.Joined) for the rules to judge.
// lookup finds a container by name or ID (nil when unknown).
func ResolveJoins(w *workload.Workload, lookup func(ref string) *workload.Workload) {
	workload.ResolveJoins(w, func(mode string) (*workload.Workload, string) {
		ref, ok := strings.CutPrefix(mode, "container:")
		if !ok {
			return nil, ""
		}
		if other := lookup(ref); other != nil {
			return other, "container " + other.Name
		}
		return nil, ""
	})
}

func containerPorts(cfg *container.Config, hc *container.HostConfig) []workload.Port {
	var out []workload.Port
	for p, bindings := range hc.PortBindings {
		for _, b := range bindings {
			ip := ""
			if b.HostIP.IsValid() {
				ip = b.HostIP.String()
			}
			out = append(out, workload.Port{HostIP: ip, Published: b.HostPort, Target: uint32(p.Num()), Protocol: string(p.Proto())})
		}
	}
	if hc.PublishAllPorts {
		for p := range cfg.ExposedPorts {
			if _, bound := hc.PortBindings[p]; !bound {
				out = append(out, workload.Port{Target: uint32(p.Num()), Protocol: string(p.Proto())})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Target != out[j].Target {
			return out[i].Target < out[j].Target
		}
		return out[i].Published < out[j].Published
	})
	return out
}

// requestMounts reads Binds, Mounts and Tmpfs the way the daemon does.
func requestMounts(hc *container.HostConfig, lookup func(string) (*workload.VolumeConfig, bool)) []workload.Mount {
	var out []workload.Mount
	for _, b := range hc.Binds {
		m := ParseBind(b)
		if m.Type == "volume" {
			// A volume the engine creates for this bind uses VolumeDriver.
			var create *workload.VolumeConfig
			if hc.VolumeDriver != "" {
				create = &workload.VolumeConfig{Driver: hc.VolumeDriver}
			}
			m.SetVolume(existingVolume(lookup, m.Source, create))
		}
		out = append(out, m)
	}
	for _, m := range hc.Mounts {
		wm := workload.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Type == mount.TypeVolume {
			wm.SetVolume(existingVolume(lookup, m.Source, mountVolume(m, hc.VolumeDriver)))
		}
		out = append(out, wm)
	}
	keys := make([]string, 0, len(hc.Tmpfs))
	for k := range hc.Tmpfs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, workload.Mount{Type: "tmpfs", Target: k})
	}
	return out
}

// anonymousVolumes are the volumes of Config.Volumes that no mount covers:
// the engine creates them with VolumeDriver (destinations compared clean,
// as the engine compares them).
func anonymousVolumes(cfg *container.Config, hc *container.HostConfig, mounts []workload.Mount) []workload.Mount {
	taken := map[string]bool{}
	for _, m := range mounts {
		taken[path.Clean(m.Target)] = true
	}
	var targets []string
	for t := range cfg.Volumes {
		if !taken[path.Clean(t)] {
			targets = append(targets, t)
		}
	}
	sort.Strings(targets)
	var out []workload.Mount
	for _, t := range targets {
		m := workload.Mount{Type: "volume", Target: t}
		if hc.VolumeDriver != "" {
			m.SetVolume(&workload.VolumeConfig{Driver: hc.VolumeDriver})
		}
		out = append(out, m)
	}
	return out
}

// existingVolume is the configuration a volume mount gets: the existing
// volume's when there is one, else the one it would be created with. An
// anonymous volume (no name) is always created.
func existingVolume(lookup func(string) (*workload.VolumeConfig, bool), name string, create *workload.VolumeConfig) *workload.VolumeConfig {
	if lookup == nil || name == "" {
		return create
	}
	if cfg, ok := lookup(name); ok {
		return cfg
	}
	return create
}

// mountVolume is the driver configuration a Mounts entry gives the volume
// the engine creates for it (nil when it gives none and the engine's
// default driver applies).
func mountVolume(m mount.Mount, volumeDriver string) *workload.VolumeConfig {
	if o := m.VolumeOptions; o != nil && o.DriverConfig != nil {
		return &workload.VolumeConfig{Driver: o.DriverConfig.Name, Options: copyLabels(o.DriverConfig.Options)}
	}
	if volumeDriver != "" {
		return &workload.VolumeConfig{Driver: volumeDriver}
	}
	return nil
}

// ParseBind reads a -v / Binds entry "source:target[:options]". A source that
// is not an absolute path is a named volume; "ro" among the options makes it
// read-only (the daemon's default is read-write).
func ParseBind(spec string) workload.Mount {
	parts := strings.Split(spec, ":")
	m := workload.Mount{Type: "volume"}
	switch len(parts) {
	case 1:
		m.Target = parts[0] // an anonymous volume
		return m
	case 2:
		m.Source, m.Target = parts[0], parts[1]
	default:
		m.Source, m.Target = parts[0], parts[1]
		for _, o := range strings.Split(strings.Join(parts[2:], ":"), ",") {
			switch strings.TrimSpace(o) {
			case "ro", "readonly":
				m.ReadOnly = true
			case "rw":
				m.ReadOnly = false
			}
		}
	}
	if strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "~") {
		m.Type = "bind"
	}
	return m
}

// ServiceInput is what is known about one Swarm service.
type ServiceInput struct {
	ID   string
	Spec swarm.ServiceSpec
	// NetworkName maps a network ID or name in the spec to its name.
	NetworkName func(idOrName string) string
	// Kind is KindSwarm for deployed services, KindRequest for the guard.
	Kind workload.Kind
}

// Service converts a Swarm service spec to a workload, so that the rules
// judge what Swarm will run.
func Service(in ServiceInput) *workload.Workload {
	spec := in.Spec
	cs := spec.TaskTemplate.ContainerSpec
	if cs == nil {
		cs = &swarm.ContainerSpec{}
	}
	kind := in.Kind
	if kind == "" {
		kind = workload.KindSwarm
	}
	w := &workload.Workload{
		Kind:           kind,
		Name:           spec.Name,
		ID:             in.ID,
		Image:          cs.Image,
		User:           cs.User,
		CapAdd:         append([]string(nil), cs.CapabilityAdd...),
		CapDrop:        append([]string(nil), cs.CapabilityDrop...),
		ReadOnlyRootfs: cs.ReadOnly,
		Labels:         copyLabels(spec.Labels),
		Command:        append(append([]string(nil), cs.Command...), cs.Args...),
	}
	// Container labels land on the tasks; service labels win for hy-home.*.
	for k, v := range cs.Labels {
		if _, ok := w.Labels[k]; !ok {
			w.Labels[k] = v
		}
	}
	w.Project = w.Labels[workload.LabelStackNamespace]
	w.Service = strings.TrimPrefix(spec.Name, w.Project+"_")
	if kind == workload.KindRequest {
		w.Display = "service request " + spec.Name
	} else {
		w.Display = "service " + spec.Name
	}
	if p := cs.Privileges; p != nil {
		if p.NoNewPrivileges {
			w.SecurityOpt = append(w.SecurityOpt, "no-new-privileges:true")
		}
		if p.Seccomp != nil && p.Seccomp.Mode == swarm.SeccompModeUnconfined {
			w.SecurityOpt = append(w.SecurityOpt, "seccomp=unconfined")
		}
		if p.Seccomp != nil && p.Seccomp.Mode == swarm.SeccompModeCustom && len(p.Seccomp.Profile) > 0 {
			// As `docker run --security-opt seccomp=profile.json` sends it,
			// so that the rules read one form.
			w.SecurityOpt = append(w.SecurityOpt, "seccomp="+string(p.Seccomp.Profile))
		}
		if p.AppArmor != nil && p.AppArmor.Mode == swarm.AppArmorModeDisabled {
			w.SecurityOpt = append(w.SecurityOpt, "apparmor=unconfined")
		}
		if p.SELinuxContext != nil && p.SELinuxContext.Disable {
			w.SecurityOpt = append(w.SecurityOpt, "label=disable")
		}
	}
	if r := spec.TaskTemplate.Resources; r != nil && r.Limits != nil {
		w.MemoryLimit = r.Limits.MemoryBytes
		w.PidsLimit = r.Limits.Pids
	}
	if m := spec.Mode.Replicated; m != nil && m.Replicas != nil {
		w.Replicas = int(*m.Replicas)
	}
	for _, kv := range cs.Env {
		k, v, _ := strings.Cut(kv, "=")
		w.Env = append(w.Env, workload.EnvVar{Key: k, Value: v, HasValue: true})
	}
	for _, m := range cs.Mounts {
		wm := workload.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Type == mount.TypeVolume {
			// Volumes live on the nodes: only the configuration the spec
			// gives a volume it creates is known.
			wm.SetVolume(mountVolume(m, ""))
		}
		w.Mounts = append(w.Mounts, wm)
	}
	w.GroupAdd = append([]string(nil), cs.Groups...)
	if ld := spec.TaskTemplate.LogDriver; ld != nil {
		w.Logging = workload.Logging{Driver: ld.Name, Options: copyLabels(ld.Options)}
	}
	for _, s := range cs.Secrets {
		if s == nil {
			continue
		}
		target := "/run/secrets/" + s.SecretName
		if s.File != nil && s.File.Name != "" {
			target = s.File.Name
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + target
			}
		}
		target = path.Clean(target)
		w.Secrets = append(w.Secrets, workload.Secret{Source: s.SecretName, Target: target})
	}
	if hc := cs.Healthcheck; hc != nil && len(hc.Test) > 0 {
		w.Healthcheck.Defined = true
		w.Healthcheck.Disabled = strings.EqualFold(hc.Test[0], "NONE")
	}
	nets := spec.TaskTemplate.Networks
	for _, n := range nets {
		name := n.Target
		if in.NetworkName != nil {
			if nn := in.NetworkName(n.Target); nn != "" {
				name = nn
			}
		}
		w.Networks = append(w.Networks, name)
		if name == "host" {
			w.Namespaces.Network = workload.Namespace{Mode: "host", Effective: "host"}
		}
		// Stacks prefix network names with the stack; infra_net is still infra_net.
		if w.Project != "" && strings.HasPrefix(name, w.Project+"_") {
			w.Networks = append(w.Networks, strings.TrimPrefix(name, w.Project+"_"))
		}
	}
	if ep := spec.EndpointSpec; ep != nil {
		for _, p := range ep.Ports {
			pub := ""
			if p.PublishedPort != 0 {
				pub = strconv.FormatUint(uint64(p.PublishedPort), 10)
			}
			w.Ports = append(w.Ports, workload.Port{Published: pub, Target: p.TargetPort, Protocol: string(p.Protocol), Mode: string(p.PublishMode)})
		}
	}
	w.Routers = traefik.RoutersFromLabels(w)
	return w
}
