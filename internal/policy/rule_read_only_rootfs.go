package policy

import (
	"github.com/hy-home/hyhome/internal/workload"
)

// read-only-rootfs: the root filesystem is read-only.
var ruleReadOnlyRootfs = &Rule{
	ID:           "read-only-rootfs",
	Requirements: []string{"CIS-DOCKER"},
	Severity:     Warning,
	Description:  "The root filesystem should be read-only.",
	Remediation:  "Set `read_only: true` and give the service `tmpfs:` or volumes for the paths it writes.",
	Requests:     []Request{RequestCreate},
	Check:        checkReadOnlyRootfs,
}

func checkReadOnlyRootfs(w *workload.Workload, _ *Env) []Violation {
	if w.ReadOnlyRootfs {
		return nil
	}
	return one("root filesystem is writable", w.At(w.ReadOnlyRootfsPos))
}
