package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/testenv"
)

// The built binary, as an operator or CI runs it: flags, the JSON report
// written with -o, and the exit status.
func TestBinaryVerifyJSONReport(t *testing.T) {
	bin, img := hyhomeCanaryImage(t)
	scope := newToken()
	loki := startLoki(t)
	startShip(t, loki, scope)
	dockertest.Run(t, dockertest.Spec{Name: "ac01", Image: dockertest.Build(t).NonRoot,
		Labels: map[string]string{scopeLabel: scope, "hy-home.tier": "gateway"},
		Host:   container.HostConfig{SecurityOpt: []string{"no-new-privileges:true"}}})

	out := filepath.Join(t.TempDir(), "verify.json")
	cmd := exec.Command(bin, "verify", "--check", "AC-SPEC-01,AC-SPEC-02,NFR-OBS-01",
		"--loki-url", loki.URL(), "--canary-image", img, "--canary-label", scopeLabel+"="+scope, "--canary-label", dockertest.LabelKey+"="+dockertest.RunID,
		"--filter", "label="+scopeLabel+"="+scope, "--trials", "2", "--format", "json", "-o", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hyhome verify: %v\n%s", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout with -o: %q", stdout.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Engine report.CheckEngine
		Checks []struct {
			ID, Status, Summary string
			Latency             *LatencyResult
		}
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("%v:\n%s", err, data)
	}
	if len(rep.Checks) != 3 {
		t.Fatalf("checks: %s", data)
	}
	for _, c := range rep.Checks {
		if c.Status != string(report.CheckPass) {
			t.Errorf("%s %s: %s", c.ID, c.Status, c.Summary)
		}
	}
	if l := rep.Checks[1].Latency; l == nil || len(l.Trials) != 2 || l.Worst.N != 2 {
		t.Errorf("latency %+v", l)
	}
	if rep.Engine.NCPU == 0 || rep.Engine.MemTotal == 0 || !strings.HasPrefix(rep.Engine.Clock, "same host") {
		t.Errorf("engine %+v", rep.Engine)
	}
}

// SIGINT in the middle of the load window: verify stops, removes its
// canary, and exits 2.
func TestBinaryVerifyInterruptedRemovesCanaries(t *testing.T) {
	bin, img := hyhomeCanaryImage(t)
	scope := newToken()
	startInfra(t, scope, "sigint", 32<<20)
	cmd := exec.Command(bin, "verify", "--check", "AC-SPEC-03", "--load-duration", "2m",
		"--canary-image", img, "--canary-label", scopeLabel+"="+scope, "--canary-label", dockertest.LabelKey+"="+dockertest.RunID, "--filter", "label="+scopeLabel+"="+scope)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})

	c := dockertest.Client(t)
	f := client.Filters{}
	f.Add("label", scopeLabel+"="+scope)
	f.Add("label", LabelCanary+"=load")
	running := func() int {
		list, err := c.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	deadline := time.Now().Add(testenv.Hang)
	for running() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no load canary appeared:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("exit %v, want 2\n%s", err, stderr.String())
		}
	case <-time.After(testenv.Hang):
		t.Fatalf("verify did not stop on SIGINT:\n%s", stderr.String())
	}
	if n := running(); n != 0 {
		t.Errorf("%d load canary container(s) left after SIGINT", n)
	}
	if !strings.Contains(stderr.String(), "interrupted") || !strings.Contains(stdout.String(), "AC-SPEC-03  ERROR") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}
