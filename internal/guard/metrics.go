package guard

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the guard's Prometheus series, registered on the Registerer
// the caller passes (never the global one).
type metrics struct {
	requests       *prometheus.CounterVec
	denials        *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	hijacked       *prometheus.GaugeVec
	idleReleases   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, inFlight *atomic.Int64, buffered *byteBudget) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyhome_guard_requests_total",
			Help: "Engine API requests by listener profile and verdict (allow or deny).",
		}, []string{"profile", "verdict"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyhome_guard_denials_total",
			Help: "Denials by profile, reason and failing rule (rule is empty unless reason is policy; a policy denial counts once per failing rule).",
		}, []string{"profile", "reason", "rule"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hyhome_guard_request_duration_seconds",
			Help: "Time from request to response head (the verdict, lookups and the engine's answer), by profile and verdict.",
			// 50µs to ~3s: allowed GETs add tens of microseconds, judged
			// creates wait on the engine.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 17),
		}, []string{"profile", "verdict"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyhome_guard_upstream_errors_total",
			Help: "Allowed requests the engine could not be reached for or that failed mid-response.",
		}, []string{"profile"}),
		hijacked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hyhome_guard_hijacked_connections",
			Help: "Connections currently proxied raw (attach, exec, session).",
		}, []string{"profile"}),
		idleReleases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyhome_guard_idle_releases_total",
			Help: "Quiet periods at whose start the guard closed its idle engine connections and returned free memory to the operating system.",
		}),
	}
	inFlightGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hyhome_guard_requests_in_flight",
		Help: "Requests being served: refused ones until their answer, long-lived streams until they end.",
	}, func() float64 { return float64(inFlight.Load()) })
	bufferedGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hyhome_guard_buffered_bytes",
		Help: "Bytes reserved for request bodies being read and judged, across all requests (capped by max_buffered).",
	}, func() float64 { return float64(buffered.used.Load()) })
	for _, c := range []prometheus.Collector{m.requests, m.denials, m.duration, m.upstreamErrors, m.hijacked, m.idleReleases, inFlightGauge, bufferedGauge} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("registering guard metrics: already registered (one guard per registry)")
			}
			return nil, err
		}
	}
	return m, nil
}
