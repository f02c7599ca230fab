package verify

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// promClient runs the instant queries the memory checks and the alert path
// ask Prometheus.
type promClient struct {
	api promv1.API
}

func newPromClient(address string, hc *http.Client) (*promClient, error) {
	c, err := api.NewClient(api.Config{Address: address, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("a client for Prometheus at %s: %w", redactURL(address), err)
	}
	return &promClient{api: promv1.NewAPI(c)}, nil
}

// vector runs an instant query at at (zero: now) whose result must be a
// vector.
func (p *promClient) vector(ctx context.Context, q string, at time.Time) (model.Vector, error) {
	val, _, _, err := p.api.Query(ctx, q, at)
	if err != nil {
		return nil, fmt.Errorf("querying Prometheus for %s: %w", q, err)
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("querying Prometheus for %s: got a %s, want a vector", q, val.Type())
	}
	return vec, nil
}

// value runs an instant query now; found is false for an empty result.
func (p *promClient) value(ctx context.Context, q string) (v float64, found bool, err error) {
	vec, err := p.vector(ctx, q, time.Time{})
	if err != nil || len(vec) == 0 {
		return 0, false, err
	}
	return float64(vec[0].Value), true, nil
}

// byName runs an instant query at at whose result is labelled by name and
// returns the value per container name.
func (p *promClient) byName(ctx context.Context, q string, at time.Time) (map[string]float64, error) {
	vec, err := p.vector(ctx, q, at)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range vec {
		out[string(s.Metric["name"])] = float64(s.Value)
	}
	return out, nil
}
