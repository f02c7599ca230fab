package ship

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/prometheus/client_golang/prometheus"
)

// newBareAgent is an Agent with a real queue and metrics but no engine,
// for the log and event formatting paths.
func newBareAgent(t testing.TB, mut func(*Config)) *Agent {
	t.Helper()
	cfg := Config{LokiURL: "http://127.0.0.1:1", StateDir: t.TempDir(), Registerer: prometheus.NewRegistry(), Host: "h1"}
	if mut != nil {
		mut(&cfg)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		t.Fatal(err)
	}
	q, rec, err := openQueue(queueConfig{Dir: cfg.StateDir, MaxBytes: cfg.QueueMaxBytes, SegmentBytes: cfg.SegmentBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.close() })
	return &Agent{cfg: cfg, q: q, m: m, log: cfg.Logger, positions: rec.Positions, tailers: map[string]*tailer{}, host: cfg.Host, catchUp: make(chan struct{}, 1)}
}

// queued returns every record in the agent's queue, in order.
func queued(t testing.TB, a *Agent) []Record {
	t.Helper()
	r := newQueueReader(a.q, a.q.ackPos())
	defer r.close()
	var out []Record
	for {
		rec, _, _, ok, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, rec)
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func stamp(i int) string {
	return t0.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000000000Z07:00")
}

type msg struct {
	stream int
	ts     int // milliseconds after t0
	text   string
}

func frames(msgs []msg) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		payload := stamp(m.ts) + " " + m.text
		var h [8]byte
		h[0] = byte(m.stream)
		binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
		b.Write(h[:])
		b.WriteString(payload)
	}
	return b.Bytes()
}

func testContainer(tty bool) *container.InspectResponse {
	return &container.InspectResponse{
		Name:   "/web-1",
		Config: &container.Config{Tty: tty, Labels: map[string]string{"hy-home.job": "infra", "hy-home.tier": "gateway", "com.docker.compose.service": "web"}},
	}
}

func readStream(t *testing.T, a *Agent, c *container.InspectResponse, cur Cursor, stream []byte, finish bool) {
	t.Helper()
	tl := &tailer{a: a, id: "cid1"}
	r := tl.newLogReader(context.Background(), c, cur)
	if err := r.read(bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if finish {
		if err := r.finish(); err != nil {
			t.Fatal(err)
		}
	}
}

func entryLines(recs []Record) []string {
	var out []string
	for _, r := range recs {
		if r.Kind == kindEntry {
			out = append(out, r.Labels.Get("stream")+":"+r.Line)
		}
	}
	return out
}

// Docker's partial pieces of a long line carry the first piece's time and
// may interleave with the other stream's lines.
var sample = []msg{
	{1, 1, "first\n"},
	{2, 2, strings.Repeat("x", dockerChunk)}, // stderr piece 1
	{1, 3, "second\n"},
	{2, 2, strings.Repeat("y", dockerChunk)}, // stderr piece 2
	{2, 2, "tail\n"},                         // stderr last piece
	{1, 4, "third\n"},
}

func TestLogReaderDemultiplexesAndJoinsPieces(t *testing.T) {
	a := newBareAgent(t, nil)
	readStream(t, a, testContainer(false), Cursor{}, frames(sample), false)
	recs := queued(t, a)
	got := entryLines(recs)
	long := strings.Repeat("x", dockerChunk) + strings.Repeat("y", dockerChunk) + "tail"
	want := []string{"stdout:first", "stdout:second", "stderr:" + long, "stdout:third"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines:\n got %.200q\nwant %.200q", got, want)
	}
	e := recs[0]
	if e.Labels.String() != `{host="h1", job="infra", service="web", source="logs", stream="stdout", tier="gateway"}` {
		t.Errorf("labels %s", e.Labels)
	}
	if e.Metadata.Get("container_id") != "cid1" || e.Metadata.Get("container_name") != "web-1" {
		t.Errorf("metadata %s", e.Metadata)
	}
	for _, r := range recs {
		if r.Kind == kindEntry && r.Labels.Get("stream") == "stderr" && r.Time != t0.Add(2*time.Millisecond).UnixNano() {
			t.Errorf("joined line stamped %d, want the first piece's time", r.Time)
		}
	}
}

// Every prefix of queued records is a possible crash point: resuming from
// the last queued position must yield exactly the lines not yet queued.
func TestLogReaderResumesExactlyFromAnyCrashPoint(t *testing.T) {
	full := newBareAgent(t, nil)
	readStream(t, full, testContainer(false), Cursor{}, frames(sample), true)
	all := queued(t, full)
	allLines := entryLines(all)
	for cut := 0; cut <= len(all); cut++ {
		var cur Cursor
		var before []string
		for _, r := range all[:cut] {
			cur = r.Cursor
			if r.Kind == kindEntry {
				before = append(before, r.Labels.Get("stream")+":"+r.Line)
			}
		}
		// The engine's answer to ?since=cur.Anchor: items stamped at or after it.
		var since []msg
		for _, m := range sample {
			if t0.Add(time.Duration(m.ts)*time.Millisecond).UnixNano() >= cur.Anchor {
				since = append(since, m)
			}
		}
		a := newBareAgent(t, nil)
		readStream(t, a, testContainer(false), cur, frames(since), true)
		after := entryLines(queued(t, a))
		// Lines of a long line that was queued only in part may be queued
		// again (Loki stores the exact duplicate once); nothing may be lost.
		got := map[string]int{}
		for _, l := range append(before, after...) {
			got[l]++
		}
		for _, l := range allLines {
			if got[l] == 0 {
				t.Fatalf("crash after record %d (cursor %+v): line %.40q lost", cut, cur, l)
			}
		}
		if dup := len(before) + len(after) - len(allLines); dup > 1 {
			t.Fatalf("crash after record %d: %d lines repeated", cut, dup)
		}
	}
}

func TestLogReaderSplitsLinesBeyondMaxLineSize(t *testing.T) {
	a := newBareAgent(t, func(c *Config) { c.MaxLineBytes = 20000 })
	var ms []msg
	for range 3 {
		ms = append(ms, msg{1, 5, strings.Repeat("z", dockerChunk)})
	}
	ms = append(ms, msg{1, 5, "end\n"})
	readStream(t, a, testContainer(false), Cursor{}, frames(ms), false)
	got := entryLines(queued(t, a))
	total := 0
	for _, l := range got {
		total += len(l) - len("stdout:")
		if len(l)-len("stdout:") > 20000 {
			t.Fatalf("piece of %d bytes beyond the 20000 limit", len(l))
		}
	}
	if len(got) != 3 || total != 3*dockerChunk+3 {
		t.Fatalf("%d pieces totalling %d bytes, want 3 totalling %d", len(got), total, 3*dockerChunk+3)
	}
	// A single complete message beyond the limit is split too (found by
	// FuzzLogStream: the limit may be set below Docker's 16 KiB pieces).
	b := newBareAgent(t, func(c *Config) { c.MaxLineBytes = 1024 })
	readStream(t, b, testContainer(false), Cursor{}, frames([]msg{{1, 1, strings.Repeat("w", 2500) + "\n"}}), false)
	var sizes []int
	for _, l := range entryLines(queued(t, b)) {
		sizes = append(sizes, len(l)-len("stdout:"))
	}
	if fmt.Sprint(sizes) != "[1024 1024 452]" {
		t.Fatalf("a 2500-byte message under a 1024-byte limit came out as %v", sizes)
	}
}

func TestLogReaderTTY(t *testing.T) {
	a := newBareAgent(t, nil)
	var b strings.Builder
	b.WriteString(stamp(1) + " hello\r\n")
	b.WriteString(stamp(2) + " " + strings.Repeat("a", dockerChunk)) // a piece: no newline
	b.WriteString(stamp(2) + " rest\r\n")
	b.WriteString(stamp(3) + " " + strings.Repeat("b", dockerChunk)) // exactly 16 KiB...
	b.WriteString(stamp(3) + " \r\n")                                // ...then its newline alone
	b.WriteString(stamp(4) + " unterminated")
	readStream(t, a, testContainer(true), Cursor{}, []byte(b.String()), true)
	got := entryLines(queued(t, a))
	want := []string{"stdout:hello", "stdout:" + strings.Repeat("a", dockerChunk) + "rest", "stdout:" + strings.Repeat("b", dockerChunk), "stdout:unterminated"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines:\n got %.120q\nwant %.120q", got, want)
	}
}

func TestLogReaderRejectsBrokenStreams(t *testing.T) {
	a := newBareAgent(t, nil)
	tl := &tailer{a: a, id: "c"}
	for name, stream := range map[string][]byte{
		"cut header":   {1, 0, 0},
		"cut payload":  {1, 0, 0, 0, 0, 0, 0, 9, 'a'},
		"unknown type": {7, 0, 0, 0, 0, 0, 0, 1, 'a'},
		"engine error": append([]byte{3, 0, 0, 0, 0, 0, 0, 4}, "boom"...),
		"huge frame":   {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
	} {
		r := tl.newLogReader(context.Background(), testContainer(false), Cursor{})
		if err := r.read(bytes.NewReader(stream)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFormatEvent(t *testing.T) {
	a := newBareAgent(t, nil)
	for _, tc := range []struct {
		typ, action string
		attrs       map[string]string
		oom         bool
		want        string
	}{
		{"container", "die", map[string]string{"name": "web", "image": "nginx:1", "exitCode": "137", "hy-home.tier": "gateway"}, true,
			"type=container action=die name=web image=nginx:1 exit_code=137 exit_signal=SIGKILL oom_killed=true id=ID"},
		{"container", "kill", map[string]string{"name": "web", "signal": "15"}, false, "type=container action=kill name=web signal=SIGTERM id=ID"},
		{"container", "exec_start: sh -c 'echo hi'", map[string]string{"name": "web"}, false, `type=container action=exec_start name=web exec="sh -c 'echo hi'" id=ID`},
		{"container", "health_status: unhealthy", map[string]string{"name": "web"}, false, "type=container action=health_status name=web health=unhealthy id=ID"},
		{"network", "connect", map[string]string{"name": "infra_net", "type": "bridge", "container": "c1"}, false, "type=network action=connect name=infra_net network_type=bridge container=c1 id=ID"},
		{"volume", "mount", map[string]string{"driver": "local", "container": "c1", "destination": "/data"}, false, "type=volume action=mount name=ID driver=local container=c1 destination=/data"},
		{"image", "tag", map[string]string{"name": "x:1"}, false, "type=image action=tag name=x:1 id=ID"},
	} {
		m := eventsMessage(tc.typ, tc.action, tc.attrs)
		if got := FormatEvent(&m, tc.oom); got != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.typ, tc.action, got, tc.want)
		}
	}
	m := eventsMessage("container", "die", map[string]string{"name": "web", "hy-home.job": "infra", "hy-home.tier": "gateway"})
	rec := a.eventRecord(&m, 5, Cursor{}, map[string]bool{})
	if rec.Labels.String() != `{host="h1", job="infra", source="events", tier="gateway"}` || rec.Metadata.Get("container_id") != "ID" {
		t.Errorf("event record labels %s metadata %s", rec.Labels, rec.Metadata)
	}
	n := eventsMessage("network", "create", map[string]string{"name": "n"})
	if rec := a.eventRecord(&n, 5, Cursor{}, map[string]bool{}); rec.Labels.String() != `{host="h1", job="docker", source="events"}` {
		t.Errorf("non-container event labels %s", rec.Labels)
	}
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	base := func() Config {
		return Config{LokiURL: "http://loki:3100", StateDir: "/tmp/x", Registerer: prometheus.NewRegistry()}
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.LokiURL = "" }, "the Loki URL is required"},
		{func(c *Config) { c.LokiURL = "loki:3100" }, "must be an http:// or https:// URL"},
		{func(c *Config) { c.Encoding = "xml" }, `encoding "xml" is not one of`},
		{func(c *Config) { c.StateDir = "" }, "state directory is required"},
		{func(c *Config) { c.BasicAuthUser = "u" }, "needs a password file"},
		{func(c *Config) { c.BasicAuthPasswordFile = "/p" }, "needs a user"},
		{func(c *Config) { c.BasicAuthUser, c.BasicAuthPasswordFile, c.BearerTokenFile = "u", "/p", "/t" }, "not both"},
		{func(c *Config) { c.QueueMaxBytes = 10 }, "queue cap must be at least 1 MiB"},
		{func(c *Config) { c.BatchWait = -time.Second }, "batch wait must not be negative"},
		{func(c *Config) { c.Events = "some" }, `events scope "some"`},
		{func(c *Config) { c.LabelRules = []LabelRule{{Name: "stream", From: []string{"x"}}} }, "reserved"},
		{func(c *Config) { c.LabelRules = []LabelRule{{Name: "a-b", From: []string{"x"}}} }, "not a valid Loki label name"},
		{func(c *Config) {
			c.LabelRules = []LabelRule{{Name: "a", From: []string{"x"}}, {Name: "a", From: []string{"y"}}}
		}, "defined twice"},
		{func(c *Config) { c.StaticLabels = Labels{{"env", ""}} }, "empty value"},
	} {
		c := base()
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
	c := base()
	got, err := c.withDefaults()
	if err != nil || got.LokiURL != "http://loki:3100/loki/api/v1/push" || got.Select.String() != "hy-home.tier" {
		t.Fatalf("defaults: %v %+v", err, got)
	}
}

func TestSelector(t *testing.T) {
	sel, err := ParseSelector("hy-home.tier, hy-home.tier!=app, !hy-home.skip, com.docker.compose.project=infra")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"hy-home.tier": "gateway", "com.docker.compose.project": "infra"}, true},
		{map[string]string{"hy-home.tier": "app", "com.docker.compose.project": "infra"}, false},
		{map[string]string{"hy-home.tier": "gateway", "com.docker.compose.project": "infra", "hy-home.skip": ""}, false},
		{map[string]string{"com.docker.compose.project": "infra"}, false},
	} {
		if got := sel.Matches(tc.labels); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.labels, got, tc.want)
		}
	}
	for _, bad := range []string{"a b", "=x", "!"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q) accepted", bad)
		}
	}
	if s, _ := ParseSelector(""); !s.Matches(nil) {
		t.Error("the empty selector must select everything")
	}
}

func eventsMessage(typ, action string, attrs map[string]string) events.Message {
	return events.Message{Type: events.Type(typ), Action: events.Action(action), Actor: events.Actor{ID: "ID", Attributes: attrs}, Scope: "local"}
}

// A read that ends while a long line is unfinished hands its state to the
// next read from the same position: lines it shipped past the unfinished one
// are not shipped again, and the long line comes out whole.
func TestLogReaderCarriesShippedFramesToTheNextRead(t *testing.T) {
	a := newBareAgent(t, nil)
	tl := &tailer{a: a, id: "cid1"}
	first := tl.newLogReader(context.Background(), testContainer(false), Cursor{})
	if err := first.read(bytes.NewReader(frames(sample[:4]))); err != nil { // stderr's last piece not yet written
		t.Fatal(err)
	}
	c := first.carried()
	second := tl.newLogReader(context.Background(), testContainer(false), c.cursor)
	second.redone = c.done
	var since []msg
	for _, m := range sample {
		if t0.Add(time.Duration(m.ts)*time.Millisecond).UnixNano() >= c.cursor.Anchor {
			since = append(since, m)
		}
	}
	// The engine answers ?since= with the frames in file order; the
	// already-consumed prefix is skipped by the cursor.
	if err := second.read(bytes.NewReader(frames(since))); err != nil {
		t.Fatal(err)
	}
	if err := second.finish(); err != nil {
		t.Fatal(err)
	}
	got := entryLines(queued(t, a))
	long := strings.Repeat("x", dockerChunk) + strings.Repeat("y", dockerChunk) + "tail"
	want := []string{"stdout:first", "stdout:second", "stderr:" + long, "stdout:third"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines:\n got %.200q\nwant %.200q", got, want)
	}
}

// When json-file rotates under a follow stream the engine sends a few
// lines again; they are dropped, and the position does not count them.
func TestLogReaderDropsEngineReplays(t *testing.T) {
	a := newBareAgent(t, nil)
	stream := []msg{{1, 1, "a\n"}, {1, 2, "b\n"}, {1, 3, "c\n"}, {1, 2, "b\n"}, {1, 3, "c\n"}, {1, 4, "d\n"}}
	readStream(t, a, testContainer(false), Cursor{}, frames(stream), false)
	recs := queued(t, a)
	if got := fmt.Sprint(entryLines(recs)); got != "[stdout:a stdout:b stdout:c stdout:d]" {
		t.Fatalf("lines %s", got)
	}
	if got := metricValue(a.m.replays); got != 2 {
		t.Fatalf("replays metric %v, want 2", got)
	}
	// Positions count the four distinct lines: a resume from the files
	// (where each line is once) after "c" skips exactly a, b and c.
	if cur := recs[2].Cursor; cur.Skip != 3 {
		t.Fatalf("position after c: %+v, want 3 lines skipped", cur)
	}
}
