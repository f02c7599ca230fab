// End-to-end tests: they build the hyhome binary and run it as users do.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/policy"
)

// TestMain removes what the tests left on the engine and the binary built
// for them (in dockertest.TempDir).
func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, dir string, args ...string) result {
	t.Helper()
	// Built once per process, with no deadline of its own.
	cmd := exec.Command(dockertest.ProcessBinary(t, "./cmd/hyhome", "hyhome"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func repo(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestLintExitCodes: 0 clean, 1 findings at or above --fail-on, 2 bad input
// with one error line on stderr and nothing on stdout.
func TestLintExitCodes(t *testing.T) {
	root := repo(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // substring; "" means stdout must be empty
		stderr string
	}{
		{"clean", []string{"lint", "examples/hardened"}, 0, "0 errors, 0 warnings", ""},
		{"findings", []string{"lint", "examples/insecure"}, 1, "privileged", ""},
		{"fail-on info still fails", []string{"lint", "--fail-on", "info", "examples/insecure"}, 1, "", ""},
		{"rule filter below threshold", []string{"lint", "--rule", "image-pinned", "examples/insecure"}, 0, "image-pinned", ""},
		{"malformed", []string{"lint", "internal/compose/testdata/invalid/malformed.yaml"}, 2, "", "malformed.yaml:4: invalid YAML"},
		{"missing file", []string{"lint", "no/such/compose.yaml"}, 2, "", "no/such/compose.yaml"},
		{"no compose file in dir", []string{"lint", "docs"}, 2, "", "no compose file found"},
		{"bad format", []string{"lint", "--format", "yaml", "examples/hardened"}, 2, "", "unknown format"},
		{"bad host memory", []string{"lint", "--host-memory", "lots", "examples/hardened"}, 2, "", "--host-memory"},
		{"unknown rule", []string{"lint", "--rule", "nope", "examples/hardened"}, 2, "", `unknown rule "nope"`},
		{"duplicate services block", []string{"lint", "internal/compose/testdata/invalid/duplicate-services-block.yaml"}, 2, "", `duplicate-services-block.yaml:6: invalid YAML: mapping key "services" already defined at line 3`},
		{"duplicate service", []string{"lint", "--validate", "internal/compose/testdata/invalid/duplicate-service.yaml"}, 2, "", `duplicate-service.yaml:4: invalid YAML: mapping key "web" already defined`},
		{"file over --max-file-size", []string{"lint", "--max-file-size", "100", "examples/hardened/compose.yaml"}, 2, "", "compose.yaml: larger than the 100 bytes limit on compose files (--max-file-size raises it)"},
		{"bad --max-file-size", []string{"lint", "--max-file-size", "big", "examples/hardened"}, 2, "", "--max-file-size"},
		{"required variable", []string{"lint", "internal/compose/testdata/invalid/required-variable.yaml"}, 2, "", "WEB_TAG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, root, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.stdout == "" && tc.code == 2 && r.stdout != "" {
				t.Errorf("a failed run printed a partial report:\n%s", r.stdout)
			}
			if tc.stdout != "" && !strings.Contains(r.stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, r.stdout)
			}
			if tc.stderr != "" {
				if !strings.Contains(r.stderr, tc.stderr) {
					t.Errorf("stderr lacks %q: %s", tc.stderr, r.stderr)
				}
				if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
					t.Errorf("error is %d lines, want one: %s", n+1, r.stderr)
				}
			}
		})
	}
}

// TestLintDiscoversDefaultFiles: with no argument, lint reads compose.yaml
// and its override from the working directory, as docker compose does.
func TestLintDiscoversDefaultFiles(t *testing.T) {
	r := run(t, filepath.Join(repo(t), "internal", "compose", "testdata", "discover"), "lint", "--format", "json", "--rule", "privileged")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (the override makes web privileged): %s", r.code, r.stderr)
	}
	var rep struct {
		Findings []struct {
			File string `json:"file"`
			Line int    `json:"line"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].File != "compose.override.yaml" || rep.Findings[0].Line != 3 {
		t.Errorf("findings = %+v, want compose.override.yaml:3", rep.Findings)
	}
}

// TestLintJSONReport checks the documented JSON fields.
func TestLintJSONReport(t *testing.T) {
	r := run(t, repo(t), "lint", "--format", "json", "examples/insecure")
	var rep struct {
		Findings []map[string]any `json:"findings"`
		Summary  map[string]int   `json:"summary"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if len(rep.Findings) == 0 {
		t.Fatal("no findings")
	}
	for _, k := range []string{"rule", "requirements", "severity", "service", "file", "line", "message", "remediation", "exempted"} {
		if _, ok := rep.Findings[0][k]; !ok {
			t.Errorf("finding lacks %q: %v", k, rep.Findings[0])
		}
	}
	for _, k := range []string{"files", "services", "errors", "warnings", "exempted"} {
		if _, ok := rep.Summary[k]; !ok {
			t.Errorf("summary lacks %q", k)
		}
	}
	if rep.Summary["services"] != 5 || rep.Summary["files"] != 1 {
		t.Errorf("summary = %v, want 5 services in 1 file", rep.Summary)
	}
}

// TestLintSARIF checks what GitHub code scanning needs from the built
// binary: rules, levels, repository-relative URIs, lines. The format itself
// is validated against the SARIF 2.1.0 schema in internal/report.
func TestLintSARIF(t *testing.T) {
	root := repo(t)
	out := filepath.Join(t.TempDir(), "hyhome.sarif")
	r := run(t, root, "lint", "--format", "sarif", "-o", out, "examples/insecure")
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("exit %d stdout %q, want 1 and the report only in -o", r.code, r.stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []map[string]any `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2.1.0" || len(doc.Runs) != 1 {
		t.Fatalf("version %q, %d runs", doc.Version, len(doc.Runs))
	}
	run0 := doc.Runs[0]
	if len(run0.Tool.Driver.Rules) < 25 {
		t.Errorf("%d rules in the driver, want the whole catalogue", len(run0.Tool.Driver.Rules))
	}
	loc := run0.Results[0].Locations[0].PhysicalLocation
	if loc.ArtifactLocation.URI != "examples/insecure/compose.yaml" || loc.Region.StartLine == 0 {
		t.Errorf("location = %s line %d, want a repository-relative URI with a line", loc.ArtifactLocation.URI, loc.Region.StartLine)
	}
}

func TestLintJUnit(t *testing.T) {
	r := run(t, repo(t), "lint", "--format", "junit", "examples/insecure")
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal([]byte(r.stdout), &suites); err != nil {
		t.Fatalf("not JUnit XML: %v", err)
	}
	if n := len(policy.Default.Rules()); suites.Tests != 5*n || suites.Failures == 0 {
		t.Errorf("tests=%d failures=%d, want 5 services × %d rules and some failures", suites.Tests, suites.Failures, n)
	}
}

// TestLintDirectoryReportsBrokenFilesInEveryFormat: linting a directory
// with one broken project lints the other and reports the broken one as an
// error entry of every format, with exit status 2 (issue 12, item 4).
func TestLintDirectoryReportsBrokenFilesInEveryFormat(t *testing.T) {
	root := repo(t)
	dir := "internal/lint/testdata/mixed"
	broken := "internal/lint/testdata/mixed/broken/compose.yaml"
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"text", []string{"runs privileged", "Not linted (could not be loaded):", broken + ":6: error  invalid YAML", "1 file not loaded"}},
		{"json", []string{`"rule":"privileged"`, `"errors": [{"file":"` + broken + `","line":6,"message":"invalid YAML`}},
		{"sarif", []string{`"ruleId":"privileged"`, `"executionSuccessful":false,"toolExecutionNotifications":[{"level":"error","message":{"text":"invalid YAML`, `"uri":"` + broken + `"`}},
		// One test case per rule of the catalogue for the linted service, and
		// one for the file that did not load.
		{"junit", []string{`<failure message=`, fmt.Sprintf(`<testsuites name="hyhome lint" tests="%d" failures="11" errors="1"`, len(policy.Default.Rules())+1), `<error message="invalid YAML`, broken + `:6: invalid YAML`}},
		{"markdown", []string{"[privileged](docs/rules.md#privileged)", "## Not linted (could not be loaded)", "| `" + broken + ":6` | invalid YAML"}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			r := run(t, root, "lint", "--format", tc.format, dir)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("report lacks %q:\n%s", w, r.stdout)
				}
			}
			if !strings.Contains(r.stderr, broken+":6: invalid YAML") {
				t.Errorf("stderr lacks the error: %s", r.stderr)
			}
		})
	}
	// The same file named on the command line stops the run, as before.
	r := run(t, root, "lint", broken)
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "compose.yaml:6: invalid YAML") {
		t.Errorf("named broken file: exit %d stdout %q stderr %q, want 2, nothing, one error line", r.code, r.stdout, r.stderr)
	}
}

func TestRulesDocIsCurrent(t *testing.T) {
	r := run(t, repo(t), "rules", "--format", "markdown")
	want, err := os.ReadFile(filepath.Join(repo(t), "docs", "rules.md"))
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(want) {
		t.Error("docs/rules.md differs from `hyhome rules --format markdown`: run `make docs`")
	}
}

// TestDockerfileBuildsScratchImage builds the project's image the way
// `make image` does, on an engine that cannot pull anything, and runs it.
func TestDockerfileBuildsScratchImage(t *testing.T) {
	c := dockertest.Client(t)
	root := repo(t)
	tag := "hyhome-test/hyhome:" + dockertest.RunID
	// The Dockerfile copies bin/hyhome; build that context in a temp dir so
	// the test never touches the working tree's bin/.
	ctxDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ctxDir, "bin", "rootfs", "var", "lib", "hyhome", "ship"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "bin", "hyhome"), "./cmd/hyhome")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	df, _ := os.ReadFile(filepath.Join(root, "Dockerfile"))
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), df, 0o644)
	// --no-cache: a concurrent test process's identical build must not hand
	// this one a cached layer that it is removing.
	out, err := exec.Command("docker", "build", "-q", "--no-cache", "--label", dockertest.LabelKey+"="+dockertest.RunID, "-t", tag, ctxDir).CombinedOutput()
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		c.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	// The builds above have no deadline but the test binary's; the engine
	// calls below get one each that only a hang trips.
	ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
	defer cancel()
	ins, err := c.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if ins.Config.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", ins.Config.User)
	}
	// ship's state directory exists and belongs to the image's user, so a
	// fresh named volume mounted there is writable.
	created, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: tag, Labels: map[string]string{dockertest.LabelKey: dockertest.RunID}}})
	if err != nil {
		t.Fatal(err)
	}
	defer dockertest.RemoveContainer(c, created.ID)
	cp, err := c.CopyFromContainer(ctx, created.ID, client.CopyFromContainerOptions{SourcePath: "/var/lib/hyhome/ship"})
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := tar.NewReader(cp.Content).Next()
	cp.Content.Close()
	if err != nil || !hdr.FileInfo().IsDir() || hdr.Uid != 65532 || hdr.Gid != 65532 {
		t.Errorf("/var/lib/hyhome/ship: %+v, %v; want a directory owned by 65532:65532", hdr, err)
	}
	run := exec.Command("docker", "run", "--rm", "--label", dockertest.LabelKey+"="+dockertest.RunID, tag, "rules", "--format", "json")
	outb, err := run.Output()
	if err != nil {
		t.Fatalf("docker run: %v", err)
	}
	if !strings.Contains(string(outb), `"no-new-privileges"`) {
		t.Errorf("image did not print the catalogue: %s", outb)
	}
}

func TestHealthcheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer bad.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		url    string
		code   int
		stderr string
	}{
		{ok.URL, 0, ""},
		{bad.URL, 1, "503 Service Unavailable"},
		{gone.URL, 1, "connection refused"},
		{"::not a url", 2, "healthcheck"},
	} {
		r := run(t, ".", "healthcheck", "--timeout", "2s", tc.url)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("healthcheck %s: exit %d stderr %q, want %d and %q", tc.url, r.code, r.stderr, tc.code, tc.stderr)
		}
	}
}
