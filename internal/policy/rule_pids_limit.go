package policy

import (
	"github.com/hy-home/hyhome/internal/workload"
)

// pids-limit: a pids limit bounds fork bombs.
var rulePidsLimit = &Rule{
	ID:           "pids-limit",
	Requirements: []string{"CIS-DOCKER"},
	Severity:     Warning,
	Description:  "A pids limit should bound fork bombs.",
	Remediation:  "Set `pids_limit` (or `deploy.resources.limits.pids`), e.g. 256.",
	Requests:     []Request{RequestCreate, RequestUpdate},
	Check:        checkPidsLimit,
}

func checkPidsLimit(w *workload.Workload, _ *Env) []Violation {
	if w.PidsLimit > 0 {
		return nil
	}
	return one("has no pids limit", w.At(w.PidsLimitPos))
}
