package ship

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/lokitest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// These tests run the built hyhome binary, as the deploy stack does: a
// SIGKILL can only be tested on a real process, and so can its memory.

// hyhomeBinary is built once per test process in dockertest.TempDir, which
// dockertest.Main removes (and testsweep, if the process was killed).
func hyhomeBinary(t *testing.T) string {
	t.Helper()
	return dockertest.ProcessBinary(t, "./cmd/hyhome", "hyhome")
}

// shipProc is a running `hyhome ship`.
type shipProc struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	stderr  bytes.Buffer
	addr    chan string
	exited  chan struct{}
	exitErr error
}

func startShip(t *testing.T, args ...string) *shipProc {
	t.Helper()
	cmd := exec.Command(hyhomeBinary(t), append([]string{"ship", "--log-format", "json", "--log-level", "info"}, args...)...)
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=") // let the --memory-limit default apply
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &shipProc{cmd: cmd, addr: make(chan string, 1), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving /metrics and /healthz" {
				p.addr <- rec.Addr
			}
		}
		_, _ = io.Copy(io.Discard, pipe)
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("hyhome ship stderr:\n%s", p.log())
		}
	})
	return p
}

func (p *shipProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *shipProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// rssBytes reads the process's resident set size from /proc.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// scrape returns the value of an unlabelled (or first) sample of name.
func scrape(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	total, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		total += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return total, nil
}

// SIGKILL mid-stream, then restart: every line arrives, judged by sequence
// number; Loki's exact duplicate suppression absorbs what was pushed twice,
// and the test bounds it as docs/ship.md says: only lines Loki had received
// before the kill, each once more, and per stream exactly those after some
// point (what followed the agent's last checkpoint).
func TestSIGKILLMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	tok := token()
	const n = 6000
	lcfg := lokitest.Config{}
	ledger := newSeqLedger(&lcfg, tok, n)
	loki := startLoki(t, lcfg)
	_, selLabels := testSelector(t)
	dir := t.TempDir()
	args := []string{"--loki-url", loki.URL(), "--state-dir", dir, "--listen", "", "--select", "hyhome.ship.test=" + selLabels["hyhome.ship.test"], "--max-backoff", "500ms"}
	first := startShip(t, args...)

	id, name := dockertest.Run(t, dockertest.Spec{
		Name: "kill", Image: img.NonRoot, Cmd: []string{"log", "-lines", strconv.Itoa(n), "-rate", "1000", "-both", "-token", tok, "-exit", "1"},
		Labels: labels(selLabels, "hy-home.job", "infra", "hy-home.tier", "gateway"),
	})
	q := `{job="infra", tier="gateway", source="logs"} |= "` + tok + `"`
	waitFor(t, "some lines before the kill", func() bool { return ledger.received() >= n/4 })
	first.kill(t)
	atKill := ledger.snapshot()
	// Mid-stream: Loki had some lines and not all of them when the agent
	// died, so the restart has lines to resume and lines to push again.
	if got := atKill.received(); got == 0 || got >= n {
		t.Fatalf("the kill was not mid-stream: Loki had %d of %d lines when the agent died", got, n)
	}

	second := startShip(t, args...)
	waitContainerExit(t, id)
	waitFor(t, "every line and the die event after the restart", func() bool {
		return ledger.received() == n &&
			len(queryLines(t, loki, `{source="events"} |= "action=die" |= "`+name+`"`)) == 1
	})
	if err := storedOnce(queryLines(t, loki, q), tok, n); err != nil {
		t.Errorf("after SIGKILL and restart: %v", err)
	}
	ledger.checkNoForeign(t)
	after := ledger.snapshot()
	if err := repushedSuffix(atKill, after); err != nil {
		t.Errorf("pushed twice beyond docs/ship.md's bound: %v", err)
	}
	dups, extra := after.duplicates()
	st := loki.Stats()
	// Loki's count also holds the event entries (start, die...) pushed
	// again; the writer's lines are a part of it.
	if extra > st.Duplicates {
		t.Errorf("the ledger counts %d extra pushes of the writer's lines, more than Loki's %d duplicates", extra, st.Duplicates)
	}
	t.Logf("SIGKILL mid-stream: %d lines written, all %d stored once; %d received before the kill; %d pushed twice (stored once) %s; %d duplicates in all, events included",
		n, n, atKill.received(), len(dups), seqRanges(dups), st.Duplicates)

	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-second.exited
	if second.exitErr != nil {
		t.Fatalf("hyhome ship exited with %v after SIGTERM", second.exitErr)
	}
}

// Lines faster than Loki accepts: the queue stays at its cap, the reader
// waits (Docker keeps the lines), memory stays bounded, nothing is lost.
func TestBackpressureBoundedQueueAndMemory(t *testing.T) {
	t.Parallel()
	img := dockertest.Build(t)
	tok := token()
	const n = 40000
	lcfg := lokitest.Config{}
	ledger := newSeqLedger(&lcfg, tok, n)
	loki := startLoki(t, lcfg)
	loki.SetDelay(40 * time.Millisecond) // a slow Loki: ~1.5 MB/s with 64 KiB batches
	_, selLabels := testSelector(t)
	p := startShip(t, "--loki-url", loki.URL(), "--state-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--select", "hyhome.ship.test="+selLabels["hyhome.ship.test"], "--queue-max-bytes", "1MiB", "--batch-size", "64KiB")
	var addr string
	select {
	case addr = <-p.addr:
	case <-p.exited:
		t.Fatalf("hyhome ship exited: %v\n%s", p.exitErr, p.log())
	case <-time.After(testenv.Hang):
		t.Fatalf("hyhome ship did not start serving:\n%s", p.log())
	}

	id, _ := dockertest.Run(t, dockertest.Spec{
		Name: "flood", Image: img.NonRoot, Cmd: []string{"log", "-lines", strconv.Itoa(n), "-size", "120", "-token", tok},
		Labels: labels(selLabels, "hy-home.tier", "app"),
	})
	var maxQueue float64
	var maxRSS int64
	q := `{tier="app"} |= "` + tok + `"`
	waitFor(t, "every line through the slow Loki", func() bool {
		if v, err := scrape(addr, "hyhome_ship_queue_bytes"); err == nil {
			maxQueue = max(maxQueue, v)
		}
		if r, err := rssBytes(p.cmd.Process.Pid); err == nil {
			maxRSS = max(maxRSS, r)
		}
		return ledger.received() == n
	})
	waitContainerExit(t, id)
	if err := storedOnce(queryLines(t, loki, q), tok, n); err != nil {
		t.Errorf("through the slow Loki: %v", err)
	}
	ledger.checkNoForeign(t)
	if dups, _ := ledger.snapshot().duplicates(); len(dups) > 0 {
		t.Errorf("%d lines pushed more than once without a crash: %s", len(dups), seqRanges(dups))
	}
	dropped, err := scrape(addr, "hyhome_ship_entries_dropped_total")
	if err != nil {
		t.Fatal(err)
	}
	waited, _ := scrape(addr, "hyhome_ship_queue_full_wait_seconds_total")
	t.Logf("backpressure: %d lines, all received; peak queue %.0f KiB (cap 1024 KiB), readers waited %.1fs at the cap, peak RSS %.1f MiB, dropped %.0f",
		n, maxQueue/1024, waited, float64(maxRSS)/(1<<20), dropped)
	if dropped != 0 {
		t.Errorf("%v entries dropped; log lines must wait, not drop", dropped)
	}
	if maxQueue > 2<<20 {
		t.Errorf("queue peaked at %.0f bytes, far above its 1 MiB cap", maxQueue)
	}
	if waited == 0 {
		t.Errorf("the reader never waited at the cap: the test did not exercise backpressure")
	}
	if maxRSS > 80<<20 {
		t.Errorf("RSS peaked at %.1f MiB, above the 80 MiB budget", float64(maxRSS)/(1<<20))
	}
}
