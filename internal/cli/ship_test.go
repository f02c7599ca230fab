package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/ship"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"1048576", 1 << 20}, {"512KiB", 512 << 10}, {"256MiB", 256 << 20}, {"1GiB", 1 << 30}, {"10MB", 10e6}, {"64K", 64 << 10}, {" 2 MiB ", 2 << 20}} {
		if got, err := parseBytes(tc.in); err != nil || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5GiB", "12XB", "99999999999999GiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}

func shipConfig(t *testing.T, args ...string) (ship.Config, error) {
	t.Helper()
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	f := &shipFlags{}
	if err := shipCommand(a, f).ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return f.config(a)
}

func TestShipFlagsBuildTheConfig(t *testing.T) {
	cfg, err := shipConfig(t, "--loki-url", "http://loki:3100", "--label", "tier=", "--label", "team=com.example.team,owner",
		"--label", "job=app.job", "--default-job", "misc", "--static-label", "env=prod", "--select", "hy-home.tier=infra,!skip",
		"--queue-max-bytes", "64MiB", "--batch-wait", "0")
	if err != nil {
		t.Fatal(err)
	}
	rules := fmt.Sprint(cfg.LabelRules)
	if rules != "[{job [app.job] misc} {service [com.docker.compose.service com.docker.swarm.service.name] } {team [com.example.team owner] }]" {
		t.Errorf("label rules %s", rules)
	}
	if cfg.QueueMaxBytes != 64<<20 || cfg.Select.String() != "hy-home.tier=infra,!skip" || cfg.StaticLabels[0] != (ship.Label{Name: "env", Value: "prod"}) {
		t.Errorf("config %+v", cfg)
	}
	if cfg.BatchWait <= 0 {
		t.Errorf("--batch-wait 0 must mean push at once, got %s", cfg.BatchWait)
	}
}

func TestShipFlagErrorsAreNamed(t *testing.T) {
	_, err := shipConfig(t, "--loki-url", "http://loki:3100", "--label", "nope=", "--static-label", "novalue", "--select", "a b", "--batch-size", "big")
	for _, want := range []string{"--label nope=: there is no mapping for nope to remove", `--static-label "novalue": want NAME=VALUE`, "--select", "--batch-size"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestShipRequiresLokiURLAndRejectsBadConfigBeforeConnecting(t *testing.T) {
	var stderr bytes.Buffer
	if code := Main([]string{"ship"}, nil, &bytes.Buffer{}, &stderr); code != ExitError || !strings.Contains(stderr.String(), "--loki-url is required") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	// An unreachable engine must not be what the user hears about first.
	code := Main([]string{"ship", "--loki-url", "ftp://x", "--host", "tcp://127.0.0.1:1", "--listen", ""}, nil, &bytes.Buffer{}, &stderr)
	if code != ExitError || !strings.Contains(stderr.String(), "must be an http:// or https:// URL") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
