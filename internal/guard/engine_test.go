package guard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// TestMain removes everything labelled with this run's ID when the tests
// end, pass or fail: containers created through the guard carry the label
// too.
func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// testGuard is a guard in front of the machine's real engine, listening on
// one unix socket per built-in profile.
type testGuard struct {
	g       *Guard
	sockets map[string]string // profile → socket path
	metrics string            // host:port
	logs    *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// engineHost is the real engine's address, for the guard's --upstream.
func engineHost(t testing.TB) string {
	t.Helper()
	dockertest.Client(t) // skips (or fails under CI) without an engine
	ep, err := docker.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	return ep.Host
}

type guardOption func(*Config)

// startGuard serves the built-in profiles on sockets in a temporary
// directory and stops the guard when the test ends.
func startGuard(t testing.TB, opts ...guardOption) *testGuard {
	t.Helper()
	dir := t.TempDir()
	tg := &testGuard{sockets: map[string]string{}, logs: &syncBuffer{}}
	cfg := Config{
		Upstream:       engineHost(t),
		MetricsAddress: "127.0.0.1:0",
		ADRDirs:        []string{adrDir(t)},
		Logger:         slog.New(slog.NewJSONHandler(tg.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:     prometheus.NewRegistry(),
	}
	cfg.Gatherer = cfg.Registerer.(prometheus.Gatherer)
	for _, p := range []string{ProfileReadonly, ProfileShipper, ProfileAdmission} {
		s := filepath.Join(dir, p+".sock")
		tg.sockets[p] = s
		cfg.Listeners = append(cfg.Listeners, Listener{Network: "unix", Address: s, Profile: p})
	}
	for _, o := range opts {
		o(&cfg)
	}
	for _, l := range cfg.Listeners {
		if l.Network == "unix" {
			tg.sockets[l.Profile] = l.Address
		}
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	tg.g = g
	tg.metrics = g.MetricsAddr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.Hang)
		defer cancel()
		if err := g.Stop(ctx); err != nil {
			t.Errorf("stopping the guard: %v", err)
		}
		if t.Failed() {
			t.Logf("guard log:\n%s", tg.logs.String())
		}
	})
	return tg
}

// adrDir writes the ADRs the tests cite, each for the workloads of compose
// project (or stack) hyhome-test running the test image: ADR-0001 is
// Accepted and exempts privileged and docker-socket; ADR-0002 is only
// Proposed; ADR-0003 is Accepted and exempts no-new-privileges. They count
// only on a listener whose profile honours exemptions (withExemptions).
func adrDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, status, title string, exempts ...string) {
		text := fmt.Sprintf("---\nstatus: %s\nexempts: [%s]\napplies_to:\n  - project: %s\n    image: %s\n---\n\n# %s\n",
			status, strings.Join(exempts, ", "), testProject, testImageRepo, title)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0001-test-exemption.md", "Accepted", "ADR-0001: a test container may run privileged", "privileged", "docker-socket")
	write("0002-proposed.md", "Proposed", "ADR-0002: not yet", "privileged")
	write("0003-swarm-nnp.md", "Accepted", "ADR-0003: Swarm services on engines before API 1.46", "no-new-privileges")
	return dir
}

// The compose project and image repository the test ADRs cover.
const (
	testProject   = "hyhome-test"
	testImageRepo = "hyhome-test/testprog" // dockertest's images, any tag
)

// client returns an engine Go client talking to the guard's socket for a
// profile, with version negotiation as every real client does.
func (tg *testGuard) client(t testing.TB, profile string) *client.Client {
	t.Helper()
	c, err := client.New(client.WithHost("unix://" + tg.sockets[profile]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// response is a raw exchange's answer.
type response struct {
	status int
	header http.Header
	body   string
}

// message is the engine-style error message of a response.
func (r response) message() string {
	var e struct{ Message string }
	if json.Unmarshal([]byte(r.body), &e) == nil && e.Message != "" {
		return e.Message
	}
	return r.body
}

// raw writes request bytes to a socket as they are and reads one response.
func raw(t testing.TB, socket, request string) response {
	t.Helper()
	conn, err := net.DialTimeout("unix", socket, testenv.Hang)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testenv.Hang))
	// Write concurrently: the guard may answer (413) without reading a
	// large body, and then closes the connection under the writer.
	go func() { _, _ = io.WriteString(conn, request) }()
	method, _, _ := strings.Cut(request, " ")
	br := bufio.NewReader(conn)
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading the response to %q: %v", firstLine(request), err)
		}
		if resp.StatusCode != http.StatusContinue {
			break
		}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// request renders a request with a JSON body and Content-Length.
func request(method, target, body string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: docker\r\n", method, target)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		if !strings.Contains(strings.ToLower(strings.Join(headers, "\n")), "content-type") {
			b.WriteString("Content-Type: application/json\r\n")
		}
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("Connection: close\r\n\r\n")
	b.WriteString(body)
	return b.String()
}

// compliant is a container create request that passes every error rule:
// non-root, cap_drop ALL, no-new-privileges, memory and pids limits,
// read-only root, tier and metrics labels, a health check. It carries the
// test run's label so that dockertest.Sweep removes what it creates.
func compliant(image string, edit ...func(*container.CreateRequest)) container.CreateRequest {
	pids := int64(64)
	req := container.CreateRequest{
		Config: &container.Config{
			Image: image,
			User:  "65534:65534",
			Cmd:   []string{"sleep"},
			Labels: map[string]string{
				"hy-home.tier":         "app",
				"hy-home.metrics.port": "9100",
				dockertest.LabelKey:    dockertest.RunID,
			},
			Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/testprog", "probe"}},
		},
		HostConfig: &container.HostConfig{
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges:true"},
			ReadonlyRootfs: true,
			Resources:      container.Resources{Memory: 64 << 20, PidsLimit: &pids},
		},
	}
	for _, e := range edit {
		e(&req)
	}
	return req
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// removeCreated removes a container a test created through the guard.
func removeCreated(t testing.TB, resp response) {
	t.Helper()
	var cr struct{ Id string }
	if resp.status == http.StatusCreated && json.Unmarshal([]byte(resp.body), &cr) == nil && cr.Id != "" {
		t.Cleanup(func() { dockertest.RemoveContainer(dockertest.Client(t), cr.Id) })
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
