package policy

import (
	"fmt"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// cap-drop-all: cap_drop holds ALL.
var ruleCapDropAll = &Rule{
	ID:           "cap-drop-all",
	Requirements: []string{"SEC-ANCHORS"},
	Severity:     Error,
	Description:  "cap_drop must contain ALL.",
	Remediation:  "Merge `<<: *security-baseline` into the service, or set `cap_drop: [ALL]` and add back only what the service needs.",
	Requests:     []Request{RequestCreate},
	Check:        checkCapDropAll,
}

func checkCapDropAll(w *workload.Workload, _ *Env) []Violation {
	if w.DropsAll() {
		return nil
	}
	msg := "cap_drop lacks ALL: the default capability set stays"
	if len(w.CapDrop) > 0 {
		msg = fmt.Sprintf("cap_drop lacks ALL (drops only %s): the rest of the default capability set stays", strings.Join(w.CapDrop, ", "))
	}
	return one(msg, w.At(w.CapDropAt))
}
