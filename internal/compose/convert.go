package compose

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/format"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/safefile"
	"github.com/hy-home/hyhome/internal/traefik"
	"github.com/hy-home/hyhome/internal/workload"
)

// index finds where a service's values are written across the files that
// define it: the -f files (the last one wins), included files, and the base
// services it extends.
type index struct {
	cache *loadCache
	top   []*yamlFile
	// in interpolates an item's text as compose-go does, so that an item
	// is recognised by the value it produces, `${DATA:-./data}:/data` too.
	in *interpolator
}

// contrib is one mapping that contributes to a service.
type contrib struct {
	file *yamlFile
	node *yaml.Node
}

// view is a service's contributions, highest precedence first.
type view struct {
	name     string
	contribs []contrib
	in       *interpolator
}

func (ix *index) view(service string) *view {
	v := &view{name: service, in: ix.in}
	seen := map[*yaml.Node]bool{}
	var visitFile func(f *yamlFile, depth int)
	var addService func(f *yamlFile, name string, depth int)
	addService = func(f *yamlFile, name string, depth int) {
		node := f.services[name]
		if node == nil || seen[node] || depth > 16 {
			return
		}
		seen[node] = true
		v.contribs = append(v.contribs, contrib{f, node})
		// extends: the base comes after the service (lower precedence).
		if ext := resolve(flatGet(node, "extends")); ext != nil {
			base, baseFile := "", f
			switch ext.Kind {
			case yaml.ScalarNode:
				base = ext.Value
			case yaml.MappingNode:
				if s := resolve(flatGet(ext, "service")); s != nil {
					base = s.Value
				}
				if fn := resolve(flatGet(ext, "file")); fn != nil && fn.Kind == yaml.ScalarNode {
					if bf, err := ix.cache.get(absJoin(filepath.Dir(f.path), fn.Value)); err == nil {
						baseFile = bf
					}
				}
			}
			if base != "" {
				addService(baseFile, base, depth+1)
			}
		}
	}
	visitFile = func(f *yamlFile, depth int) {
		if depth > 16 {
			return
		}
		// A later document of a file overrides an earlier one.
		docs := f.documents()
		for i := len(docs) - 1; i >= 0; i-- {
			addService(docs[i], service, depth)
			for _, inc := range docs[i].includes {
				if inf, err := ix.cache.get(inc); err == nil {
					visitFile(inf, depth+1)
				}
			}
		}
	}
	for i := len(ix.top) - 1; i >= 0; i-- {
		visitFile(ix.top[i], 0)
	}
	return v
}

// primary is the lowest-precedence file that defines the service under its
// own name: where it is declared.
func (v *view) primary() (contrib, bool) {
	for i := len(v.contribs) - 1; i >= 0; i-- {
		if _, ok := v.contribs[i].file.services[v.name]; ok && v.contribs[i].file.services[v.name] == v.contribs[i].node {
			return v.contribs[i], true
		}
	}
	if len(v.contribs) > 0 {
		return v.contribs[0], true
	}
	return contrib{}, false
}

// key returns where a (possibly nested) key is written.
func (v *view) key(keys ...string) (workload.Position, *yaml.Node) {
	for _, c := range v.contribs {
		n := c.node
		var k *yaml.Node
		for _, key := range keys {
			k, n = flatGetKV(n, key)
			if k == nil {
				break
			}
		}
		if k != nil {
			rv := resolve(n)
			if rv != nil && rv.Kind == yaml.ScalarNode {
				return pos(c.file, rv), rv
			}
			return pos(c.file, k), rv
		}
	}
	return workload.Position{}, nil
}

// locate maps the identity of every item of a list field to the node that
// writes it, in the highest-precedence contribution that has it: an item
// is found by its own YAML node (the anchored node when written through an
// alias), never by the service's. ids gives the identities an item node
// produces, computed from its interpolated value the way compose-go
// computes the item's; a node may produce several (a port range).
func (v *view) locate(field string, ids func(n *yaml.Node) []string) map[string]workload.Position {
	var out map[string]workload.Position
	for _, c := range v.contribs {
		seq := resolve(flatGet(c.node, field))
		if seq == nil || seq.Kind != yaml.SequenceNode {
			continue
		}
		for _, it := range seq.Content {
			if it = resolve(it); it == nil {
				continue
			}
			for _, id := range ids(it) {
				if out == nil {
					out = map[string]workload.Position{}
				}
				if _, done := out[id]; !done {
					out[id] = pos(c.file, it)
				}
			}
		}
	}
	return out
}

// text interpolates a scalar item; ok is false when it does not
// interpolate (compose-go would have refused the project).
func (v *view) text(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false
	}
	if v.in == nil || !strings.Contains(n.Value, "$") {
		return n.Value, true
	}
	r, err := v.in.opts.Substitute(n.Value, template.Mapping(v.in.opts.LookupValue))
	return r, err == nil
}

// field interpolates a scalar under key in a long-syntax item.
func (v *view) field(n *yaml.Node, key string) (string, bool) {
	return v.text(resolve(flatGet(n, key)))
}

// scalarIDs identifies a plain string item (cap_add, security_opt, ...).
func (v *view) scalarIDs(n *yaml.Node) []string {
	if t, ok := v.text(n); ok {
		return []string{t}
	}
	return nil
}

// volumeIDs identifies a volumes: item by its container path, which
// compose merges volumes by.
func (v *view) volumeIDs(n *yaml.Node) []string {
	if n.Kind == yaml.MappingNode {
		if t, ok := v.field(n, "target"); ok && t != "" {
			return []string{path.Clean(t)}
		}
		return nil
	}
	t, ok := v.text(n)
	if !ok {
		return nil
	}
	vol, err := format.ParseVolume(t)
	if err != nil || vol.Target == "" {
		return nil
	}
	return []string{path.Clean(vol.Target)}
}

// portID and portTargetID identify a published port exactly, and by its
// container port alone when compose-go normalised the rest.
func portID(hostIP, published string, target uint32, proto string) string {
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%s|%s|%d|%s", hostIP, published, target, proto)
}

func portTargetID(target uint32) string { return fmt.Sprintf("target %d", target) }

func (v *view) portIDs(n *yaml.Node) []string {
	if n.Kind == yaml.MappingNode {
		ts, ok := v.field(n, "target")
		t, err := strconv.ParseUint(ts, 10, 32)
		if !ok || err != nil {
			return nil
		}
		pub, _ := v.field(n, "published")
		ip, _ := v.field(n, "host_ip")
		proto, _ := v.field(n, "protocol")
		return []string{portID(ip, pub, uint32(t), proto), portTargetID(uint32(t))}
	}
	t, ok := v.text(n)
	if !ok {
		return nil
	}
	ps, err := types.ParsePortConfig(t)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range ps {
		out = append(out, portID(p.HostIP, p.Published, p.Target, p.Protocol), portTargetID(p.Target))
	}
	return out
}

// secretIDs identifies a secrets: item by its source.
func (v *view) secretIDs(n *yaml.Node) []string {
	if n.Kind == yaml.MappingNode {
		n = resolve(flatGet(n, "source"))
	}
	return v.scalarIDs(n)
}

// deviceIDs identifies a devices: item by its host path.
func (v *view) deviceIDs(n *yaml.Node) []string {
	if n.Kind == yaml.MappingNode {
		n = resolve(flatGet(n, "source"))
		return v.scalarIDs(n)
	}
	t, ok := v.text(n)
	if !ok {
		return nil
	}
	src, _, _ := strings.Cut(t, ":")
	return []string{src}
}

// entry finds a KEY=VALUE style entry (environment, labels) by key and
// returns its position and the value as written (before interpolation).
func (v *view) entry(field, key string) (workload.Position, string, bool) {
	for _, c := range v.contribs {
		n := resolve(flatGet(c.node, field))
		if n == nil {
			continue
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					val := resolve(n.Content[i+1])
					if val.Kind == yaml.ScalarNode && val.Tag != "!!null" {
						return pos(c.file, val), val.Value, true
					}
					return pos(c.file, n.Content[i]), "", false
				}
			}
		case yaml.SequenceNode:
			for _, it := range n.Content {
				it = resolve(it)
				k, val, hasVal := strings.Cut(it.Value, "=")
				if k == key {
					return pos(c.file, it), val, hasVal
				}
			}
		}
	}
	return workload.Position{}, "", false
}

func pos(f *yamlFile, n *yaml.Node) workload.Position {
	if n == nil {
		return workload.Position{File: f.path}
	}
	return workload.Position{File: f.path, Line: n.Line, Column: n.Column}
}

// baselineMerged reports whether any contribution merges &security-baseline.
func (v *view) baselineMerged() bool {
	for _, c := range v.contribs {
		if mergesAnchor(c.node, BaselineAnchor, 0) {
			return true
		}
	}
	return false
}

// maxSeccompProfile bounds a seccomp profile file (Docker's default profile
// is about 25 KiB).
const maxSeccompProfile = 1 << 20

// convert turns a compose-go service into a workload.
func convert(p *types.Project, s types.ServiceConfig, ix *index) (*workload.Workload, error) {
	v := ix.view(s.Name)
	w := &workload.Workload{
		Kind:           workload.KindCompose,
		Name:           s.Name,
		Service:        s.Name,
		Project:        p.Name,
		ContainerName:  s.ContainerName,
		Image:          s.Image,
		User:           s.User,
		Privileged:     s.Privileged,
		SecurityOpt:    append([]string(nil), s.SecurityOpt...),
		CapAdd:         append([]string(nil), s.CapAdd...),
		CapDrop:        append([]string(nil), s.CapDrop...),
		ReadOnlyRootfs: s.ReadOnly,
		Labels:         map[string]string{},
		LabelPos:       map[string]workload.Position{},
		Command:        append(append([]string(nil), s.Entrypoint...), s.Command...),
	}
	if c, ok := v.primary(); ok {
		w.Pos = pos(c.file, c.node)
		if k := c.file.serviceKeys[s.Name]; k != nil {
			w.Pos = pos(c.file, k)
		}
		w.Baseline = workload.Baseline{
			Applicable:  true,
			File:        c.file.path,
			FileDefines: c.file.definesBaseline,
			Merged:      v.baselineMerged(),
		}
	}
	seenFiles := map[string]bool{}
	for i := len(v.contribs) - 1; i >= 0; i-- {
		if f := v.contribs[i].file.path; !seenFiles[f] {
			seenFiles[f] = true
			w.Files = append(w.Files, f)
		}
	}
	w.ImagePos, _ = v.key("image")
	w.UserPos, _ = v.key("user")
	w.PrivilegedPos, _ = v.key("privileged")
	w.ReadOnlyRootfsPos, _ = v.key("read_only")
	w.SecurityOptAt, _ = v.key("security_opt")
	w.CapDropAt, _ = v.key("cap_drop")
	w.NetworksPos, _ = v.key("networks")
	secOptAt := v.locate("security_opt", v.scalarIDs)
	for i, o := range s.SecurityOpt {
		w.SecurityOptPos = append(w.SecurityOptPos, secOptAt[o])
		// docker compose sends `seccomp:<file>` as the file's JSON; judge
		// the profile the engine will get, as the guard does.
		if so := workload.ParseSecurityOpt(o); so.Key == "seccomp" && so.Value != "unconfined" && !strings.HasPrefix(strings.TrimSpace(so.Value), "{") {
			file := so.Value
			if !filepath.IsAbs(file) {
				file = filepath.Join(p.WorkingDir, file)
			}
			b, err := safefile.ReadFile(file, maxSeccompProfile)
			if err != nil {
				return nil, fmt.Errorf("%s: service %s: seccomp profile: %w", w.At(w.SecurityOptPos[i]), s.Name, err)
			}
			w.SecurityOpt[i] = "seccomp=" + string(b)
		}
	}
	capAddAt := v.locate("cap_add", v.scalarIDs)
	for _, c := range s.CapAdd {
		w.CapAddPos = append(w.CapAddPos, capAddAt[c])
	}
	capDropAt := v.locate("cap_drop", v.scalarIDs)
	for _, c := range s.CapDrop {
		w.CapDropPos = append(w.CapDropPos, capDropAt[c])
	}

	// Namespaces; service:x joins are resolved once every service is known.
	nsOf := func(mode, key string) workload.Namespace {
		n := workload.Namespace{Mode: mode}
		n.Pos, _ = v.key(key)
		if mode == "host" {
			n.Effective = "host"
		}
		return n
	}
	w.Namespaces = workload.Namespaces{
		PID:     nsOf(s.Pid, "pid"),
		Network: nsOf(s.NetworkMode, "network_mode"),
		IPC:     nsOf(s.Ipc, "ipc"),
		UTS:     nsOf(s.Uts, "uts"),
		UserNS:  nsOf(s.UserNSMode, "userns_mode"),
		Cgroup:  nsOf(s.Cgroup, "cgroup"),
	}
	w.GroupAdd = append([]string(nil), s.GroupAdd...)
	w.GroupAddPos, _ = v.key("group_add")
	w.DeviceCgroupRules = append([]string(nil), s.DeviceCgroupRules...)
	w.DeviceCgroupRulesPos, _ = v.key("device_cgroup_rules")
	if l := s.Logging; l != nil {
		w.Logging = workload.Logging{Driver: l.Driver, Options: map[string]string{}}
		for k, o := range l.Options {
			w.Logging.Options[k] = o
		}
		w.Logging.Pos, _ = v.key("logging")
	}

	// Labels: container labels, then deploy labels (Swarm service labels).
	addLabels := func(labels types.Labels, field ...string) {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, dup := w.Labels[k]; dup {
				continue
			}
			w.Labels[k] = labels[k]
			var p workload.Position
			if len(field) == 1 {
				p, _, _ = v.entry(field[0], k)
			} else {
				p = v.deployLabel(k)
				if w.ServiceOnly == nil {
					w.ServiceOnly = map[string]bool{}
				}
				w.ServiceOnly[k] = true
			}
			if !p.Known() {
				p, _ = v.key(field...)
			}
			w.LabelPos[k] = p
		}
	}
	addLabels(s.Labels, "labels")
	if s.Deploy != nil {
		addLabels(s.Deploy.Labels, "deploy", "labels")
	}

	// Memory and pids limits: deploy.resources.limits wins over mem_limit,
	// as docker compose applies it.
	switch {
	case s.Deploy != nil && s.Deploy.Resources.Limits != nil && s.Deploy.Resources.Limits.MemoryBytes > 0:
		w.MemoryLimit = int64(s.Deploy.Resources.Limits.MemoryBytes)
		w.MemoryLimitPos, _ = v.key("deploy", "resources", "limits", "memory")
	case s.MemLimit > 0:
		w.MemoryLimit = int64(s.MemLimit)
		w.MemoryLimitPos, _ = v.key("mem_limit")
	}
	switch {
	case s.Deploy != nil && s.Deploy.Resources.Limits != nil && s.Deploy.Resources.Limits.Pids > 0:
		w.PidsLimit = s.Deploy.Resources.Limits.Pids
		w.PidsLimitPos, _ = v.key("deploy", "resources", "limits", "pids")
	default:
		w.PidsLimit = s.PidsLimit
		w.PidsLimitPos, _ = v.key("pids_limit")
	}
	switch {
	case s.Deploy != nil && s.Deploy.Replicas != nil:
		w.Replicas = *s.Deploy.Replicas
	case s.Scale != nil:
		w.Replicas = *s.Scale
	}

	// Environment, with the value as written to tell literals from
	// host-interpolated values.
	envKeys := make([]string, 0, len(s.Environment))
	for k := range s.Environment {
		envKeys = append(envKeys, k)
	}
	sort.Strings(envKeys)
	for _, k := range envKeys {
		val := s.Environment[k]
		e := workload.EnvVar{Key: k, HasValue: val != nil}
		if val != nil {
			e.Value = *val
		}
		p, raw, hasRaw := v.entry("environment", k)
		e.Pos, e.Raw = p, raw
		switch {
		case !p.Known():
			// From an env_file: a literal on the host's disk.
			e.Pos, _ = v.key("env_file")
		case !hasRaw:
			e.Interpolated = true // bare KEY: the host's value
		default:
			e.Interpolated = interpolates(raw)
		}
		w.Env = append(w.Env, e)
	}

	// Mounts.
	volumeAt := v.locate("volumes", v.volumeIDs)
	for _, vol := range s.Volumes {
		m := workload.Mount{Type: vol.Type, Source: vol.Source, Target: vol.Target, ReadOnly: vol.ReadOnly}
		m.Pos = volumeAt[path.Clean(vol.Target)]
		if vol.Type == types.VolumeTypeVolume && vol.Source != "" {
			if cfg, ok := p.Volumes[vol.Source]; ok {
				m.External = bool(cfg.External)
				// The volume's driver options are judged by what the local
				// driver will mount (a bind of a host path is the bind it
				// is), as the guard and audit judge them. An external
				// volume's options are not in the file.
				if !m.External {
					m.SetVolume(&workload.VolumeConfig{Driver: cfg.Driver, Options: cfg.DriverOpts})
				}
			}
		}
		w.Mounts = append(w.Mounts, m)
	}
	for _, t := range s.Tmpfs {
		target, _, _ := strings.Cut(t, ":")
		w.Mounts = append(w.Mounts, workload.Mount{Type: "tmpfs", Target: target})
	}

	secretAt := v.locate("secrets", v.secretIDs)
	for _, sec := range s.Secrets {
		target := sec.Target
		switch {
		case target == "":
			target = "/run/secrets/" + sec.Source
		case !strings.HasPrefix(target, "/"):
			target = "/run/secrets/" + target
		}
		target = path.Clean(target) // the engine cleans mount destinations
		w.Secrets = append(w.Secrets, workload.Secret{Source: sec.Source, Target: target, Pos: secretAt[sec.Source]})
	}

	portAt := v.locate("ports", v.portIDs)
	for _, port := range s.Ports {
		p, ok := portAt[portID(port.HostIP, port.Published, port.Target, port.Protocol)]
		if !ok {
			p = portAt[portTargetID(port.Target)]
		}
		w.Ports = append(w.Ports, workload.Port{HostIP: port.HostIP, Published: port.Published, Target: port.Target, Protocol: port.Protocol, Mode: port.Mode, Pos: p})
	}

	deviceAt := v.locate("devices", v.deviceIDs)
	for _, d := range s.Devices {
		w.Devices = append(w.Devices, workload.Device{Host: d.Source, Container: d.Target, Permissions: d.Permissions, Pos: deviceAt[d.Source]})
	}

	if hc := s.HealthCheck; hc != nil {
		w.Healthcheck.Defined = hc.Disable || len(hc.Test) > 0
		w.Healthcheck.Disabled = hc.Disable || len(hc.Test) > 0 && strings.EqualFold(hc.Test[0], "NONE")
		w.Healthcheck.Pos, _ = v.key("healthcheck")
	}

	// Networks: the compose key and the engine-level name.
	if s.NetworkMode == "" {
		if len(s.Networks) == 0 {
			w.Networks = append(w.Networks, "default")
		}
		for k := range s.Networks {
			w.Networks = append(w.Networks, k)
			if cfg, ok := p.Networks[k]; ok && cfg.Name != "" && cfg.Name != k {
				w.Networks = append(w.Networks, cfg.Name)
			}
		}
		sort.Strings(w.Networks)
	}

	w.Routers = traefik.RoutersFromLabels(w)
	if traefik.IsTraefik(w) {
		g, err := traefik.ReadGateway(w)
		if err != nil {
			return nil, fmt.Errorf("%s: service %s: reading Traefik configuration: %w", w.Pos, s.Name, err)
		}
		w.Gateway = g
	}
	return w, nil
}

// deployLabel finds a label under deploy.labels.
func (v *view) deployLabel(key string) workload.Position {
	for _, c := range v.contribs {
		d := resolve(flatGet(c.node, "deploy"))
		if d == nil {
			continue
		}
		sub := &view{name: v.name, contribs: []contrib{{c.file, d}}}
		if p, _, _ := sub.entry("labels", key); p.Known() {
			return p
		}
	}
	return workload.Position{}
}

// interpolates reports whether a raw value takes anything from the host
// environment ($VAR or ${VAR...}; "$$" is a literal dollar).
func interpolates(raw string) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '$' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] == '$' {
			i++
			continue
		}
		if i+1 < len(raw) && (raw[i+1] == '{' || raw[i+1] == '_' || isAlpha(raw[i+1])) {
			return true
		}
	}
	return false
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// resolveServiceJoins follows `service:NAME` and `container:NAME` namespace
// modes: joining a workload that shares the host's namespace shares it too.
// A container is found by its container_name, or by the name docker compose
// gives a service's containers (<project>-<service>-<n>).
// The joined workload is recorded (Namespace.Joined) for the rules to judge.
func resolveServiceJoins(p *workload.Project) {
	byName := map[string]*workload.Workload{}
	byContainer := map[string]*workload.Workload{}
	for _, w := range p.Workloads {
		byName[w.Name] = w
		if w.ContainerName != "" {
			byContainer[w.ContainerName] = w
		}
	}
	for _, w := range p.Workloads {
		if w.ContainerName != "" {
			continue // an explicit name replaces compose's
		}
		for i := 1; i <= max(1, w.Replicas); i++ {
			n := fmt.Sprintf("%s-%s-%d", p.Name, w.Name, i)
			if _, taken := byContainer[n]; !taken {
				byContainer[n] = w
			}
		}
	}
	for _, w := range p.Workloads {
		workload.ResolveJoins(w, func(mode string) (*workload.Workload, string) {
			if ref, ok := strings.CutPrefix(mode, "service:"); ok && byName[ref] != nil {
				return byName[ref], "service " + ref
			}
			if ref, ok := strings.CutPrefix(mode, "container:"); ok && byContainer[ref] != nil {
				return byContainer[ref], fmt.Sprintf("container %s (service %s)", ref, byContainer[ref].Name)
			}
			return nil, ""
		})
	}
}
