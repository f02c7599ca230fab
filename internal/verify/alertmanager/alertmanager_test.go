package alertmanager

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The client against a stand-in of the v2 API; the real Alertmanager is
// exercised by verify's TestAlertingEndToEnd and deploy's TestAlertPath.
func TestClient(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var silence map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /api/v2/alerts":
			if f := r.URL.Query().Get("filter"); f != `service="svc"` {
				t.Errorf("filter %q", f)
			}
			io.WriteString(w, `[
				{"labels":{"alertname":"Down","service":"svc"},"endsAt":"2025-03-01T12:05:00Z","receivers":[{"name":"slack"}],"status":{"state":"active"}},
				{"labels":{"alertname":"Old","service":"svc"},"endsAt":"2025-03-01T11:00:00Z","status":{"state":"active"}},
				{"labels":{"alertname":"Other","service":"svc-2"},"status":{"state":"active"}}]`)
		case "GET /api/v2/status":
			io.WriteString(w, `{"config":{"original":"receivers:\n- name: slack\n  slack_configs: [{channel: x}]\n- name: null\n"}}`)
		case "POST /api/v2/silences":
			json.NewDecoder(r.Body).Decode(&silence)
			io.WriteString(w, `{"silenceID":"s-1"}`)
		default:
			http.Error(w, "no such endpoint", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL, HTTP: srv.Client(), Now: func() time.Time { return now }}
	ctx := context.Background()
	as, err := c.Alerts(ctx, "svc")
	if err != nil || len(as) != 1 || as[0].Labels["alertname"] != "Down" || as[0].Receivers[0].Name != "slack" {
		t.Errorf("alerts %+v, %v: want the one active, unresolved alert naming svc", as, err)
	}
	rs, err := c.SlackReceivers(ctx)
	if err != nil || !rs["slack"] || rs["null"] || len(rs) != 1 {
		t.Errorf("slack receivers %v, %v", rs, err)
	}
	id, err := c.Silence(ctx, "svc", time.Hour, "hyhome verify", "why")
	if err != nil || id != "s-1" || silence["endsAt"] != "2025-03-01T13:00:00Z" || silence["createdBy"] != "hyhome verify" {
		t.Errorf("silence %q %v: %v", id, err, silence)
	}
	c.URL += "/nowhere"
	if _, err := c.SlackReceivers(ctx); err == nil || !strings.Contains(err.Error(), "asking Alertmanager GET /api/v2/status: it answered 404 Not Found: no such endpoint") {
		t.Errorf("404: %v", err)
	}
}

func TestSlackReceiversBadConfig(t *testing.T) {
	if _, err := slackReceivers("receivers: [unclosed"); err == nil || !strings.Contains(err.Error(), "reading Alertmanager's configuration") {
		t.Errorf("bad YAML: %v", err)
	}
}

// FuzzSlackReceivers: whatever configuration text Alertmanager reports,
// reading it returns receivers or an error, never a panic.
func FuzzSlackReceivers(f *testing.F) {
	f.Add("receivers:\n- name: a\n  slack_configs: [{}]\n")
	f.Fuzz(func(t *testing.T, s string) { _, _ = slackReceivers(s) })
}
