package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"

	"github.com/hy-home/hyhome/internal/workload"
)

// upstream is the engine the guard forwards to.
type upstream struct {
	network, address string
	pool             *connPool
	dialer           net.Dialer

	verMu   sync.Mutex
	version string    // the engine's API version, from /_ping
	verAt   time.Time // when it was read
}

// upstreamHost is the Host header sent to the engine; it does not read it.
const upstreamHost = "docker"

// parseUpstream reads unix:///path or tcp://host:port.
func parseUpstream(s string) (*upstream, error) {
	u := &upstream{dialer: net.Dialer{Timeout: 10 * time.Second}}
	switch {
	case strings.HasPrefix(s, "unix://"):
		u.network, u.address = "unix", strings.TrimPrefix(s, "unix://")
		if u.address == "" {
			return nil, fmt.Errorf("upstream %q: empty socket path", s)
		}
	case strings.HasPrefix(s, "tcp://"):
		u.network, u.address = "tcp", strings.TrimPrefix(s, "tcp://")
		if _, _, err := net.SplitHostPort(u.address); err != nil {
			return nil, fmt.Errorf("upstream %q: %w", s, err)
		}
	default:
		return nil, fmt.Errorf("upstream %q: want unix:///path or tcp://host:port", s)
	}
	u.pool = &connPool{dial: u.dial}
	return u, nil
}

func (u *upstream) dial(ctx context.Context) (net.Conn, error) {
	return u.dialer.DialContext(ctx, u.network, u.address)
}

func (u *upstream) String() string {
	if u.network == "unix" {
		return "unix://" + u.address
	}
	return "tcp://" + u.address
}

// errNotFound is an engine 404: the object does not exist.
var errNotFound = errors.New("not found")

// engineError is an error answer of the engine.
type engineError struct {
	status  int
	message string
}

func (e *engineError) Error() string {
	return fmt.Sprintf("engine answered %d: %s", e.status, e.message)
}

// lookupTimeKey keys a *time.Duration in a request's context that lookups
// add their time to (Config.ServerTiming). A request's lookups run one after
// another, in its handler's goroutine.
type lookupTimeKey struct{}

// lookupTimeout bounds one lookup; the engine answers inspects in
// milliseconds unless it is stuck.
const lookupTimeout = 15 * time.Second

// versionTTL is how long the engine's API version is trusted before it is
// asked again (an engine upgrade restarts it, which closes connections;
// this bounds the time a stale version is used).
const versionTTL = 30 * time.Second

// apiVersion returns the engine's API version (its maximum, which it uses
// for unversioned requests).
func (u *upstream) apiVersion(ctx context.Context) (string, error) {
	u.verMu.Lock()
	defer u.verMu.Unlock()
	if u.version != "" && time.Since(u.verAt) < versionTTL {
		return u.version, nil
	}
	v, err := u.pingVersion(ctx)
	if err != nil {
		return "", err
	}
	u.version, u.verAt = v, time.Now()
	return v, nil
}

// ping asks the engine whether it is up.
func (u *upstream) ping(ctx context.Context) error {
	_, err := u.pingVersion(ctx)
	return err
}

func (u *upstream) pingVersion(ctx context.Context) (string, error) {
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: "http", Host: upstreamHost, Path: "/_ping"},
		Header: http.Header{"User-Agent": {"hyhome-guard"}},
		Host:   upstreamHost,
	}
	resp, err := u.pool.roundTrip(ctx, req, func() io.ReadCloser { return http.NoBody })
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("engine answered %s", resp.Status)
	}
	v := resp.Header.Get("Api-Version")
	if v == "" {
		return "", errors.New("the engine's /_ping names no API version")
	}
	return v, nil
}

// getJSON GETs an unversioned engine path (the engine answers with its own
// API version's shapes) and decodes the answer into out.
func (u *upstream) getJSON(ctx context.Context, p string, query url.Values, out any) error {
	if spent, ok := ctx.Value(lookupTimeKey{}).(*time.Duration); ok {
		start := time.Now()
		defer func() { *spent += time.Since(start) }()
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: "http", Host: upstreamHost, Path: p, RawQuery: query.Encode()},
		Header: http.Header{"User-Agent": {"hyhome-guard"}},
		Host:   upstreamHost,
	}
	resp, err := u.pool.roundTrip(ctx, req, func() io.ReadCloser { return http.NoBody })
	if err != nil {
		return fmt.Errorf("asking the engine for %s: %w", p, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the engine's answer for %s: %w", p, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w", p, errNotFound)
	case resp.StatusCode/100 != 2:
		var e struct{ Message string }
		_ = json.Unmarshal(body, &e)
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(body))
		}
		return &engineError{status: resp.StatusCode, message: e.Message}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding the engine's answer for %s: %w", p, err)
	}
	return nil
}

// lookups are the objects a request refers to, fetched from the engine.
// Every method returns errNotFound (wrapped) when the object does not exist.
type lookups interface {
	container(ctx context.Context, ref string) (*container.InspectResponse, error)
	image(ctx context.Context, ref string) (*image.InspectResponse, error)
	volume(ctx context.Context, name string) (*volume.Volume, error)
	network(ctx context.Context, ref string) (*network.Inspect, error)
	exec(ctx context.Context, id string) (*container.ExecInspectResponse, error)
	service(ctx context.Context, ref string) (*swarm.Service, error)
	plugin(ctx context.Context, ref string) (*plugin.Plugin, error)
	// infraContainers lists every container (running or not) whose
	// hy-home.tier is an infrastructure tier.
	infraContainers(ctx context.Context) ([]container.Summary, error)
	// apiVersion is the engine's API version.
	apiVersion(ctx context.Context) (string, error)
}

// engineLookups asks the upstream engine.
type engineLookups struct{ u *upstream }

func (e engineLookups) container(ctx context.Context, ref string) (*container.InspectResponse, error) {
	var v container.InspectResponse
	if err := e.u.getJSON(ctx, "/containers/"+ref+"/json", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (e engineLookups) image(ctx context.Context, ref string) (*image.InspectResponse, error) {
	var v image.InspectResponse
	if err := e.u.getJSON(ctx, "/images/"+ref+"/json", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (e engineLookups) volume(ctx context.Context, name string) (*volume.Volume, error) {
	var v volume.Volume
	if err := e.u.getJSON(ctx, "/volumes/"+name, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (e engineLookups) network(ctx context.Context, ref string) (*network.Inspect, error) {
	var v network.Inspect
	if err := e.u.getJSON(ctx, "/networks/"+ref, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (e engineLookups) exec(ctx context.Context, id string) (*container.ExecInspectResponse, error) {
	var v container.ExecInspectResponse
	if err := e.u.getJSON(ctx, "/exec/"+id+"/json", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (e engineLookups) service(ctx context.Context, ref string) (*swarm.Service, error) {
	var v swarm.Service
	if err := e.u.getJSON(ctx, "/services/"+ref, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (e engineLookups) apiVersion(ctx context.Context) (string, error) { return e.u.apiVersion(ctx) }

func (e engineLookups) plugin(ctx context.Context, ref string) (*plugin.Plugin, error) {
	var v plugin.Plugin
	if err := e.u.getJSON(ctx, "/plugins/"+ref+"/json", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (e engineLookups) infraContainers(ctx context.Context) ([]container.Summary, error) {
	var all []container.Summary
	q := url.Values{"all": {"1"}, "filters": {`{"label":["` + workload.LabelTier + `"]}`}}
	if err := e.u.getJSON(ctx, "/containers/json", q, &all); err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if isInfra(c.Labels) {
			out = append(out, c)
		}
	}
	return out, nil
}
