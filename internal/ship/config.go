package ship

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hy-home/hyhome/internal/clock"
)

// LabelRule fills one Loki label from container labels: the first of From
// that a container carries wins, else Default (empty: the label is left out).
type LabelRule struct {
	Name    string
	From    []string
	Default string
}

// DefaultLabelRules is the documented mapping (see docs/ship.md):
//
//	job     ← hy-home.job, else com.docker.compose.project, else
//	          com.docker.stack.namespace (Swarm), else "docker"
//	tier    ← hy-home.tier
//	service ← com.docker.compose.service, else com.docker.swarm.service.name
//
// The agent adds source (events|logs), stream (stdout|stderr, logs only)
// and host itself. Container IDs and names are structured metadata, never
// labels: they change with every deployment and would multiply streams.
func DefaultLabelRules() []LabelRule {
	return []LabelRule{
		{Name: "job", From: []string{"hy-home.job", "com.docker.compose.project", "com.docker.stack.namespace"}, Default: "docker"},
		{Name: "tier", From: []string{"hy-home.tier"}},
		{Name: "service", From: []string{"com.docker.compose.service", "com.docker.swarm.service.name"}},
	}
}

// Labels the agent sets itself; rules and static labels may not use them.
var reservedLabels = []string{"source", "stream", "host"}

// Events scopes: which Docker events are shipped.
const (
	EventsAll      = "all"      // every event the engine emits (default)
	EventsSelected = "selected" // container events only of selected containers, plus all non-container events
	EventsNone     = "none"     // no events, logs only
)

// Config configures an Agent. Zero values take the defaults listed.
type Config struct {
	// LokiURL is Loki's base URL (http://loki:3100) or its push endpoint;
	// /loki/api/v1/push is appended when the URL has no path.
	LokiURL string
	// Encoding: EncodingProtobuf (default) or EncodingJSON (gzip).
	Encoding string
	// TenantFile holds the X-Scope-OrgID value (e.g. a Docker secret).
	TenantFile string
	// BasicAuthUser and BasicAuthPasswordFile enable basic auth.
	BasicAuthUser, BasicAuthPasswordFile string
	// BearerTokenFile enables "Authorization: Bearer <token>".
	BearerTokenFile string
	// CAFile is a PEM bundle to trust for an https Loki URL.
	CAFile string
	// InsecureSkipVerify disables TLS verification. Tests only.
	InsecureSkipVerify bool
	// PushTimeout bounds one push request (default 10s).
	PushTimeout time.Duration
	// BatchWait is the longest an entry waits for others to share its push
	// (default 200ms). An idle agent pushes the first entry at once.
	BatchWait time.Duration
	// BatchBytes flushes a batch when it reaches this many bytes (default 1 MiB).
	BatchBytes int
	// MinBackoff and MaxBackoff bound retry waits after 429, 5xx and
	// network errors (defaults 250ms and 10s; doubled per failure).
	MinBackoff, MaxBackoff time.Duration

	// StateDir holds the queue and positions (required).
	StateDir string
	// QueueMaxBytes caps unacknowledged queue bytes (default 256 MiB). At
	// the cap, log readers wait (lines stay in Docker's log files); events
	// use a reserve of max(1 MiB, cap/16) and beyond it are dropped and
	// counted as reason="queue_full".
	QueueMaxBytes int64
	// SegmentBytes is the queue segment size (default 8 MiB).
	SegmentBytes int64
	// CheckpointInterval is how often acknowledged progress is persisted
	// (default 250ms); after a crash at most this much is pushed twice.
	CheckpointInterval time.Duration
	// ShutdownGrace is how long Run keeps pushing the queue after its
	// context ends (default 5s); what is left stays queued for next start.
	ShutdownGrace time.Duration

	// Select chooses the containers whose logs are shipped (default
	// "hy-home.tier": those carrying that label). See ParseSelector.
	Select Selector
	// Events chooses the events shipped: EventsAll (default), EventsSelected, EventsNone.
	Events string
	// LabelRules map container labels to Loki labels (default DefaultLabelRules).
	LabelRules []LabelRule
	// StaticLabels are added to every stream.
	StaticLabels Labels
	// Host is the host label's value (default: the engine's host name).
	Host string
	// NoStructuredMetadata leaves out container_id and container_name
	// metadata, for Loki installations with allow_structured_metadata: false.
	NoStructuredMetadata bool
	// MaxLineBytes splits longer lines into several entries (default
	// 256 KiB, Loki's default max_line_size).
	MaxLineBytes int
	// Backfill bounds how far back a container seen for the first time is
	// read (default 24h); later reads resume from the saved position.
	Backfill time.Duration

	// Version goes into the User-Agent.
	Version string
	// Clock defaults to the wall clock.
	Clock Clock
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
	// Registerer receives the agent's metrics (required).
	Registerer prometheus.Registerer
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate reports everything wrong with cfg, as New would.
func (cfg Config) Validate() error {
	_, err := cfg.withDefaults()
	return err
}

// withDefaults validates cfg and fills in defaults.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.LokiURL == "" {
		errs = append(errs, errors.New("the Loki URL is required"))
	} else if u, err := url.Parse(cfg.LokiURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("the Loki URL %q must be an http:// or https:// URL with a host", cfg.LokiURL))
	} else {
		if u.Path == "" || u.Path == "/" {
			u.Path = "/loki/api/v1/push"
		}
		cfg.LokiURL = u.String()
	}
	switch cfg.Encoding {
	case "":
		cfg.Encoding = EncodingProtobuf
	case EncodingProtobuf, EncodingJSON:
	default:
		errs = append(errs, fmt.Errorf("encoding %q is not one of %s, %s", cfg.Encoding, EncodingProtobuf, EncodingJSON))
	}
	if cfg.BasicAuthUser != "" && cfg.BasicAuthPasswordFile == "" {
		errs = append(errs, errors.New("a basic auth user needs a password file"))
	}
	if cfg.BasicAuthUser == "" && cfg.BasicAuthPasswordFile != "" {
		errs = append(errs, errors.New("a basic auth password file needs a user"))
	}
	if cfg.BearerTokenFile != "" && cfg.BasicAuthUser != "" {
		errs = append(errs, errors.New("use either basic auth or a bearer token, not both"))
	}
	if cfg.StateDir == "" {
		errs = append(errs, errors.New("the state directory is required"))
	}
	if cfg.Registerer == nil {
		errs = append(errs, errors.New("a prometheus Registerer is required"))
	}
	dur := func(d *time.Duration, def time.Duration, name string) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			errs = append(errs, fmt.Errorf("%s must not be negative, got %s", name, *d))
		}
	}
	dur(&cfg.PushTimeout, 10*time.Second, "push timeout")
	dur(&cfg.BatchWait, 200*time.Millisecond, "batch wait")
	dur(&cfg.MinBackoff, 250*time.Millisecond, "minimum backoff")
	dur(&cfg.MaxBackoff, 10*time.Second, "maximum backoff")
	dur(&cfg.CheckpointInterval, 250*time.Millisecond, "checkpoint interval")
	dur(&cfg.ShutdownGrace, 5*time.Second, "shutdown grace")
	dur(&cfg.Backfill, 24*time.Hour, "backfill")
	if cfg.MaxBackoff < cfg.MinBackoff {
		errs = append(errs, fmt.Errorf("maximum backoff %s is below the minimum %s", cfg.MaxBackoff, cfg.MinBackoff))
	}
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = 1 << 20
	} else if cfg.BatchBytes < 1024 {
		errs = append(errs, fmt.Errorf("batch size must be at least 1024 bytes, got %d", cfg.BatchBytes))
	}
	if cfg.QueueMaxBytes == 0 {
		cfg.QueueMaxBytes = 256 << 20
	} else if cfg.QueueMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("queue cap must be at least 1 MiB, got %d bytes", cfg.QueueMaxBytes))
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = min(8<<20, max(64<<10, cfg.QueueMaxBytes/8))
	}
	if cfg.MaxLineBytes == 0 {
		cfg.MaxLineBytes = 256 << 10
	} else if cfg.MaxLineBytes < 1024 {
		errs = append(errs, fmt.Errorf("maximum line size must be at least 1024 bytes, got %d", cfg.MaxLineBytes))
	}
	if cfg.Select == nil {
		cfg.Select = Selector{{Key: "hy-home.tier", Op: selExists}}
	}
	switch cfg.Events {
	case "":
		cfg.Events = EventsAll
	case EventsAll, EventsSelected, EventsNone:
	default:
		errs = append(errs, fmt.Errorf("events scope %q is not one of %s, %s, %s", cfg.Events, EventsAll, EventsSelected, EventsNone))
	}
	if cfg.LabelRules == nil {
		cfg.LabelRules = DefaultLabelRules()
	}
	seen := map[string]bool{}
	for _, r := range cfg.LabelRules {
		errs = append(errs, checkLabelName(r.Name, "label rule", seen)...)
		if len(r.From) == 0 && r.Default == "" {
			errs = append(errs, fmt.Errorf("label rule %s has no container labels to read and no default", r.Name))
		}
	}
	for _, l := range cfg.StaticLabels {
		errs = append(errs, checkLabelName(l.Name, "static label", seen)...)
		if l.Value == "" {
			errs = append(errs, fmt.Errorf("static label %s has an empty value", l.Name))
		} else if !utf8.ValidString(l.Value) {
			errs = append(errs, fmt.Errorf("static label %s has a value that is not valid UTF-8", l.Name))
		}
	}
	cfg.StaticLabels = slices.Clone(cfg.StaticLabels)
	cfg.StaticLabels.sort()
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return cfg, errors.Join(errs...)
}

func checkLabelName(name, what string, seen map[string]bool) []error {
	var errs []error
	switch {
	case !labelNameRE.MatchString(name):
		errs = append(errs, fmt.Errorf("%s name %q is not a valid Loki label name ([a-zA-Z_][a-zA-Z0-9_]*)", what, name))
	case slices.Contains(reservedLabels, name):
		errs = append(errs, fmt.Errorf("%s name %q is set by the agent itself (reserved: %s)", what, name, strings.Join(reservedLabels, ", ")))
	case seen[name]:
		errs = append(errs, fmt.Errorf("%s name %q is defined twice", what, name))
	}
	seen[name] = true
	return errs
}

// ParseLabelRule parses NAME=KEY[,KEY...] (the --label flag).
func ParseLabelRule(s string) (LabelRule, error) {
	name, keys, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return LabelRule{}, fmt.Errorf("label rule %q: want NAME=CONTAINER_LABEL[,CONTAINER_LABEL...]", s)
	}
	r := LabelRule{Name: name}
	for _, k := range strings.Split(keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			r.From = append(r.From, k)
		}
	}
	return r, nil
}

// selOp is a selector term's operator.
type selOp int

const (
	selExists   selOp = iota // key
	selEqual                 // key=value
	selNotEqual              // key!=value
	selAbsent                // !key
)

// SelectorTerm is one condition on a container's labels.
type SelectorTerm struct {
	Key   string
	Op    selOp
	Value string
}

// Selector chooses containers by label; every term must hold.
type Selector []SelectorTerm

// ParseSelector parses a comma-separated list of label conditions, as in
// "hy-home.tier" (has the label), "hy-home.tier=infra", "hy-home.tier!=app"
// and "!hy-home.test" (lacks the label). An empty string selects all.
func ParseSelector(s string) (Selector, error) {
	sel := Selector{}
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for _, raw := range strings.Split(s, ",") {
		t := strings.TrimSpace(raw)
		var term SelectorTerm
		switch {
		case strings.HasPrefix(t, "!") && !strings.Contains(t, "="):
			term = SelectorTerm{Key: strings.TrimSpace(t[1:]), Op: selAbsent}
		case strings.Contains(t, "!="):
			k, v, _ := strings.Cut(t, "!=")
			term = SelectorTerm{Key: strings.TrimSpace(k), Op: selNotEqual, Value: strings.TrimSpace(v)}
		case strings.Contains(t, "="):
			k, v, _ := strings.Cut(t, "=")
			term = SelectorTerm{Key: strings.TrimSpace(k), Op: selEqual, Value: strings.TrimSpace(v)}
		default:
			term = SelectorTerm{Key: t, Op: selExists}
		}
		if term.Key == "" || strings.ContainsAny(term.Key, "!= ") {
			return nil, fmt.Errorf("selector term %q: want LABEL, LABEL=VALUE, LABEL!=VALUE or !LABEL", raw)
		}
		sel = append(sel, term)
	}
	return sel, nil
}

// Matches reports whether a container with these labels is selected.
func (s Selector) Matches(labels map[string]string) bool {
	for _, t := range s {
		v, ok := labels[t.Key]
		switch t.Op {
		case selExists:
			if !ok {
				return false
			}
		case selAbsent:
			if ok {
				return false
			}
		case selEqual:
			if !ok || v != t.Value {
				return false
			}
		case selNotEqual:
			if ok && v == t.Value {
				return false
			}
		}
	}
	return true
}

// String renders the selector in ParseSelector's syntax.
func (s Selector) String() string {
	parts := make([]string, 0, len(s))
	for _, t := range s {
		switch t.Op {
		case selExists:
			parts = append(parts, t.Key)
		case selAbsent:
			parts = append(parts, "!"+t.Key)
		case selEqual:
			parts = append(parts, t.Key+"="+t.Value)
		case selNotEqual:
			parts = append(parts, t.Key+"!="+t.Value)
		}
	}
	return strings.Join(parts, ",")
}
