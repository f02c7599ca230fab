package guard

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// ruleNonRoot is the one rule a judge names: a create request whose image
// is missing is answered with the engine's 404 when only the image's user
// was left to judge.
const ruleNonRoot = "non-root"

// admission judges write requests by turning them into workloads and
// evaluating the rule catalogue on them.
type admission struct {
	registry *policy.Registry
	adrs     *adr.Resolver
	strict   bool
	failOn   policy.Severity
	engine   admissionEngine
	// allow is what the profile allows beyond the baseline (host
	// directories, volume types, log drivers); AdmissionAllow's defaults.
	allow policy.Allowlists

	hostFacts *hostFacts  // shared by every profile's copy (forProfile)
	images    *imageCache // shared by every profile's copy (forProfile)

	// exemptions is the listener's profile setting (see forProfile).
	exemptions bool

	// judged holds, by request kind, the rules that declare it
	// (policy.Rule.Requests): rules added to the catalogue are judged
	// without changes here.
	judged map[policy.Request]map[string]bool
}

func newAdmission(reg *policy.Registry, adrs *adr.Resolver, strict bool, failOn policy.Severity, eng admissionEngine) *admission {
	a := &admission{
		registry: reg, adrs: adrs, strict: strict, failOn: failOn, engine: eng, allow: AdmissionAllow(policy.Allowlists{}), hostFacts: &hostFacts{}, images: &imageCache{},
		judged: map[policy.Request]map[string]bool{},
	}
	for _, k := range policy.Requests {
		a.judged[k] = map[string]bool{}
	}
	for _, r := range reg.Rules() {
		for _, k := range r.Requests {
			a.judged[k][r.ID] = true
		}
	}
	return a
}

// rules returns the rules requests of kind k are judged with.
func (a *admission) rules(k policy.Request) map[string]bool { return a.judged[k] }

// verdict is what a judge decided.
type verdict struct {
	deny *denial
	// findings are every finding evaluated, warnings and exempted ones
	// included, for the log.
	findings []policy.Finding
	// body, when set, replaces the request body: the judged body with the
	// values the judge pinned (resolved IDs, the image's user).
	body []byte
	// vars, when set, replace the route variables (a name pinned to the ID
	// that was judged, so that a rename cannot swap the target).
	vars Vars
}

func refused(d *denial) verdict { return verdict{deny: d} }

// judge runs the route's judge on a canonical request and its buffered
// body, for a listener with profile p.
func (a *admission) judge(ctx context.Context, p *Profile, t *target, r *http.Request, body []byte) verdict {
	switch t.route.judge {
	case judgeContainerCreate:
		v := a.containerCreate(ctx, t, r, body)
		if v.deny == nil {
			v.deny = a.createNames(ctx, p, t, body)
		}
		return v
	case judgeContainerUpdate:
		return a.containerUpdate(ctx, t, r, body)
	case judgeContainerUse:
		return a.containerUse(ctx, t)
	case judgeExecCreate:
		return a.execCreate(ctx, t, r, body)
	case judgeExecStart:
		return a.execStart(ctx, t)
	case judgeServiceCreate, judgeServiceUpdate:
		v := a.service(ctx, t, r, body)
		if v.deny == nil {
			v.deny = servicePlugin(p, t, body)
		}
		return v
	case judgeVolumeCreate:
		return a.volumeCreate(ctx, t, r, body)
	case judgePluginCreate:
		return a.pluginCreate(p, t)
	case judgePluginPrivileges:
		return a.pluginPrivileges(p, t, r, body)
	case judgePluginEnable:
		return a.pluginEnable(ctx, p, t)
	case judgeBuild:
		return a.buildRequest(ctx, t)
	case judgeImageTag:
		return a.imageTag(ctx, p, t)
	case judgeNetworkCreate:
		// The permit decision first, so that a refusal names it; then the
		// field table for the rest of the body.
		if v := a.networkCreate(p, t, r, body); v.deny != nil {
			return v
		}
		return a.networkBody(t, r, body)
	case judgeNetworkConnect:
		if v := a.networkBody(t, r, body); v.deny != nil {
			return v
		}
		return a.networkConnect(ctx, p, t, r, body)
	case judgeNetwork:
		return a.networkBody(t, r, body)
	case judgeContainerRename:
		return a.containerRename(ctx, p, t)
	case judgeUnjudgeable:
		return refused(deny(http.StatusForbidden, reasonUnjudgeable,
			"%s is BuildKit's control API: build requests and their entitlements (network.host is granted by default on Docker 20.10) travel inside an HTTP/2 stream the guard cannot judge; build through POST /build (the classic builder)", t.route.Name))
	case judgeNone:
		return verdict{}
	}
	// A route with a judge this switch does not know must not pass unjudged.
	return refused(deny(http.StatusForbidden, reasonUnjudgeable, "%s has no admission judge", t.route.Name))
}

// evaluate runs the rules in only on one workload and returns every finding
// and the failing ones (not exempted, at or above the fail-on severity).
func (a *admission) evaluate(w *workload.Workload, only map[string]bool, f facts) (all, failing []policy.Finding) {
	if !slices.Contains(slices.Collect(maps.Values(only)), true) {
		// policy.Env reads an empty Only as "every rule"; a set that names
		// no rule of this registry judges nothing.
		return nil, nil
	}
	env := a.policyEnv(only)
	env.HostMemory, env.Host, env.Allow = f.memory, f.host, a.allow
	all = policy.Evaluate(&workload.Project{Name: w.Name, Workloads: []*workload.Workload{w}}, env)
	for _, f := range all {
		if !f.Exempted && f.Severity >= a.failOn {
			failing = append(failing, f)
		}
	}
	return all, failing
}

// forProfile returns the admission a listener with profile p judges with:
// the same judges and rule sets, with exemptions honoured only when the
// profile says so.
func (a *admission) forProfile(p *Profile) *admission {
	if p.HonoursExemptions() == a.exemptions {
		return a
	}
	c := *a
	c.exemptions = p.HonoursExemptions()
	return &c
}

// policyEnv is the one place admission decides what a request's
// hy-home.adr / hy-home.exempt labels count for. Whoever sends the request
// wrote them, so on a profile that does not honour exemptions (every
// built-in one) they are labels like any other: nothing is exempted and
// they are not judged. Where a profile honours them, an exemption holds
// only when the ADR is Accepted, exempts the rule and names the request's
// compose project or service and its image (package policy checks that for
// every request); admission.strict still ignores them all.
func (a *admission) policyEnv(only map[string]bool) *policy.Env {
	return &policy.Env{Registry: a.registry, ADRs: a.adrs, Strict: a.strict, NoExemptions: !a.exemptions, Only: only}
}

// conclude turns an evaluation into a verdict, with the host facts last
// learnt (judges that build workloads from the engine's objects ask for
// fresh ones and use concludeWith).
func (a *admission) conclude(w *workload.Workload, only map[string]bool) verdict {
	return a.concludeWith(w, only, a.lastFacts())
}

// concludeWith turns an evaluation into a verdict.
func (a *admission) concludeWith(w *workload.Workload, only map[string]bool, f facts) verdict {
	all, failing := a.evaluate(w, only, f)
	if len(failing) > 0 {
		return verdict{deny: policyDenial(http.StatusForbidden, failing), findings: all}
	}
	return verdict{findings: all}
}

// decodeBody checks that a judged body is present and JSON, and decodes it
// strictly into v.
func decodeBody(r *http.Request, body []byte, v any) *denial {
	if len(bytes.TrimSpace(body)) == 0 {
		// CVE-2024-41110: AuthZ plugins skipped bodies the request did not
		// announce (Content-Length 0, chunked); the guard reads the body
		// whatever the framing says, and an empty one has nothing to admit.
		return deny(http.StatusForbidden, reasonBody, "the request body is empty; there is nothing to admit")
	}
	if !isJSON(r) {
		return deny(http.StatusForbidden, reasonBody, "the request body must be declared application/json, not %q", r.Header.Get("Content-Type"))
	}
	if err := decodeStrict(body, v); err != nil {
		return deny(http.StatusForbidden, reasonBody, "request body: %v", err)
	}
	return nil
}

// lookupDenial turns a failed lookup into a denial: a missing object is the
// engine's own 404 (so that clients react as they would without the guard,
// e.g. the docker CLI pulls a missing image), anything else fails closed.
func lookupDenial(kind, ref string, err error, why string) *denial {
	if errors.Is(err, errNotFound) {
		d := deny(http.StatusNotFound, reasonNotFound, "No such %s: %s", kind, ref)
		if why != "" {
			d.message += " (" + why + ")"
		}
		return d
	}
	return deny(http.StatusBadGateway, reasonLookup, "cannot check %s %s: %v", kind, ref, err)
}

// validRef reports whether a container, volume, network, exec, service or
// plugin reference can be looked up by path without being read as another
// path: no slashes, no dot segments.
func validRef(ref string) bool {
	ref = strings.TrimPrefix(ref, "/")
	return ref != "" && ref != "." && ref != ".." && !strings.ContainsAny(ref, "/?#\\") && !strings.ContainsFunc(ref, isSpaceOrControl)
}

// validImageRef is validRef for image references, which may hold slashes
// (repository paths) but no dot segments.
func validImageRef(ref string) bool {
	if ref == "" || strings.HasPrefix(ref, "/") || strings.ContainsAny(ref, "?#\\") || strings.ContainsFunc(ref, isSpaceOrControl) {
		return false
	}
	for _, seg := range strings.Split(ref, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
