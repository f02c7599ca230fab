package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/verify/load"
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

// canaries creates verify's canary containers and removes them: it tracks
// every one it created (ID before start, so that a failed start or an
// interrupt still removes it) and sweeps the expired ones earlier runs left.
type canaries struct {
	cfg   *Config
	runID string
	log   *slog.Logger

	mu      sync.Mutex
	created map[string]string // container ID → name, until removed
	notices []string
}

func newCanaries(cfg *Config, runID string) *canaries {
	return &canaries{cfg: cfg, runID: runID, log: cfg.Logger, created: map[string]string{}}
}

// notice records something the operator should know that belongs to no
// check, and logs it.
func (cs *canaries) notice(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	cs.log.Warn(msg)
	cs.mu.Lock()
	cs.notices = append(cs.notices, msg)
	cs.mu.Unlock()
}

// takeNotices returns the notices so far.
func (cs *canaries) takeNotices() []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := cs.notices
	cs.notices = nil
	return out
}

// start creates and starts a canary and tracks it for removal.
func (cs *canaries) start(ctx context.Context, s canarySpec) (string, error) {
	// The create runs to completion even when ctx ends meanwhile: an
	// interrupted request can still create the container on the engine,
	// and a container whose ID verify never learnt could not be tracked.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	res, err := cs.cfg.Engine.ContainerCreate(cctx, cs.createOptions(s))
	cancel()
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("canary image %s is not on the engine (build it with `make image`, or pass --canary-image): %w", cs.cfg.CanaryImage, err)
		}
		return "", fmt.Errorf("creating canary %s: %w", s.name, err)
	}
	cs.mu.Lock()
	cs.created[res.ID] = s.name
	cs.mu.Unlock()
	if err := ctx.Err(); err != nil {
		cs.remove(ctx, res.ID)
		return "", err
	}
	if _, err := cs.cfg.Engine.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		cs.remove(ctx, res.ID)
		return "", fmt.Errorf("starting canary %s: %w", s.name, err)
	}
	cs.log.Debug("canary started", "kind", s.kind, "name", s.name, "id", engine.ShortID(res.ID))
	return res.ID, nil
}

// remove force-removes a canary. It runs on a context of its own: removal
// must happen when the run was interrupted too.
func (cs *canaries) remove(ctx context.Context, id string) {
	cs.mu.Lock()
	name, ok := cs.created[id]
	cs.mu.Unlock()
	if !ok {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := cs.cfg.Engine.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		short := engine.ShortID(id)
		cs.notice("could not remove canary %s (%s): %v; remove it with: docker rm -f %s", name, short, err, short)
	}
	cs.mu.Lock()
	delete(cs.created, id)
	cs.mu.Unlock()
}

// cleanup removes every canary still tracked, then every container the
// engine lists with this run's label: belt and braces for one whose create
// raced an engine error.
func (cs *canaries) cleanup(ctx context.Context) {
	cs.mu.Lock()
	ids := make([]string, 0, len(cs.created))
	for id := range cs.created {
		ids = append(ids, id)
	}
	cs.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		cs.remove(ctx, id)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	f := client.Filters{}
	f.Add("label", LabelRun+"="+cs.runID)
	list, err := cs.cfg.Engine.ContainerList(lctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		cs.log.Warn("listing this run's canaries", "err", err)
		return
	}
	for _, c := range list.Items {
		cs.mu.Lock()
		cs.created[c.ID] = strings.TrimPrefix(strings.Join(c.Names, ","), "/")
		cs.mu.Unlock()
		cs.remove(ctx, c.ID)
	}
}

// sweepExpired removes canaries that earlier runs left behind (a SIGKILL
// leaves no chance to clean up) once they are past their expiry, which is
// set well beyond the longest a live run keeps its canary.
func (cs *canaries) sweepExpired(ctx context.Context) {
	f := client.Filters{}
	f.Add("label", LabelCanary)
	list, err := cs.cfg.Engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		cs.log.Warn("listing earlier canaries", "err", err)
		return
	}
	now := cs.cfg.Clock.Now()
	for _, c := range list.Items {
		exp, err := strconv.ParseInt(c.Labels[LabelExpires], 10, 64)
		if err != nil || now.Before(time.Unix(exp, 0)) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = cs.cfg.Engine.ContainerRemove(rctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		name := strings.TrimPrefix(strings.Join(c.Names, ","), "/")
		if err != nil && !cerrdefs.IsNotFound(err) {
			cs.notice("could not remove expired canary %s of an earlier run: %v", name, err)
			continue
		}
		cs.notice("removed expired canary %s left by an earlier run", name)
	}
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
func (cs *canaries) createOptions(s canarySpec) client.ContainerCreateOptions {
	// The configured labels first: the canary's own always win.
	labels := map[string]string{}
	for k, val := range cs.cfg.CanaryLabels {
		labels[k] = val
	}
	for k, val := range s.labels {
		labels[k] = val
	}
	labels[LabelCanary] = s.kind
	labels[LabelRun] = cs.runID
	labels[LabelToken] = s.token
	labels[LabelExpires] = strconv.FormatInt(s.expires.Unix(), 10)
	pids := cs.cfg.CanaryPids
	network := s.network
	if network == "" {
		network = "none"
	}
	return client.ContainerCreateOptions{
		Name: s.name,
		Config: &container.Config{
			Image:       cs.cfg.CanaryImage,
			Cmd:         s.cmd,
			User:        cs.cfg.CanaryUser,
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
				Memory:     cs.cfg.CanaryMemory,
				MemorySwap: cs.cfg.CanaryMemory, // no swap beyond the limit
				PidsLimit:  &pids,
			},
		},
	}
}

// crashCanary is the AC-SPEC-02 canary: a gateway-tier service of the infra
// job (what {job="infra", tier="gateway"} selects) that logs and crashes.
func (cs *canaries) crashCanary(token string) canarySpec {
	return canarySpec{
		kind:  canaryCrash,
		name:  "hyhome-verify-crash-" + token,
		token: token,
		cmd:   []string{"canary", "--token", token, "--exit", "1"},
		labels: map[string]string{
			workload.LabelTier: "gateway",
			workload.LabelJob:  "infra",
		},
		expires: cs.cfg.Clock.Now().Add(cs.cfg.TrialTimeout + 5*time.Minute),
	}
}

// loadCanary holds host CPU at the target for the load window. Its tier is
// "verify" so that it is labelled like every standardised container without
// being mistaken for infrastructure.
func (cs *canaries) loadCanary(token string) canarySpec {
	return canarySpec{
		kind:  canaryLoad,
		name:  "hyhome-verify-load-" + token,
		token: token,
		cmd: []string{"canary", "--token", token,
			"--load", strconv.FormatFloat(cs.cfg.LoadTarget, 'f', 3, 64),
			"--duration", cs.cfg.LoadDuration.String(),
			"--interval", cs.cfg.SampleInterval.String()},
		labels: map[string]string{
			workload.LabelTier: "verify",
			workload.LabelJob:  "infra",
		},
		expires: cs.cfg.Clock.Now().Add(cs.cfg.LoadDuration + 5*time.Minute),
	}
}

// alertService is the service name the alert canary's alerts carry.
func alertService(token string) string { return "hyhome-verify-" + token }

// alertCanary is an infra service as the stack's Prometheus discovers one:
// hy-home.tier=infra, hy-home.metrics.port and .path, and a compose service
// label, which the stack's relabelling turns into the alert's `service`.
// It carries no compose project label, so `docker compose` never counts it
// as part of a project.
func (cs *canaries) alertCanary(token string) canarySpec {
	return canarySpec{
		kind:  canaryAlert,
		name:  "hyhome-verify-alert-" + token,
		token: token,
		cmd:   []string{"canary", "--token", token, "--serve", ":" + strconv.Itoa(cs.cfg.CanaryPort)},
		labels: map[string]string{
			workload.LabelTier:           "infra",
			workload.LabelJob:            "infra",
			workload.LabelMetricsPort:    strconv.Itoa(cs.cfg.CanaryPort),
			workload.LabelMetricsPath:    "/metrics",
			workload.LabelComposeService: alertService(token),
		},
		network: cs.cfg.CanaryNetwork,
		// As the stack's own hyhome services do: the binary probes itself.
		health: &container.HealthConfig{
			Test:     []string{"CMD", "/hyhome", "healthcheck", "http://127.0.0.1:" + strconv.Itoa(cs.cfg.CanaryPort) + "/healthz"},
			Interval: 10 * time.Second,
			Timeout:  3 * time.Second,
			Retries:  3,
		},
		expires: cs.cfg.Clock.Now().Add(4*cs.cfg.AlertTimeout + 5*time.Minute),
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
		if err := load.Run(ctx, load.Options{Target: o.Load, Duration: o.Duration, Interval: o.Interval, ProcStat: o.ProcStat, Token: o.Token}, stdout); err != nil {
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
