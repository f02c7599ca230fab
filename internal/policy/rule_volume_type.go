package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// volume-type: volumes are plain local volumes or use a type or driver the
// profile allows.
var ruleVolumeType = &Rule{
	ID:           "volume-type",
	Requirements: []string{"Strategy-ST-03", "NFR-SEC-01"},
	Severity:     Error,
	Description:  "Volumes must be plain local volumes or use a volume type or driver the profile allows.",
	Remediation:  "Drop the volume's `type`/`device` driver options (or the volume driver plugin), or allow the type in the guard profile (`admission.volume_types`) after reading what mounting it from the engine's namespaces gives the container.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin, RequestVolume},
	Check:        checkVolumeType,
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
