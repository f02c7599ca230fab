package guard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// stackMemoryLimit is the guard's memory limit in the reference stack
// (deploy/compose.yaml: deploy.resources.limits.memory, with GOMEMLIMIT
// 25MiB).
const (
	stackMemoryLimit = 32 << 20
	stackGOMEMLIMIT  = "25MiB"
)

// Issue 11 item 10: clients that announce large bodies and send them slowly
// (or never) must not grow the guard past its memory limit, nor keep honest
// clients out. The guard runs as the stack runs it: the built binary in a
// FROM-scratch container with the stack's 32 MiB limit and GOMEMLIMIT,
// holding the engine's socket. 200 clients on the admission listener and 50
// on the readonly one announce 4 MiB bodies and send nothing (the attack
// that took a guard from 21 MiB to 825 MiB), then 200 send theirs a few
// kilobytes at a time; they reconnect whenever the guard closes them.
// Meanwhile an honest client pings and lists through readonly and creates
// and removes a compliant container through admission. The guard's RSS
// (from /proc) stays under the limit, it is never OOM-killed, and the
// honest client is served.
func TestSlowBodiesStayUnderTheStackLimit(t *testing.T) {
	c := dockertest.Client(t)
	eng := engineSocket(t)
	imgs := dockertest.Build(t)
	bin := hyhomeBinary(t)
	image := "hyhome-test/guard:" + dockertest.RunID
	// The build has no deadline of its own (the test binary's bounds it);
	// the phases' clock starts after it.
	if err := dockertest.BuildScratchImage(context.Background(), c, image, bin, "/hyhome", "", []string{"LABEL " + dockertest.LabelKey + "=" + dockertest.RunID}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw(t, eng, request("DELETE", "/v1.41/images/"+image+"?force=1", "")) })
	ctx := ctxT(t, 10*time.Minute)
	var st syscall.Stat_t
	if err := syscall.Stat(eng, &st); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	create := map[string]any{
		"Image": image,
		"User":  fmt.Sprintf("65532:%d", st.Gid),
		"Cmd": []string{"guard", "--listen", "unix:///run/g/readonly.sock=readonly", "--listen", "unix:///run/g/admission.sock=admission",
			"--upstream", "unix:///var/run/docker.sock", "--metrics-listen", ""},
		"Env":    []string{"GOMEMLIMIT=" + stackGOMEMLIMIT},
		"Labels": map[string]string{dockertest.LabelKey: dockertest.RunID},
		"HostConfig": map[string]any{
			"Binds":          []string{eng + ":/var/run/docker.sock:ro", dir + ":/run/g"},
			"Memory":         stackMemoryLimit,
			"MemorySwap":     stackMemoryLimit,
			"PidsLimit":      128,
			"ReadonlyRootfs": true,
			"CapDrop":        []string{"ALL"},
			"SecurityOpt":    []string{"no-new-privileges:true"},
		},
	}
	r := raw(t, eng, request("POST", "/v1.41/containers/create?name=hyhome-test-slowguard-"+dockertest.RunID, mustJSON(t, create)))
	mustStatus(t, "creating the guard's container", r, http.StatusCreated)
	var cr struct{ Id string }
	_ = json.Unmarshal([]byte(r.body), &cr)
	t.Cleanup(func() {
		if t.Failed() {
			logs := raw(t, eng, request("GET", "/v1.41/containers/"+cr.Id+"/logs?stdout=1&stderr=1&tail=40", ""))
			t.Logf("guard container log (multiplexed):\n%s", logs.body)
		}
		dockertest.RemoveContainer(c, cr.Id)
	})
	mustStatus(t, "starting it", raw(t, eng, request("POST", "/v1.41/containers/"+cr.Id+"/start", "")), http.StatusNoContent)
	ro, adm := filepath.Join(dir, "readonly.sock"), filepath.Join(dir, "admission.sock")
	dockertestWait(t, testenv.Hang, "the guard's sockets", func() bool {
		a, err1 := net.Dial("unix", ro)
		b, err2 := net.Dial("unix", adm)
		if err1 == nil {
			a.Close()
		}
		if err2 == nil {
			b.Close()
		}
		return err1 == nil && err2 == nil
	})
	inspect := func() (pid int, running, oom bool) {
		var s struct {
			State struct {
				Pid                int
				Running, OOMKilled bool
			}
		}
		_ = json.Unmarshal([]byte(raw(t, eng, request("GET", "/v1.41/containers/"+cr.Id+"/json", "")).body), &s)
		return s.State.Pid, s.State.Running, s.State.OOMKilled
	}
	pid, _, _ := inspect()
	time.Sleep(2 * time.Second)
	idle, _ := vmRSS(pid)

	// The RSS sampler and the honest client run through both phases.
	stop := make(chan struct{})
	var peak atomic.Int64
	var samplers sync.WaitGroup
	samplers.Add(1)
	go func() {
		defer samplers.Done()
		for {
			if rss, err := vmRSS(pid); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	honest := &honestClient{ro: ro, adm: adm, body: mustJSON(t, compliant(imgs.NonRoot))}
	samplers.Add(1)
	go func() {
		defer samplers.Done()
		honest.run(t, stop)
	}()

	phase := func(name string, attackers []attacker, d time.Duration) {
		actx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var wg sync.WaitGroup
		for i := range attackers {
			a := &attackers[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.run(actx)
			}()
		}
		wg.Wait()
		t.Logf("%s: %d attacker connections, answers %v; guard RSS peak so far %.1f MiB", name, countConns(attackers), countAnswers(attackers), float64(peak.Load())/(1<<20))
	}
	head := "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n"
	roHead := "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nContent-Length: 4194304\r\n\r\n"
	var silent, trickle []attacker
	for i := 0; i < 200; i++ {
		silent = append(silent, attacker{socket: adm, head: head})
		trickle = append(trickle, attacker{socket: adm, head: head, chunk: 4 << 10, every: 100 * time.Millisecond})
	}
	for i := 0; i < 50; i++ {
		silent = append(silent, attacker{socket: ro, head: roHead})
	}
	phase("announced 4 MiB, sent nothing", silent, 25*time.Second)
	silentServed := honest.snapshot()
	phase("announced 4 MiB, sent 40 KiB/s each", trickle, 25*time.Second)
	close(stop)
	samplers.Wait()

	_, running, oom := inspect()
	after, _ := vmRSS(pid)
	t.Logf("guard RSS: %.1f MiB idle before, %.1f MiB peak under attack, %.1f MiB after (limit %d MiB); honest client: %v",
		float64(idle)/(1<<20), float64(peak.Load())/(1<<20), float64(after)/(1<<20), stackMemoryLimit>>20, honest.snapshot())
	if oom || !running {
		t.Fatalf("the guard was OOM-killed (%v) or stopped (running %v)", oom, running)
	}
	if peak.Load() >= stackMemoryLimit {
		t.Errorf("the guard's RSS peaked at %d bytes, at or over the stack's limit of %d", peak.Load(), stackMemoryLimit)
	}
	// While the attackers sent nothing, every honest request was served.
	if silentServed.failed > 0 || silentServed.pings == 0 || silentServed.creates == 0 {
		t.Errorf("honest client during the silent attack: %v", silentServed)
	}
	// Trickling attackers can spend the buffer budget: an honest create may
	// then be answered 503 (and retried), but reads never wait on it.
	all := honest.snapshot()
	if all.pingsFailed > 0 || all.pings <= silentServed.pings {
		t.Errorf("honest reads during the trickling attack: %v", all)
	}
}

// attacker opens a connection, sends a request head announcing a body, then
// sends chunk bytes every interval (nothing when chunk is 0) until the guard
// answers or closes, and starts again until ctx is done.
type attacker struct {
	socket string
	head   string
	chunk  int
	every  time.Duration

	mu      sync.Mutex
	conns   int
	answers map[int]int
}

func (a *attacker) run(ctx context.Context) {
	for ctx.Err() == nil {
		conn, err := net.DialTimeout("unix", a.socket, 10*time.Second)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		a.mu.Lock()
		a.conns++
		a.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		if _, err := io.WriteString(conn, a.head); err == nil && a.chunk > 0 {
			go func() {
				buf := []byte(strings.Repeat(" ", a.chunk))
				for {
					time.Sleep(a.every)
					if _, err := conn.Write(buf); err != nil {
						return
					}
				}
			}()
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			a.mu.Lock()
			if a.answers == nil {
				a.answers = map[int]int{}
			}
			a.answers[resp.StatusCode]++
			a.mu.Unlock()
		}
		stop()
		conn.Close()
	}
}

func countConns(as []attacker) int {
	n := 0
	for i := range as {
		n += as[i].conns
	}
	return n
}

func countAnswers(as []attacker) map[int]int {
	out := map[int]int{}
	for i := range as {
		for k, v := range as[i].answers {
			out[k] += v
		}
	}
	return out
}

// honestClient pings and lists through readonly and creates and removes a
// compliant container through admission, one request at a time.
type honestClient struct {
	ro, adm, body string

	mu    sync.Mutex
	stats honestStats
}

type honestStats struct {
	pings, pingsFailed, creates, busy, failed int
	lastFailure                               string
}

func (h *honestClient) snapshot() honestStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

func (h *honestClient) run(t *testing.T, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
		if i%5 != 0 {
			a, err1 := tryRaw(h.ro, request("GET", "/v1.41/containers/json", ""))
			b, err2 := tryRaw(h.ro, request("GET", "/_ping", ""))
			ok := err1 == nil && err2 == nil && a.status == http.StatusOK && b.status == http.StatusOK
			h.mu.Lock()
			h.stats.pings++
			if !ok {
				h.stats.pingsFailed++
			}
			h.mu.Unlock()
			continue
		}
		r, err := tryRaw(h.adm, request("POST", "/v1.41/containers/create", h.body))
		if err != nil {
			r.status, r.body = 0, err.Error()
		}
		h.mu.Lock()
		switch r.status {
		case http.StatusCreated:
			h.stats.creates++
		case http.StatusServiceUnavailable:
			h.stats.busy++
		default:
			h.stats.failed++
			h.stats.lastFailure = strconv.Itoa(r.status) + " " + r.message()
		}
		h.mu.Unlock()
		var cr struct{ Id string }
		if json.Unmarshal([]byte(r.body), &cr) == nil && cr.Id != "" {
			dockertest.RemoveContainer(dockertest.Client(t), cr.Id)
		}
	}
}

// tryRaw is raw without failing the test (for goroutines).
func tryRaw(socket, req string) (response, error) {
	conn, err := net.DialTimeout("unix", socket, testenv.Hang)
	if err != nil {
		return response{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testenv.Hang))
	if _, err := io.WriteString(conn, req); err != nil {
		return response{}, err
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// vmRSS reads a process's resident set from /proc.
func vmRSS(pid int) (int64, error) {
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
