package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestStandinServesTheStacksTraffic: the stack's healthcheck, a push as
// hyhome ship sends it, the AC-SPEC-02 query, and the stand-in's own
// metrics on their separate listener.
func TestStandinServesTheStacksTraffic(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, slog.New(slog.DiscardHandler), "127.0.0.1:0", "127.0.0.1:0", ready) }()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the stand-in did not start within a minute")
	}
	api, metrics := addrs[0], addrs[1]

	if body := get(t, api+"/ready", http.StatusOK); !strings.Contains(body, "ready") {
		t.Errorf("/ready answered %q", body)
	}
	now := time.Now()
	push := fmt.Sprintf(`{"streams":[{"stream":{"job":"infra","tier":"gateway","service":"traefik"},"values":[["%d","GET /standin-token 404"]]}]}`, now.UnixNano())
	resp, err := http.Post(api+"/loki/api/v1/push", "application/json", strings.NewReader(push))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push answered %s, want 204 as Loki does", resp.Status)
	}
	q := url.Values{
		"query": {`{job="infra", tier="gateway"} |= "standin-token"`},
		"start": {fmt.Sprint(now.Add(-time.Minute).UnixNano())},
		"end":   {fmt.Sprint(now.Add(time.Minute).UnixNano())},
	}
	if body := get(t, api+"/loki/api/v1/query_range?"+q.Encode(), http.StatusOK); !strings.Contains(body, "GET /standin-token 404") {
		t.Errorf("query_range did not return the pushed line: %s", body)
	}
	body := get(t, metrics+"/metrics", http.StatusOK)
	for _, want := range []string{`hyhome_loki_standin_push_requests_total{status="204"} 1`, `hyhome_loki_standin_entries_total{outcome="accepted"} 1`, "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(get(t, api+"/metrics", http.StatusNotFound), "hyhome_loki_standin") {
		t.Error("the stand-in's metrics are served on Loki's API port")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the stand-in did not stop within a minute")
	}
}

func TestBadFlagsExit2(t *testing.T) {
	if got := run([]string{"-no-such-flag"}); got != 2 {
		t.Errorf("run with a bad flag = %d, want 2", got)
	}
}

func get(t *testing.T, u string, want int) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d: %s", u, resp.Status, want, b)
	}
	return string(b)
}
