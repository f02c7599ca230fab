package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// scopeKey labels every container a test starts, so that its audit selects
// exactly its own containers on an engine other work shares.
const scopeKey = "hy-home.test.audit"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is one test's view of the real engine.
type fixture struct {
	t     *testing.T
	c     *client.Client
	img   dockertest.Images
	host  string
	scope string // value of scopeKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := dockertest.Client(t)
	img := dockertest.Build(t)
	ep, err := docker.Resolve("")
	if err != nil {
		t.Fatalf("resolving engine: %v", err)
	}
	return &fixture{t: t, c: c, img: img, host: ep.Host, scope: randomHex(6)}
}

// filter selects this fixture's containers.
func (f *fixture) filter() string { return "label=" + scopeKey + "=" + f.scope }

// compliant is a container that satisfies every rule the runtime can judge:
// non-root image, the security baseline, limits, labels and a health check.
func (f *fixture) compliant(name string) dockertest.Spec {
	pids := int64(64)
	return dockertest.Spec{
		Name:  name,
		Image: f.img.NonRoot,
		Cmd:   []string{"sleep"},
		Labels: map[string]string{
			scopeKey:               f.scope,
			"hy-home.tier":         "app",
			"hy-home.metrics.port": "9100",
		},
		// The probe would fail (nothing serves), but the first run is an
		// hour away; the rule only asks that a check is defined.
		Healthcheck: &container.HealthConfig{
			Test:     []string{"CMD", "/testprog", "probe", "-url", "http://127.0.0.1:9100/healthz"},
			Interval: time.Hour,
		},
		Host: container.HostConfig{
			SecurityOpt:    []string{"no-new-privileges:true"},
			CapDrop:        []string{"ALL"},
			ReadonlyRootfs: true,
			Resources:      container.Resources{Memory: 64 << 20, PidsLimit: &pids},
		},
	}
}

// spec is a compliant container changed by mut.
func (f *fixture) spec(name string, mut func(*dockertest.Spec)) dockertest.Spec {
	s := f.compliant(name)
	if mut != nil {
		mut(&s)
	}
	return s
}

// run starts a compliant container changed by mut.
func (f *fixture) run(name string, mut func(*dockertest.Spec)) (id, fullName string) {
	f.t.Helper()
	return dockertest.Run(f.t, f.spec(name, mut))
}

func (f *fixture) source(e source.Engine) *source.Source {
	f.t.Helper()
	if e == nil {
		e = f.c
	}
	src, err := source.New(source.Config{Engine: e, Host: f.host})
	if err != nil {
		f.t.Fatal(err)
	}
	return src
}

func (f *fixture) audit(sel source.Selection, env *policy.Env) *Result {
	f.t.Helper()
	sel.Filters = append(sel.Filters, f.filter())
	ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
	defer cancel()
	res, err := Run(ctx, f.source(nil), sel, env)
	if err != nil {
		f.t.Fatalf("audit: %v", err)
	}
	return res
}

// rulesBySource groups unexempted findings' rule IDs by source.
func rulesBySource(fs []policy.Finding) map[string][]string {
	out := map[string][]string{}
	for _, f := range fs {
		if f.Exempted {
			continue
		}
		out[f.Source] = append(out[f.Source], f.Rule)
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

func findingOf(fs []policy.Finding, source, rule string) *policy.Finding {
	for i := range fs {
		if fs[i].Source == source && fs[i].Rule == rule {
			return &fs[i]
		}
	}
	return nil
}

func display(name, id string) string { return "container " + name + " (" + id[:12] + ")" }

// countingClient is a real engine client that counts its HTTP round trips.
func countingClient(t testing.TB, host string) (*client.Client, *atomic.Int64, *requestLog) {
	t.Helper()
	var n atomic.Int64
	log := &requestLog{}
	c, err := client.New(
		client.WithHost(host),
		client.WithHTTPRequestHook(func(r *http.Request) error {
			n.Add(1)
			log.add(r.Method + " " + r.URL.Path)
			return nil
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, &n, log
}

type requestLog struct {
	mu sync.Mutex
	s  []string
}

func (l *requestLog) add(s string) {
	l.mu.Lock()
	l.s = append(l.s, s)
	l.mu.Unlock()
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.s = nil
	l.mu.Unlock()
}

func (l *requestLog) paths() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.s...)
}

// countPrefix counts requests whose path (after the API version) starts with p.
func countPrefix(paths []string, method, p string) int {
	n := 0
	for _, s := range paths {
		m, path, _ := strings.Cut(s, " ")
		if i := strings.Index(path[1:], "/"); strings.HasPrefix(path, "/v") && i >= 0 {
			path = path[i+1:]
		}
		if m == method && strings.HasPrefix(path, p) {
			n++
		}
	}
	return n
}

// started is a container startMany created.
type started struct{ id, name string }

// startMany creates and starts containers concurrently (the engine on
// fuse-overlayfs takes seconds per start; one after another would dominate
// the test time) and removes them when the test ends. Names get the same
// unique suffix dockertest.Run gives, and the run label that dockertest's
// sweep looks for.
func (f *fixture) startMany(specs []dockertest.Spec) []started {
	f.t.Helper()
	out := make([]started, len(specs))
	errs := make([]error, len(specs))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, s := range specs {
		name := "hyhome-test-" + s.Name + "-" + randomHex(6)
		labels := map[string]string{dockertest.LabelKey: dockertest.RunID}
		for k, v := range s.Labels {
			labels[k] = v
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
			defer cancel()
			hc := s.Host
			res, err := f.c.ContainerCreate(ctx, client.ContainerCreateOptions{
				Name:       name,
				Config:     &container.Config{Image: s.Image, Cmd: s.Cmd, User: s.User, Labels: labels, Env: s.Env, Healthcheck: s.Healthcheck},
				HostConfig: &hc,
			})
			if err != nil {
				errs[i] = fmt.Errorf("creating %s: %w", name, err)
				return
			}
			out[i] = started{res.ID, name}
			if s.NoStart {
				return
			}
			if _, err := f.c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
				errs[i] = fmt.Errorf("starting %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	f.t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, s := range out {
			if s.id != "" {
				wg.Go(func() { dockertest.RemoveContainer(f.c, s.id) })
			}
		}
		wg.Wait()
	})
	for _, err := range errs {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	return out
}
