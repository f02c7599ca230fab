package policy

import (
	"github.com/hy-home/hyhome/internal/workload"
)

// tier-label: every workload carries hy-home.tier.
var ruleTierLabel = &Rule{
	ID:           "tier-label",
	Requirements: []string{"OPS-ALERTING"},
	Severity:     Error,
	Description:  "Every service must carry an hy-home.tier label.",
	Remediation:  "Add a `hy-home.tier` label (infra, gateway, app, data, ...): it routes alerts and labels logs.",
	Requests:     []Request{RequestCreate},
	Check:        checkTierLabel,
}

func checkTierLabel(w *workload.Workload, _ *Env) []Violation {
	if w.Tier() != "" {
		return nil
	}
	if w.ServiceOnly[workload.LabelTier] {
		return one("hy-home.tier is only under deploy.labels, which label a Swarm service and never its containers (where logs, metrics and alerts read it): put it under labels", w.At(w.LabelPos[workload.LabelTier]))
	}
	if _, pos, ok := w.Label(workload.LabelTier); ok {
		return one("hy-home.tier is empty", pos)
	}
	return one("has no hy-home.tier label", w.Pos)
}
