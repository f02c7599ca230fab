package guard

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// profileExempting is the custom profile withExemptions serves.
const profileExempting = "exempting"

// withExemptions adds a listener whose profile is admission with
// exemptions honoured, defined in a configuration file as an operator
// would.
func withExemptions(t testing.TB) guardOption {
	t.Helper()
	fc, err := ParseConfig("guard.yaml", []byte("profiles:\n  "+profileExempting+":\n    include: [admission]\n    exemptions: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), profileExempting+".sock")
	return func(c *Config) {
		c.Profiles = fc.Profiles
		c.Listeners = append(c.Listeners, Listener{Network: "unix", Address: sock, Profile: profileExempting})
	}
}

// TestConfigExemptions: honouring exemptions is a profile's own setting,
// off in every built-in profile and not inherited through include.
func TestConfigExemptions(t *testing.T) {
	fc, err := ParseConfig("guard.yaml", []byte(`profiles:
  deployer:
    include: [admission]
    exemptions: true
  ci:
    include: [deployer]
  plain:
    include: [admission]
    exemptions: false
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"deployer": true, "ci": false, "plain": false} {
		if got := fc.Profiles[name].HonoursExemptions(); got != want {
			t.Errorf("profile %s honours exemptions: %v, want %v", name, got, want)
		}
	}
	for name, p := range builtinProfiles() {
		if p.HonoursExemptions() {
			t.Errorf("built-in profile %s honours exemptions", name)
		}
	}
	_, err = ParseConfig("guard.yaml", []byte("profiles:\n  deployer:\n    include: [admission]\n    exemptions: please\n"))
	if want := "guard.yaml:4: cannot construct !!str `please` into bool"; err == nil || err.Error() != want {
		t.Errorf("exemptions: please: %v, want %s", err, want)
	}
}

// TestExemptionClaims_NFR_SEC_01 (issue 17, class 1): a request cannot
// exempt itself. The labels hy-home.adr: ADR-0001 and hy-home.exempt:
// privileged used to pass a privileged create because ADR-0001's prose
// mentions the rule; and any request could carry the stack's real
// exemptions (ADR-0001's socket bind). Now admission honours exemptions
// only on a profile that says so, and there only when the ADR's front
// matter exempts the rule for the request's project, service and image.
// The ADRs here are the repository's own (docs/adr).
func TestExemptionClaims_NFR_SEC_01(t *testing.T) {
	repoADRs, err := filepath.Abs(filepath.Join("..", "..", "docs", "adr"))
	if err != nil {
		t.Fatal(err)
	}
	tg := startGuard(t, func(c *Config) { c.ADRDirs = []string{repoADRs} }, withExemptions(t))
	img := dockertest.Build(t)
	c := dockertest.Client(t)

	// The stack's guard image (ADR-0001 names repository hyhome), under a
	// tag of this run only.
	stackImage := "hyhome:hyhome-test-" + dockertest.RunID
	if _, err := c.ImageTag(ctxT(t, testenv.Hang), client.ImageTagOptions{Source: img.NonRoot, Target: stackImage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.ImageRemove(ctxT(t, testenv.Hang), stackImage, client.ImageRemoveOptions{})
	})

	claim := map[string]string{"hy-home.adr": "ADR-0001", "hy-home.exempt": "privileged"}

	// On the engine itself the labels change nothing: the container runs
	// privileged. This is what the guard used to let through.
	id, _ := dockertest.Run(t, dockertest.Spec{Name: "claims-privileged", Image: img.NonRoot, Cmd: []string{"sleep"}, Labels: claim, Host: container.HostConfig{Privileged: true}})
	ins, err := c.ContainerInspect(ctxT(t, testenv.Hang), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ins.Container.HostConfig.Privileged || ins.Container.State == nil || !ins.Container.State.Running {
		t.Fatalf("the engine did not run the labelled container privileged: %+v", ins.Container.HostConfig)
	}

	labelled := func(labels map[string]string) func(*container.CreateRequest) {
		return func(r *container.CreateRequest) {
			for k, v := range labels {
				r.Config.Labels[k] = v
			}
		}
	}
	privileged := func(r *container.CreateRequest) { r.HostConfig.Privileged = true }
	socket := func(r *container.CreateRequest) {
		r.HostConfig.Binds = []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}
	}
	// The labels compose gives the stack's guard, and ADR-0001's claim.
	stackGuard := map[string]string{
		"com.docker.compose.project": "hyhome", "com.docker.compose.service": "guard",
		"hy-home.adr": "ADR-0001", "hy-home.exempt": "docker-socket,host-path",
	}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for a, b := range m {
			out[a] = b
		}
		out[k] = v
		return out
	}
	create := func(image string, edit ...func(*container.CreateRequest)) string {
		return request("POST", "/v1.41/containers/create", mustJSON(t, compliant(image, edit...)))
	}

	rows := []attack{
		{"the issue's request: privileged, labelled ADR-0001 / privileged", ProfileAdmission,
			create(img.NonRoot, privileged, labelled(claim)), 403, []string{"denied by privileged [NFR-SEC-01"}, nil},
		{"the same where exemptions are honoured: ADR-0001 covers the stack's guard only", profileExempting,
			create(img.NonRoot, privileged, labelled(claim)), 403,
			[]string{"privileged [NFR-SEC-01", "adr-exemption", `applies to {project "hyhome", service "guard", image "hyhome"}, not to this request (project "", service "", image "` + img.NonRoot + `")`}, nil},
		{"privileged, dressed as the stack's guard: ADR-0001 exempts docker-socket, not privileged", profileExempting,
			create(stackImage, privileged, labelled(with(stackGuard, "hy-home.exempt", "privileged"))), 403,
			[]string{"privileged [NFR-SEC-01", "adr-exemption", "does not exempt rule privileged (its exempts field: docker-socket, host-path)"}, nil},
		{"the stack's guard: socket bind exempted by ADR-0001", profileExempting,
			create(stackImage, socket, labelled(stackGuard)), 201, nil, removeCreated},
		{"the stack's guard where exemptions are not honoured", ProfileAdmission,
			create(stackImage, socket, labelled(stackGuard)), 403, []string{"denied by docker-socket"}, nil},
		{"look-alike: the stack's labels on another image", profileExempting,
			create(img.NonRoot, socket, labelled(stackGuard)), 403,
			[]string{"docker-socket", "adr-exemption", `not to this request (project "hyhome", service "guard", image "` + img.NonRoot + `")`}, nil},
		{"look-alike: the stack's image and labels in another project", profileExempting,
			create(stackImage, socket, labelled(with(stackGuard, "com.docker.compose.project", "shop"))), 403,
			[]string{"docker-socket", "adr-exemption", `not to this request (project "shop", service "guard"`}, nil},
		{"look-alike: ADR-0002 (node-exporter's, which exempts docker-socket) on the guard", profileExempting,
			create(stackImage, socket, labelled(with(stackGuard, "hy-home.adr", "ADR-0002"))), 403,
			[]string{"docker-socket", "adr-exemption", `applies to {project "hyhome", service "node-exporter", image "prom/node-exporter"}`}, nil},
		{"an ADR that exempts nothing", profileExempting,
			create(stackImage, socket, labelled(with(stackGuard, "hy-home.adr", "ADR-0005"))), 403,
			[]string{"docker-socket", "adr-exemption", "names no workload in applies_to, so it exempts nothing"}, nil},
	}
	for _, a := range rows {
		t.Run(a.name, func(t *testing.T) {
			r := raw(t, tg.sockets[a.profile], a.request)
			if a.cleanup != nil {
				a.cleanup(t, r)
			}
			if r.status != a.status {
				t.Fatalf("status %d, want %d: %s", r.status, a.status, r.message())
			}
			for _, w := range a.want {
				if !strings.Contains(r.message(), w) {
					t.Errorf("message lacks %q:\n%s", w, r.message())
				}
			}
			if a.profile == ProfileAdmission && strings.Contains(r.message(), "adr-exemption") {
				t.Errorf("a profile that does not honour exemptions judged the claim: %s", r.message())
			}
		})
	}
}
