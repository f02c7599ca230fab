package policy

import (
	"fmt"

	"github.com/hy-home/hyhome/internal/workload"
)

// no-new-privileges: security_opt sets no-new-privileges:true (AC-SPEC-01).
var ruleNoNewPrivileges = &Rule{
	ID:           "no-new-privileges",
	Requirements: []string{"SEC-ANCHORS", "AC-SPEC-01"},
	Severity:     Error,
	Description:  "security_opt must set no-new-privileges:true.",
	Remediation:  "Merge `<<: *security-baseline` into the service, or add `no-new-privileges:true` to `security_opt`.",
	Requests:     []Request{RequestCreate},
	Check:        checkNoNewPrivileges,
}

func checkNoNewPrivileges(w *workload.Workload, _ *Env) []Violation {
	set, idx, invalid := w.NoNewPrivileges()
	switch {
	case invalid:
		return one(fmt.Sprintf("security_opt %q is not a boolean; the engine refuses to create the container", w.SecurityOpt[idx]), w.SecurityOptPosition(idx))
	case set:
		return nil
	case idx >= 0:
		return one(fmt.Sprintf("security_opt %q turns no-new-privileges off", w.SecurityOpt[idx]), w.SecurityOptPosition(idx))
	case len(w.SecurityOpt) > 0:
		return one("security_opt lacks no-new-privileges:true", w.At(w.SecurityOptAt))
	}
	return one("no-new-privileges is not set: setuid binaries can gain privileges", w.Pos)
}
