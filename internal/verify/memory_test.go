package verify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/promtest"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/testenv"
)

// memoryConfig keeps AC-SPEC-03's load window short.
func memoryConfig(t *testing.T, scope string, checks ...string) Config {
	cfg := testConfig(t, scope)
	cfg.Checks = checks
	cfg.LoadDuration = 3 * time.Second
	cfg.SampleInterval = 500 * time.Millisecond
	// These tests are about memory verdicts. Other packages' tests share
	// the 2 cores and come and go within a 3 s window, so the Given's
	// tolerance is wide here; the controller is tested on its own, and the
	// default window's figures are in docs/verify.md.
	cfg.LoadTolerance = 0.4
	return cfg
}

// NFR-RES-01 and AC-SPEC-03 from the engine's stats API: compliant infra
// containers with limits pass, with the figures the report promises.
func TestMemoryEngineStatsPass(t *testing.T) {
	scope := newToken()
	const limit = 32 << 20
	_, a := startInfra(t, scope, "infra-a", limit)
	_, b := startInfra(t, scope, "infra-b", limit)
	rep := run(t, memoryConfig(t, scope, CheckNFRRes01, CheckACSpec03))

	idle := checkOf(t, rep, CheckNFRRes01)
	wantStatus(t, idle, report.CheckPass)
	m := detail[*IdleResult](t, idle)
	if m == nil || len(m.Containers) != 2 || m.HostMemory != rep.Engine.MemTotal || m.WorkingSet == 0 || m.Share <= 0 || m.Share >= 0.2 {
		t.Fatalf("idle %+v", m)
	}
	for _, c := range m.Containers {
		if c.Samples != DefaultIdleSamples || c.MaxWorkingSet == 0 || c.MaxUsage < c.MaxWorkingSet {
			t.Errorf("idle %+v", c)
		}
	}

	ceil := checkOf(t, rep, CheckACSpec03)
	wantStatus(t, ceil, report.CheckPass)
	res := detail[*CeilingResult](t, ceil)
	names := map[string]bool{}
	for _, c := range res.Containers {
		names[c.Name] = true
		if !c.Pass || c.Limit != limit || c.Samples < 2 || c.MaxUsage == 0 || c.MaxUsage > limit || c.Headroom != limit-int64(c.MaxUsage) || c.OOMEvents != 0 {
			t.Errorf("ceiling %+v", c)
		}
	}
	if !names[a] || !names[b] || len(names) != 2 {
		t.Errorf("containers %v, want %s and %s", names, a, b)
	}
	l := res.Load
	if l.NCPU != rep.Engine.NCPU || len(l.Samples) < 4 || l.Mean < l.Target-l.Tolerance || l.Tolerance != 0.4 || l.DurationSeconds < 2 || l.End.Before(l.Start) {
		t.Errorf("load %+v", l)
	}
}

// The failures AC-SPEC-03 can really see: an infra container without a
// memory limit, and one that reaches its limit during the load window and
// is OOM-killed (usage itself cannot exceed a hard limit).
func TestMemoryEngineStatsFailures(t *testing.T) {
	scope := newToken()
	_, ok := startInfra(t, scope, "limited", 32<<20)
	_, unlimited := startInfra(t, scope, "unlimited", 0)
	// Starts allocating after the window has begun, 1 MiB every 20 ms
	// against a 16 MiB limit.
	_, oom := startInfra(t, scope, "oom", 16<<20, "alloc", "-delay", "1500ms")
	cfg := memoryConfig(t, scope, CheckACSpec03)
	cfg.LoadDuration = 4 * time.Second
	r := checkOf(t, run(t, cfg), CheckACSpec03)
	wantStatus(t, r, report.CheckFail)
	got := map[string]MemContainer{}
	for _, c := range detail[*CeilingResult](t, r).Containers {
		got[c.Name] = c
	}
	if c := got[ok]; !c.Pass {
		t.Errorf("%s: %+v", ok, c)
	}
	if c := got[unlimited]; c.Pass || c.Limit != 0 || !strings.Contains(c.Reason, "no memory limit") {
		t.Errorf("%s: %+v", unlimited, c)
	}
	if c := got[oom]; c.Pass || c.OOMEvents == 0 || !strings.Contains(c.Reason, "OOM-killed") {
		t.Errorf("%s: %+v", oom, c)
	}
	for _, name := range []string{unlimited, oom} {
		if !strings.Contains(r.Summary, name) {
			t.Errorf("summary does not name %s: %s", name, r.Summary)
		}
	}
}

// NFR-RES-01 and AC-SPEC-03 through the Prometheus HTTP API: a real
// Prometheus scrapes an exporter serving cAdvisor's series for this test's
// real containers (whose limits come from the engine).
func TestMemoryPrometheus(t *testing.T) {
	scope := newToken()
	const limit = 32 << 20
	subset := map[string]string{"hyhome.verify.subset": "a"}
	idA, a := startInfraLabelled(t, scope, "prom-a", limit, subset)
	idB, b := startInfra(t, scope, "prom-b", limit)
	_, c := startInfra(t, scope, "prom-c", limit) // no series at all

	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		series := func(metric, id, name string, v int) {
			fmt.Fprintf(w, "%s{id=%q,image=\"testprog\",name=%q} %d\n", metric, "/docker/"+id, name, v)
		}
		fmt.Fprintln(w, "# TYPE container_memory_usage_bytes gauge")
		fmt.Fprintln(w, `container_memory_usage_bytes{id="/"} 9.9e+09`) // the root cgroup: no name, never matched
		series("container_memory_usage_bytes", idA, a, 12<<20)
		series("container_memory_usage_bytes", idB, b, 40<<20) // above its limit
		fmt.Fprintln(w, "# TYPE container_memory_working_set_bytes gauge")
		series("container_memory_working_set_bytes", idA, a, 10<<20)
		series("container_memory_working_set_bytes", idB, b, 30<<20)
	}))
	t.Cleanup(exporter.Close)

	prom := promtest.Tool(t, "the Prometheus memory source is read from a real Prometheus", "prometheus")
	dir := t.TempDir()
	addr := promtest.FreeAddr(t)
	conf := filepath.Join(dir, "prometheus.yml")
	yml := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: cadvisor\n    static_configs: [{targets: [%q]}]\n", strings.TrimPrefix(exporter.URL, "http://"))
	if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	promtest.StartProcess(t, dir, "prometheus", prom, nil, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	promtest.WaitReady(t, "http://"+addr+"/-/ready")
	promtest.WaitFor(t, testenv.Hang, "two scrapes of the exporter", func() error {
		v, err := promtest.Value(addr, `count_over_time(container_memory_usage_bytes{name="`+a+`"}[1m]) >= 2`)
		if err != nil {
			return fmt.Errorf("%q %v", v, err)
		}
		return nil
	})

	// The subset with figures under its limit passes both checks.
	cfg := memoryConfig(t, scope, CheckNFRRes01, CheckACSpec03)
	cfg.PrometheusURL = "http://" + addr
	cfg.Filters = append(cfg.Filters, "label=hyhome.verify.subset=a")
	rep := run(t, cfg)
	idle, ceil := checkOf(t, rep, CheckNFRRes01), checkOf(t, rep, CheckACSpec03)
	wantStatus(t, idle, report.CheckPass)
	wantStatus(t, ceil, report.CheckPass)
	if m := detail[*IdleResult](t, idle); len(m.Containers) != 1 || m.WorkingSet != 10<<20 || !strings.HasPrefix(m.Source, "Prometheus") {
		t.Errorf("idle %+v", m)
	}
	if cs := detail[*CeilingResult](t, ceil).Containers; len(cs) != 1 || cs[0].MaxUsage != 12<<20 || cs[0].MaxWorkingSet != 10<<20 || cs[0].Headroom != 20<<20 || cs[0].Samples < 2 {
		t.Errorf("ceiling %+v", cs)
	}

	// All three: one above its limit, one never scraped.
	cfg = memoryConfig(t, scope, CheckACSpec03)
	cfg.PrometheusURL = "http://" + addr
	r := checkOf(t, run(t, cfg), CheckACSpec03)
	wantStatus(t, r, report.CheckFail)
	got := map[string]MemContainer{}
	for _, m := range detail[*CeilingResult](t, r).Containers {
		got[m.Name] = m
	}
	if m := got[a]; !m.Pass {
		t.Errorf("%s: %+v", a, m)
	}
	if m := got[b]; m.Pass || m.Headroom != -8<<20 || !strings.Contains(m.Reason, "above its 32.0 MiB limit") {
		t.Errorf("%s: %+v", b, m)
	}
	if m := got[c]; m.Pass || m.Samples != 0 || !strings.Contains(m.Reason, "no sample in the load window") {
		t.Errorf("%s: %+v", c, m)
	}
}

// startInfraLabelled is startInfra with extra labels.
func startInfraLabelled(t *testing.T, scope, name string, memory int64, extra map[string]string) (string, string) {
	t.Helper()
	img := dockertest.Build(t)
	spec := infraSpec(scope, name, memory, img.NonRoot)
	for k, v := range extra {
		spec.Labels[k] = v
	}
	return dockertest.Run(t, spec)
}
