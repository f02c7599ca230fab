package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// metrics-endpoint: every workload declares where its metrics are scraped
// (or that it pushes OTLP).
var ruleMetricsEndpoint = &Rule{
	ID:           "metrics-endpoint",
	Requirements: []string{"IF-INTERNAL"},
	Severity:     Warning,
	Description:  "Every service must declare a Prometheus or OTLP metrics endpoint.",
	Remediation:  "Label the service with `hy-home.metrics.port` (and `hy-home.metrics.path` if not /metrics), or `hy-home.metrics: otlp` when it pushes OTLP.",
	Requests:     []Request{RequestCreate},
	Check:        checkMetrics,
}

func checkMetrics(w *workload.Workload, _ *Env) []Violation {
	if port, pos, ok := w.Label(workload.LabelMetricsPort); ok {
		n, err := strconv.Atoi(strings.TrimSpace(port))
		if err != nil || n < 1 || n > 65535 {
			return one(fmt.Sprintf("%s %q is not a port number", workload.LabelMetricsPort, port), pos)
		}
		if p, ppos, ok := w.Label(workload.LabelMetricsPath); ok && !strings.HasPrefix(strings.TrimSpace(p), "/") {
			return one(fmt.Sprintf("%s %q must be an absolute path", workload.LabelMetricsPath, p), ppos)
		}
		return nil
	}
	if kind, pos, ok := w.Label(workload.LabelMetrics); ok {
		switch strings.ToLower(strings.TrimSpace(kind)) {
		case "otlp":
			return nil
		case "prometheus":
			return one(fmt.Sprintf("%s: prometheus needs %s", workload.LabelMetrics, workload.LabelMetricsPort), pos)
		default:
			return one(fmt.Sprintf("%s %q is neither otlp nor prometheus", workload.LabelMetrics, kind), pos)
		}
	}
	return one("declares no metrics endpoint (hy-home.metrics.port or hy-home.metrics: otlp)", w.Pos)
}
