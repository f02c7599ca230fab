package policy

import (
	"fmt"

	"github.com/hy-home/hyhome/internal/workload"
)

// cap-add: capabilities added back are warnings, dangerous ones errors.
var ruleCapAdd = &Rule{
	ID:           "cap-add",
	Requirements: []string{"SEC-ANCHORS", "NFR-SEC-01"},
	Severity:     Warning,
	Description:  "cap_add should be empty; dangerous capabilities are errors.",
	Remediation:  "Remove the capability, or use an unprivileged alternative (e.g. a port above 1024 instead of NET_BIND_SERVICE); justify what remains in an ADR.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin},
	Check:        checkCapAdd,
}

// dangerousCaps are capabilities that amount to (or lead quickly to) root on
// the host or control of its network.
var dangerousCaps = map[string]bool{
	"ALL": true, "SYS_ADMIN": true, "NET_ADMIN": true, "SYS_PTRACE": true, "SYS_MODULE": true,
	"SYS_RAWIO": true, "SYS_BOOT": true, "SYS_TIME": true, "DAC_READ_SEARCH": true, "DAC_OVERRIDE": true,
	"MAC_ADMIN": true, "MAC_OVERRIDE": true, "BPF": true, "PERFMON": true, "SYSLOG": true,
	"LINUX_IMMUTABLE": true, "SETFCAP": true, "CHECKPOINT_RESTORE": true,
}

func checkCapAdd(w *workload.Workload, _ *Env) []Violation {
	var vs []Violation
	for i, c := range w.CapAdd {
		n := workload.NormalizeCap(c)
		pos := w.Pos
		if i < len(w.CapAddPos) {
			pos = w.At(w.CapAddPos[i])
		}
		if dangerousCaps[n] {
			vs = append(vs, Violation{Message: fmt.Sprintf("adds dangerous capability %s", n), Pos: pos, Severity: Error})
		} else {
			vs = append(vs, Violation{Message: fmt.Sprintf("adds capability %s", n), Pos: pos})
		}
	}
	return vs
}
