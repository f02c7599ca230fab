// Package promtest runs the reference stack's alert path for tests: the
// Prometheus and Alertmanager found on PATH (Debian's packages in CI) on
// loopback ports, configured with the stack's own deploy/prometheus and
// deploy/alertmanager files, rewritten only where a loopback run must differ
// (addresses, file paths, discovery, short intervals). deploy's alert path
// test and hyhome verify's tests share it.
//
// Every substitution checks that the stack's file still has what it
// replaces, so a change to those files that a test no longer matches fails
// the test instead of silently testing something else. Processes die with
// the test binary and are stopped at cleanup. It is test support: nothing
// outside _test.go files may import it.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/testenv"
)

// InCI reports whether missing tools must fail the test instead of skipping
// it: CI installs them (.ci/run), a laptop may not have them.
func InCI() bool { return testenv.InCI() }

// Tool returns the path of the first of names found on PATH. Without it the
// test is skipped, except under CI=true where that is a failure.
func Tool(t testing.TB, why string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	testenv.Missing(t, "%s not found on PATH (%s); install Debian's prometheus and prometheus-alertmanager packages", strings.Join(names, " or "), why)
	return ""
}

// DeployDir is the repository's deploy/ directory.
func DeployDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy")
}

// StartProcess runs bin with its output in dir/<name>.log. The process dies
// with the test binary (Pdeathsig) and is stopped at cleanup, pass or fail;
// on failure the end of its log is printed.
func StartProcess(t testing.TB, dir, name, bin string, env []string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- end of %s log ---\n%s", name, b)
		}
	})
}

// FreeAddr returns a loopback address nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WaitFor calls check every 200 ms until it returns nil, failing the test
// after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	t.Fatalf("waiting for %s (%v): %v", what, timeout, err)
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// WaitReady waits until u answers 200.
func WaitReady(t testing.TB, u string) {
	t.Helper()
	WaitFor(t, 30*time.Second, u, func() error {
		resp, err := httpClient.Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// Value runs an instant query on the Prometheus at addr that must return
// exactly one sample, and returns its value as Prometheus formats it.
func Value(addr, query string) (string, error) {
	resp, err := httpClient.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if body.Status != "success" || len(body.Data.Result) != 1 {
		return "", errors.New("want one sample, got " + fmt.Sprint(len(body.Data.Result)))
	}
	v, _ := body.Data.Result[0].Value[1].(string)
	return v, nil
}

// Versions returns the first line of `bin --version` for each binary, for
// test logs: which Prometheus and Alertmanager a result came from.
func Versions(bins ...string) []string {
	var out []string
	for _, bin := range bins {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b, _ := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
		cancel()
		first, _, _ := strings.Cut(string(b), "\n")
		out = append(out, bin+": "+first)
	}
	return out
}
