// Command guardbench measures hyhome guard against the engine's own socket
// in one run: GET /_ping, GET /containers/json and a container create+remove
// cycle at 1 and 16 concurrent clients (p50/p99 latency, throughput), the
// latency the guard adds to each request (from its Server-Timing header:
// the client's time minus the engine's, request by request), the delay it
// adds to events, its idle RSS after a quiet period, and its RSS while 200
// clients send slow bodies. It ends with the figures against issue 11's
// targets.
//
// Direct, guarded and reference rounds alternate, so that a machine busy
// with other work slows all alike; figures are pooled over the rounds. The
// guard runs as the stack runs it: the built binary, logging every verdict,
// with the stack's GOMEMLIMIT.
//
//	go run ./bench/guardbench [-duration 3s] [-rounds 3]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/guard"
)

const benchLabel = "hy-home.bench.guard"

// The guard's memory settings in the reference stack (deploy/compose.yaml).
const (
	stackMemoryLimit = 32 << 20
	stackGOMEMLIMIT  = "25MiB"
)

// cell is one scenario at one concurrency, for the targets.
type cell struct {
	name                        string
	conc                        int
	direct, guard, relay, floor float64 // requests per second
	addedP99, ownP99            time.Duration
}

// target prints one figure against its target.
func target(what, where string, got float64, op string, want float64, unit, note string) {
	ok := got < want
	if op == ">=" {
		ok = got >= want
	}
	verdict := "met"
	if !ok {
		verdict = "NOT met"
	}
	fmt.Printf("  %-58s %-26s %8.2f%s (target %s %.0f%s) %s %s\n", what, where, got, unit, op, want, unit, verdict, note)
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}

func main() { os.Exit(run()) }

func run() int {
	duration := flag.Duration("duration", 3*time.Second, "length of one measured round per cell")
	rounds := flag.Int("rounds", 3, "alternating direct/guard rounds per cell")
	engine := flag.String("engine", "/var/run/docker.sock", "the engine's unix socket")
	events := flag.Int("events", 60, "events to time through both paths")
	procs := flag.Int("guard-gomaxprocs", 0, "GOMAXPROCS for the guard process (0: Go's default)")
	serveRP := flag.String("serve-reverse-proxy", "", "internal: serve net/http/httputil.ReverseProxy to the engine on this socket")
	serveRelay := flag.String("serve-relay", "", "internal: relay bytes to the engine on this socket, without reading them")
	serveFloor := flag.String("serve-http-floor", "", "internal: serve HTTP to the engine on this socket, parsing both messages and nothing more")
	flag.Parse()
	if *serveRelay != "" {
		return serveRelayProxy(*serveRelay, *engine)
	}
	if *serveFloor != "" {
		return serveHTTPFloor(*serveFloor, *engine)
	}
	if *serveRP != "" {
		return serveReverseProxy(*serveRP, *engine)
	}
	if err := bench(*engine, *duration, *rounds, *events, *procs); err != nil {
		fmt.Fprintln(os.Stderr, "guardbench:", err)
		return 1
	}
	return 0
}

func bench(engineSock string, d time.Duration, rounds, nEvents, procs int) error {
	dir, err := os.MkdirTemp("", "guardbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, err := client.New(client.WithHost("unix://" + engineSock))
	if err != nil {
		return err
	}
	defer c.Close()

	// The guard as users run it: the built binary, logging every verdict.
	bin, err := dockertest.BuildBinary("./cmd/hyhome", dir, "hyhome")
	if err != nil {
		return err
	}
	img := "hyhome-bench/guard:" + strconv.FormatInt(time.Now().Unix(), 36)
	tp, err := dockertest.BuildBinary("./internal/dockertest/testprog", dir, "testprog")
	if err != nil {
		return err
	}
	if err := dockertest.BuildScratchImage(ctx, c, img, tp, "/testprog", "65534:65534", []string{"LABEL " + benchLabel + "=1"}); err != nil {
		return err
	}
	defer func() {
		_, _ = c.ImageRemove(context.Background(), img, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}()
	defer removeBenchContainers(c)

	ro, adm := filepath.Join(dir, "ro.sock"), filepath.Join(dir, "adm.sock")
	logf, err := os.Create(filepath.Join(dir, "guard.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "guard", "--listen", "unix://"+ro+"=readonly", "--listen", "unix://"+adm+"=admission",
		"--upstream", "unix://"+engineSock, "--metrics-listen", "", "--server-timing")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GOMEMLIMIT="+stackGOMEMLIMIT)
	if procs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	}()
	if err := waitSocket(adm, 10*time.Second); err != nil {
		return err
	}
	// What any proxy hop costs, measured the same way: the standard
	// library's reverse proxy (HTTP, no checks, no logs), and a byte relay
	// that pairs each client connection with one to the engine and copies
	// bytes both ways without reading them: the floor of any proxy process,
	// whatever it does with the requests.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	refs := []*reference{
		{name: "net/http/httputil.ReverseProxy (HTTP, no checks, no logs)", flag: "-serve-reverse-proxy", sock: filepath.Join(dir, "rp.sock")},
		{name: "HTTP floor (net/http server, kept-alive HTTP/1.1 to the engine, no checks, no logs)", flag: "-serve-http-floor", sock: filepath.Join(dir, "floor.sock")},
		{name: "byte relay (one engine connection per client connection, nothing parsed)", flag: "-serve-relay", sock: filepath.Join(dir, "relay.sock")},
	}
	relay, floor := refs[2], refs[1]
	for _, ref := range refs {
		ref.cmd = exec.Command(self, ref.flag, ref.sock, "-engine", engineSock)
		if procs > 0 {
			ref.cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
		}
		if err := ref.cmd.Start(); err != nil {
			return err
		}
		defer func() {
			_ = ref.cmd.Process.Kill()
			_, _ = ref.cmd.Process.Wait()
		}()
		if err := waitSocket(ref.sock, 10*time.Second); err != nil {
			return err
		}
	}
	time.Sleep(time.Second)
	rssStart := readRSS(cmd.Process.Pid)
	// The guard's first quiet period (--idle-release, 10 s by default)
	// releases what start-up left behind.
	time.Sleep(guard.DefaultIdleRelease + 2*time.Second)
	rssStartQuiet := readRSS(cmd.Process.Pid)

	fmt.Printf("hyhome guard benchmark: %d rounds of %v per cell, direct, guard and references alternating\n", rounds, d)
	fmt.Printf("engine %s; guard %s (readonly for GETs, admission for create+remove, GOMEMLIMIT=%s); %d CPUs\n", engineSock, bin, stackGOMEMLIMIT, numCPU())
	fmt.Printf("added = the client's time minus the engine's time for the same request (the guard's Server-Timing header)\n\n")
	fmt.Printf("%-24s %3s | %9s %9s %8s | %9s %9s %8s | %10s %10s | %6s %8s | %s\n",
		"request", "c", "direct p50", "p99", "req/s", "guard p50", "p99", "req/s", "added p50", "added p99", "thr", "of relay", "guard CPU/req")

	body := createBody(img)
	scenarios := []struct {
		name      string
		guardSock string
		do        func(hc *http.Client) (timing, error)
	}{
		{"GET /_ping", ro, func(hc *http.Client) (timing, error) { return get(hc, "/_ping") }},
		{"GET /containers/json", ro, func(hc *http.Client) (timing, error) { return get(hc, "/v1.41/containers/json?all=1") }},
		{"create+remove", adm, func(hc *http.Client) (timing, error) { return createRemove(hc, body) }},
	}
	var cells []cell
	for _, s := range scenarios {
		for _, conc := range []int{1, 16} {
			var direct, guard result
			var guardCPU time.Duration
			refRes := make([]result, len(refs))
			refCPU := make([]time.Duration, len(refs))
			for r := 0; r < rounds; r++ {
				direct.add(load(engineSock, conc, d, s.do))
				c0 := cpuTime(cmd.Process.Pid)
				guard.add(load(s.guardSock, conc, d, s.do))
				guardCPU += cpuTime(cmd.Process.Pid) - c0
				for i, ref := range refs {
					c0 = cpuTime(ref.cmd.Process.Pid)
					refRes[i].add(load(ref.sock, conc, d, s.do))
					refCPU[i] += cpuTime(ref.cmd.Process.Pid) - c0
				}
			}
			if direct.errs > 0 || guard.errs > 0 {
				fmt.Printf("  (errors: direct %d, guard %d; first: %v / %v)\n", direct.errs, guard.errs, direct.firstErr, guard.firstErr)
			}
			dp50, dp99 := direct.pct(50), direct.pct(99)
			gp50, gp99 := guard.pct(50), guard.pct(99)
			slices.Sort(guard.added)
			slices.Sort(guard.own)
			relayRes := refRes[slices.Index(refs, relay)]
			c := cell{name: s.name, conc: conc, direct: direct.rps(), guard: guard.rps(), relay: relayRes.rps(),
				floor: refRes[slices.Index(refs, floor)].rps(), addedP99: pctOf(guard.added, 99), ownP99: pctOf(guard.own, 99)}
			cells = append(cells, c)
			fmt.Printf("%-24s %3d | %9s %9s %8.0f | %9s %9s %8.0f | %10s %10s | %5.0f%% %7.0f%% | %6.1fµs\n",
				s.name, conc, ms(dp50), ms(dp99), direct.rps(), ms(gp50), ms(gp99), guard.rps(),
				ms(pctOf(guard.added, 50)), ms(c.addedP99), 100*guard.rps()/direct.rps(), 100*guard.rps()/relayRes.rps(),
				float64(guardCPU.Microseconds())/float64(max(guard.n, 1)))
			for i, ref := range refs {
				rr := &refRes[i]
				if rr.errs > 0 {
					ref.lines = append(ref.lines, fmt.Sprintf("  (errors: %d; first: %v)", rr.errs, rr.firstErr))
				}
				ref.lines = append(ref.lines, fmt.Sprintf("%-24s %3d | %9s %9s %8.0f | %10s %10s %5.0f%% | %6.1fµs",
					s.name, conc, ms(rr.pct(50)), ms(rr.pct(99)), rr.rps(), ms(rr.pct(50)-dp50), ms(rr.pct(99)-dp99),
					100*rr.rps()/direct.rps(), float64(refCPU[i].Microseconds())/float64(max(rr.n, 1))))
			}
		}
	}

	for _, ref := range refs {
		fmt.Printf("\nreference: %s, same rounds\n", ref.name)
		fmt.Printf("%-24s %3s | %9s %9s %8s | %10s %10s %6s | %s\n", "request", "c", "p50", "p99", "req/s", "p50-direct", "p99-direct", "thr", "CPU/req")
		for _, l := range ref.lines {
			fmt.Println(l)
		}
	}
	fmt.Println()
	deltas, err := eventDelays(c, engineSock, ro, img, nEvents)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	slices.Sort(deltas)
	fmt.Printf("events through the guard vs direct (%d events, image tag/untag): delay p50 %s, p99 %s, max %s\n",
		len(deltas), ms(pctOf(deltas, 50)), ms(pctOf(deltas, 99)), ms(deltas[len(deltas)-1]))

	time.Sleep(5 * time.Second)
	rssIdle := readRSS(cmd.Process.Pid)
	time.Sleep(guard.DefaultIdleRelease)
	rssIdleQuiet := readRSS(cmd.Process.Pid)
	fmt.Printf("guard RSS 1 s after start: %s\n", rssStart)
	fmt.Printf("guard RSS idle after start, past the first quiet period: %s\n", rssStartQuiet)
	fmt.Printf("guard RSS idle 5 s after the load: %s\n", rssIdle)
	fmt.Printf("guard RSS idle 15 s after the load, past a quiet period: %s\n", rssIdleQuiet)
	// What the quiet-period release costs the next request: the binary's
	// pages it needs fault back in from the page cache.
	hc := unixClient(ro)
	t0 := time.Now()
	_, cerr := get(hc, "/v1.41/containers/json?all=1")
	cold := time.Since(t0)
	t0 = time.Now()
	_, werr := get(hc, "/v1.41/containers/json?all=1")
	warm := time.Since(t0)
	hc.CloseIdleConnections()
	fmt.Printf("first GET /containers/json after the quiet period: %s (the next: %s) %v %v\n", ms(cold), ms(warm), errOrEmpty(cerr), errOrEmpty(werr))

	att := slowBodies(cmd.Process.Pid, ro, adm, 20*time.Second)
	fmt.Printf("\nslow bodies (200 clients on admission and 50 on readonly announce 4 MiB and send nothing, then 200 send 4 KiB every 100 ms; they reconnect when closed):\n")
	fmt.Printf("  guard RSS peak %.1f MiB, private peak %.1f MiB (stack limit %d MiB); attacker connections %d, answers %v; honest GETs %d ok, %d failed\n",
		float64(att.peak)/(1<<20), float64(att.peakAnon)/(1<<20), stackMemoryLimit>>20, att.conns, att.answers, att.honestOK, att.honestFailed)

	fmt.Printf("\ntargets (issue 11), this run:\n")
	for _, c := range cells {
		if strings.HasPrefix(c.name, "GET") {
			target("GET throughput at least 90% of the byte relay", fmt.Sprintf("%s c=%d", c.name, c.conc), 100*c.guard/c.relay, ">=", 90, "%",
				fmt.Sprintf("(the HTTP floor, parsing both messages and nothing more: %.0f%% of the relay)", 100*c.floor/c.relay))
		} else {
			target("create/remove at least 85% of direct", fmt.Sprintf("%s c=%d", c.name, c.conc), 100*c.guard/c.direct, ">=", 85, "%", "")
		}
	}
	for _, c := range cells {
		if c.conc == 1 {
			target("added p99 under 1 ms at 1 client", c.name, float64(c.addedP99)/float64(time.Millisecond), "<", 1, " ms",
				fmt.Sprintf("(without the engine's answers to the judgement's lookups: %s)", ms(c.ownP99)))
		}
	}
	target("idle RSS under 20 MiB after a quiet period", "after the load", float64(rssIdleQuiet.total)/(1<<20), "<", 20, " MiB",
		fmt.Sprintf("(private %.1f MiB)", float64(rssIdleQuiet.anon)/(1<<20)))
	target("RSS under the stack's limit during the slow-body attack", "peak", float64(att.peak)/(1<<20), "<", stackMemoryLimit>>20, " MiB", "")

	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { _, err := cmd.Process.Wait(); done <- err }()
	select {
	case <-done:
		stopped = true
	case <-time.After(15 * time.Second):
		return errors.New("the guard did not stop on SIGTERM")
	}
	return nil
}

// reference is a proxy measured beside the guard.
type reference struct {
	name, flag, sock string
	cmd              *exec.Cmd
	lines            []string
}

// serveRelayProxy pairs each client connection with a connection to the
// engine and copies bytes both ways, reading nothing: the least CPU and
// latency a proxy process can add to a request.
func serveRelayProxy(sock, engineSock string) int {
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			defer c.Close()
			e, err := net.Dial("unix", engineSock)
			if err != nil {
				return
			}
			defer e.Close()
			go func() {
				_, _ = io.Copy(e, c)
				_ = e.(*net.UnixConn).CloseWrite()
			}()
			_, _ = io.Copy(c, e)
		}()
	}
}

// serveReverseProxy runs the standard library's reverse proxy to the
// engine, the baseline cost of an HTTP proxy hop.
func serveReverseProxy(sock, engineSock string) int {
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", engineSock)
	}, MaxIdleConnsPerHost: 64}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: "docker"}) },
		Transport: tr,
	}
	_ = http.Serve(l, rp)
	return 0
}

// result pools one cell's latencies.
type result struct {
	lat []time.Duration
	// added is, for answers with a Server-Timing header, the client's
	// time minus the engine's.
	added []time.Duration
	// own is added less the time of the judgement's lookups: the guard's
	// own processing and hops.
	own      []time.Duration
	n        int
	elapsed  time.Duration
	errs     int
	firstErr error
}

func (r *result) add(o result) {
	r.lat = append(r.lat, o.lat...)
	r.added = append(r.added, o.added...)
	r.own = append(r.own, o.own...)
	r.n += o.n
	r.elapsed += o.elapsed
	r.errs += o.errs
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
}

func (r *result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r *result) pct(p float64) time.Duration {
	slices.Sort(r.lat)
	return pctOf(r.lat, p)
}

func pctOf(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// load runs do from conc clients on one socket for d, each client with
// its own kept-alive connections.
func load(sock string, conc int, d time.Duration, do func(*http.Client) (timing, error)) result {
	var mu sync.Mutex
	var res result
	var stop atomic.Bool
	var wg sync.WaitGroup
	// Warm the connections before timing.
	clients := make([]*http.Client, conc)
	for i := range clients {
		clients[i] = unixClient(sock)
		_, _ = do(clients[i])
	}
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(hc *http.Client) {
			defer wg.Done()
			var lat, added, own []time.Duration
			errs := 0
			var first error
			for !stop.Load() {
				t0 := time.Now()
				tm, err := do(hc)
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				took := time.Since(t0)
				lat = append(lat, took)
				if tm.engine > 0 {
					added = append(added, took-tm.engine)
					own = append(own, took-tm.engine-tm.lookup)
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.added = append(res.added, added...)
			res.own = append(res.own, own...)
			res.n += len(lat)
			res.errs += errs
			if res.firstErr == nil {
				res.firstErr = first
			}
			mu.Unlock()
		}(clients[i])
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	res.elapsed = time.Since(start)
	for _, hc := range clients {
		hc.CloseIdleConnections()
	}
	return res
}

func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 4,
		DisableCompression:  true,
	}}
}

// get GETs a path and returns the engine's time for it when the answer
// says (Server-Timing), 0 otherwise.
func get(hc *http.Client, path string) (timing, error) {
	resp, err := hc.Get("http://docker" + path)
	if err != nil {
		return timing{}, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return timing{}, err
	}
	if resp.StatusCode != 200 {
		return timing{}, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return serverTiming(resp.Header), nil
}

// timing is the engine's share of an answer, from the guard's
// Server-Timing header: the forwarded request ("engine;dur=0.081") and the
// lookups its judgement made ("lookup;dur=0.402"), in milliseconds.
type timing struct{ engine, lookup time.Duration }

func (t timing) plus(o timing) timing { return timing{t.engine + o.engine, t.lookup + o.lookup} }

func serverTiming(h http.Header) timing {
	var t timing
	for _, v := range h.Values("Server-Timing") {
		for _, m := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(m), ";")
			for _, p := range strings.Split(params, ";") {
				d, ok := strings.CutPrefix(strings.TrimSpace(p), "dur=")
				f, err := strconv.ParseFloat(d, 64)
				if !ok || err != nil {
					continue
				}
				switch name {
				case "engine":
					t.engine += time.Duration(f * float64(time.Millisecond))
				case "lookup":
					t.lookup += time.Duration(f * float64(time.Millisecond))
				}
			}
		}
	}
	return t
}

// createBody is a compliant container that the admission profile admits.
func createBody(img string) string {
	b, _ := json.Marshal(map[string]any{
		"Image":       img,
		"User":        "65534:65534",
		"Cmd":         []string{"sleep"},
		"Labels":      map[string]string{benchLabel: "1", "hy-home.tier": "app", "hy-home.metrics.port": "9100"},
		"Healthcheck": map[string]any{"Test": []string{"CMD", "/testprog", "probe"}},
		"HostConfig": map[string]any{
			"CapDrop": []string{"ALL"}, "SecurityOpt": []string{"no-new-privileges:true"},
			"ReadonlyRootfs": true, "Memory": 64 << 20, "PidsLimit": 64,
		},
	})
	return string(b)
}

func createRemove(hc *http.Client, body string) (timing, error) {
	resp, err := hc.Post("http://docker/v1.41/containers/create", "application/json", strings.NewReader(body))
	if err != nil {
		return timing{}, err
	}
	var cr struct {
		Id      string
		Message string
	}
	err = json.NewDecoder(resp.Body).Decode(&cr)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		return timing{}, fmt.Errorf("create: %s %s %v", resp.Status, cr.Message, err)
	}
	created := serverTiming(resp.Header)
	req, _ := http.NewRequest(http.MethodDelete, "http://docker/v1.41/containers/"+cr.Id+"?force=1", nil)
	resp, err = hc.Do(req)
	if err != nil {
		return timing{}, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return timing{}, fmt.Errorf("remove: %s", resp.Status)
	}
	removed := serverTiming(resp.Header)
	if created.engine == 0 || removed.engine == 0 {
		return timing{}, nil // not through the guard
	}
	return created.plus(removed), nil
}

// eventDelays subscribes to events on the engine and through the guard,
// causes n image tag events (cheap, no container), and returns how much
// later each arrived through the guard.
func eventDelays(c *client.Client, engineSock, guardSock, img string, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	filter := `{"type":["image"],"event":["tag"]}`
	direct, err := subscribe(ctx, engineSock, filter)
	if err != nil {
		return nil, err
	}
	viaGuard, err := subscribe(ctx, guardSock, filter)
	if err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	var deltas []time.Duration
	for i := 0; i < n; i++ {
		tag := fmt.Sprintf("hyhome-bench/guard-ev:%d-%d", time.Now().UnixNano(), i)
		if _, err := c.ImageTag(ctx, client.ImageTagOptions{Source: img, Target: tag}); err != nil {
			return nil, err
		}
		td, err := waitTag(ctx, direct, tag)
		if err != nil {
			return nil, err
		}
		tg, err := waitTag(ctx, viaGuard, tag)
		if err != nil {
			return nil, err
		}
		deltas = append(deltas, tg.Sub(td))
		_, _ = c.ImageRemove(ctx, tag, client.ImageRemoveOptions{})
		time.Sleep(20 * time.Millisecond)
	}
	return deltas, nil
}

type arrival struct {
	name string
	at   time.Time
}

// subscribe reads an events stream in the background, time-stamping each
// event as its line arrives.
func subscribe(ctx context.Context, sock, filter string) (<-chan arrival, error) {
	hc := unixClient(sock)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/v1.41/events?filters="+urlEscape(filter), nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return nil, fmt.Errorf("events on %s: %s", sock, resp.Status)
	}
	ch := make(chan arrival, 1024)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			at := time.Now()
			var m struct {
				Actor struct{ Attributes map[string]string }
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				ch <- arrival{m.Actor.Attributes["name"], at}
			}
		}
	}()
	return ch, nil
}

func waitTag(ctx context.Context, ch <-chan arrival, tag string) (time.Time, error) {
	for {
		select {
		case a := <-ch:
			if a.name == tag {
				return a.at, nil
			}
		case <-time.After(10 * time.Second):
			return time.Time{}, fmt.Errorf("no tag event for %s", tag)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func urlEscape(s string) string {
	r := strings.NewReplacer("{", "%7B", "}", "%7D", `"`, "%22", "[", "%5B", "]", "%5D", ":", "%3A", ",", "%2C")
	return r.Replace(s)
}

func removeBenchContainers(c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", benchLabel)})
	if err != nil {
		return
	}
	for _, ct := range res.Items {
		_, _ = c.ContainerRemove(ctx, ct.ID, client.ContainerRemoveOptions{Force: true})
	}
}

func waitSocket(p string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", p); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the guard did not listen on %s", p)
}

// cpuTime reads a process's user+system CPU time from /proc (clock ticks
// of 10 ms on Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rssFigures are a process's resident memory from /proc/PID/status: the
// total, its private (anonymous) part and the part that is the binary's own
// pages (file-backed, shared and reclaimable).
type rssFigures struct{ total, anon, file int64 }

func (r rssFigures) String() string {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	return fmt.Sprintf("%.1f MiB (private %.1f MiB, binary pages %.1f MiB)", mib(r.total), mib(r.anon), mib(r.file))
}

func readRSS(pid int) rssFigures {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rssFigures{}
	}
	var r rssFigures
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			r.total = kb << 10
		case "RssAnon":
			r.anon = kb << 10
		case "RssFile":
			r.file = kb << 10
		}
	}
	return r
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}
