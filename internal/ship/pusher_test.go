package ship

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hy-home/hyhome/internal/clock"
	"github.com/hy-home/hyhome/internal/lokitest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// waitTimers blocks until the code under test waits on at least n timers.
func (r *pusherRig) waitTimers(n int) {
	r.t.Helper()
	if !r.clock.WaitPending(n, testenv.Hang) { // a hang guard, not a timed assertion
		r.t.Fatalf("nothing started waiting on the clock")
	}
}

type pusherRig struct {
	t     *testing.T
	clock *clock.Fake
	q     *queue
	p     *pusher
	reg   *prometheus.Registry
	m     *metrics
	stop  func()
}

func newPusherRig(t *testing.T, loki *lokitest.Server, mut func(*Config)) *pusherRig {
	t.Helper()
	clk := clock.NewFake(time.Now())
	reg := prometheus.NewRegistry()
	cfg := Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Registerer: reg, Clock: clk}
	if mut != nil {
		mut(&cfg)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := openQueue(queueConfig{Dir: cfg.StateDir, MaxBytes: cfg.QueueMaxBytes, SegmentBytes: cfg.SegmentBytes})
	if err != nil {
		t.Fatal(err)
	}
	client, err := newLokiClient(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	rig := &pusherRig{t: t, clock: clk, q: q, reg: reg, m: m}
	rig.p = newPusher(&cfg, q, client, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rig.p.run(ctx, nil)
	}()
	rig.stop = func() {
		cancel()
		<-done
		q.close()
	}
	t.Cleanup(rig.stop)
	return rig
}

func (r *pusherRig) enqueue(lines ...string) {
	r.t.Helper()
	var buf []byte
	for i, l := range lines {
		rec := Record{
			Kind: kindEntry, Source: "logs/c1", Cursor: Cursor{Anchor: int64(i)},
			Time: time.Now().UnixNano() + int64(i), Labels: Labels{{"job", "infra"}, {"source", "logs"}},
			Line: l, Metadata: Labels{{"container_id", "c1"}},
		}
		buf = appendRecord(buf, &rec)
	}
	if err := r.q.append(context.Background(), buf, len(lines), PriorityLogs); err != nil {
		r.t.Fatal(err)
	}
}

// waitFor polls cond (a hang guard bounds it; it is not a timed assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Hang) // only a hang trips it
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startLoki(t *testing.T, cfg lokitest.Config) *lokitest.Server {
	t.Helper()
	s, err := lokitest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPusherIdlePushesAtOnceBusyBatchesUpToBatchWait(t *testing.T) {
	loki := startLoki(t, lokitest.Config{})
	rig := newPusherRig(t, loki, nil)
	rig.enqueue("first")
	waitFor(t, "the first entry", func() bool { return loki.Stats().Accepted == 1 })
	// Right after a push, new entries wait for company up to BatchWait.
	rig.enqueue("a", "b")
	rig.waitTimers(1)
	rig.enqueue("c")
	if n := loki.Stats().Requests; n != 1 {
		t.Fatalf("%d requests before BatchWait passed, want 1", n)
	}
	rig.clock.Advance(200 * time.Millisecond)
	waitFor(t, "the batch", func() bool { return loki.Stats().Accepted == 4 })
	if n := loki.Stats().Requests; n != 2 {
		t.Fatalf("%d requests, want 2 (a, b and c share one)", n)
	}
	// Loki counts an entry when it accepts it; the pusher counts it once
	// the answer is back, a moment later.
	waitFor(t, "the sent metric to reach 4", func() bool { return metricValue(rig.m.sent.WithLabelValues("logs")) == 4 })
	waitFor(t, "the queue to empty", func() bool { return rig.q.stats().Entries == 0 })
}

func TestPusherRetriesThrottlingAndServerErrors(t *testing.T) {
	loki := startLoki(t, lokitest.Config{})
	loki.FailNext(2, 503)
	rig := newPusherRig(t, loki, nil)
	rig.enqueue("x", "y")
	for i := range 2 {
		waitFor(t, "a 503", func() bool { return loki.Stats().ByStatus[503] == i+1 })
		rig.waitTimers(1) // the backoff wait
		rig.clock.Advance(time.Minute)
	}
	waitFor(t, "delivery after the failures", func() bool { return loki.Stats().Accepted == 2 })
	loki.FailNext(1, 429)
	rig.clock.Advance(time.Second) // past BatchWait
	rig.enqueue("z")
	waitFor(t, "the 429", func() bool { return loki.Stats().ByStatus[429] == 1 })
	rig.waitTimers(1) // the backoff wait (no idle wait while pushing)
	rig.clock.Advance(time.Minute)
	waitFor(t, "delivery after 429", func() bool { return loki.Stats().Accepted == 3 })
	if got := metricValue(rig.m.retries); got != 3 {
		t.Fatalf("retries metric %v, want 3", got)
	}
	if got := metricValue(rig.m.pushes.WithLabelValues("503")); got != 2 {
		t.Fatalf("pushes{code=503} %v", got)
	}
}

func TestPusherRetriesWhileLokiIsDown(t *testing.T) {
	loki := startLoki(t, lokitest.Config{})
	if err := loki.Down(); err != nil {
		t.Fatal(err)
	}
	rig := newPusherRig(t, loki, nil)
	rig.enqueue("during the outage")
	failed := func() float64 { return metricValue(rig.m.pushes.WithLabelValues("error")) }
	for i := range 5 {
		waitFor(t, "a failed push", func() bool { return failed() >= float64(i+1) })
		rig.waitTimers(1) // the backoff wait
		rig.clock.Advance(time.Minute)
	}
	waitFor(t, "a failed push", func() bool { return failed() >= 6 })
	if err := loki.Up(); err != nil {
		t.Fatal(err)
	}
	rig.waitTimers(1)
	rig.clock.Advance(time.Minute)
	waitFor(t, "delivery after Loki came back", func() bool { return loki.Stats().Accepted == 1 })
	if got := metricValue(rig.m.pushes.WithLabelValues("error")); got < 5 {
		t.Fatalf("pushes{code=error} = %v, want the failed attempts counted", got)
	}
}

func TestPusherDropsOnlyTheEntriesLokiRefuses(t *testing.T) {
	loki := startLoki(t, lokitest.Config{MaxLineSize: 100})
	rig := newPusherRig(t, loki, nil)
	lines := []string{"a", "b", "c", strings.Repeat("!", 200), "d", "e", "f", "g"}
	rig.enqueue(lines...)
	waitFor(t, "the queue to empty", func() bool { return rig.q.stats().Entries == 0 })
	if got := loki.Stats().Accepted; got != 7 {
		t.Fatalf("Loki stored %d entries, want 7", got)
	}
	if got := metricValue(rig.m.dropped.WithLabelValues("rejected_400")); got != 1 {
		t.Fatalf("dropped{reason=rejected_400} = %v, want exactly the one too-long line", got)
	}
}

func TestPusherJSONEncodingAndCredentialsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		loki lokitest.Config
		mut  func(*Config)
	}{
		{"json+basic+tenant", lokitest.Config{MultiTenant: true, BasicAuthUser: "ship", BasicAuthPassword: "s3cret"}, func(c *Config) {
			c.Encoding = EncodingJSON
			c.TenantFile = write("tenant", "team-a\n")
			c.BasicAuthUser = "ship"
			c.BasicAuthPasswordFile = write("password", "s3cret\n")
		}},
		{"protobuf+bearer", lokitest.Config{BearerToken: "tok"}, func(c *Config) {
			c.BearerTokenFile = write("token", "tok")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loki := startLoki(t, tc.loki)
			rig := newPusherRig(t, loki, tc.mut)
			rig.enqueue("hello é")
			waitFor(t, "delivery", func() bool { return rig.q.stats().Entries == 0 })
			tenant := "fake"
			if tc.loki.MultiTenant {
				tenant = "team-a"
			}
			st := loki.Streams(tenant)
			if len(st) != 1 || st[0].Entries[0].Line != "hello é" || st[0].Entries[0].Metadata.Get("container_id") != "c1" {
				t.Fatalf("stored %+v", st)
			}
		})
	}
}

func TestPusherTLSWithCAFile(t *testing.T) {
	loki := startLoki(t, lokitest.Config{TLS: true})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, loki.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	rig := newPusherRig(t, loki, func(c *Config) { c.CAFile = ca })
	rig.enqueue("over tls")
	waitFor(t, "delivery over TLS", func() bool { return loki.Stats().Accepted == 1 })

	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	cfg, _ := Config{LokiURL: loki.URL(), StateDir: t.TempDir(), Registerer: prometheus.NewRegistry(), CAFile: bad}.withDefaults()
	if _, err := newLokiClient(&cfg); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a CA file without certificates: %v", err)
	}
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(err)
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}
