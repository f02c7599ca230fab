package guard

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// The engine's Go client works through the guard unchanged: version
// negotiation, lists, inspect, events, and (admission) create, attach with
// stdin, start, wait, and logs through the shipper profile.
func TestGoClient(t *testing.T) {
	tg := startGuard(t)
	img := dockertest.Build(t)
	ctx := ctxT(t, dockertest.CallTimeout)

	ro := tg.client(t, ProfileReadonly)
	if _, err := ro.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if ro.ClientVersion() != "1.41" {
		t.Errorf("negotiated API %s through the guard, want the engine's 1.41", ro.ClientVersion())
	}
	list, err := ro.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatalf("container list: %v", err)
	}
	_ = list
	if _, err := ro.Info(ctx, client.InfoOptions{}); err != nil {
		t.Fatalf("info: %v", err)
	}
	if _, err := ro.ImageInspect(ctx, img.NonRoot); err != nil {
		t.Fatalf("image inspect: %v", err)
	}
	if _, err := ro.ContainerCreate(ctx, client.ContainerCreateOptions{Config: compliant(img.NonRoot).Config}); err == nil {
		t.Fatal("readonly created a container")
	}

	adm := tg.client(t, ProfileAdmission)
	req := compliant(img.NonRoot, func(r *containerCreateRequest) {
		r.Config.Cmd = []string{"cat"}
		r.Config.OpenStdin, r.Config.StdinOnce, r.Config.AttachStdin, r.Config.AttachStdout = true, true, true, true
	})
	created, err := adm.ContainerCreate(ctx, client.ContainerCreateOptions{Config: req.Config, HostConfig: req.HostConfig})
	if err != nil {
		t.Fatalf("create through admission: %v", err)
	}
	t.Cleanup(func() { dockertest.RemoveContainer(dockertest.Client(t), created.ID) })
	att, err := adm.ContainerAttach(ctx, created.ID, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	defer att.Close()
	if _, err := adm.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	if _, err := io.WriteString(att.Conn, "both ways\n"); err != nil {
		t.Fatal(err)
	}
	if err := att.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(att.Reader)
	if err != nil {
		t.Fatalf("reading the attached stream: %v", err)
	}
	if !bytes.Contains(out, []byte("both ways\n")) {
		t.Fatalf("attached stdout %q lacks what was written to stdin", out)
	}
	wait := adm.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{})
	select {
	case r := <-wait.Result:
		if r.StatusCode != 0 {
			t.Fatalf("exit status %d", r.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatalf("wait: %v", err)
	}
	logs, err := tg.client(t, ProfileShipper).ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatalf("logs through shipper: %v", err)
	}
	b, _ := io.ReadAll(logs)
	logs.Close()
	if !bytes.Contains(b, []byte("both ways")) {
		t.Fatalf("logs %q", b)
	}
}

// Events flow through the guard as they happen: the stream is not
// buffered, and the head arrives before any event. The filter matches
// exactly one event, the create of the test's own container, and nothing
// follows it on the stream: a guard that buffered the stream (until a
// buffer filled or the stream ended) would never deliver it, so its arrival
// is the proof. How soon after the engine's it arrives is logged, not
// judged: guardbench measures the guard's added latency.
func TestEventsStreamUnbuffered(t *testing.T) {
	tg := startGuard(t)
	img := dockertest.Build(t)
	ctx, cancel := context.WithCancel(ctxT(t, testenv.Hang))
	defer cancel()
	ro := tg.client(t, ProfileReadonly)
	direct := dockertest.Client(t)
	f := client.Filters{}.Add("label", dockertest.LabelKey+"="+dockertest.RunID).Add("type", "container").Add("event", "create").Add("label", "hyhome.guard.test=events-"+dockertest.RunID)
	// since: the engine replays what happened after it, so the event is
	// delivered however late either subscription reaches the engine.
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	viaGuard := ro.Events(ctx, client.EventsListOptions{Filters: f, Since: since})
	viaEngine := direct.Events(ctx, client.EventsListOptions{Filters: f, Since: since})

	id, _ := dockertest.Run(t, dockertest.Spec{Name: "ev", Image: img.NonRoot, NoStart: true, Labels: map[string]string{"hyhome.guard.test": "events-" + dockertest.RunID}})
	var tGuard, tEngine time.Time
	for tGuard.IsZero() || tEngine.IsZero() {
		select {
		case m := <-viaGuard.Messages:
			if m.Actor.ID == id && tGuard.IsZero() {
				tGuard = time.Now()
			}
		case m := <-viaEngine.Messages:
			if m.Actor.ID == id && tEngine.IsZero() {
				tEngine = time.Now()
			}
		case err := <-viaGuard.Err:
			t.Fatalf("events through the guard: %v (engine's copy at %v)", err, tEngine)
		case err := <-viaEngine.Err:
			t.Fatalf("events from the engine: %v", err)
		}
	}
	t.Logf("the event reached the guard's client %v after the engine's", tGuard.Sub(tEngine))
}

// HEAD and keep-alive: several requests, HEAD included, on one connection.
func TestKeepAliveAndHEAD(t *testing.T) {
	tg := startGuard(t)
	conn, err := net.Dial("unix", tg.sockets[ProfileReadonly])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i, rq := range []string{"HEAD /_ping", "GET /_ping", "GET /v1.41/version", "HEAD /_ping", "GET /v1.41/containers/json?limit=1"} {
		method, target, _ := strings.Cut(rq, " ")
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: docker\r\n\r\n", method, target)
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("request %d (%s) on the kept-alive connection: %v", i, rq, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", rq, resp.StatusCode, b)
		}
		if method == "HEAD" && (len(b) != 0 || resp.Header.Get("Api-Version") == "") {
			t.Fatalf("HEAD /_ping: body %q, Api-Version %q", b, resp.Header.Get("Api-Version"))
		}
		if resp.Close {
			t.Fatalf("%s closed the connection", rq)
		}
	}
}

// /metrics counts verdicts by profile, reason and rule; /healthz and
// /readyz answer on the metrics listener.
func TestMetricsAndHealth(t *testing.T) {
	tg := startGuard(t)
	img := dockertest.Build(t)
	raw(t, tg.sockets[ProfileReadonly], request("GET", "/_ping", ""))
	raw(t, tg.sockets[ProfileReadonly], request("POST", "/v1.41/containers/create", "{}"))
	raw(t, tg.sockets[ProfileAdmission], request("POST", "/v1.41/containers/create", mustJSON(t, compliant(img.NonRoot, func(r *containerCreateRequest) { r.HostConfig.Privileged = true }))))
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + tg.metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`hyhome_guard_requests_total{profile="readonly",verdict="allow"} 1`,
		`hyhome_guard_requests_total{profile="readonly",verdict="deny"} 1`,
		`hyhome_guard_denials_total{profile="readonly",reason="profile",rule=""} 1`,
		`hyhome_guard_denials_total{profile="admission",reason="policy",rule="privileged"} 1`,
		`hyhome_guard_request_duration_seconds_bucket{profile="readonly",verdict="allow",le="+Inf"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}
}

// An engine that cannot be reached fails closed with 502, and /readyz says
// so; the guard itself stays healthy.
func TestUpstreamDown(t *testing.T) {
	engineHost(t)
	tg := startGuard(t, func(c *Config) { c.Upstream = "unix://" + t.TempDir() + "/nothing.sock" })
	r := raw(t, tg.sockets[ProfileReadonly], request("GET", "/v1.41/containers/json", ""))
	if r.status != http.StatusBadGateway || !strings.Contains(r.message(), "did not answer") {
		t.Fatalf("%d %s", r.status, r.message())
	}
	r = raw(t, tg.sockets[ProfileAdmission], request("POST", "/v1.41/containers/create", mustJSON(t, compliant("x:1", func(r *containerCreateRequest) { r.Config.User = "" }))))
	if r.status != http.StatusBadGateway || !strings.Contains(r.message(), "cannot ask the engine") {
		t.Fatalf("a lookup that fails must deny: %d %s", r.status, r.message())
	}
	resp, err := http.Get("http://" + tg.metrics + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the engine down: %d", resp.StatusCode)
	}
}

// Stop ends streams at once and lets the socket go. The events stream's
// filter matches nothing, so the stream never ends by itself: a Stop that
// waited for it would wait until its context expired and return that error.
// Stop returning nil is the proof that it ended the stream itself; the
// context only bounds a hang.
func TestGracefulStop(t *testing.T) {
	engineHost(t)
	tg := startGuard(t)
	ctx := ctxT(t, testenv.Hang)
	// A filter no event matches: the client stops reading its stream while
	// an event waits to be received, and this engine is busy.
	ro := tg.client(t, ProfileReadonly)
	ev := ro.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.Add("label", "hyhome-guard-test-nothing="+dockertest.RunID)})
	waitInFlight(t, tg, 1)
	sctx, cancel := context.WithTimeout(context.Background(), testenv.Hang)
	defer cancel()
	start := time.Now()
	if err := tg.g.Stop(sctx); err != nil {
		t.Fatalf("Stop with an open events stream: %v", err)
	}
	t.Logf("Stop returned after %v with an open events stream", time.Since(start))
	for done := false; !done; {
		select {
		case <-ev.Messages:
		case err := <-ev.Err:
			if err == nil {
				t.Error("the events stream ended without an error")
			}
			done = true
		case <-ctx.Done():
			t.Fatal("the events stream is still open after Stop")
		}
	}
	if _, err := net.Dial("unix", tg.sockets[ProfileReadonly]); err == nil {
		t.Error("the socket still accepts connections after Stop")
	}
}

// A plugin created from a local archive accepts no privileges at install;
// enabling it is where its configuration (host network, CAP_SYS_ADMIN, a
// bind of /) is judged.
func TestPluginEnableIsJudged(t *testing.T) {
	name := dockertest.PluginPrefix + dockertest.RunID + "-plugin:1" // so that a sweep finds it
	tg := startGuard(t, withProfiles(t, "profiles:\n  plugins:\n    include: [admission]\n    plugins: ["+name+"]\n"))
	c := dockertest.Client(t)
	ctx := ctxT(t, dockertest.CallTimeout)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	config := `{"Description":"hyhome guard test plugin","Documentation":"https://example.invalid","Interface":{"Types":["docker.volumedriver/1.0"],"Socket":"p.sock"},"Entrypoint":["/testprog","sleep"],"WorkDir":"","Network":{"Type":"host"},"Linux":{"Capabilities":["CAP_SYS_ADMIN"],"AllowAllDevices":false,"Devices":null},"Mounts":[{"Name":"root","Description":"","Settable":["source"],"Source":"/","Destination":"/host","Type":"bind","Options":["rbind"]}],"Env":[],"Args":{"Name":"","Description":"","Settable":null,"Value":null}}`
	for _, h := range []*tar.Header{
		{Name: "config.json", Mode: 0o644, Size: int64(len(config))},
		{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Name == "config.json" {
			_, _ = io.WriteString(tw, config)
		}
	}
	tw.Close()
	if _, err := c.PluginCreate(ctx, &buf, client.PluginCreateOptions{RepoName: name}); err != nil {
		t.Fatalf("creating the plugin directly: %v", err)
	}
	t.Cleanup(func() { _, _ = c.PluginRemove(context.Background(), name, client.PluginRemoveOptions{Force: true}) })

	r := raw(t, tg.socket(t, "plugins"), request("POST", "/v1.41/plugins/"+name+"/enable?timeout=5", ""))
	if r.status != http.StatusForbidden {
		t.Fatalf("enable: %d %s", r.status, r.message())
	}
	for _, want := range []string{"host-namespaces", "cap-add", "SYS_ADMIN", "bind-mount-readonly", "docker-socket"} {
		if !strings.Contains(r.message(), want) {
			t.Errorf("enable denial %q lacks %s", r.message(), want)
		}
	}
	p, err := c.PluginInspect(ctx, name, client.PluginInspectOptions{})
	if err != nil || p.Plugin.Enabled {
		t.Fatalf("plugin enabled after the denial (%v)", err)
	}
}

// containerCreateRequest shortens compliant()'s edit functions.
type containerCreateRequest = container.CreateRequest

// waitInFlight waits until the guard is serving at least n requests, as its
// own metrics say, bounded by testenv.Hang.
func waitInFlight(t *testing.T, tg *testGuard, n int) {
	t.Helper()
	want := "hyhome_guard_requests_in_flight "
	deadline := time.Now().Add(testenv.Hang)
	for {
		resp, err := http.Get("http://" + tg.metrics + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, want); ok {
					if f, err := strconv.ParseFloat(v, 64); err == nil && f >= float64(n) {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guard never served %d requests at once", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
