package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/workload"
)

// Labels on every canary. LabelCanary says which kind it is; LabelRun ties it
// to one verify run; LabelExpires (Unix seconds) lets a later run remove a
// canary that a killed run left behind without touching a live run's.
const (
	LabelCanary  = "hy-home.verify.canary"
	LabelRun     = "hy-home.verify.run"
	LabelToken   = "hy-home.verify.token"
	LabelExpires = "hy-home.verify.expires"
)

// Canary kinds.
const (
	canaryCrash = "crash" // logs a token and exits 1 (AC-SPEC-02, NFR-OBS-01)
	canaryLoad  = "load"  // holds host CPU at the target (AC-SPEC-03)
	canaryAlert = "alert" // an infra service with /metrics (ALERTING)
)

// canaryLinePrefix starts the crash canary's one log line; the token follows.
const canaryLinePrefix = "hyhome verify canary token="

// CanaryLine is the line a crash canary logs before it exits.
func CanaryLine(token string) string {
	return canaryLinePrefix + token + ": crashing on purpose (SPEC-SYS-01 AC-SPEC-02, NFR-OBS-01)"
}

// canarySpec is one canary container to create.
type canarySpec struct {
	kind    string
	name    string
	token   string
	cmd     []string
	labels  map[string]string
	network string // "none" unless the canary must be reachable
	health  *container.HealthConfig
	expires time.Time
}

// createOptions builds the create request. Every canary is compliant with
// the baseline it helps to verify (SPEC-SYS-01 §4): non-root, every
// capability dropped, no-new-privileges:true, a read-only root filesystem,
// memory and pids limits, and no network unless Prometheus must reach it.
// A unit test runs the request through the policy catalogue.
func (v *Verifier) createOptions(s canarySpec) client.ContainerCreateOptions {
	// The configured labels first: the canary's own always win.
	labels := map[string]string{}
	for k, val := range v.cfg.CanaryLabels {
		labels[k] = val
	}
	for k, val := range s.labels {
		labels[k] = val
	}
	labels[LabelCanary] = s.kind
	labels[LabelRun] = v.runID
	labels[LabelToken] = s.token
	labels[LabelExpires] = strconv.FormatInt(s.expires.Unix(), 10)
	pids := v.cfg.CanaryPids
	network := s.network
	if network == "" {
		network = "none"
	}
	return client.ContainerCreateOptions{
		Name: s.name,
		Config: &container.Config{
			Image:       v.cfg.CanaryImage,
			Cmd:         s.cmd,
			User:        v.cfg.CanaryUser,
			Labels:      labels,
			Healthcheck: s.health,
		},
		HostConfig: &container.HostConfig{
			NetworkMode:    container.NetworkMode(network),
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges:true"},
			ReadonlyRootfs: true,
			// Removed by verify once read (the crash canary's logs and exit
			// status are needed after it dies), never by the engine.
			AutoRemove: false,
			LogConfig:  container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "1"}},
			Resources: container.Resources{
				Memory:     v.cfg.CanaryMemory,
				MemorySwap: v.cfg.CanaryMemory, // no swap beyond the limit
				PidsLimit:  &pids,
			},
		},
	}
}

// crashCanary is the AC-SPEC-02 canary: a gateway-tier service of the infra
// job (what {job="infra", tier="gateway"} selects) that logs and crashes.
func (v *Verifier) crashCanary(token string) canarySpec {
	return canarySpec{
		kind:  canaryCrash,
		name:  "hyhome-verify-crash-" + token,
		token: token,
		cmd:   []string{"canary", "--token", token, "--exit", "1"},
		labels: map[string]string{
			workload.LabelTier: "gateway",
			workload.LabelJob:  "infra",
		},
		expires: v.cfg.Clock.Now().Add(v.cfg.TrialTimeout + 5*time.Minute),
	}
}

// loadCanary holds host CPU at the target for the load window. Its tier is
// "verify" so that it is labelled like every standardised container without
// being mistaken for infrastructure.
func (v *Verifier) loadCanary(token string) canarySpec {
	return canarySpec{
		kind:  canaryLoad,
		name:  "hyhome-verify-load-" + token,
		token: token,
		cmd: []string{"canary", "--token", token,
			"--load", strconv.FormatFloat(v.cfg.LoadTarget, 'f', 3, 64),
			"--duration", v.cfg.LoadDuration.String(),
			"--interval", v.cfg.SampleInterval.String()},
		labels: map[string]string{
			workload.LabelTier: "verify",
			workload.LabelJob:  "infra",
		},
		expires: v.cfg.Clock.Now().Add(v.cfg.LoadDuration + 5*time.Minute),
	}
}

// alertService is the service name the alert canary's alerts carry.
func alertService(token string) string { return "hyhome-verify-" + token }

// alertCanary is an infra service as the stack's Prometheus discovers one:
// hy-home.tier=infra, hy-home.metrics.port and .path, and a compose service
// label, which the stack's relabelling turns into the alert's `service`.
// It carries no compose project label, so `docker compose` never counts it
// as part of a project.
func (v *Verifier) alertCanary(token string) canarySpec {
	return canarySpec{
		kind:  canaryAlert,
		name:  "hyhome-verify-alert-" + token,
		token: token,
		cmd:   []string{"canary", "--token", token, "--serve", ":" + strconv.Itoa(v.cfg.CanaryPort)},
		labels: map[string]string{
			workload.LabelTier:           "infra",
			workload.LabelJob:            "infra",
			workload.LabelMetricsPort:    strconv.Itoa(v.cfg.CanaryPort),
			workload.LabelMetricsPath:    "/metrics",
			workload.LabelComposeService: alertService(token),
		},
		network: v.cfg.CanaryNetwork,
		// As the stack's own hyhome services do: the binary probes itself.
		health: &container.HealthConfig{
			Test:     []string{"CMD", "/hyhome", "healthcheck", "http://127.0.0.1:" + strconv.Itoa(v.cfg.CanaryPort) + "/healthz"},
			Interval: 10 * time.Second,
			Timeout:  3 * time.Second,
			Retries:  3,
		},
		expires: v.cfg.Clock.Now().Add(4*v.cfg.AlertTimeout + 5*time.Minute),
	}
}

// CanaryOptions configure the program inside a canary container (the
// hidden `hyhome canary` command).
type CanaryOptions struct {
	Token string
	// Exit is the crash canary's exit status.
	Exit int
	// Serve, when set, serves /metrics and /healthz there until the context ends.
	Serve string
	// Load, when above 0, holds host CPU utilisation at this share for Duration.
	Load     float64
	Duration time.Duration
	// Interval is the load controller's period and reporting interval.
	Interval time.Duration
	// ProcStat is the path of the kernel's CPU counters (tests override it).
	ProcStat string
}

// RunCanary runs a canary's program and returns its exit status. It is what
// `hyhome canary` runs inside a canary container.
func RunCanary(ctx context.Context, o CanaryOptions, stdout, stderr io.Writer) int {
	if o.Token == "" {
		fmt.Fprintln(stderr, "canary: --token is required")
		return 2
	}
	switch {
	case o.Load > 0:
		if o.Duration <= 0 {
			fmt.Fprintln(stderr, "canary: --load needs a positive --duration")
			return 2
		}
		if err := runLoad(ctx, loadOptions{target: o.Load, duration: o.Duration, interval: o.Interval, procStat: o.ProcStat, token: o.Token}, stdout); err != nil {
			fmt.Fprintln(stderr, "canary:", err)
			return 1
		}
		return 0
	case o.Serve != "":
		if err := serveCanary(ctx, o.Serve, o.Token); err != nil {
			fmt.Fprintln(stderr, "canary:", err)
			return 1
		}
		return 0
	default:
		// One line, then the crash: the line is the "log event", the exit
		// is the "service crash" of AC-SPEC-02's Given.
		fmt.Fprintln(stdout, CanaryLine(o.Token))
		return o.Exit
	}
}

// serveCanary serves a one-series /metrics and /healthz until ctx ends.
func serveCanary(ctx context.Context, addr, token string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	body := fmt.Sprintf("# HELP hyhome_verify_canary_up A hyhome verify alert canary; 1 while it serves.\n# TYPE hyhome_verify_canary_up gauge\nhyhome_verify_canary_up{token=%q} 1\n", token)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, body)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// hasCanaryLine reports whether a Loki line is the crash canary's line for token.
func hasCanaryLine(line, token string) bool {
	return strings.Contains(line, canaryLinePrefix+token)
}
