package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
)

// TestAuditRuntimeViolations starts one container per violation (each a
// compliant container with exactly one thing changed) and two compliant
// ones on the real engine, audits them, and asserts the exact rule IDs per
// container. It then audits the same containers again through a client that
// counts HTTP round trips.
func TestAuditRuntimeViolations(t *testing.T) {
	f := newFixture(t)
	bindDir := t.TempDir()

	type tc struct {
		name string
		mut  func(*dockertest.Spec)
		want []string
		// msg, when set, must be the message of the finding of want[0].
		msg string
	}
	cases := []tc{
		{name: "compliant", want: nil},
		{name: "compliant-explicit-user", mut: func(s *dockertest.Spec) {
			s.Image, s.User = f.img.Root, "1000:1000"
		}, want: nil},
		// The daemon appends label=disable to the SecurityOpt of privileged
		// and host pid/ipc containers; the converter drops it so that the
		// container is judged as its request was (one finding per cause).
		{name: "privileged", mut: func(s *dockertest.Spec) { s.Host.Privileged = true },
			want: []string{"privileged"}},
		{name: "pid-host", mut: func(s *dockertest.Spec) { s.Host.PidMode = "host" },
			want: []string{"host-namespaces"}, msg: "shares the host's pid namespace (pid: host)"},
		{name: "network-host", mut: func(s *dockertest.Spec) { s.Host.NetworkMode = "host" },
			want: []string{"host-namespaces"}, msg: "shares the host's network namespace (network_mode: host)"},
		{name: "ipc-host", mut: func(s *dockertest.Spec) { s.Host.IpcMode = "host" },
			want: []string{"host-namespaces"}, msg: "shares the host's ipc namespace (ipc: host)"},
		{name: "no-cap-drop", mut: func(s *dockertest.Spec) { s.Host.CapDrop = nil },
			want: []string{"cap-drop-all"}},
		{name: "root-image-default", mut: func(s *dockertest.Spec) { s.Image = f.img.Root },
			want: []string{"non-root"}, msg: fmt.Sprintf("sets no user and image %s has no USER: runs as root", f.img.Root)},
		{name: "root-explicit", mut: func(s *dockertest.Spec) { s.User = "0" },
			want: []string{"non-root"}, msg: `runs as root (user: "0")`},
		// A scratch image has no /etc/passwd, so a user name cannot start;
		// created (not started) is still a container the audit judges (--all).
		{name: "root-explicit-name", mut: func(s *dockertest.Spec) { s.User, s.NoStart = "root:root", true },
			want: []string{"non-root"}, msg: `runs as root (user: "root:root")`},
		{name: "writable-bind", mut: func(s *dockertest.Spec) { s.Host.Binds = []string{bindDir + ":/data"} },
			want: []string{"bind-mount-readonly"}, msg: fmt.Sprintf("bind mount %s → /data is writable", bindDir)},
		// Read-only, and the program never opens it: the mount alone is the
		// finding, and /var/run is a host tree no container may mount.
		{name: "docker-socket", mut: func(s *dockertest.Spec) {
			s.Host.Binds = []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}
		}, want: []string{"docker-socket", "host-path"}},
		{name: "no-memory-limit", mut: func(s *dockertest.Spec) { s.Host.Memory = 0 },
			want: []string{"memory-limit"}},
		{name: "no-labels", mut: func(s *dockertest.Spec) { s.Labels = map[string]string{scopeKey: f.scope} },
			want: []string{"metrics-endpoint", "tier-label"}},
		{name: "no-new-privileges-off", mut: func(s *dockertest.Spec) { s.Host.SecurityOpt = []string{"no-new-privileges:false"} },
			want: []string{"no-new-privileges"}, msg: `security_opt "no-new-privileges:false" turns no-new-privileges off`},
		{name: "seccomp-unconfined", mut: func(s *dockertest.Spec) {
			s.Host.SecurityOpt = append(s.Host.SecurityOpt, "seccomp=unconfined")
		}, want: []string{"security-profile"}},
		{name: "cap-add", mut: func(s *dockertest.Spec) { s.Host.CapAdd = []string{"NET_ADMIN"} },
			want: []string{"cap-add"}, msg: "adds dangerous capability NET_ADMIN"},
		{name: "secret-in-env", mut: func(s *dockertest.Spec) { s.Env = []string{"DB_PASSWORD=hunter2"} },
			want: []string{"secrets-in-env"}},
		{name: "writable-rootfs-no-pids", mut: func(s *dockertest.Spec) {
			s.Host.ReadonlyRootfs = false
			s.Host.PidsLimit = nil
		}, want: []string{"pids-limit", "read-only-rootfs"}},
	}
	specs := make([]dockertest.Spec, len(cases))
	for i, c := range cases {
		specs[i] = f.spec(c.name, c.mut)
	}
	ids := map[string]string{}
	names := map[string]string{}
	for i, s := range f.startMany(specs) {
		ids[cases[i].name], names[cases[i].name] = s.id, s.name
	}

	res := f.audit(source.Selection{All: true}, &policy.Env{})
	got := rulesBySource(res.Findings)
	for _, c := range cases {
		src := display(names[c.name], ids[c.name])
		if !reflect.DeepEqual(got[src], c.want) {
			t.Errorf("%s: rules %v, want %v", c.name, got[src], c.want)
			for _, fd := range res.Findings {
				if fd.Source == src {
					t.Logf("  %s: %s", fd.Rule, fd.Message)
				}
			}
		}
		if c.msg != "" && len(c.want) > 0 {
			if fd := findingOf(res.Findings, src, c.want[0]); fd == nil || fd.Message != c.msg {
				t.Errorf("%s: %s message %q, want %q", c.name, c.want[0], msgOf(fd), c.msg)
			}
		}
		delete(got, src)
	}
	for src, rules := range got {
		t.Errorf("unexpected findings on %s: %v", src, rules)
	}
	if n := len(res.Snapshot.Containers); n != len(cases) {
		t.Errorf("audited %d containers, want %d", n, len(cases))
	}
	if s := res.Snapshot.Stats; s.Listed != len(cases) || s.Inspected != len(cases) || s.Gone != 0 {
		t.Errorf("stats %+v", s)
	}
	if res.Snapshot.Engine.MemTotal <= 0 {
		t.Errorf("engine MemTotal %d: the memory budget needs it", res.Snapshot.Engine.MemTotal)
	}
	// Every finding names its runtime source and no file.
	for _, fd := range res.Findings {
		if fd.File != "" || fd.Line != 0 || !strings.HasPrefix(fd.Source, "container ") || fd.Kind != "container" {
			t.Errorf("finding %s on %q: file %q line %d kind %s", fd.Rule, fd.Source, fd.File, fd.Line, fd.Kind)
		}
	}

	t.Run("RoundTrips", func(t *testing.T) {
		cc, n, log := countingClient(t, f.host)
		src, err := source.New(source.Config{Engine: cc, Host: f.host})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
		defer cancel()
		if _, err := cc.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			t.Fatal(err)
		}
		n.Store(0)
		log.reset()
		snap, err := src.Read(ctx, source.Selection{All: true, Filters: []string{f.filter()}})
		if err != nil {
			t.Fatal(err)
		}
		paths := log.paths()
		containers := len(snap.Containers)
		inspects := countPrefix(paths, "GET", "/containers/") - countPrefix(paths, "GET", "/containers/json")
		images := countPrefix(paths, "GET", "/images/")
		// Root-user containers need their image (to say whether root is the
		// image's default); two images are in play, each asked once.
		if inspects != containers {
			t.Errorf("%d container inspects for %d containers", inspects, containers)
		}
		if images > 2 {
			t.Errorf("%d image inspects, want at most one per distinct image (2)", images)
		}
		budget := int64(2*containers + snap.Stats.Images)
		t.Logf("round trips: %d for %d containers and %d distinct images (budget %d): %d inspects, %d image inspects, %v",
			n.Load(), containers, snap.Stats.Images, budget, inspects, images, others(paths))
		if n.Load() > budget {
			t.Errorf("%d round trips, budget %d", n.Load(), budget)
		}
	})
}

func msgOf(f *policy.Finding) string {
	if f == nil {
		return "<no finding>"
	}
	return f.Message
}

// others lists the requests that are not container or image inspects.
func others(paths []string) []string {
	var out []string
	for _, p := range paths {
		inspect := strings.Contains(p, "/images/") || strings.Contains(p, "/containers/") && !strings.HasSuffix(p, "/containers/json")
		if !inspect {
			out = append(out, p)
		}
	}
	return out
}

// TestAuditExemptions proves audit honours hy-home.adr/hy-home.exempt only
// for the containers an ADR names: an Accepted ADR exempting the rule for
// the container's compose project, service and image exempts it; a
// Proposed one does not, nor does the same ADR claimed by a container of
// another project or image, or one without compose labels (adr-exemption
// reports why); --strict ignores them all.
func TestAuditExemptions(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(t.TempDir(), "docs", "adr")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	project := "hyhome-test-" + f.scope
	write := func(name, status string) {
		body := "---\nstatus: " + status + "\nexempts: [host-namespaces]\napplies_to:\n  - project: " + project +
			"\n    service: node-exporter\n    image: hyhome-test/testprog:nonroot-" + dockertest.RunID + "\n---\n\n# " + name + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0001-node-exporter-host-pid.md", "Accepted")
	write("0002-proposed.md", "Proposed")

	exempt := func(ref, project string, image string) func(*dockertest.Spec) {
		return func(s *dockertest.Spec) {
			s.Host.PidMode = "host"
			s.Image = image
			if project != "" {
				s.Labels["com.docker.compose.project"] = project
				s.Labels["com.docker.compose.service"] = "node-exporter"
			}
			s.Labels["hy-home.adr"] = ref
			s.Labels["hy-home.exempt"] = "host-namespaces"
		}
	}
	run := func(name string, mut func(*dockertest.Spec)) string {
		id, full := f.run(name, mut)
		return display(full, id)
	}
	acc := run("exempt-accepted", exempt("ADR-0001", project, f.img.NonRoot))
	prop := run("exempt-proposed", exempt("ADR-0002", project, f.img.NonRoot))
	otherProject := run("exempt-other-project", exempt("ADR-0001", "shop", f.img.NonRoot))
	otherImage := run("exempt-other-image", exempt("ADR-0001", project, f.img.Root))
	unlabelled := run("exempt-no-compose-labels", exempt("ADR-0001", "", f.img.NonRoot))

	res := f.audit(source.Selection{}, &policy.Env{ADRs: adr.NewResolver(dir)})
	got := rulesBySource(res.Findings)
	if len(got[acc]) != 0 {
		t.Errorf("accepted exemption: unexempted rules %v, want none", got[acc])
	}
	if fd := findingOf(res.Findings, acc, "host-namespaces"); fd == nil || !fd.Exempted || fd.ADR != "ADR-0001" {
		t.Errorf("accepted exemption: finding %+v, want host-namespaces exempted by ADR-0001", fd)
	}
	for _, c := range []struct{ source, why string }{
		{prop, `whose status is "Proposed", not Accepted`},
		{otherProject, `not to this container (project "shop", service "node-exporter"`},
		{otherImage, `not to this container (project "` + project + `", service "node-exporter", image "` + f.img.Root + `")`},
		{unlabelled, `not to this container (project "", service ""`},
	} {
		if fd := findingOf(res.Findings, c.source, "host-namespaces"); fd == nil || fd.Exempted {
			t.Errorf("%s: host-namespaces %+v, want an unexempted finding", c.source, fd)
		}
		if fd := findingOf(res.Findings, c.source, "adr-exemption"); fd == nil || !strings.Contains(fd.Message, c.why) {
			t.Errorf("%s: adr-exemption message %q, want …%s…", c.source, msgOf(fd), c.why)
		}
	}

	strict := f.audit(source.Selection{}, &policy.Env{ADRs: adr.NewResolver(dir), Strict: true})
	if got := rulesBySource(strict.Findings)[acc]; !reflect.DeepEqual(got, []string{"host-namespaces"}) {
		t.Errorf("--strict: rules %v, want [host-namespaces]", got)
	}
}

// TestAuditStackExemptions: with the repository's own ADRs, a container
// that is the stack's guard (compose project hyhome, service guard, image
// repository hyhome) keeps ADR-0001's docker-socket exemption; the same
// labels on a container of another image or another project exempt
// nothing and are reported. The containers are created, not started, so
// that nothing watching project hyhome on the shared engine sees them run.
func TestAuditStackExemptions(t *testing.T) {
	f := newFixture(t)
	repoADRs, err := filepath.Abs(filepath.Join("..", "..", "docs", "adr"))
	if err != nil {
		t.Fatal(err)
	}
	stackImage := "hyhome:hyhome-test-" + dockertest.RunID
	ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
	defer cancel()
	if _, err := f.c.ImageTag(ctx, client.ImageTagOptions{Source: f.img.NonRoot, Target: stackImage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
		defer cancel()
		_, _ = f.c.ImageRemove(ctx, stackImage, client.ImageRemoveOptions{})
	})
	guardLike := func(project, image string) func(*dockertest.Spec) {
		return func(s *dockertest.Spec) {
			s.NoStart = true
			s.Image = image
			s.Host.Binds = []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}
			s.Labels["com.docker.compose.project"] = project
			s.Labels["com.docker.compose.service"] = "guard"
			s.Labels["hy-home.adr"] = "ADR-0001"
			s.Labels["hy-home.exempt"] = "docker-socket"
		}
	}
	run := func(name string, mut func(*dockertest.Spec)) string {
		id, full := f.run(name, mut)
		return display(full, id)
	}
	stack := run("stack-guard", guardLike("hyhome", stackImage))
	otherImage := run("guard-other-image", guardLike("hyhome", f.img.NonRoot))
	otherProject := run("guard-other-project", guardLike("shop", stackImage))

	res := f.audit(source.Selection{All: true}, &policy.Env{ADRs: adr.NewResolver(repoADRs)})
	if fd := findingOf(res.Findings, stack, "docker-socket"); fd == nil || !fd.Exempted || fd.ADR != "ADR-0001" {
		t.Errorf("the stack's guard: docker-socket %+v, want exempted by ADR-0001", fd)
	}
	if fd := findingOf(res.Findings, stack, "adr-exemption"); fd != nil {
		t.Errorf("the stack's guard: unexpected adr-exemption: %s", fd.Message)
	}
	for _, src := range []string{otherImage, otherProject} {
		if fd := findingOf(res.Findings, src, "docker-socket"); fd == nil || fd.Exempted {
			t.Errorf("%s: docker-socket %+v, want an unexempted finding", src, fd)
		}
		if fd := findingOf(res.Findings, src, "adr-exemption"); fd == nil || !strings.Contains(fd.Message, `ADR-0001 (`+filepath.Join(repoADRs, "0001-guard-holds-the-docker-socket.md")+`) applies to {project "hyhome", service "guard", image "hyhome"}, not to this container`) {
			t.Errorf("%s: adr-exemption %q", src, msgOf(fd))
		}
	}
}

// TestAuditSelection covers --all (stopped containers), --service (compose
// service label) and a namespace joined from a container outside the
// selection.
func TestAuditSelection(t *testing.T) {
	f := newFixture(t)
	_, running := f.run("running", func(s *dockertest.Spec) {
		s.Labels["com.docker.compose.project"] = "shop"
		s.Labels["com.docker.compose.service"] = "web"
	})
	stoppedID, stopped := f.run("stopped", func(s *dockertest.Spec) { s.NoStart = true })

	res := f.audit(source.Selection{}, nil)
	if n := len(res.Snapshot.Containers); n != 1 || res.Snapshot.Containers[0].Name != running {
		t.Errorf("default selection: %d containers, want only %s", n, running)
	}
	all := f.audit(source.Selection{All: true}, nil)
	if n := len(all.Snapshot.Containers); n != 2 {
		t.Errorf("--all: %d containers, want 2", n)
	}
	var st *source.Container
	for _, c := range all.Snapshot.Containers {
		if c.ID == stoppedID {
			st = c
		}
	}
	if st == nil || st.State != "created" || st.Name != stopped {
		t.Errorf("--all: stopped container %+v", st)
	}
	svc := f.audit(source.Selection{All: true, Services: []string{"web"}}, nil)
	if n := len(svc.Snapshot.Containers); n != 1 || svc.Snapshot.Containers[0].Name != running {
		t.Errorf("--service web: %d containers, want only %s", n, running)
	}
	w := svc.Snapshot.Containers[0].Workload
	if w.Project != "shop" || w.Service != "web" {
		t.Errorf("compose labels: project %q service %q", w.Project, w.Service)
	}

	// A container joining the pid namespace of a host-pid container shares
	// the host's, even when the joined one is outside the selection.
	hostPidID, hostPid := f.run("host-pid-outside", func(s *dockertest.Spec) {
		s.Host.PidMode = "host"
		s.Labels[scopeKey] = f.scope + "-other"
	})
	joinID, join := f.run("joins", func(s *dockertest.Spec) { s.Host.PidMode = container.PidMode("container:" + hostPidID) })
	res = f.audit(source.Selection{}, nil)
	src := display(join, joinID)
	fd := findingOf(res.Findings, src, "host-namespaces")
	want := fmt.Sprintf("shares the host's pid namespace, inherited from container %s (pid: container:%s)", hostPid, hostPidID)
	if fd == nil || fd.Message != want {
		t.Errorf("joined pid namespace: %q, want %q", msgOf(fd), want)
	}
}

// goneEngine is the real engine client with a real race forced into it: once
// the list has been answered, it removes one listed container before any
// inspect, exactly what a `docker rm` between list and inspect does.
type goneEngine struct {
	source.Engine
	remove func()
}

func (g *goneEngine) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	res, err := g.Engine.ContainerList(ctx, o)
	if err == nil {
		g.remove()
	}
	return res, err
}

// TestAuditContainerGone: a container removed between list and inspect is a
// notice, not a finding, not an error.
func TestAuditContainerGone(t *testing.T) {
	f := newFixture(t)
	_, keep := f.run("keep", nil)
	goneID, gone := f.run("gone", func(s *dockertest.Spec) { s.Host.Privileged = true })
	src := f.source(&goneEngine{Engine: f.c, remove: func() { dockertest.RemoveContainer(f.c, goneID) }})
	ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
	defer cancel()
	res, err := Run(ctx, src, source.Selection{Filters: []string{f.filter()}}, nil)
	if err != nil {
		t.Fatalf("audit with a vanished container: %v", err)
	}
	if n := len(res.Snapshot.Containers); n != 1 || res.Snapshot.Containers[0].Name != keep {
		t.Errorf("audited %d containers, want only %s", n, keep)
	}
	want := source.Notice{Kind: source.NoticeGone, Subject: display(gone, goneID), Message: "removed between list and inspect; not audited"}
	if !containsNotice(res.Snapshot.Notices, want) {
		t.Errorf("notices %v, want %v", res.Snapshot.Notices, want)
	}
	for _, fd := range res.Findings {
		if fd.Source == display(gone, goneID) {
			t.Errorf("finding on the vanished container: %s", fd.Rule)
		}
	}
	if res.Snapshot.Stats.Gone != 1 {
		t.Errorf("stats %+v", res.Snapshot.Stats)
	}
}

func containsNotice(ns []source.Notice, want source.Notice) bool {
	for _, n := range ns {
		if n == want {
			return true
		}
	}
	return false
}

// TestAuditMemoryBudgetUsesEngineMemory: infra limits are summed against the
// engine's Info.MemTotal (NFR-RES-01's 20%).
func TestAuditMemoryBudgetUsesEngineMemory(t *testing.T) {
	f := newFixture(t)
	info, err := f.c.Info(context.Background(), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	total := info.Info.MemTotal
	// A quarter of the host (over the 20% budget), as a limit: nothing is
	// allocated, the process sleeps.
	limit := total / 4
	id, name := f.run("infra-big", func(s *dockertest.Spec) {
		s.Labels["hy-home.tier"] = "infra"
		s.Host.Memory = limit
	})
	res := f.audit(source.Selection{}, nil)
	fd := findingOf(res.Findings, display(name, id), "memory-budget")
	if fd == nil {
		t.Fatalf("no memory-budget finding; findings: %v", rulesBySource(res.Findings))
	}
	if !strings.Contains(fd.Message, "25.0% of host memory") {
		t.Errorf("memory-budget message %q", fd.Message)
	}
}

// TestSourceEngineUnreachable: no engine at the address is one error.
func TestSourceEngineUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	c, err := client.New(client.WithHost("unix://" + sock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src, err := source.New(source.Config{Engine: c, Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Read(context.Background(), source.Selection{})
	if err == nil || !strings.Contains(err.Error(), "reading engine info from unix://"+sock) {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("multi-line error %q", err)
	}
}
