package guard

import (
	"context"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// buildRequest judges POST /build by the network its build containers get
// (networkmode: host runs every RUN step in the host's network namespace).
// Every value of every spelling of the parameter is judged.
func (a *admission) buildRequest(ctx context.Context, t *target) verdict {
	var all []verdict
	for _, mode := range queryValues(t.query, "networkmode") {
		w := &workload.Workload{Kind: workload.KindRequest, Name: "build", Display: "build request", Labels: map[string]string{}}
		hc := &container.HostConfig{NetworkMode: container.NetworkMode(mode)}
		w.Namespaces.Network = workload.Namespace{Mode: mode}
		if mode == "host" {
			w.Namespaces.Network.Effective = "host"
		}
		res := newRefs(ctx, a.engine)
		if strings.HasPrefix(mode, "container:") {
			engine.ResolveJoins(w, res.workload)
			if res.err != nil {
				return refused(res.err)
			}
		} else if d := a.hostNetworkByReference(ctx, w, hc, nil); d != nil {
			return refused(d)
		}
		v := a.conclude(w, a.rules(policy.RequestBuild))
		if v.deny != nil {
			return v
		}
		all = append(all, v)
	}
	var out verdict
	for _, v := range all {
		out.findings = append(out.findings, v.findings...)
	}
	return out
}

func firstOf(q map[string][]string, key string) string {
	if v := q[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
