package policy

import (
	"fmt"
	"path/filepath"

	"github.com/hy-home/hyhome/internal/workload"
)

// baseline-anchor: a compose file defines &security-baseline and every service
// merges it. Only a compose source knows anchors (Kinds).
var ruleBaselineAnchor = &Rule{
	ID:           "baseline-anchor",
	Requirements: []string{"SEC-ANCHORS"},
	Severity:     Error,
	Description:  "The file must define &security-baseline and every service must merge it.",
	Remediation:  "Define `x-security-baseline: &security-baseline` with `security_opt: [\"no-new-privileges:true\"]` and `cap_drop: [ALL]`, and add `<<: *security-baseline` to the service.",
	Kinds:        []workload.Kind{workload.KindCompose},
	Check:        checkBaselineAnchor,
}

func checkBaselineAnchor(w *workload.Workload, _ *Env) []Violation {
	b := w.Baseline
	switch {
	case !b.Applicable || b.Merged:
		return nil
	case !b.FileDefines:
		return one(fmt.Sprintf("%s does not define the &security-baseline anchor", filepath.Base(b.File)), w.Pos)
	default:
		return one("does not merge <<: *security-baseline", w.Pos)
	}
}
