package policy

import (
	"github.com/hy-home/hyhome/internal/workload"
)

// privileged: no privileged containers.
var rulePrivileged = &Rule{
	ID:           "privileged",
	Requirements: []string{"NFR-SEC-01", "SEC-IDENTITY"},
	Severity:     Error,
	Description:  "Containers must not run privileged.",
	Remediation:  "Remove `privileged: true` and grant only the capabilities or devices the service needs, or justify the exception in an ADR.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin},
	Check:        checkPrivileged,
}

func checkPrivileged(w *workload.Workload, _ *Env) []Violation {
	if !w.Privileged {
		return nil
	}
	return one("runs privileged: every capability, every host device and no confinement", w.At(w.PrivilegedPos))
}
