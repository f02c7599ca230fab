package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/workload"
)

// exemption is what a workload's hy-home.adr / hy-home.exempt labels grant.
type exemption struct {
	adr      string
	valid    map[string]bool // rule IDs validly exempted
	problems []Violation     // why some claimed exemptions do not hold
}

// exemptionOf reads a workload's exemption labels and checks them against
// the ADR they cite: it must exist, be Accepted and name each exempted rule.
func exemptionOf(w *workload.Workload, env *Env) exemption {
	ex := exemption{valid: map[string]bool{}}
	ref, refPos, hasRef := w.Label(workload.LabelADR)
	list, listPos, hasList := w.Label(workload.LabelExempt)
	ref = strings.TrimSpace(ref)
	if !hasList || strings.TrimSpace(list) == "" {
		return ex
	}
	bad := func(pos workload.Position, format string, args ...any) {
		ex.problems = append(ex.problems, Violation{Message: fmt.Sprintf(format, args...), Pos: pos})
	}
	if !hasRef || ref == "" {
		bad(listPos, "%s lists exemptions but no %s label cites the ADR that justifies them", workload.LabelExempt, workload.LabelADR)
		return ex
	}
	resolver := env.ADRs
	if resolver == nil {
		resolver = adr.NewResolver()
	}
	near := ""
	if w.Pos.Known() {
		near = w.Pos.File
	}
	rec, err := resolver.Lookup(ref, near)
	switch {
	case errors.Is(err, adr.ErrNotFound):
		bad(refPos, "exemption cites %s, but %v", ref, err)
		return ex
	case err != nil:
		bad(refPos, "exemption cites %s: %v", ref, err)
		return ex
	case !rec.Accepted():
		status := rec.Status
		if status == "" {
			status = "no status"
		}
		bad(refPos, "exemption cites %s (%s), whose status is %q, not Accepted", rec.ID, rec.Path, status)
		return ex
	}
	ex.adr = rec.ID
	for _, id := range strings.Split(list, ",") {
		id = strings.TrimSpace(id)
		switch {
		case id == "":
		case id == RuleADRExemption:
			bad(listPos, "%s cannot be exempted", RuleADRExemption)
		case env.Registry != nil && env.Registry.Get(id) == nil:
			bad(listPos, "%s names unknown rule %q", workload.LabelExempt, id)
		case !rec.Names(id):
			bad(listPos, "%s (%s) does not name rule %s, so it cannot exempt it", rec.ID, rec.Path, id)
		default:
			ex.valid[id] = true
		}
	}
	return ex
}
