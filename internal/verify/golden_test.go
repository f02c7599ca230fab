package verify

import (
	"bytes"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/acceptance"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/testenv"
	"github.com/hy-home/hyhome/internal/verify/load"
)

var update = flag.Bool("update", false, "rewrite testdata/report from what the formats produce")

// goldenReports are reports with every kind of figure a check records, so
// that every format's output is pinned byte for byte.
func goldenReports() map[string]*report.CheckReport {
	lat := &LatencyResult{
		Loki: "http://loki:3100", Query: lokiQueryFor("<token>"), PollIntervalSeconds: 0.1, TimeoutSeconds: 30,
		Gateway: "https://127.0.0.1:8443",
		Trials: []Trial{
			{N: 1, Token: "aaa", Container: "hyhome-verify-crash-aaa", LogSeconds: ptr(0.21), DieSeconds: ptr(0.305), Gateway: true, GatewayStatus: 404, GatewaySeconds: ptr(0.4), Queries: 3},
			{N: 2, Token: "bbb", Container: "hyhome-verify-crash-bbb", LogSeconds: ptr(2.5), DieSeconds: nil, Gateway: true, GatewayStatus: 404, Queries: 300, Error: "no die event within 30s"},
		},
		Error: "a note | with a pipe",
	}
	lat.Log = distribution([]float64{0.21, 2.5})
	lat.Die = distribution([]float64{0.305})
	lat.GatewayLog = distribution([]float64{0.4})
	lat.Worst = distribution([]float64{0.4})
	started := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	full := &report.CheckReport{
		Tool: "hyhome", Command: "verify", Spec: "SPEC-SYS-01", Version: "0.9.0", Started: started, DurationSeconds: 93.25,
		Engine: report.CheckEngine{Host: "unix:///var/run/docker.sock", Name: "host|1", ServerVersion: "20.10.24", CgroupVersion: "2", NCPU: 2, MemTotal: 8 << 30, Clock: "same host (unix socket): engine timestamps compared as they are"},
		Checks: []*report.CheckResult{
			{ID: acceptance.ACSpec01, Title: "Security Audit", Requirement: "AC-SPEC-01 (SPEC-SYS-01 §6 Security Audit): docker inspect", Status: report.CheckFail, Summary: "1 of 2 labelled container(s) lack no-new-privileges:true", DurationSeconds: 0.05,
				Detail: &acceptance.ACSpec01Result{ID: acceptance.ACSpec01, Title: "Security Audit", Requirement: "SPEC-SYS-01 §6 AC-SPEC-01", Command: acceptance.ACCommand, Summary: "1 of 2 labelled container(s) lack no-new-privileges:true",
					Containers: []acceptance.ACContainer{
						{Name: "loki", ID: "0123456789abcdef", Tier: "infra", Source: "container loki (0123456789ab)", View: "[no-new-privileges:true]", Includes: true, Effective: true, Pass: true},
						{Name: "db", ID: "fedcba9876543210", Tier: "data", Source: "container db (fedcba987654)", View: "[]", Reason: "no-new-privileges:true missing"},
					},
					Notices: []source.Notice{{Kind: source.NoticeGone, Subject: "container x (abc)", Message: "removed between list and inspect; not audited"}}}},
			{ID: CheckNFRRes01, Title: "Density", Status: report.CheckPass, Summary: "the infra tier's working set is small", DurationSeconds: 2,
				Detail: &IdleResult{Source: "engine stats API (cgroup v2)", HostMemory: 8 << 30, WorkingSet: 300 << 20, Share: 0.0366, Bound: 0.2,
					Containers: []MemContainer{{Name: "loki", ID: "0123456789abcdef", Service: "loki", Limit: 288 << 20, Samples: 3, MaxUsage: 120 << 20, MaxWorkingSet: 100 << 20, Pass: true},
						{Name: "prom", ID: "1111", Limit: 0, Samples: 0, Reason: "no sample"}}}},
			{ID: CheckACSpec02, Title: "Observability Integrity", Status: report.CheckPass, Summary: "2 of 2 trials", Warnings: []string{"a note | with a pipe"}, DurationSeconds: 12.5, Detail: lat},
			{ID: CheckNFRObs01, Title: "Latency", Status: report.CheckFail, Summary: "1 of 2 trial(s) at or over 2s", DurationSeconds: 0, Detail: lat},
			{ID: CheckACSpec03, Title: "Resource Ceiling", Status: report.CheckFail, Summary: "host CPU 79.0% mean", Warnings: []string{"loki: working set <&> near"}, DurationSeconds: 31,
				Detail: &CeilingResult{Source: "engine stats API, every 1s during the window",
					Load: LoadResult{Target: 0.8, Tolerance: 0.05, Baseline: 0.031, Mean: 0.79, Min: 0.7, Max: 0.85, NCPU: 2, DurationSeconds: 30, Start: started, End: started.Add(30 * time.Second),
						Samples: []load.Sample{{At: started.Add(time.Second), CPU: 0.7, Duty: 0.6}, {At: started.Add(2 * time.Second), CPU: 0.85, Duty: 0.7}}},
					Containers: []MemContainer{
						{Name: "loki", ID: "0123456789abcdef", Limit: 288 << 20, Samples: 30, MaxUsage: 270 << 20, MaxWorkingSet: 265 << 20, Headroom: 18 << 20, Pass: true, Warning: "working set within 10% of its limit", Failcnt: 2},
						{Name: "prom", ID: "1111", Limit: 512 << 20, Samples: 30, MaxUsage: 512 << 20, OOMEvents: 1, Reason: "OOM-killed 1 time(s) in the window: it reached its limit"},
						{Name: "nolimit", ID: "2222", Samples: 30, MaxUsage: 5 << 10, MaxWorkingSet: 900, Reason: "no memory limit: nothing bounds it"},
					}}},
			{ID: CheckAlerting, Title: "Alerting", Requirement: "OPS-ALERTING", Status: report.CheckPass, Summary: "HyHomeServiceDown for hyhome-verify-x active", DurationSeconds: 80,
				Detail: &AlertResult{Target: alertTargetCanary, Service: "hyhome-verify-x", Container: "hyhome-verify-alert-x", Network: "infra_net", Alertmanager: "http://am:9093", Prometheus: "http://prom:9090",
					Alertname: "HyHomeServiceDown", Receivers: []string{"slack-infra", "null"}, SlackReceivers: []string{"slack-infra"},
					ScrapedSeconds: ptr(15.5), FiringSeconds: ptr(45.25), SlackFiringSeconds: ptr(46), ResolvedSeconds: ptr(20), SlackResolvedSeconds: nil,
					SlackReceiver: "127.0.0.1:9999", SlackTitle: "[FIRING:1] HyHomeServiceDown: hyhome-verify-x", SilenceID: "sil-1"}},
		},
		Notices: []string{"removed expired canary hyhome-verify-crash-old left by an earlier run", "a | b"},
	}
	partial := &report.CheckReport{
		Tool: "hyhome", Command: "verify", Spec: "SPEC-SYS-01", Version: "dev", Started: started, DurationSeconds: 1,
		Engine: report.CheckEngine{Host: "tcp://10.0.0.1:2375", Name: "remote", ServerVersion: "24.0.0", CgroupVersion: "1", NCPU: 4, MemTotal: 900, Clock: "remote engine; its clock is +1.0 ms from this host's (±0.2 ms), corrected"},
		Checks: []*report.CheckResult{
			{ID: acceptance.ACSpec01, Title: "Security Audit", Status: report.CheckFail, Summary: "no running container carries hy-home.tier",
				Detail: &acceptance.ACSpec01Result{ID: acceptance.ACSpec01, Command: acceptance.ACCommand}},
			{ID: CheckACSpec02, Title: "Observability Integrity", Status: report.CheckSkip, Summary: "no Loki URL (--loki-url): the canary's logs cannot be looked for"},
			{ID: CheckNFRObs01, Title: "Latency", Status: report.CheckError, Summary: "canary image missing",
				Detail: &LatencyResult{Loki: "http://loki:3100", Query: lokiQueryFor("<token>"), PollIntervalSeconds: 0.25, TimeoutSeconds: 5, Error: "canary image missing", errored: true}},
			{ID: CheckACSpec03, Title: "Resource Ceiling", Status: report.CheckError, Summary: "interrupted", Detail: &CeilingResult{Source: "Prometheus http://p"}},
			{ID: CheckAlerting, Title: "Alerting", Status: report.CheckFail, Summary: "no alert",
				Detail: &AlertResult{Target: alertTargetService, Service: "node-exporter", Container: "hyhome-node-exporter-1", Alertmanager: "http://am:9093", Prometheus: "http://prom:9090", ScrapedSeconds: ptr(1)}},
		},
	}
	one := &report.CheckReport{Tool: "hyhome", Command: "verify", Spec: "SPEC-SYS-01", Version: "dev", Started: started, Engine: partial.Engine,
		Checks: []*report.CheckResult{{ID: CheckNFRRes01, Title: "Density", Status: report.CheckPass, Summary: "fine",
			Detail: &IdleResult{Source: "engine", HostMemory: 1 << 30, WorkingSet: 1 << 20, Share: 0.001, Bound: 0.2, Containers: []MemContainer{{Name: "a", Samples: 1, MaxWorkingSet: 1 << 20, MaxUsage: 2 << 20, Pass: true}}}}}}
	return map[string]*report.CheckReport{"full": full, "partial": partial, "one": one}
}

// TestReportGoldens pins every format's output (go test -run
// TestReportGoldens -update rewrites them).
func TestReportGoldens(t *testing.T) {
	ext := map[string]string{"text": "txt", "json": "json", "junit": "xml", "markdown": "md"}
	for name, rep := range goldenReports() {
		for format, e := range ext {
			var b bytes.Buffer
			if err := report.CheckFormats[format](&b, rep); err != nil {
				t.Fatalf("%s %s: %v", name, format, err)
			}
			testenv.Golden(t, filepath.Join("testdata", "report", name+"."+e), b.Bytes(), *update)
		}
	}
}
