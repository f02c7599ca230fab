package audit

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hy-home/hyhome/internal/acceptance"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// Metric names the exporter serves; docs/audit.md and the reference stack's
// alert rules refer to them.
const (
	MetricFindings         = "hyhome_findings"
	MetricFindingsExempted = "hyhome_findings_exempted"
	MetricWorkloads        = "hyhome_audit_workloads"
	MetricNotices          = "hyhome_audit_notices"
	MetricCheckPassed      = "hyhome_acceptance_check_passed"
	MetricCheckContainers  = "hyhome_acceptance_check_containers"
	MetricDuration         = "hyhome_audit_duration_seconds"
	MetricLastSuccess      = "hyhome_audit_last_success_timestamp_seconds"
	MetricRuns             = "hyhome_audit_runs_total"
	MetricErrors           = "hyhome_audit_errors_total"
	MetricEngineUp         = "hyhome_audit_engine_up"
	MetricEventsConnected  = "hyhome_audit_events_connected"
	MetricEventsGap        = "hyhome_audit_events_gap_seconds_total"
	MetricEvents           = "hyhome_audit_events_total"
)

// findingLabels are the labels of hyhome_findings. Exempted findings are a
// separate metric rather than an `exempted` label so that the obvious alert,
// sum(hyhome_findings{severity="error"}) > 0, cannot count them by accident.
var findingLabels = []string{"rule", "severity", "tier", "service", "container"}

var (
	descFindings = prometheus.NewDesc(MetricFindings,
		"Unexempted policy findings on the engine at the last successful audit, by rule and workload.",
		findingLabels, nil)
	descExempted = prometheus.NewDesc(MetricFindingsExempted,
		"Findings exempted by an Accepted ADR (hy-home.adr/hy-home.exempt) at the last successful audit.",
		append(append([]string(nil), findingLabels...), "adr"), nil)
	descWorkloads = prometheus.NewDesc(MetricWorkloads,
		"Workloads judged at the last successful audit, by kind (container, swarm).",
		[]string{"kind"}, nil)
	descNotices = prometheus.NewDesc(MetricNotices,
		"Notices of the last successful audit (gone containers, skipped sources), by kind.",
		[]string{"kind"}, nil)
	descCheckPassed = prometheus.NewDesc(MetricCheckPassed,
		"1 when the acceptance check passed at the last successful audit, 0 when it failed.",
		[]string{"check"}, nil)
	descCheckContainers = prometheus.NewDesc(MetricCheckContainers,
		"Containers the acceptance check judged at the last successful audit, by result (pass, fail).",
		[]string{"check", "result"}, nil)
)

// snapshotCollector serves the last successful audit's findings as one
// consistent set: a scrape never sees half of an update, and a finding that
// went away is gone from the next scrape (no stale series to reset).
type snapshotCollector struct {
	mu        sync.RWMutex
	have      bool
	findings  map[[5]string]float64
	exempted  map[[6]string]float64
	workloads map[string]float64
	notices   map[string]float64
	check     *acceptance.ACSpec01Result
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFindings, descExempted, descWorkloads, descNotices, descCheckPassed, descCheckContainers} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.have {
		return
	}
	for k, v := range c.findings {
		ch <- prometheus.MustNewConstMetric(descFindings, prometheus.GaugeValue, v, k[:]...)
	}
	for k, v := range c.exempted {
		ch <- prometheus.MustNewConstMetric(descExempted, prometheus.GaugeValue, v, k[:]...)
	}
	for k, v := range c.workloads {
		ch <- prometheus.MustNewConstMetric(descWorkloads, prometheus.GaugeValue, v, k)
	}
	for k, v := range c.notices {
		ch <- prometheus.MustNewConstMetric(descNotices, prometheus.GaugeValue, v, k)
	}
	if r := c.check; r != nil {
		pass, fail := 0, 0
		for _, l := range r.Containers {
			if l.Pass {
				pass++
			} else {
				fail++
			}
		}
		ch <- prometheus.MustNewConstMetric(descCheckPassed, prometheus.GaugeValue, b2f(r.Pass), r.ID)
		ch <- prometheus.MustNewConstMetric(descCheckContainers, prometheus.GaugeValue, float64(pass), r.ID, "pass")
		ch <- prometheus.MustNewConstMetric(descCheckContainers, prometheus.GaugeValue, float64(fail), r.ID, "fail")
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// set replaces the served snapshot.
func (c *snapshotCollector) set(snap *source.Snapshot, findings []policy.Finding, check *acceptance.ACSpec01Result) {
	bySource := make(map[string]*workload.Workload, len(snap.Workloads))
	for _, w := range snap.Workloads {
		bySource[w.Display] = w
	}
	fs := map[[5]string]float64{}
	ex := map[[6]string]float64{}
	for _, f := range findings {
		k := FindingLabelValues(f, bySource[f.Source])
		if f.Exempted {
			ex[[6]string{k[0], k[1], k[2], k[3], k[4], f.ADR}]++
		} else {
			fs[k]++
		}
	}
	wl := map[string]float64{string(workload.KindContainer): 0, string(workload.KindSwarm): 0}
	for _, w := range snap.Workloads {
		wl[string(w.Kind)]++
	}
	nt := map[string]float64{}
	for _, n := range snap.Notices {
		nt[n.Kind]++
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.have, c.findings, c.exempted, c.workloads, c.notices, c.check = true, fs, ex, wl, nt, check
}

// FindingLabelValues returns a finding's hyhome_findings label values: rule,
// severity, tier, service and container. For a container, service is its
// compose service (or Swarm service, for a task on a worker) and container
// its name; for a Swarm service, service is its name and container is empty.
// w is the workload the finding is about (nil when unknown).
func FindingLabelValues(f policy.Finding, w *workload.Workload) [5]string {
	service, ctr := f.Service, ""
	if w != nil {
		switch w.Kind {
		case workload.KindSwarm:
			service = w.Name
		default:
			ctr = w.Name
			service = w.Labels[workload.LabelComposeService]
			if service == "" {
				service = w.Labels[source.LabelSwarmServiceName]
			}
		}
	}
	return [5]string{f.Rule, f.Severity.String(), f.Tier, service, ctr}
}

// exporterMetrics are the exporter's own instruments.
type exporterMetrics struct {
	snapshot        *snapshotCollector
	duration        prometheus.Histogram
	lastSuccess     prometheus.Gauge
	runs            *prometheus.CounterVec
	errors          *prometheus.CounterVec
	engineUp        prometheus.Gauge
	eventsConnected prometheus.Gauge
	eventsGap       prometheus.Counter
	events          *prometheus.CounterVec
}

// Error stages of hyhome_audit_errors_total.
const (
	stageAudit  = "audit"  // an audit could not read the engine
	stageEvents = "events" // the event stream broke or could not be opened
)

// Triggers of hyhome_audit_runs_total.
const (
	triggerStart     = "start"
	triggerInterval  = "interval"
	triggerEvent     = "event"
	triggerReconnect = "reconnect"
)

func newExporterMetrics(reg prometheus.Registerer) (*exporterMetrics, error) {
	m := &exporterMetrics{
		snapshot: &snapshotCollector{},
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricDuration,
			Help:    "Wall time of audits (engine reads and rule evaluation), successful or not.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 1.5, 2.5, 5, 10, 30},
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricLastSuccess,
			Help: "Unix time of the last successful audit; the findings metrics describe that audit.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRuns,
			Help: "Audits started, by trigger (start, interval, event, reconnect).",
		}, []string{"trigger"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricErrors,
			Help: "Errors by stage: audit (an audit failed to read the engine), events (the event stream broke or could not be reopened).",
		}, []string{"stage"}),
		engineUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricEngineUp,
			Help: "1 when the last audit reached the engine, 0 when it failed.",
		}),
		eventsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricEventsConnected,
			Help: "1 while the Docker event stream is open; 0 during a gap, when drift is caught only by the interval.",
		}),
		eventsGap: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricEventsGap,
			Help: "Total seconds without a Docker event stream (engine restarts, lost connections), counted when the stream is restored.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricEvents,
			Help: "Docker events that triggered a re-audit, by type and action.",
		}, []string{"type", "action"}),
	}
	for _, stage := range []string{stageAudit, stageEvents} {
		m.errors.WithLabelValues(stage)
	}
	for _, t := range []string{triggerStart, triggerInterval, triggerEvent, triggerReconnect} {
		m.runs.WithLabelValues(t)
	}
	for _, c := range []prometheus.Collector{m.snapshot, m.duration, m.lastSuccess, m.runs, m.errors, m.engineUp, m.eventsConnected, m.eventsGap, m.events} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("registering audit metrics: %w (is a second exporter using the same registry?)", err)
			}
			return nil, fmt.Errorf("registering audit metrics: %w", err)
		}
	}
	return m, nil
}
