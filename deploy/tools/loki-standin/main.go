// Command loki-standin serves the in-repo Loki test server
// (internal/lokitest) as a container, for `make e2e` on hosts where the
// pinned grafana/loki image cannot be had. It is NOT Loki, and its image is
// named hyhome-loki-standin, never grafana/loki.
//
//	loki-standin -listen :3100 -metrics-listen :3101
//
// It answers the traffic the stack sends Loki, unchanged: hyhome ship's
// pushes (JSON or snappy protobuf) and LogQL stream-selector queries with
// line filters (hyhome verify, the e2e checks), and /ready for the stack's
// healthcheck, with Loki's observable behaviour as internal/lokitest
// documents it. It keeps everything in memory and persists nothing: a
// restart loses what it stored, and the e2e run mounts no volume on it.
//
// Its own metrics (push requests and entries by outcome, Go runtime and
// process) are on a separate listener: they are the stand-in's, not Loki's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hy-home/hyhome/internal/lokitest"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	fs := flag.NewFlagSet("loki-standin", flag.ContinueOnError)
	listen := fs.String("listen", ":3100", "address of Loki's HTTP API")
	metricsListen := fs.String("metrics-listen", ":3101", "address of the stand-in's own /metrics")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, log, *listen, *metricsListen, nil); err != nil {
		log.Error("loki-standin", "err", err)
		return 1
	}
	return 0
}

// serve runs the stand-in until ctx ends. ready, when not nil, receives the
// two listeners' addresses once both accept connections.
func serve(ctx context.Context, log *slog.Logger, listen, metricsListen string, ready chan<- [2]string) error {
	srv, err := lokitest.Start(lokitest.Config{Addr: listen})
	if err != nil {
		return err
	}
	defer srv.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), statsCollector{srv})
	ln, err := net.Listen("tcp", metricsListen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", metricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- ms.Serve(ln) }()

	log.Info("serving the in-repo Loki test server: NOT Loki, memory only, nothing persisted",
		"api", srv.URL(), "metrics", ln.Addr().String())
	if ready != nil {
		ready <- [2]string{srv.URL(), "http://" + ln.Addr().String()}
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("metrics listener: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ms.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	st := srv.Stats()
	log.Info("stopping; everything stored is dropped", "push_requests", st.Requests, "accepted", st.Accepted, "duplicates", st.Duplicates, "rejected", st.Rejected)
	return nil
}

// statsCollector exposes the test server's counters.
type statsCollector struct{ srv *lokitest.Server }

var (
	descRequests = prometheus.NewDesc("hyhome_loki_standin_push_requests_total", "Push requests received, by HTTP status answered.", []string{"status"}, nil)
	descEntries  = prometheus.NewDesc("hyhome_loki_standin_entries_total", "Pushed entries, by outcome (accepted, duplicate, rejected).", []string{"outcome"}, nil)
)

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRequests
	ch <- descEntries
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	for code, n := range st.ByStatus {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), strconv.Itoa(code))
	}
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.CounterValue, float64(st.Accepted), "accepted")
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.CounterValue, float64(st.Duplicates), "duplicate")
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.CounterValue, float64(st.Rejected), "rejected")
}
