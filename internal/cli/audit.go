package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/hy-home/hyhome/internal/acceptance"
	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/audit"
	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/report"
)

type auditFlags struct {
	rf          reportFlags
	host        string
	sel         source.Selection
	check       string
	serve       string
	interval    time.Duration
	debounce    time.Duration
	timeout     time.Duration
	concurrency int
}

func newAuditCmd(a *app) *cobra.Command {
	var f auditFlags
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Judge running containers and Swarm services by the same rules as lint",
		Long: `Audit what the Docker Engine runs: every container (inspected, with its image's
default user) and, on a Swarm manager, every service spec, judged by the same rule
catalogue as hyhome lint, with the same exemptions, report formats and exit codes.
The source of a finding is "container <name> (<short id>)" or "service <name>";
the compose project and service come from the compose labels.

--check AC-SPEC-01 runs the spec's security audit acceptance check instead: every
container labelled hy-home.tier must print a list that includes
no-new-privileges:true for docker inspect --format '{{.HostConfig.SecurityOpt}}'.
With no labelled container at all the check fails: nothing was verified.

--serve ADDR keeps running as a compliance exporter: it re-audits on Docker events
(container start/die/destroy/update, service create/update/remove, debounced) and
every --interval, and serves Prometheus metrics on /metrics (hyhome_findings{rule,
severity,tier,service,container}, hyhome_acceptance_check_passed, audit duration,
last success, errors) and its health on /healthz. SIGTERM shuts it down gracefully.

The engine is --host, else DOCKER_HOST, else DOCKER_CONTEXT or the docker CLI's
current context, else the local socket.

Exit status: 0 clean (or the check passed), 1 a finding at or above --fail-on (or
the check failed), 2 the engine could not be reached or read.`,
		Example: `  hyhome audit
  hyhome audit --all --filter label=com.docker.compose.project=shop --format json
  hyhome audit --service traefik --strict --adr-dir /srv/hy-home/docs/adr
  hyhome audit --check AC-SPEC-01
  hyhome audit --serve :9464 --interval 60s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAudit(cmd, a, &f)
		},
	}
	f.rf.register(cmd)
	fl := cmd.Flags()
	// Runtime workloads have no compose file to look next to.
	fl.Lookup("adr-dir").Usage = "directory of ADRs that exemptions cite (repeatable; default: docs/adr in the working directory, then at the root of its repository)"
	fl.StringVarP(&f.host, "host", "H", "", "Docker Engine endpoint, e.g. unix:///var/run/docker.sock or tcp://127.0.0.1:2375 (default: DOCKER_HOST, then the docker CLI context)")
	fl.BoolVarP(&f.sel.All, "all", "a", false, "audit stopped containers too")
	fl.StringArrayVar(&f.sel.Filters, "filter", nil, "engine-side filter key=value for containers and services (label, name, id; repeatable), e.g. label=hy-home.tier=infra")
	fl.StringArrayVar(&f.sel.Services, "service", nil, "audit only this service: a Swarm service by name, or containers of this compose service (repeatable)")
	fl.StringVar(&f.check, "check", "", "run an acceptance check instead of the rules: "+strings.Join(audit.Checks, ", "))
	fl.StringVar(&f.serve, "serve", "", "keep running and serve Prometheus metrics on this address, e.g. :9464")
	fl.DurationVar(&f.interval, "interval", audit.DefaultInterval, "with --serve: re-audit at least this often")
	fl.DurationVar(&f.debounce, "debounce", audit.DefaultDebounce, "with --serve: wait this long after an event before re-auditing, to take a burst at once")
	fl.DurationVar(&f.timeout, "timeout", audit.DefaultTimeout, "give up an audit (and exit 2) after this long")
	fl.IntVar(&f.concurrency, "concurrency", source.DefaultConcurrency, "inspect at most this many containers at once")
	return cmd
}

func runAudit(cmd *cobra.Command, a *app, f *auditFlags) error {
	env, failOn, err := f.rf.policyEnv()
	if f.check != "" {
		// A check has its own formats; only --format and -o of the report flags apply.
		err = nil
		if _, ok := report.CheckFormats[f.rf.format]; !ok {
			return fail(ExitError, fmt.Errorf("--format %s: --check writes text, json, junit or markdown", f.rf.format))
		}
	}
	if err != nil {
		return fail(ExitError, err)
	}
	if err := f.validate(cmd); err != nil {
		return fail(ExitError, err)
	}
	if _, err := source.ParseFilters(f.sel.Filters); err != nil {
		return fail(ExitError, fmt.Errorf("--filter: %w", err))
	}
	log := a.logger()

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	c, ep, err := docker.Connect(cctx, f.host)
	cancel()
	if err != nil {
		return fail(ExitError, engineError(err))
	}
	defer c.Close()
	src, err := source.New(source.Config{Engine: c, Host: ep.Host, Concurrency: f.concurrency, Logger: log})
	if err != nil {
		return fail(ExitError, err)
	}
	log.Debug("docker engine", "host", ep.Host, "from", ep.From, "api", c.ClientVersion())

	switch {
	case f.serve != "":
		return serveAudit(ctx, a, f, src, c, env)
	case f.check != "":
		return checkAudit(ctx, a, f, src)
	}

	actx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	res, err := audit.Run(actx, src, f.sel, &env)
	if err != nil {
		return fail(ExitError, engineError(err))
	}
	st := res.Snapshot.Stats
	log.Debug("audit done", "duration", st.Duration.Round(time.Millisecond), "listed", st.Listed, "inspected", st.Inspected,
		"gone", st.Gone, "images", st.Images, "services", st.Services, "task_containers", st.Tasks, "findings", len(res.Findings))
	r := &report.Report{
		Version:  Version,
		Command:  "audit",
		Findings: res.Findings,
		Summary:  res.Summary(),
		Targets:  res.Targets(),
		Notices:  res.NoticeLines(),
		Scope:    res.Scope(),
	}
	if err := f.rf.write(a, r); err != nil {
		return err
	}
	if policy.Failing(res.Findings, failOn) {
		return fail(ExitFindings, nil)
	}
	return nil
}

// validate rejects flag combinations that would silently do something else.
func (f *auditFlags) validate(cmd *cobra.Command) error {
	changed := func(names ...string) string {
		for _, n := range names {
			if cmd.Flags().Changed(n) {
				return "--" + n
			}
		}
		return ""
	}
	if f.check != "" {
		known := false
		for _, c := range audit.Checks {
			if strings.EqualFold(c, f.check) {
				f.check, known = c, true
			}
		}
		if !known {
			return fmt.Errorf("--check: unknown check %q (want one of %s)", f.check, strings.Join(audit.Checks, ", "))
		}
		if n := changed("fail-on", "strict", "adr-dir", "rule", "disable", "serve"); n != "" {
			return fmt.Errorf("%s does not apply to --check %s (the check has no exemptions and passes or fails)", n, f.check)
		}
	}
	if f.serve != "" {
		if n := changed("format", "output", "fail-on"); n != "" {
			return fmt.Errorf("%s does not apply to --serve (the exporter serves metrics, not a report)", n)
		}
		if f.interval <= 0 {
			return errors.New("--interval must be positive")
		}
		if f.debounce < 0 {
			return errors.New("--debounce must not be negative")
		}
	} else if n := changed("interval", "debounce"); n != "" {
		return fmt.Errorf("%s applies only with --serve", n)
	}
	if f.concurrency < 1 {
		return errors.New("--concurrency must be at least 1")
	}
	if f.timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	return nil
}

// checkAudit runs an acceptance check and exits 0 (pass) or 1 (fail). It
// writes the check report verify writes for the same check.
func checkAudit(ctx context.Context, a *app, f *auditFlags, src *source.Source) error {
	sel := f.sel
	sel.ContainersOnly = true
	// Only labelled containers are judged: let the engine drop the rest
	// before they cost an inspect.
	sel.Filters = append(append([]string(nil), sel.Filters...), "label=hy-home.tier")
	actx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	snap, err := src.Read(actx, sel)
	if err != nil {
		return fail(ExitError, engineError(err))
	}
	res := acceptance.CheckACSpec01(snap).Result()
	rep := acceptance.Report(snap, res)
	rep.Version, rep.Command = Version, "audit"
	var buf bytes.Buffer
	if err := report.WriteChecks(&buf, f.rf.format, rep); err != nil {
		return fail(ExitError, fmt.Errorf("rendering %s: %w", res.ID, err))
	}
	if err := writeOutput(a, f.rf.output, buf.Bytes()); err != nil {
		return fail(ExitError, fmt.Errorf("%s result: %w", res.ID, err))
	}
	if rep.Failed() {
		return fail(ExitFindings, nil)
	}
	return nil
}

// serveAudit runs the compliance exporter until SIGINT or SIGTERM.
func serveAudit(ctx context.Context, a *app, f *auditFlags, src *source.Source, events audit.EventSource, env policy.Env) error {
	log := a.logger()
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)
	exp, err := audit.NewExporter(audit.ExporterConfig{
		Source:    src,
		Selection: f.sel,
		// A fresh resolver per audit, so that an ADR accepted (or
		// superseded) while the exporter runs is honoured.
		Env: func() *policy.Env {
			e := env
			e.ADRs = adr.NewResolver(f.rf.adrDirs...)
			return &e
		},
		Events:     events,
		Interval:   f.interval,
		Debounce:   f.debounce,
		Timeout:    f.timeout,
		Registerer: reg,
		Logger:     log,
	})
	if err != nil {
		return fail(ExitError, err)
	}
	ln, err := net.Listen("tcp", f.serve)
	if err != nil {
		return fail(ExitError, fmt.Errorf("--serve: %w", err))
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("audit exporter listening", "addr", ln.Addr().String(), "interval", f.interval, "debounce", f.debounce)
	if err := exp.Serve(ctx, ln, reg); err != nil {
		return fail(ExitError, err)
	}
	log.Info("audit exporter stopped")
	return nil
}

func buildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "hyhome_build_info",
		Help:        "hyhome's version; always 1.",
		ConstLabels: prometheus.Labels{"version": Version},
	})
	g.Set(1)
	return g
}

// engineError makes an engine failure one line that says what to check.
func engineError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%w (is this user in the docker group, or is DOCKER_HOST pointing at a socket it may use?)", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (raise --timeout for a slow engine)", err)
	}
	return err
}
