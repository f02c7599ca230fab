package verify

import (
	"net/http"
	"net/url"
)

// newHTTPClient is the client of Loki, Prometheus and Alertmanager: cfg's
// client with credentials, tenant and User-Agent added by authTransport.
func newHTTPClient(cfg Config) *http.Client {
	hc := *cfg.HTTPClient
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = &authTransport{base: base, user: cfg.BasicAuthUser, password: cfg.BasicAuthPassword,
		authHosts: authHosts(cfg.PrometheusURL, cfg.AlertmanagerURL), tenant: cfg.LokiTenant, lokiHost: hostOf(cfg.LokiURL), agent: "hyhome-verify/" + cfg.Version}
	return &hc
}

// authTransport adds basic auth to requests for Prometheus' and
// Alertmanager's hosts (and only those: the password never goes to Loki or a
// redirect elsewhere), the tenant header to Loki's, and a User-Agent.
type authTransport struct {
	base           http.RoundTripper
	user, password string
	authHosts      map[string]bool
	tenant         string
	lokiHost       string
	agent          string
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("User-Agent", t.agent)
	if t.user != "" && t.authHosts[req.URL.Host] && req.Header.Get("Authorization") == "" {
		req.SetBasicAuth(t.user, t.password)
	}
	if t.tenant != "" && req.URL.Host == t.lokiHost {
		req.Header.Set("X-Scope-OrgID", t.tenant)
	}
	return t.base.RoundTrip(req)
}

func hostOf(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Host
}

func authHosts(urls ...string) map[string]bool {
	m := map[string]bool{}
	for _, s := range urls {
		if h := hostOf(s); h != "" {
			m[h] = true
		}
	}
	return m
}

// unwrapURL drops net/http's "Get <whole URL>:" prefix, which repeats the
// query string in every message.
func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
