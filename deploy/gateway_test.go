package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Opt-in checks with the real programs of the stack, for machines that have
// them (no third-party image can be pulled on this project's machines, so CI
// skips them): point HYHOME_TRAEFIK_BIN at a Traefik v3 binary and
// HYHOME_LOKI_BIN at a Loki 3 binary, e.g. built from the Go module proxy
// (`go build ./cmd/traefik` in a copy of github.com/traefik/traefik/v3@v3.6.12,
// the release compose.yaml pins; `docker cp` it out of the image
// deploy/e2e/images.sh builds).
// Each runs the program with the stack's own configuration on loopback; only
// listen addresses and file paths are substituted.

func optInBinary(t *testing.T, env string) string {
	t.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		t.Skip(env + " not set: this check runs the real program and is opt-in")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	return bin
}

// TestGatewayTraefik: the gateway as compose.yaml configures it. HTTP
// redirects to the published HTTPS port, TLS below 1.2 and non-AEAD suites
// are refused, the certificate covers the domain, the operator UIs need the
// basic-auth user, security headers are set, Grafana's /metrics is not
// public, and `traefik healthcheck` works from the same environment.
func TestGatewayTraefik(t *testing.T) {
	bin := optInBinary(t, "HYHOME_TRAEFIK_BIN")
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if out, err := runTool(t, repoRoot(t), 3*time.Minute, "go", "run", "./deploy/tools/mksecrets", "-dir", secrets, "-domain", "home.example"); err != nil {
		t.Fatalf("mksecrets: %v\n%s", err, out)
	}

	// The dynamic files, with the secret paths pointed at the test's files.
	dynamic := filepath.Join(dir, "dynamic")
	if err := os.Mkdir(dynamic, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(deployDir(t), "traefik", "dynamic", "*.yaml"))
	paths := strings.NewReplacer(
		"/run/secrets/tls_cert", filepath.Join(secrets, "tls.crt"),
		"/run/secrets/tls_key", filepath.Join(secrets, "tls.key"),
		"/run/secrets/traefik_dashboard_users", filepath.Join(secrets, "traefik_dashboard_users"),
	)
	for _, f := range files {
		writeFile(t, filepath.Join(dynamic, filepath.Base(f)), []byte(paths.Replace(string(readFile(t, f)))))
	}

	web, websecure, metrics, docker := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	_, httpsPort, _ := net.SplitHostPort(websecure)
	env := map[string]string{}
	for k, v := range mustLoad(t, nil, "compose.yaml").Services["traefik"].Environment {
		if v != nil {
			env[k] = *v
		}
	}
	for k, v := range map[string]string{
		"TRAEFIK_ENTRYPOINTS_WEB_ADDRESS":                         web,
		"TRAEFIK_ENTRYPOINTS_WEBSECURE_ADDRESS":                   websecure,
		"TRAEFIK_ENTRYPOINTS_METRICS_ADDRESS":                     metrics,
		"TRAEFIK_ENTRYPOINTS_WEB_HTTP_REDIRECTIONS_ENTRYPOINT_TO": ":" + httpsPort,
		"TRAEFIK_PROVIDERS_FILE_DIRECTORY":                        dynamic,
		// Nothing listens there: the Docker provider retries, the file
		// provider is what is tested.
		"TRAEFIK_PROVIDERS_DOCKER_ENDPOINT": "tcp://" + docker,
		"HYHOME_DOMAIN":                     "home.example",
	} {
		if _, ok := env[k]; !ok {
			t.Fatalf("compose.yaml no longer sets %s: update the substitution", k)
		}
		env[k] = v
	}
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	startProcess(t, dir, "traefik", bin, envList)
	waitReady(t, "http://"+metrics+"/ping")

	// Same environment, healthcheck subcommand: what the compose healthcheck runs.
	hc := exec.Command(bin, "healthcheck")
	hc.Env = append(os.Environ(), envList...)
	if out, err := hc.CombinedOutput(); err != nil {
		t.Errorf("traefik healthcheck: %v\n%s", err, out)
	}

	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+web+"/some/path?q=1", nil)
	req.Host = "grafana.home.example"
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); (resp.StatusCode != http.StatusMovedPermanently && resp.StatusCode != http.StatusPermanentRedirect) ||
		loc != "https://grafana.home.example:"+httpsPort+"/some/path?q=1" {
		t.Errorf("HTTP answered %d Location %q, want a permanent redirect to the published HTTPS port", resp.StatusCode, loc)
	}

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, filepath.Join(secrets, "tls.crt"))) {
		t.Fatal("test certificate")
	}
	handshake := func(min, max uint16, suites []uint16) (*tls.ConnectionState, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", websecure, &tls.Config{
			ServerName: "grafana.home.example", RootCAs: pool, MinVersion: min, MaxVersion: max, CipherSuites: suites,
		})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		st := conn.ConnectionState()
		return &st, nil
	}
	// Refused for its version (alert 70), not merely for lack of a shared
	// cipher: minVersion itself is what is checked.
	if _, err := handshake(tls.VersionTLS10, tls.VersionTLS11, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.0/1.1 handshake: %v; want a protocol version alert (minVersion TLS 1.2)", err)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if st, err := handshake(v, v, nil); err != nil {
			t.Errorf("%s handshake (certificate verified for grafana.home.example): %v", tls.VersionName(v), err)
		} else if st.Version != v {
			t.Errorf("negotiated %s, want %s", tls.VersionName(st.Version), tls.VersionName(v))
		}
	}
	if _, err := handshake(tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}); err == nil {
		t.Error("a CBC suite was accepted: only AEAD suites are configured")
	}
	if st, err := handshake(tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}); err != nil || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Errorf("ChaCha20-Poly1305 over TLS 1.2: %v", err)
	}

	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, websecure)
		},
	}}
	password := strings.TrimSpace(string(readFile(t, filepath.Join(secrets, "traefik_dashboard_password"))))
	get := func(host, path, user, pass string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+host+":"+httpsPort+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := https.Do(req)
		if err != nil {
			t.Fatalf("GET https://%s%s: %v", host, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	for _, c := range []struct{ host, path, user, pass string }{
		{"traefik.home.example", "/api/http/routers", "", ""},
		{"traefik.home.example", "/api/http/routers", "admin", "wrong"},
		{"prometheus.home.example", "/", "", ""},
		{"alertmanager.home.example", "/", "", ""},
	} {
		if resp, _ := get(c.host, c.path, c.user, c.pass); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s%s with user %q: %d, want 401", c.host, c.path, c.user, resp.StatusCode)
		}
	}
	resp, body := get("traefik.home.example", "/api/http/routers", "admin", password)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("API with the generated password: %d %s", resp.StatusCode, body)
	}
	for h, want := range map[string]string{
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
		"X-Frame-Options":           "DENY",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "same-origin",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	var routers []struct {
		Name        string   `json:"name"`
		Status      string   `json:"status"`
		EntryPoints []string `json:"entryPoints"`
		TLS         *struct {
			Options string `json:"options"`
		} `json:"tls"`
	}
	if err := json.Unmarshal(body, &routers); err != nil {
		t.Fatal(err)
	}
	fileRouters := 0
	for _, r := range routers {
		if !strings.HasSuffix(r.Name, "@file") {
			continue
		}
		fileRouters++
		if r.Status != "enabled" || r.TLS == nil || r.TLS.Options != "default" || len(r.EntryPoints) != 1 || r.EntryPoints[0] != "websecure" {
			t.Errorf("router %s: status %s, entry points %v, tls %+v", r.Name, r.Status, r.EntryPoints, r.TLS)
		}
	}
	if fileRouters != 4 {
		t.Errorf("%d routers from the file provider, want 4 (grafana, prometheus, alertmanager, dashboard)", fileRouters)
	}
	if resp, _ := get("grafana.home.example", "/metrics", "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("Grafana's /metrics through the gateway: %d, want 404", resp.StatusCode)
	}

	// What hyhome ship sends to Loki: every line JSON (no ANSI colours),
	// and the access log records the dashboard's failed logins too (its
	// router ends at api@internal, which Traefik leaves out by default).
	waitFor(t, 30*time.Second, "the dashboard's 401 in the access log", func() error {
		for _, line := range strings.Split(string(readFile(t, filepath.Join(dir, "traefik.log"))), "\n") {
			var e struct {
				RequestHost, RequestPath string
				DownstreamStatus         int
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.RequestHost == "traefik.home.example" && e.RequestPath == "/api/http/routers" && e.DownstreamStatus == http.StatusUnauthorized {
				return nil
			}
		}
		return errors.New("no access log line of GET https://traefik.home.example/api/http/routers answered 401")
	})
	for i, line := range strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(dir, "traefik.log")))), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("traefik output line %d is not JSON: %q", i+1, line)
		}
	}
}

// TestLokiConfig: deploy/loki/loki.yaml passes Loki's own -verify-config,
// the server starts with it, and a line pushed with the labels hyhome ship
// uses is found by AC-SPEC-02's selector.
func TestLokiConfig(t *testing.T) {
	bin := optInBinary(t, "HYHOME_LOKI_BIN")
	cfg := filepath.Join(deployDir(t), "loki", "loki.yaml")
	if out, err := runTool(t, deployDir(t), time.Minute, bin, "-config.file="+cfg, "-verify-config"); err != nil {
		t.Fatalf("loki -verify-config: %v\n%s", err, out)
	}
	dir := t.TempDir()
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	httpHost, httpPort, _ := net.SplitHostPort(httpAddr)
	grpcHost, grpcPort, _ := net.SplitHostPort(grpcAddr)
	startProcess(t, dir, "loki", bin, nil,
		"-config.file="+cfg,
		"-server.http-listen-address="+httpHost, "-server.http-listen-port="+httpPort,
		"-server.grpc-listen-address="+grpcHost, "-server.grpc-listen-port="+grpcPort,
		"-common.path-prefix="+dir,
		"-common.storage.filesystem.chunk-directory="+filepath.Join(dir, "chunks"),
		"-common.storage.filesystem.rules-directory="+filepath.Join(dir, "rules"),
		"-compactor.working-directory="+filepath.Join(dir, "compactor"),
	)
	waitFor(t, 90*time.Second, "loki /ready", func() error {
		resp, err := httpClient.Get("http://" + httpAddr + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	line := "hyhome loki config check " + time.Now().Format(time.RFC3339Nano)
	push := `{"streams":[{"stream":{"job":"infra","tier":"gateway","service":"traefik","source":"logs"},"values":[["` +
		strconv.FormatInt(time.Now().UnixNano(), 10) + `",` + strconv.Quote(line) + `]]}]}`
	resp, err := httpClient.Post("http://"+httpAddr+"/loki/api/v1/push", "application/json", strings.NewReader(push))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %s", resp.Status)
	}
	waitFor(t, 10*time.Second, "the pushed line", func() error {
		resp, err := httpClient.Get("http://" + httpAddr + "/loki/api/v1/query_range?query=" + url.QueryEscape(`{job="infra", tier="gateway"}`))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), line) {
			return errors.New("not found yet")
		}
		return nil
	})
}
