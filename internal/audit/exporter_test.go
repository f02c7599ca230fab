package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hy-home/hyhome/internal/acceptance"
	"github.com/hy-home/hyhome/internal/clock"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/testenv"
)

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testenv.Hang):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

// TestScheduleDebounceAndInterval drives the scheduler with a fake clock: a
// burst of events is one audit, Debounce after the first event; the interval
// restarts after every audit; a reconnection wins the reason; cancelling
// stops the loop and its timers.
func TestScheduleDebounceAndInterval(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	created := clk.Created()
	e := &Exporter{cfg: ExporterConfig{Clock: clk, Interval: time.Minute, Debounce: time.Second}}
	triggers := make(chan string) // unbuffered: a send returns once the loop took it
	audits := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.schedule(ctx, triggers, func(_ context.Context, reason string) { audits <- reason })
		close(done)
	}()

	if r := recv(t, audits, "start audit"); r != triggerStart {
		t.Fatalf("first audit %q", r)
	}
	if d := recv(t, created, "interval timer"); d != time.Minute {
		t.Fatalf("timer %v, want the interval", d)
	}

	for range 3 {
		triggers <- triggerEvent
	}
	if d := recv(t, created, "debounce timer"); d != time.Second {
		t.Fatalf("timer %v, want the debounce", d)
	}
	none(t, created, "second debounce timer for the same burst")
	clk.Advance(999 * time.Millisecond)
	none(t, audits, "audit before the debounce elapsed")
	clk.Advance(time.Millisecond)
	if r := recv(t, audits, "debounced audit"); r != triggerEvent {
		t.Fatalf("audit reason %q", r)
	}
	if d := recv(t, created, "restarted interval"); d != time.Minute {
		t.Fatalf("timer %v, want the interval", d)
	}
	if !clk.Timer(0).Stopped() {
		t.Error("the interval timer running before the event audit was not stopped")
	}
	none(t, audits, "second audit for one burst")

	clk.Advance(time.Minute)
	if r := recv(t, audits, "interval audit"); r != triggerInterval {
		t.Fatalf("audit reason %q", r)
	}
	recv(t, created, "next interval")

	triggers <- triggerEvent
	recv(t, created, "debounce timer")
	triggers <- triggerReconnect
	triggers <- triggerEvent
	clk.Advance(time.Second)
	if r := recv(t, audits, "reconnect audit"); r != triggerReconnect {
		t.Fatalf("audit reason %q, want reconnect to win", r)
	}
	recv(t, created, "next interval")

	triggers <- triggerEvent
	recv(t, created, "debounce timer")
	cancel()
	recv(t, done, "scheduler exit")
	for i, tm := range clk.Pending() {
		t.Errorf("timer %d (%v) left running after cancel", i, tm.Duration())
	}
}

// scrape reads /metrics as Prometheus would.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// value returns the value of the series of name with (at least) labels.
func value(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// eventually polls cond (scraping each time) until it holds.
func eventually(t *testing.T, base, what string, within time.Duration, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		mfs := scrape(t, base)
		if cond(mfs) {
			return mfs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startExporter runs an exporter on a random loopback port until the test ends.
func startExporter(t *testing.T, cfg ExporterConfig) (base string, reg *prometheus.Registry, stop func() error) {
	t.Helper()
	reg = prometheus.NewRegistry()
	cfg.Registerer = reg
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	exp, err := NewExporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exp.Serve(ctx, ln, reg) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(testenv.Hang):
				serveErr = fmt.Errorf("exporter did not stop within %v", testenv.Hang)
			}
		})
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), reg, stop
}

// TestExporterEndToEnd runs the exporter against the real engine: a
// violating container appears in hyhome_findings after its start event (the
// interval is far away), and is gone after its destroy event.
func TestExporterEndToEnd(t *testing.T) {
	f := newFixture(t)
	base, _, stop := startExporter(t, ExporterConfig{
		Source:    f.source(nil),
		Selection: source.Selection{Filters: []string{f.filter()}},
		Events:    f.c,
		Interval:  time.Hour,
		Debounce:  200 * time.Millisecond,
	})
	eventually(t, base, "the first audit and an open event stream", testenv.Hang, func(m map[string]*dto.MetricFamily) bool {
		ok, _ := value(m, MetricLastSuccess, nil)
		up, _ := value(m, MetricEventsConnected, nil)
		return ok > 0 && up == 1
	})

	id, name := f.run("exporter-privileged", func(s *dockertest.Spec) { s.Host.Privileged = true })
	series := map[string]string{"rule": "privileged", "severity": "error", "tier": "app", "service": "", "container": name}
	mfs := eventually(t, base, "hyhome_findings for "+name, testenv.Hang, func(m map[string]*dto.MetricFamily) bool {
		v, ok := value(m, MetricFindings, series)
		return ok && v == 1
	})
	if n, _ := value(mfs, MetricRuns, map[string]string{"trigger": triggerEvent}); n < 1 {
		t.Errorf("no event-triggered audit counted (runs %v)", n)
	}
	if n, _ := value(mfs, MetricEvents, map[string]string{"type": "container", "action": "start"}); n < 1 {
		t.Errorf("container start event not counted")
	}
	if n, _ := value(mfs, MetricRuns, map[string]string{"trigger": triggerInterval}); n != 0 {
		t.Errorf("interval audits %v; the hour-long interval cannot have passed", n)
	}
	// Only the privileged rule fires on an otherwise compliant container.
	for _, m := range mfs[MetricFindings].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "rule" && lp.GetValue() != "privileged" {
				t.Errorf("unexpected series %v", m.GetLabel())
			}
		}
	}
	if v, ok := value(mfs, MetricCheckPassed, map[string]string{"check": acceptance.ACSpec01}); !ok || v != 1 {
		t.Errorf("AC-SPEC-01 gauge %v (present %v), want 1", v, ok)
	}
	if v, _ := value(mfs, MetricWorkloads, map[string]string{"kind": "container"}); v != 1 {
		t.Errorf("workloads %v, want 1", v)
	}

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !st.Healthy || !st.EventStream || st.Findings != 1 {
		t.Errorf("/healthz %d %+v", resp.StatusCode, st)
	}

	dockertest.RemoveContainer(f.c, id)
	eventually(t, base, "the series to go with the container", testenv.Hang, func(m map[string]*dto.MetricFamily) bool {
		_, ok := value(m, MetricFindings, series)
		return !ok
	})

	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("still serving after stop")
	}
}

// engineProxy stands between the exporter and the real engine on a unix
// socket, so that the test can take "the engine" away and bring it back
// (what the exporter sees of a dockerd restart) without restarting the
// engine everyone on this machine shares.
type engineProxy struct {
	t        *testing.T
	path     string
	upstream string
	hold     func(*http.Request) // if set, sees (and may hold) every request first
	mu       sync.Mutex
	srv      *http.Server
}

func newEngineProxy(t *testing.T, upstreamSock string) *engineProxy {
	p := &engineProxy{t: t, path: filepath.Join(t.TempDir(), "engine.sock"), upstream: upstreamSock}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *engineProxy) start() {
	p.t.Helper()
	target, _ := url.Parse("http://docker")
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1 // stream /events as it comes
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", p.upstream)
	}}
	rp.ErrorLog = nil
	_ = os.Remove(p.path)
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatal(err)
	}
	var h http.Handler = rp
	if p.hold != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.hold(r)
			rp.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
}

// stop closes the listener and every connection, the event stream included.
func (p *engineProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		_ = p.srv.Close()
		p.srv = nil
	}
}

// TestExporterSurvivesEngineRestart takes the engine away under a running
// exporter and brings it back: audits fail and are counted, the event stream
// gap is reported, and once the engine is back the stream reopens and a
// reconnect audit runs.
func TestExporterSurvivesEngineRestart(t *testing.T) {
	f := newFixture(t)
	sock, ok := strings.CutPrefix(f.host, "unix://")
	if !ok {
		testenv.Missing(t, "engine at %s is not a unix socket; the restart is simulated with a unix-socket proxy", f.host)
	}
	proxy := newEngineProxy(t, sock)
	c, err := client.New(client.WithHost("unix://" + proxy.path))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src, err := source.New(source.Config{Engine: c, Host: "unix://" + proxy.path})
	if err != nil {
		t.Fatal(err)
	}
	base, _, stop := startExporter(t, ExporterConfig{
		Source:     src,
		Selection:  source.Selection{Filters: []string{f.filter()}},
		Events:     c,
		Interval:   300 * time.Millisecond,
		Debounce:   50 * time.Millisecond,
		Timeout:    5 * time.Second,
		BackoffMin: 50 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond,
		Env:        func() *policy.Env { return &policy.Env{} },
	})
	eventually(t, base, "an open event stream", testenv.Hang, func(m map[string]*dto.MetricFamily) bool {
		up, _ := value(m, MetricEventsConnected, nil)
		return up == 1
	})

	proxy.stop()
	mfs := eventually(t, base, "the outage to show", testenv.Hang, func(m map[string]*dto.MetricFamily) bool {
		conn, _ := value(m, MetricEventsConnected, nil)
		evErr, _ := value(m, MetricErrors, map[string]string{"stage": stageEvents})
		auErr, _ := value(m, MetricErrors, map[string]string{"stage": stageAudit})
		up, _ := value(m, MetricEngineUp, nil)
		return conn == 0 && evErr >= 1 && auErr >= 1 && up == 0
	})
	before, _ := value(mfs, MetricLastSuccess, nil)
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz during the outage: %v %v, want 503", resp.StatusCode, err)
	}

	proxy.start()
	mfs = eventually(t, base, "recovery", testenv.Hang, func(m map[string]*dto.MetricFamily) bool {
		conn, _ := value(m, MetricEventsConnected, nil)
		gap, _ := value(m, MetricEventsGap, nil)
		re, _ := value(m, MetricRuns, map[string]string{"trigger": triggerReconnect})
		last, _ := value(m, MetricLastSuccess, nil)
		up, _ := value(m, MetricEngineUp, nil)
		return conn == 1 && gap > 0 && re >= 1 && last > before && up == 1
	})
	gap, _ := value(mfs, MetricEventsGap, nil)
	t.Logf("event stream gap reported: %.3fs", gap)
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz after recovery: %v %v, want 200", resp.StatusCode, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// The engine answers GET /events' headers before it subscribes the stream,
// so a container started between the start audit and the subscription was
// seen by neither, and its findings stayed unpublished until the interval
// audit (an hour here). The exporter's first stream asks for events since
// it started. The proxy makes the gap certain: it holds the first GET
// /events until the start audit is published and a privileged container
// has started. It also narrows the stream to this test's containers, so
// that no other event on a shared engine triggers an audit that would find
// the container anyway.
func TestExporterSeesChangesBeforeItsStreamOpened(t *testing.T) {
	f := newFixture(t)
	sock, ok := strings.CutPrefix(f.host, "unix://")
	if !ok {
		testenv.Missing(t, "engine at %s is not a unix socket; the held stream is a unix-socket proxy", f.host)
	}
	held, release := make(chan struct{}), make(chan struct{})
	var holdOnce sync.Once
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // never leave the proxy's handler blocked
	proxy := &engineProxy{t: t, path: filepath.Join(t.TempDir(), "engine.sock"), upstream: sock}
	proxy.hold = func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			holdOnce.Do(func() { close(held); <-release })
			q := r.URL.Query()
			filters := map[string]map[string]bool{}
			if err := json.Unmarshal([]byte(q.Get("filters")), &filters); err != nil {
				t.Errorf("the exporter's event filters %q: %v", q.Get("filters"), err)
			}
			filters["label"] = map[string]bool{scopeKey + "=" + f.scope: true}
			b, _ := json.Marshal(filters)
			q.Set("filters", string(b))
			r.URL.RawQuery = q.Encode()
		}
	}
	proxy.start()
	t.Cleanup(proxy.stop)
	c, err := client.New(client.WithHost("unix://" + proxy.path))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base, _, stop := startExporter(t, ExporterConfig{
		Source:    f.source(nil),
		Selection: source.Selection{Filters: []string{f.filter()}},
		Events:    c,
		Interval:  time.Hour,
		Debounce:  200 * time.Millisecond,
	})
	select {
	case <-held:
	case <-time.After(testenv.Hang):
		t.Fatal("the exporter never asked for events")
	}
	eventually(t, base, "the start audit", testenv.Hang, func(m map[string]*dto.MetricFamily) bool {
		ok, _ := value(m, MetricLastSuccess, nil)
		return ok > 0
	})
	_, name := f.run("exporter-early", func(s *dockertest.Spec) { s.Host.Privileged = true })
	releaseOnce()
	series := map[string]string{"rule": "privileged", "severity": "error", "tier": "app", "service": "", "container": name}
	mfs := eventually(t, base, "hyhome_findings for "+name+", started before the stream opened", testenv.Hang, func(m map[string]*dto.MetricFamily) bool {
		v, ok := value(m, MetricFindings, series)
		return ok && v == 1
	})
	if n, _ := value(mfs, MetricRuns, map[string]string{"trigger": triggerInterval}); n != 0 {
		t.Errorf("interval audits %v; the hour-long interval cannot have passed", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestNewExporterValidates(t *testing.T) {
	reg := prometheus.NewRegistry()
	src, _ := source.New(source.Config{Engine: &client.Client{}})
	if _, err := NewExporter(ExporterConfig{Source: src, Events: &client.Client{}}); err == nil || !strings.Contains(err.Error(), "registerer") {
		t.Errorf("no registerer: %v", err)
	}
	if _, err := NewExporter(ExporterConfig{Source: src, Events: &client.Client{}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewExporter(ExporterConfig{Source: src, Events: &client.Client{}, Registerer: reg}); err == nil || !strings.Contains(err.Error(), "second exporter") {
		t.Errorf("second registration: %v", err)
	}
}
