package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/hy-home/hyhome/internal/guard"
	"github.com/hy-home/hyhome/internal/workload"
)

func newGuardCmd(a *app) *cobra.Command {
	var (
		listens       []string
		upstream      string
		metricsListen string
		adrDirs       []string
		configFile    string
		maxBody       string
		grace         time.Duration
		idleRelease   time.Duration
		serverTiming  bool
	)
	cmd := &cobra.Command{
		Use:   "guard --listen ADDRESS=PROFILE [--listen ...]",
		Short: "Docker API socket proxy: read-only profiles for consumers, policy admission for writes",
		Long: `guard serves the Docker Engine API on unix sockets and TCP addresses, each bound
to a profile, and forwards what the profile allows to the engine (--upstream).

Built-in profiles:
  readonly   what Traefik, Prometheus service discovery, hyhome audit and event
             shippers read: ping, version, info, events, containers, images,
             networks, volumes, and Swarm services, tasks, nodes, secrets and
             configs (list and inspect); nothing that writes or reaches into a
             container; environment values, driver options and exec command
             lines are redacted from its answers
  shipper    readonly plus container logs
  admission  the whole API but Swarm control, builds, prunes and image load;
             container, service, volume, network, image tag, plugin and exec
             writes are judged by the rule catalogue (hyhome rules), and a
             denial names the rules and requirements it breaks; plugins only
             when a profile names them; ADR exemptions (hy-home.adr labels)
             count only in a custom profile with "exemptions: true"
             (--config), and only for the project, service and image the ADR
             names

docs/guard-threat-model.md says what each profile must never allow and why.

Every request is canonicalised the way the engine routes it; anything the
guard cannot read exactly as the engine would is refused. A TCP address
without a host binds loopback only.

Example:
  hyhome guard --listen tcp://0.0.0.0:2375=readonly --listen tcp://0.0.0.0:2376=shipper \
    --listen unix:///run/hyhome/admission.sock=admission \
    --upstream unix:///var/run/docker.sock --metrics-listen :9326 --adr-dir /etc/hyhome/adr`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var file guard.FileConfig
			if configFile != "" {
				fc, err := guard.LoadConfig(configFile)
				if err != nil {
					return fail(ExitError, err)
				}
				file = *fc
			}
			cfg := guard.Config{
				Upstream:       upstream,
				MetricsAddress: metricsListen,
				MaxBody:        file.MaxBody,
				MaxBuffered:    file.MaxBuffered,
				MaxConnections: file.MaxConnections,
				BodyTimeout:    file.BodyTimeout,
				ServerTiming:   serverTiming,
				Profiles:       file.Profiles,
				ADRDirs:        adrDirs,
				Strict:         file.Strict,
				FailOn:         file.FailOn,
				Allow:          file.Allow,
				IdleRelease:    idleRelease,
			}
			if idleRelease < 0 {
				return fail(ExitError, fmt.Errorf("--idle-release %v is negative (0 turns the release off)", idleRelease))
			}
			if idleRelease == 0 {
				cfg.IdleRelease = -1 // the flag's 0 is "never"; Config's 0 is the default
			}
			logger, closeLog := guardLogger(a)
			defer closeLog()
			cfg.Logger = logger
			if cmd.Flags().Changed("max-body") || cfg.MaxBody == 0 {
				n, ok := workload.ParseMemory(maxBody)
				if !ok || n <= 0 {
					return fail(ExitError, fmt.Errorf("--max-body %q is not a size (e.g. 4MiB)", maxBody))
				}
				cfg.MaxBody = n
			}
			for _, l := range listens {
				ln, err := guard.ParseListen(l)
				if err != nil {
					return fail(ExitError, err)
				}
				cfg.Listeners = append(cfg.Listeners, ln)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			cfg.Registerer, cfg.Gatherer = reg, reg
			g, err := guard.New(cfg)
			if err != nil {
				return fail(ExitError, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := g.Run(ctx, grace); err != nil && !errors.Is(err, context.Canceled) {
				return fail(ExitError, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&listens, "listen", nil, "ADDRESS=PROFILE to serve, repeatable; ADDRESS is unix:///path or tcp://[host]:port")
	f.StringVar(&upstream, "upstream", guard.DefaultUpstream, "the Docker Engine to forward to (unix:///path or tcp://host:port)")
	f.StringVar(&metricsListen, "metrics-listen", "127.0.0.1:9326", "host:port for /metrics, /healthz and /readyz (\":9326\" is every interface; empty disables)")
	f.StringArrayVar(&adrDirs, "adr-dir", nil, "directory of ADRs that justify exemptions in profiles with exemptions: true, repeatable (default: docs/adr near the working directory)")
	f.StringVar(&configFile, "config", "", "guard configuration file (YAML: max_body, limits, admission, custom profiles)")
	f.StringVar(&maxBody, "max-body", "4MiB", "largest request body the guard buffers and judges; larger ones are refused with 413")
	f.DurationVar(&idleRelease, "idle-release", guard.DefaultIdleRelease, "after this long without a request, close idle engine connections and return free memory to the OS (0: never)")
	f.BoolVar(&serverTiming, "server-timing", false, "add the engine's share of each answer's latency as a Server-Timing header (for benchmarks)")
	f.DurationVar(&grace, "shutdown-grace", 10*time.Second, "on SIGTERM, how long requests in flight may finish (streams end at once)")
	cmd.AddCommand(newGuardRoutesCmd(a), newGuardFieldsCmd(a))
	return cmd
}

// newGuardFieldsCmd prints the verdict on every request body field, the
// table docs/guard-fields.md is generated from.
func newGuardFieldsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "fields",
		Short: "Print, as Markdown, how admission judges every field of the request bodies it decodes",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return guard.WriteFieldTable(a.stdout)
		},
	}
}

// newGuardRoutesCmd prints the route table and the built-in profiles, the
// names a configuration file's allow lists use.
func newGuardRoutesCmd(a *app) *cobra.Command {
	var profile string
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "List the Engine API routes the guard knows and which built-in profiles allow them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			allowed := map[string][]string{}
			for _, name := range guard.ProfileNames() {
				rs, _ := guard.BuiltinProfile(name)
				for _, r := range rs {
					allowed[r] = append(allowed[r], name)
				}
			}
			if profile != "" {
				rs, ok := guard.BuiltinProfile(profile)
				if !ok {
					return fail(ExitError, fmt.Errorf("unknown profile %q (built in: %s)", profile, strings.Join(guard.ProfileNames(), ", ")))
				}
				for _, r := range rs {
					fmt.Fprintln(a.stdout, r)
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROUTE\tPROFILES\tBODY\tNOTES")
			for _, r := range guard.Routes() {
				var notes []string
				if r.Judged() {
					notes = append(notes, "judged")
				}
				if r.Hijack {
					notes = append(notes, "hijack")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, strings.Join(allowed[r.Name], ","), r.Body, strings.Join(notes, " "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&profile, "profile", "", "print only the routes of this built-in profile")
	return cmd
}

// guardLogger is the app's logger (same level and format) writing through a
// buffer flushed every 100 ms and on exit: the guard logs one line per
// request, and a write(2) per line was a seventh of its CPU per request.
// A crash loses at most the last 100 ms of lines.
func guardLogger(a *app) (*slog.Logger, func()) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	fw := newFlushingWriter(a.stderr, 100*time.Millisecond)
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(fw, opts)
	if a.logFormat == "json" {
		h = slog.NewJSONHandler(fw, opts)
	}
	return slog.New(h), fw.Close
}

// flushingWriter buffers writes and flushes them on a timer, when the
// buffer fills, and on Close.
type flushingWriter struct {
	mu   sync.Mutex
	bw   *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newFlushingWriter(w io.Writer, every time.Duration) *flushingWriter {
	fw := &flushingWriter{bw: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(fw.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fw.flush()
			case <-fw.stop:
				fw.flush()
				return
			}
		}
	}()
	return fw
}

func (fw *flushingWriter) Write(p []byte) (int, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.bw.Write(p)
}

func (fw *flushingWriter) flush() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	_ = fw.bw.Flush()
}

// Close flushes what is buffered and stops the timer.
func (fw *flushingWriter) Close() {
	select {
	case <-fw.stop:
	default:
		close(fw.stop)
	}
	<-fw.done
}
