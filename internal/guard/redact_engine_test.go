package guard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/audit"
	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/lokitest"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/promtest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// secretFixture is a container and a volume whose inspect answers carry
// secrets, as the engine stores them.
type secretFixture struct {
	secret    string // appears in every secret value
	container string // created, not started: its log driver is splunk
	running   string // a running container, for exec events
	volume    string
}

func newSecretFixture(t *testing.T) *secretFixture {
	t.Helper()
	eng := engineSocket(t)
	img := dockertest.Build(t)
	f := &secretFixture{secret: "hunter2-" + dockertest.RunID}
	body := mustJSON(t, map[string]any{
		"Image": img.NonRoot, "User": "65534:65534", "Cmd": []string{"sleep"},
		"Env":    []string{"DB_PASSWORD=" + f.secret, "DB_PASSWORD_FILE=/run/secrets/db", "DEBUG=true", "API_URL=https://user:" + f.secret + "@api"},
		"Labels": map[string]string{dockertest.LabelKey: dockertest.RunID, "hy-home.tier": "app", "traefik.enable": "true"},
		"HostConfig": map[string]any{
			"LogConfig": map[string]any{"Type": "splunk", "Config": map[string]string{"splunk-token": f.secret, "splunk-url": "https://127.0.0.1:8088", "tag": "{{.Name}}"}},
			"Mounts": []map[string]any{{"Type": "volume", "Target": "/data", "VolumeOptions": map[string]any{"DriverConfig": map[string]any{"Name": "local",
				"Options": map[string]string{"type": "cifs", "device": "//127.0.0.1/share", "o": "addr=127.0.0.1,username=bob,password=" + f.secret + ",vers=3.0"}}}}},
		},
	})
	r := raw(t, eng, request("POST", "/v1.41/containers/create?name=hyhome-test-secrets-"+dockertest.RunID, body))
	mustStatus(t, "creating a container with secrets", r, http.StatusCreated)
	var cr struct{ Id string }
	_ = json.Unmarshal([]byte(r.body), &cr)
	f.container = cr.Id
	t.Cleanup(func() { dockertest.RemoveContainer(dockertest.Client(t), cr.Id) })
	f.running, _ = dockertest.Run(t, dockertest.Spec{Name: "secrets-run", Image: img.NonRoot, Cmd: []string{"sleep"}, Labels: map[string]string{"hy-home.tier": "app"}})
	f.volume = "hyhome-test-cifs-" + dockertest.RunID
	mustStatus(t, "creating a CIFS volume", raw(t, eng, request("POST", "/v1.41/volumes/create", mustJSON(t, map[string]any{
		"Name": f.volume, "Driver": "local", "Labels": map[string]string{dockertest.LabelKey: dockertest.RunID},
		"DriverOpts": map[string]string{"type": "cifs", "device": "//127.0.0.1/share", "o": "addr=127.0.0.1,username=bob,password=" + f.secret},
	}))), http.StatusCreated)
	t.Cleanup(func() { _ = raw(t, eng, request("DELETE", "/v1.41/volumes/"+f.volume, "")) })
	return f
}

// withoutSecrets drops the secret-bearing values from a decoded answer, so
// that what remains can be compared between the engine and the guard.
func withoutSecrets(v any, path string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			p := path + "." + k
			switch {
			case strings.HasSuffix(p, ".Config.Env"), strings.HasSuffix(p, ".LogConfig.Config"),
				strings.HasSuffix(p, ".DriverConfig.Options"), p == ".Options", strings.HasSuffix(p, "].Options"), p == ".Status":
				out[k] = "(secret-bearing)"
			default:
				out[k] = withoutSecrets(e, p)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withoutSecrets(e, fmt.Sprintf("%s[%d]", path, i))
		}
		return out
	}
	return v
}

// Issue 17 item 8: the engine returns environment values, log driver
// options, volume driver options and exec command lines to anyone who may
// read; through the read-only and shipper profiles they are redacted, and
// nothing else in the answers changes.
func TestReadsRedactedOnTheEngine(t *testing.T) {
	eng := engineSocket(t)
	f := newSecretFixture(t)
	tg := startGuard(t)
	for _, read := range []string{"/v1.41/containers/" + f.container + "/json", "/v1.41/volumes/" + f.volume, "/v1.41/volumes", "/v1.41/containers/" + f.container + "/json?size=1"} {
		direct := raw(t, eng, request("GET", read, ""))
		mustStatus(t, "direct "+read, direct, http.StatusOK)
		if !strings.Contains(direct.body, f.secret) {
			t.Fatalf("the engine's own answer to %s carries no secret: the test shows nothing", read)
		}
		for _, p := range []string{ProfileReadonly, ProfileShipper} {
			got := raw(t, tg.sockets[p], request("GET", read, ""))
			mustStatus(t, p+" "+read, got, http.StatusOK)
			if strings.Contains(got.body, f.secret) || strings.Contains(got.body, "username=bob") {
				t.Errorf("%s %s leaks a secret:\n%s", p, read, got.body)
			}
			var d, g any
			if err := json.Unmarshal([]byte(direct.body), &d); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(got.body), &g); err != nil {
				t.Fatalf("%s %s: not JSON: %v", p, read, err)
			}
			if read == "/v1.41/volumes" {
				d, g = volumeNamed(d, f.volume), volumeNamed(g, f.volume)
			}
			if !reflect.DeepEqual(withoutSecrets(d, ""), withoutSecrets(g, "")) {
				t.Errorf("%s %s changed more than the secrets:\ndirect %v\nguard  %v", p, read, withoutSecrets(d, ""), withoutSecrets(g, ""))
			}
		}
		adm := raw(t, tg.sockets[ProfileAdmission], request("GET", read, ""))
		if !strings.Contains(adm.body, f.secret) {
			t.Errorf("admission redacts %s, which its users could read inside the containers they exec into", read)
		}
	}
	got := raw(t, tg.sockets[ProfileReadonly], request("GET", "/v1.41/containers/"+f.container+"/json", "")).body
	for _, kept := range []string{`DB_PASSWORD_FILE=/run/secrets/db`, `DEBUG=true`, `DB_PASSWORD=[redacted]`, `"tag":"{{.Name}}"`, `"splunk-url":"https://127.0.0.1:8088"`, `addr=127.0.0.1`, `vers=3.0`} {
		if !strings.Contains(got, kept) {
			t.Errorf("readonly inspect lost %s", kept)
		}
	}

	// Exec events: the command line is in the engine's event and not in
	// the guard's; each event reaches the client while the stream is open.
	//
	// The engine flushes GET /events' 200 before it subscribes the stream
	// (moby api/server/router/system getEvents), so an event right after
	// the header can miss a stream opened at "now". since= makes the
	// engine replay its buffer from before the streams opened in the same
	// step as it subscribes them: nothing falls in between.
	ctx := ctxT(t, testenv.Hang)
	query := "filters=" + url.QueryEscape(`{"container":["`+f.running+`"],"type":["container"]}`) + "&since=" + docker.Since(time.Now())
	direct := openEvents(t, ctx, eng, query)
	viaGuard := openEvents(t, ctx, tg.sockets[ProfileShipper], query)
	for i := range 2 {
		mark := fmt.Sprintf("--password=%s-%d", f.secret, i)
		mustStatus(t, "exec create", raw(t, eng, request("POST", "/v1.41/containers/"+f.running+"/exec", `{"Cmd":["/testprog","probe","`+mark+`"]}`)), http.StatusCreated)
		d := direct.next(t, "exec_create")
		if !strings.Contains(d, mark) {
			t.Fatalf("the engine's exec_create event has no command line: %s", d)
		}
		g := viaGuard.next(t, "exec_create")
		if strings.Contains(g, f.secret) || !strings.Contains(g, `exec_create: `+redactedValue) {
			t.Errorf("shipper's exec_create event: %s", g)
		}
	}
}

func volumeNamed(v any, name string) any {
	m, _ := v.(map[string]any)
	vs, _ := m["Volumes"].([]any)
	for _, x := range vs {
		if xm, _ := x.(map[string]any); xm["Name"] == name {
			return x
		}
	}
	return nil
}

// eventStream is an open GET /events.
type eventStream struct{ lines chan string }

// openEvents opens GET /events?query on sock.
func openEvents(t *testing.T, ctx context.Context, sock, query string) *eventStream {
	t.Helper()
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET /v1.41/events?"+query+" HTTP/1.1\r\nHost: docker\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events on %s: %v %v", sock, err, resp)
	}
	es := &eventStream{lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			es.lines <- sc.Text()
		}
		close(es.lines)
	}()
	return es
}

func (es *eventStream) next(t *testing.T, action string) string {
	t.Helper()
	timeout := time.After(testenv.Hang)
	for {
		select {
		case l, ok := <-es.lines:
			if !ok {
				t.Fatal("the event stream ended")
			}
			if strings.Contains(l, `"Action":"`+action) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %s event within a minute on an open stream", action)
		}
	}
}

// Issue 17 item 8: the consumers of the read-only and shipper profiles
// still work through the redacting guard: hyhome audit finds exactly what
// it finds on the engine, Prometheus docker_sd discovers the same targets
// with the same labels, Traefik's docker provider calls answer the same
// fields it reads, and hyhome ship delivers logs and events (with exec
// command lines redacted) to Loki.
func TestConsumersThroughRedaction(t *testing.T) {
	f := newSecretFixture(t)
	tg := startGuard(t)
	ctx := ctxT(t, 2*testenv.Hang)
	engHost := engineHost(t)

	t.Run("audit", func(t *testing.T) {
		sel := source.Selection{All: true, Filters: []string{"label=" + dockertest.LabelKey + "=" + dockertest.RunID}}
		findings := func(host string) []string {
			c, err := client.New(client.WithHost(host))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			src, err := source.New(source.Config{Engine: c, Host: engHost, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			res, err := audit.Run(ctx, src, sel, &policy.Env{})
			if err != nil {
				t.Fatalf("audit through %s: %v", host, err)
			}
			var out []string
			for _, fd := range res.Findings {
				out = append(out, fd.Rule+" | "+fd.Service+" | "+fd.Message)
			}
			sort.Strings(out)
			return out
		}
		direct, guarded := findings(engHost), findings("unix://"+tg.sockets[ProfileReadonly])
		if !slices.ContainsFunc(direct, func(s string) bool { return strings.HasPrefix(s, "secrets-in-env") }) {
			t.Fatalf("audit on the engine finds no secrets-in-env: %v", direct)
		}
		if !slices.Equal(direct, guarded) {
			t.Errorf("audit through readonly differs from audit on the engine:\ndirect:\n  %s\nguard:\n  %s", strings.Join(direct, "\n  "), strings.Join(guarded, "\n  "))
		}
	})

	t.Run("traefik docker provider calls", func(t *testing.T) {
		// Traefik's docker provider (pkg/provider/docker) calls
		// ServerVersion, ContainerList, ContainerInspect of each and reads
		// the name, labels, state and health, network mode, networks'
		// addresses and ports; Events drives its refresh.
		type view struct {
			Name   string
			Labels map[string]string
			State  any
			Mode   string
			Nets   map[string]any
			Ports  any
		}
		read := func(host string) (string, view) {
			c, err := client.New(client.WithHost(host))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			list, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("id", f.running)})
			if err != nil || len(list.Items) != 1 {
				t.Fatalf("listing through %s: %v %v", host, err, list)
			}
			ins, err := c.ContainerInspect(ctx, f.running, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			j := ins.Container
			nets := map[string]any{}
			for name, ep := range j.NetworkSettings.Networks {
				nets[name] = []any{ep.IPAddress, ep.NetworkID, ep.Aliases}
			}
			return v.APIVersion, view{Name: j.Name, Labels: j.Config.Labels, State: j.State, Mode: string(j.HostConfig.NetworkMode), Nets: nets, Ports: j.NetworkSettings.Ports}
		}
		dv, d := read(engHost)
		gv, g := read("unix://" + tg.sockets[ProfileReadonly])
		if dv != gv || !reflect.DeepEqual(d, g) {
			t.Errorf("Traefik's fields differ:\ndirect %s %+v\nguard  %s %+v", dv, d, gv, g)
		}
	})

	t.Run("prometheus docker_sd", func(t *testing.T) {
		prom := promtest.Tool(t, "docker_sd through the guard", "prometheus")
		dir := t.TempDir()
		sd := func(job, host string) string {
			return fmt.Sprintf("  - job_name: %s\n    docker_sd_configs:\n      - host: %q\n        refresh_interval: 1s\n        filters: [{name: label, values: [%q]}]\n",
				job, host, dockertest.LabelKey+"="+dockertest.RunID)
		}
		cfg := "global: {scrape_interval: 1h}\nscrape_configs:\n" + sd("direct", engHost) + sd("guard", "unix://"+tg.sockets[ProfileReadonly])
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		addr := promtest.FreeAddr(t)
		promtest.StartProcess(t, dir, "prometheus", prom, nil, "--config.file="+filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
		promtest.WaitReady(t, "http://"+addr+"/-/ready")
		var direct, guarded []string
		promtest.WaitFor(t, testenv.Hang, "both jobs' targets", func() error {
			resp, err := http.Get("http://" + addr + "/api/v1/targets?state=any")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var tr struct {
				Data struct {
					ActiveTargets []struct {
						DiscoveredLabels map[string]string
						ScrapePool       string
					}
				}
			}
			if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
				return err
			}
			direct, guarded = nil, nil
			for _, at := range tr.Data.ActiveTargets {
				delete(at.DiscoveredLabels, "job")
				b, _ := json.Marshal(at.DiscoveredLabels)
				if at.ScrapePool == "direct" {
					direct = append(direct, string(b))
				} else {
					guarded = append(guarded, string(b))
				}
			}
			if len(direct) == 0 || len(guarded) == 0 {
				return fmt.Errorf("targets: %d direct, %d through the guard", len(direct), len(guarded))
			}
			return nil
		})
		sort.Strings(direct)
		sort.Strings(guarded)
		if !slices.Equal(direct, guarded) {
			t.Errorf("docker_sd through the guard differs:\ndirect %v\nguard  %v", direct, guarded)
		}
	})

	t.Run("hyhome ship", func(t *testing.T) {
		loki, err := lokitest.Start(lokitest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { loki.Close() })
		img := dockertest.Build(t)
		token := "ship-through-guard-" + dockertest.RunID
		cmd := exec.Command(hyhomeBinary(t), "ship", "--host", "unix://"+tg.sockets[ProfileShipper], "--loki-url", loki.URL(),
			"--state-dir", t.TempDir(), "--listen", "", "--select", dockertest.LabelKey+"="+dockertest.RunID, "--batch-wait", "50ms")
		cmd.Env = append(os.Environ(), "GOMEMLIMIT=")
		var logs syncBuffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("hyhome ship:\n%s", logs.String())
			}
		})
		id, _ := dockertest.Run(t, dockertest.Spec{Name: "ship-logs", Image: img.NonRoot, Cmd: []string{"log", "-lines", "3", "-token", token, "-stay"}, Labels: map[string]string{"hy-home.tier": "app"}})
		promtest.WaitFor(t, testenv.Hang, "the container's lines in Loki", func() error {
			if n := len(lokiLines(t, loki, `{source="logs"} |= "`+token+`"`)); n != 3 {
				return fmt.Errorf("%d of 3 lines", n)
			}
			return nil
		})
		mark := "--password=" + f.secret
		mustStatus(t, "exec create", raw(t, engineSocket(t), request("POST", "/v1.41/containers/"+id+"/exec", `{"Cmd":["/testprog","probe","`+mark+`"]}`)), http.StatusCreated)
		promtest.WaitFor(t, testenv.Hang, "the exec event in Loki", func() error {
			lines := lokiLines(t, loki, `{source="events"} |= "exec_create"`)
			for _, l := range lines {
				if strings.Contains(l, f.secret) {
					t.Fatalf("the shipped exec event carries the secret: %s", l)
				}
				if strings.Contains(l, "exec="+redactedValue) || strings.Contains(l, `exec="`+redactedValue+`"`) {
					return nil
				}
			}
			return fmt.Errorf("exec events so far: %v", lines)
		})
	})
}

// lokiLines queries the test Loki for the lines of a LogQL query over the
// last hour.
func lokiLines(t *testing.T, loki *lokitest.Server, q string) []string {
	t.Helper()
	u := loki.URL() + "/loki/api/v1/query_range?limit=1000&start=" + fmt.Sprint(time.Now().Add(-time.Hour).UnixNano()) + "&query=" + url.QueryEscape(q)
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var qr struct {
		Data struct {
			Result []struct{ Values [][2]string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&qr); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range qr.Data.Result {
		for _, v := range r.Values {
			out = append(out, v[1])
		}
	}
	return out
}

var (
	hyhomeOnce sync.Once
	hyhomePath string
	hyhomeErr  error
)

// hyhomeBinary builds the hyhome binary once per test process, into the
// process's temporary directory (dockertest.TempDir), which Main removes
// and cmd/testsweep removes after a killed process.
func hyhomeBinary(t testing.TB) string {
	t.Helper()
	hyhomeOnce.Do(func() {
		dir, err := dockertest.TempDir()
		if err != nil {
			hyhomeErr = err
			return
		}
		hyhomePath, hyhomeErr = dockertest.BuildBinary("./cmd/hyhome", dir, "hyhome")
	})
	if hyhomeErr != nil {
		t.Fatalf("building hyhome: %v", hyhomeErr)
	}
	return hyhomePath
}
