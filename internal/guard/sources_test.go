package guard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/audit"
	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/lint"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/policytest"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/workload"
)

// A cross-source fixture is a compose fixture of a rule
// (internal/policy/testdata/<rule>/<name>.yaml) with the same workloads as
// the engine shows and is asked for them:
//
//   - <name>.inspect.json is what `docker inspect` prints of the project's
//     containers once created (and of the volumes and images they use, when
//     their configuration matters); it is the engine the other two sources
//     read. Containers may leave out Id and Image (an image not listed has
//     no USER and no HEALTHCHECK).
//   - <name>.create.json holds the create requests a client sends for them:
//     [{"name": "<?name=>", "body": {POST /containers/create body}}, ...].
//
// Both name each workload's compose service by the com.docker.compose.service
// label, as compose does, and may write ${FIXTURE} for the fixture's
// directory (bind sources are absolute on the engine's host).
const (
	inspectSuffix = ".inspect.json"
	createSuffix  = ".create.json"
	fixtureDirVar = "${FIXTURE}"
)

// source is one way hyhome builds workloads, and the rules it can judge
// there by their declarations.
type judgeSource struct {
	name string
	sees func(*policy.Rule) bool
}

var (
	lintSource = judgeSource{"lint", func(r *policy.Rule) bool {
		return r.AppliesTo(workload.KindCompose) && r.Unseen[policy.SourceCompose] == ""
	}}
	auditSource = judgeSource{"audit", func(r *policy.Rule) bool {
		return r.AppliesTo(workload.KindContainer) && r.Unseen[policy.SourceContainer] == ""
	}}
	guardSource = judgeSource{"guard", func(r *policy.Rule) bool {
		return r.Judges(policy.RequestCreate) && r.Unseen[policy.SourceContainer] == ""
	}}
)

// TestRuleFixturesAcrossSources runs every rule's cross-source fixtures
// through lint (the compose file), audit (its engine reader, on the inspect
// output) and the guard (its create judge, on the requests) and requires
// every workload to get the same rule IDs from each, but for the rules a
// source cannot see by their own declaration (Rule.Kinds, Rule.Requests).
// A declaration is checked too: the rule's fixture must show it in lint,
// and judged through the source regardless of the declaration it must come
// out differently than in lint, or the declaration is not needed.
func TestRuleFixturesAcrossSources(t *testing.T) {
	root := policytest.Dir()
	coverage := map[string][]string{}
	for _, rule := range policy.Default.Rules() {
		t.Run(rule.ID, func(t *testing.T) {
			dir := filepath.Join(root, rule.ID)
			inspects, _ := filepath.Glob(filepath.Join(dir, "*"+inspectSuffix))
			if len(inspects) == 0 {
				t.Fatalf("rule %s has no cross-source fixture: add <fixture>%s and <fixture>%s beside a compose fixture in %s", rule.ID, inspectSuffix, createSuffix, dir)
			}
			var exercised bool
			// declared: the sources the rule's fixtures show it cannot
			// see; needed: those where judging it regardless came out
			// differently than in lint, in some fixture.
			declared, needed := map[string]bool{}, map[string]bool{}
			for _, inspect := range inspects {
				base := strings.TrimSuffix(inspect, inspectSuffix)
				t.Run(filepath.Base(base), func(t *testing.T) {
					fx := loadCrossFixture(t, base)
					fails := strings.HasPrefix(filepath.Base(base), "fail")
					if fx.lint.has(rule.ID) {
						exercised = true
						if !fails {
							t.Errorf("pass fixture: lint finds %s", rule.ID)
						}
					}
					for _, s := range []struct {
						src judgeSource
						got results
					}{{auditSource, fx.audit}, {guardSource, fx.guard}} {
						compare(t, fx, s.src, s.got)
						if !s.src.sees(rule) && fx.lint.has(rule.ID) {
							declared[s.src.name] = true
							if fx.differsRegardless(t, rule, s.src) {
								needed[s.src.name] = true
							}
						}
					}
				})
			}
			if !exercised {
				t.Errorf("no cross-source fixture of %s shows it: lint finds it in none of %v", rule.ID, inspects)
			}
			for src := range declared {
				if !needed[src] {
					t.Errorf("%s is declared unseen by %s, but judged there regardless it finds what lint finds in every fixture: drop the declaration, or add the fixture that shows why it is needed", rule.ID, src)
				}
			}
			var cov []string
			for _, s := range []judgeSource{lintSource, auditSource, guardSource} {
				switch {
				case s.sees(rule):
					cov = append(cov, s.name)
				case declared[s.name]:
					cov = append(cov, "("+s.name+": declared unseen)")
				}
			}
			coverage[rule.ID] = cov
		})
	}
	ids := make([]string, 0, len(coverage))
	for id := range coverage {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t.Logf("%-20s %s", id, strings.Join(coverage[id], ", "))
	}
}

// results are the findings of one source, by compose service.
type results map[string][]policy.Finding

func (r results) has(rule string) bool {
	for _, fs := range r {
		if slices.ContainsFunc(fs, func(f policy.Finding) bool { return f.Rule == rule }) {
			return true
		}
	}
	return false
}

func (r results) rules(service string) map[string][]string {
	out := map[string][]string{}
	for _, f := range r[service] {
		out[f.Rule] = append(out[f.Rule], f.Message)
	}
	return out
}

type crossFixture struct {
	base     string
	d        policytest.Directives
	adrs     *adr.Resolver
	eng      *fixtureEngine
	requests []createRequest
	services []string // the compose services both JSON files show
	lint     results
	audit    results
	guard    results
	snap     *source.Snapshot
}

type createRequest struct {
	Name string          `json:"name"`
	Body json.RawMessage `json:"body"`
}

func loadCrossFixture(t *testing.T, base string) *crossFixture {
	t.Helper()
	ctx := context.Background()
	yaml := base + ".yaml"
	d, err := policytest.ReadDirectives(yaml)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.GuardOnly) > 0 {
		t.Fatalf("%s: a cross-source fixture cannot rest on %s: only the guard knows them", yaml, strings.Join(d.GuardOnly, ", "))
	}
	dir, err := filepath.Abs(filepath.Dir(base))
	if err != nil {
		t.Fatal(err)
	}
	fx := &crossFixture{base: base, d: d, adrs: adr.NewResolver(filepath.Join(dir, "docs", "adr"))}
	fx.eng = readFixtureEngine(t, base+inspectSuffix, dir, d)
	b, err := os.ReadFile(base + createSuffix)
	if err != nil {
		t.Fatalf("%s: %v (a cross-source fixture has both files)", base+createSuffix, err)
	}
	if err := json.Unmarshal(bytes.ReplaceAll(b, []byte(fixtureDirVar), []byte(dir)), &fx.requests); err != nil {
		t.Fatalf("%s: %v", base+createSuffix, err)
	}

	// The same services in both files.
	var fromInspect, fromCreate []string
	for _, c := range fx.eng.containers {
		fromInspect = append(fromInspect, serviceLabel(t, base+inspectSuffix, c.Config.Labels))
	}
	for _, r := range fx.requests {
		var body struct{ Labels map[string]string }
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("%s: request %s: %v", base+createSuffix, r.Name, err)
		}
		fromCreate = append(fromCreate, serviceLabel(t, base+createSuffix, body.Labels))
	}
	sort.Strings(fromInspect)
	sort.Strings(fromCreate)
	if !slices.Equal(fromInspect, fromCreate) {
		t.Fatalf("%s shows services %v, %s %v: the same workloads, please", inspectSuffix, fromInspect, createSuffix, fromCreate)
	}
	fx.services = slices.Compact(fromInspect)

	// lint: the compose file, as `hyhome lint` judges it.
	lres, err := lint.Run(ctx, lint.Options{Paths: []string{yaml}, Profiles: d.Profiles, Environ: d.Environ, Policy: fx.env()})
	if err != nil {
		t.Fatal(err)
	}
	if len(lres.Errors) > 0 {
		t.Fatalf("lint: %v", lres.Errors[0])
	}
	fx.lint = results{}
	for _, f := range lres.Findings {
		fx.lint[f.Service] = append(fx.lint[f.Service], f)
	}
	for _, s := range fx.services {
		if !slices.ContainsFunc(lres.Targets, func(tg report.Target) bool { return tg.Service == s }) {
			t.Fatalf("service %s of the JSON files is not in %s", s, yaml)
		}
	}

	// audit: the engine reader on the inspect output, as `hyhome audit`
	// reads a local engine.
	src, err := source.New(source.Config{Engine: fx.eng, Host: "unix:///var/run/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	env := fx.env()
	env.HostMemory = 0 // the engine's
	ares, err := audit.Run(ctx, src, source.Selection{All: true}, &env)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	fx.snap = ares.Snapshot
	fx.audit = results{}
	for _, f := range ares.Findings {
		fx.audit[f.Service] = append(fx.audit[f.Service], f)
	}

	// guard: the create judge on each request, on a listener whose profile
	// honours exemptions and allows what lint and audit judge with.
	a := newAdmission(policy.Default, fx.adrs, d.Strict, policy.Error, fx.eng)
	a.exemptions, a.allow = true, policy.Allowlists{}
	fx.guard = results{}
	for _, r := range fx.requests {
		v := a.containerCreate(ctx, &target{query: url.Values{"name": {r.Name}}}, jsonRequest(r.Name, r.Body), r.Body)
		if v.deny != nil && v.deny.reason != reasonPolicy {
			t.Fatalf("guard refused request %s before judging it: %s", r.Name, v.deny.message)
		}
		var body struct{ Labels map[string]string }
		_ = json.Unmarshal(r.Body, &body)
		svc := body.Labels[workload.LabelComposeService]
		for _, f := range v.findings {
			if f.Service != r.Name {
				t.Fatalf("guard finding for %q, not request %q", f.Service, r.Name)
			}
			f.Service = svc
			fx.guard[svc] = append(fx.guard[svc], f)
		}
	}
	return fx
}

// env is the policy environment every source judges the fixture with.
func (fx *crossFixture) env() policy.Env {
	return policy.Env{Registry: policy.Default, ADRs: fx.adrs, Strict: fx.d.Strict, HostMemory: fx.d.HostMemory, Host: fx.d.Host, Allow: fx.d.Allow}
}

func serviceLabel(t *testing.T, file string, labels map[string]string) string {
	t.Helper()
	s := labels[workload.LabelComposeService]
	if s == "" {
		t.Fatalf("%s: a workload without a %s label", file, workload.LabelComposeService)
	}
	return s
}

func jsonRequest(name string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/containers/create?name="+url.QueryEscape(name), bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// compare requires, for every service the JSON files show, that src finds
// the rule IDs lint finds among the rules it sees, and no other. A project
// rule's finding is the project's: which of its workloads it is reported on
// may differ (compose counts a service's replicas, the engine shows each
// container), so project rules are compared over the services together.
func compare(t *testing.T, fx *crossFixture, src judgeSource, got results) {
	t.Helper()
	const project = "(the project)"
	byService := func(r results) map[string]map[string][]string {
		out := map[string]map[string][]string{project: {}}
		for _, svc := range fx.services {
			out[svc] = map[string][]string{}
			for id, msgs := range r.rules(svc) {
				key := svc
				if policy.Default.Get(id).CheckProject != nil {
					key = project
				}
				out[key][id] = append(out[key][id], msgs...)
			}
		}
		return out
	}
	lintBy, srcBy := byService(fx.lint), byService(got)
	for _, svc := range append([]string{project}, fx.services...) {
		want := lintBy[svc]
		have := srcBy[svc]
		ids := map[string]bool{}
		for id := range want {
			ids[id] = true
		}
		for id := range have {
			ids[id] = true
		}
		sorted := make([]string, 0, len(ids))
		for id := range ids {
			sorted = append(sorted, id)
		}
		sort.Strings(sorted)
		for _, id := range sorted {
			rule := policy.Default.Get(id)
			_, inLint := want[id]
			_, inSrc := have[id]
			switch {
			case inLint && !src.sees(rule):
				// Declared unseen: checkDeclaration judges the declaration.
			case inLint && !inSrc:
				t.Errorf("service %s: lint finds %s (%s), %s does not", svc, id, strings.Join(want[id], "; "), src.name)
			case !inLint && inSrc:
				t.Errorf("service %s: %s finds %s (%s), lint does not", svc, src.name, id, strings.Join(have[id], "; "))
			}
		}
	}
}

// differsRegardless judges rule through src as if it did not declare src
// unseen, and reports whether the outcome differs from lint's. A
// declaration must differ in some fixture of the rule: one that hides
// nothing would hide a rule a source could judge.
func (fx *crossFixture) differsRegardless(t *testing.T, rule *policy.Rule, src judgeSource) bool {
	t.Helper()
	lifted := *rule
	lifted.Kinds = nil
	if lifted.Check != nil {
		lifted.Requests = []policy.Request{policy.RequestCreate}
	}
	reg := policy.NewRegistry()
	reg.MustRegister(&lifted)
	env := fx.env()
	env.Registry = reg
	got := results{}
	switch src.name {
	case auditSource.name:
		env.HostMemory = 0
		for _, f := range audit.Evaluate(fx.snap, &env) {
			got[f.Service] = append(got[f.Service], f)
		}
	case guardSource.name:
		// One request at a time, as the guard judges: each request's
		// workload alone.
		for _, r := range fx.requests {
			var req container.CreateRequest
			if err := json.Unmarshal(r.Body, &req); err != nil {
				t.Fatal(err)
			}
			w := engine.Container(engine.ContainerInput{Name: r.Name, Config: req.Config, HostConfig: req.HostConfig, Kind: workload.KindRequest})
			for _, f := range policy.Evaluate(&workload.Project{Name: r.Name, Workloads: []*workload.Workload{w}}, &env) {
				f.Service = w.Service
				got[f.Service] = append(got[f.Service], f)
			}
		}
	}
	msgs := func(r results) []string {
		var out []string
		for _, svc := range fx.services {
			for _, f := range r[svc] {
				if f.Rule == rule.ID {
					out = append(out, svc+": "+f.Message)
				}
			}
		}
		sort.Strings(out)
		return out
	}
	return !slices.Equal(msgs(got), msgs(fx.lint))
}

// fixtureEngine is the engine a cross-source fixture's inspect output
// describes, with the host its directives give (cgroup v2, the json-file
// log driver and /var/lib/docker unless they say otherwise). It serves
// audit's engine reader and the guard's lookups; it creates nothing.
type fixtureEngine struct {
	sys        system.Info
	containers []container.InspectResponse
	volumes    map[string]volume.Volume
	images     map[string]image.InspectResponse
}

func readFixtureEngine(t *testing.T, file, dir string, d policytest.Directives) *fixtureEngine {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var objs []json.RawMessage
	if err := json.Unmarshal(bytes.ReplaceAll(b, []byte(fixtureDirVar), []byte(dir)), &objs); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	e := &fixtureEngine{
		sys: system.Info{
			Name: "fixture", ServerVersion: "20.10.24", MemTotal: d.HostMemory, CgroupVersion: "2",
			DockerRootDir: cmpOr(d.Host.DataRoot, workload.DefaultDataRoot), LoggingDriver: cmpOr(d.Host.LogDriver, "json-file"),
		},
		volumes: map[string]volume.Volume{},
		images:  map[string]image.InspectResponse{},
	}
	for i, raw := range objs {
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil {
			t.Fatalf("%s: object %d: %v", file, i, err)
		}
		strict := func(v any) {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("%s: object %d: %v", file, i, err)
			}
		}
		switch {
		case keys["HostConfig"] != nil:
			var c container.InspectResponse
			strict(&c)
			if c.Config == nil || c.Name == "" {
				t.Fatalf("%s: container %d has no Name or Config", file, i)
			}
			if c.ID == "" {
				sum := sha256.Sum256([]byte(c.Name))
				c.ID = hex.EncodeToString(sum[:])
			}
			e.containers = append(e.containers, c)
		case keys["Mountpoint"] != nil:
			var v volume.Volume
			strict(&v)
			e.volumes[v.Name] = v
		case keys["RootFS"] != nil || keys["RepoTags"] != nil:
			var img image.InspectResponse
			strict(&img)
			for _, tag := range img.RepoTags {
				e.images[tag] = img
			}
		default:
			t.Fatalf("%s: object %d is neither a container, a volume nor an image", file, i)
		}
	}
	return e
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (e *fixtureEngine) find(ref string) (*container.InspectResponse, bool) {
	ref = strings.TrimPrefix(ref, "/")
	for i := range e.containers {
		c := &e.containers[i]
		if c.ID == ref || strings.TrimPrefix(c.Name, "/") == ref || len(ref) >= 12 && strings.HasPrefix(c.ID, ref) {
			return c, true
		}
	}
	return nil, false
}

// image is what the fixture lists for ref, or an image without USER or
// HEALTHCHECK whose ID is derived from the reference.
func (e *fixtureEngine) image(_ context.Context, ref string) (*image.InspectResponse, error) {
	if img, ok := e.images[ref]; ok {
		return &img, nil
	}
	for _, img := range e.images {
		if img.ID == ref {
			return &img, nil
		}
	}
	sum := sha256.Sum256([]byte(ref))
	return &image.InspectResponse{ID: "sha256:" + hex.EncodeToString(sum[:]), RepoTags: []string{ref}, Config: &dockerspec.DockerOCIImageConfig{}}, nil
}

// source.Engine

func (e *fixtureEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: e.sys}, nil
}

func (e *fixtureEngine) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	var out client.ContainerListResult
	for _, c := range e.containers {
		out.Items = append(out.Items, container.Summary{ID: c.ID, Names: []string{"/" + strings.TrimPrefix(c.Name, "/")}, Image: c.Config.Image, Labels: c.Config.Labels})
	}
	return out, nil
}

func (e *fixtureEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if c, ok := e.find(id); ok {
		return client.ContainerInspectResult{Container: *c}, nil
	}
	return client.ContainerInspectResult{}, fmt.Errorf("no such container %s: %w", id, cerrdefs.ErrNotFound)
}

func (e *fixtureEngine) ImageInspect(ctx context.Context, id string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	img, _ := e.image(ctx, id)
	return client.ImageInspectResult{InspectResponse: *img}, nil
}

func (e *fixtureEngine) VolumeInspect(_ context.Context, name string, _ client.VolumeInspectOptions) (client.VolumeInspectResult, error) {
	if v, ok := e.volumes[name]; ok {
		return client.VolumeInspectResult{Volume: v}, nil
	}
	return client.VolumeInspectResult{}, fmt.Errorf("no such volume %s: %w", name, cerrdefs.ErrNotFound)
}

func (e *fixtureEngine) ServiceList(context.Context, client.ServiceListOptions) (client.ServiceListResult, error) {
	return client.ServiceListResult{}, nil
}

func (e *fixtureEngine) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	return client.NetworkListResult{}, nil
}

func (e *fixtureEngine) NetworkInspect(_ context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	return client.NetworkInspectResult{}, fmt.Errorf("no such network %s: %w", id, cerrdefs.ErrNotFound)
}

var _ source.Engine = (*fixtureEngine)(nil)

// admissionEngine

func (e *fixtureEngine) container(_ context.Context, ref string) (*container.InspectResponse, error) {
	if c, ok := e.find(ref); ok {
		return c, nil
	}
	return nil, fmt.Errorf("container %s: %w", ref, errNotFound)
}

func (e *fixtureEngine) volume(_ context.Context, name string) (*volume.Volume, error) {
	if v, ok := e.volumes[name]; ok {
		return &v, nil
	}
	return nil, fmt.Errorf("volume %s: %w", name, errNotFound)
}

func (e *fixtureEngine) network(_ context.Context, ref string) (*network.Inspect, error) {
	return nil, fmt.Errorf("network %s: %w", ref, errNotFound)
}

func (e *fixtureEngine) exec(_ context.Context, id string) (*container.ExecInspectResponse, error) {
	return nil, fmt.Errorf("exec %s: %w", id, errNotFound)
}

func (e *fixtureEngine) service(_ context.Context, ref string) (*swarm.Service, error) {
	return nil, fmt.Errorf("service %s: %w", ref, errNotFound)
}

func (e *fixtureEngine) plugin(_ context.Context, ref string) (*plugin.Plugin, error) {
	return nil, fmt.Errorf("plugin %s: %w", ref, errNotFound)
}

func (e *fixtureEngine) infraContainers(context.Context) ([]container.Summary, error) {
	return nil, nil
}

func (e *fixtureEngine) apiVersion(context.Context) (string, error) { return "1.41", nil }

func (e *fixtureEngine) info(context.Context) (*system.Info, error) {
	i := e.sys
	return &i, nil
}

// socketGroup: a cross-source fixture does not know the socket's group
// (only the guard could).
func (e *fixtureEngine) socketGroup() (uint32, bool) { return 0, false }

// imageFiles: the fixture's images have no /etc/passwd or /etc/group, and
// the engine's default path lists are Docker 20.10's.
func (e *fixtureEngine) imageFiles(context.Context, string) (userFiles, error) {
	return userFiles{masked: workload.DefaultMaskedPaths, readonly: workload.DefaultReadonlyPaths}, nil
}

func (e *fixtureEngine) containerFiles(context.Context, string) (userFiles, error) {
	return userFiles{}, nil
}

var _ admissionEngine = (*fixtureEngine)(nil)
