package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// copyExample copies examples/NAME into a temporary directory.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

type lintFinding struct {
	Rule, Service, Message string
	Exempted               bool
}

func lintJSON(t *testing.T, dir string) []lintFinding {
	t.Helper()
	code, out, errs := run(t, "lint", "--format", "json", "--host-memory", "64GiB", dir)
	if code == ExitError {
		t.Fatalf("lint after fix: exit %d: %s", code, errs)
	}
	var doc struct {
		Findings []lintFinding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Findings
}

// insecureFlags are the values examples/insecure needs for every edit.
var insecureFlags = []string{"--unsafe",
	"--tier", "app", "--tier", "traefik=gateway", "--tier", "node-exporter=infra",
	"--memory", "256MiB", "--memory", "db=1GiB", "--user", "65534:65534", "--tmpfs", "/tmp"}

// TestFixInsecureExampleUnsafe is the proof on the bundled example:
// after fix --unsafe with the values it needs, lint reports only findings
// that need a human (a capability, a host namespace, a published port, a
// credential taken from the host environment...), the credentials live in
// 0600 files, and no output ever shows them.
func TestFixInsecureExampleUnsafe(t *testing.T) {
	dir := copyExample(t, "insecure")
	before := lintJSON(t, dir)
	code, out, errs := run(t, append(append([]string{"fix"}, insecureFlags...), dir)...)
	if code != ExitOK {
		t.Fatalf("fix: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out+errs, "changeme") {
		t.Errorf("fix printed a secret value:\n%s", out)
	}
	after := lintJSON(t, dir)
	human := map[string]bool{
		"cap-add": true, "privileged": true, "host-namespaces": true, "host-devices": true, "security-profile": true,
		"published-ports": true, "healthcheck": true, "metrics-endpoint": true, "image-pinned": true,
		"infra-net": true, "traefik-tls": true, "secrets-in-env": true,
	}
	left := map[string]int{}
	for _, f := range after {
		if f.Exempted {
			continue
		}
		left[f.Rule]++
		if !human[f.Rule] {
			t.Errorf("lint still reports %s for %s after fix --unsafe: %s", f.Rule, f.Service, f.Message)
		}
		if f.Rule == "secrets-in-env" && !strings.Contains(f.Message, "host environment") {
			t.Errorf("a literal credential was left in place: %s", f.Message)
		}
	}
	if len(after) >= len(before) {
		t.Errorf("%d findings before, %d after", len(before), len(after))
	}
	t.Logf("examples/insecure: %d findings before, %d after fix --unsafe; left: %v", len(before), len(after), left)
	compose, _ := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if bytes.Contains(compose, []byte("changeme")) {
		t.Error("the credential is still in compose.yaml")
	}
	for _, name := range []string{"app_db_password", "db_postgres_password"} {
		p := filepath.Join(dir, "secrets", name+".txt")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
		if b, _ := os.ReadFile(p); string(b) != "changeme" {
			t.Errorf("%s holds %q", p, b)
		}
	}
	for _, c := range []string{"# A typical home-lab stack", "# most of SPEC-SYS-01."} {
		if !bytes.Contains(compose, []byte(c)) {
			t.Errorf("comment %q lost", c)
		}
	}
	if code, out, _ := run(t, append(append([]string{"fix", "--check"}, insecureFlags...), dir)...); code != ExitOK {
		t.Errorf("a second fix --check exits %d:\n%s", code, out)
	}
}

// TestFixDiffCheckAndJSONChangeNothing: --diff prints a patch, --check
// exits 1, --format json lists the edits; none of them writes, and none
// shows a secret value.
func TestFixDiffCheckAndJSONChangeNothing(t *testing.T) {
	dir := copyExample(t, "insecure")
	file := filepath.Join(dir, "compose.yaml")
	orig, _ := os.ReadFile(file)

	code, out, errs := run(t, append(append([]string{"fix", "--diff"}, insecureFlags...), dir)...)
	if code != ExitOK || !strings.Contains(out, "+    <<: *security-baseline\n") || !strings.Contains(out, "-    user: \"0:0\"\n") {
		t.Errorf("--diff: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out+errs, "changeme") {
		t.Errorf("--diff shows a secret value:\n%s", out)
	}
	if code, out, _ := run(t, "fix", "--check", dir); code != ExitFindings || !strings.Contains(out, "would fix") {
		t.Errorf("--check: exit %d, want %d\n%s", code, ExitFindings, out)
	}
	code, out, _ = run(t, append(append([]string{"fix", "--check", "--format", "json"}, insecureFlags...), dir)...)
	if code != ExitFindings {
		t.Errorf("--check --format json: exit %d", code)
	}
	var doc struct {
		Applying bool `json:"applying"`
		Edits    []struct {
			File, Service, Rule, Before, After, Reason string
			Line                                       int
			Safe, Applied                              bool
		} `json:"edits"`
		Summary struct {
			Applied map[string]int `json:"applied"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if doc.Applying || len(doc.Edits) == 0 || doc.Summary.Applied["no-new-privileges"] != 1 {
		t.Errorf("json: applying=%v, %d edits, applied %v", doc.Applying, len(doc.Edits), doc.Summary.Applied)
	}
	rules := map[string]bool{}
	for _, e := range doc.Edits {
		rules[e.Rule] = true
		if e.File == "" || e.Rule == "" || e.Applied && e.After == "" {
			t.Errorf("json edit lacks fields: %+v", e)
		}
		if e.Rule == "no-new-privileges" && !e.Safe || e.Rule == "docker-socket" && e.Safe {
			t.Errorf("json edit %s: safe=%v", e.Rule, e.Safe)
		}
	}
	if strings.Contains(out, "changeme") {
		t.Error("--format json shows a secret value")
	}
	var got []string
	for r := range rules {
		got = append(got, r)
	}
	sort.Strings(got)
	t.Logf("rules with edits: %v", got)
	if now, _ := os.ReadFile(file); !bytes.Equal(now, orig) {
		t.Error("--diff, --check or --format json with --check changed the file")
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets")); err == nil {
		t.Error("a secret file was written without applying")
	}
}

// TestFixKeepsModeAndSymlink: the file keeps its mode, and a symbolic link
// is written through, not replaced by a file.
func TestFixKeepsModeAndSymlink(t *testing.T) {
	dir := copyExample(t, "insecure")
	real := filepath.Join(dir, "real.yaml")
	if err := os.Rename(filepath.Join(dir, "compose.yaml"), real); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(real, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.yaml", filepath.Join(dir, "compose.yaml")); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := run(t, "fix", filepath.Join(dir, "compose.yaml")); code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	fi, err := os.Lstat(filepath.Join(dir, "compose.yaml"))
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("compose.yaml is no longer a symbolic link (%v)", err)
	}
	fi, _ = os.Stat(real)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(real); !bytes.Contains(b, []byte("no-new-privileges:true")) {
		t.Error("the link's target was not fixed")
	}
}

// TestFixPutsBackWhatNoLongerLoads: compose refuses pids_limit next to a
// deploy.resources.limits block that an extended base brings (their pids
// must agree). Fix cannot see the base's block from the service, so it
// writes, loads the project again, finds it broken and puts the file back.
func TestFixPutsBackWhatNoLongerLoads(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("base.yaml", "services:\n  base:\n    image: nginx:1.27\n    security_opt: [no-new-privileges:true]\n    deploy:\n      resources:\n        limits:\n          cpus: \"0.5\"\n")
	orig := "services:\n  web:\n    extends:\n      file: base.yaml\n      service: base\n"
	write("compose.yaml", orig)
	code, out, errs := run(t, "fix", "--rule", "pids-limit", filepath.Join(dir, "compose.yaml"))
	if code != ExitError || !strings.Contains(errs, "put back") {
		t.Errorf("exit %d, stderr %q; want exit 2 and the rollback named\n%s", code, errs, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "compose.yaml")); string(b) != orig {
		t.Errorf("compose.yaml was not put back:\n%s", b)
	}
}

func TestFixFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fix", "--diff", "--check"}, "choose one"},
		{[]string{"fix", "--memory", "lots"}, "not a memory size"},
		{[]string{"fix", "--tmpfs", "tmp"}, "not an absolute path"},
		{[]string{"fix", "--format", "sarif"}, "unknown format"},
		{[]string{"fix", "--rule", "nosuch"}, "unknown rule"},
		{[]string{"fix", "--memory-table", "/nonexistent"}, "--memory-table"},
		{[]string{"fix", "no/such/dir"}, "no/such/dir"},
	} {
		code, _, errs := run(t, tc.args...)
		if code != ExitError || !strings.Contains(errs, tc.want) {
			t.Errorf("hyhome %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}
