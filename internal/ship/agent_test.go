package ship

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/guard"
	"github.com/hy-home/hyhome/internal/lokitest"
	"github.com/hy-home/hyhome/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

func token() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testSelector confines an agent to one test's containers: other packages'
// tests use the same engine at the same time.
func testSelector(t *testing.T) (Selector, map[string]string) {
	v := token()
	return Selector{{Key: "hyhome.ship.test", Op: selEqual, Value: v}}, map[string]string{"hyhome.ship.test": v}
}

type agentRun struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, cfg Config) *agentRun {
	t.Helper()
	return startAgentAt(t, cfg, "")
}

// startAgentAt starts an agent on the engine at host (a test proxy; ""
// is the engine itself).
func startAgentAt(t *testing.T, cfg Config, host string) *agentRun {
	t.Helper()
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 500 * time.Millisecond
	}
	dc := dockertest.Client(t)
	if host != "" {
		var err error
		if dc, err = client.New(client.WithHost(host)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dc.Close() })
	}
	a, err := New(cfg, dc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &agentRun{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *agentRun) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // make stop idempotent
}

func labels(sel map[string]string, extra ...string) map[string]string {
	m := map[string]string{}
	for k, v := range sel {
		m[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// lines returns the lines matching a LogQL query over the last day.
func queryLines(t *testing.T, loki *lokitest.Server, q string) []lokitest.Entry {
	t.Helper()
	st, err := loki.Query("fake", q, time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour), 0, true)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	var out []lokitest.Entry
	for _, s := range st {
		out = append(out, s.Entries...)
	}
	return out
}

func waitContainerExit(t *testing.T, id string) container.InspectResponse {
	t.Helper()
	var ins client.ContainerInspectResult
	waitFor(t, "the container to exit", func() bool {
		var err error
		ins, err = dockertest.Client(t).ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
		return err == nil && !ins.Container.State.Running && !ins.Container.State.Restarting
	})
	return ins.Container
}

// The spec's AC-SPEC-02 path: a gateway container logs and crashes; its
// lines and its die event are found with {job="infra", tier="gateway"}.
func TestCrashingContainerLinesAndDieEventAreQueryable(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	loki := startLoki(t, lokitest.Config{})
	sel, selLabels := testSelector(t)
	startAgent(t, Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel})

	tok := token()
	id, name := dockertest.Run(t, dockertest.Spec{
		Name: "canary", Image: img.NonRoot, Cmd: []string{"log", "-lines", "5", "-token", tok, "-exit", "3"},
		Labels: labels(selLabels, "hy-home.job", "infra", "hy-home.tier", "gateway"),
	})
	// Through the HTTP API, as hyhome verify and Grafana ask.
	get := func(q string) []string {
		resp, err := http.Get(loki.URL() + "/loki/api/v1/query_range?" + url.Values{"query": {q}, "limit": {"100"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Result []struct {
					Stream map[string]string `json:"stream"`
					Values [][2]string       `json:"values"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range body.Data.Result {
			for _, v := range r.Values {
				out = append(out, v[1])
			}
		}
		return out
	}
	waitFor(t, "the crash's lines and die event", func() bool {
		return len(get(`{job="infra", tier="gateway"} |= "`+tok+`"`)) == 5 &&
			len(get(`{job="infra", tier="gateway", source="events"} |= "action=die" |= "`+name+`"`)) == 1
	})
	die := get(`{job="infra", tier="gateway", source="events"} |= "action=die" |= "` + name + `"`)[0]
	for _, want := range []string{"type=container", "exit_code=3", "image=" + img.NonRoot, "id=" + id} {
		if !strings.Contains(die, want) {
			t.Errorf("die event %q lacks %q", die, want)
		}
	}
	logs := queryLines(t, loki, `{job="infra", tier="gateway", source="logs", stream="stdout"} | container_id="`+id+`"`)
	if len(logs) != 5 || logs[0].Line != "line "+tok+" seq=0" {
		t.Fatalf("log entries %+v", logs)
	}
	// No container ID or name among the stream labels.
	for _, st := range loki.Streams("fake") {
		for _, l := range st.Labels {
			if strings.Contains(l.Value, id[:12]) || l.Value == name {
				t.Errorf("high-cardinality label %s=%s on stream %s", l.Name, l.Value, st.Labels)
			}
		}
	}
}

func TestLongLinesBothStreamsAndTTY(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	loki := startLoki(t, lokitest.Config{})
	sel, selLabels := testSelector(t)
	startAgent(t, Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel})
	tok := token()
	dockertest.Run(t, dockertest.Spec{
		Name: "long", Image: img.NonRoot, Cmd: []string{"log", "-lines", "20", "-size", "40000", "-both", "-token", tok, "-partial"},
		Labels: labels(selLabels, "hy-home.tier", "app"),
	})
	ttyTok := token()
	dockertest.Run(t, dockertest.Spec{
		Name: "tty", Image: img.NonRoot, Cmd: []string{"log", "-lines", "5", "-size", "20000", "-token", ttyTok}, Tty: true,
		Labels: labels(selLabels, "hy-home.tier", "app"),
	})
	waitFor(t, "the long lines", func() bool {
		return len(queryLines(t, loki, `{tier="app"} |= "`+tok+`"`)) == 20 && len(queryLines(t, loki, `{tier="app"} |= "`+ttyTok+`"`)) == 5
	})
	var stdout, stderr int
	for _, e := range queryLines(t, loki, `{tier="app", stream="stdout"} |= "`+tok+`"`) {
		stdout++
		if len(e.Line) != 40000 {
			t.Errorf("stdout line of %d bytes, want 40000: %.40q", len(e.Line), e.Line)
		}
	}
	for _, e := range queryLines(t, loki, `{tier="app", stream="stderr"} |= "`+tok+`"`) {
		stderr++
		if len(e.Line) != 40000 {
			t.Errorf("stderr line of %d bytes, want 40000", len(e.Line))
		}
	}
	if stdout != 10 || stderr != 10 {
		t.Errorf("%d stdout and %d stderr lines, want 10 and 10", stdout, stderr)
	}
	for _, e := range queryLines(t, loki, `{tier="app"} |= "`+ttyTok+`"`) {
		if len(e.Line) != 20000 || strings.ContainsAny(e.Line, "\r\n") {
			t.Errorf("TTY line of %d bytes (want 20000, no CR/LF): %.40q", len(e.Line), e.Line)
		}
	}
}

// A crash-looping container's every run is shipped, and each die event.
func TestCrashLoopEveryRunShipped(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	loki := startLoki(t, lokitest.Config{})
	sel, selLabels := testSelector(t)
	startAgent(t, Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel})
	tok := token()
	id, name := dockertest.Run(t, dockertest.Spec{
		Name: "loop", Image: img.NonRoot, Cmd: []string{"log", "-lines", "3", "-token", tok, "-exit", "1"},
		Labels: labels(selLabels, "hy-home.tier", "app"),
		Host:   container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}},
	})
	ins := waitContainerExit(t, id)
	if ins.RestartCount != 3 {
		t.Fatalf("restart count %d, want 3", ins.RestartCount)
	}
	waitFor(t, "4 runs of 3 lines and 4 die events", func() bool {
		return len(queryLines(t, loki, `{tier="app", source="logs"} |= "`+tok+`"`)) == 12 &&
			len(queryLines(t, loki, `{tier="app", source="events"} |= "action=die" |= "`+name+`"`)) == 4
	})
}

// Loki down for the whole of a container's life, then back: nothing lost,
// nothing twice.
func TestLokiDownThenUpLosesNothing(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	tok := token()
	const n = 3000
	lcfg := lokitest.Config{}
	ledger := newSeqLedger(&lcfg, tok, n)
	loki := startLoki(t, lcfg)
	sel, selLabels := testSelector(t)
	run := startAgent(t, Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel})
	if err := loki.Down(); err != nil {
		t.Fatal(err)
	}
	id, name := dockertest.Run(t, dockertest.Spec{
		Name: "outage", Image: img.NonRoot, Cmd: []string{"log", "-lines", fmt.Sprint(n), "-rate", "3000", "-token", tok, "-both", "-exit", "2"},
		Labels: labels(selLabels, "hy-home.tier", "app"),
	})
	waitContainerExit(t, id)
	waitFor(t, "every line queued while Loki is down", func() bool { return run.a.Health().QueueEntries >= n })
	if h := run.a.Health(); h.PushFailingFrom.IsZero() || !h.OK {
		t.Fatalf("health while Loki is down: %+v (want OK, with the push failure reported)", h)
	}
	if err := loki.Up(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every line and the die event after Loki came back", func() bool {
		return ledger.received() == n &&
			len(queryLines(t, loki, `{source="events"} |= "action=die" |= "`+name+`"`)) == 1
	})
	if err := storedOnce(queryLines(t, loki, `{tier="app", source="logs"} |= "`+tok+`"`), tok, n); err != nil {
		t.Errorf("Loki down then up: %v", err)
	}
	ledger.checkNoForeign(t)
	dups, _ := ledger.snapshot().duplicates()
	st := loki.Stats()
	t.Logf("Loki down then up: %d lines written, all stored once, %d pushed twice, %d duplicates in all", n, len(dups), st.Duplicates)
	if len(dups) != 0 || st.Duplicates != 0 {
		t.Errorf("without any crash, lines %s were pushed twice (%d duplicates in all); want exactly once", seqRanges(dups), st.Duplicates)
	}
}

// A graceful restart mid-stream, with a container dying while the agent is
// down: every line and event exactly once (events through ?since=).
func TestRestartResumesExactlyOnce(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	tok := token()
	const n = 4000
	lcfg := lokitest.Config{}
	ledger := newSeqLedger(&lcfg, tok, n)
	loki := startLoki(t, lcfg)
	sel, selLabels := testSelector(t)
	dir := t.TempDir()
	cfg := Config{LokiURL: loki.URL(), StateDir: dir, Select: sel}
	first := startAgent(t, cfg)
	id, _ := dockertest.Run(t, dockertest.Spec{
		Name: "stream", Image: img.NonRoot, Cmd: []string{"log", "-lines", fmt.Sprint(n), "-rate", "2000", "-token", tok, "-both"},
		Labels: labels(selLabels, "hy-home.tier", "app"),
	})
	q := `{tier="app", source="logs"} |= "` + tok + `"`
	waitFor(t, "some lines before the restart", func() bool { return ledger.received() >= n/4 })
	first.stop()
	if got := ledger.received(); got >= n {
		t.Fatalf("the restart was not mid-stream: Loki had all %d lines when the agent stopped", n)
	}
	// While the agent is down: a container starts, logs and dies.
	downTok := token()
	did, dname := dockertest.Run(t, dockertest.Spec{
		Name: "while-down", Image: img.NonRoot, Cmd: []string{"log", "-lines", "3", "-token", downTok, "-exit", "4"},
		Labels: labels(selLabels, "hy-home.tier", "app"),
	})
	waitContainerExit(t, did)
	startAgent(t, cfg)
	waitContainerExit(t, id)
	waitFor(t, "every line after the restart", func() bool {
		return ledger.received() == n &&
			len(queryLines(t, loki, `{tier="app"} |= "`+downTok+`"`)) == 3 &&
			len(queryLines(t, loki, `{source="events"} |= "action=die" |= "`+dname+`"`)) == 1
	})
	if err := storedOnce(queryLines(t, loki, q), tok, n); err != nil {
		t.Errorf("graceful restart: %v", err)
	}
	if err := storedOnce(queryLines(t, loki, `{tier="app"} |= "`+downTok+`"`), downTok, 3); err != nil {
		t.Errorf("the container that ran while the agent was down: %v", err)
	}
	ledger.checkNoForeign(t)
	dups, _ := ledger.snapshot().duplicates()
	st := loki.Stats()
	t.Logf("graceful restart: %d lines written, all stored once, %d pushed twice, %d duplicates in all", n, len(dups), st.Duplicates)
	if len(dups) != 0 || st.Duplicates != 0 {
		t.Errorf("after a graceful restart, lines %s were pushed twice (%d duplicates in all); want exactly once", seqRanges(dups), st.Duplicates)
	}
}

// The shipper profile of the guard allows only reads; the agent must not
// need anything else. This test runs the agent through a recording proxy
// and fails on any request outside the allow-list.
func TestAgentUsesOnlyReadOnlyEngineAPI(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	loki := startLoki(t, lokitest.Config{})
	sel, selLabels := testSelector(t)
	proxy, seen := recordingProxy(t)
	agent := startAgentAt(t, Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel}, proxy)
	tok := token()
	id, _ := dockertest.Run(t, dockertest.Spec{
		Name: "ro", Image: img.NonRoot, Cmd: []string{"log", "-lines", "2", "-token", tok},
		Labels: labels(selLabels, "hy-home.tier", "app"),
	})
	waitContainerExit(t, id)
	waitFor(t, "the lines through the proxy", func() bool { return len(queryLines(t, loki, `{tier="app"} |= "`+tok+`"`)) == 2 })
	agent.stop()
	for _, r := range seen() {
		if r.method != http.MethodGet && !(r.method == http.MethodHead && strings.HasSuffix(r.path, "/_ping")) {
			t.Errorf("the agent sent %s %s; the shipper profile allows reads only", r.method, r.path)
		}
		p := r.path
		allowed := strings.HasSuffix(p, "/_ping") || strings.HasSuffix(p, "/version") || strings.HasSuffix(p, "/info") ||
			strings.HasSuffix(p, "/events") || strings.HasSuffix(p, "/containers/json") ||
			strings.Contains(p, "/containers/") && (strings.HasSuffix(p, "/json") || strings.HasSuffix(p, "/logs"))
		if !allowed {
			t.Errorf("the agent called %s %s, outside ping/version/info/events/container list, inspect and logs", r.method, p)
		}
	}
}

type seenRequest struct{ method, path string }

// recordingProxy forwards HTTP to the real engine and records requests.
func recordingProxy(t *testing.T) (string, func() []seenRequest) {
	t.Helper()
	var mu sync.Mutex
	var seen []seenRequest
	host := engineProxy(t, func(r *http.Request) {
		mu.Lock()
		seen = append(seen, seenRequest{r.Method, r.URL.Path})
		mu.Unlock()
	})
	return host, func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), seen...)
	}
}

// engineProxy forwards HTTP from a loopback port to the real engine; each
// request first passes through hook, which may hold it, and each response
// through modify, if given.
func engineProxy(t *testing.T, hook func(*http.Request), modify ...func(*http.Response) error) string {
	t.Helper()
	dial := dockertest.Client(t).Dialer()
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport:     &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }},
		FlushInterval: -1, // events and logs are streams
	}
	if len(modify) > 0 {
		rp.ModifyResponse = modify[0]
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hook(r)
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "tcp://" + ln.Addr().String()
}

// On a first start the agent has no position, and the engine answers GET
// /events' headers before it subscribes the stream: an event in between
// reached no one (a crash right as the agent started went unreported).
// The agent asks for events since it started, so the engine replays them.
// The proxy makes the gap certain: it holds the agent's GET /events until
// a container has been created, started and has died.
func TestEventsBetweenStartAndSubscriptionAreShipped(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	loki := startLoki(t, lokitest.Config{})
	sel, selLabels := testSelector(t)
	held, release := make(chan struct{}), make(chan struct{})
	var holdOnce sync.Once
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // never leave the proxy's handler blocked
	proxy := engineProxy(t, func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			holdOnce.Do(func() { close(held); <-release })
		}
	})
	startAgentAt(t, Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel}, proxy)

	select {
	case <-held:
	case <-time.After(testenv.Hang):
		t.Fatal("the agent never asked for events")
	}
	id, name := dockertest.Run(t, dockertest.Spec{
		Name: "early", Image: img.NonRoot, Cmd: []string{"log", "-lines", "1", "-exit", "3"},
		Labels: labels(selLabels, "hy-home.job", "infra", "hy-home.tier", "gateway"),
	})
	waitContainerExit(t, id)
	releaseOnce()
	waitFor(t, "the create, start and die events from before the stream opened", func() bool {
		for _, action := range []string{"create", "start", "die"} {
			if len(queryLines(t, loki, `{source="events"} |= "action=`+action+` " |= "`+name+`"`)) != 1 {
				return false
			}
		}
		return true
	})
}

// The engine replays at most its 256 newest events. A resume position of
// "since the anchor, skipping the first Skip events" with Skip above what
// the engine still holds after the anchor skipped new events instead: an
// agent restarted after 300 events dropped the events of a volume made
// while it was down. The events position is "after the newest event
// consumed", with nothing to skip.
func TestEventsResumeAfterMoreEventsThanTheEngineReplays(t *testing.T) {
	t.Parallel()
	loki := startLoki(t, lokitest.Config{})
	sel, _ := testSelector(t)
	reg := prometheus.NewRegistry()
	cfg := Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel, Registerer: reg}
	first := startAgent(t, cfg)
	waitFor(t, "the agent's event stream", func() bool { return gaugeValue(t, reg, "hyhome_ship_events_connected") == 1 })
	c := dockertest.Client(t)
	volume := func(name string) { // a create and a destroy event
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
		defer cancel()
		if _, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: map[string]string{dockertest.LabelKey: dockertest.RunID}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.VolumeRemove(ctx, name, client.VolumeRemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tok := token()
	const n = 150
	for i := range n {
		volume(fmt.Sprintf("hyhome-test-ev-%s-%d", tok, i))
	}
	waitFor(t, fmt.Sprintf("the %d volume events in Loki", 2*n), func() bool {
		return len(queryLines(t, loki, `{source="events"} |= "`+tok+`"`)) >= 2*n
	})
	first.stop()
	down := "hyhome-test-ev-down-" + token()
	volume(down)
	cfg.Registerer = nil // a new agent, its own metrics
	startAgent(t, cfg)
	waitFor(t, "the events of the volume made while the agent was down", func() bool {
		return len(queryLines(t, loki, `{source="events"} |= "name=`+down+`"`)) == 2
	})
}

// gaugeValue reads an unlabelled gauge from reg (0 when absent).
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// The first events position is taken on the engine's clock, not the
// agent's, since the engine compares since= with its own: the proxy puts
// the engine's clock (docker info's SystemTime) an hour behind this host's,
// and the agent's first GET /events must ask for events since that
// hour-old time. On the host's clock it would ask for a time in the
// engine's future, and a resume from there would replay nothing.
func TestFirstEventsPositionIsOnTheEnginesClock(t *testing.T) {
	t.Parallel()
	const skew = time.Hour
	loki := startLoki(t, lokitest.Config{})
	sel, _ := testSelector(t)
	since := make(chan string, 1)
	proxy := engineProxy(t, func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			select {
			case since <- r.URL.Query().Get("since"):
			default:
			}
		}
	}, func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, "/info") {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var info map[string]json.RawMessage
		if err := json.Unmarshal(body, &info); err != nil {
			return err
		}
		var st string
		if err := json.Unmarshal(info["SystemTime"], &st); err != nil {
			return fmt.Errorf("the engine's SystemTime %s: %w", info["SystemTime"], err)
		}
		engineNow, err := time.Parse(time.RFC3339Nano, st)
		if err != nil {
			return err
		}
		info["SystemTime"], _ = json.Marshal(engineNow.Add(-skew).Format(time.RFC3339Nano))
		body, _ = json.Marshal(info)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	})
	before := time.Now()
	startAgentAt(t, Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel, Host: "skewed"}, proxy)
	var got string
	select {
	case got = <-since:
	case <-time.After(testenv.Hang):
		t.Fatal("the agent never asked for events")
	}
	sec, nsec, ok := strings.Cut(got, ".")
	s, err1 := strconv.ParseInt(sec, 10, 64)
	ns, err2 := strconv.ParseInt(nsec, 10, 64)
	if !ok || err1 != nil || err2 != nil || len(nsec) != 9 {
		t.Fatalf("the first GET /events asked for since=%q, want seconds.nanoseconds", got)
	}
	at := time.Unix(s, ns)
	if lo, hi := before.Add(-skew-time.Minute), time.Now().Add(-skew); at.Before(lo) || at.After(hi) {
		t.Errorf("the first GET /events asked for events since %v; on the engine's clock (an hour behind) that is between %v and %v", at, lo, hi)
	}
}

// The deploy stack runs the agent behind the guard's shipper profile: the
// real guard, in front of the real engine, must let everything through.
func TestAgentThroughTheGuardShipperProfile(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	g, err := guard.New(guard.Config{
		Listeners: []guard.Listener{{Network: "tcp", Address: "127.0.0.1:0", Profile: guard.ProfileShipper}},
		Upstream:  dockertest.Client(t).DaemonHost(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.Hang)
		defer cancel()
		_ = g.Stop(ctx)
	})
	dc, err := client.New(client.WithHost("tcp://" + g.Addrs()[0].String()))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()

	loki := startLoki(t, lokitest.Config{})
	sel, selLabels := testSelector(t)
	a, err := New(Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Select: sel, Registerer: prometheus.NewRegistry()}, dc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	tok := token()
	id, name := dockertest.Run(t, dockertest.Spec{
		Name: "guarded", Image: img.NonRoot, Cmd: []string{"log", "-lines", "50", "-size", "20000", "-both", "-token", tok, "-exit", "5"},
		Labels: labels(selLabels, "hy-home.job", "infra", "hy-home.tier", "gateway"),
	})
	waitContainerExit(t, id)
	waitFor(t, "lines and the die event through the guard", func() bool {
		return len(queryLines(t, loki, `{job="infra", tier="gateway", source="logs"} |= "`+tok+`"`)) == 50 &&
			len(queryLines(t, loki, `{source="events"} |= "action=die" |= "`+name+`"`)) == 1
	})
	if n := metricValue(a.m.streamErrors.WithLabelValues("logs")) + metricValue(a.m.streamErrors.WithLabelValues("events")); n != 0 {
		t.Fatalf("%v stream errors through the guard", n)
	}
}
