package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/acceptance"
	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/promtest"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/testenv"
	"github.com/hy-home/hyhome/internal/verify/load"
	"github.com/hy-home/hyhome/internal/version"
	"github.com/hy-home/hyhome/internal/workload"
)

func TestParseChecks(t *testing.T) {
	got, err := ParseChecks("alerting, nfr-obs-01,AC-SPEC-01,AC-SPEC-01")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "AC-SPEC-01,NFR-OBS-01,ALERTING" {
		t.Errorf("got %v: want run order without duplicates", got)
	}
	if all, _ := ParseChecks("all"); len(all) != len(Checks) {
		t.Errorf("all = %v", all)
	}
	for _, bad := range []string{"", " , ", "AC-SPEC-04", "all,nope"} {
		if _, err := ParseChecks(bad); err == nil {
			t.Errorf("ParseChecks(%q) accepted", bad)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	base := func() Config { return Config{Engine: fakeEngine{}} }
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no engine", func(c *Config) { c.Engine = nil }, "no engine client"},
		{"root canary", func(c *Config) { c.CanaryUser = "0:0" }, "canary user \"0:0\" is root"},
		// the root check is the one the non-root rule uses (runc's reading)
		{"root canary by name", func(c *Config) { c.CanaryUser = "root:staff" }, "canary user \"root:staff\" is root"},
		{"root canary as 000", func(c *Config) { c.CanaryUser = "000" }, "canary user \"000\" is root"},
		{"negative canary memory", func(c *Config) { c.CanaryMemory = -1 }, "canary memory limit must be positive, got -1"},
		{"negative poll interval", func(c *Config) { c.PollInterval = -time.Second }, "poll interval must be positive, got -1s"},
		{"bad loki url", func(c *Config) { c.LokiURL = "loki:3100" }, "the Loki URL \"loki:3100\" must be an http:// or https:// URL"},
		{"password redacted", func(c *Config) { c.PrometheusURL = "ftp://u:secret@p" }, "ftp://u:xxxxx@p"},
		{"short trial timeout", func(c *Config) { c.TrialTimeout = 3 * time.Second }, "shorter than AC-SPEC-02's 5s bound"},
		{"load target", func(c *Config) { c.LoadTarget = 80 }, "load target must be between 0.05 and 1, got 80"},
		{"window", func(c *Config) { c.LoadDuration, c.SampleInterval = time.Second, time.Second }, "at least two sample intervals"},
		{"filter", func(c *Config) { c.Filters = []string{"status=running"} }, "key \"status\" is not one of label, name, id"},
		{"memory source", func(c *Config) { c.MemorySource = "prometheus" }, "memory source prometheus needs a Prometheus URL"},
		{"bad memory source", func(c *Config) { c.MemorySource = "cadvisor" }, `memory source "cadvisor" is not one of engine, prometheus`},
		{"tiny canary", func(c *Config) { c.CanaryMemory = 1 << 20 }, "below the engine's 6 MiB minimum"},
		{"reserved label", func(c *Config) { c.CanaryLabels = map[string]string{"hy-home.tier": "app"} }, "canary label \"hy-home.tier\" is one the canaries set themselves"},
		{"reserved verify label", func(c *Config) { c.CanaryLabels = map[string]string{LabelRun: "x"} }, "canary label \"hy-home.verify.run\""},
	} {
		cfg := base()
		tc.mod(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error leaks the password: %v", tc.name, err)
		}
	}
	v, err := New(base())
	if err != nil {
		t.Fatal(err)
	}
	c := v.cfg
	if c.Trials != 5 || c.LoadTarget != 0.8 || c.LoadDuration != 30*time.Second || c.CanaryImage != "hyhome:"+version.Release || c.CanaryUser != "65532:65532" || len(c.Checks) != 6 || c.Silence != DefaultSilence {
		t.Errorf("defaults: %+v", c)
	}
	if m := (Config{}).Missing(Checks); m[CheckACSpec02] == "" || m[CheckNFRObs01] == "" || m[CheckAlerting] == "" || len(m) != 3 {
		t.Errorf("missing inputs: %v", m)
	}
}

// fakeEngine satisfies Engine for configuration tests; calling it panics.
type fakeEngine struct{ Engine }

func TestDistributionIsNearestRank(t *testing.T) {
	d := distribution([]float64{0.5, 0.1, 0.3, 0.2, 0.4})
	if d.N != 5 || d.Min != 0.1 || d.P50 != 0.3 || d.P95 != 0.5 || d.Max != 0.5 || d.Mean != 0.3 {
		t.Errorf("%+v", d)
	}
	// With 20 values p95 is the 19th, not the maximum.
	var xs []float64
	for i := 1; i <= 20; i++ {
		xs = append(xs, float64(i))
	}
	if d := distribution(xs); d.P95 != 19 || d.P50 != 10 {
		t.Errorf("%+v", d)
	}
	if d := distribution(nil); d.N != 0 {
		t.Errorf("%+v", d)
	}
}

func TestMemFromStatsLikeCAdvisor(t *testing.T) {
	v1 := container.MemoryStats{Usage: 100 << 20, Failcnt: 3, Stats: map[string]uint64{"total_inactive_file": 30 << 20, "inactive_file": 1 << 20, "cache": 50 << 20}}
	r, ok, _ := memFromStats(v1)
	if !ok || r.usage != 100<<20 || r.workingSet != 70<<20 || r.failcnt != 3 {
		t.Errorf("cgroup v1: %+v", r)
	}
	v2 := container.MemoryStats{Usage: 100 << 20, Stats: map[string]uint64{"inactive_file": 10 << 20, "file": 40 << 20}}
	if r, ok, _ := memFromStats(v2); !ok || r.workingSet != 90<<20 {
		t.Errorf("cgroup v2: %+v", r)
	}
	if r, _, _ := memFromStats(container.MemoryStats{Usage: 1 << 20, Stats: map[string]uint64{"inactive_file": 2 << 20}}); r.workingSet != 0 {
		t.Errorf("inactive above usage: %+v", r)
	}
	if _, ok, _ := memFromStats(container.MemoryStats{}); ok {
		t.Error("a stopped container's empty stats count as a sample")
	}
}

// Every canary is compliant with the baseline it helps to verify: its create
// request, judged by the policy catalogue as the guard's admission would
// judge it, has no error-severity finding.
func TestCanariesAreCompliant(t *testing.T) {
	v, err := New(Config{Engine: fakeEngine{}, CanaryLabels: map[string]string{"x": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	cs := v.canaries
	for _, s := range []canarySpec{cs.crashCanary("t1"), cs.loadCanary("t2"), cs.alertCanary("t3")} {
		o := cs.createOptions(s)
		w := engine.Container(engine.ContainerInput{Name: o.Name, Config: o.Config, HostConfig: o.HostConfig, Networks: []string{string(o.HostConfig.NetworkMode)}, Kind: workload.KindRequest})
		fs := policy.Evaluate(&workload.Project{Name: "canary", Workloads: []*workload.Workload{w}}, &policy.Env{Registry: policy.Default})
		for _, f := range fs {
			if f.Severity >= policy.Error {
				t.Errorf("%s canary: %s: %s", s.kind, f.Rule, f.Message)
			} else {
				t.Logf("%s canary: %s %s: %s", s.kind, f.Severity, f.Rule, f.Message)
			}
		}
		if o.Config.Labels[LabelCanary] != s.kind || o.Config.Labels[LabelRun] != cs.runID || o.Config.Labels["x"] != "y" || o.Config.Labels[LabelExpires] == "" {
			t.Errorf("%s canary labels %v", s.kind, o.Config.Labels)
		}
	}
	crash := cs.createOptions(cs.crashCanary("t1"))
	if crash.Config.Labels["hy-home.job"] != "infra" || crash.Config.Labels["hy-home.tier"] != "gateway" || crash.HostConfig.NetworkMode != "none" {
		t.Errorf("crash canary: %v %v", crash.Config.Labels, crash.HostConfig.NetworkMode)
	}
	alert := cs.createOptions(cs.alertCanary("t3"))
	if alert.Config.Labels["hy-home.tier"] != "infra" || alert.Config.Labels["com.docker.compose.service"] != "hyhome-verify-t3" || alert.HostConfig.NetworkMode != "infra_net" || alert.Config.Labels["com.docker.compose.project"] != "" {
		t.Errorf("alert canary: %v %v", alert.Config.Labels, alert.HostConfig.NetworkMode)
	}
}

func TestRunCanary(t *testing.T) {
	var out, errb bytes.Buffer
	if code := RunCanary(context.Background(), CanaryOptions{Token: "abc", Exit: 3}, &out, &errb); code != 3 {
		t.Errorf("exit %d", code)
	}
	if !hasCanaryLine(out.String(), "abc") || hasCanaryLine(out.String(), "abd") {
		t.Errorf("line %q", out.String())
	}
	if code := RunCanary(context.Background(), CanaryOptions{}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--token is required") {
		t.Errorf("no token: exit %d, %q", code, errb.String())
	}

	// Serve mode: /metrics until the context ends.
	addr := promtest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- RunCanary(ctx, CanaryOptions{Token: "srv", Serve: addr}, io.Discard, io.Discard) }()
	promtest.WaitFor(t, testenv.Hang, "the canary's /metrics", func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), `hyhome_verify_canary_up{token="srv"} 1`) {
			t.Errorf("metrics %q", b)
		}
		return nil
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit %d", code)
	}

	// Load mode against a fake /proc/stat the test advances: the
	// controller's output parses back into a report.
	stat := filepath.Join(t.TempDir(), "stat")
	if err := os.WriteFile(stat, []byte("cpu  0 0 0 1000 0 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var lout bytes.Buffer
	if code := RunCanary(context.Background(), CanaryOptions{Token: "ld", Load: 0.8, Duration: 300 * time.Millisecond, Interval: 100 * time.Millisecond, ProcStat: stat}, &lout, &errb); code != 0 {
		t.Fatalf("load exit %d: %s", code, errb.String())
	}
	rep, err := load.ReadReport(&lout)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Done || len(rep.Samples) < 2 || rep.NCPU < 1 {
		t.Errorf("load report %+v from\n%s", rep, lout.String())
	}
	// The counters never moved: utilisation 0, so the controller drives
	// the duty cycle up towards its ceiling.
	if last := rep.Samples[len(rep.Samples)-1]; last.CPU != 0 || last.Duty <= rep.Samples[0].Duty {
		t.Errorf("controller did not raise the duty cycle: %+v", rep.Samples)
	}
}

func ptr(f float64) *float64 { return &f }

func TestLatencyVerdicts(t *testing.T) {
	verdict := func(l *LatencyResult, bound time.Duration) *report.CheckResult {
		r := &report.CheckResult{}
		latencyVerdict(r, l, bound)
		if r.Detail != l {
			t.Errorf("the verdict does not carry the trials")
		}
		return r
	}
	l := &LatencyResult{Trials: []Trial{
		{N: 1, LogSeconds: ptr(0.2), DieSeconds: ptr(0.3)},
		{N: 2, LogSeconds: ptr(2.4), DieSeconds: ptr(0.1)},
	}}
	if r := verdict(l, ACSpec02Bound); r.Status != report.CheckPass {
		t.Errorf("AC-SPEC-02: %s %s", r.Status, r.Summary)
	}
	if r := verdict(l, NFRObs01Bound); r.Status != report.CheckFail || !strings.Contains(r.Summary, "trial 2 2.400 s") {
		t.Errorf("NFR-OBS-01: %s %s", r.Status, r.Summary)
	}
	// Exactly at the bound fails: the spec says "< 2 seconds".
	l.Trials[1].LogSeconds = ptr(2.0)
	if r := verdict(l, NFRObs01Bound); r.Status != report.CheckFail {
		t.Errorf("at the bound: %s", r.Status)
	}
	lost := &LatencyResult{Trials: []Trial{{N: 1, LogSeconds: ptr(0.2), Error: "no die event within 30s"}}}
	if r := verdict(lost, ACSpec02Bound); r.Status != report.CheckFail || !strings.Contains(r.Summary, "no die event") {
		t.Errorf("lost: %s %s", r.Status, r.Summary)
	}
	if r := verdict(&LatencyResult{Error: "image missing", errored: true}, ACSpec02Bound); r.Status != report.CheckError {
		t.Errorf("errored: %s", r.Status)
	}
	if r := verdict(&LatencyResult{Error: "Loki down"}, ACSpec02Bound); r.Status != report.CheckFail {
		t.Errorf("loki down: %s", r.Status)
	}
}

// The registry: every check has a title and a requirement the catalogue
// knows, IDs are unique, and a check whose inputs are missing says why.
func TestRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range checks {
		if seen[c.id] || c.title == "" || c.run == nil {
			t.Errorf("%s: duplicate, untitled or without a run function", c.id)
		}
		seen[c.id] = true
		if r := newResult(c); r.Requirement == "" {
			t.Errorf("%s: requirement %s is not in the catalogue", c.id, c.requirement)
		}
	}
	miss := Config{}.Missing(Checks)
	if len(miss) != 3 || !strings.Contains(miss[CheckACSpec02], "--loki-url") || !strings.Contains(miss[CheckAlerting], "--alertmanager-url") || miss[acceptance.ACSpec01] != "" {
		t.Errorf("missing %v", miss)
	}
}

// The JSON of a check report reads back with each check's figures under
// its key (the formats' bytes are pinned by TestReportGoldens).
func TestReportJSONRoundTrip(t *testing.T) {
	rep := goldenReports()["full"]
	if !rep.Failed() || rep.Errored() {
		t.Error("Failed/Errored")
	}
	var js bytes.Buffer
	if err := report.WriteChecks(&js, "json", rep); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Checks []struct {
			ID       string
			Security *acceptance.ACSpec01Result
			Latency  *LatencyResult
			Ceiling  *CeilingResult
			Alert    *AlertResult
		}
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	c := back.Checks
	if len(c) != 6 || c[0].Security == nil || len(c[0].Security.Containers) != 2 || c[2].Latency == nil || *c[2].Latency.Trials[0].DieSeconds != 0.305 ||
		c[4].Ceiling.Containers[0].Limit != 288<<20 || c[5].Alert.SilenceID != "sil-1" {
		t.Errorf("json round trip: %s", js.String())
	}
}
