package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"github.com/hy-home/hyhome/internal/version"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/audit"
	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/promtest"
	"github.com/hy-home/hyhome/internal/testenv"
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

func TestCPUTimes(t *testing.T) {
	a, err := parseCPUTimes([]byte("cpu  100 0 100 700 100 0 0 0 50 0\ncpu0 1 2 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	// guest (50) is inside user already; idle is idle+iowait.
	if a.total != 1000 || a.busy != 200 {
		t.Errorf("%+v", a)
	}
	b := cpuTimes{busy: 200 + 80, total: 1000 + 100}
	if u := utilisation(a, b); u != 0.8 {
		t.Errorf("utilisation %v", u)
	}
	if u := utilisation(b, a); u != 0 {
		t.Errorf("backwards utilisation %v", u)
	}
	for _, bad := range []string{"", "intr 1 2", "cpu x 1 2 3"} {
		if _, err := parseCPUTimes([]byte(bad)); err == nil {
			t.Errorf("parseCPUTimes(%q) accepted", bad)
		}
	}
	if _, err := readCPUTimes("/proc/stat"); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}

// The controller on a simulated host: other work comes and goes, and the
// load's busy share adds fully (free cores) or partly (cores shared with
// that work). Utilisation must settle within 2 points of the target in a
// few control periods, and the load must step aside on a host already
// busier than the target.
func TestLoadControllerTracksOtherWork(t *testing.T) {
	const target = 0.8
	for _, efficiency := range []float64{1, 0.7} {
		duty := 0.0
		for _, other := range []float64{0.02, 0.55, 0.30, 0.65} {
			reachable := other+efficiency >= target
			var u float64
			for step := range 8 {
				u = math.Min(1, other+efficiency*duty)
				duty = nextDuty(duty, u, target)
				if reachable && step >= 5 && math.Abs(u-target) > 0.02 {
					t.Errorf("efficiency %.1f, other work %.2f: utilisation %.3f after %d periods", efficiency, other, u, step+1)
				}
			}
			if !reachable && duty != 1 {
				t.Errorf("efficiency %.1f, other work %.2f: the target is out of reach and duty stays %.2f, want all of it", efficiency, other, duty)
			}
		}
	}
	duty := 0.5
	for range 10 {
		duty = nextDuty(duty, 0.95, target)
	}
	if duty != 0 {
		t.Errorf("on a host at 95%% the load keeps duty %.2f, want 0", duty)
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
	for _, s := range []canarySpec{v.crashCanary("t1"), v.loadCanary("t2"), v.alertCanary("t3")} {
		o := v.createOptions(s)
		w := engine.Container(engine.ContainerInput{Name: o.Name, Config: o.Config, HostConfig: o.HostConfig, Networks: []string{string(o.HostConfig.NetworkMode)}, Kind: workload.KindRequest})
		fs := policy.Evaluate(&workload.Project{Name: "canary", Workloads: []*workload.Workload{w}}, &policy.Env{Registry: policy.Default})
		for _, f := range fs {
			if f.Severity >= policy.Error {
				t.Errorf("%s canary: %s: %s", s.kind, f.Rule, f.Message)
			} else {
				t.Logf("%s canary: %s %s: %s", s.kind, f.Severity, f.Rule, f.Message)
			}
		}
		if o.Config.Labels[LabelCanary] != s.kind || o.Config.Labels[LabelRun] != v.runID || o.Config.Labels["x"] != "y" || o.Config.Labels[LabelExpires] == "" {
			t.Errorf("%s canary labels %v", s.kind, o.Config.Labels)
		}
	}
	crash := v.createOptions(v.crashCanary("t1"))
	if crash.Config.Labels["hy-home.job"] != "infra" || crash.Config.Labels["hy-home.tier"] != "gateway" || crash.HostConfig.NetworkMode != "none" {
		t.Errorf("crash canary: %v %v", crash.Config.Labels, crash.HostConfig.NetworkMode)
	}
	alert := v.createOptions(v.alertCanary("t3"))
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
	rep, err := readLoadReport(&lout)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.done || len(rep.samples) < 2 || rep.ncpu < 1 {
		t.Errorf("load report %+v from\n%s", rep, lout.String())
	}
	// The counters never moved: utilisation 0, so the controller drives
	// the duty cycle up towards its ceiling.
	if last := rep.samples[len(rep.samples)-1]; last.CPU != 0 || last.Duty <= rep.samples[0].Duty {
		t.Errorf("controller did not raise the duty cycle: %+v", rep.samples)
	}
}

func ptr(f float64) *float64 { return &f }

func TestLatencyVerdicts(t *testing.T) {
	l := &LatencyResult{Trials: []Trial{
		{N: 1, LogSeconds: ptr(0.2), DieSeconds: ptr(0.3)},
		{N: 2, LogSeconds: ptr(2.4), DieSeconds: ptr(0.1)},
	}}
	if r := latencyVerdict(CheckACSpec02, l); r.Status != StatusPass {
		t.Errorf("AC-SPEC-02: %s %s", r.Status, r.Summary)
	}
	if r := latencyVerdict(CheckNFRObs01, l); r.Status != StatusFail || !strings.Contains(r.Summary, "trial 2 2.400 s") {
		t.Errorf("NFR-OBS-01: %s %s", r.Status, r.Summary)
	}
	// Exactly at the bound fails: the spec says "< 2 seconds".
	l.Trials[1].LogSeconds = ptr(2.0)
	if r := latencyVerdict(CheckNFRObs01, l); r.Status != StatusFail {
		t.Errorf("at the bound: %s", r.Status)
	}
	lost := &LatencyResult{Trials: []Trial{{N: 1, LogSeconds: ptr(0.2), Error: "no die event within 30s"}}}
	if r := latencyVerdict(CheckACSpec02, lost); r.Status != StatusFail || !strings.Contains(r.Summary, "no die event") {
		t.Errorf("lost: %s %s", r.Status, r.Summary)
	}
	if r := latencyVerdict(CheckACSpec02, &LatencyResult{Error: "image missing", errored: true}); r.Status != StatusError {
		t.Errorf("errored: %s", r.Status)
	}
	if r := latencyVerdict(CheckACSpec02, &LatencyResult{Error: "Loki down"}); r.Status != StatusFail {
		t.Errorf("loki down: %s", r.Status)
	}
}

func sampleReport() *Report {
	lat := &LatencyResult{Loki: "http://loki:3100", Query: lokiQueryFor("<token>"), Trials: []Trial{{N: 1, Container: "hyhome-verify-crash-1", LogSeconds: ptr(0.2), DieSeconds: ptr(0.3)}}}
	lat.Worst = distribution([]float64{0.3})
	return &Report{
		Tool: "hyhome", Version: "test",
		Engine: EngineInfo{Host: "unix:///var/run/docker.sock", Name: "h", ServerVersion: "20.10.24", CgroupVersion: "1", NCPU: 2, MemTotal: 8 << 30},
		Checks: []*Result{
			{ID: CheckACSpec01, Title: "Security Audit", Status: StatusPass, Summary: "all 1 labelled container(s) include no-new-privileges:true",
				Security: &audit.CheckResult{Command: audit.ACCommand, Containers: []audit.ACContainer{{Name: "loki", Tier: "infra", View: "[no-new-privileges:true]", Pass: true}}}},
			{ID: CheckNFRObs01, Title: "Latency", Status: StatusFail, Summary: "1 of 1 trial(s) at or over 2s", Latency: lat},
			{ID: CheckACSpec03, Title: "Resource Ceiling", Status: StatusError, Summary: "canary image missing", Warnings: []string{"w <&>"},
				Ceiling: &CeilingResult{Source: "engine", Containers: []MemContainer{{Name: "loki", Limit: 288 << 20, MaxUsage: 100 << 20, Headroom: 188 << 20, Samples: 3, Pass: true}}}},
			{ID: CheckAlerting, Title: "Alerting", Status: StatusSkip, Summary: "no Alertmanager URL"},
		},
		Notices: []string{"removed expired canary x"},
	}
}

func TestReportFormats(t *testing.T) {
	rep := sampleReport()
	if !rep.Failed() || !rep.Errored() {
		t.Error("Failed/Errored")
	}
	var text bytes.Buffer
	if err := Formats["text"](&text, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"AC-SPEC-01  PASS   Security Audit: all 1 labelled container(s)",
		"NFR-OBS-01  FAIL   Latency:",
		"1      hyhome-verify-crash-1  0.200 s   0.300 s",
		"PASS  loki       288.0 MiB  100.0 MiB",
		"warning: w <&>",
		"ALERTING    SKIP   Alerting: no Alertmanager URL",
		"notice: removed expired canary x",
		"verify: 4 checks: 1 passed, 1 failed, 1 could not run, 1 skipped",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	for _, line := range strings.Split(text.String(), "\n") {
		if strings.TrimRight(line, " ") != line {
			t.Errorf("trailing blanks: %q", line)
		}
	}

	var js bytes.Buffer
	if err := Formats["json"](&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Checks) != 4 || back.Checks[1].Latency.Trials[0].DieSeconds == nil || *back.Checks[1].Latency.Trials[0].DieSeconds != 0.3 || back.Checks[2].Ceiling.Containers[0].Limit != 288<<20 {
		t.Errorf("json round trip: %s", js.String())
	}

	var ju bytes.Buffer
	if err := Formats["junit"](&ju, rep); err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
	}
	if err := xml.Unmarshal(ju.Bytes(), &suite); err != nil {
		t.Fatal(err)
	}
	if suite.Tests != 4 || suite.Failures != 1 || suite.Errors != 1 || suite.Skipped != 1 {
		t.Errorf("junit %+v:\n%s", suite, ju.String())
	}

	var md bytes.Buffer
	if err := Formats["markdown"](&md, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| NFR-OBS-01 Latency | **FAIL** |") || !strings.Contains(md.String(), "## AC-SPEC-03 Resource Ceiling: ERROR") || strings.Contains(md.String(), "## ALERTING") {
		t.Errorf("markdown:\n%s", md.String())
	}
}

func TestSlackReceiver(t *testing.T) {
	s, err := startSlackReceiver("127.0.0.1:0", time.Now, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	post := func(body string) int {
		resp, err := http.Post("http://"+s.addr+"/services/T/B/x", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("not json"); code != http.StatusBadRequest {
		t.Errorf("bad payload: %d", code)
	}
	post(`{"attachments":[{"title":"[FIRING:1] HyHomeServiceMissing: other on h","text":"x"}]}`)
	post(`{"attachments":[{"title":"[FIRING:1] HyHomeServiceMissing: svc-1 on h","text":"*Service:* svc-1"}]}`)
	post(`{"text":"[RESOLVED] HyHomeServiceMissing: svc-1 on h"}`)
	if _, m, err := s.await(context.Background(), testenv.Hang, "svc-1", "firing"); err != nil || !strings.HasPrefix(m.title, "[FIRING:1]") {
		t.Errorf("firing: %v %+v", err, m)
	}
	if _, m, err := s.await(context.Background(), testenv.Hang, "svc-1", "resolved"); err != nil || m.status != "resolved" {
		t.Errorf("resolved: %v %+v", err, m)
	}
	if _, _, err := s.await(context.Background(), 100*time.Millisecond, "svc-2", "firing"); err == nil || !strings.Contains(err.Error(), "3 other message(s)") {
		t.Errorf("absent: %v", err)
	}
}
