package policy

import (
	"fmt"
	"path"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// host-path: host paths come from allowed directories, never from the host's
// sensitive trees or the engine's data root.
var ruleHostPath = &Rule{
	ID:           "host-path",
	Requirements: []string{"Strategy-ST-03", "NFR-SEC-01"},
	Severity:     Error,
	Description:  "Host paths mounted into containers must come from allowed directories, never from the host's sensitive trees or the engine's data root.",
	Remediation:  "Mount configuration from a directory the guard profile allows (`admission.host_sources`), keep data in named volumes, and never mount /, /etc, /dev, /proc, /sys, /boot, /run, /var/run, /root or the engine's data root; justify an exception in an ADR.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin, RequestVolume},
	Check:        checkHostPath,
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
