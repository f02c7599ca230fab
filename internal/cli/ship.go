package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/ship"
)

type shipFlags struct {
	lokiURL, host, stateDir, listen, selector, events, encoding  string
	tenantFile, basicUser, basicPasswordFile, bearerFile, caFile string
	labels, staticLabels                                         []string
	defaultJob, hostLabel                                        string
	noMetadata                                                   bool
	batchWait, pushTimeout, maxBackoff, backfill, grace          time.Duration
	batchSize, queueMax, maxLine                                 string
	memLimit                                                     string
}

func newShipCmd(a *app) *cobra.Command { return shipCommand(a, &shipFlags{}) }

// shipCommand binds the flags to f (tests parse into their own f).
func shipCommand(a *app, f *shipFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ship --loki-url URL",
		Short: "Ship Docker events and container logs to Loki, durably",
		Long: `ship follows the Docker engine's events and the logs of selected containers
(default: those labelled hy-home.tier) and pushes them to Loki. Every entry is
written to an on-disk queue in --state-dir before more is read from Docker and
removed only after Loki accepted it: a Loki outage or a SIGKILL loses nothing,
and a restart resumes where the queue and the saved positions say.

Loki labels: job (hy-home.job, else com.docker.compose.project, else
com.docker.stack.namespace, else --default-job), tier (hy-home.tier), service
(com.docker.compose.service, else com.docker.swarm.service.name), source
(events|logs), stream (stdout|stderr) and host. Container IDs and names are
structured metadata, never labels. --label changes the mapping.

It needs only read access to the Docker API (ping, info, events, container
list, inspect and logs), so it runs behind "hyhome guard"'s shipper profile:

  hyhome ship --host tcp://guard:2376 --loki-url http://loki:3100 \
    --state-dir /var/lib/hyhome/ship --listen :9327

/metrics and /healthz are served on --listen. SIGTERM stops reading, pushes
what is queued for up to --shutdown-grace, and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runShip(cmd.Context(), a, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.lokiURL, "loki-url", "", "Loki base URL (http://loki:3100) or push URL (required)")
	fl.StringVar(&f.host, "host", "", "Docker engine (default: DOCKER_HOST, the docker CLI context, or the local socket)")
	fl.StringVar(&f.stateDir, "state-dir", "/var/lib/hyhome/ship", "directory for the queue and positions (a volume)")
	fl.StringVar(&f.listen, "listen", ":9327", `address for /metrics and /healthz ("" disables)`)
	fl.StringVar(&f.selector, "select", "hy-home.tier", `containers whose logs are shipped: LABEL, LABEL=VALUE, LABEL!=VALUE, !LABEL, comma-separated (all must hold; "" selects all)`)
	fl.StringVar(&f.events, "events", ship.EventsAll, "events shipped: all, selected (container events only of selected containers) or none")
	fl.StringVar(&f.encoding, "encoding", ship.EncodingProtobuf, "push encoding: protobuf (snappy) or json (gzip)")
	fl.StringVar(&f.tenantFile, "tenant-file", "", "file holding the tenant ID sent as X-Scope-OrgID (e.g. /run/secrets/loki_tenant)")
	fl.StringVar(&f.basicUser, "basic-auth-user", "", "basic auth user name")
	fl.StringVar(&f.basicPasswordFile, "basic-auth-password-file", "", "file holding the basic auth password")
	fl.StringVar(&f.bearerFile, "bearer-token-file", "", "file holding a bearer token")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM file of CA certificates to trust for an https Loki URL")
	fl.StringArrayVar(&f.labels, "label", nil, "Loki label mapping NAME=CONTAINER_LABEL[,CONTAINER_LABEL...], first present wins; replaces the default for NAME; NAME= removes it (repeatable)")
	fl.StringArrayVar(&f.staticLabels, "static-label", nil, "NAME=VALUE added to every stream (repeatable)")
	fl.StringVar(&f.defaultJob, "default-job", "docker", "job label when a container has neither hy-home.job nor a compose project, and for non-container events")
	fl.StringVar(&f.hostLabel, "host-label", "", "value of the host label (default: the engine's host name)")
	fl.BoolVar(&f.noMetadata, "no-structured-metadata", false, "leave out container_id/container_name structured metadata (Loki with allow_structured_metadata: false)")
	fl.DurationVar(&f.batchWait, "batch-wait", 200*time.Millisecond, "longest an entry waits for others to share its push")
	fl.StringVar(&f.batchSize, "batch-size", "1MiB", "push a batch once it holds this many bytes")
	fl.StringVar(&f.queueMax, "queue-max-bytes", "256MiB", "cap on queued bytes; at the cap log reading pauses (lines wait in Docker's log files) and events beyond a reserve are dropped and counted")
	fl.StringVar(&f.maxLine, "max-line-size", "256KiB", "longer lines are shipped in pieces of this size (Loki's max_line_size)")
	fl.DurationVar(&f.pushTimeout, "push-timeout", 10*time.Second, "timeout of one push request")
	fl.DurationVar(&f.maxBackoff, "max-backoff", 10*time.Second, "longest wait between retries of a failed push")
	fl.DurationVar(&f.backfill, "backfill", 24*time.Hour, "how far back a container seen for the first time is read")
	fl.DurationVar(&f.grace, "shutdown-grace", 5*time.Second, "on SIGTERM, how long to keep pushing what is queued")
	fl.StringVar(&f.memLimit, "memory-limit", "48MiB", `Go soft memory limit (GOMEMLIMIT wins when set; "0" disables)`)
	return cmd
}

// parseBytes reads sizes such as 1048576, 512KiB, 256MiB, 1GiB, 10MB.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size in bytes (e.g. 1048576, 512KiB, 256MiB, 1GiB)", s)
	}
	return n * mult, nil
}

func (f *shipFlags) config(a *app) (ship.Config, error) {
	var errs []error
	size := func(s, flag string) int64 {
		n, err := parseBytes(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", flag, err))
		}
		return n
	}
	cfg := ship.Config{
		LokiURL: f.lokiURL, Encoding: f.encoding,
		TenantFile: f.tenantFile, BasicAuthUser: f.basicUser, BasicAuthPasswordFile: f.basicPasswordFile,
		BearerTokenFile: f.bearerFile, CAFile: f.caFile,
		PushTimeout: f.pushTimeout, BatchWait: f.batchWait, MaxBackoff: f.maxBackoff,
		StateDir: f.stateDir, Events: f.events, Host: f.hostLabel, NoStructuredMetadata: f.noMetadata,
		Backfill: f.backfill, ShutdownGrace: f.grace, Version: Version, Logger: a.logger(),
		BatchBytes:    int(size(f.batchSize, "batch-size")),
		QueueMaxBytes: size(f.queueMax, "queue-max-bytes"),
		MaxLineBytes:  int(size(f.maxLine, "max-line-size")),
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = time.Nanosecond // 0 means "push at once", not "default"
	}
	sel, err := ship.ParseSelector(f.selector)
	if err != nil {
		errs = append(errs, fmt.Errorf("--select: %w", err))
	}
	cfg.Select = sel
	rules := ship.DefaultLabelRules()
	for i := range rules {
		if rules[i].Name == "job" {
			rules[i].Default = f.defaultJob
		}
	}
	for _, s := range f.labels {
		r, err := ship.ParseLabelRule(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--label: %w", err))
			continue
		}
		idx := -1
		for i := range rules {
			if rules[i].Name == r.Name {
				idx = i
			}
		}
		switch {
		case len(r.From) == 0 && idx >= 0:
			rules = append(rules[:idx], rules[idx+1:]...)
		case len(r.From) == 0:
			errs = append(errs, fmt.Errorf("--label %s: there is no mapping for %s to remove", s, r.Name))
		case idx >= 0:
			if r.Name == "job" {
				r.Default = f.defaultJob
			}
			rules[idx] = r
		default:
			rules = append(rules, r)
		}
	}
	cfg.LabelRules = rules
	for _, s := range f.staticLabels {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--static-label %q: want NAME=VALUE", s))
			continue
		}
		cfg.StaticLabels = append(cfg.StaticLabels, ship.Label{Name: strings.TrimSpace(k), Value: v})
	}
	return cfg, errors.Join(errs...)
}

func runShip(parent context.Context, a *app, f *shipFlags) error {
	log := a.logger()
	if f.lokiURL == "" {
		return fail(ExitError, errors.New("ship: --loki-url is required"))
	}
	if os.Getenv("GOMEMLIMIT") == "" && f.memLimit != "0" {
		n, err := parseBytes(f.memLimit)
		if err != nil {
			return fail(ExitError, fmt.Errorf("ship: --memory-limit: %w", err))
		}
		// A soft limit makes the GC work harder near it instead of letting
		// the heap double under a burst; the agent's steady state is small.
		debug.SetMemoryLimit(n)
	}
	cfg, err := f.config(a)
	if err != nil {
		return fail(ExitError, fmt.Errorf("ship: %w", err))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	// Report every configuration mistake before touching the engine.
	if err := cfg.Validate(); err != nil {
		return fail(ExitError, fmt.Errorf("ship: %w", err))
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	dc, ep, err := docker.Connect(cctx, f.host)
	cancel()
	if err != nil {
		return fail(ExitError, fmt.Errorf("ship: %w", err))
	}
	defer dc.Close()
	log.Info("connected to the Docker engine", "host", ep.Host, "from", ep.From)

	agent, err := ship.New(cfg, dc)
	if err != nil {
		return fail(ExitError, fmt.Errorf("ship: %w", err))
	}

	var srv *http.Server
	if f.listen != "" {
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			return fail(ExitError, fmt.Errorf("ship: listening on %s for /metrics and /healthz: %w", f.listen, err))
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.Handle("/healthz", agent.HealthHandler())
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("serving /metrics and /healthz", "err", err)
			}
		}()
		log.Info("serving /metrics and /healthz", "addr", ln.Addr().String())
	}
	err = agent.Run(ctx)
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	if err != nil {
		return fail(ExitError, fmt.Errorf("ship: %w", err))
	}
	log.Info("stopped")
	return nil
}
