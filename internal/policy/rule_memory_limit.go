package policy

import (
	"fmt"

	"github.com/hy-home/hyhome/internal/workload"
)

// memory-limit: every workload has a memory limit below the host's memory.
var ruleMemoryLimit = &Rule{
	ID:           "memory-limit",
	Requirements: []string{"NFR-RES-01", "AC-SPEC-03"},
	Severity:     Error,
	Description:  "Every service must have a memory limit below the host's memory.",
	Remediation:  "Set `deploy.resources.limits.memory` (or `mem_limit`) to what the service needs at peak.",
	Requests:     []Request{RequestCreate, RequestUpdate},
	Check:        checkMemoryLimit,
}

func checkMemoryLimit(w *workload.Workload, env *Env) []Violation {
	switch {
	case w.MemoryLimit > 0 && env.HostMemory > 0 && w.MemoryLimit >= env.HostMemory:
		return one(fmt.Sprintf("memory limit %s is at or above the host's memory (%s): it limits nothing",
			workload.FormatBytes(w.MemoryLimit), workload.FormatBytes(env.HostMemory)), w.At(w.MemoryLimitPos))
	case w.MemoryLimit > 0:
		return nil
	}
	return one("has no memory limit", w.Pos)
}
