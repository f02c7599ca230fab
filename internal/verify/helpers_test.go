package verify

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/lokitest"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/ship"
	"github.com/hy-home/hyhome/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// scopeLabel confines a test's judged containers, shipper and discovery to
// its own containers: other packages' tests use the same engine at the same
// time, some with hy-home.tier=infra containers of their own.
const scopeLabel = "hyhome.verify.test"

var (
	hyhomeOnce  sync.Once
	hyhomeBin   string
	hyhomeImage string
	hyhomeErr   error
)

// hyhomeCanaryImage builds the hyhome binary and a FROM-scratch image of it
// (as the project's Dockerfile does: /hyhome, USER 65532), once per test
// process, so that the canaries run the real `hyhome canary` command.
func hyhomeCanaryImage(t *testing.T) (bin, image string) {
	t.Helper()
	c := dockertest.Client(t)
	bin = dockertest.ProcessBinary(t, "./cmd/hyhome", "hyhome")
	hyhomeOnce.Do(func() {
		hyhomeBin = bin
		hyhomeImage = "hyhome-test/hyhome:verify-" + dockertest.RunID
		// No deadline of its own: the test binary's -timeout bounds it.
		hyhomeErr = dockertest.BuildScratchImage(context.Background(), c, hyhomeImage, hyhomeBin, "/hyhome", "65532:65532", nil)
		dockertest.ProcessScoped("image", hyhomeImage) // shared by the process's tests; Main removes it
	})
	if hyhomeErr != nil {
		t.Fatalf("building the hyhome canary image: %v", hyhomeErr)
	}
	return hyhomeBin, hyhomeImage
}

// testLogger sends a Verifier's log to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testConfig is a configuration scoped to one test: its filter and the
// canaries' labels carry scope, and the canaries carry dockertest's run
// label so that a crashed run's are swept.
func testConfig(t *testing.T, scope string) Config {
	t.Helper()
	_, img := hyhomeCanaryImage(t)
	ep, err := docker.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Engine:       dockertest.Client(t),
		Host:         ep.Host,
		Filters:      []string{"label=" + scopeLabel + "=" + scope},
		CanaryImage:  img,
		CanaryLabels: map[string]string{dockertest.LabelKey: dockertest.RunID, scopeLabel: scope},
		Logger:       testLogger(t),
		Version:      "test",
	}
}

// run runs a Verifier and fails the test when it cannot run at all; it also
// checks that no canary of the run is left on the engine.
func run(t *testing.T, cfg Config) *report.CheckReport {
	t.Helper()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Hang)
	defer cancel()
	rep, err := v.Run(ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var text strings.Builder
	_ = report.WriteChecks(&text, "text", rep)
	t.Logf("report:\n%s", text.String())
	assertNoCanaries(t, v.canaries.runID)
	return rep
}

// assertNoCanaries fails when any container of a verify run is left.
func assertNoCanaries(t *testing.T, runID string) {
	t.Helper()
	f := client.Filters{}
	f.Add("label", LabelRun+"="+runID)
	list, err := dockertest.Client(t).ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		t.Errorf("canary %v (%s) of run %s left behind", c.Names, c.State, runID)
	}
}

func checkOf(t *testing.T, rep *report.CheckReport, id string) *report.CheckResult {
	t.Helper()
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no %s in the report", id)
	return nil
}

// detail is r's figures, which must be a T.
func detail[T report.CheckDetail](t *testing.T, r *report.CheckResult) T {
	t.Helper()
	d, ok := r.Detail.(T)
	if !ok {
		t.Fatalf("%s: figures %T, want %T", r.ID, r.Detail, *new(T))
	}
	return d
}

func wantStatus(t *testing.T, r *report.CheckResult, want report.CheckStatus) {
	t.Helper()
	if r.Status != want {
		t.Errorf("%s: %s (%s), want %s", r.ID, r.Status, r.Summary, want)
	}
}

// startLoki starts the in-repo Loki test server.
func startLoki(t *testing.T) *lokitest.Server {
	t.Helper()
	s, err := lokitest.Start(lokitest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startShip runs the real shipper in process, confined to the test's
// containers and their events.
func startShip(t *testing.T, loki *lokitest.Server, scope string) {
	t.Helper()
	sel, err := ship.ParseSelector(scopeLabel + "=" + scope)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ship.New(ship.Config{
		LokiURL:    loki.URL(),
		StateDir:   t.TempDir(),
		Select:     sel,
		Events:     ship.EventsSelected,
		MaxBackoff: 500 * time.Millisecond,
		Registerer: prometheus.NewRegistry(),
	}, dockertest.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// startInfra starts a test container of the infra tier in scope, with a
// memory limit (0: none), compliant otherwise.
func startInfra(t *testing.T, scope, name string, memory int64, cmd ...string) (id, fullName string) {
	t.Helper()
	img := dockertest.Build(t)
	spec := infraSpec(scope, name, memory, img.NonRoot)
	if len(cmd) > 0 {
		spec.Cmd = cmd
	}
	return dockertest.Run(t, spec)
}

func infraSpec(scope, name string, memory int64, image string) dockertest.Spec {
	pids := int64(32)
	return dockertest.Spec{
		Name:  name,
		Image: image,
		Cmd:   []string{"sleep"},
		Labels: map[string]string{
			scopeLabel:                   scope,
			"hy-home.tier":               "infra",
			"hy-home.job":                "infra",
			"com.docker.compose.service": name,
		},
		Host: container.HostConfig{
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges:true"},
			ReadonlyRootfs: true,
			NetworkMode:    "none",
			Resources:      container.Resources{Memory: memory, MemorySwap: memory, PidsLimit: &pids},
		},
	}
}
