package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/clock"
	"github.com/hy-home/hyhome/internal/policy"
)

// DefaultMaxBody caps buffered request bodies (create and update requests
// are a few kilobytes).
const DefaultMaxBody = 4 << 20

// DefaultMaxBuffered caps the request body bytes buffered across all
// requests at once (Config.MaxBuffered). With the binary's own pages and
// the connections' buffers it keeps the guard well under the stack's 32 MiB
// memory limit whatever its clients send.
const DefaultMaxBuffered = 8 << 20

// DefaultMaxConnections caps the connections one listener serves at once
// (Config.MaxConnections); further clients wait to be accepted.
const DefaultMaxConnections = 256

// DefaultBodyTimeout is how long a client has to send a buffered request
// body once its header has arrived (Config.BodyTimeout).
const DefaultBodyTimeout = 10 * time.Second

// Server limits that are not configurable: a request header must arrive
// within headerTimeout and fit in maxHeaderBytes (the engine's clients send
// a few hundred bytes; X-Registry-Auth a few kilobytes), and a kept-alive
// client connection with no request is closed after idleConnTimeout.
const (
	headerTimeout   = 10 * time.Second
	maxHeaderBytes  = 32 << 10
	idleConnTimeout = 2 * time.Minute
)

// DefaultIdleRelease is how long the guard is quiet before it releases idle
// engine connections and free memory (Config.IdleRelease).
const DefaultIdleRelease = 10 * time.Second

// DefaultUpstream is the local engine.
const DefaultUpstream = "unix:///var/run/docker.sock"

// Listener is one address the guard serves, bound to a profile.
type Listener struct {
	Network string // "unix" or "tcp"
	Address string // socket path, or host:port
	Profile string
}

func (l Listener) String() string {
	if l.Network == "unix" {
		return "unix://" + l.Address
	}
	return "tcp://" + l.Address
}

// ParseListen reads a --listen value, ADDRESS=PROFILE, where ADDRESS is
// unix:///path or tcp://[host]:port. A TCP address without a host binds
// loopback only.
func ParseListen(s string) (Listener, error) {
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return Listener{}, fmt.Errorf("listen %q: want ADDRESS=PROFILE, e.g. unix:///run/hyhome/guard.sock=readonly", s)
	}
	addr, profile := s[:i], s[i+1:]
	if profile == "" {
		return Listener{}, fmt.Errorf("listen %q: no profile after =", s)
	}
	switch {
	case strings.HasPrefix(addr, "unix://"):
		p := strings.TrimPrefix(addr, "unix://")
		if p == "" || !filepath.IsAbs(p) {
			return Listener{}, fmt.Errorf("listen %q: the socket path must be absolute", s)
		}
		return Listener{Network: "unix", Address: p, Profile: profile}, nil
	case strings.HasPrefix(addr, "tcp://"):
		hp := strings.TrimPrefix(addr, "tcp://")
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return Listener{}, fmt.Errorf("listen %q: %w", s, err)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		return Listener{Network: "tcp", Address: net.JoinHostPort(host, port), Profile: profile}, nil
	}
	return Listener{}, fmt.Errorf("listen %q: the address must start with unix:// or tcp://", s)
}

// loopback reports whether a TCP listen address is reachable from this host
// only.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Config configures a Guard.
type Config struct {
	Listeners []Listener
	// Upstream is the engine, unix:///path or tcp://host:port
	// (DefaultUpstream when empty).
	Upstream string
	// MetricsAddress serves /metrics, /healthz and /readyz ("" disables).
	MetricsAddress string
	// MaxBody caps buffered request bodies (DefaultMaxBody when 0).
	MaxBody int64
	// MaxBuffered caps the request body bytes buffered across all
	// requests at once: at least twice MaxBody, since a body's buffer
	// doubles as it grows (when 0, DefaultMaxBuffered or twice MaxBody if
	// that is more). A body that would go beyond it is answered 503 and
	// not forwarded.
	MaxBuffered int64
	// MaxConnections caps the client connections each listener serves at
	// once (DefaultMaxConnections when 0); more wait in the listen queue.
	MaxConnections int
	// BodyTimeout is how long a client has to send a buffered body
	// (DefaultBodyTimeout when 0); a slower one is answered 408.
	BodyTimeout time.Duration
	// ServerTiming adds a Server-Timing header to forwarded answers with
	// the time the engine took to answer the forwarded request and the
	// time the judgement's lookups took ("lookup;dur=0.402,
	// engine;dur=0.081", in milliseconds), so that a client can tell the
	// guard's own share of each request's latency (bench/guardbench uses
	// it).
	ServerTiming bool
	// Profiles are custom profiles by name, next to the built-in ones.
	Profiles map[string]*Profile
	// ADRDirs are where exemption ADRs are looked up (the default
	// locations when empty).
	ADRDirs []string
	// Strict ignores every exemption.
	Strict bool
	// FailOn is the lowest finding severity that denies (policy.Error when 0).
	FailOn policy.Severity
	// Allow is what admission allows beyond the baseline: host source
	// directories, volume types, log drivers (AdmissionAllow's defaults).
	Allow policy.Allowlists
	// Registry is the rule catalogue (policy.Default when nil).
	Registry *policy.Registry
	// SocketMode is the permission of unix sockets (0660 when 0).
	SocketMode os.FileMode
	// Logger receives one line per verdict (discarded when nil).
	Logger *slog.Logger
	// IdleRelease is how long the guard waits after its last request
	// before it closes its kept-alive connections to the engine and
	// returns freed memory to the operating system (DefaultIdleRelease when
	// 0, never when negative). Idle infrastructure's memory is a target of
	// the spec (NFR-RES-01); a burst of requests grows buffers and heap that
	// the Go runtime would otherwise hand back only slowly.
	IdleRelease time.Duration
	// Clock times the idle release (the real clock when nil).
	Clock clock.Clock
	// Registerer receives the guard's metrics and Gatherer serves them (a
	// private registry when nil).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// Guard is the running proxy. It owns its listeners and goroutines; Stop
// (or cancelling Run's context) ends them.
type Guard struct {
	cfg       Config
	clock     clock.Clock
	log       *slog.Logger
	upstream  *upstream
	admission *admission
	metrics   *metrics
	gatherer  prometheus.Gatherer
	maxBody   int64
	buffered  *byteBudget
	profiles  map[string]*Profile

	// streams is cancelled first on Stop: long-lived responses and
	// hijacked connections end, short requests finish.
	streams     context.Context
	stopStreams context.CancelFunc

	mu        sync.Mutex
	servers   []*http.Server
	listeners []net.Listener
	metricsLn net.Listener
	metricsSv *http.Server
	hijacked  map[*hijackedPair]struct{}
	// lastActive is when a request last started or ended, as time since
	// base (a duration, so that the real clock's monotonic reading is kept
	// and a step of the wall clock does not move it); the idle releaser
	// reads it.
	base       time.Time
	lastActive atomic.Int64
	// inFlight counts requests being served (refused ones until their
	// answer, streams until they end).
	inFlight *atomic.Int64
	started  bool
	stopped  bool
	wg       sync.WaitGroup
}

type hijackedPair struct{ a, b net.Conn }

// New checks the configuration and prepares a guard; Start serves it.
func New(cfg Config) (*Guard, error) {
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("guard: no listeners (want at least one --listen ADDRESS=PROFILE)")
	}
	if cfg.Upstream == "" {
		cfg.Upstream = DefaultUpstream
	}
	up, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	profiles := builtinProfiles()
	for name, p := range cfg.Profiles {
		if _, dup := profiles[name]; dup {
			return nil, fmt.Errorf("guard: profile %q is built in and cannot be redefined", name)
		}
		profiles[name] = p
	}
	seen := map[string]bool{}
	for _, l := range cfg.Listeners {
		if profiles[l.Profile] == nil {
			return nil, fmt.Errorf("guard: listener %s: unknown profile %q", l, l.Profile)
		}
		if seen[l.String()] {
			return nil, fmt.Errorf("guard: listener %s given twice", l)
		}
		seen[l.String()] = true
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = max(DefaultMaxBuffered, 2*cfg.MaxBody)
	}
	if cfg.MaxBuffered < 2*cfg.MaxBody {
		return nil, fmt.Errorf("guard: the buffered-bytes cap (%d) must be at least twice the body cap (%d): a body's buffer doubles as it grows, and the largest body must fit", cfg.MaxBuffered, cfg.MaxBody)
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.FailOn == 0 {
		cfg.FailOn = policy.Error
	}
	if cfg.Registry == nil {
		cfg.Registry = policy.Default
	}
	if cfg.SocketMode == 0 {
		cfg.SocketMode = 0o660
	}
	if cfg.IdleRelease == 0 {
		cfg.IdleRelease = DefaultIdleRelease
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg, gat := cfg.Registerer, cfg.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gat = r, r
	}
	if gat == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gat = g
		}
	}
	if gat == nil && cfg.MetricsAddress != "" {
		return nil, errors.New("guard: a metrics address needs a Gatherer (pass the registry as both Registerer and Gatherer)")
	}
	inFlight := new(atomic.Int64)
	buffered := &byteBudget{limit: cfg.MaxBuffered}
	m, err := newMetrics(reg, inFlight, buffered)
	if err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	g := &Guard{
		cfg:      cfg,
		clock:    cfg.Clock,
		base:     cfg.Clock.Now(),
		inFlight: inFlight,
		log:      logger,
		upstream: up,
		metrics:  m,
		gatherer: gat,
		maxBody:  cfg.MaxBody,
		buffered: buffered,
		profiles: profiles,
		hijacked: map[*hijackedPair]struct{}{},
	}
	g.admission = newAdmission(cfg.Registry, adr.NewResolver(cfg.ADRDirs...), cfg.Strict, cfg.FailOn, engineLookups{up})
	g.admission.allow = AdmissionAllow(cfg.Allow)
	g.streams, g.stopStreams = context.WithCancel(context.Background())
	return g, nil
}

// Start binds every listener (so that an address in use fails here, not
// later) and serves them.
func (g *Guard) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return errors.New("guard: already started")
	}
	g.started = true
	for _, l := range g.cfg.Listeners {
		ln, err := g.listen(l)
		if err != nil {
			g.closeListenersLocked()
			return err
		}
		if l.Network == "tcp" && !loopback(l.Address) {
			g.log.Warn("guard listener is reachable beyond this host; keep it on a private network", "listener", l.String(), "profile", l.Profile)
		}
		h := newHandler(g, l.String(), g.profiles[l.Profile])
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: headerTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			IdleTimeout:       idleConnTimeout,
			ErrorLog:          log.New(&slogWriter{g.log, l.String()}, "", 0),
		}
		// Each connection holds a goroutine and its buffers: a bound on
		// them is a bound on the guard's memory, whatever clients do.
		ln = netutil.LimitListener(ln, g.cfg.MaxConnections)
		g.listeners = append(g.listeners, ln)
		g.servers = append(g.servers, srv)
	}
	if g.cfg.MetricsAddress != "" {
		ln, err := net.Listen("tcp", g.cfg.MetricsAddress)
		if err != nil {
			g.closeListenersLocked()
			return fmt.Errorf("guard: metrics listener %s: %w", g.cfg.MetricsAddress, err)
		}
		g.metricsLn = ln
		g.metricsSv = &http.Server{Handler: g.metricsHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	for i, srv := range g.servers {
		ln := g.listeners[i]
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("guard listener stopped", "listener", ln.Addr().String(), "error", err)
			}
		}()
		g.log.Info("guard listening", "listener", g.cfg.Listeners[i].String(), "profile", g.cfg.Listeners[i].Profile, "upstream", g.upstream.String())
	}
	if g.metricsSv != nil {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.metricsSv.Serve(g.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("guard metrics listener stopped", "error", err)
			}
		}()
	}
	if g.cfg.IdleRelease > 0 {
		// Start-up counts as activity: what package initialisation and
		// set-up left behind is released after the first quiet period.
		g.active()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.releaseWhenIdle(g.cfg.IdleRelease)
		}()
	}
	return nil
}

// active records that a request started or ended.
func (g *Guard) active() { g.lastActive.Store(int64(g.clock.Now().Sub(g.base))) }

// releaseWhenIdle waits for quiet periods of at least idle without a request
// starting or ending (allowed or refused), and at the start of each one closes the
// kept-alive engine connections and returns the heap's free pages to the
// operating system: a full collection, once per quiet period, never while
// requests keep coming. Long-lived streams (events for Traefik) do not count
// as activity; their buffers are in use and stay.
func (g *Guard) releaseWhenIdle(idle time.Duration) {
	released := int64(-1) // lastActive at the last release; none yet
	wait := idle
	for {
		t := g.clock.NewTimer(wait)
		select {
		case <-g.streams.Done():
			t.Stop()
			return
		case <-t.C():
		}
		last := g.lastActive.Load()
		quiet := max(g.clock.Now().Sub(g.base)-time.Duration(last), 0)
		switch {
		case last == released:
			wait = idle // still the quiet period already released
			continue
		case quiet < idle:
			wait = idle - quiet
			continue
		}
		released, wait = last, idle
		start := time.Now()
		g.upstream.pool.closeIdle()
		// Pooled buffers (sync.Pool: the HTTP server's readers and
		// writers, the copy buffers) survive one collection in the
		// pools' victim caches and are dropped by the second.
		runtime.GC()
		debug.FreeOSMemory()
		dropped, err := dropBinaryPages()
		if err != nil {
			g.log.Debug("guard idle: the binary's pages stay mapped", "error", err)
		}
		g.metrics.idleReleases.Inc()
		g.log.Debug("guard idle: engine connections closed, free memory returned, the binary's read-only pages unmapped", "quiet", quiet, "unmapped", dropped, "took", time.Since(start))
	}
}

// listen binds one listener. A unix socket left behind by a guard that died
// is replaced; a live one, or a file that is not a socket, is an error.
func (g *Guard) listen(l Listener) (net.Listener, error) {
	if l.Network == "tcp" {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			return nil, fmt.Errorf("guard: listener %s: %w", l, err)
		}
		return ln, nil
	}
	if err := os.MkdirAll(filepath.Dir(l.Address), 0o755); err != nil {
		return nil, fmt.Errorf("guard: listener %s: %w", l, err)
	}
	if fi, err := os.Lstat(l.Address); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("guard: listener %s: %s exists and is not a socket", l, l.Address)
		}
		if c, err := net.DialTimeout("unix", l.Address, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("guard: listener %s: another process serves %s", l, l.Address)
		}
		if err := os.Remove(l.Address); err != nil {
			return nil, fmt.Errorf("guard: listener %s: removing stale socket: %w", l, err)
		}
	}
	ln, err := net.Listen("unix", l.Address)
	if err != nil {
		return nil, fmt.Errorf("guard: listener %s: %w", l, err)
	}
	if err := os.Chmod(l.Address, g.cfg.SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("guard: listener %s: %w", l, err)
	}
	return ln, nil
}

func (g *Guard) closeListenersLocked() {
	for _, ln := range g.listeners {
		ln.Close()
	}
	if g.metricsLn != nil {
		g.metricsLn.Close()
	}
}

// Addrs returns the bound addresses, in the order of Config.Listeners.
func (g *Guard) Addrs() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]net.Addr, 0, len(g.listeners))
	for _, ln := range g.listeners {
		out = append(out, ln.Addr())
	}
	return out
}

// MetricsAddr returns the bound metrics address (nil when disabled).
func (g *Guard) MetricsAddr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.metricsLn == nil {
		return nil
	}
	return g.metricsLn.Addr()
}

// Stop shuts the guard down: streams and hijacked connections end at once;
// other requests in flight may finish until ctx is done, after which
// connections are closed.
func (g *Guard) Stop(ctx context.Context) error {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return nil
	}
	g.stopped = true
	servers := append([]*http.Server(nil), g.servers...)
	if g.metricsSv != nil {
		servers = append(servers, g.metricsSv)
	}
	for p := range g.hijacked {
		p.a.Close()
		p.b.Close()
	}
	g.mu.Unlock()
	g.stopStreams()

	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					emu.Lock()
					errs = append(errs, err)
					emu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	g.wg.Wait()
	g.upstream.pool.closeIdle()
	g.log.Info("guard stopped")
	return errors.Join(errs...)
}

// Run starts the guard and serves until ctx is cancelled (SIGTERM in the
// CLI), then stops it, giving requests in flight up to grace to finish.
func (g *Guard) Run(ctx context.Context, grace time.Duration) error {
	if err := g.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return g.Stop(sctx)
}

// track registers a hijacked connection pair so that Stop can close it; the
// returned func forgets it.
func (g *Guard) track(a, b net.Conn) func() {
	p := &hijackedPair{a, b}
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		a.Close()
		b.Close()
		return func() {}
	}
	g.hijacked[p] = struct{}{}
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		delete(g.hijacked, p)
		g.mu.Unlock()
	}
}

func (g *Guard) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		stopping := g.stopped
		g.mu.Unlock()
		if stopping {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	// /readyz also asks the engine, for orchestrators that should not send
	// traffic to a guard whose engine is down.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		err := g.upstream.ping(ctx)
		if err != nil {
			http.Error(w, "engine unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// slogWriter adapts net/http's error log (TLS handshakes, malformed
// requests) to the guard's logger.
type slogWriter struct {
	log      *slog.Logger
	listener string
}

func (w *slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("guard http server", "listener", w.listener, "message", strings.TrimSpace(string(p)))
	return len(p), nil
}
