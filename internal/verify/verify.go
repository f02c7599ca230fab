// Package verify runs SPEC-SYS-01's acceptance checks against a live host
// and measures what the spec bounds: AC-SPEC-01 (internal/acceptance's
// check, on the containers verify judges), NFR-RES-01 (idle memory of the
// infra tier), AC-SPEC-02 and NFR-OBS-01 (a crashing canary's log line and
// die event found in Loki, with latencies), AC-SPEC-03 (infra memory against
// limits while the host is held at 80% CPU) and the alert path (an infra
// canary taken down, its alert watched in Alertmanager and, optionally, its
// Slack message).
//
// The checks are a registry (checks.go): each names its requirement, what
// it needs from the configuration and the function that runs it. The
// clients they use are small pieces of their own, each given the logger:
// loki (query_range), alertmanager (the v2 API), slack (the webhook
// receiver) and load (the CPU load generator the load canary runs).
//
// It creates only canary containers of its own, each compliant with the
// baseline it verifies and labelled so it can be found, and removes every one
// of them before Run returns, also when the context is cancelled. It judges
// no policy rule itself (the audit does) and renders nothing (internal/report
// does); it owns the checks' procedures, their figures and their verdicts.
package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/verify/alertmanager"
	"github.com/hy-home/hyhome/internal/verify/loki"
)

// Verifier runs the checks. Make one with New; Run may be called once.
type Verifier struct {
	cfg Config
	log *slog.Logger

	loki *loki.Client
	am   *alertmanager.Client
	prom *promClient
	// gateway sends the trials' requests through the gateway (GatewayURL).
	gateway  *http.Client
	canaries *canaries

	// engine and clock are what Run learnt about the engine at the start.
	engine report.CheckEngine
	clock  clockInfo
	// trials are AC-SPEC-02's and NFR-OBS-01's, run by the first of them.
	trials *LatencyResult
}

// New validates cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	hc := newHTTPClient(cfg)
	v := &Verifier{
		cfg:     cfg,
		log:     cfg.Logger,
		loki:    &loki.Client{URL: cfg.LokiURL, HTTP: hc, Log: cfg.Logger},
		am:      &alertmanager.Client{URL: cfg.AlertmanagerURL, HTTP: hc, Log: cfg.Logger, Now: cfg.Clock.Now},
		gateway: newGatewayClient(cfg),
	}
	v.canaries = newCanaries(&v.cfg, newToken())
	if cfg.PrometheusURL != "" {
		if v.prom, err = newPromClient(cfg.PrometheusURL, hc); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	return v, nil
}

// newToken is 12 random hex digits: unique per canary, short enough for
// container names.
func newToken() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrEngine wraps failures to reach or read the engine at the start: verify
// could not run at all.
var ErrEngine = errors.New("docker engine")

// Run executes the configured checks in order and returns their report. It
// returns an error only when nothing could be verified (the engine could not
// be read); a check that could not run is an ERROR in the report. Every
// canary created is removed before Run returns, even when ctx is cancelled,
// in which case the remaining checks are reported as skipped and ctx's error
// is returned with the report.
func (v *Verifier) Run(ctx context.Context) (*report.CheckReport, error) {
	start := v.cfg.Clock.Now()
	rep := &report.CheckReport{Tool: "hyhome", Version: v.cfg.Version, Command: "verify", Spec: "SPEC-SYS-01", Started: start.UTC()}
	defer v.canaries.cleanup(ctx)

	info, err := v.cfg.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w at %s: reading engine info: %w", ErrEngine, v.cfg.Host, err)
	}
	v.engine = report.CheckEngine{
		Host:          v.cfg.Host,
		Name:          info.Info.Name,
		ServerVersion: info.Info.ServerVersion,
		CgroupVersion: info.Info.CgroupVersion,
		NCPU:          info.Info.NCPU,
		MemTotal:      info.Info.MemTotal,
	}
	if v.engine.CgroupVersion == "" {
		v.engine.CgroupVersion = "1" // engines before API 1.40 do not say, and predate cgroup v2 support
	}
	v.clock = v.clockOffset(ctx)
	v.engine.Clock = v.clock.source
	rep.Engine = v.engine
	v.canaries.sweepExpired(ctx)

	for _, id := range v.cfg.Checks {
		c, _ := checkByID(id) // withDefaults accepted only known IDs
		var res *report.CheckResult
		began := v.cfg.Clock.Now()
		switch {
		case ctx.Err() != nil:
			res = skipped(c, "interrupted before it ran")
		case v.cfg.missing(id) != "":
			res = skipped(c, v.cfg.missing(id))
		default:
			v.log.Info("check", "id", id)
			res = newResult(c)
			c.run(v, ctx, res)
		}
		res.DurationSeconds = v.cfg.Clock.Now().Sub(began).Seconds()
		v.log.Info("check done", "id", id, "status", res.Status, "summary", res.Summary)
		rep.Checks = append(rep.Checks, res)
	}
	v.canaries.cleanup(ctx)
	rep.Notices = append(rep.Notices, v.canaries.takeNotices()...)
	rep.DurationSeconds = v.cfg.Clock.Now().Sub(start).Seconds()
	return rep, ctx.Err()
}

// --- the engine's clock ------------------------------------------------------

// clockInfo relates the engine's clock to this process's.
type clockInfo struct {
	// offset is engine time minus local time; latencies subtract it.
	offset time.Duration
	// uncertainty bounds the error of offset (half the round trip).
	uncertainty time.Duration
	source      string
}

// clockOffset decides how engine timestamps (log lines, events) compare to
// this process's clock. A unix socket means the same kernel and the same
// clock; over TCP the offset is estimated from the engine's /info
// SystemTime, taking the reading with the shortest round trip of three.
func (v *Verifier) clockOffset(ctx context.Context) clockInfo {
	if u, err := url.Parse(v.cfg.Host); err == nil && (u.Scheme == "unix" || u.Scheme == "npipe") {
		return clockInfo{source: "same host (" + u.Scheme + " socket): engine timestamps compared as they are"}
	}
	best := clockInfo{uncertainty: -1}
	for range 3 {
		t0 := time.Now()
		info, err := v.cfg.Engine.Info(ctx, client.InfoOptions{})
		t1 := time.Now()
		if err != nil {
			continue
		}
		et, err := time.Parse(time.RFC3339Nano, info.Info.SystemTime)
		if err != nil {
			continue
		}
		half := t1.Sub(t0) / 2
		if best.uncertainty < 0 || half < best.uncertainty {
			best = clockInfo{offset: et.Sub(t0.Add(half)), uncertainty: half}
		}
	}
	if best.uncertainty < 0 {
		return clockInfo{source: "remote engine; its clock could not be read, compared as if in sync"}
	}
	best.source = fmt.Sprintf("remote engine; its clock is %+.1f ms from this host's (±%.1f ms), corrected", float64(best.offset)/1e6, float64(best.uncertainty)/1e6)
	return best
}

// local converts an engine timestamp to this process's clock.
func (v *Verifier) local(engineTime time.Time) time.Time {
	return engineTime.Add(-v.clock.offset)
}

// engineNow is the engine's current time as far as verify can tell.
func (v *Verifier) engineNow() time.Time { return v.cfg.Clock.Now().Add(v.clock.offset) }

// sleep waits d on the injected clock; false when ctx ended first.
func (v *Verifier) sleep(ctx context.Context, d time.Duration) bool {
	t := v.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

func seconds(d time.Duration) float64 { return d.Seconds() }
