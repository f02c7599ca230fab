package policy

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// Allowlists are what a guard profile allows beyond the baseline. Lint and
// audit judge with the zero value: no host source allowlist (sensitive
// trees are refused all the same), no volume types beyond plain local
// volumes, and DefaultLogDrivers.
type Allowlists struct {
	// HostSources, when not nil, are the only host directories a bind (or
	// a volume the local driver binds) may come from, each with what is
	// below it; an empty list allows no bind at all. The sensitive trees
	// of workload.SensitiveHostPath are refused whatever it says.
	HostSources []string
	// VolumeTypes are the file system types of the local driver (tmpfs,
	// nfs, ...) and the volume driver plugins, by name, that volumes may
	// use. Plain local volumes and volumes that bind are always judged by
	// the other rules instead.
	VolumeTypes []string
	// LogDrivers are the log drivers containers may use, each with the
	// options it may be given; nil means DefaultLogDrivers.
	LogDrivers map[string][]string
}

// DefaultLogDrivers are the log drivers allowed by default: the two that
// write files on the host, with their own options and the options every
// driver takes (mode, max-buffer-size). hyhome ship reads both through the
// engine's logs API. Every other driver delivers the container's output
// from the engine, in the host's namespaces, somewhere the container itself
// may not be able to reach (syslog or fluentd over the network, a host
// socket).
var DefaultLogDrivers = map[string][]string{
	"json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag", "mode", "max-buffer-size"},
	"local":     {"max-size", "max-file", "compress", "mode", "max-buffer-size"},
}

// IsolationRequirements are the requirements whose rules decide whether a
// process can reach the host or run as root: what a namespace join
// inherits from the workload it joins, and what the guard judges before it
// hands out a process in an existing container.
var IsolationRequirements = []string{"NFR-SEC-01", "SEC-IDENTITY", "Strategy-ST-03"}

// RuleNamespaceJoin is the rule that judges namespace joins by the joined
// workload.
const RuleNamespaceJoin = "namespace-join"

func hostRules() []*Rule {
	return []*Rule{
		{
			ID:           "host-path",
			Requirements: []string{"Strategy-ST-03", "NFR-SEC-01"},
			Severity:     Error,
			Description:  "Host paths mounted into containers must come from allowed directories, never from the host's sensitive trees or the engine's data root.",
			Remediation:  "Mount configuration from a directory the guard profile allows (`admission.host_sources`), keep data in named volumes, and never mount /, /etc, /dev, /proc, /sys, /boot, /run, /var/run, /root or the engine's data root; justify an exception in an ADR.",
			Check:        checkHostPath,
		},
		{
			ID:           "volume-type",
			Requirements: []string{"Strategy-ST-03", "NFR-SEC-01"},
			Severity:     Error,
			Description:  "Volumes must be plain local volumes or use a volume type or driver the profile allows.",
			Remediation:  "Drop the volume's `type`/`device` driver options (or the volume driver plugin), or allow the type in the guard profile (`admission.volume_types`) after reading what mounting it from the engine's namespaces gives the container.",
			Check:        checkVolumeType,
		},
		{
			ID:           "log-driver",
			Requirements: []string{"NFR-SEC-01", "OPS-TELEMETRY"},
			Severity:     Error,
			Description:  "Containers must log through an allowed log driver (json-file or local by default) with allowed options.",
			Remediation:  "Use `logging: {driver: json-file}` (or `local`) with max-size/max-file; allow another driver in the guard profile (`admission.log_drivers`) only after reading where the engine sends the output.",
			Check:        checkLogDriver,
		},
		{
			ID:           RuleNamespaceJoin,
			Requirements: []string{"NFR-SEC-01"},
			Severity:     Error,
			Description:  "A container must not join the pid, network or ipc namespace of one that fails the isolation rules.",
			Remediation:  "Do not use `pid`, `network_mode` or `ipc` of `container:`/`service:` with a container that holds host mounts, capabilities, root or the host's namespaces; give the service its own namespaces.",
			Check:        checkNamespaceJoin,
		},
	}
}

func checkHostPath(w *workload.Workload, env *Env) []Violation {
	var vs []Violation
	for _, m := range w.Mounts {
		for _, p := range m.HostPaths() {
			why := workload.SensitiveHostPath(p, env.Host.DataRoot)
			switch {
			case why != "" && m.ReadOnly:
				why += "; read-only does not help: before Docker 25 `ro` is not recursive, so mounts below it stay writable"
			case why == "" && env.Allow.HostSources != nil && !allowedSource(p, env.Allow.HostSources):
				why = "is not in a host directory the profile allows"
				if len(env.Allow.HostSources) == 0 {
					why += " (it allows none)"
				} else {
					why += " (" + strings.Join(env.Allow.HostSources, ", ") + ")"
				}
			}
			if why == "" {
				continue
			}
			src := p
			if m.ViaVolumeDriver != "" || m.Type == "volume" {
				name := m.ViaVolumeDriver
				if name == "" {
					name = m.Source
				}
				src = fmt.Sprintf("%s (volume %s)", p, name)
			}
			vs = append(vs, Violation{Message: fmt.Sprintf("host path %s → %s %s", src, m.Target, why), Pos: w.At(m.Pos)})
		}
	}
	return vs
}

// allowedSource reports whether a clean absolute host path is one of the
// allowed directories or below one.
func allowedSource(p string, allowed []string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	clean := path.Clean(p)
	for _, a := range allowed {
		if strings.HasPrefix(a, "/") && workload.Within(clean, path.Clean(a)) {
			return true
		}
	}
	return false
}

func checkVolumeType(w *workload.Workload, env *Env) []Violation {
	var vs []Violation
	for _, m := range w.Mounts {
		if m.Volume == nil {
			continue
		}
		why := VolumeTypeProblem(workload.LocalVolume(m.Volume.Driver, m.Volume.Options), env.Allow.VolumeTypes)
		if why == "" {
			continue
		}
		name := m.ViaVolumeDriver
		if name == "" {
			name = m.Source
		}
		if name == "" {
			name = "(anonymous)"
		}
		vs = append(vs, Violation{Message: fmt.Sprintf("volume %s → %s %s", name, m.Target, why), Pos: w.At(m.Pos)})
	}
	return vs
}

// VolumeTypeProblem says why a volume's effect is not allowed ("" when it
// is): options the local driver does not know, a driver plugin or a file
// system type the allowlist does not name. Plain volumes and binds pass:
// binds are judged as the host paths they are.
func VolumeTypeProblem(e workload.VolumeEffect, allowed []string) string {
	switch {
	case e.Plugin != "":
		if slices.Contains(allowed, e.Plugin) {
			return ""
		}
		return fmt.Sprintf("uses volume driver plugin %q, which the profile does not allow: what it mounts is the plugin's to decide", e.Plugin)
	case len(e.Unknown) > 0:
		return fmt.Sprintf("has driver options the local driver does not know (%s)", strings.Join(e.Unknown, ", "))
	case e.Type == "" || e.Type == "bind":
		return ""
	case slices.Contains(allowed, e.Type):
		return ""
	}
	effect := "a file system of the host's kernel"
	if d, ok := workload.VolumeTypeEffects[strings.TrimPrefix(e.Type, "^")]; ok {
		effect = d
	}
	allowedList := "none"
	if len(allowed) > 0 {
		allowedList = strings.Join(allowed, ", ")
	}
	return fmt.Sprintf("mounts type %q from the engine's namespaces (%s), a type the profile does not allow (allowed: %s)", e.Type, effect, allowedList)
}

func checkLogDriver(w *workload.Workload, env *Env) []Violation {
	l := w.Logging
	if l.Driver == "" && len(l.Options) == 0 {
		return nil
	}
	allowed := env.Allow.LogDrivers
	if allowed == nil {
		allowed = DefaultLogDrivers
	}
	at := w.At(l.Pos)
	driver := l.Driver
	var opts []string
	switch {
	case driver == "" && env.Host.LogDriver != "":
		driver = env.Host.LogDriver
	case driver == "":
		// The engine's default driver, unknown here, takes the options:
		// only those every allowed driver takes are sure to be harmless.
		opts = nil
		first := true
		for _, os := range allowed {
			if first {
				opts, first = append([]string(nil), os...), false
				continue
			}
			opts = slices.DeleteFunc(opts, func(o string) bool { return !slices.Contains(os, o) })
		}
	}
	if driver != "" {
		var ok bool
		if opts, ok = allowed[driver]; !ok {
			return one(fmt.Sprintf("log driver %q is not allowed (allowed: %s): the engine, in the host's namespaces, delivers the container's output wherever the driver says", l.Driver, strings.Join(sortedKeys(allowed), ", ")), at)
		}
	}
	var vs []Violation
	for _, k := range sortedKeys(l.Options) {
		if !slices.Contains(opts, k) {
			vs = append(vs, Violation{Message: fmt.Sprintf("log option %s is not allowed for driver %q (allowed: %s)", k, orDefault(l.Driver), strings.Join(opts, ", ")), Pos: at})
		}
	}
	return vs
}

func orDefault(driver string) string {
	if driver == "" {
		return "(the engine's default)"
	}
	return driver
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkNamespaceJoin judges a workload that joins another's pid, network
// or ipc namespace by the joined workload's own configuration: a pid join
// reaches its processes' /proc/<pid>/root (its mounts, the Docker socket
// included), a network join its interfaces and listeners, an ipc join its
// shared memory. The joined workload is judged strictly: an exemption
// covers the workload its ADR names, not whoever joins it.
func checkNamespaceJoin(w *workload.Workload, env *Env) []Violation {
	var vs []Violation
	for _, ns := range []struct {
		name, key string
		n         workload.Namespace
	}{
		{"pid", "pid", w.Namespaces.PID},
		{"network", "network_mode", w.Namespaces.Network},
		{"ipc", "ipc", w.Namespaces.IPC},
	} {
		j := ns.n.Joined
		if j == nil || j == w || ns.n.IsHost() {
			continue // a host namespace is host-namespaces' to report
		}
		fails := joinedFailures(j, env)
		if len(fails) == 0 {
			continue
		}
		name := j.Name
		if name == "" {
			name = j.Display
		}
		vs = append(vs, Violation{
			Message: fmt.Sprintf("joins the %s namespace of %s (%s: %s), which %s", ns.name, name, ns.key, ns.n.Mode, strings.Join(fails, "; ")),
			Pos:     w.At(ns.n.Pos),
		})
	}
	return vs
}

// joinedFailures evaluates the isolation rules on a joined workload,
// strictly, and describes the errors.
func joinedFailures(j *workload.Workload, env *Env) []string {
	only := map[string]bool{}
	for _, r := range env.Registry.rules {
		if r.Check == nil || r.ID == RuleNamespaceJoin || r.ID == RuleADRExemption {
			continue
		}
		for _, req := range r.Requirements {
			if slices.Contains(IsolationRequirements, req) {
				only[r.ID] = true
			}
		}
	}
	sub := *env
	sub.Strict, sub.Only, sub.Disabled = true, only, nil
	var out []string
	for _, f := range evaluate(&workload.Project{Name: j.Name, Workloads: []*workload.Workload{j}}, &sub) {
		if f.Severity >= Error {
			out = append(out, fmt.Sprintf("fails %s: %s", f.Rule, f.Message))
		}
	}
	return out
}

func checkSecurityProfile(w *workload.Workload, env *Env) []Violation {
	var vs []Violation
	for i, o := range w.SecurityOpt {
		so := workload.ParseSecurityOpt(o)
		k, v := strings.ToLower(so.Key), strings.ToLower(strings.TrimSpace(so.Value))
		switch {
		case (k == "seccomp" || k == "apparmor" || k == "systempaths") && v == "unconfined" || k == "label" && v == "disable":
			vs = append(vs, Violation{Message: fmt.Sprintf("security_opt %q disables confinement", o), Pos: w.SecurityOptPosition(i)})
		case k == "writable-cgroups":
			if b, err := strconv.ParseBool(so.Value); err == nil && b {
				vs = append(vs, Violation{Message: fmt.Sprintf("security_opt %q makes the cgroup file system writable", o), Pos: w.SecurityOptPosition(i)})
			}
		case k == "seccomp" && strings.HasPrefix(strings.TrimSpace(so.Value), "{"):
			for _, why := range workload.SeccompBeyondDefault(so.Value) {
				vs = append(vs, Violation{Message: "security_opt seccomp gives a custom profile that " + why, Pos: w.SecurityOptPosition(i)})
			}
		}
	}
	for _, l := range []struct {
		field        string
		list, engine []string
		floor        []string
	}{
		{"MaskedPaths", w.MaskedPaths, env.Host.MaskedPaths, workload.DefaultMaskedPaths},
		{"ReadonlyPaths", w.ReadonlyPaths, env.Host.ReadonlyPaths, workload.DefaultReadonlyPaths},
	} {
		if l.list == nil {
			continue // the engine's default
		}
		want := l.engine
		if want == nil {
			want = l.floor
		}
		var missing []string
		for _, p := range want {
			if !slices.Contains(l.list, p) {
				missing = append(missing, p)
			}
		}
		switch {
		case len(missing) == 0:
		case len(l.list) == 0:
			vs = append(vs, Violation{Message: fmt.Sprintf("%s is empty, as `--security-opt systempaths=unconfined` sends it: the engine's default list is replaced by nothing", l.field), Pos: w.At(w.SecurityOptAt)})
		default:
			vs = append(vs, Violation{Message: fmt.Sprintf("%s replaces the engine's default list and leaves out %s", l.field, strings.Join(missing, ", ")), Pos: w.At(w.SecurityOptAt)})
		}
	}
	return vs
}

func checkHostDevices(w *workload.Workload, _ *Env) []Violation {
	var vs []Violation
	for _, d := range w.Devices {
		if why := workload.DeviceDanger(d.Host); why != "" {
			vs = append(vs, Violation{Message: fmt.Sprintf("exposes host device %s, which %s", d.Host, why), Pos: w.At(d.Pos), Severity: Error})
			continue
		}
		vs = append(vs, Violation{Message: fmt.Sprintf("exposes host device %s", d.Host), Pos: w.At(d.Pos)})
	}
	for _, r := range w.DeviceCgroupRules {
		vs = append(vs, Violation{Message: fmt.Sprintf("device cgroup rule %q lets the container use device nodes by number (\"a *:* rwm\" is every device)", r), Pos: w.At(w.DeviceCgroupRulesPos), Severity: Error})
	}
	return vs
}

// socketGroup reports a process that belongs to the group owning the
// engine's socket: any path to the socket, read-only or not, is then root
// on the host.
func socketGroup(w *workload.Workload, env *Env) []Violation {
	if !env.Host.SocketGIDKnown {
		return nil
	}
	gid := env.Host.SocketGID
	var at workload.Position
	has := false
	if id := w.Identity; id != nil {
		has, at = id.Err == "" && id.HasGroup(gid), w.At(w.UserPos)
	} else {
		// Without the image's files only numeric IDs are known.
		user, _, _ := w.EffectiveUser()
		if _, g, ok := strings.Cut(user, ":"); ok && numericIs(strings.Split(g, ":")[0], gid) {
			has, at = true, w.At(w.UserPos)
		}
		if slices.ContainsFunc(w.GroupAdd, func(a string) bool { return numericIs(a, gid) }) {
			has, at = true, w.At(w.GroupAddPos)
		}
	}
	if !has {
		return nil
	}
	return one(fmt.Sprintf("runs with group %d, which owns the engine's socket: any path to the socket is root on the host", gid), at)
}

func numericIs(s string, id uint32) bool {
	n, err := strconv.Atoi(s)
	return err == nil && uint32(n) == id
}
