package verify

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The gateway's own access log in AC-SPEC-02 and NFR-OBS-01.
//
// The crash canary is a stand-in for "a service crash or log event"; the
// spec's selector names the gateway tier, whose real log is Traefik's access
// log. With a gateway URL, every trial also sends one request through the
// gateway (Traefik's published port) for a path carrying the trial's token;
// the gateway logs it, the shipper ships it, and the same query_range that
// looks for the canary must return that access log line. Its latency is
// measured from the moment the request was sent, on verify's clock: the
// gateway writes the line when the response is done, so this is an upper
// bound (by the request's duration), which errs towards failing.

// gatewayPathPrefix starts the path of a trial's gateway request.
const gatewayPathPrefix = "/hyhome-verify/"

// hasGatewayLine reports whether a Loki line is the gateway's access log
// line of the trial's request: it names the request's path.
func hasGatewayLine(line, token string) bool {
	return strings.Contains(line, gatewayPathPrefix+token)
}

// newGatewayClient is the client of the trials' gateway requests: TLS
// verified against cfg.GatewayRootCAs for the gateway host's name, no
// redirects followed (the answer's status is reported, whatever it is).
func newGatewayClient(cfg Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: cfg.GatewayRootCAs, MinVersion: tls.VersionTLS12}
	if h := gatewayServerName(cfg.GatewayHost); h != "" {
		tr.TLSClientConfig.ServerName = h
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// gatewayServerName is the TLS server name of a Host value (its port dropped).
func gatewayServerName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// gatewayRequest sends the trial's request through the gateway and returns
// its HTTP status.
func (v *Verifier) gatewayRequest(ctx context.Context, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.GatewayURL+gatewayPathPrefix+token, nil)
	if err != nil {
		return 0, err
	}
	if v.cfg.GatewayHost != "" {
		req.Host = v.cfg.GatewayHost
	}
	req.Header.Set("User-Agent", "hyhome-verify/"+v.cfg.Version)
	resp, err := v.gateway.Do(req)
	if err != nil {
		return 0, fmt.Errorf("request through the gateway %s: %w", v.cfg.GatewayURL, unwrapURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}
