package policy

import (
	"github.com/hy-home/hyhome/internal/workload"
)

// healthcheck: the engine is told how to see that the service is unhealthy.
var ruleHealthcheck = &Rule{
	ID:           "healthcheck",
	Requirements: []string{"CIS-DOCKER"},
	Severity:     Warning,
	Description:  "A health check should tell the engine when the service is unhealthy.",
	Remediation:  "Add a `healthcheck:` that probes the service (or keep the image's HEALTHCHECK enabled).",
	Requests:     []Request{RequestCreate},
	Check:        checkHealthcheck,
}

func checkHealthcheck(w *workload.Workload, _ *Env) []Violation {
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
}
