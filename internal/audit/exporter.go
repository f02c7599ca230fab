package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hy-home/hyhome/internal/acceptance"
	"github.com/hy-home/hyhome/internal/clock"
	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
)

// Clock is the exporter's time source (the wall clock in production, a fake
// in tests, so that debounce, interval and backoff run without sleeping).
type Clock = clock.Clock

// Timer is the part of *time.Timer the exporter uses.
type Timer = clock.Timer

// EventSource is the engine's event stream; *client.Client satisfies it.
type EventSource interface {
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
}

// Defaults for ExporterConfig.
const (
	DefaultInterval   = 60 * time.Second
	DefaultDebounce   = time.Second
	DefaultTimeout    = 30 * time.Second
	DefaultBackoffMin = 500 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
)

// ExporterConfig configures an Exporter.
type ExporterConfig struct {
	Source    *source.Source
	Selection source.Selection
	// Env returns the policy environment for one audit. It is called for
	// every audit so that ADR files edited while the exporter runs count.
	Env func() *policy.Env
	// Events is the engine's event stream (usually the same client).
	Events EventSource
	// Interval re-audits even without events, catching what events do not
	// announce (a changed ADR) and anything missed; default 60s.
	Interval time.Duration
	// Debounce coalesces a burst of events (a `docker compose up` of twenty
	// services) into one audit, started this long after the first; default 1s.
	Debounce time.Duration
	// Timeout bounds one audit; default 30s.
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the wait between attempts to reopen a
	// broken event stream (doubling); defaults 500ms and 30s.
	BackoffMin, BackoffMax time.Duration
	Registerer             prometheus.Registerer
	Logger                 *slog.Logger
	Clock                  Clock
}

// Exporter keeps re-auditing the engine and serves the outcome as
// Prometheus metrics. It owns its goroutines; Run returns when its context
// is cancelled.
type Exporter struct {
	cfg ExporterConfig
	m   *exporterMetrics

	mu     sync.Mutex
	status Status
}

// Status is the exporter's health, served on /healthz.
type Status struct {
	Healthy     bool      `json:"healthy"`
	Audits      int       `json:"audits"`
	LastAudit   time.Time `json:"last_audit,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Findings    int       `json:"findings"`
	Workloads   int       `json:"workloads"`
	EventStream bool      `json:"event_stream"`
}

// NewExporter validates cfg and registers the exporter's metrics.
func NewExporter(cfg ExporterConfig) (*Exporter, error) {
	switch {
	case cfg.Source == nil:
		return nil, errors.New("audit exporter: no source")
	case cfg.Events == nil:
		return nil, errors.New("audit exporter: no event source")
	case cfg.Registerer == nil:
		return nil, errors.New("audit exporter: no metrics registerer")
	case cfg.Interval < 0 || cfg.Debounce < 0:
		return nil, errors.New("audit exporter: negative interval or debounce")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(DefaultBackoffMax, cfg.BackoffMin)
	}
	if cfg.Env == nil {
		cfg.Env = func() *policy.Env { return &policy.Env{} }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	m, err := newExporterMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Exporter{cfg: cfg, m: m}, nil
}

// Run audits once, then on events and on the interval, until ctx is done.
func (e *Exporter) Run(ctx context.Context) {
	triggers := make(chan string, 1)
	// Taken before the start audit begins, so that the first event stream
	// replays whatever changed while that audit read the engine.
	started := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { e.watch(ctx, triggers, started) })
	e.schedule(ctx, triggers, e.auditOnce)
	wg.Wait()
}

// schedule runs audit at start, after each burst of triggers (debounced) and
// whenever Interval passes without an audit. Audits run one at a time on
// this goroutine; triggers that arrive meanwhile wait in the channel and
// cause one follow-up audit, since the running one may have missed them.
func (e *Exporter) schedule(ctx context.Context, triggers <-chan string, audit func(context.Context, string)) {
	clk := e.cfg.Clock
	audit(ctx, triggerStart)
	interval := clk.NewTimer(e.cfg.Interval)
	var (
		debounce  Timer
		debounceC <-chan time.Time
		reason    string
	)
	defer func() {
		interval.Stop()
		if debounce != nil {
			debounce.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-triggers:
			// The first trigger of a burst starts the timer; later ones
			// join it without pushing it back, so a steady stream of
			// events still gets audited every Debounce.
			if debounce == nil {
				debounce = clk.NewTimer(e.cfg.Debounce)
				debounceC = debounce.C()
				reason = r
			} else if r == triggerReconnect {
				reason = r
			}
		case <-debounceC:
			debounce, debounceC = nil, nil
			audit(ctx, reason)
			interval.Stop()
			interval = clk.NewTimer(e.cfg.Interval)
		case <-interval.C():
			audit(ctx, triggerInterval)
			interval = clk.NewTimer(e.cfg.Interval)
		}
	}
}

// auditOnce reads the engine, evaluates the rules and AC-SPEC-01, and
// publishes the result. On failure the previous result stays published:
// hyhome_audit_last_success_timestamp_seconds says how old it is, and
// hyhome_audit_errors_total{stage="audit"} that something is wrong.
func (e *Exporter) auditOnce(ctx context.Context, trigger string) {
	if ctx.Err() != nil {
		return
	}
	e.m.runs.WithLabelValues(trigger).Inc()
	start := e.cfg.Clock.Now()
	actx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	res, err := Run(actx, e.cfg.Source, e.cfg.Selection, e.cfg.Env())
	end := e.cfg.Clock.Now()
	e.m.duration.Observe(end.Sub(start).Seconds())

	e.mu.Lock()
	defer e.mu.Unlock()
	e.status.Audits++
	e.status.LastAudit = end
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not an engine failure
		}
		e.m.errors.WithLabelValues(stageAudit).Inc()
		e.m.engineUp.Set(0)
		e.status.Healthy = false
		e.status.LastError = err.Error()
		e.cfg.Logger.Error("audit failed", "trigger", trigger, "err", err)
		return
	}
	check := acceptance.CheckACSpec01(res.Snapshot)
	e.m.snapshot.set(res.Snapshot, res.Findings, check)
	e.m.engineUp.Set(1)
	e.m.lastSuccess.Set(float64(end.UnixNano()) / 1e9)
	sum := policy.Summarize(res.Findings)
	e.status.Healthy = true
	e.status.LastSuccess = end
	e.status.LastError = ""
	e.status.Findings = sum.Errors + sum.Warnings + sum.Infos
	e.status.Workloads = len(res.Snapshot.Workloads)
	e.cfg.Logger.Info("audit",
		"trigger", trigger, "duration", end.Sub(start).Round(time.Millisecond),
		"workloads", len(res.Snapshot.Workloads), "errors", sum.Errors, "warnings", sum.Warnings,
		"exempted", sum.Exempted, "ac_spec_01", check.Pass)
	for _, n := range res.Snapshot.Notices {
		e.cfg.Logger.Debug("audit notice", "kind", n.Kind, "subject", n.Subject, "msg", n.Message)
	}
}

// Status returns the exporter's health.
func (e *Exporter) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// watchedActions are the events that can change an audit's outcome.
var watchedActions = map[events.Type]map[events.Action]bool{
	events.ContainerEventType: {events.ActionStart: true, events.ActionDie: true, events.ActionDestroy: true, events.ActionUpdate: true},
	events.ServiceEventType:   {events.ActionCreate: true, events.ActionUpdate: true, events.ActionRemove: true},
}

func eventFilters() client.Filters {
	f := client.Filters{}
	f.Add("type", string(events.ContainerEventType), string(events.ServiceEventType))
	for _, acts := range watchedActions {
		for a := range acts {
			f.Add("event", string(a))
		}
	}
	return f
}

// relevant reports whether an event should trigger a re-audit: a watched
// action, and for containers one that the selection's label filters would
// keep (so other teams' churn on a shared engine does not cost audits).
func (e *Exporter) relevant(m events.Message) bool {
	if !watchedActions[m.Type][m.Action] {
		return false
	}
	if m.Type != events.ContainerEventType {
		return true
	}
	for _, spec := range e.cfg.Selection.Filters {
		k, v, _ := strings.Cut(spec, "=")
		if k != "label" {
			continue
		}
		lk, lv, hasValue := strings.Cut(v, "=")
		got, ok := m.Actor.Attributes[lk]
		if !ok || hasValue && got != lv {
			return false
		}
	}
	return true
}

// watch follows the engine's event stream, reopening it with backoff when it
// breaks (an engine restart, a lost connection). While it is down, drift is
// caught only by the interval: the gap is exposed as
// hyhome_audit_events_connected 0, hyhome_audit_errors_total{stage="events"}
// and, once restored, hyhome_audit_events_gap_seconds_total; a full
// re-audit follows every reconnection because events were missed.
func (e *Exporter) watch(ctx context.Context, triggers chan<- string, started time.Time) {
	log := e.cfg.Logger
	clk := e.cfg.Clock
	backoff := e.cfg.BackoffMin
	var gapStart time.Time
	first := true
	// The first stream asks for events since the exporter started: the
	// engine answers GET /events' headers before it subscribes the stream
	// (moby's getEvents), so a change between the start audit's reads and
	// the subscription would otherwise reach no one, and the published
	// findings would stay stale until the next interval audit. since=
	// makes the engine replay its buffer in the same step as it subscribes.
	// started is the wall clock's, not cfg.Clock's: the engine compares
	// since with its own time (a clock ahead of the engine's replays less,
	// as before; one behind replays more, which only costs an audit).
	// Later streams need no since: every reconnection re-audits.
	send := func(r string) {
		select {
		case triggers <- r:
		default: // an audit is already pending; it will see this change too
		}
	}
	for ctx.Err() == nil {
		err := e.ping(ctx)
		var openedAt time.Time
		if err == nil {
			sctx, cancel := context.WithCancel(ctx)
			opts := client.EventsListOptions{Filters: eventFilters()}
			if first {
				opts.Since = docker.Since(started)
			}
			res := e.cfg.Events.Events(sctx, opts)
			// Events returns once the engine answered (it flushes headers
			// at once) or the request failed; a failure is already on Err.
			select {
			case err = <-res.Err:
			default:
				openedAt = clk.Now()
				e.setStream(true)
				if !gapStart.IsZero() {
					gap := openedAt.Sub(gapStart)
					e.m.eventsGap.Add(gap.Seconds())
					log.Info("event stream restored; re-auditing", "gap", gap.Round(time.Millisecond))
					gapStart = time.Time{}
					send(triggerReconnect)
				} else if first {
					log.Debug("event stream open")
				}
				first = false
				err = e.consume(sctx, res, send)
			}
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		now := clk.Now()
		e.setStream(false)
		e.m.errors.WithLabelValues(stageEvents).Inc()
		if gapStart.IsZero() {
			gapStart = now
		}
		// A stream that stayed up a while was healthy; start over gently.
		if !openedAt.IsZero() && now.Sub(openedAt) >= e.cfg.BackoffMax {
			backoff = e.cfg.BackoffMin
		}
		log.Warn("event stream down; drift is caught by the interval until it is back", "err", err, "retry_in", backoff)
		t := clk.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		backoff = min(2*backoff, e.cfg.BackoffMax)
	}
}

func (e *Exporter) ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := e.cfg.Events.Ping(pctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("pinging engine: %w", err)
	}
	return nil
}

// consume reads events until the stream breaks and returns why.
func (e *Exporter) consume(ctx context.Context, res client.EventsResult, send func(string)) error {
	for {
		select {
		case m, ok := <-res.Messages:
			if !ok {
				return errors.New("event stream closed")
			}
			if e.relevant(m) {
				e.m.events.WithLabelValues(string(m.Type), string(m.Action)).Inc()
				send(triggerEvent)
			}
		case err := <-res.Err:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return fmt.Errorf("reading events: %w", err)
		}
	}
}

func (e *Exporter) setStream(up bool) {
	e.m.eventsConnected.Set(b2f(up))
	e.mu.Lock()
	e.status.EventStream = up
	e.mu.Unlock()
}

// Handler serves /metrics from g and /healthz from the exporter's status:
// 200 while the latest audit succeeded (or none has finished yet), 503 when
// it failed, so that a container HEALTHCHECK shows an exporter that cannot
// see the engine.
func (e *Exporter) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(e.cfg.Logger.Handler(), slog.LevelWarn),
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		st := e.Status()
		code := http.StatusOK
		if st.Audits > 0 && !st.Healthy {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>hyhome audit</title></head><body><h1>hyhome audit</h1><p><a href="/metrics">metrics</a> · <a href="/healthz">healthz</a></p></body></html>`)
	})
	return mux
}

// ShutdownTimeout bounds graceful shutdown of the HTTP server.
const ShutdownTimeout = 5 * time.Second

// Serve runs the exporter and serves its handler on ln until ctx is done,
// then shuts the server down gracefully (in-flight scrapes finish) and
// waits for the audit loop to stop.
func (e *Exporter) Serve(ctx context.Context, ln net.Listener, g prometheus.Gatherer) error {
	srv := &http.Server{
		Handler:           e.Handler(g),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.cfg.Logger.Handler(), slog.LevelWarn),
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { e.Run(runCtx) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		if err := srv.Shutdown(sctx); err != nil {
			serveErr = fmt.Errorf("shutting down metrics server: %w", err)
		}
		cancel()
		<-errc
	case err := <-errc:
		serveErr = fmt.Errorf("serving metrics on %s: %w", ln.Addr(), err)
	}
	stop()
	wg.Wait()
	return serveErr
}
