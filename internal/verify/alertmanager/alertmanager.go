// Package alertmanager talks to Alertmanager's v2 API as verify's alert
// path does: the alerts naming a service, the receivers that send to Slack,
// and a silence for a service removed on purpose.
//
// It asks and decodes; it must not decide whether the alert path works (the
// ALERTING check does) or know credentials (the HTTP client carries them).
package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/human"
)

// Client talks to one Alertmanager.
type Client struct {
	// URL is Alertmanager's base URL, without a trailing slash.
	URL string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Log receives a debug line per request; nil discards.
	Log *slog.Logger
	// Now is the clock resolved alerts and silences are judged on; nil
	// means time.Now.
	Now func() time.Time
}

// Alert is an alert as the v2 API lists it.
type Alert struct {
	Labels    map[string]string `json:"labels"`
	StartsAt  time.Time         `json:"startsAt"`
	EndsAt    time.Time         `json:"endsAt"`
	Receivers []struct {
		Name string `json:"name"`
	} `json:"receivers"`
	Status struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

func (c *Client) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// do sends one request and decodes a JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	endpoint, _, _ := strings.Cut(path, "?")
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // not the whole URL again
		}
		return fmt.Errorf("asking Alertmanager %s %s: %w", method, endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading Alertmanager's answer to %s %s: %w", method, path, err)
	}
	if c.Log != nil {
		c.Log.Debug("alertmanager", "method", method, "path", endpoint, "status", resp.StatusCode)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("asking Alertmanager %s %s: it answered %s: %s", method, endpoint, resp.Status, human.Truncate(strings.TrimSpace(string(data)), 200))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding Alertmanager's answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Alerts lists the alerts naming service (the watchdog, which names none,
// is never among them), silenced and inhibited ones included, resolved ones
// not.
func (c *Client) Alerts(ctx context.Context, service string) ([]Alert, error) {
	q := url.Values{"filter": {fmt.Sprintf("service=%q", service)}, "active": {"true"}, "silenced": {"true"}, "inhibited": {"true"}, "unprocessed": {"true"}}
	var alerts []Alert
	if err := c.do(ctx, http.MethodGet, "/api/v2/alerts?"+q.Encode(), nil, &alerts); err != nil {
		return nil, err
	}
	now := c.now()
	out := alerts[:0]
	for _, a := range alerts {
		// Resolved alerts may linger until Alertmanager's next GC.
		if a.Labels["service"] != service || (!a.EndsAt.IsZero() && a.EndsAt.Before(now)) {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// SlackReceivers returns the names of the receivers that have
// slack_configs, from the configuration Alertmanager runs
// (GET /api/v2/status).
func (c *Client) SlackReceivers(ctx context.Context) (map[string]bool, error) {
	var st struct {
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v2/status", nil, &st); err != nil {
		return nil, err
	}
	return slackReceivers(st.Config.Original)
}

// slackReceivers reads the receivers with slack_configs from a
// configuration file's text.
func slackReceivers(config string) (map[string]bool, error) {
	var cfg struct {
		Receivers []struct {
			Name         string `yaml:"name"`
			SlackConfigs []any  `yaml:"slack_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		return nil, fmt.Errorf("reading Alertmanager's configuration from /api/v2/status: %w", err)
	}
	out := map[string]bool{}
	for _, r := range cfg.Receivers {
		if len(r.SlackConfigs) > 0 {
			out[r.Name] = true
		}
	}
	return out, nil
}

// Silence silences every alert whose service label is service for d, and
// returns the silence's ID.
func (c *Client) Silence(ctx context.Context, service string, d time.Duration, createdBy, comment string) (string, error) {
	now := c.now().UTC()
	body := map[string]any{
		"matchers":  []map[string]any{{"name": "service", "value": service, "isRegex": false, "isEqual": true}},
		"startsAt":  now.Format(time.RFC3339),
		"endsAt":    now.Add(d).Format(time.RFC3339),
		"createdBy": createdBy,
		"comment":   comment,
	}
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v2/silences", body, &out); err != nil {
		return "", err
	}
	return out.SilenceID, nil
}
