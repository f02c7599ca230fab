package guard

import (
	"slices"
	"sort"
	"testing"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/policy"
)

// The rule sets the judges use, as README.md lists them.
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
	if got := ids(a.isolation); !slices.Equal(got, wantIsolation) {
		t.Errorf("isolation rules %v, want %v", got, wantIsolation)
	}
	if got := ids(a.plugin); slices.Contains(got, "non-root") || len(got) != len(wantIsolation)-1 {
		t.Errorf("plugin rules %v", got)
	}
	for _, project := range []string{"memory-budget", "traefik-tls", "baseline-anchor"} {
		if a.create[project] {
			t.Errorf("create judges %s, a project (or compose-only) rule", project)
		}
	}
	if !a.create["privileged"] || !a.create["tier-label"] || !a.create["memory-limit"] {
		t.Errorf("create rules %v lack per-workload rules", ids(a.create))
	}
	if got := ids(a.update); !slices.Equal(got, []string{"memory-limit", "pids-limit"}) {
		t.Errorf("update rules %v", got)
	}
	// A set naming no rule of the registry judges nothing (policy.Env
	// would read an empty Only as every rule).
	all, failing := a.evaluate(nil, map[string]bool{"no-such-rule": false}, facts{})
	if all != nil || failing != nil {
		t.Error("an empty rule set evaluated rules")
	}
}
