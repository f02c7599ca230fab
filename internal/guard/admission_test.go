package guard

import (
	"slices"
	"sort"
	"testing"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// The rule sets the judges use, as docs/guard.md lists them: the guard selects
// them by what each rule declares (policy.Rule.Requests), and these are the
// sets it judged with when it named them itself.
func TestAdmissionRuleSets(t *testing.T) {
	a := newAdmission(policy.Default, adr.NewResolver(t.TempDir()), false, policy.Error, nil)
	ids := func(m map[string]bool) []string {
		var out []string
		for id, on := range m {
			if on {
				out = append(out, id)
			}
		}
		sort.Strings(out)
		return out
	}
	wantIsolation := []string{"adr-exemption", "bind-mount-readonly", "cap-add", "docker-socket", "host-devices", "host-namespaces", "host-path", "log-driver", "namespace-join", "non-root", "privileged", "security-profile", "volume-type"}
	if got := ids(a.rules(policy.RequestExec)); !slices.Equal(got, wantIsolation) {
		t.Errorf("exec (isolation) rules %v, want %v", got, wantIsolation)
	}
	if got := ids(a.rules(policy.RequestPlugin)); slices.Contains(got, "non-root") || len(got) != len(wantIsolation)-1 {
		t.Errorf("plugin rules %v", got)
	}
	create := a.rules(policy.RequestCreate)
	for _, project := range []string{"memory-budget", "traefik-tls", "baseline-anchor"} {
		if create[project] {
			t.Errorf("create judges %s, a project (or compose-only) rule", project)
		}
	}
	// Every per-workload rule that applies to requests judges a create.
	for _, r := range policy.Default.Rules() {
		if want := r.Check != nil && r.AppliesTo(workload.KindRequest); create[r.ID] != want {
			t.Errorf("create judges %s: %v, want %v", r.ID, create[r.ID], want)
		}
	}
	if got := ids(a.rules(policy.RequestUpdate)); !slices.Equal(got, []string{"memory-limit", "pids-limit"}) {
		t.Errorf("update rules %v", got)
	}
	if got := ids(a.rules(policy.RequestBuild)); !slices.Equal(got, []string{"host-namespaces"}) {
		t.Errorf("build rules %v", got)
	}
	if got := ids(a.rules(policy.RequestVolume)); !slices.Equal(got, []string{"adr-exemption", "bind-mount-readonly", "docker-socket", "host-path", "volume-type"}) {
		t.Errorf("volume rules %v", got)
	}
	// A set naming no rule of the registry judges nothing (policy.Env
	// would read an empty Only as every rule).
	all, failing := a.evaluate(nil, map[string]bool{"no-such-rule": false}, facts{})
	if all != nil || failing != nil {
		t.Error("an empty rule set evaluated rules")
	}
}
