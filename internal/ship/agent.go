// Package ship is hyhome's log agent: it ships Docker events and the logs
// of selected containers to Loki, durably. Every entry goes through an
// on-disk queue before the agent reads further from Docker and leaves it
// only after Loki accepted it, so that neither a Loki outage nor a SIGKILL
// loses or (normally) repeats anything.
//
// The package owns reading Docker (events, container logs), turning them
// into Loki entries and labels, the queue, and pushing. It must not decide
// policy about containers beyond selecting them, and must not need any
// write access to the Docker API: ping, version, info, events, container
// list, inspect and logs are all it calls, so it runs behind the guard's
// read-only shipper profile.
package ship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
)

// sourceEvents is the queue source key of the events stream; container
// log sources are "logs/<container id>".
const sourceEvents = "events"

func logSource(id string) string { return "logs/" + id }

// Agent ships Docker events and container logs to Loki.
type Agent struct {
	cfg    Config
	docker *client.Client
	q      *queue
	m      *metrics
	log    *slog.Logger
	client *lokiClient
	pusher *pusher

	host string

	mu        sync.Mutex
	positions map[string]Cursor // newest appended position per source
	tailers   map[string]*tailer
	srcCtx    context.Context
	srcWG     sync.WaitGroup
	eventsUp  bool
	eventsAt  time.Time // when the events stream last connected or dropped
	running   bool
	catchUp   chan struct{} // see catchUpSlots
}

// New validates cfg, opens the queue in cfg.StateDir (recovering what a
// previous run left) and registers the metrics. docker must be connected
// (docker.Connect); the agent does not close it.
func New(cfg Config, docker *client.Client) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("invalid ship configuration: %w", err)
	}
	if docker == nil {
		return nil, errors.New("invalid ship configuration: a Docker client is required")
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	lc, err := newLokiClient(&cfg)
	if err != nil {
		return nil, err
	}
	q, rec, err := openQueue(queueConfig{
		Dir: cfg.StateDir, MaxBytes: cfg.QueueMaxBytes, SegmentBytes: cfg.SegmentBytes,
		Logger: cfg.Logger.With("component", "queue"),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the queue in %s: %w", cfg.StateDir, err)
	}
	a := &Agent{
		cfg: cfg, docker: docker, q: q, m: m, log: cfg.Logger, client: lc,
		positions: rec.Positions, tailers: map[string]*tailer{},
		catchUp: make(chan struct{}, catchUpSlots),
	}
	m.recovered.Add(float64(rec.Entries))
	if rec.Corrupt > 0 {
		m.dropped.WithLabelValues(DropCorrupt).Add(float64(rec.Corrupt))
	}
	if rec.Entries > 0 || rec.Truncated > 0 || rec.Corrupt > 0 {
		a.log.Info("recovered the queue", "entries", rec.Entries, "bytes", rec.Bytes, "torn_tail_bytes", rec.Truncated, "corrupt_stretches", rec.Corrupt)
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hyhome_ship_queue_entries", Help: "Entries in the queue not yet accepted by Loki."},
			func() float64 { return float64(a.q.stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hyhome_ship_queue_bytes", Help: "Bytes in the queue not yet accepted by Loki."},
			func() float64 { return float64(a.q.stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hyhome_ship_queue_max_bytes", Help: "The queue's cap (--queue-max-bytes)."},
			func() float64 { return float64(cfg.QueueMaxBytes) }),
	} {
		if err := register(cfg.Registerer, c); err != nil {
			q.close()
			return nil, err
		}
	}
	a.pusher = newPusher(&a.cfg, q, lc, m)
	return a, nil
}

// Run ships until ctx ends, then stops the sources, pushes what is queued
// for up to ShutdownGrace, writes a final checkpoint and closes the queue.
// It returns an error only if the agent could not start. An Agent runs
// once: its queue is closed when Run returns.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("ship agent already running")
	}
	a.running = true
	a.mu.Unlock()

	if a.cfg.Host != "" {
		a.host = a.cfg.Host
	} else {
		info, err := a.docker.Info(ctx, client.InfoOptions{})
		if err != nil {
			a.q.close()
			return fmt.Errorf("reading the engine's host name (docker info): %w", err)
		}
		a.host = info.Info.Name
	}
	a.log.Info("shipping to Loki", "url", a.cfg.LokiURL, "encoding", a.cfg.Encoding, "select", a.cfg.Select.String(), "events", a.cfg.Events, "host", a.host, "state_dir", a.cfg.StateDir)

	pushCtx, stopPush := context.WithCancel(context.WithoutCancel(ctx))
	drain := make(chan struct{})
	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		a.pusher.run(pushCtx, drain)
	}()

	srcCtx, stopSrc := context.WithCancel(ctx)
	a.mu.Lock()
	a.srcCtx = srcCtx
	a.mu.Unlock()
	a.srcWG.Add(1)
	go func() {
		defer a.srcWG.Done()
		a.runEvents(srcCtx)
	}()

	<-ctx.Done()
	stopSrc()
	a.srcWG.Wait()
	a.log.Info("sources stopped; pushing what is queued", "entries", a.q.stats().Entries, "grace", a.cfg.ShutdownGrace)
	close(drain)
	grace := a.cfg.Clock.NewTimer(a.cfg.ShutdownGrace)
	select {
	case <-pushDone:
	case <-grace.C():
		a.log.Warn("shutdown grace over; the rest stays queued for the next start", "entries", a.q.stats().Entries)
	}
	grace.Stop()
	stopPush()
	<-pushDone
	if err := a.q.close(); err != nil {
		a.log.Error("closing the queue", "err", err)
	}
	return nil
}

// appendRecords writes encoded records for source, counting entries.
func (a *Agent) appendRecords(ctx context.Context, buf []byte, entries int, prio Priority) error {
	start := a.cfg.Clock.Now()
	err := a.q.append(ctx, buf, entries, prio)
	if prio == PriorityLogs {
		if d := a.cfg.Clock.Now().Sub(start); d > 10*time.Millisecond {
			a.m.blocked.Add(d.Seconds())
		}
	}
	return err
}

// setPosition remembers the newest appended position of a source.
func (a *Agent) setPosition(source string, c Cursor) {
	a.mu.Lock()
	a.positions[source] = c
	a.mu.Unlock()
}

func (a *Agent) position(source string) (Cursor, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.positions[source]
	return c, ok
}

func (a *Agent) forgetPosition(source string) {
	a.mu.Lock()
	delete(a.positions, source)
	a.mu.Unlock()
}

// streamLabels applies the label rules to a container's labels (nil for
// events about other objects) and adds the agent's own labels.
func (a *Agent) streamLabels(container map[string]string, source, stream string) Labels {
	ls := make(Labels, 0, len(a.cfg.LabelRules)+len(a.cfg.StaticLabels)+3)
	for _, r := range a.cfg.LabelRules {
		v := ""
		for _, k := range r.From {
			if v = container[k]; v != "" {
				break
			}
		}
		if v == "" {
			v = r.Default
		}
		if v != "" {
			ls = append(ls, Label{r.Name, strings.ToValidUTF8(v, "\uFFFD")})
		}
	}
	ls = append(ls, a.cfg.StaticLabels...)
	ls = append(ls, Label{"source", source})
	if stream != "" {
		ls = append(ls, Label{"stream", stream})
	}
	if a.host != "" {
		ls = append(ls, Label{"host", a.host})
	}
	ls.sort()
	return ls
}

// Health is the agent's state as /healthz reports it.
type Health struct {
	OK              bool      `json:"ok"`
	Problems        []string  `json:"problems,omitempty"`
	EventsConnected bool      `json:"events_connected"`
	LogStreams      int       `json:"log_streams"`
	QueueEntries    int64     `json:"queue_entries"`
	QueueBytes      int64     `json:"queue_bytes"`
	LastPush        time.Time `json:"last_successful_push,omitzero"`
	PushFailingFrom time.Time `json:"push_failing_since,omitzero"`
	PushError       string    `json:"push_error,omitempty"`
}

// eventsDownTolerance is how long the events stream may stay disconnected
// before /healthz fails: reconnecting is usually a matter of seconds.
const eventsDownTolerance = time.Minute

// Health reports the agent's state. It is not OK when something local is
// broken (the queue cannot be written, the events stream is gone for more
// than a minute); Loki being unreachable is reported but stays OK, because
// restarting the agent would not fix Loki and the queue absorbs it.
func (a *Agent) Health() Health {
	st := a.q.stats()
	h := Health{OK: true, QueueEntries: st.Entries, QueueBytes: st.Bytes}
	if st.WriteErr != nil {
		h.OK = false
		h.Problems = append(h.Problems, "queue: "+st.WriteErr.Error())
	}
	a.mu.Lock()
	h.EventsConnected = a.eventsUp
	h.LogStreams = 0
	for _, t := range a.tailers {
		if t.running {
			h.LogStreams++
		}
	}
	down := !a.eventsUp && a.running && a.cfg.Clock.Now().Sub(a.eventsAt) > eventsDownTolerance
	a.mu.Unlock()
	if down {
		h.OK = false
		h.Problems = append(h.Problems, "the Docker events stream has been disconnected for over "+eventsDownTolerance.String())
	}
	h.LastPush, h.PushFailingFrom, h.PushError = a.pusher.status()
	return h
}

// HealthHandler serves Health as JSON: 200 when OK, 503 otherwise.
func (a *Agent) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := a.Health()
		w.Header().Set("Content-Type", "application/json")
		if !h.OK {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
}
