package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/api/types/swarm"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// service judges POST /services/create and /services/{id}/update: the
// spec is the service's whole desired state, judged like a container
// create. A rollback (rollback=previous) makes the engine deploy the
// previous spec instead of the body, so that spec is judged too.
func (a *admission) service(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var spec swarm.ServiceSpec
	if d := decodeBody(r, body, &spec); d != nil {
		return refused(d)
	}
	if d := judgeFields(&spec); d != nil {
		return refused(d)
	}
	engineVersion, err := a.engine.apiVersion(ctx)
	if err != nil {
		return refused(deny(http.StatusBadGateway, reasonLookup, "cannot ask the engine for its API version: %v", err))
	}
	version := engineVersion
	if t.version != "" && compareVersions(t.version, engineVersion) < 0 {
		version = t.version
	}
	notes := serviceForAPIVersion(version, &spec)
	v := a.serviceSpec(ctx, spec)
	if v.deny != nil && len(notes) > 0 {
		v.deny.message += " (" + strings.Join(notes, "; ") + ")"
	}
	if v.deny != nil || t.route.judge != judgeServiceUpdate {
		return v
	}
	rollback := false
	for _, val := range queryValues(t.query, "rollback") {
		rollback = rollback || strings.TrimSpace(val) != ""
	}
	if !rollback {
		return v
	}
	id := t.vars["id"]
	if !validRef(id) {
		return refused(deny(http.StatusForbidden, reasonRoute, "service reference %q is not valid", id))
	}
	svc, err := a.engine.service(ctx, id)
	if err != nil {
		return refused(lookupDenial("service", id, err, ""))
	}
	if svc.PreviousSpec != nil {
		prevSpec := *svc.PreviousSpec
		serviceForAPIVersion(engineVersion, &prevSpec)
		prev := a.serviceSpec(ctx, prevSpec)
		prev.findings = append(v.findings, prev.findings...)
		if prev.deny != nil {
			prev.deny.message = "rolling back to the previous spec: " + prev.deny.message
			return prev
		}
		v.findings = prev.findings
	}
	v.vars = pinVar(t.vars, "id", svc.ID)
	return v
}

// serviceForAPIVersion clears the fields of a service spec that the engine
// ignores at the API version the request is served at (the lower of the
// request's and the engine's): Swarm learnt capabilities and pids limits in
// API 1.41 (the engine drops them for older requests) and
// Privileges.NoNewPrivileges in 1.46 (older engines do not have the field).
// The guard judges what the engine will run, not what the request hoped
// for. It returns what it cleared, for the denial message.
func serviceForAPIVersion(version string, spec *swarm.ServiceSpec) []string {
	var notes []string
	cs := spec.TaskTemplate.ContainerSpec
	if compareVersions(version, "1.41") < 0 {
		if cs != nil && (cs.CapabilityAdd != nil || cs.CapabilityDrop != nil) {
			cs.CapabilityAdd, cs.CapabilityDrop = nil, nil
			notes = append(notes, fmt.Sprintf("at API %s the engine ignores CapabilityAdd and CapabilityDrop (API 1.41)", version))
		}
		if r := spec.TaskTemplate.Resources; r != nil && r.Limits != nil && r.Limits.Pids != 0 {
			r.Limits.Pids = 0
			notes = append(notes, fmt.Sprintf("at API %s the engine ignores Resources.Limits.Pids (API 1.41)", version))
		}
	}
	if compareVersions(version, "1.46") < 0 && cs != nil && cs.Privileges != nil && cs.Privileges.NoNewPrivileges {
		cs.Privileges.NoNewPrivileges = false
		notes = append(notes, fmt.Sprintf("at API %s Swarm ignores Privileges.NoNewPrivileges (API 1.46, Docker 27)", version))
	}
	return notes
}

func (a *admission) serviceSpec(ctx context.Context, spec swarm.ServiceSpec) verdict {
	f, d := a.facts(ctx)
	if d != nil {
		return refused(d)
	}
	tt := spec.TaskTemplate
	if ps := tt.PluginSpec; ps != nil {
		privs := make([]plugin.Privilege, 0, len(ps.Privileges))
		for _, p := range ps.Privileges {
			if p != nil {
				privs = append(privs, plugin.Privilege{Name: p.Name, Value: p.Value})
			}
		}
		w, d := pluginWorkload("service request "+spec.Name+" (plugin "+ps.Remote+")", privs, nil)
		if d != nil {
			return refused(d)
		}
		return a.concludeWith(w, a.rules(policy.RequestPlugin), f)
	}
	if tt.ContainerSpec == nil {
		return refused(deny(http.StatusForbidden, reasonBody, "the service spec has no container spec (runtime %q) the guard can judge", tt.Runtime))
	}
	var lookupErr *denial
	w := engine.Service(engine.ServiceInput{
		Spec: spec,
		Kind: workload.KindRequest,
		// Networks may be named by ID; the host network's name is what
		// makes the workload share the host's namespace.
		NetworkName: func(ref string) string {
			if lookupErr != nil || !validRef(ref) {
				return ref
			}
			n, err := a.engine.network(ctx, ref)
			switch {
			case err == nil:
				if n.Driver == "host" {
					return "host"
				}
				return n.Name
			case errors.Is(err, errNotFound):
				return ref
			default:
				lookupErr = lookupDenial("network", ref, err, "")
				return ref
			}
		},
	})
	if lookupErr != nil {
		return refused(lookupErr)
	}
	// Tasks resolve user names from the image on whichever node runs
	// them, which the guard cannot read: only numeric IDs are judged
	// (non-root refuses names).
	if cs := tt.ContainerSpec; !workload.NeedsFiles(cs.User, cs.Groups) {
		id := workload.ResolveIdentity(cs.User, cs.Groups, nil, nil)
		w.Identity = &id
	}
	return a.concludeWith(w, a.rules(policy.RequestCreate), f)
}
