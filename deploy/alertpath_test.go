package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/promtest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// The alert path, for real: Debian's Prometheus and Alertmanager run on
// loopback with the stack's own prometheus.yml, rules and alertmanager.yml,
// two stand-in infra services are scraped, then one stops answering and the
// other disappears from discovery, and a Slack-compatible webhook on
// loopback must receive the firing and then the resolved notification for
// each, naming the service, the host and since when.
//
// What is substituted, and nothing else, is listed in internal/promtest
// (shared with hyhome verify's tests), whose substitutions fail if the
// stack's files no longer have what they replace. Here discovery is a
// file_sd file whose targets carry the same __meta_docker_* labels Docker
// discovery produces, so the stack's relabelling runs unchanged, and `for:
// 1m` is shortened to 5s.
const (
	alertHost = "alertpath-host"
	// Bounds the test states: from the failure (or the repair) to the Slack
	// message. Expected: ~1s scrape + 5s `for` + 1s evaluation + 1s
	// group_wait for firing; ~1s scrape + 1s evaluation + 1s group_interval
	// for resolved. The bounds leave room for a loaded CI machine.
	firingBound   = 45 * time.Second
	resolvedBound = 45 * time.Second
	webhookPath   = "/services/T0HYHOME/B0ALERTPATH/alertpath"
)

func TestAlertPath(t *testing.T) {
	testenv.Short(t, "it starts Prometheus and Alertmanager")
	dir := t.TempDir()
	slack := newSlackReceiver(t)
	down := newCanary(t, "canary-down") // stops answering: HyHomeServiceDown
	gone := newCanary(t, "canary-gone") // leaves discovery: HyHomeServiceMissing

	sdFile := filepath.Join(dir, "targets.json")
	writeTargets(t, sdFile, down, gone)
	stack := promtest.StartStack(t, promtest.StackOptions{
		HostLabel:  alertHost,
		WebhookURL: slack.srv.URL + webhookPath,
		For:        "5s",
		FileSD:     sdFile,
	})
	for _, v := range stack.Versions {
		t.Log(v)
	}
	promAddr := stack.PromAddr

	// Both stand-ins scraped through the stack's relabelling, and remembered.
	promtest.WaitFor(t, 30*time.Second, "both stand-ins up and recorded", func() error {
		for _, c := range []*canary{down, gone} {
			if v, err := promtest.Value(promAddr, `up{job="infra",tier="infra",service="`+c.name+`",instance="hyhome-`+c.name+`-1"}`); err != nil || v != "1" {
				return fmt.Errorf("%s: up=%q %v", c.name, v, err)
			}
			if _, err := promtest.Value(promAddr, `hyhome:service_last_seen:timestamp_seconds{service="`+c.name+`"}`); err != nil {
				return fmt.Errorf("%s not recorded: %v", c.name, err)
			}
		}
		return nil
	})

	// The failure: one service's process dies (its port refuses), the other's
	// container goes away (discovery drops it).
	failedAt := time.Now()
	down.stop()
	writeTargets(t, sdFile, down)

	firing := slack.await(t, firingBound, []expected{
		{alert: "HyHomeServiceDown", service: down.name, status: "firing"},
		{alert: "HyHomeServiceMissing", service: gone.name, status: "firing"},
	})
	for _, m := range firing {
		checkMessage(t, m, failedAt)
		t.Logf("firing   %-20s %-12s after %5.1fs\n%s\n%s", m.want.alert, m.want.service, m.at.Sub(failedAt).Seconds(), m.Attachments[0].Title, m.Attachments[0].Text)
	}
	// The missing service's message says when it was last seen: its last
	// scrape, which happens after it left the targets file (Prometheus hands
	// discovery changes to the scrape manager at most every 5s) and at least
	// `for` (5s) before the notification.
	if seen := lastSeen(t, firing[1]); seen.Before(failedAt.Add(-2*time.Second)) || seen.After(firing[1].at.Add(-5*time.Second)) {
		t.Errorf("last seen %v: want between the removal (%v) and the notification (%v) minus `for`", seen, failedAt.UTC(), firing[1].at.UTC())
	}

	// The repair: the process comes back on its port, the container comes
	// back into discovery.
	repairedAt := time.Now()
	down.start(t)
	writeTargets(t, sdFile, down, gone)

	resolved := slack.await(t, resolvedBound, []expected{
		{alert: "HyHomeServiceDown", service: down.name, status: "resolved"},
		{alert: "HyHomeServiceMissing", service: gone.name, status: "resolved"},
	})
	for _, m := range resolved {
		checkMessage(t, m, failedAt)
		t.Logf("resolved %-20s %-12s after %5.1fs\n%s\n%s", m.want.alert, m.want.service, m.at.Sub(repairedAt).Seconds(), m.Attachments[0].Title, m.Attachments[0].Text)
	}
}

// writeTargets writes a file_sd file listing the canaries with the labels
// Docker discovery gives a compose container on infra_net. It replaces the
// file atomically so Prometheus never reads half of it.
func writeTargets(t *testing.T, path string, canaries ...*canary) {
	t.Helper()
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := []group{}
	for _, c := range canaries {
		host, port, err := net.SplitHostPort(c.addr)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, group{
			// Docker discovery's fallback address (IP:80); relabelling
			// replaces it with IP:hy-home.metrics.port.
			Targets: []string{net.JoinHostPort(host, "80")},
			Labels: map[string]string{
				"__meta_docker_container_name":                                 "/hyhome-" + c.name + "-1",
				"__meta_docker_container_network_mode":                         "infra_net",
				"__meta_docker_network_name":                                   "infra_net",
				"__meta_docker_network_ip":                                     host,
				"__meta_docker_container_label_hy_home_tier":                   "infra",
				"__meta_docker_container_label_hy_home_job":                    "infra",
				"__meta_docker_container_label_hy_home_metrics_port":           port,
				"__meta_docker_container_label_hy_home_metrics_path":           "/metrics",
				"__meta_docker_container_label_com_docker_compose_service":     c.name,
				"__meta_docker_container_label_com_docker_compose_project":     "hyhome",
				"__meta_docker_container_label_com_docker_compose_oneoff":      "False",
				"__meta_docker_container_label_com_docker_compose_config_hash": "0",
			},
		})
	}
	data, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// --- stand-in services ---------------------------------------------------

// canary is an infra service stand-in: /metrics on a loopback port that can
// die (listener and connections closed) and come back on the same port.
type canary struct {
	name string
	addr string

	mu  sync.Mutex
	srv *http.Server
}

func newCanary(t *testing.T, name string) *canary {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &canary{name: name, addr: ln.Addr().String()}
	c.serve(ln)
	t.Cleanup(c.stop)
	return c
}

func (c *canary) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP canary_info A stand-in infra service.\n# TYPE canary_info gauge\ncanary_info{name=%q} 1\n", c.name)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (c *canary) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil {
		_ = c.srv.Close()
		c.srv = nil
	}
}

func (c *canary) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", c.addr); err == nil {
			c.serve(ln)
			return
		}
	}
	t.Fatalf("restarting %s on %s: %v", c.name, c.addr, err)
}

// --- the Slack side ------------------------------------------------------

type slackAttachment struct {
	Title    string `json:"title"`
	Text     string `json:"text"`
	Color    string `json:"color"`
	Fallback string `json:"fallback"`
}

type slackMessage struct {
	at          time.Time
	path        string
	want        expected
	Attachments []slackAttachment `json:"attachments"`
}

type expected struct{ alert, service, status string }

type slackReceiver struct {
	srv  *httptest.Server
	msgs chan slackMessage
}

// newSlackReceiver accepts what Alertmanager's Slack integration posts to an
// incoming webhook: a JSON object with attachments.
func newSlackReceiver(t *testing.T) *slackReceiver {
	r := &slackReceiver{msgs: make(chan slackMessage, 64)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		var m slackMessage
		if err == nil {
			err = json.Unmarshal(body, &m)
		}
		if err != nil || req.Method != http.MethodPost {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		m.at, m.path = time.Now(), req.URL.Path
		r.msgs <- m
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

var titleRE = regexp.MustCompile(`^\[(FIRING|RESOLVED)(?::\d+)?\] (\S+): (\S+) on (\S+)$`)

// await returns one message per expectation, in the order given, and fails
// on any other message (another alert, the watchdog, a wrong host) or when
// the bound passes.
func (r *slackReceiver) await(t *testing.T, bound time.Duration, want []expected) []slackMessage {
	t.Helper()
	got := make([]slackMessage, len(want))
	seen := make([]bool, len(want))
	deadline := time.After(bound)
	for n := 0; n < len(want); {
		select {
		case m := <-r.msgs:
			if m.path != webhookPath {
				t.Fatalf("message posted to %q, not the URL in api_url_file", m.path)
			}
			if len(m.Attachments) != 1 {
				t.Fatalf("message has %d attachments, want 1: %+v", len(m.Attachments), m)
			}
			sm := titleRE.FindStringSubmatch(m.Attachments[0].Title)
			if sm == nil {
				t.Fatalf("unexpected title %q", m.Attachments[0].Title)
			}
			status, alert, service, host := strings.ToLower(sm[1]), sm[2], sm[3], sm[4]
			i := -1
			for j, w := range want {
				if !seen[j] && w == (expected{alert, service, status}) {
					i = j
				}
			}
			if i < 0 {
				t.Fatalf("unexpected notification %q", m.Attachments[0].Title)
			}
			if host != alertHost {
				t.Errorf("%q names host %q, want %q", m.Attachments[0].Title, host, alertHost)
			}
			m.want = want[i]
			got[i], seen[i] = m, true
			n++
		case <-deadline:
			var missing []string
			for j, w := range want {
				if !seen[j] {
					missing = append(missing, w.status+" "+w.alert+" "+w.service)
				}
			}
			t.Fatalf("no Slack notification within %v for: %s", bound, strings.Join(missing, ", "))
		}
	}
	return got
}

var sinceRE = regexp.MustCompile(`\*Since:\* (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC`)

// checkMessage asserts what the on-call engineer reads: the service, the
// host, since when (at or after the failure, before the message), and the
// resolution time once resolved.
func checkMessage(t *testing.T, m slackMessage, failedAt time.Time) {
	t.Helper()
	a := m.Attachments[0]
	for _, s := range []string{"*Service:* `" + m.want.service + "`", "*Host:* `" + alertHost + "`", "(tier `infra`)"} {
		if !strings.Contains(a.Text, s) {
			t.Errorf("%s %s: text lacks %q:\n%s", m.want.status, m.want.service, s, a.Text)
		}
	}
	sm := sinceRE.FindStringSubmatch(a.Text)
	if sm == nil {
		t.Fatalf("%s %s: no *Since:* line:\n%s", m.want.status, m.want.service, a.Text)
	}
	since, err := time.ParseInLocation("2006-01-02 15:04:05", sm[1], time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if since.Before(failedAt.Truncate(time.Second)) || since.After(m.at) {
		t.Errorf("%s %s: since %v is not between the failure (%v) and the message (%v)", m.want.status, m.want.service, since, failedAt.UTC(), m.at.UTC())
	}
	wantColor := map[string]string{"firing": "danger", "resolved": "good"}[m.want.status]
	if a.Color != wantColor {
		t.Errorf("%s %s: color %q, want %q", m.want.status, m.want.service, a.Color, wantColor)
	}
	if resolved := strings.Contains(a.Text, "*Resolved:*"); resolved != (m.want.status == "resolved") {
		t.Errorf("%s %s: *Resolved:* line present=%v:\n%s", m.want.status, m.want.service, resolved, a.Text)
	}
}

var lastSeenRE = regexp.MustCompile(`was last seen at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [+-]\d{4} \S+)`)

func lastSeen(t *testing.T, m slackMessage) time.Time {
	t.Helper()
	sm := lastSeenRE.FindStringSubmatch(m.Attachments[0].Text)
	if sm == nil {
		t.Fatalf("no last-seen time in:\n%s", m.Attachments[0].Text)
	}
	ts, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", sm[1])
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
