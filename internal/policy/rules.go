package policy

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// RuleADRExemption is the rule that reports exemptions no ADR backs.
const RuleADRExemption = "adr-exemption"

// BudgetShare is the share of host memory the infra tier must stay under
// (NFR-RES-01: "< 20% of system memory").
const BudgetShare = 0.20

// Default is the catalogue every command uses.
var Default = func() *Registry {
	r := NewRegistry()
	r.MustRegister(catalogue()...)
	r.MustRegister(hostRules()...)
	return r
}()

func one(msg string, pos workload.Position) []Violation {
	return []Violation{{Message: msg, Pos: pos}}
}

func catalogue() []*Rule {
	return []*Rule{
		{
			ID:           "host-namespaces",
			Requirements: []string{"NFR-SEC-01"},
			Severity:     Error,
			Description:  "Containers must not share the host's pid, network, ipc, uts, user or cgroup namespace.",
			Remediation:  "Remove `pid: host`, `network_mode: host`, `ipc: host`, `uts: host`, `userns_mode: host` and `cgroup: host` (or the service/container they join that uses them), or justify the exception in an ADR.",
			Check:        checkHostNamespaces,
		},
		{
			ID:           "privileged",
			Requirements: []string{"NFR-SEC-01", "SEC-IDENTITY"},
			Severity:     Error,
			Description:  "Containers must not run privileged.",
			Remediation:  "Remove `privileged: true` and grant only the capabilities or devices the service needs, or justify the exception in an ADR.",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				if !w.Privileged {
					return nil
				}
				return one("runs privileged: every capability, every host device and no confinement", w.At(w.PrivilegedPos))
			},
		},
		{
			ID:           "no-new-privileges",
			Requirements: []string{"SEC-ANCHORS", "AC-SPEC-01"},
			Severity:     Error,
			Description:  "security_opt must set no-new-privileges:true.",
			Remediation:  "Merge `<<: *security-baseline` into the service, or add `no-new-privileges:true` to `security_opt`.",
			Check:        checkNoNewPrivileges,
		},
		{
			ID:           "cap-drop-all",
			Requirements: []string{"SEC-ANCHORS"},
			Severity:     Error,
			Description:  "cap_drop must contain ALL.",
			Remediation:  "Merge `<<: *security-baseline` into the service, or set `cap_drop: [ALL]` and add back only what the service needs.",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				if w.DropsAll() {
					return nil
				}
				msg := "cap_drop lacks ALL: the default capability set stays"
				if len(w.CapDrop) > 0 {
					msg = fmt.Sprintf("cap_drop lacks ALL (drops only %s): the rest of the default capability set stays", strings.Join(w.CapDrop, ", "))
				}
				return one(msg, w.At(w.CapDropAt))
			},
		},
		{
			ID:           "cap-add",
			Requirements: []string{"SEC-ANCHORS", "NFR-SEC-01"},
			Severity:     Warning,
			Description:  "cap_add should be empty; dangerous capabilities are errors.",
			Remediation:  "Remove the capability, or use an unprivileged alternative (e.g. a port above 1024 instead of NET_BIND_SERVICE); justify what remains in an ADR.",
			Check:        checkCapAdd,
		},
		{
			ID:           "non-root",
			Requirements: []string{"SEC-IDENTITY"},
			Severity:     Error,
			Description:  "Containers must run as a non-root user.",
			Remediation:  "Set `user:` to the image's documented non-root UID:GID (e.g. `user: \"65534:65534\"`).",
			Check:        checkNonRoot,
		},
		{
			ID:           "secrets-in-env",
			Requirements: []string{"Strategy-ST-01"},
			Severity:     Error,
			Description:  "Credentials must come from Docker secrets, not environment values.",
			Remediation:  "Declare the credential under `secrets:` and point the service at the file, e.g. `DB_PASSWORD_FILE: /run/secrets/db_password`.",
			Check:        checkSecretsInEnv,
		},
		{
			ID:           "secret-target",
			Requirements: []string{"Strategy-ST-01"},
			Severity:     Error,
			Description:  "Secrets must be mounted under /run/secrets/.",
			Remediation:  "Drop the custom `target:` or make it a name or path under /run/secrets/.",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				var vs []Violation
				for _, s := range w.Secrets {
					if !underRunSecrets(s.Target) {
						vs = append(vs, Violation{Message: fmt.Sprintf("secret %s is mounted at %s, outside /run/secrets/", s.Source, s.Target), Pos: w.At(s.Pos)})
					}
				}
				return vs
			},
		},
		{
			ID:           "bind-mount-readonly",
			Requirements: []string{"Strategy-ST-03"},
			Severity:     Error,
			Description:  "Bind mounts must be read-only.",
			Remediation:  "Add `:ro` (short syntax) or `read_only: true` (long syntax); keep writable data in a named volume, or justify write access in an ADR.",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				var vs []Violation
				for _, m := range w.Mounts {
					if m.Type == "bind" && !m.ReadOnly {
						src := m.Source
						if m.ViaVolumeDriver != "" {
							src = fmt.Sprintf("%s (volume %s)", m.Source, m.ViaVolumeDriver)
						}
						vs = append(vs, Violation{Message: fmt.Sprintf("bind mount %s → %s is writable", src, m.Target), Pos: w.At(m.Pos)})
					}
				}
				return vs
			},
		},
		{
			ID:           "docker-socket",
			Requirements: []string{"Strategy-ST-03", "NFR-SEC-01"},
			Severity:     Error,
			Description:  "Only the hyhome guard may mount the Docker socket.",
			Remediation:  "Point the service at the guard's read-only endpoint (e.g. `DOCKER_HOST=tcp://guard:2375`) instead of mounting the socket.",
			Check: func(w *workload.Workload, env *Env) []Violation {
				vs := socketGroup(w, env)
				for _, m := range w.Mounts {
					if (m.Type == "bind" || m.ViaVolumeDriver != "") && workload.IsDockerSocket(m.Source) {
						mode := "writable"
						if m.ReadOnly {
							mode = "read-only, which still grants the whole API"
						}
						vs = append(vs, Violation{Message: fmt.Sprintf("mounts the Docker socket (%s → %s, %s): root on the host", m.Source, m.Target, mode), Pos: w.At(m.Pos)})
					}
				}
				return vs
			},
		},
		{
			ID:           "infra-net",
			Requirements: []string{"Strategy-ST-02"},
			Severity:     Warning,
			Description:  "Services with persistent named volumes must be attached to infra_net.",
			Remediation:  "Add `infra_net` to the service's `networks:` (and declare it at the top level).",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				var vols []string
				var pos workload.Position
				for _, m := range w.Mounts {
					if m.Persistent() {
						if len(vols) == 0 {
							pos = m.Pos
						}
						vols = append(vols, m.Source)
					}
				}
				if len(vols) == 0 {
					return nil
				}
				for _, n := range w.Networks {
					if n == "infra_net" {
						return nil
					}
				}
				return one(fmt.Sprintf("keeps data in named volume %s but is not attached to infra_net", strings.Join(vols, ", ")), w.At(pos))
			},
		},
		{
			ID:           "metrics-endpoint",
			Requirements: []string{"IF-INTERNAL"},
			Severity:     Warning,
			Description:  "Every service must declare a Prometheus or OTLP metrics endpoint.",
			Remediation:  "Label the service with `hy-home.metrics.port` (and `hy-home.metrics.path` if not /metrics), or `hy-home.metrics: otlp` when it pushes OTLP.",
			Check:        checkMetrics,
		},
		{
			ID:           "published-ports",
			Requirements: []string{"IF-EXTERNAL"},
			Severity:     Error,
			Description:  "Only the gateway tier may publish host ports.",
			Remediation:  "Remove `ports:` and route through Traefik with labels (or bind to 127.0.0.1 for host-local access); only `hy-home.tier: gateway` may publish.",
			Check:        checkPublishedPorts,
		},
		{
			ID:           "traefik-tls",
			Requirements: []string{"IF-EXTERNAL"},
			Severity:     Error,
			Description:  "Traefik routers must use TLS, with TLS options of minVersion VersionTLS12 or later.",
			Remediation:  "Set `traefik.http.routers.<name>.tls=true` (or serve the router only on a TLS entry point) and set `tls.options.default.minVersion: VersionTLS12` in Traefik's dynamic configuration.",
			CheckProject: checkTraefikTLS,
		},
		{
			ID:           "tier-label",
			Requirements: []string{"OPS-ALERTING"},
			Severity:     Error,
			Description:  "Every service must carry an hy-home.tier label.",
			Remediation:  "Add a `hy-home.tier` label (infra, gateway, app, data, ...): it routes alerts and labels logs.",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				if w.Tier() != "" {
					return nil
				}
				if _, ok := w.Labels[workload.LabelTier]; ok {
					return one("hy-home.tier is empty", w.At(w.LabelPos[workload.LabelTier]))
				}
				return one("has no hy-home.tier label", w.Pos)
			},
		},
		{
			ID:           "memory-limit",
			Requirements: []string{"NFR-RES-01", "AC-SPEC-03"},
			Severity:     Error,
			Description:  "Every service must have a memory limit below the host's memory.",
			Remediation:  "Set `deploy.resources.limits.memory` (or `mem_limit`) to what the service needs at peak.",
			Check: func(w *workload.Workload, env *Env) []Violation {
				switch {
				case w.MemoryLimit > 0 && env.HostMemory > 0 && w.MemoryLimit >= env.HostMemory:
					return one(fmt.Sprintf("memory limit %s is at or above the host's memory (%s): it limits nothing",
						workload.FormatBytes(w.MemoryLimit), workload.FormatBytes(env.HostMemory)), w.At(w.MemoryLimitPos))
				case w.MemoryLimit > 0:
					return nil
				}
				return one("has no memory limit", w.Pos)
			},
		},
		{
			ID:           "memory-budget",
			Requirements: []string{"NFR-RES-01"},
			Severity:     Error,
			Description:  "The infra tier's memory limits must add up to under 20% of host memory.",
			Remediation:  "Lower the infra services' memory limits, or run them on a larger host (`--host-memory`).",
			CheckProject: checkMemoryBudget,
		},
		{
			ID:           "baseline-anchor",
			Requirements: []string{"SEC-ANCHORS"},
			Severity:     Error,
			Description:  "The file must define &security-baseline and every service must merge it.",
			Remediation:  "Define `x-security-baseline: &security-baseline` with `security_opt: [\"no-new-privileges:true\"]` and `cap_drop: [ALL]`, and add `<<: *security-baseline` to the service.",
			Kinds:        []workload.Kind{workload.KindCompose},
			Check: func(w *workload.Workload, _ *Env) []Violation {
				b := w.Baseline
				switch {
				case !b.Applicable || b.Merged:
					return nil
				case !b.FileDefines:
					return one(fmt.Sprintf("%s does not define the &security-baseline anchor", filepath.Base(b.File)), w.Pos)
				default:
					return one("does not merge <<: *security-baseline", w.Pos)
				}
			},
		},
		{
			ID:           "read-only-rootfs",
			Requirements: []string{"CIS-DOCKER"},
			Severity:     Warning,
			Description:  "The root filesystem should be read-only.",
			Remediation:  "Set `read_only: true` and give the service `tmpfs:` or volumes for the paths it writes.",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				if w.ReadOnlyRootfs {
					return nil
				}
				return one("root filesystem is writable", w.At(w.ReadOnlyRootfsPos))
			},
		},
		{
			ID:           "pids-limit",
			Requirements: []string{"CIS-DOCKER"},
			Severity:     Warning,
			Description:  "A pids limit should bound fork bombs.",
			Remediation:  "Set `pids_limit` (or `deploy.resources.limits.pids`), e.g. 256.",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				if w.PidsLimit > 0 {
					return nil
				}
				return one("has no pids limit", w.At(w.PidsLimitPos))
			},
		},
		{
			ID:           "healthcheck",
			Requirements: []string{"CIS-DOCKER"},
			Severity:     Warning,
			Description:  "A health check should tell the engine when the service is unhealthy.",
			Remediation:  "Add a `healthcheck:` that probes the service (or keep the image's HEALTHCHECK enabled).",
			Check: func(w *workload.Workload, _ *Env) []Violation {
				h := w.Healthcheck
				switch {
				case h.Disabled:
					return one("health check is disabled", w.At(h.Pos))
				case !h.Defined && w.Kind == workload.KindCompose:
					return one("declares no healthcheck (an image HEALTHCHECK, if any, is not visible to lint)", w.Pos)
				case !h.Defined:
					return one("has no health check", w.Pos)
				}
				return nil
			},
		},
		{
			ID:           "security-profile",
			Requirements: []string{"CIS-DOCKER", "NFR-SEC-01"},
			Severity:     Error,
			Description:  "seccomp, AppArmor, SELinux and the masked /proc and /sys paths must not be disabled or weakened.",
			Remediation:  "Remove `seccomp=unconfined`, `apparmor=unconfined`, `label=disable`, `systempaths=unconfined` and `writable-cgroups=true` from `security_opt`, leave MaskedPaths and ReadonlyPaths to the engine, and give a custom seccomp profile only syscalls Docker's default allows.",
			Check:        checkSecurityProfile,
		},
		{
			ID:           "host-devices",
			Requirements: []string{"CIS-DOCKER", "NFR-SEC-01"},
			Severity:     Warning,
			Description:  "Host devices should not be exposed to containers; disks, memory and unknown devices must not be.",
			Remediation:  "Remove the `devices:` entry and any `device_cgroup_rules`, or justify a peripheral (GPU, serial adapter) in an ADR.",
			Check:        checkHostDevices,
		},
		{
			ID:           "image-pinned",
			Requirements: []string{"CIS-DOCKER"},
			Severity:     Warning,
			Description:  "Images should be pinned to a digest or a tag with a version number, not a moving tag.",
			Remediation:  "Use an explicit version tag (e.g. `traefik:v3.1.2`), ideally with its `@sha256:` digest.",
			Check:        checkImagePinned,
		},
		{
			ID:           RuleADRExemption,
			Requirements: []string{"NFR-SEC-01"},
			Severity:     Error,
			Description:  "Exemptions must cite an existing, Accepted ADR whose front matter exempts each rule for this workload.",
			Remediation:  "Point `hy-home.adr` at an Accepted ADR in docs/adr whose `exempts` lists every rule in `hy-home.exempt` and whose `applies_to` names this workload (project or service, and its image for containers, services and API requests), or remove the exemption.",
			Check: func(w *workload.Workload, env *Env) []Violation {
				if ex, ok := env.exemptions[w]; ok {
					return ex.problems
				}
				return exemptionOf(w, env).problems
			},
		},
	}
}

func checkHostNamespaces(w *workload.Workload, env *Env) []Violation {
	var vs []Violation
	for _, ns := range []struct {
		name, key string
		n         workload.Namespace
	}{
		{"pid", "pid", w.Namespaces.PID},
		{"network", "network_mode", w.Namespaces.Network},
		{"ipc", "ipc", w.Namespaces.IPC},
		{"uts", "uts", w.Namespaces.UTS},
		{"user", "userns_mode", w.Namespaces.UserNS},
		{"cgroup", "cgroup", w.Namespaces.Cgroup},
	} {
		if !ns.n.IsHost() {
			continue
		}
		msg := fmt.Sprintf("shares the host's %s namespace (%s: %s)", ns.name, ns.key, ns.n.Mode)
		if ns.n.Via != "" {
			msg = fmt.Sprintf("shares the host's %s namespace, inherited from %s (%s: %s)", ns.name, ns.n.Via, ns.key, ns.n.Mode)
		}
		if ns.name == "cgroup" && w.Kind == workload.KindContainer && env.Host.CgroupnsDefault != "private" {
			// Inspect shows the mode the engine gave the container, and on
			// cgroup v1 hosts its default is host: a container that asked
			// for nothing cannot be told from one that asked for host.
			continue
		}
		vs = append(vs, Violation{Message: msg, Pos: w.At(ns.n.Pos)})
	}
	return vs
}

func checkNoNewPrivileges(w *workload.Workload, _ *Env) []Violation {
	set, idx, invalid := w.NoNewPrivileges()
	switch {
	case invalid:
		return one(fmt.Sprintf("security_opt %q is not a boolean; the engine refuses to create the container", w.SecurityOpt[idx]), w.SecurityOptPosition(idx))
	case set:
		return nil
	case idx >= 0:
		return one(fmt.Sprintf("security_opt %q turns no-new-privileges off", w.SecurityOpt[idx]), w.SecurityOptPosition(idx))
	case len(w.SecurityOpt) > 0:
		return one("security_opt lacks no-new-privileges:true", w.At(w.SecurityOptAt))
	}
	return one("no-new-privileges is not set: setuid binaries can gain privileges", w.Pos)
}

// dangerousCaps are capabilities that amount to (or lead quickly to) root on
// the host or control of its network.
var dangerousCaps = map[string]bool{
	"ALL": true, "SYS_ADMIN": true, "NET_ADMIN": true, "SYS_PTRACE": true, "SYS_MODULE": true,
	"SYS_RAWIO": true, "SYS_BOOT": true, "SYS_TIME": true, "DAC_READ_SEARCH": true, "DAC_OVERRIDE": true,
	"MAC_ADMIN": true, "MAC_OVERRIDE": true, "BPF": true, "PERFMON": true, "SYSLOG": true,
	"LINUX_IMMUTABLE": true, "SETFCAP": true, "CHECKPOINT_RESTORE": true,
}

func checkCapAdd(w *workload.Workload, _ *Env) []Violation {
	var vs []Violation
	for i, c := range w.CapAdd {
		n := workload.NormalizeCap(c)
		pos := w.Pos
		if i < len(w.CapAddPos) {
			pos = w.At(w.CapAddPos[i])
		}
		if dangerousCaps[n] {
			vs = append(vs, Violation{Message: fmt.Sprintf("adds dangerous capability %s", n), Pos: pos, Severity: Error})
		} else {
			vs = append(vs, Violation{Message: fmt.Sprintf("adds capability %s", n), Pos: pos})
		}
	}
	return vs
}

func checkNonRoot(w *workload.Workload, _ *Env) []Violation {
	user, fromImage, known := w.EffectiveUser()
	at := w.At(w.UserPos)
	if fromImage {
		at = w.Pos
	}
	if id := w.Identity; id != nil {
		from := ""
		if id.From != "" {
			from = " in " + id.From
		}
		switch {
		case id.Err != "":
			return one(fmt.Sprintf("user %q does not resolve%s as the engine resolves it (%s): the engine refuses to start it, or runs whoever the name means once the container's files change", user, from, id.Err), at)
		case id.UID != 0:
			return nil
		case fromImage && strings.TrimSpace(user) == "":
			return one(fmt.Sprintf("sets no user and image %s has no USER: runs as root", w.Image), at)
		case workload.RootUser(user):
			return one(fmt.Sprintf("runs as root (user: %q)", user), at)
		default:
			return one(fmt.Sprintf("runs as root: user %q is uid 0%s", user, from), at)
		}
	}
	switch {
	case !known:
		return one("sets no user: the image's default user applies, which is root unless the image says otherwise", w.Pos)
	case fromImage && strings.TrimSpace(user) == "":
		return one(fmt.Sprintf("sets no user and image %s has no USER: runs as root", w.Image), w.Pos)
	case fromImage && workload.RootUser(user):
		return one(fmt.Sprintf("sets no user and image %s defaults to %q: runs as root", w.Image, user), w.Pos)
	case !fromImage && workload.RootUser(user):
		return one(fmt.Sprintf("runs as root (user: %q)", user), w.At(w.UserPos))
	case !numericUserOnly(user, w.GroupAdd):
		// A name means whatever the image's /etc/passwd says at start,
		// which this source cannot read. The guard resolves names itself
		// (Identity) and refuses those it cannot.
		v := Violation{Message: fmt.Sprintf("user %q (group_add %v) names users or groups that only the image's /etc/passwd and /etc/group resolve, which this source cannot read: write numeric IDs (UID:GID)", user, w.GroupAdd), Pos: w.At(w.GroupAddPos)}
		if w.GroupAdd == nil {
			v.Message = fmt.Sprintf("user %q is a name that only the image's /etc/passwd resolves, which this source cannot read: write the numeric UID:GID", user)
			v.Pos = at
		}
		if w.Kind != workload.KindRequest {
			v.Severity = Warning
		}
		return []Violation{v}
	}
	return nil
}

// numericUserOnly reports whether a user spec and extra groups hold only
// IDs, so that nothing but the primary and supplementary groups depends on
// the image's files ("1000" takes its group from /etc/passwd, which can
// not make it root).
func numericUserOnly(spec string, groupAdd []string) bool {
	u, g, hasGroup := strings.Cut(spec, ":")
	if _, err := strconv.Atoi(u); err != nil {
		return false
	}
	if hasGroup {
		if _, err := strconv.Atoi(strings.Split(g, ":")[0]); err != nil {
			return false
		}
	}
	for _, a := range groupAdd {
		if _, err := strconv.Atoi(a); err != nil {
			return false
		}
	}
	return true
}

func checkMetrics(w *workload.Workload, _ *Env) []Violation {
	if port, pos, ok := w.Label(workload.LabelMetricsPort); ok {
		n, err := strconv.Atoi(strings.TrimSpace(port))
		if err != nil || n < 1 || n > 65535 {
			return one(fmt.Sprintf("%s %q is not a port number", workload.LabelMetricsPort, port), pos)
		}
		if p, ppos, ok := w.Label(workload.LabelMetricsPath); ok && !strings.HasPrefix(strings.TrimSpace(p), "/") {
			return one(fmt.Sprintf("%s %q must be an absolute path", workload.LabelMetricsPath, p), ppos)
		}
		return nil
	}
	if kind, pos, ok := w.Label(workload.LabelMetrics); ok {
		switch strings.ToLower(strings.TrimSpace(kind)) {
		case "otlp":
			return nil
		case "prometheus":
			return one(fmt.Sprintf("%s: prometheus needs %s", workload.LabelMetrics, workload.LabelMetricsPort), pos)
		default:
			return one(fmt.Sprintf("%s %q is neither otlp nor prometheus", workload.LabelMetrics, kind), pos)
		}
	}
	return one("declares no metrics endpoint (hy-home.metrics.port or hy-home.metrics: otlp)", w.Pos)
}

func isLoopback(ip string) bool {
	p := net.ParseIP(strings.Trim(ip, "[]"))
	return p != nil && p.IsLoopback()
}

func checkPublishedPorts(w *workload.Workload, _ *Env) []Violation {
	if w.Tier() == workload.TierGateway {
		return nil
	}
	var vs []Violation
	for _, p := range w.Ports {
		if isLoopback(p.HostIP) {
			continue
		}
		host := p.Published
		if host == "" {
			host = "an ephemeral port"
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		vs = append(vs, Violation{Message: fmt.Sprintf("publishes %d/%s on host %s; public traffic must enter through the Traefik gateway", p.Target, proto, host), Pos: w.At(p.Pos)})
	}
	return vs
}

// tlsVersions orders Traefik's minVersion values.
var tlsVersions = map[string]int{"VersionTLS10": 10, "VersionTLS11": 11, "VersionTLS12": 12, "VersionTLS13": 13}

func checkTraefikTLS(p *workload.Project, _ *Env) []Violation {
	var vs []Violation
	var gw *workload.Workload
	for _, w := range p.Workloads {
		if w.Gateway != nil {
			gw = w
			break
		}
	}
	var eps map[string]workload.EntryPoint
	if gw != nil {
		eps = gw.Gateway.EntryPoints
	}
	usedOptions := map[string]bool{}
	judge := func(owner *workload.Workload, r workload.Router) {
		if r.TLS {
			name := r.TLSOptions
			if name == "" {
				name = "default"
			}
			usedOptions[name] = true
			return
		}
		if entryPointsTLS(r.EntryPoints, eps) {
			usedOptions["default"] = true
			return
		}
		if gw == nil {
			vs = append(vs, traefikUnknownTLS(owner, r))
			return
		}
		where := "its entry points are not TLS"
		if len(r.EntryPoints) > 0 {
			where = fmt.Sprintf("entry points %s are not TLS", strings.Join(r.EntryPoints, ", "))
		}
		vs = append(vs, Violation{Workload: owner, Message: fmt.Sprintf("Traefik %s router %q serves plain text: no tls and %s", r.Protocol, r.Name, where), Pos: owner.At(r.Pos)})
	}
	for _, w := range p.Workloads {
		for _, r := range w.Routers {
			judge(w, r)
		}
	}
	if gw == nil {
		return vs
	}
	for _, r := range gw.Gateway.Routers {
		judge(gw, r)
	}
	usedOptions["default"] = true
	names := make([]string, 0, len(usedOptions))
	for n := range usedOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		o, ok := gw.Gateway.TLSOptions[name]
		files := "no dynamic configuration file was found among its bind mounts"
		if len(gw.Gateway.Files) > 0 {
			files = "read " + strings.Join(gw.Gateway.Files, ", ")
		}
		switch {
		case !ok:
			vs = append(vs, Violation{Workload: gw, Message: fmt.Sprintf("Traefik TLS options %q do not set minVersion (%s)", name, files), Pos: gw.Pos})
		case o.MinVersion == "":
			vs = append(vs, Violation{Workload: gw, Message: fmt.Sprintf("Traefik TLS options %q do not set minVersion", name), Pos: gw.At(o.Pos)})
		case tlsVersions[o.MinVersion] == 0:
			vs = append(vs, Violation{Workload: gw, Message: fmt.Sprintf("Traefik TLS options %q have unknown minVersion %q", name, o.MinVersion), Pos: gw.At(o.Pos)})
		case tlsVersions[o.MinVersion] < 12:
			vs = append(vs, Violation{Workload: gw, Message: fmt.Sprintf("Traefik TLS options %q allow %s, below TLS 1.2", name, o.MinVersion), Pos: gw.At(o.Pos)})
		}
	}
	return vs
}

// entryPointsTLS reports whether every entry point a router listens on
// terminates TLS or redirects to one that does. A router naming no entry
// point listens on all of them.
func entryPointsTLS(names []string, eps map[string]workload.EntryPoint) bool {
	if len(eps) == 0 {
		return false
	}
	if len(names) == 0 {
		for n := range eps {
			names = append(names, n)
		}
	}
	for _, n := range names {
		ep, ok := entryPoint(eps, n)
		if !ok {
			return false
		}
		if ep.TLS {
			continue
		}
		if to, ok := entryPoint(eps, ep.RedirectTo); ok && to.TLS {
			continue
		}
		return false
	}
	return true
}

// entryPoint finds an entry point by name; names set through environment
// variables are lower-cased, so the match ignores case.
func entryPoint(eps map[string]workload.EntryPoint, name string) (workload.EntryPoint, bool) {
	if ep, ok := eps[name]; ok {
		return ep, true
	}
	for n, ep := range eps {
		if strings.EqualFold(n, name) {
			return ep, true
		}
	}
	return workload.EntryPoint{}, false
}

func checkMemoryBudget(p *workload.Project, _ *Env) []Violation {
	if p.HostMemory <= 0 {
		return nil
	}
	b := ComputeBudget(p)
	if len(b.Lines) == 0 || b.Total < int64(float64(p.HostMemory)*BudgetShare) {
		return nil
	}
	largest := b.Lines[0]
	for _, l := range b.Lines {
		if l.Total > largest.Total {
			largest = l
		}
	}
	msg := fmt.Sprintf("infra tier memory limits add up to %s (%d services), %.1f%% of host memory %s; NFR-RES-01 requires under %.0f%%",
		workload.FormatBytes(b.Total), len(b.Lines), 100*float64(b.Total)/float64(p.HostMemory), workload.FormatBytes(p.HostMemory), 100*BudgetShare)
	if len(b.Unlimited) > 0 {
		msg += fmt.Sprintf(" (not counted, no limit: %s)", strings.Join(b.Unlimited, ", "))
	}
	return []Violation{{Workload: largest.Workload, Message: msg, Pos: largest.Workload.At(largest.Workload.MemoryLimitPos)}}
}

// BudgetLine is one infra service's share of the memory budget.
type BudgetLine struct {
	Workload *workload.Workload
	Limit    int64
	Replicas int
	Total    int64
}

// Budget is the infra tier's memory budget against the host.
type Budget struct {
	Lines      []BudgetLine
	Total      int64
	HostMemory int64
	Unlimited  []string // infra services without a limit
}

// Share is the budget's fraction of host memory.
func (b Budget) Share() float64 {
	if b.HostMemory <= 0 {
		return 0
	}
	return float64(b.Total) / float64(b.HostMemory)
}

// ComputeBudget sums the memory limits of the project's infra-tier services
// (limit × replicas), the figure NFR-RES-01 bounds.
func ComputeBudget(p *workload.Project) Budget {
	b := Budget{HostMemory: p.HostMemory}
	for _, w := range p.Workloads {
		if w.Tier() != workload.TierInfra {
			continue
		}
		if w.MemoryLimit <= 0 {
			b.Unlimited = append(b.Unlimited, w.Name)
			continue
		}
		n := w.Replicas
		if n < 1 {
			n = 1
		}
		l := BudgetLine{Workload: w, Limit: w.MemoryLimit, Replicas: n, Total: w.MemoryLimit * int64(n)}
		b.Lines = append(b.Lines, l)
		b.Total += l.Total
	}
	return b
}
