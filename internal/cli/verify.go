package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hy-home/hyhome/internal/atomicfile"
	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/verify"
)

type verifyFlags struct {
	checks, host, format, output             string
	filters, canaryLabels                    []string
	lokiURL, lokiTenant, promURL, amURL      string
	memorySource                             string
	basicUser, basicPasswordFile             string
	canaryImage, canaryNetwork, slackAddr    string
	trials                                   int
	trialTimeout, pollInterval               time.Duration
	loadTarget                               float64
	loadDuration, sampleInterval, alertTimer time.Duration
	noSilence                                bool
	connectTimeout                           time.Duration
	gatewayURL, gatewayHost, gatewayCA       string
	alertService                             string
}

func newVerifyCmd(a *app) *cobra.Command { return verifyCommand(a, &verifyFlags{}) }

// verifyCommand binds the flags to f (tests parse into their own f).
func verifyCommand(a *app, f *verifyFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Run SPEC-SYS-01's acceptance checks on a live host, with measured figures",
		Long: `Run the spec's acceptance checks against a live Docker host and report what was
measured, check by check (PASS, FAIL, SKIP when an input is missing, ERROR when a
check could not run):

  AC-SPEC-01  every container labelled hy-home.tier prints no-new-privileges:true for
              docker inspect --format '{{.HostConfig.SecurityOpt}}' (the audit's check)
  NFR-RES-01  at idle, the infra tier's working set is under 20% of host memory
  AC-SPEC-02  a crashing canary (job=infra, tier=gateway) logs a token; the line and its
              die event are found in Loki with {job="infra", tier="gateway"} in < 5 s
              (with --gateway-url, also the gateway's access log line of a request
              through it carrying the token)
  NFR-OBS-01  the same trials, each < 2 s; p50, p95 and max are reported
  AC-SPEC-03  with host CPU held at 80% by a load canary, no infra container exceeds
              (or lacks) its memory limit; limit, max usage and headroom per container
  ALERTING    an infra canary is killed (with --alert-service, the stack's own service
              is stopped); an alert naming its service must fire in Alertmanager,
              routed to a Slack receiver (and, with --slack-webhook-receiver, reach
              the webhook); it must resolve on return

Memory comes from Prometheus (cAdvisor's container_memory_usage_bytes and
container_memory_working_set_bytes) with --prometheus-url, else from the engine's
stats API. Canaries run the hidden "hyhome canary" command of --canary-image; each is
non-root, drops every capability, has no-new-privileges:true, a read-only root
filesystem and memory and pids limits, and each is removed before verify exits,
also on SIGINT or SIGTERM.

Exit status: 0 every check run passed, 1 a check failed, 2 verify could not run
(engine unreachable, bad flags, interrupted) or a check could not run.`,
		Example: `  hyhome verify --check AC-SPEC-01,NFR-RES-01,AC-SPEC-03
  hyhome verify --loki-url http://172.31.240.12:3100 --trials 10
  hyhome verify --loki-url http://loki:3100 --prometheus-url https://prometheus.home.example \
    --alertmanager-url https://alertmanager.home.example --basic-auth-user admin \
    --basic-auth-password-file deploy/secrets/traefik_dashboard_password --format junit -o verify.xml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runVerify(cmd, a, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.checks, "check", "all", "checks to run, comma-separated: "+strings.Join(verify.Checks, ", ")+", or all")
	fl.StringVarP(&f.host, "host", "H", "", "Docker Engine endpoint (default: DOCKER_HOST, then the docker CLI context); canaries are created there, so it must allow writes")
	fl.StringArrayVar(&f.filters, "filter", nil, "engine-side filter key=value narrowing the containers judged (label, name, id; repeatable), e.g. label=com.docker.compose.project=hyhome")
	fl.StringVar(&f.lokiURL, "loki-url", "", "Loki's base URL, for AC-SPEC-02 and NFR-OBS-01")
	fl.StringVar(&f.lokiTenant, "loki-tenant", "", "X-Scope-OrgID sent to Loki (multi-tenant Loki only)")
	fl.StringVar(&f.promURL, "prometheus-url", "", "Prometheus' base URL: the memory source (cAdvisor series) and, for ALERTING, the canary's scrape")
	fl.StringVar(&f.gatewayURL, "gateway-url", "", "with --loki-url: send each AC-SPEC-02 trial's request through the gateway here (Traefik's published HTTPS port) and require its access log line in Loki too")
	fl.StringVar(&f.gatewayHost, "gateway-host", "", "Host header and TLS server name of the gateway request (default: the URL's host), e.g. traefik.<domain>")
	fl.StringVar(&f.gatewayCA, "gateway-ca", "", "PEM file of the certificate(s) the gateway's certificate must chain to (default: the system's roots), e.g. deploy/secrets/tls.crt")
	fl.StringVar(&f.memorySource, "memory-source", "auto", "where NFR-RES-01 and AC-SPEC-03 read memory: prometheus (cAdvisor's series), engine (the stats API), or auto (prometheus when --prometheus-url is set)")
	fl.StringVar(&f.amURL, "alertmanager-url", "", "Alertmanager's base URL, for ALERTING")
	fl.StringVar(&f.basicUser, "basic-auth-user", "", "basic auth user for Prometheus and Alertmanager (the stack's Traefik user)")
	fl.StringVar(&f.basicPasswordFile, "basic-auth-password-file", "", "file holding the basic auth password")
	fl.StringVar(&f.canaryImage, "canary-image", verify.DefaultCanaryImage, "hyhome image the canaries run (`make image` builds it)")
	fl.StringVar(&f.canaryNetwork, "canary-network", verify.DefaultCanaryNetwork, "network the alert canary joins, where Prometheus discovers and scrapes it")
	fl.StringArrayVar(&f.canaryLabels, "canary-label", nil, "extra label KEY=VALUE on every canary (repeatable)")
	fl.IntVar(&f.trials, "trials", verify.DefaultTrials, "crash canaries for AC-SPEC-02 and NFR-OBS-01")
	fl.DurationVar(&f.trialTimeout, "trial-timeout", verify.DefaultTrialTimeout, "how long one trial waits for Loki")
	fl.DurationVar(&f.pollInterval, "poll-interval", verify.DefaultPollInterval, "how often Loki is queried during a trial (the latencies' resolution)")
	fl.Float64Var(&f.loadTarget, "load-target", 100*verify.DefaultLoadTarget, "host CPU utilisation AC-SPEC-03 holds, in percent")
	fl.DurationVar(&f.loadDuration, "load-duration", verify.DefaultLoadDuration, "AC-SPEC-03's load window")
	fl.DurationVar(&f.sampleInterval, "sample-interval", verify.DefaultSampleInterval, "memory sampling (engine stats) and load reporting interval")
	fl.DurationVar(&f.alertTimer, "alert-timeout", verify.DefaultAlertTimeout, "bound on each phase of ALERTING: scraped, firing, resolved")
	fl.StringVar(&f.alertService, "alert-service", "", "ALERTING takes this running infra service of the stack down (docker stop, then start) instead of a canary; compose deployments only, and not one the alert path runs through (Prometheus, Alertmanager, the guard)")
	fl.StringVar(&f.slackAddr, "slack-webhook-receiver", "", "listen on ADDR for Alertmanager's Slack webhook and require the notification (point the Slack api_url there)")
	fl.BoolVar(&f.noSilence, "no-silence", false, "do not silence the alert canary's service after removing it (it then pages as missing)")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", 30*time.Second, "give up reaching the engine after this long")
	fl.StringVar(&f.format, "format", "text", "output format: "+strings.Join(report.CheckFormatNames(), ", "))
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	return cmd
}

// config turns the flags into a verify configuration (without the engine).
func (f *verifyFlags) config(cmd *cobra.Command) (verify.Config, error) {
	var cfg verify.Config
	checks, err := verify.ParseChecks(f.checks)
	if err != nil {
		return cfg, fmt.Errorf("--check: %w", err)
	}
	if _, ok := report.CheckFormats[f.format]; !ok {
		return cfg, fmt.Errorf("--format: unknown format %q (want one of %s)", f.format, strings.Join(report.CheckFormatNames(), ", "))
	}
	if _, err := source.ParseFilters(f.filters); err != nil {
		return cfg, fmt.Errorf("--filter: %w", err)
	}
	labels := map[string]string{}
	for _, l := range f.canaryLabels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return cfg, fmt.Errorf("--canary-label %q: want KEY=VALUE", l)
		}
		labels[k] = v
	}
	if f.loadTarget < 5 || f.loadTarget > 100 {
		return cfg, fmt.Errorf("--load-target %g: want a percentage between 5 and 100", f.loadTarget)
	}
	password := ""
	switch {
	case f.basicPasswordFile != "" && f.basicUser == "":
		return cfg, errors.New("--basic-auth-password-file needs --basic-auth-user")
	case f.basicUser != "" && f.basicPasswordFile == "":
		return cfg, errors.New("--basic-auth-user needs --basic-auth-password-file")
	case f.basicPasswordFile != "":
		b, err := os.ReadFile(f.basicPasswordFile)
		if err != nil {
			return cfg, fmt.Errorf("--basic-auth-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	var gatewayRoots *x509.CertPool
	switch {
	case f.gatewayCA != "" && f.gatewayURL == "":
		return cfg, errors.New("--gateway-ca needs --gateway-url")
	case f.gatewayHost != "" && f.gatewayURL == "":
		return cfg, errors.New("--gateway-host needs --gateway-url")
	case f.gatewayCA != "":
		pem, err := os.ReadFile(f.gatewayCA)
		if err != nil {
			return cfg, fmt.Errorf("--gateway-ca: %w", err)
		}
		gatewayRoots = x509.NewCertPool()
		if !gatewayRoots.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("--gateway-ca: %s holds no PEM certificate", f.gatewayCA)
		}
	}
	memorySource := f.memorySource
	if memorySource == "auto" {
		memorySource = "" // verify decides from --prometheus-url
	}
	silence := time.Duration(0)
	if f.noSilence {
		silence = -1
	}
	cfg = verify.Config{
		Checks:            checks,
		Filters:           f.filters,
		LokiURL:           f.lokiURL,
		LokiTenant:        f.lokiTenant,
		PrometheusURL:     f.promURL,
		MemorySource:      memorySource,
		AlertmanagerURL:   f.amURL,
		BasicAuthUser:     f.basicUser,
		BasicAuthPassword: password,
		CanaryImage:       f.canaryImage,
		CanaryNetwork:     f.canaryNetwork,
		CanaryLabels:      labels,
		Trials:            f.trials,
		TrialTimeout:      f.trialTimeout,
		PollInterval:      f.pollInterval,
		GatewayURL:        f.gatewayURL,
		GatewayHost:       f.gatewayHost,
		GatewayRootCAs:    gatewayRoots,
		LoadTarget:        f.loadTarget / 100,
		LoadDuration:      f.loadDuration,
		SampleInterval:    f.sampleInterval,
		AlertTimeout:      f.alertTimer,
		SlackReceiverAddr: f.slackAddr,
		AlertService:      f.alertService,
		Silence:           silence,
		Version:           Version,
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	// A check named on the command line that would be skipped is a usage
	// error: exit 0 with nothing verified would read as a pass in CI.
	if cmd.Flags().Changed("check") {
		var why []string
		for _, c := range checks {
			if m := cfg.Missing([]string{c})[c]; m != "" {
				why = append(why, c+": "+m)
			}
		}
		if len(why) > 0 {
			return cfg, fmt.Errorf("--check names checks that cannot run: %s", strings.Join(why, "; "))
		}
	}
	return cfg, nil
}

func runVerify(cmd *cobra.Command, a *app, f *verifyFlags) error {
	cfg, err := f.config(cmd)
	if err != nil {
		return fail(ExitError, err)
	}
	log := a.logger()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	// Interrupted, verify still removes its canaries before it exits.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cctx, cancel := context.WithTimeout(ctx, f.connectTimeout)
	c, ep, err := docker.Connect(cctx, f.host)
	cancel()
	if err != nil {
		return fail(ExitError, engineError(err))
	}
	defer c.Close()
	log.Debug("docker engine", "host", ep.Host, "from", ep.From, "api", c.ClientVersion())
	cfg.Engine, cfg.Host, cfg.Logger = c, ep.Host, log

	v, err := verify.New(cfg)
	if err != nil {
		return fail(ExitError, err)
	}
	rep, runErr := v.Run(ctx)
	if rep == nil {
		return fail(ExitError, engineError(runErr))
	}
	var buf bytes.Buffer
	if err := report.WriteChecks(&buf, f.format, rep); err != nil {
		return fail(ExitError, fmt.Errorf("rendering the verify report: %w", err))
	}
	if err := writeOutput(a, f.output, buf.Bytes()); err != nil {
		return fail(ExitError, err)
	}
	switch {
	case runErr != nil:
		return fail(ExitError, fmt.Errorf("verify interrupted: %w; its canaries were removed", runErr))
	case rep.Failed():
		return fail(ExitFindings, nil)
	case rep.Errored():
		return fail(ExitError, errors.New("verify: a check could not run (see the report)"))
	}
	return nil
}

// writeOutput writes to -o atomically (a failure never leaves half a
// report), or to stdout.
func writeOutput(a *app, path string, data []byte) error {
	if path == "" {
		_, err := a.stdout.Write(data)
		return err
	}
	return atomicfile.WriteBytes(path, 0o644, data)
}

// newCanaryCmd is the program inside verify's canary containers. Hidden:
// it exists for `hyhome verify`, not for people.
func newCanaryCmd(a *app) *cobra.Command {
	var o verify.CanaryOptions
	cmd := &cobra.Command{
		Use:    "canary --token T",
		Short:  "The program inside hyhome verify's canary containers",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if code := verify.RunCanary(ctx, o, a.stdout, a.stderr); code != 0 {
				return fail(code, nil)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Token, "token", "", "the run's unique token")
	fl.IntVar(&o.Exit, "exit", 1, "log the token line, then exit with this status")
	fl.StringVar(&o.Serve, "serve", "", "serve /metrics and /healthz on this address until SIGTERM")
	fl.Float64Var(&o.Load, "load", 0, "hold host CPU utilisation at this share (0-1) for --duration")
	fl.DurationVar(&o.Duration, "duration", 0, "with --load: how long")
	fl.DurationVar(&o.Interval, "interval", time.Second, "with --load: control and reporting interval")
	return cmd
}
