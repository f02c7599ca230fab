package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// TestExemptionMatchesTheWorkload_NFR_SEC_01: an exemption holds only for
// the workloads its ADR names. Compose services (whose author wrote the ADR
// too) match by project and service, and by image where the ADR names one;
// containers, Swarm services and API requests (whose creator wrote the
// labels) must match the ADR's image as well, so that copying the stack's
// labels onto another workload exempts nothing.
func TestExemptionMatchesTheWorkload_NFR_SEC_01(t *testing.T) {
	dir := t.TempDir()
	writeADR := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeADR("0001-guard.md", "---\nstatus: Accepted\nexempts: [privileged]\napplies_to:\n  - {project: hyhome, service: guard, image: hyhome}\n---\n# ADR-0001: guard\n")
	writeADR("0002-no-image.md", "---\nstatus: Accepted\nexempts: [privileged]\napplies_to:\n  - {project: hyhome, service: guard}\n---\n# ADR-0002: no image\n")
	env := func(e policy.Env) *policy.Env {
		e.ADRs = adr.NewResolver(dir)
		e.Only = map[string]bool{"privileged": true, policy.RuleADRExemption: true}
		return &e
	}
	w := func(kind workload.Kind, project, service, image, ref string) *workload.Workload {
		return &workload.Workload{
			Kind: kind, Name: service, Project: project, Service: service, Image: image, Privileged: true,
			Display: string(kind) + " " + service,
			Labels:  map[string]string{workload.LabelADR: ref, workload.LabelExempt: "privileged"},
		}
	}
	for _, c := range []struct {
		name     string
		w        *workload.Workload
		env      policy.Env
		exempted bool
		problem  string // substring of the adr-exemption finding, "" for none
	}{
		{"container of the stack", w(workload.KindContainer, "hyhome", "guard", "hyhome:local", "ADR-0001"), policy.Env{}, true, ""},
		{"Swarm service of the stack", w(workload.KindSwarm, "hyhome", "guard", "hyhome:local@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "ADR-0001"), policy.Env{}, true, ""},
		{"request for the stack", w(workload.KindRequest, "hyhome", "guard", "hyhome", "ADR-0001"), policy.Env{}, true, ""},
		{"compose service of the stack", w(workload.KindCompose, "hyhome", "guard", "hyhome:local", "ADR-0001"), policy.Env{}, true, ""},
		{"container with another image", w(workload.KindContainer, "hyhome", "guard", "busybox:1.37", "ADR-0001"), policy.Env{}, false,
			`applies to {project "hyhome", service "guard", image "hyhome"}, not to this container (project "hyhome", service "guard", image "busybox:1.37")`},
		{"container of another project", w(workload.KindContainer, "shop", "guard", "hyhome:local", "ADR-0001"), policy.Env{}, false, `not to this container (project "shop"`},
		{"request of another service", w(workload.KindRequest, "hyhome", "web", "hyhome:local", "ADR-0001"), policy.Env{}, false, `not to this request (project "hyhome", service "web"`},
		{"compose service with another image", w(workload.KindCompose, "hyhome", "guard", "busybox:1.37", "ADR-0001"), policy.Env{}, false, "not to this service"},
		{"compose service, ADR without image", w(workload.KindCompose, "hyhome", "guard", "busybox:1.37", "ADR-0002"), policy.Env{}, true, ""},
		{"container, ADR without image", w(workload.KindContainer, "hyhome", "guard", "hyhome:local", "ADR-0002"), policy.Env{}, false,
			"names no image in applies_to; whoever creates a container writes its labels"},
		{"strict", w(workload.KindContainer, "hyhome", "guard", "hyhome:local", "ADR-0001"), policy.Env{Strict: true}, false, ""},
		{"strict still reports a claim that does not hold", w(workload.KindContainer, "shop", "guard", "hyhome:local", "ADR-0001"), policy.Env{Strict: true}, false, "not to this container"},
		{"exemptions ignored", w(workload.KindRequest, "hyhome", "guard", "hyhome", "ADR-0001"), policy.Env{NoExemptions: true}, false, ""},
		{"exemptions ignored, bad claims too", w(workload.KindRequest, "shop", "guard", "hyhome", "ADR-0009"), policy.Env{NoExemptions: true}, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := policy.Evaluate(&workload.Project{Workloads: []*workload.Workload{c.w}}, env(c.env))
			var priv, problem *policy.Finding
			for i := range fs {
				switch fs[i].Rule {
				case "privileged":
					priv = &fs[i]
				case policy.RuleADRExemption:
					problem = &fs[i]
				}
			}
			if priv == nil {
				t.Fatal("no privileged finding")
			}
			if priv.Exempted != c.exempted || (c.exempted && priv.ADR == "") {
				t.Errorf("privileged exempted=%v adr=%q, want exempted=%v", priv.Exempted, priv.ADR, c.exempted)
			}
			switch {
			case c.problem == "" && problem != nil:
				t.Errorf("unexpected adr-exemption finding: %s", problem.Message)
			case c.problem != "" && problem == nil:
				t.Errorf("no adr-exemption finding, want %q", c.problem)
			case c.problem != "" && !strings.Contains(problem.Message, c.problem):
				t.Errorf("adr-exemption message\n got %s\nwant …%s…", problem.Message, c.problem)
			}
			if c.exempted == policy.Failing(fs, policy.Error) {
				t.Errorf("Failing = %v with exempted=%v", !c.exempted, c.exempted)
			}
		})
	}
}
