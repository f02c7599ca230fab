package policy_test

import (
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/traefik"
	"github.com/hy-home/hyhome/internal/workload"
)

// TestTraefikTLSUnknownWithoutGateway: with no gateway in the project, a
// router without tls is a warning that its TLS status is unknown; with the
// gateway present and its entry point plain, the same router is an error.
func TestTraefikTLSUnknownWithoutGateway(t *testing.T) {
	app := func() *workload.Workload {
		// As a source builds it: the routers parsed from the labels.
		w := &workload.Workload{Kind: workload.KindCompose, Name: "app", Labels: map[string]string{
			"traefik.http.routers.app.rule":        "Host(`app.example.com`)",
			"traefik.http.routers.app.entrypoints": "web",
		}, LabelPos: map[string]workload.Position{
			"traefik.http.routers.app.rule":        {File: "compose.yaml", Line: 7},
			"traefik.http.routers.app.entrypoints": {File: "compose.yaml", Line: 6},
		}}
		w.Routers = traefik.RoutersFromLabels(w)
		return w
	}
	only := &policy.Env{Only: map[string]bool{"traefik-tls": true}}
	fs := policy.Evaluate(&workload.Project{Workloads: []*workload.Workload{app()}}, only)
	if len(fs) != 1 || fs[0].Severity != policy.Warning || !strings.Contains(fs[0].Message, "TLS status unknown") || fs[0].Line != 7 {
		t.Fatalf("no gateway: %+v, want one warning, TLS status unknown, at the rule label (line 7)", fs)
	}
	gw := &workload.Workload{Kind: workload.KindCompose, Name: "traefik", Gateway: &workload.Gateway{
		EntryPoints: map[string]workload.EntryPoint{"web": {Address: ":80"}},
		TLSOptions:  map[string]workload.TLSOption{"default": {MinVersion: "VersionTLS12"}},
	}}
	fs = policy.Evaluate(&workload.Project{Workloads: []*workload.Workload{gw, app()}}, only)
	if len(fs) != 1 || fs[0].Severity != policy.Error || !strings.Contains(fs[0].Message, "serves plain text") {
		t.Fatalf("gateway with a plain entry point: %+v, want one error", fs)
	}
}
