package policy

import (
	"fmt"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// memory-budget: the infra tier's limits add up to under 20% of the host's
// memory (NFR-RES-01). A project rule: lint and audit judge it on the whole
// project, the guard on no single request.
var ruleMemoryBudget = &Rule{
	ID:           "memory-budget",
	Requirements: []string{"NFR-RES-01"},
	Severity:     Error,
	Description:  "The infra tier's memory limits must add up to under 20% of host memory.",
	Remediation:  "Lower the infra services' memory limits, or run them on a larger host (`--host-memory`).",
	CheckProject: checkMemoryBudget,
}

// BudgetShare is the share of host memory the infra tier must stay under
// (NFR-RES-01: "< 20% of system memory").
const BudgetShare = 0.20

func checkMemoryBudget(p *workload.Project, _ *Env) []Violation {
	if p.HostMemory <= 0 {
		return nil
	}
	b := ComputeBudget(p)
	if len(b.Lines) == 0 || b.Total < int64(float64(p.HostMemory)*BudgetShare) {
		return nil
	}
	largest := b.Lines[0]
	for _, l := range b.Lines {
		if l.Total > largest.Total {
			largest = l
		}
	}
	msg := fmt.Sprintf("infra tier memory limits add up to %s (%d services), %.1f%% of host memory %s; NFR-RES-01 requires under %.0f%%",
		workload.FormatBytes(b.Total), len(b.Lines), 100*float64(b.Total)/float64(p.HostMemory), workload.FormatBytes(p.HostMemory), 100*BudgetShare)
	if len(b.Unlimited) > 0 {
		msg += fmt.Sprintf(" (not counted, no limit: %s)", strings.Join(b.Unlimited, ", "))
	}
	return []Violation{{Workload: largest.Workload, Message: msg, Pos: largest.Workload.At(largest.Workload.MemoryLimitPos)}}
}

// BudgetLine is one infra service's share of the memory budget.
type BudgetLine struct {
	Workload *workload.Workload
	Limit    int64
	Replicas int
	Total    int64
}

// Budget is the infra tier's memory budget against the host.
type Budget struct {
	Lines      []BudgetLine
	Total      int64
	HostMemory int64
	Unlimited  []string // infra services without a limit
}

// Share is the budget's fraction of host memory.
func (b Budget) Share() float64 {
	if b.HostMemory <= 0 {
		return 0
	}
	return float64(b.Total) / float64(b.HostMemory)
}

// ComputeBudget sums the memory limits of the project's infra-tier services
// (limit × replicas), the figure NFR-RES-01 bounds.
func ComputeBudget(p *workload.Project) Budget {
	b := Budget{HostMemory: p.HostMemory}
	for _, w := range p.Workloads {
		if w.Tier() != workload.TierInfra {
			continue
		}
		if w.MemoryLimit <= 0 {
			b.Unlimited = append(b.Unlimited, w.Name)
			continue
		}
		n := w.Replicas
		if n < 1 {
			n = 1
		}
		l := BudgetLine{Workload: w, Limit: w.MemoryLimit, Replicas: n, Total: w.MemoryLimit * int64(n)}
		b.Lines = append(b.Lines, l)
		b.Total += l.Total
	}
	return b
}
