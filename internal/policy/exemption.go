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

// selfLabelled reports whether whoever made the workload also wrote its
// labels: a live container, a Swarm service or an API request. Their
// labels are claims anyone can make, so an exemption holds only when the
// ADR ties itself to what the workload is (its image) and to where it
// belongs (its compose project or service). In a compose file the author
// writes both the labels and the ADR, and the ADR must still name the
// service or project (its image too, when it names one).
func selfLabelled(k workload.Kind) bool { return k != workload.KindCompose }

// exemptionOf reads a workload's exemption labels and checks them against
// the ADR they cite: it must exist, parse, be Accepted, cover the workload
// in its applies_to field and name each exempted rule in its exempts field.
func exemptionOf(w *workload.Workload, env *Env) exemption {
	ex := exemption{valid: map[string]bool{}}
	if env.NoExemptions {
		return ex
	}
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
	// What the labels claim, judged before the ADR: a claim no ADR could
	// grant is reported whatever the ADR says.
	var claims []string
	for _, id := range strings.Split(list, ",") {
		id = strings.TrimSpace(id)
		switch {
		case id == "":
		case id == RuleADRExemption:
			bad(listPos, "%s cannot be exempted", RuleADRExemption)
		case env.Registry != nil && env.Registry.Get(id) == nil:
			bad(listPos, "%s names unknown rule %q", workload.LabelExempt, id)
		default:
			claims = append(claims, id)
		}
	}
	if len(claims) == 0 {
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
	if err == nil && env.Registry != nil {
		err = rec.Validate(func(id string) bool { return env.Registry.Get(id) != nil })
	}
	switch {
	case errors.Is(err, adr.ErrNotFound):
		bad(refPos, "exemption cites %s, but %v", ref, err)
		return ex
	case err != nil:
		bad(refPos, "exemption cites %s, which cannot be used: %v", ref, err)
		return ex
	case !rec.Accepted():
		bad(refPos, "exemption cites %s (%s), whose status is %q, not Accepted", rec.ID, rec.Path, rec.Status)
		return ex
	}
	if msg := uncovered(rec, w); msg != "" {
		bad(refPos, "%s", msg)
		return ex
	}
	for _, id := range claims {
		if !rec.ExemptsRule(id) {
			bad(listPos, "%s (%s) does not exempt rule %s (its exempts field: %s)", rec.ID, rec.Path, id, exemptsList(rec))
			continue
		}
		ex.valid[id] = true
		ex.adr = rec.ID
	}
	return ex
}

// uncovered explains why an ADR's applies_to does not cover the workload,
// or returns "" when an entry does.
func uncovered(rec *adr.Record, w *workload.Workload) string {
	sub := adr.Subject{Project: w.Project, Service: w.Service, Image: w.Image}
	if w.Kind == workload.KindCompose && sub.Service == "" {
		sub.Service = w.Name
	}
	var named []string
	for i := range rec.AppliesTo {
		s := &rec.AppliesTo[i]
		if selfLabelled(w.Kind) && !s.NamesImage() {
			continue
		}
		if s.Matches(sub) {
			return ""
		}
		named = append(named, "{"+s.String()+"}")
	}
	is := fmt.Sprintf("project %q, service %q, image %q", sub.Project, sub.Service, sub.Image)
	if len(named) == 0 {
		if len(rec.AppliesTo) == 0 {
			return fmt.Sprintf("%s (%s) names no workload in applies_to, so it exempts nothing", rec.ID, rec.Path)
		}
		return fmt.Sprintf("%s (%s) names no image in applies_to; whoever creates a %s writes its labels, so an exemption holds for it only when the ADR names its image too (this one has %s)", rec.ID, rec.Path, kindNoun(w.Kind), is)
	}
	return fmt.Sprintf("%s (%s) applies to %s, not to this %s (%s)", rec.ID, rec.Path, strings.Join(named, ", "), kindNoun(w.Kind), is)
}

func kindNoun(k workload.Kind) string {
	switch k {
	case workload.KindContainer:
		return "container"
	case workload.KindSwarm:
		return "Swarm service"
	case workload.KindRequest:
		return "request"
	}
	return "service"
}

func exemptsList(rec *adr.Record) string {
	if len(rec.Exempts) == 0 {
		return "none"
	}
	return strings.Join(rec.ExemptIDs(), ", ")
}
