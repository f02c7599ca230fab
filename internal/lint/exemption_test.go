package lint

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
)

// stackExemptions are the reference stack's ADR-backed exemptions
// (deploy/compose.yaml labels, docs/adr front matter).
var stackExemptions = map[string]string{
	"guard/docker-socket":           "ADR-0001",
	"node-exporter/host-namespaces": "ADR-0002",
	"node-exporter/docker-socket":   "ADR-0002",
	"cadvisor/non-root":             "ADR-0003",
	"tempo/healthcheck":             "ADR-0004",
	"pyroscope/healthcheck":         "ADR-0004",
}

// TestStackExemptions_NFR_SEC_01: lint honours the stack's exemptions when
// the stack is linted as the project it is deployed as (hyhome), with the
// repository's ADRs found from the compose file; the same file linted as
// another project, or with another image for the guard, is a look-alike
// the ADRs do not name, and each of its claims is an adr-exemption error.
func TestStackExemptions_NFR_SEC_01(t *testing.T) {
	lint := func(project string, environ ...string) map[string]policy.Finding {
		t.Helper()
		res, err := Run(context.Background(), Options{
			Paths: []string{"../../deploy/compose.yaml"}, ProjectName: project, Environ: environ,
			Policy: policy.Env{Registry: policy.Default, HostMemory: 8 << 30},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Errors) > 0 {
			t.Fatalf("loading the stack: %v", res.Errors)
		}
		out := map[string]policy.Finding{}
		for _, f := range res.Findings {
			key := f.Service + "/" + f.Rule
			if _, dup := out[key]; !dup || !f.Exempted {
				out[key] = f
			}
		}
		return out
	}

	got := lint("hyhome")
	for key, adr := range stackExemptions {
		if f, ok := got[key]; !ok || !f.Exempted || f.ADR != adr {
			t.Errorf("project hyhome: %s = %+v, want exempted by %s", key, f, adr)
		}
	}
	for key, f := range got {
		if f.Rule == policy.RuleADRExemption {
			t.Errorf("project hyhome: %s: %s", key, f.Message)
		}
	}

	shop := lint("shop")
	for key := range stackExemptions {
		if f := shop[key]; f.Exempted {
			t.Errorf("project shop: %s exempted by %s", key, f.ADR)
		}
		service, _, _ := strings.Cut(key, "/")
		f, ok := shop[service+"/"+policy.RuleADRExemption]
		if !ok || !strings.Contains(f.Message, fmt.Sprintf(`not to this service (project "shop", service %q`, service)) {
			t.Errorf("project shop: %s: adr-exemption %q", service, f.Message)
		}
	}

	other := lint("hyhome", "HYHOME_IMAGE=example/lookalike:1.0")
	if f := other["guard/docker-socket"]; f.Exempted {
		t.Errorf("guard on another image: docker-socket exempted by %s", f.ADR)
	}
	if f := other["guard/"+policy.RuleADRExemption]; !strings.Contains(f.Message, `not to this service (project "hyhome", service "guard", image "example/lookalike:1.0")`) {
		t.Errorf("guard on another image: adr-exemption %q", f.Message)
	}
	if f := other["cadvisor/non-root"]; !f.Exempted {
		t.Error("cadvisor lost its exemption when only the guard's image changed")
	}
}
