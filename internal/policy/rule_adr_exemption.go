package policy

import (
	"github.com/hy-home/hyhome/internal/workload"
)

// adr-exemption: an exemption label counts only when the ADR it cites exists, is
// Accepted, exempts the rule and names the workload (exemption.go reads it).
var ruleADRExemption = &Rule{
	ID:           RuleADRExemption,
	Requirements: []string{"NFR-SEC-01"},
	Severity:     Error,
	Description:  "Exemptions must cite an existing, Accepted ADR whose front matter exempts each rule for this workload.",
	Remediation:  "Point `hy-home.adr` at an Accepted ADR in docs/adr whose `exempts` lists every rule in `hy-home.exempt` and whose `applies_to` names this workload (project or service, and its image for containers, services and API requests), or remove the exemption.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin, RequestVolume},
	Check:        checkADRExemption,
}

// RuleADRExemption is the rule that reports exemptions no ADR backs.
const RuleADRExemption = "adr-exemption"

func checkADRExemption(w *workload.Workload, env *Env) []Violation {
	if ex, ok := env.exemptions[w]; ok {
		return ex.problems
	}
	return exemptionOf(w, env).problems
}
