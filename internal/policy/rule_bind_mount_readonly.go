package policy

import (
	"fmt"

	"github.com/hy-home/hyhome/internal/workload"
)

// bind-mount-readonly: a bind mount (or a volume the local driver binds) is
// read-only.
var ruleBindMountReadonly = &Rule{
	ID:           "bind-mount-readonly",
	Requirements: []string{"Strategy-ST-03"},
	Severity:     Error,
	Description:  "Bind mounts must be read-only.",
	Remediation:  "Add `:ro` (short syntax) or `read_only: true` (long syntax); keep writable data in a named volume, or justify write access in an ADR.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin, RequestVolume},
	Check:        checkBindMountReadonly,
}

func checkBindMountReadonly(w *workload.Workload, _ *Env) []Violation {
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
}
