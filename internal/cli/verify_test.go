package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/verify"
)

func verifyConfig(t *testing.T, args ...string) (verify.Config, error) {
	t.Helper()
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	f := &verifyFlags{}
	cmd := verifyCommand(a, f)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return f.config(cmd)
}

func TestVerifyFlagsBuildTheConfig(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := verifyConfig(t, "--check", "nfr-res-01,AC-SPEC-03", "--load-target", "75", "--load-duration", "10s",
		"--canary-label", "team=infra", "--filter", "label=com.docker.compose.project=hyhome",
		"--prometheus-url", "http://prom:9090", "--basic-auth-user", "admin", "--basic-auth-password-file", pw,
		"--no-silence", "--trials", "7", "--memory-source", "engine")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Checks, ",") != "NFR-RES-01,AC-SPEC-03" || cfg.LoadTarget != 0.75 || cfg.LoadDuration != 10*time.Second ||
		cfg.CanaryLabels["team"] != "infra" || cfg.Filters[0] != "label=com.docker.compose.project=hyhome" ||
		cfg.BasicAuthPassword != "s3cret" || cfg.Silence >= 0 || cfg.Trials != 7 || cfg.MemorySource != "engine" || cfg.CanaryImage != verify.DefaultCanaryImage || cfg.Version != Version {
		t.Errorf("config %+v", cfg)
	}
}

func TestVerifyUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--check", "AC-SPEC-02"}, "--check names checks that cannot run: AC-SPEC-02: no Loki URL (--loki-url)"},
		{[]string{"--check", "ALERTING", "--alertmanager-url", "http://am:9093"}, "no Prometheus URL (--prometheus-url)"},
		{[]string{"--check", "AC-SPEC-9"}, `--check: unknown check "AC-SPEC-9"`},
		{[]string{"--format", "sarif"}, `--format: unknown format "sarif"`},
		{[]string{"--memory-source", "cadvisor"}, `memory source "cadvisor" is not one of engine, prometheus`},
		{[]string{"--canary-label", "novalue"}, `--canary-label "novalue": want KEY=VALUE`},
		{[]string{"--filter", "status=running"}, "--filter:"},
		{[]string{"--basic-auth-user", "admin"}, "--basic-auth-user needs --basic-auth-password-file"},
		{[]string{"--basic-auth-password-file", "/nonexistent", "--basic-auth-user", "a"}, "--basic-auth-password-file: open /nonexistent"},
		// Validated by verify itself, before the engine is reached.
		{[]string{"--host", "unix:///nonexistent/docker.sock", "--load-target", "800"}, "--load-target 800: want a percentage between 5 and 100"},
		{[]string{"--host", "unix:///nonexistent/docker.sock", "--trial-timeout", "2s"}, "shorter than AC-SPEC-02's 5s bound"},
		{[]string{"--host", "unix:///nonexistent/docker.sock"}, "docker engine at unix:///nonexistent/docker.sock (flag) is not reachable"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"verify"}, tc.args...), nil, &stdout, &stderr)
		if code != ExitError || !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
			t.Errorf("verify %v: exit %d, stderr %q, stdout %q; want exit 2 and %q", tc.args, code, stderr.String(), stdout.String(), tc.want)
		}
		if n := strings.Count(strings.TrimSpace(stderr.String()), "\n"); n != 0 {
			t.Errorf("verify %v: %d lines on stderr, want one", tc.args, n+1)
		}
	}
}

// By default every check is selected and those without their inputs are
// skipped; named on the command line, they are refused (above).
func TestVerifyDefaultSelectionSkips(t *testing.T) {
	cfg, err := verifyConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Checks) != len(verify.Checks) || len(cfg.Missing(cfg.Checks)) != 3 {
		t.Errorf("checks %v, missing %v", cfg.Checks, cfg.Missing(cfg.Checks))
	}
}

func TestCanaryCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"canary", "--token", "t0k", "--exit", "0"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "token=t0k") {
		t.Errorf("exit %d, %q %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := Main([]string{"canary", "--token", "t0k"}, nil, &stdout, &stderr); code != 1 {
		t.Errorf("crash canary: exit %d, want 1", code)
	}
	stderr.Reset()
	if code := Main([]string{"canary"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--token is required") {
		t.Errorf("no token: exit %d %q", code, stderr.String())
	}
	var help bytes.Buffer
	Main([]string{"--help"}, nil, &help, &help)
	if strings.Contains(help.String(), "canary") || !strings.Contains(help.String(), "verify") {
		t.Errorf("help lists the hidden canary or lacks verify:\n%s", help.String())
	}
}
