package verify

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/clock"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/version"
	"github.com/hy-home/hyhome/internal/workload"
)

// Engine is the subset of the Docker Engine API client verify uses: what the
// engine source reads, plus creating, running and removing canaries and reading
// their logs, stats and events. The real *client.Client satisfies it.
type Engine interface {
	source.Engine
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerKill(ctx context.Context, id string, options client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, id string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerWait(ctx context.Context, id string, options client.ContainerWaitOptions) client.ContainerWaitResult
	ContainerLogs(ctx context.Context, id string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	ContainerStats(ctx context.Context, id string, options client.ContainerStatsOptions) (client.ContainerStatsResult, error)
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
}

var _ Engine = (*client.Client)(nil)

// Memory sources.
const (
	MemoryEngine     = "engine"
	MemoryPrometheus = "prometheus"
)

// Defaults. Each is documented where its flag is (internal/cli/verify.go
// and docs/verify.md).
const (
	DefaultCanaryImage    = "hyhome:" + version.Release
	DefaultCanaryNetwork  = "infra_net"
	DefaultCanaryUser     = "65532:65532"
	DefaultCanaryMemory   = 32 << 20
	DefaultCanaryPids     = 64
	DefaultCanaryPort     = 9464
	DefaultTrials         = 5
	DefaultTrialTimeout   = 30 * time.Second
	DefaultPollInterval   = 100 * time.Millisecond
	DefaultLoadTarget     = 0.80
	DefaultLoadTolerance  = 0.05
	DefaultLoadDuration   = 30 * time.Second
	DefaultSampleInterval = time.Second
	DefaultIdleSamples    = 3
	DefaultIdleLookback   = time.Minute
	DefaultHeadroomWarn   = 0.10
	DefaultAlertTimeout   = 5 * time.Minute
	DefaultAlertPoll      = time.Second
	// DefaultSilence outlasts the availability rules' 7-day memory of a
	// service (deploy/prometheus/rules/availability.yml), so the removed
	// alert canary never pages as HyHomeServiceMissing.
	DefaultSilence = 7*24*time.Hour + time.Hour
)

// The spec's thresholds.
const (
	// ACSpec02Bound: "Relevant logs MUST be returned within 5 seconds of the event."
	ACSpec02Bound = 5 * time.Second
	// NFRObs01Bound: "Loki log ingestion latency SHALL be < 2 seconds."
	NFRObs01Bound = 2 * time.Second
	// NFRRes01Share: "< 20% of system memory under idle conditions."
	NFRRes01Share = 0.20
)

// Config configures a Verifier. Zero values take the defaults above.
type Config struct {
	// Engine is the Docker Engine client (required).
	Engine Engine
	// Host is the engine endpoint, for messages, and to decide whether the
	// engine shares this process's clock (unix:// does).
	Host string
	// Checks to run; nil means all.
	Checks []string
	// Filters are engine-side "key=value" filters (label, name, id) that
	// narrow the containers judged by AC-SPEC-01, NFR-RES-01 and AC-SPEC-03,
	// e.g. label=com.docker.compose.project=hyhome.
	Filters []string

	// LokiURL is Loki's base URL (AC-SPEC-02, NFR-OBS-01).
	LokiURL string
	// LokiTenant, when set, is sent as X-Scope-OrgID.
	LokiTenant string
	// PrometheusURL is Prometheus' base URL: the memory source of
	// NFR-RES-01 and AC-SPEC-03 when set (cAdvisor's series), and required
	// by ALERTING to know the canary is scraped.
	PrometheusURL string
	// MemorySource is where NFR-RES-01 and AC-SPEC-03 read memory:
	// MemoryPrometheus (cAdvisor's series; needs PrometheusURL) or
	// MemoryEngine (the stats API). Empty means Prometheus when a URL is
	// given, else the engine.
	MemorySource string
	// AlertmanagerURL is Alertmanager's base URL (ALERTING).
	AlertmanagerURL string
	// BasicAuthUser and BasicAuthPassword are sent to Prometheus and
	// Alertmanager (the stack serves both behind one Traefik basic-auth
	// user). Credentials in a URL's userinfo work too.
	BasicAuthUser, BasicAuthPassword string
	// HTTPClient talks to Loki, Prometheus and Alertmanager; nil means a
	// client with a 10 s timeout.
	HTTPClient *http.Client

	// CanaryImage runs every canary; it must be a hyhome image (the hidden
	// `hyhome canary` command is its entrypoint's first argument).
	CanaryImage string
	// CanaryUser is the non-root user canaries run as.
	CanaryUser string
	// CanaryNetwork is where the alert canary is attached, so that the
	// stack's Prometheus discovers and scrapes it.
	CanaryNetwork string
	// CanaryLabels are added to every canary (e.g. to scope a shipper or a
	// discovery filter in tests).
	CanaryLabels map[string]string
	// CanaryMemory and CanaryPids are the canaries' limits.
	CanaryMemory int64
	CanaryPids   int64
	// CanaryPort is the alert canary's metrics port.
	CanaryPort int

	// Trials is the number of crash canaries for AC-SPEC-02/NFR-OBS-01.
	Trials int
	// TrialTimeout bounds how long one trial waits for Loki.
	TrialTimeout time.Duration
	// PollInterval is how often Loki is asked; it is the resolution of the
	// latencies reported.
	PollInterval time.Duration
	// GatewayURL, when set, adds the gateway's own access log to every
	// trial: a GET of GatewayURL+"/hyhome-verify/<token>" (through Traefik's
	// published port, say), whose access log line must be found in Loki with
	// the same selector, timed from the moment the request was sent.
	GatewayURL string
	// GatewayHost is the gateway request's Host header and TLS server name;
	// empty means the URL's host. It lets the request reach a router (the
	// gateway's own dashboard route, say) while connecting to an address.
	GatewayHost string
	// GatewayRootCAs verify the gateway's certificate; nil means the
	// system's roots.
	GatewayRootCAs *x509.CertPool

	// LoadTarget is the host CPU utilisation AC-SPEC-03 holds (0-1).
	LoadTarget float64
	// LoadTolerance: the window's mean utilisation must reach
	// LoadTarget-LoadTolerance, or the check's Given was not met.
	LoadTolerance float64
	// LoadDuration is the load window.
	LoadDuration time.Duration
	// SampleInterval is the engine stats sampling period, and the load
	// canary's reporting period.
	SampleInterval time.Duration
	// IdleSamples is how many engine stats samples NFR-RES-01 takes.
	IdleSamples int
	// IdleLookback is the Prometheus range NFR-RES-01 reads at idle.
	IdleLookback time.Duration
	// HeadroomWarn: a working set within this share of its limit is a
	// warning in AC-SPEC-03.
	HeadroomWarn float64

	// AlertTimeout bounds each phase of the alert path: the canary being
	// scraped, the alert firing, the alert resolving.
	AlertTimeout time.Duration
	// AlertPoll is how often Prometheus and Alertmanager are asked.
	AlertPoll time.Duration
	// AlertService, when set, makes ALERTING take down a running service of
	// the stack instead of a canary: the one container among those Filters
	// select whose compose service (com.docker.compose.service) it names and
	// whose tier is infra is stopped, and started again once the alert
	// fired. Choose a service the alert path does not run through (not
	// Prometheus, Alertmanager or the guard). A Swarm task is refused: its
	// service would replace it at once.
	AlertService string
	// SlackReceiverAddr, when set, makes ALERTING listen there for the
	// Slack webhook Alertmanager posts, and require the notification.
	SlackReceiverAddr string
	// Silence is how long the removed alert canary's service is silenced;
	// negative disables the silence.
	Silence time.Duration

	// Version goes into reports and the User-Agent.
	Version string
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
	// Clock defaults to the wall clock.
	Clock clock.Clock
}

// Validate reports what is wrong with cfg apart from the engine client, so
// that a command can refuse bad settings before it connects.
func (cfg Config) Validate() error {
	if cfg.Engine == nil {
		cfg.Engine = noEngine{}
	}
	_, err := cfg.withDefaults()
	return err
}

// noEngine stands in for the engine while Validate checks the rest.
type noEngine struct{ Engine }

// withDefaults validates cfg and fills in defaults.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.Engine == nil {
		errs = append(errs, errors.New("no engine client"))
	}
	if cfg.Checks == nil {
		cfg.Checks = Checks
	}
	for _, c := range cfg.Checks {
		if _, err := ParseChecks(c); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := source.ParseFilters(cfg.Filters); err != nil {
		errs = append(errs, err)
	}
	for name, u := range map[string]*string{"Loki": &cfg.LokiURL, "Prometheus": &cfg.PrometheusURL, "Alertmanager": &cfg.AlertmanagerURL, "gateway": &cfg.GatewayURL} {
		if *u == "" {
			continue
		}
		p, err := url.Parse(*u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("the %s URL %q must be an http:// or https:// URL with a host", name, redactURL(*u)))
			continue
		}
		*u = strings.TrimRight(*u, "/")
	}
	if cfg.AlertService != "" && strings.ContainsAny(cfg.AlertService, "=, ") {
		errs = append(errs, fmt.Errorf("the alert service %q must be a compose service name", cfg.AlertService))
	}
	if cfg.GatewayHost != "" && strings.ContainsAny(cfg.GatewayHost, "/ ") {
		errs = append(errs, fmt.Errorf("the gateway host %q must be a host name, optionally with a port", cfg.GatewayHost))
	}
	if cfg.GatewayURL != "" && cfg.LokiURL == "" {
		errs = append(errs, errors.New("a gateway URL needs a Loki URL: its access log is looked for in Loki"))
	}
	switch cfg.MemorySource {
	case "":
		cfg.MemorySource = MemoryEngine
		if cfg.PrometheusURL != "" {
			cfg.MemorySource = MemoryPrometheus
		}
	case MemoryEngine:
	case MemoryPrometheus:
		if cfg.PrometheusURL == "" {
			errs = append(errs, errors.New("memory source prometheus needs a Prometheus URL"))
		}
	default:
		errs = append(errs, fmt.Errorf("memory source %q is not one of %s, %s", cfg.MemorySource, MemoryEngine, MemoryPrometheus))
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	str := func(s *string, def string) {
		if *s == "" {
			*s = def
		}
	}
	str(&cfg.CanaryImage, DefaultCanaryImage)
	str(&cfg.CanaryUser, DefaultCanaryUser)
	str(&cfg.CanaryNetwork, DefaultCanaryNetwork)
	for k := range cfg.CanaryLabels {
		if reservedCanaryLabel(k) {
			errs = append(errs, fmt.Errorf("canary label %q is one the canaries set themselves", k))
		}
	}
	if u := cfg.CanaryUser; workload.RootUser(u) {
		errs = append(errs, fmt.Errorf("canary user %q is root: canaries must run as a non-root user", u))
	}
	errs = positiveOrDefault(errs, &cfg.CanaryMemory, DefaultCanaryMemory, "canary memory limit")
	errs = positiveOrDefault(errs, &cfg.CanaryPids, DefaultCanaryPids, "canary pids limit")
	if cfg.CanaryMemory > 0 && cfg.CanaryMemory < 6<<20 {
		errs = append(errs, fmt.Errorf("canary memory limit %d bytes is below the engine's 6 MiB minimum", cfg.CanaryMemory))
	}
	intv := func(n *int, def int, name string, max int) {
		switch {
		case *n == 0:
			*n = def
		case *n < 0 || *n > max:
			errs = append(errs, fmt.Errorf("%s must be between 1 and %d, got %d", name, max, *n))
		}
	}
	intv(&cfg.CanaryPort, DefaultCanaryPort, "canary port", 65535)
	intv(&cfg.Trials, DefaultTrials, "trials", 1000)
	intv(&cfg.IdleSamples, DefaultIdleSamples, "idle samples", 1000)
	errs = positiveOrDefault(errs, &cfg.TrialTimeout, DefaultTrialTimeout, "trial timeout")
	errs = positiveOrDefault(errs, &cfg.PollInterval, DefaultPollInterval, "poll interval")
	errs = positiveOrDefault(errs, &cfg.LoadDuration, DefaultLoadDuration, "load duration")
	errs = positiveOrDefault(errs, &cfg.SampleInterval, DefaultSampleInterval, "sample interval")
	errs = positiveOrDefault(errs, &cfg.IdleLookback, DefaultIdleLookback, "idle lookback")
	errs = positiveOrDefault(errs, &cfg.AlertTimeout, DefaultAlertTimeout, "alert timeout")
	errs = positiveOrDefault(errs, &cfg.AlertPoll, DefaultAlertPoll, "alert poll interval")
	if cfg.Silence == 0 {
		cfg.Silence = DefaultSilence
	}
	if cfg.TrialTimeout > 0 && cfg.TrialTimeout < ACSpec02Bound {
		errs = append(errs, fmt.Errorf("trial timeout %s is shorter than AC-SPEC-02's %s bound: a late entry could not be told from a lost one", cfg.TrialTimeout, ACSpec02Bound))
	}
	if cfg.LoadDuration > 0 && cfg.SampleInterval > 0 && cfg.LoadDuration < 2*cfg.SampleInterval {
		errs = append(errs, fmt.Errorf("load duration %s must be at least two sample intervals (%s)", cfg.LoadDuration, cfg.SampleInterval))
	}
	frac := func(f *float64, def float64, name string, lo, hi float64) {
		switch {
		case *f == 0:
			*f = def
		case *f < lo || *f > hi:
			errs = append(errs, fmt.Errorf("%s must be between %g and %g, got %g", name, lo, hi, *f))
		}
	}
	frac(&cfg.LoadTarget, DefaultLoadTarget, "load target", 0.05, 1)
	frac(&cfg.LoadTolerance, DefaultLoadTolerance, "load tolerance", 0.001, 0.5)
	frac(&cfg.HeadroomWarn, DefaultHeadroomWarn, "headroom warning", 0.001, 0.9)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return cfg, errors.Join(errs...)
}

// reservedCanaryLabel reports whether a label is one the canaries set
// themselves: their identity, and what makes them a gateway or infra
// service to the shipper and to Prometheus.
func reservedCanaryLabel(k string) bool {
	if strings.HasPrefix(k, "hy-home.verify.") {
		return true
	}
	switch k {
	case workload.LabelTier, workload.LabelJob, workload.LabelMetrics, workload.LabelMetricsPort, workload.LabelMetricsPath, workload.LabelComposeService:
		return true
	}
	return false
}

// redactURL hides a password in a URL's userinfo for messages and reports.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// positiveOrDefault sets an unset (zero) setting to its default and adds an
// error for a negative one.
func positiveOrDefault[T int64 | time.Duration](errs []error, v *T, def T, name string) []error {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		errs = append(errs, fmt.Errorf("%s must be positive, got %v", name, *v))
	}
	return errs
}
