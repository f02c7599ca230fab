package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hy-home/hyhome/internal/audit"
	"github.com/hy-home/hyhome/internal/report"
)

// Status is a check's verdict.
type Status string

// Verdicts. ERROR is a check that could not run on a host where it should
// (the canary image is missing, a query failed); SKIP is a check whose inputs
// were not given (no --loki-url).
const (
	StatusPass  Status = "PASS"
	StatusFail  Status = "FAIL"
	StatusSkip  Status = "SKIP"
	StatusError Status = "ERROR"
)

// EngineInfo is the engine the checks ran against.
type EngineInfo struct {
	Host          string `json:"host"`
	Name          string `json:"name"`
	ServerVersion string `json:"server_version"`
	CgroupVersion string `json:"cgroup_version"`
	NCPU          int    `json:"ncpu"`
	MemTotal      int64  `json:"mem_total_bytes"`
	// Clock says how engine timestamps were related to verify's clock.
	Clock string `json:"clock"`

	clock clockInfo
}

// Report is the outcome of a run.
type Report struct {
	Tool            string     `json:"tool"`
	Version         string     `json:"version"`
	Engine          EngineInfo `json:"engine"`
	Started         time.Time  `json:"started"`
	DurationSeconds float64    `json:"duration_seconds"`
	Checks          []*Result  `json:"checks"`
	// Notices are things the operator should know that belong to no check:
	// expired canaries of earlier runs removed, a canary that could not be.
	Notices []string `json:"notices,omitempty"`
}

// Result is one check's verdict with its measured figures.
type Result struct {
	ID              string   `json:"id"`
	Title           string   `json:"title"`
	Requirement     string   `json:"requirement"`
	Status          Status   `json:"status"`
	Summary         string   `json:"summary"`
	Warnings        []string `json:"warnings,omitempty"`
	DurationSeconds float64  `json:"duration_seconds"`

	// At most one of these, by check.
	Security *audit.CheckResult `json:"security,omitempty"` // AC-SPEC-01
	Latency  *LatencyResult     `json:"latency,omitempty"`  // AC-SPEC-02, NFR-OBS-01
	Idle     *IdleResult        `json:"idle,omitempty"`     // NFR-RES-01
	Ceiling  *CeilingResult     `json:"ceiling,omitempty"`  // AC-SPEC-03
	Alert    *AlertResult       `json:"alert,omitempty"`    // ALERTING
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return r.count(StatusFail) > 0 }

// Errored reports whether any check could not run.
func (r *Report) Errored() bool { return r.count(StatusError) > 0 }

func (r *Report) count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Distribution summarises latencies in seconds. Percentiles are nearest-rank:
// with five trials p95 is the slowest one, never an interpolation below it.
type Distribution struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_seconds"`
	P50  float64 `json:"p50_seconds"`
	P95  float64 `json:"p95_seconds"`
	Max  float64 `json:"max_seconds"`
	Mean float64 `json:"mean_seconds"`
}

// Trial is one crash canary.
type Trial struct {
	N         int    `json:"n"`
	Token     string `json:"token"`
	Container string `json:"container"`
	// LineAt and DiedAt are the engine's timestamps of the log line and of
	// the die event, on verify's clock.
	LineAt time.Time `json:"line_at,omitzero"`
	DiedAt time.Time `json:"died_at,omitzero"`
	// LogSeconds and DieSeconds are from the event to the first Loki answer
	// that contained it; nil when it was not found within the trial timeout.
	LogSeconds *float64 `json:"log_seconds"`
	DieSeconds *float64 `json:"die_seconds"`
	// Gateway is true when the trial also sent a request through the
	// gateway (Config.GatewayURL); GatewayStatus is the status it answered
	// (0 when it could not be sent) and GatewaySeconds the time from sending
	// it to the first Loki answer containing the gateway's access log line
	// of it (nil when not found).
	Gateway        bool     `json:"gateway,omitempty"`
	GatewayStatus  int      `json:"gateway_status,omitempty"`
	GatewaySeconds *float64 `json:"gateway_seconds,omitempty"`
	// Queries is how many query_range requests the trial made.
	Queries int    `json:"queries"`
	Error   string `json:"error,omitempty"`
}

// worst is the trial's latency for the verdicts: its slowest item, or nil
// when any was never found.
func (t *Trial) worst() *float64 {
	if t.LogSeconds == nil || t.DieSeconds == nil || (t.Gateway && t.GatewaySeconds == nil) {
		return nil
	}
	w := max(*t.LogSeconds, *t.DieSeconds)
	if t.Gateway {
		w = max(w, *t.GatewaySeconds)
	}
	return &w
}

// LatencyResult is the trials AC-SPEC-02 and NFR-OBS-01 share.
type LatencyResult struct {
	Loki                string  `json:"loki"`
	Query               string  `json:"query"`
	PollIntervalSeconds float64 `json:"poll_interval_seconds"`
	TimeoutSeconds      float64 `json:"trial_timeout_seconds"`
	Trials              []Trial `json:"trials"`
	// Gateway is the URL the trials' gateway requests went to ("" when none).
	Gateway    string       `json:"gateway,omitempty"`
	Log        Distribution `json:"log_line"`
	Die        Distribution `json:"die_event"`
	GatewayLog Distribution `json:"gateway_access_log,omitzero"`
	Worst      Distribution `json:"worst"`
	// Error is set when no trial could be run at all.
	Error string `json:"error,omitempty"`
	// Status is the trials' ERROR when they could not run (for both checks).
	errored bool
}

// MemContainer is one infra container's memory figures.
type MemContainer struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Service string `json:"service,omitempty"`
	// Limit is the engine's memory limit (HostConfig.Memory); 0 is none.
	Limit   int64 `json:"limit_bytes"`
	Samples int   `json:"samples"`
	// MaxUsage and MaxWorkingSet are the largest values seen: usage as
	// container_memory_usage_bytes (page cache included), working set as
	// container_memory_working_set_bytes (usage minus inactive file pages).
	MaxUsage      uint64 `json:"max_usage_bytes"`
	MaxWorkingSet uint64 `json:"max_working_set_bytes"`
	// Headroom is Limit minus MaxUsage (negative: above the limit).
	Headroom int64 `json:"headroom_bytes"`
	// OOMEvents counts the kernel's OOM kills in the container during the window.
	OOMEvents int `json:"oom_events"`
	// Failcnt is cgroup v1's count of times usage hit the limit (engine path).
	Failcnt uint64 `json:"failcnt,omitempty"`
	Pass    bool   `json:"pass"`
	Reason  string `json:"reason,omitempty"`
	Warning string `json:"warning,omitempty"`
}

// IdleResult is NFR-RES-01's measurement.
type IdleResult struct {
	Source     string         `json:"source"`
	HostMemory int64          `json:"host_memory_bytes"`
	WorkingSet uint64         `json:"working_set_bytes"`
	Share      float64        `json:"share"`
	Bound      float64        `json:"bound"`
	Containers []MemContainer `json:"containers"`
}

// LoadResult is the CPU load AC-SPEC-03 held.
type LoadResult struct {
	Target          float64      `json:"target"`
	Tolerance       float64      `json:"tolerance"`
	Baseline        float64      `json:"baseline"`
	Mean            float64      `json:"mean"`
	Min             float64      `json:"min"`
	Max             float64      `json:"max"`
	NCPU            int          `json:"ncpu"`
	DurationSeconds float64      `json:"duration_seconds"`
	Start           time.Time    `json:"start"`
	End             time.Time    `json:"end"`
	Samples         []LoadSample `json:"samples"`
}

// CeilingResult is AC-SPEC-03's measurement.
type CeilingResult struct {
	Source     string         `json:"source"`
	Load       LoadResult     `json:"load"`
	Containers []MemContainer `json:"containers"`
}

// AlertResult is the alert path's measurement.
type AlertResult struct {
	// Target is what was taken down: "canary" (verify's own infra canary,
	// killed) or "service" (a running service of the stack, stopped).
	Target       string `json:"target"`
	Service      string `json:"service"`
	Container    string `json:"container"`
	Network      string `json:"network"`
	Alertmanager string `json:"alertmanager"`
	Prometheus   string `json:"prometheus"`
	// Alertname is the alert that fired for the service.
	Alertname string `json:"alertname,omitempty"`
	// Receivers are where Alertmanager routed it; SlackReceivers those of
	// them with slack_configs.
	Receivers      []string `json:"receivers,omitempty"`
	SlackReceivers []string `json:"slack_receivers,omitempty"`
	// Each figure is seconds from the step that caused it; nil when it did
	// not happen within the alert timeout.
	ScrapedSeconds       *float64 `json:"scraped_seconds"`        // canary started → Prometheus scrapes it and remembers the service
	FiringSeconds        *float64 `json:"firing_seconds"`         // canary killed → alert active in Alertmanager
	SlackFiringSeconds   *float64 `json:"slack_firing_seconds"`   // canary killed → Slack webhook received the firing notification
	ResolvedSeconds      *float64 `json:"resolved_seconds"`       // canary back → alert gone from Alertmanager
	SlackResolvedSeconds *float64 `json:"slack_resolved_seconds"` // canary back → Slack webhook received the resolved notification
	// SlackReceiver is the address verify listened on for the webhook.
	SlackReceiver string `json:"slack_receiver,omitempty"`
	SlackTitle    string `json:"slack_title,omitempty"`
	// SilenceID silences the removed canary's service (its absence would
	// otherwise page as HyHomeServiceMissing for days).
	SilenceID string `json:"silence_id,omitempty"`
}

// Formats maps a --format name to a writer.
var Formats = map[string]func(io.Writer, *Report) error{
	"text":     writeText,
	"json":     writeJSON,
	"junit":    writeJUnit,
	"markdown": writeMarkdown,
}

// FormatNames lists the formats, sorted.
func FormatNames() []string {
	var out []string
	for n := range Formats {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// --- text -------------------------------------------------------------------

func writeText(w io.Writer, r *Report) error {
	var b strings.Builder
	e := r.Engine
	fmt.Fprintf(&b, "hyhome verify: SPEC-SYS-01 acceptance checks\n")
	fmt.Fprintf(&b, "engine %s: %s, Docker %s, cgroup v%s, %d CPUs, %s memory\n\n", e.Host, e.Name, e.ServerVersion, e.CgroupVersion, e.NCPU, bytesHuman(e.MemTotal))
	latencyShown := false
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-10s  %-5s  %s: %s\n", c.ID, c.Status, c.Title, c.Summary)
		var d strings.Builder
		switch {
		case c.Security != nil:
			writeSecurity(&d, c.Security)
		case c.Latency != nil && !latencyShown:
			latencyShown = true
			writeLatency(&d, c.Latency)
		case c.Latency != nil:
			d.WriteString("trials above\n")
		case c.Idle != nil:
			writeIdle(&d, c.Idle)
		case c.Ceiling != nil:
			writeCeiling(&d, c.Ceiling)
		case c.Alert != nil:
			writeAlert(&d, c.Alert)
		}
		for _, wn := range c.Warnings {
			fmt.Fprintf(&d, "warning: %s\n", wn)
		}
		for _, line := range strings.Split(strings.TrimRight(d.String(), "\n"), "\n") {
			if line != "" {
				b.WriteString("    " + line + "\n")
			}
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notices {
		fmt.Fprintf(&b, "notice: %s\n", n)
	}
	fmt.Fprintf(&b, "verify: %s in %.1f s\n", r.tally(), r.DurationSeconds)
	_, err := io.WriteString(w, b.String())
	return err
}

// tally is "6 checks: 4 passed, 1 failed, 1 skipped".
func (r *Report) tally() string {
	var parts []string
	for _, s := range []struct {
		st   Status
		word string
	}{{StatusPass, "passed"}, {StatusFail, "failed"}, {StatusError, "could not run"}, {StatusSkip, "skipped"}} {
		if n := r.count(s.st); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s.word))
		}
	}
	noun := "checks"
	if len(r.Checks) == 1 {
		noun = "check"
	}
	return fmt.Sprintf("%d %s: %s", len(r.Checks), noun, strings.Join(parts, ", "))
}

// table writes tab-separated rows aligned, without trailing blanks.
func table(w io.Writer, rows [][]string) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func writeSecurity(w io.Writer, s *audit.CheckResult) {
	fmt.Fprintf(w, "%s\n", s.Command)
	rows := [][]string{}
	for _, c := range s.Containers {
		v := "PASS"
		if !c.Pass {
			v = "FAIL"
		}
		rows = append(rows, []string{v, c.Name, "tier=" + c.Tier, c.View, c.Reason})
	}
	if len(rows) > 0 {
		table(w, rows)
	}
}

func secs(p *float64) string {
	if p == nil {
		return "not found"
	}
	return fmt.Sprintf("%.3f s", *p)
}

func writeLatency(w io.Writer, l *LatencyResult) {
	fmt.Fprintf(w, "query_range %s on %s, every %s, up to %s per trial\n", l.Query, l.Loki, durHuman(l.PollIntervalSeconds), durHuman(l.TimeoutSeconds))
	if len(l.Trials) == 0 {
		return // the summary says why
	}
	if l.Error != "" {
		fmt.Fprintf(w, "stopped: %s\n", l.Error)
	}
	if l.Gateway != "" {
		fmt.Fprintf(w, "and each trial's request through the gateway %s%s<token>, its access log line timed from the request\n", l.Gateway, gatewayPathPrefix)
	}
	rows := [][]string{{"trial", "canary", "log line", "die event", "queries", ""}}
	if l.Gateway != "" {
		rows[0] = []string{"trial", "canary", "log line", "die event", "access log", "status", "queries", ""}
	}
	for _, t := range l.Trials {
		if l.Gateway != "" {
			rows = append(rows, []string{fmt.Sprint(t.N), t.Container, secs(t.LogSeconds), secs(t.DieSeconds), secs(t.GatewaySeconds), fmt.Sprint(t.GatewayStatus), fmt.Sprint(t.Queries), t.Error})
			continue
		}
		rows = append(rows, []string{fmt.Sprint(t.N), t.Container, secs(t.LogSeconds), secs(t.DieSeconds), fmt.Sprint(t.Queries), t.Error})
	}
	table(w, rows)
	dist := func(name string, d Distribution) {
		if d.N > 0 {
			fmt.Fprintf(w, "%-10s p50 %.3f s  p95 %.3f s  max %.3f s  (min %.3f s, mean %.3f s, n=%d)\n", name, d.P50, d.P95, d.Max, d.Min, d.Mean, d.N)
		}
	}
	dist("log line", l.Log)
	dist("die event", l.Die)
	dist("access log", l.GatewayLog)
	dist("worst", l.Worst)
}

func writeIdle(w io.Writer, m *IdleResult) {
	fmt.Fprintf(w, "source: %s\n", m.Source)
	rows := [][]string{{"container", "working set", "usage", "limit", "samples", ""}}
	for _, c := range m.Containers {
		rows = append(rows, []string{c.Name, bytesHuman(int64(c.MaxWorkingSet)), bytesHuman(int64(c.MaxUsage)), limitHuman(c.Limit), fmt.Sprint(c.Samples), c.Reason})
	}
	table(w, rows)
	fmt.Fprintf(w, "total working set %s of %s host memory = %.2f%% (bound %.0f%%)\n", bytesHuman(int64(m.WorkingSet)), bytesHuman(m.HostMemory), 100*m.Share, 100*m.Bound)
}

func writeCeiling(w io.Writer, c *CeilingResult) {
	l := c.Load
	if len(l.Samples) > 0 {
		fmt.Fprintf(w, "load: host CPU mean %.1f%% (min %.1f%%, max %.1f%%) over %s on %d CPUs; target %.0f%%, baseline before the load %.1f%%\n",
			100*l.Mean, 100*l.Min, 100*l.Max, durHuman(l.DurationSeconds), l.NCPU, 100*l.Target, 100*l.Baseline)
	}
	fmt.Fprintf(w, "memory source: %s\n", c.Source)
	if len(c.Containers) == 0 {
		return
	}
	rows := [][]string{{"", "container", "limit", "max usage", "max working set", "headroom", "samples", ""}}
	for _, m := range c.Containers {
		v := "PASS"
		if !m.Pass {
			v = "FAIL"
		}
		note := m.Reason
		if note == "" {
			note = m.Warning
		}
		head := "-"
		switch {
		case m.OOMEvents > 0:
			head = "none: OOM-killed"
		case m.Limit > 0 && m.Samples > 0:
			head = fmt.Sprintf("%s (%.0f%%)", bytesHuman(m.Headroom), 100*float64(m.Headroom)/float64(m.Limit))
		}
		rows = append(rows, []string{v, m.Name, limitHuman(m.Limit), bytesHuman(int64(m.MaxUsage)), bytesHuman(int64(m.MaxWorkingSet)), head, fmt.Sprint(m.Samples), note})
	}
	table(w, rows)
}

func writeAlert(w io.Writer, a *AlertResult) {
	started, down, back := "the canary started", "the canary was killed", "the canary came back"
	if a.Target == alertTargetService {
		fmt.Fprintf(w, "the stack's service %s (container %s) stopped, then started again; Prometheus %s, Alertmanager %s\n", a.Service, a.Container, a.Prometheus, a.Alertmanager)
		started, down, back = "verify began", "the service was stopped", "the service was started"
	} else {
		fmt.Fprintf(w, "canary %s (service %s) on network %s; Prometheus %s, Alertmanager %s\n", a.Container, a.Service, a.Network, a.Prometheus, a.Alertmanager)
	}
	step := func(name string, p *float64, from string) {
		if p != nil {
			fmt.Fprintf(w, "%-22s %7.1f s after %s\n", name, *p, from)
		} else {
			fmt.Fprintf(w, "%-22s %7s\n", name, "-")
		}
	}
	step("scraped and recorded", a.ScrapedSeconds, started)
	step("alert firing", a.FiringSeconds, down)
	if a.SlackReceiver != "" {
		step("Slack: firing", a.SlackFiringSeconds, down)
	}
	step("alert resolved", a.ResolvedSeconds, back)
	if a.SlackReceiver != "" {
		step("Slack: resolved", a.SlackResolvedSeconds, back)
	}
	if a.Alertname != "" {
		fmt.Fprintf(w, "alert %s, routed to %s", a.Alertname, strings.Join(a.Receivers, ", "))
		if len(a.SlackReceivers) > 0 {
			fmt.Fprintf(w, " (Slack: %s)", strings.Join(a.SlackReceivers, ", "))
		}
		fmt.Fprintln(w)
	}
	if a.SlackTitle != "" {
		fmt.Fprintf(w, "Slack message: %s\n", a.SlackTitle)
	}
	if a.SilenceID != "" {
		fmt.Fprintf(w, "the removed canary's service is silenced (silence %s)\n", a.SilenceID)
	}
}

func bytesHuman(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	var s string
	switch {
	case n >= 1<<30:
		s = fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		s = fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		s = fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		s = fmt.Sprintf("%d B", n)
	}
	if neg {
		return "-" + s
	}
	return s
}

func limitHuman(n int64) string {
	if n <= 0 {
		return "none"
	}
	return bytesHuman(n)
}

func durHuman(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// --- json ----------------------------------------------------------------------

func writeJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// --- junit ---------------------------------------------------------------------

func writeJUnit(w io.Writer, r *Report) error {
	s := report.JUnitSuite{Name: "hyhome verify (SPEC-SYS-01)", Time: r.DurationSeconds}
	for _, c := range r.Checks {
		var detail bytes.Buffer
		one := *r
		one.Checks = []*Result{c}
		one.Notices = nil
		_ = writeText(&detail, &one)
		tc := report.JUnitCase{Name: c.ID + " " + c.Title, Classname: "SPEC-SYS-01", Time: c.DurationSeconds, Output: detail.String()}
		m := &report.JUnitMessage{Message: c.Summary, Body: strings.Join(c.Warnings, "\n")}
		switch c.Status {
		case StatusFail:
			tc.Failure = m
			s.Failures++
		case StatusError:
			tc.Error = m
			s.Errors++
		case StatusSkip:
			tc.Skipped = m
			s.Skipped++
		}
		s.Cases = append(s.Cases, tc)
	}
	s.Tests = len(s.Cases)
	return report.WriteJUnit(w, s)
}

// --- markdown ------------------------------------------------------------------

func writeMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	e := r.Engine
	fmt.Fprintf(&b, "# hyhome verify: SPEC-SYS-01 acceptance checks\n\n")
	fmt.Fprintf(&b, "Engine `%s`: %s, Docker %s, cgroup v%s, %d CPUs, %s memory. %s.\n\n", e.Host, mdCell(e.Name), e.ServerVersion, e.CgroupVersion, e.NCPU, bytesHuman(e.MemTotal), r.tally())
	b.WriteString("| check | result | summary |\n|---|---|---|\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "| %s %s | **%s** | %s |\n", c.ID, mdCell(c.Title), c.Status, mdCell(c.Summary))
	}
	b.WriteString("\n")
	for _, c := range r.Checks {
		if c.Status == StatusSkip {
			continue
		}
		var d bytes.Buffer
		one := *r
		one.Checks = []*Result{c}
		one.Notices = nil
		_ = writeText(&d, &one)
		lines := strings.Split(strings.TrimRight(d.String(), "\n"), "\n")
		// Drop the engine header and the tally: the table above has them.
		if len(lines) > 4 {
			lines = lines[3 : len(lines)-1]
		}
		fmt.Fprintf(&b, "## %s %s: %s\n\n```\n%s\n```\n\n", c.ID, c.Title, c.Status, strings.TrimRight(strings.Join(lines, "\n"), "\n"))
	}
	for _, n := range r.Notices {
		fmt.Fprintf(&b, "- notice: %s\n", mdCell(n))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdCell(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }
