package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/cli"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// hyhome runs the command in-process and returns its exit code and output.
func hyhome(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cli.Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "--check", "AC-SPEC-99"}, `hyhome: --check: unknown check "AC-SPEC-99" (want one of AC-SPEC-01)`},
		{[]string{"audit", "--check", "AC-SPEC-01", "--format", "sarif"}, "hyhome: --format sarif: --check writes text, json, junit or markdown"},
		{[]string{"audit", "--check", "AC-SPEC-01", "--strict"}, "hyhome: --strict does not apply to --check AC-SPEC-01 (the check has no exemptions and passes or fails)"},
		{[]string{"audit", "--interval", "5s"}, "hyhome: --interval applies only with --serve"},
		{[]string{"audit", "--serve", ":0", "--format", "json"}, "hyhome: --format does not apply to --serve (the exporter serves metrics, not a report)"},
		{[]string{"audit", "--filter", "status=running"}, `hyhome: --filter: invalid filter "status=running": key "status" is not one of label, name, id`},
		{[]string{"audit", "--fail-on", "fatal"}, `hyhome: --fail-on: unknown severity "fatal" (want info, warning or error)`},
		{[]string{"audit", "extra"}, `hyhome: unknown command "extra" for "hyhome audit"`},
	} {
		code, out, errs := hyhome(tc.args...)
		if code != 2 || out != "" || strings.TrimSpace(errs) != tc.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// TestCLIEngineUnreachable: one clear line, exit 2, nothing on stdout.
func TestCLIEngineUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "no-engine.sock")
	for _, args := range [][]string{
		{"audit", "--host", "unix://" + sock},
		{"audit", "--host", "unix://" + sock, "--check", "AC-SPEC-01"},
		{"audit", "--host", "unix://" + sock, "--serve", "127.0.0.1:0"},
	} {
		code, out, errs := hyhome(args...)
		want := fmt.Sprintf("hyhome: docker engine at unix://%s (flag) is not reachable: ", sock)
		if code != 2 || out != "" || !strings.HasPrefix(errs, want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// buildHyhome builds the real binary once for the tests that need a process.
func buildHyhome(t *testing.T) string {
	t.Helper()
	return dockertest.ProcessBinary(t, "./cmd/hyhome", "hyhome")
}

// TestCLIPermissionDenied runs the binary as an unprivileged user against the
// root-owned engine socket: one line naming the cause, exit 2.
func TestCLIPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root to drop to another user (CI runs as root)")
	}
	setpriv, err := exec.LookPath("setpriv")
	testenv.Require(t, err, "setpriv (Debian package util-linux)")
	const sock = "/var/run/docker.sock"
	_, err = os.Stat(sock)
	testenv.Require(t, err, "the local engine socket")
	bin := buildHyhome(t)
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", bin, "audit", "--host", "unix://"+sock)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := cmd.ProcessState.ExitCode()
	errs := errb.String()
	if code != 2 || out.Len() != 0 || !strings.Contains(errs, "permission denied") || strings.Count(errs, "\n") != 1 ||
		!strings.HasSuffix(errs, "(is this user in the docker group, or is DOCKER_HOST pointing at a socket it may use?)\n") {
		t.Errorf("exit %d (%v), stdout %q, stderr %q", code, err, out.String(), errs)
	}
	t.Logf("stderr: %s", errs)
}

// cliScope starts containers for the CLI tests, labelled so that the
// commands select only them.
func cliScope(t *testing.T) (label string, img dockertest.Images) {
	img = dockertest.Build(t)
	return "hy-home.test.cli=" + dockertest.RunID + "-" + strings.ReplaceAll(t.Name(), "/", "-"), img
}

func baseline(img dockertest.Images, name, label string) dockertest.Spec {
	k, v, _ := strings.Cut(label, "=")
	pids := int64(64)
	return dockertest.Spec{
		Name: name, Image: img.NonRoot, Cmd: []string{"sleep"},
		Labels:      map[string]string{k: v, "hy-home.tier": "app", "hy-home.metrics.port": "9100"},
		Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/testprog", "probe"}, Interval: time.Hour},
		Host: container.HostConfig{
			SecurityOpt: []string{"no-new-privileges:true"}, CapDrop: []string{"ALL"}, ReadonlyRootfs: true,
			Resources: container.Resources{Memory: 64 << 20, PidsLimit: &pids},
		},
	}
}

// TestCLIAuditReportsAndExitCodes runs `hyhome audit` as users do: the text
// report names the container, JSON carries the runtime source and compose
// labels, --fail-on decides the exit code, and --check AC-SPEC-01 passes and
// fails on real containers.
//
// The closing line counts Swarm services on a manager only, so the test
// holds the Swarm lock and expects the line for the membership it holds.
func TestCLIAuditReportsAndExitCodes(t *testing.T) {
	label, img := cliScope(t)
	filter := "--filter=label=" + label
	scope := "1 container"
	if dockertest.SwarmState(t, dockertest.Client(t)).ControlAvailable {
		scope += ", 0 Swarm services"
	}

	// Only a warning (no health check): exit 0 by default, 1 at --fail-on warning.
	warn := baseline(img, "cli-warn", label)
	warn.Healthcheck = nil
	warn.Labels["com.docker.compose.project"] = "shop"
	warn.Labels["com.docker.compose.service"] = "web"
	warnID, warnName := dockertest.Run(t, warn)
	code, out, errs := hyhome("audit", filter)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("container %s (%s)\n  web\n", warnName, warnID[:12])) || !strings.Contains(out, "healthcheck") {
		t.Errorf("warning only: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	if !strings.HasSuffix(out, "audit: "+scope+": 0 errors, 1 warning, 0 exempted\n") {
		t.Errorf("summary line:\n%s", out)
	}
	if code, _, _ := hyhome("audit", filter, "--fail-on", "warning"); code != 1 {
		t.Errorf("--fail-on warning: exit %d, want 1", code)
	}

	code, out, _ = hyhome("audit", filter, "--format", "json")
	var doc struct {
		Command  string
		Findings []struct {
			Rule, Source, Service, Project, Kind string
		}
		Summary struct{ Services, Warnings int }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json report: %v\n%s", err, out)
	}
	if code != 0 || doc.Command != "audit" || len(doc.Findings) != 1 || doc.Summary.Services != 1 {
		t.Fatalf("json: exit %d %+v", code, doc)
	}
	if f := doc.Findings[0]; f.Source != fmt.Sprintf("container %s (%s)", warnName, warnID[:12]) || f.Service != "web" || f.Project != "shop" || f.Kind != "container" {
		t.Errorf("json finding %+v", f)
	}

	// AC-SPEC-01 passes: the one labelled container has no-new-privileges:true.
	code, out, _ = hyhome("audit", filter, "--check", "AC-SPEC-01")
	if code != 0 || !strings.Contains(out, "PASS  "+warnName+" (") || !strings.Contains(out, "\nAC-SPEC-01  PASS   Security Audit: all 1 labelled container(s) include no-new-privileges:true\n") ||
		!regexp.MustCompile(`\naudit: 1 check: 1 passed in [0-9.]+ s\n$`).MatchString(out) {
		t.Errorf("AC-SPEC-01 pass: exit %d:\n%s", code, out)
	}

	// An error finding: exit 1, and AC-SPEC-01 now fails on it.
	bad := baseline(img, "cli-bad", label)
	bad.Host.SecurityOpt = nil
	_, badName := dockertest.Run(t, bad)
	code, out, _ = hyhome("audit", filter)
	if code != 1 || !strings.Contains(out, "no-new-privileges") || !strings.Contains(out, "How to fix:") {
		t.Errorf("error finding: exit %d:\n%s", code, out)
	}
	code, out, _ = hyhome("audit", filter, "--check", "AC-SPEC-01")
	if code != 1 || !regexp.MustCompile(`FAIL  `+regexp.QuoteMeta(badName)+` \([0-9a-f]{12}\)\s+tier=app\s+\[\]\s+no-new-privileges:true missing`).MatchString(out) {
		t.Errorf("AC-SPEC-01 fail: exit %d:\n%s", code, out)
	}
	t.Logf("hyhome audit --check AC-SPEC-01:\n%s", out)

	// No labelled container at all: the check fails, and says why.
	code, out, _ = hyhome("audit", "--filter=label="+label+"-nothing", "--check", "AC-SPEC-01")
	if code != 1 || !strings.Contains(out, "AC-SPEC-01  FAIL   Security Audit: no running container carries hy-home.tier") {
		t.Errorf("AC-SPEC-01 empty: exit %d:\n%s", code, out)
	}

	// The same report as verify's, in every format: JSON says the verdict.
	code, out, _ = hyhome("audit", filter, "--check", "AC-SPEC-01", "--format", "json")
	var checks struct {
		Checks []struct{ ID, Status string }
	}
	if err := json.Unmarshal([]byte(out), &checks); code != 1 || err != nil || len(checks.Checks) != 1 || checks.Checks[0].Status != "FAIL" {
		t.Errorf("AC-SPEC-01 json: exit %d, %v:\n%s", code, err, out)
	}

	// -o writes the report to a file, stdout stays empty.
	dest := filepath.Join(t.TempDir(), "audit.sarif")
	code, out, _ = hyhome("audit", filter, "--format", "sarif", "-o", dest)
	if b, err := os.ReadFile(dest); code != 1 || out != "" || err != nil || !regexp.MustCompile(`"ruleId":\s*"no-new-privileges"`).Match(b) {
		t.Errorf("sarif -o: exit %d stdout %q err %v", code, out, err)
	}
}

// TestCLIServeGracefulShutdown runs `hyhome audit --serve` as a process,
// scrapes it, and stops it with SIGTERM.
func TestCLIServeGracefulShutdown(t *testing.T) {
	label, img := cliScope(t)
	_, name := dockertest.Run(t, func() dockertest.Spec {
		s := baseline(img, "cli-serve", label)
		s.Host.PidMode = "host"
		return s
	}())
	bin := buildHyhome(t)
	cmd := exec.Command(bin, "audit", "--serve", "127.0.0.1:0", "--filter=label="+label, "--interval", "1h")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr := make(chan string, 1)
	var logs bytes.Buffer
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`msg="audit exporter listening" addr=(\S+)`)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { <-logDone; exited <- cmd.Wait() }()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(testenv.Hang):
		t.Fatalf("exporter did not start:\n%s", logs.String())
	}

	want := fmt.Sprintf(`hyhome_findings{container=%q,rule="host-namespaces",service="",severity="error",tier="app"} 1`, name)
	deadline := time.Now().Add(testenv.Hang)
	var body string
	for {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, want) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in /metrics:\n%s", want, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range []string{"hyhome_build_info{", "hyhome_audit_last_success_timestamp_seconds ", "go_goroutines ", `hyhome_acceptance_check_passed{check="AC-SPEC-01"} 1`} {
		if !strings.Contains(body, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Hang)
	defer cancel()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-ctx.Done():
		t.Fatalf("no exit within %v of SIGTERM:\n%s", testenv.Hang, logs.String())
	}
	if !strings.Contains(logs.String(), `msg="audit exporter stopped"`) {
		t.Errorf("no stop log:\n%s", logs.String())
	}
}
