package verify

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/report"
)

// fakeGateway stands for Traefik and its log shipping: a TLS server that, for
// each request, pushes an access log line naming the request's path to Loki
// under the gateway's labels, as Traefik's JSON access log reaches Loki
// through hyhome ship. The e2e run (deploy/e2e) does the same with the real
// Traefik and the real shipper.
type fakeGateway struct {
	srv   *httptest.Server
	mu    sync.Mutex
	hosts []string
}

func startFakeGateway(t *testing.T, pushURL string, ship bool) *fakeGateway {
	g := &fakeGateway{}
	g.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.hosts = append(g.hosts, r.Host)
		g.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		if !ship {
			return
		}
		line, _ := json.Marshal(map[string]any{"RequestHost": r.Host, "RequestPath": r.URL.Path, "DownstreamStatus": 401})
		body, _ := json.Marshal(map[string]any{"streams": []any{map[string]any{
			"stream": map[string]string{"job": "infra", "tier": "gateway", "service": "traefik"},
			"values": [][]string{{fmt.Sprint(time.Now().UnixNano()), string(line)}},
		}}})
		resp, err := http.Post(pushURL, "application/json", strings.NewReader(string(body)))
		if err == nil {
			resp.Body.Close()
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(g.srv.Certificate())
	return p
}

// With a gateway URL every trial also finds the gateway's access log line of
// its own request, verified over TLS for the configured host, and times it;
// a gateway whose log never reaches Loki fails both checks by name.
func TestObservabilityGatewayAccessLog(t *testing.T) {
	scope := newToken()
	loki := startLoki(t)
	startShip(t, loki, scope)

	t.Run("Found", func(t *testing.T) {
		gw := startFakeGateway(t, loki.PushURL(), true)
		cfg := testConfig(t, scope)
		cfg.Checks = []string{CheckACSpec02, CheckNFRObs01}
		cfg.LokiURL = loki.URL()
		cfg.Trials = 2
		cfg.GatewayURL = gw.srv.URL
		cfg.GatewayHost = "example.com" // in httptest's certificate
		cfg.GatewayRootCAs = gw.roots()
		rep := run(t, cfg)
		ac := checkOf(t, rep, CheckACSpec02)
		wantStatus(t, ac, report.CheckPass)
		wantStatus(t, checkOf(t, rep, CheckNFRObs01), report.CheckPass)
		l := detail[*LatencyResult](t, ac)
		if l.Gateway != gw.srv.URL || l.GatewayLog.N != 2 {
			t.Errorf("gateway %q, access log distribution %+v", l.Gateway, l.GatewayLog)
		}
		for _, tr := range l.Trials {
			if !tr.Gateway || tr.GatewayStatus != http.StatusUnauthorized || tr.GatewaySeconds == nil || *tr.GatewaySeconds < 0 {
				t.Errorf("trial %d: gateway %v status %d seconds %v", tr.N, tr.Gateway, tr.GatewayStatus, tr.GatewaySeconds)
			}
			if w := tr.worst(); w == nil || *w < *tr.GatewaySeconds {
				t.Errorf("trial %d: worst %v below the access log's %v", tr.N, w, *tr.GatewaySeconds)
			}
		}
		if !strings.Contains(ac.Summary, "gateway access log found within 5s") {
			t.Errorf("summary %q", ac.Summary)
		}
		gw.mu.Lock()
		defer gw.mu.Unlock()
		if len(gw.hosts) != 2 || gw.hosts[0] != "example.com" {
			t.Errorf("the gateway saw hosts %v, want example.com twice", gw.hosts)
		}
	})

	t.Run("NotShipped", func(t *testing.T) {
		gw := startFakeGateway(t, loki.PushURL(), false)
		cfg := testConfig(t, scope)
		cfg.Checks = []string{CheckACSpec02}
		cfg.LokiURL = loki.URL()
		cfg.Trials = 1
		cfg.TrialTimeout = 6 * time.Second
		cfg.GatewayURL = gw.srv.URL
		cfg.GatewayHost = "example.com"
		cfg.GatewayRootCAs = gw.roots()
		ac := checkOf(t, run(t, cfg), CheckACSpec02)
		wantStatus(t, ac, report.CheckFail)
		tr := detail[*LatencyResult](t, ac).Trials[0]
		if tr.LogSeconds == nil || tr.DieSeconds == nil || tr.GatewaySeconds != nil || !strings.Contains(tr.Error, "no gateway access log of the request (answered 401)") {
			t.Errorf("trial %+v", tr)
		}
	})

	t.Run("UntrustedCertificate", func(t *testing.T) {
		gw := startFakeGateway(t, loki.PushURL(), true)
		cfg := testConfig(t, scope)
		cfg.Checks = []string{CheckACSpec02}
		cfg.LokiURL = loki.URL()
		cfg.Trials = 1
		cfg.TrialTimeout = 6 * time.Second
		cfg.GatewayURL = gw.srv.URL // system roots: httptest's certificate is not trusted
		ac := checkOf(t, run(t, cfg), CheckACSpec02)
		wantStatus(t, ac, report.CheckFail)
		if tr := detail[*LatencyResult](t, ac).Trials[0]; !strings.Contains(tr.Error, "the request failed") || !strings.Contains(tr.Error, "certificate") {
			t.Errorf("trial error %q", tr.Error)
		}
	})
}

func TestGatewayConfig(t *testing.T) {
	base := Config{Engine: noEngine{}, LokiURL: "http://127.0.0.1:3100"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"not a URL", func(c *Config) { c.GatewayURL = "127.0.0.1:443" }, `the gateway URL "127.0.0.1:443" must be an http:// or https:// URL with a host`},
		{"no Loki", func(c *Config) { c.GatewayURL = "https://127.0.0.1"; c.LokiURL = "" }, "a gateway URL needs a Loki URL"},
		{"bad host", func(c *Config) { c.GatewayURL = "https://127.0.0.1"; c.GatewayHost = "a/b" }, `the gateway host "a/b" must be a host name`},
		{"bad alert service", func(c *Config) { c.AlertService = "audit=1" }, `the alert service "audit=1" must be a compose service name`},
	} {
		cfg := base
		tc.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	ok := base
	ok.GatewayURL, ok.GatewayHost = "https://127.0.0.1:18443/", "traefik.hyhome.localhost:18443"
	if err := ok.Validate(); err != nil {
		t.Errorf("valid gateway settings refused: %v", err)
	}
	if got := gatewayServerName(ok.GatewayHost); got != "traefik.hyhome.localhost" {
		t.Errorf("server name %q", got)
	}
}
