package acceptance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/testenv"
	"github.com/hy-home/hyhome/internal/workload"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// scopeKey labels every container a test starts, so that the check judges
// exactly its own containers on an engine other work shares.
const scopeKey = "hy-home.test.acceptance"

// fixture is one test's view of the real engine.
type fixture struct {
	t     *testing.T
	src   *source.Source
	img   dockertest.Images
	scope string // value of scopeKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ep, err := docker.Resolve("")
	if err != nil {
		t.Fatalf("resolving engine: %v", err)
	}
	src, err := source.New(source.Config{Engine: dockertest.Client(t), Host: ep.Host})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &fixture{t: t, src: src, img: dockertest.Build(t), scope: hex.EncodeToString(b)}
}

// spec is a labelled container (tier app, no-new-privileges:true) changed by mut.
func (f *fixture) spec(name string, mut func(*dockertest.Spec)) dockertest.Spec {
	s := dockertest.Spec{
		Name:   name,
		Image:  f.img.NonRoot,
		Cmd:    []string{"sleep"},
		Labels: map[string]string{scopeKey: f.scope, workload.LabelTier: "app"},
		Host:   container.HostConfig{SecurityOpt: []string{"no-new-privileges:true"}, CapDrop: []string{"ALL"}},
	}
	if mut != nil {
		mut(&s)
	}
	return s
}

// acRead reads what `hyhome audit --check AC-SPEC-01` reads: this fixture's
// labelled containers.
func (f *fixture) acRead(filters ...string) *source.Snapshot {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
	defer cancel()
	filters = append(filters, "label="+scopeKey+"="+f.scope, "label="+workload.LabelTier)
	snap, err := f.src.Read(ctx, source.Selection{ContainersOnly: true, Filters: filters})
	if err != nil {
		f.t.Fatal(err)
	}
	return snap
}

// TestACSpec01 runs the spec's acceptance check on real containers: a pass
// set, a fail set covering every way SecurityOpt can miss the mark, and the
// empty set. Each container's view must equal what the docker CLI prints for
// the spec's own command.
func TestACSpec01(t *testing.T) {
	f := newFixture(t)
	sec := func(opts ...string) func(*dockertest.Spec) {
		return func(s *dockertest.Spec) { s.Host.SecurityOpt = opts }
	}

	t.Run("Empty", func(t *testing.T) {
		r := CheckACSpec01(f.acRead())
		if r.Pass || len(r.Containers) != 0 {
			t.Fatalf("no labelled container: pass %v with %d containers, want a failure", r.Pass, len(r.Containers))
		}
		if !strings.Contains(r.Summary, "nothing was verified") {
			t.Errorf("summary %q", r.Summary)
		}
	})

	cases := []struct {
		name   string
		opts   []string
		view   string
		reason string
	}{
		{"missing", nil, "[]", "no-new-privileges:true missing"},
		{"false", []string{"no-new-privileges:false"}, "[no-new-privileges:false]", `no-new-privileges:true missing; "no-new-privileges:false" turns it off`},
		{"bare", []string{"no-new-privileges"}, "[no-new-privileges]", `no-new-privileges:true missing: "no-new-privileges" is in force but is not the form the check asserts; write no-new-privileges:true`},
		{"equals", []string{"no-new-privileges=true"}, "[no-new-privileges=true]", `no-new-privileges:true missing: "no-new-privileges=true" is in force but is not the form the check asserts; write no-new-privileges:true`},
		{"overridden", []string{"no-new-privileges:true", "no-new-privileges:false"}, "[no-new-privileges:true no-new-privileges:false]", `includes no-new-privileges:true, but a later entry "no-new-privileges:false" turns it off`},
	}
	// The Pass step selects the passing containers (and an unlabelled one,
	// which is not the templates' and is not judged) by an extra label; the
	// Fail step judges them all.
	const passKey = "hy-home.test.ac-pass"
	pass := func(mut func(*dockertest.Spec)) func(*dockertest.Spec) {
		return func(s *dockertest.Spec) {
			if mut != nil {
				mut(s)
			}
			s.Labels[passKey] = "1"
		}
	}
	specs := []dockertest.Spec{
		f.spec("ok-1", pass(nil)),
		f.spec("ok-2", pass(sec("seccomp=unconfined", "no-new-privileges:true"))),
		f.spec("unlabelled", func(s *dockertest.Spec) {
			s.Labels = map[string]string{scopeKey: f.scope, passKey: "1"}
			s.Host.SecurityOpt = nil
		}),
	}
	for _, c := range cases {
		specs = append(specs, f.spec("ac-"+c.name, sec(c.opts...)))
	}
	all := dockertest.RunMany(t, specs)
	ok1, ok2 := all[0].Name, all[1].Name
	names := map[string]string{}
	for i, c := range cases {
		names[c.name] = all[3+i].Name
	}

	t.Run("Pass", func(t *testing.T) {
		r := CheckACSpec01(f.acRead("label=" + passKey))
		if !r.Pass || len(r.Containers) != 2 {
			t.Fatalf("pass %v, %d containers (%s), want pass with 2", r.Pass, len(r.Containers), r.Summary)
		}
		views := map[string]string{}
		for _, c := range r.Containers {
			views[c.Name] = c.View
		}
		if views[ok1] != "[no-new-privileges:true]" || views[ok2] != "[seccomp=unconfined no-new-privileges:true]" {
			t.Errorf("views %v", views)
		}
		compareWithDockerCLI(t, r)
	})

	t.Run("Fail", func(t *testing.T) {
		r := CheckACSpec01(f.acRead())
		if r.Pass {
			t.Fatal("check passed with failing containers")
		}
		if want := "5 of 7 labelled container(s) lack no-new-privileges:true"; r.Summary != want {
			t.Errorf("summary %q, want %q", r.Summary, want)
		}
		byName := map[string]ACContainer{}
		for _, c := range r.Containers {
			byName[c.Name] = c
		}
		for _, c := range cases {
			got, ok := byName[names[c.name]]
			switch {
			case !ok:
				t.Errorf("%s: not judged", c.name)
			case got.Pass || got.View != c.view || got.Reason != c.reason || got.Tier != "app":
				t.Errorf("%s: pass %v view %q tier %q reason %q; want view %q reason %q", c.name, got.Pass, got.View, got.Tier, got.Reason, c.view, c.reason)
			}
		}
		for _, ok := range []string{ok1, ok2} {
			if !byName[ok].Pass {
				t.Errorf("%s failed: %s", ok, byName[ok].Reason)
			}
		}
		compareWithDockerCLI(t, r)

		out := render(t, "text", r)
		for _, want := range []string{
			"AC-SPEC-01  FAIL   Security Audit: 5 of 7 labelled container(s) lack no-new-privileges:true\n",
			"    docker inspect --format '{{.HostConfig.SecurityOpt}}' <container>\n",
			"FAIL  " + names["missing"] + " (",
			"PASS  " + ok1 + " (",
			"[no-new-privileges:true no-new-privileges:false]",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("text output lacks %q:\n%s", want, out)
			}
		}
		t.Logf("text output:\n%s", out)
	})
}

// compareWithDockerCLI runs the spec's command with the docker CLI for every
// judged container and requires the same bytes as the check's view.
func compareWithDockerCLI(t *testing.T, r *ACSpec01Result) {
	t.Helper()
	docker, err := exec.LookPath("docker")
	if err != nil {
		testenv.Missing(t, "the docker CLI is not installed (Debian package docker.io): the check's views cannot be compared with what it prints")
	}
	for _, c := range r.Containers {
		out, err := exec.Command(docker, "inspect", "--format", "{{.HostConfig.SecurityOpt}}", c.ID).Output()
		if err != nil {
			t.Fatalf("docker inspect %s: %v", c.Name, err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != c.View {
			t.Errorf("%s: docker CLI prints %q, check shows %q", c.Name, got, c.View)
		}
	}
}

func TestSecurityOptView(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, "[]"},
		{[]string{}, "[]"},
		{[]string{"no-new-privileges:true"}, "[no-new-privileges:true]"},
		{[]string{"a b", "c"}, "[a b c]"},
	} {
		if got := SecurityOptView(tc.in); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// render writes the check as hyhome audit --check does.
func render(t *testing.T, format string, r *ACSpec01Result) string {
	t.Helper()
	var b bytes.Buffer
	rep := &report.CheckReport{Tool: "hyhome", Command: "audit", Spec: "SPEC-SYS-01", Checks: []*report.CheckResult{r.Result()}}
	if err := report.WriteChecks(&b, format, rep); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestACSpec01Report pins the lines operators read and the result a report
// holds, on a snapshot built by hand.
func TestACSpec01Report(t *testing.T) {
	snap := &source.Snapshot{Containers: []*source.Container{
		{ID: "0123456789abcdef", Name: "web", Labels: map[string]string{workload.LabelTier: "app"}, SecurityOpt: []string{"no-new-privileges:true"}},
		{ID: "fedcba9876543210", Name: "db", Labels: map[string]string{workload.LabelTier: "data"}},
		{ID: "aaaaaaaaaaaaaaaa", Name: "adhoc"},
	}}
	r := CheckACSpec01(snap)
	res := r.Result()
	if res.ID != ACSpec01 || res.Status != report.CheckFail || res.Detail != r || !strings.HasPrefix(res.Requirement, "AC-SPEC-01 (SPEC-SYS-01 §6 Security Audit): ") {
		t.Errorf("result %+v", res)
	}
	want := `AC-SPEC-01  FAIL   Security Audit: 1 of 2 labelled container(s) lack no-new-privileges:true
    docker inspect --format '{{.HostConfig.SecurityOpt}}' <container>
    PASS  web (0123456789ab)  tier=app   [no-new-privileges:true]
    FAIL  db (fedcba987654)   tier=data  []                        no-new-privileges:true missing
`
	if out := render(t, "text", r); !strings.Contains(out, want) {
		t.Errorf("text:\n%s\nwant:\n%s", out, want)
	}
	if out := render(t, "junit", r); !strings.Contains(out, `<failure message="1 of 2 labelled container(s) lack no-new-privileges:true">`) {
		t.Errorf("junit:\n%s", out)
	}
	if r := CheckACSpec01(&source.Snapshot{Containers: snap.Containers[:1]}); !r.Pass || r.Result().Status != report.CheckPass {
		t.Errorf("one compliant container: %+v", r)
	}
}

// TestACSpec01SwarmTaskReason: a Swarm task without the option fails with
// the reason (docker stack deploy drops security_opt), never silently and
// never as a pass; a plain container keeps the plain reason. The e2e run
// (deploy/e2e) shows the same verdict on a real stack deployed to Swarm.
func TestACSpec01SwarmTaskReason(t *testing.T) {
	snap := &source.Snapshot{Containers: []*source.Container{
		{ID: "1111111111111111", Name: "hyhome_guard.1.x", Labels: map[string]string{workload.LabelTier: "infra", source.LabelSwarmTaskID: "t1"}},
		{ID: "2222222222222222", Name: "plain", Labels: map[string]string{workload.LabelTier: "infra"}},
		{ID: "3333333333333333", Name: "hyhome_ship.1.y", Labels: map[string]string{workload.LabelTier: "infra", source.LabelSwarmTaskID: "t2"}, SecurityOpt: []string{"no-new-privileges:true"}},
	}}
	r := CheckACSpec01(snap)
	if r.Pass {
		t.Fatal("passed with a Swarm task lacking no-new-privileges:true")
	}
	got := map[string]ACContainer{}
	for _, c := range r.Containers {
		got[c.Name] = c
	}
	if c := got["hyhome_guard.1.x"]; c.Pass || c.Reason != "no-new-privileges:true missing: "+SwarmTaskNoNewPrivileges {
		t.Errorf("swarm task: pass %v reason %q", c.Pass, c.Reason)
	}
	if c := got["plain"]; c.Reason != "no-new-privileges:true missing" {
		t.Errorf("plain container: reason %q", c.Reason)
	}
	if c := got["hyhome_ship.1.y"]; !c.Pass {
		t.Errorf("a Swarm task that has the option failed: %s", c.Reason)
	}
}
