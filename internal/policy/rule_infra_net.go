package policy

import (
	"fmt"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// infra-net: a workload that keeps data in a named volume is on infra_net.
var ruleInfraNet = &Rule{
	ID:           "infra-net",
	Requirements: []string{"Strategy-ST-02"},
	Severity:     Warning,
	Description:  "Services with persistent named volumes must be attached to infra_net.",
	Remediation:  "Add `infra_net` to the service's `networks:` (and declare it at the top level).",
	Requests:     []Request{RequestCreate},
	Check:        checkInfraNet,
}

func checkInfraNet(w *workload.Workload, _ *Env) []Violation {
	var vols []string
	var pos workload.Position
	for _, m := range w.Mounts {
		if m.Persistent() {
			if len(vols) == 0 {
				pos = m.Pos
			}
			vols = append(vols, m.Source)
		}
	}
	if len(vols) == 0 {
		return nil
	}
	for _, n := range w.Networks {
		if n == "infra_net" {
			return nil
		}
	}
	return one(fmt.Sprintf("keeps data in named volume %s but is not attached to infra_net", strings.Join(vols, ", ")), w.At(pos))
}
