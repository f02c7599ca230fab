// Command shipbench measures `hyhome ship` against the in-repo Loki test
// server on loopback and the real Docker engine (issue 5), with baselines
// measured in the same run:
//
//   - event-to-acceptance latency of single events (p50/p99), against the
//     engine's own event delivery to a bare subscriber;
//   - sustained log throughput from one container and from many, against the
//     rate at which the engine itself logged the lines, plus the agent's
//     catch-up rate on an already-written log (its own ceiling); the single
//     container once at a throttled rate (-rate) and once unthrottled, as
//     fast as the engine takes its lines, so that the live figure is a
//     maximum rather than the writer's own pace;
//   - RSS idle and under load, against a minimal static Go process.
//
// It cleans up every container and image it made, also on failure. Run it
// through bench/ship.sh.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/lokitest"
)

func main() { os.Exit(run()) }

type options struct {
	hyhome      string
	out         string
	events      int
	lines       int
	rate        int
	catchUp     int
	unthrottled int
	containers  int
	perLines    int
	perRate     int
	idle        time.Duration
}

type result struct {
	EventLatencyP50Ms, EventLatencyP99Ms, EventLatencyMaxMs float64
	BaselineEventP50Ms, BaselineEventP99Ms                  float64
	SingleLines                                             int
	SingleProducedPerS, SingleShippedPerS, SingleEndLagMs   float64
	FastLines                                               int
	FastProducedPerS, FastShippedPerS, FastEndLagMs         float64
	CatchUpLines                                            int
	CatchUpPerS, BareReadPerS                               float64
	ManyContainers, ManyLines                               int
	ManyProducedPerS, ManyShippedPerS, ManyEndLagMs         float64
	IdleRSSMiB, LoadRSSMiB, MinimalGoRSSMiB                 float64
	Duplicates, Dropped                                     int
	LoadAvgStart, LoadAvgEnd                                string
}

func run() int {
	var o options
	flag.StringVar(&o.hyhome, "hyhome", "", "hyhome binary to measure (required)")
	flag.StringVar(&o.out, "out", "bench/out", "directory for ship.json and state")
	flag.IntVar(&o.events, "events", 60, "single events to time")
	flag.IntVar(&o.lines, "lines", 150000, "lines from the single busy container")
	flag.IntVar(&o.rate, "rate", 25000, "lines/s the single busy container writes")
	flag.IntVar(&o.unthrottled, "unthrottled-lines", 100000, "lines the unthrottled single container writes (keep it within the engine's json-file retention)")
	flag.IntVar(&o.catchUp, "catch-up-lines", 120000, "lines of the finished log read back by a fresh agent (keep it within the engine's json-file retention)")
	flag.IntVar(&o.containers, "containers", 50, "containers logging at once")
	flag.IntVar(&o.perLines, "per-container-lines", 3000, "lines from each of the many containers")
	flag.IntVar(&o.perRate, "per-container-rate", 500, "lines/s each of the many containers writes")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "idle time before the idle RSS sample")
	flag.Parse()
	if o.hyhome == "" {
		fmt.Fprintln(os.Stderr, "shipbench: -hyhome is required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, err := setup(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shipbench:", err)
		return 1
	}
	defer b.cleanup()
	res, err := b.measure(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shipbench:", err)
		return 1
	}
	report(o, res)
	if js, err := json.MarshalIndent(res, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(o.out, "ship.json"), js, 0o644)
	}
	return 0
}

type bench struct {
	o      options
	dc     *client.Client
	image  string
	bin    string // testprog on the host
	loki   *lokitest.Server
	label  string // hyhome.bench=<id> selects this run's containers
	id     string
	agent  *exec.Cmd
	mu     sync.Mutex
	tokens map[string]*tokenStats
	maxRSS int64
	tmp    string
}

// tokenStats follows the entries carrying one token as Loki accepts them.
type tokenStats struct {
	n          int
	firstTS    time.Time // Docker timestamp of the earliest line
	lastTS     time.Time
	lastAccept time.Time
	latencies  []time.Duration // events: accept time minus event time
}

func randomID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func setup(ctx context.Context, o options) (*bench, error) {
	dc, _, err := docker.Connect(ctx, "")
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, dc: dc, id: randomID(), tokens: map[string]*tokenStats{}}
	b.label = "hyhome.bench=" + b.id
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	b.tmp, err = os.MkdirTemp("", "shipbench-")
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "building the test image...")
	b.bin, err = dockertest.BuildBinary("./internal/dockertest/testprog", b.tmp, "testprog")
	if err != nil {
		return nil, err
	}
	b.image = "hyhome-bench/testprog:" + b.id
	if err := dockertest.BuildScratchImage(ctx, dc, b.image, b.bin, "/testprog", "65534:65534", nil); err != nil {
		return nil, err
	}
	lcfg := lokitest.Config{OnAccept: b.accept}
	if os.Getenv("SHIPBENCH_TRACE") != "" {
		lcfg.OnDuplicate = func(_ string, st lokitest.Labels, e lokitest.Entry) {
			fmt.Fprintf(os.Stderr, "  duplicate %s %s %.80q\n", st, e.Timestamp.Format("15:04:05.000000000"), e.Line)
		}
	}
	b.loki, err = lokitest.Start(lcfg)
	if err != nil {
		b.cleanup()
		return nil, err
	}
	return b, nil
}

// accept runs under the test server's lock for every stored entry.
func (b *bench) accept(_ string, stream lokitest.Labels, e lokitest.Entry) {
	tok := tokenOf(e.Line)
	if tok == "" {
		return
	}
	// Event lines name the container, and container names carry the token:
	// only kill events count, and only as latency samples.
	isEvent := stream.Get("source") == "events"
	if isEvent && !strings.HasPrefix(e.Line, "type=container action=kill") {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.tokens[tok]
	if st == nil {
		st = &tokenStats{}
		b.tokens[tok] = st
	}
	if isEvent {
		st.latencies = append(st.latencies, e.Received.Sub(e.Timestamp))
		return
	}
	st.n++
	if st.firstTS.IsZero() || e.Timestamp.Before(st.firstTS) {
		st.firstTS = e.Timestamp
	}
	if e.Timestamp.After(st.lastTS) {
		st.lastTS = e.Timestamp
	}
	if e.Received.After(st.lastAccept) {
		st.lastAccept = e.Received
	}
}

// tokenOf finds "tok-<hex>" in a log line ("line tok-x seq=1") or an event
// line (the container name carries it).
func tokenOf(line string) string {
	i := strings.Index(line, "tok-")
	if i < 0 {
		return ""
	}
	j := i + 4
	for j < len(line) && (line[j] >= '0' && line[j] <= '9' || line[j] >= 'a' && line[j] <= 'f') {
		j++
	}
	return line[i:j]
}

func (b *bench) stats(tok string) tokenStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.tokens[tok]; st != nil {
		c := *st
		c.latencies = slices.Clone(st.latencies)
		return c
	}
	return tokenStats{}
}

func (b *bench) cleanup() {
	if b.agent != nil && b.agent.Process != nil {
		_ = b.agent.Process.Kill()
		_, _ = b.agent.Process.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Every container and the image carry the run's dockertest label.
	f := client.Filters{}.Add("label", dockertest.LabelKey+"="+dockertest.RunID)
	if res, err := b.dc.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range res.Items {
			_, _ = b.dc.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
	if b.image != "" {
		_, _ = b.dc.ImageRemove(ctx, b.image, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}
	if b.loki != nil {
		b.loki.Close()
	}
	if b.tmp != "" {
		os.RemoveAll(b.tmp)
	}
}

// startAgent runs hyhome ship with a fresh state directory and samples its
// RSS until it exits.
func (b *bench) startAgent(ctx context.Context, name, selector string) (*exec.Cmd, error) {
	state := filepath.Join(b.tmp, "state-"+name)
	cmd := exec.CommandContext(ctx, b.o.hyhome, "ship", "--loki-url", b.loki.URL(), "--state-dir", state,
		"--listen", "", "--select", selector, "--log-level", "warn")
	if extra := os.Getenv("SHIP_ARGS"); extra != "" {
		cmd.Args = append(cmd.Args, strings.Fields(extra)...)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			r, err := rss(cmd.Process.Pid)
			if err != nil {
				return
			}
			b.mu.Lock()
			b.maxRSS = max(b.maxRSS, r)
			b.mu.Unlock()
		}
	}()
	return cmd, nil
}

func (b *bench) resetMaxRSS() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.maxRSS
	b.maxRSS = 0
	return m
}

func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

func (b *bench) run(ctx context.Context, name string, cmd ...string) (string, error) {
	return b.runLabelled(ctx, b.label, name, cmd...)
}

func (b *bench) runLabelled(ctx context.Context, label, name string, cmd ...string) (string, error) {
	k, v, _ := strings.Cut(label, "=")
	res, err := b.dc.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   "shipbench-" + name,
		Config: &container.Config{Image: b.image, Cmd: cmd, Labels: map[string]string{k: v, "hy-home.tier": "bench", "hy-home.job": "bench", dockertest.LabelKey: dockertest.RunID}},
	})
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", name, err)
	}
	if _, err := b.dc.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("starting %s: %w", name, err)
	}
	return res.ID, nil
}

func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func (b *bench) measure(ctx context.Context) (result, error) {
	var res result
	res.LoadAvgStart = loadAvg()

	// Baseline RSS: the smallest static Go process, testprog sleeping.
	sleeper := exec.CommandContext(ctx, b.bin, "sleep")
	if err := sleeper.Start(); err == nil {
		time.Sleep(time.Second)
		if r, err := rss(sleeper.Process.Pid); err == nil {
			res.MinimalGoRSSMiB = mib(r)
		}
		_ = sleeper.Process.Signal(syscall.SIGTERM)
		_ = sleeper.Wait()
	}

	agent, err := b.startAgent(ctx, "main", b.label)
	if err != nil {
		return res, err
	}
	b.agent = agent

	// A long-running container to send signals to: each `kill -s WINCH`
	// is one engine event and nothing else (Go ignores SIGWINCH).
	tok := "tok-" + randomID()
	sig, err := b.run(ctx, tok+"-sig", "sleep")
	if err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "idle for %s...\n", b.o.idle)
	time.Sleep(b.o.idle)
	b.resetMaxRSS()
	time.Sleep(time.Second)
	res.IdleRSSMiB = mib(b.resetMaxRSS())

	// Latency: single events, spaced so that each finds the agent idle,
	// with a bare subscriber timing the engine's own delivery.
	fmt.Fprintf(os.Stderr, "timing %d single events...\n", b.o.events)
	var base []time.Duration
	var baseMu sync.Mutex
	sctx, cancel := context.WithCancel(ctx)
	evs := b.dc.Events(sctx, client.EventsListOptions{Filters: client.Filters{}.Add("container", sig).Add("event", "kill")})
	go func() {
		for m := range evs.Messages {
			d := time.Since(time.Unix(0, m.TimeNano))
			if m.Action == events.ActionKill {
				baseMu.Lock()
				base = append(base, d)
				baseMu.Unlock()
			}
		}
	}()
	for range b.o.events {
		if _, err := b.dc.ContainerKill(ctx, sig, client.ContainerKillOptions{Signal: "SIGWINCH"}); err != nil {
			cancel()
			return res, fmt.Errorf("signalling: %w", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := waitUntil(ctx, time.Minute, func() bool { return len(b.stats(tok).latencies) >= b.o.events }); err != nil {
		cancel()
		return res, fmt.Errorf("waiting for the events in Loki: %w (got %d)", err, len(b.stats(tok).latencies))
	}
	cancel()
	lat := b.stats(tok).latencies
	res.EventLatencyP50Ms, res.EventLatencyP99Ms, res.EventLatencyMaxMs = pct(lat, 50), pct(lat, 99), pct(lat, 100)
	baseMu.Lock()
	res.BaselineEventP50Ms, res.BaselineEventP99Ms = pct(base, 50), pct(base, 99)
	baseMu.Unlock()

	// Throughput, one container writing as fast as the engine takes it.
	fmt.Fprintf(os.Stderr, "one container, %d lines at %d/s...\n", b.o.lines, b.o.rate)
	b.resetMaxRSS()
	tok1 := "tok-" + randomID()
	if _, err := b.run(ctx, tok1, "log", "-lines", strconv.Itoa(b.o.lines), "-rate", strconv.Itoa(b.o.rate), "-size", "100", "-token", tok1); err != nil {
		return res, err
	}
	if err := waitUntil(ctx, 5*time.Minute, func() bool { return b.stats(tok1).n >= b.o.lines }); err != nil {
		return res, fmt.Errorf("single container: %w (got %d of %d)", err, b.stats(tok1).n, b.o.lines)
	}
	st := b.stats(tok1)
	res.SingleLines = st.n
	res.SingleProducedPerS = float64(st.n) / st.lastTS.Sub(st.firstTS).Seconds()
	res.SingleShippedPerS = float64(st.n) / st.lastAccept.Sub(st.firstTS).Seconds()
	res.SingleEndLagMs = ms(st.lastAccept.Sub(st.lastTS))

	// The same, unthrottled: the writer logs as fast as the engine takes
	// its lines, so the shipped rate is the agent's maximum on a live log,
	// not the throttled writer's pace.
	fmt.Fprintf(os.Stderr, "one container, %d lines unthrottled...\n", b.o.unthrottled)
	tokF := "tok-" + randomID()
	if _, err := b.run(ctx, tokF, "log", "-lines", strconv.Itoa(b.o.unthrottled), "-size", "100", "-token", tokF); err != nil {
		return res, err
	}
	if err := waitUntil(ctx, 5*time.Minute, func() bool { return b.stats(tokF).n >= b.o.unthrottled }); err != nil {
		return res, fmt.Errorf("unthrottled container: %w (got %d of %d; lower -unthrottled-lines if the engine's json-file rotation dropped some)", err, b.stats(tokF).n, b.o.unthrottled)
	}
	st = b.stats(tokF)
	res.FastLines = st.n
	res.FastProducedPerS = float64(st.n) / st.lastTS.Sub(st.firstTS).Seconds()
	res.FastShippedPerS = float64(st.n) / st.lastAccept.Sub(st.firstTS).Seconds()
	res.FastEndLagMs = ms(st.lastAccept.Sub(st.lastTS))

	// Many containers at once.
	fmt.Fprintf(os.Stderr, "%d containers, %d lines each at %d/s...\n", b.o.containers, b.o.perLines, b.o.perRate)
	// Creating and starting 50 containers takes seconds: create them all,
	// start them all, and have each wait for a common moment so that they
	// really log at the same time.
	var toks, ids []string
	goAt := time.Now().Add(time.Duration(b.o.containers)*time.Second + 5*time.Second)
	k, v, _ := strings.Cut(b.label, "=")
	for i := range b.o.containers {
		t := "tok-" + randomID()
		toks = append(toks, t)
		cr, err := b.dc.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name: fmt.Sprintf("shipbench-%s-%d", t, i),
			Config: &container.Config{Image: b.image, Labels: map[string]string{k: v, "hy-home.tier": "bench", "hy-home.job": "bench", dockertest.LabelKey: dockertest.RunID},
				Cmd: []string{"log", "-start-at", goAt.Format(time.RFC3339Nano), "-lines", strconv.Itoa(b.o.perLines), "-rate", strconv.Itoa(b.o.perRate), "-size", "100", "-token", t}},
		})
		if err != nil {
			return res, fmt.Errorf("creating container %d: %w", i, err)
		}
		ids = append(ids, cr.ID)
	}
	for _, id := range ids {
		if _, err := b.dc.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return res, fmt.Errorf("starting a container: %w", err)
		}
	}
	if time.Now().After(goAt) {
		fmt.Fprintln(os.Stderr, "warning: the containers started later than planned; the rates below are diluted")
	}
	total := b.o.containers * b.o.perLines
	sum := func() int {
		n := 0
		for _, t := range toks {
			n += b.stats(t).n
		}
		return n
	}
	if os.Getenv("SHIPBENCH_TRACE") != "" {
		go func() {
			for sum() < total && ctx.Err() == nil {
				time.Sleep(time.Second)
				fmt.Fprintf(os.Stderr, "  %s shipped %d of %d\n", time.Now().Format("15:04:05"), sum(), total)
			}
		}()
	}
	if err := waitUntil(ctx, 5*time.Minute, func() bool { return sum() >= total }); err != nil {
		return res, fmt.Errorf("many containers: %w (got %d of %d)", err, sum(), total)
	}
	var first, last, lastAcc time.Time
	for _, t := range toks {
		s := b.stats(t)
		if first.IsZero() || s.firstTS.Before(first) {
			first = s.firstTS
		}
		if s.lastTS.After(last) {
			last = s.lastTS
		}
		if s.lastAccept.After(lastAcc) {
			lastAcc = s.lastAccept
		}
	}
	if os.Getenv("SHIPBENCH_TRACE") != "" {
		for _, t := range toks {
			st := b.stats(t)
			fmt.Fprintf(os.Stderr, "  %s first %s last %s n %d\n", t, st.firstTS.Format("15:04:05.000"), st.lastTS.Format("15:04:05.000"), st.n)
		}
	}
	res.ManyContainers, res.ManyLines = b.o.containers, total
	res.ManyProducedPerS = float64(total) / last.Sub(first).Seconds()
	res.ManyShippedPerS = float64(total) / lastAcc.Sub(first).Seconds()
	res.ManyEndLagMs = ms(lastAcc.Sub(last))
	res.LoadRSSMiB = mib(b.resetMaxRSS())

	// Catch-up: a second agent with an empty state reads the single
	// container's finished log; its rate is the agent's own ceiling.
	fmt.Fprintln(os.Stderr, "catch-up read of the finished log by a fresh agent...")
	_ = agent.Process.Signal(syscall.SIGTERM)
	_, _ = agent.Process.Wait()
	b.agent = nil
	catch := "tok-" + randomID()
	// Its own label: the fresh agent reads only this container's log.
	cid, err := b.runLabelled(ctx, b.label+"-catchup", catch, "log", "-lines", strconv.Itoa(b.o.catchUp), "-size", "100", "-token", catch)
	if err != nil {
		return res, err
	}
	wait := b.dc.ContainerWait(ctx, cid, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-wait.Result:
	case err := <-wait.Error:
		return res, fmt.Errorf("waiting for the catch-up container: %w", err)
	}
	// Baseline: only reading that log through the engine API, demultiplexed
	// and split into lines, nothing shipped.
	n, d, err := b.bareRead(ctx, cid)
	if err != nil {
		return res, err
	}
	if n != b.o.catchUp {
		return res, fmt.Errorf("the engine kept %d of %d catch-up lines: lower -catch-up-lines to fit its json-file retention", n, b.o.catchUp)
	}
	res.BareReadPerS = float64(n) / d.Seconds()
	start := time.Now()
	agent2, err := b.startAgent(ctx, "catchup", b.label+"-catchup")
	if err != nil {
		return res, err
	}
	b.agent = agent2
	if err := waitUntil(ctx, 5*time.Minute, func() bool { return b.stats(catch).n >= b.o.catchUp }); err != nil {
		return res, fmt.Errorf("catch-up: %w (got %d)", err, b.stats(catch).n)
	}
	res.CatchUpLines = b.stats(catch).n
	res.CatchUpPerS = float64(res.CatchUpLines) / b.stats(catch).lastAccept.Sub(start).Seconds()
	res.LoadRSSMiB = max(res.LoadRSSMiB, mib(b.resetMaxRSS()))
	ls := b.loki.Stats()
	res.Duplicates = ls.Duplicates
	res.Dropped = ls.Rejected
	res.LoadAvgEnd = loadAvg()
	return res, nil
}

// bareRead reads a finished container's whole log through the engine API,
// demultiplexed and split into lines, and times it.
func (b *bench) bareRead(ctx context.Context, id string) (int, time.Duration, error) {
	start := time.Now()
	rc, err := b.dc.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	lc := &lineCounter{}
	if _, err := stdcopy.StdCopy(lc, lc, rc); err != nil {
		return 0, 0, err
	}
	return lc.n, time.Since(start), nil
}

type lineCounter struct{ n int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

func pct(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	i = min(max(i, 0), len(s)-1)
	return ms(s[i])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func report(o options, r result) {
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	fmt.Printf("hyhome ship against lokitest on loopback (the engine, the containers, the agent and the test server share the machine)\n")
	fmt.Printf("load average at start %s, at end %s: other load on the machine shows up in every figure\n\n", r.LoadAvgStart, r.LoadAvgEnd)
	fmt.Printf("%-44s %12s %12s %10s %s\n", "measure", "hyhome ship", "baseline", "ratio", "target")
	fmt.Printf("%-44s %9.1f ms %9.1f ms %10s %s\n", fmt.Sprintf("single event → accepted, p50 (n=%d)", o.events), r.EventLatencyP50Ms, r.BaselineEventP50Ms, ratio(r.EventLatencyP50Ms, r.BaselineEventP50Ms), "")
	fmt.Printf("%-44s %9.1f ms %9.1f ms %10s %s\n", "single event → accepted, p99", r.EventLatencyP99Ms, r.BaselineEventP99Ms, ratio(r.EventLatencyP99Ms, r.BaselineEventP99Ms), "< 500 ms")
	fmt.Printf("%-44s %9.1f ms %12s %10s\n", "single event → accepted, max", r.EventLatencyMaxMs, "", "")
	fmt.Printf("%-44s %9.0f /s %9.0f /s %10s %s\n", fmt.Sprintf("1 container, %d lines: shipped", r.SingleLines), r.SingleShippedPerS, r.SingleProducedPerS, ratio(r.SingleShippedPerS, r.SingleProducedPerS), ">= 20000 /s (baseline: engine's logging rate)")
	fmt.Printf("%-44s %9.0f ms\n", "1 container: last line logged → accepted", r.SingleEndLagMs)
	fmt.Printf("%-44s %9.0f /s %9.0f /s %10s %s\n", fmt.Sprintf("1 container unthrottled, %d lines: shipped", r.FastLines), r.FastShippedPerS, r.FastProducedPerS, ratio(r.FastShippedPerS, r.FastProducedPerS), "(baseline: engine's logging rate, unthrottled)")
	fmt.Printf("%-44s %9.0f ms\n", "1 container unthrottled: last line → accepted", r.FastEndLagMs)
	fmt.Printf("%-44s %9.0f /s %9.0f /s %10s %s\n", fmt.Sprintf("catch-up of a finished %d-line log", r.CatchUpLines), r.CatchUpPerS, r.BareReadPerS, ratio(r.CatchUpPerS, r.BareReadPerS), ">= 20000 /s (baseline: bare read through the engine API)")
	fmt.Printf("%-44s %9.0f /s %9.0f /s %10s %s\n", fmt.Sprintf("%d containers, %d lines: shipped", r.ManyContainers, r.ManyLines), r.ManyShippedPerS, r.ManyProducedPerS, ratio(r.ManyShippedPerS, r.ManyProducedPerS), "(baseline: engine's logging rate)")
	fmt.Printf("%-44s %9.0f ms\n", fmt.Sprintf("%d containers: last line logged → accepted", r.ManyContainers), r.ManyEndLagMs)
	fmt.Printf("%-44s %8.1f MiB %8.1f MiB %10s %s\n", "RSS idle", r.IdleRSSMiB, r.MinimalGoRSSMiB, ratio(r.IdleRSSMiB, r.MinimalGoRSSMiB), "< 25 MiB (baseline: minimal static Go process)")
	fmt.Printf("%-44s %8.1f MiB %8.1f MiB %10s %s\n", "RSS peak under load", r.LoadRSSMiB, r.MinimalGoRSSMiB, ratio(r.LoadRSSMiB, r.MinimalGoRSSMiB), "< 80 MiB")
	fmt.Printf("\nLoki test server: %d exact duplicates pushed (stored once), %d entries refused\n", r.Duplicates, r.Dropped)
}
