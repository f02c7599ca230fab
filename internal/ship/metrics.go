package ship

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons: the values of hyhome_ship_entries_dropped_total{reason}.
const (
	// DropQueueFull: an event arrived while the queue and its events
	// reserve were full (log lines wait instead and are never dropped).
	DropQueueFull = "queue_full"
	// DropCorrupt: queue data on disk failed its checksum.
	DropCorrupt = "corrupt"
	// DropRejectedPrefix + status, e.g. "rejected_400": Loki refused the
	// entries with a 4xx other than 429.
	DropRejectedPrefix = "rejected_"
)

// metrics are the agent's Prometheus metrics, registered on the
// Registerer passed in (never on a package-level registry).
type metrics struct {
	read          *prometheus.CounterVec
	sent          *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	pushes        *prometheus.CounterVec
	pushDuration  prometheus.Histogram
	retries       prometheus.Counter
	lag           prometheus.Histogram
	blocked       prometheus.Counter
	eventsUp      prometheus.Gauge
	followed      prometheus.Gauge
	streamErrors  *prometheus.CounterVec
	recovered     prometheus.Counter
	checkpointErr prometheus.Counter
	replays       prometheus.Counter
}

// LagBuckets are the end-to-end lag histogram's buckets in seconds; 2 s is
// NFR-OBS-01's budget and 5 s AC-SPEC-02's.
var LagBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyhome_ship_entries_read_total",
			Help: "Entries read from Docker and written to the queue, by source (events, logs).",
		}, []string{"source"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyhome_ship_entries_sent_total",
			Help: "Entries Loki accepted, by source (events, logs).",
		}, []string{"source"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyhome_ship_entries_dropped_total",
			Help: "Entries given up on, by reason: queue_full (events beyond the queue's reserve), corrupt (queue data failed its checksum), rejected_<status> (Loki answered a 4xx other than 429).",
		}, []string{"reason"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyhome_ship_pushes_total",
			Help: "Push requests to Loki by outcome: the HTTP status code, or \"error\" when no response arrived.",
		}, []string{"code"}),
		pushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hyhome_ship_push_duration_seconds",
			Help:    "Duration of one push request to Loki, whatever its outcome.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyhome_ship_push_retries_total",
			Help: "Pushes retried after a 429, a 5xx or a network error.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hyhome_ship_lag_seconds",
			Help:    "End-to-end lag from an entry's Docker timestamp to Loki accepting it.",
			Buckets: LagBuckets,
		}),
		blocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyhome_ship_queue_full_wait_seconds_total",
			Help: "Time log readers waited because the queue was at its cap (lines stay in Docker's log files meanwhile).",
		}),
		eventsUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hyhome_ship_events_connected",
			Help: "1 while the Docker events stream is connected.",
		}),
		followed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hyhome_ship_log_streams",
			Help: "Container log streams being read.",
		}),
		streamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyhome_ship_stream_errors_total",
			Help: "Docker streams that ended with an error and were reopened, by source (events, logs).",
		}, []string{"source"}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyhome_ship_queue_recovered_entries_total",
			Help: "Entries found unacknowledged in the queue at startup and pushed again (Loki stores exact duplicates once).",
		}),
		checkpointErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyhome_ship_checkpoint_errors_total",
			Help: "Failed writes of the queue checkpoint.",
		}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyhome_ship_log_replays_dropped_total",
			Help: "Log lines the engine sent twice in one stream (json-file rotation under a follow), dropped before the queue.",
		}),
	}
	for _, c := range []prometheus.Collector{m.read, m.sent, m.dropped, m.pushes, m.pushDuration, m.retries, m.lag, m.blocked, m.eventsUp, m.followed, m.streamErrors, m.recovered, m.checkpointErr, m.replays} {
		if err := register(reg, c); err != nil {
			return nil, err
		}
	}
	// Pre-create the common series so dashboards see zeros, not gaps.
	for _, s := range []string{"events", "logs"} {
		m.read.WithLabelValues(s)
		m.sent.WithLabelValues(s)
		m.streamErrors.WithLabelValues(s)
	}
	m.dropped.WithLabelValues(DropQueueFull)
	return m, nil
}

func register(reg prometheus.Registerer, c prometheus.Collector) error {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return fmt.Errorf("registering ship metrics: %w (one agent per registry)", err)
		}
		return fmt.Errorf("registering ship metrics: %w", err)
	}
	return nil
}
