package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// The catalogue DESIGN.md requires, under exactly these IDs.
var designIDs = []string{
	"host-namespaces", "privileged", "no-new-privileges", "cap-drop-all", "cap-add", "non-root",
	"secrets-in-env", "secret-target", "bind-mount-readonly", "docker-socket", "infra-net",
	"metrics-endpoint", "published-ports", "traefik-tls", "tier-label", "memory-limit",
	"memory-budget", "baseline-anchor",
	// hardening extras (CIS Docker Benchmark)
	"read-only-rootfs", "pids-limit", "healthcheck", "security-profile", "host-devices", "image-pinned",
}

// TestCatalogueMeta holds every rule to the catalogue's standards.
func TestCatalogueMeta(t *testing.T) {
	rules := policy.Default.Rules()
	for _, id := range designIDs {
		if policy.Default.Get(id) == nil {
			t.Errorf("DESIGN.md rule %q is missing from the catalogue", id)
		}
	}
	for i, r := range rules {
		if i > 0 && rules[i-1].ID >= r.ID {
			t.Errorf("rules are not sorted by ID: %s before %s", rules[i-1].ID, r.ID)
		}
		if !regexp.MustCompile(`^[a-z][a-z0-9-]+$`).MatchString(r.ID) {
			t.Errorf("%s: IDs are lower-case words joined by dashes", r.ID)
		}
		if r.Description == "" || !strings.HasSuffix(r.Description, ".") {
			t.Errorf("%s: description must be a sentence ending with a period: %q", r.ID, r.Description)
		}
		if r.Remediation == "" || !strings.HasSuffix(r.Remediation, ".") {
			t.Errorf("%s: remediation must end with a period: %q", r.ID, r.Remediation)
		}
		if len(r.Requirements) == 0 {
			t.Errorf("%s: no requirement ID", r.ID)
		}
		for _, req := range r.Requirements {
			if _, ok := policy.RequirementByID(req); !ok {
				t.Errorf("%s: requirement %q is not in policy.Requirements", r.ID, req)
			}
		}
		if _, err := os.Stat(filepath.Join("testdata", r.ID)); err != nil {
			t.Errorf("%s: no fixture directory testdata/%s", r.ID, r.ID)
		}
	}
}

// TestTraceabilityReferencesExist checks that every test the traceability
// table names exists, so docs/rules.md never points at nothing.
func TestTraceabilityReferencesExist(t *testing.T) {
	root := filepath.Join("..", "..")
	all := map[string][]policy.TestRef{"every rule": {policy.FixtureTest, policy.CrossSourceTest}}
	for req, refs := range policy.RequirementTests {
		if _, ok := policy.RequirementByID(req); !ok {
			t.Errorf("RequirementTests names unknown requirement %s", req)
		}
		all[req] = refs
	}
	for req, refs := range all {
		for _, ref := range refs {
			name, _, _ := strings.Cut(ref.Test, "/")
			files, _ := filepath.Glob(filepath.Join(root, ref.Package, "*_test.go"))
			found := false
			for _, f := range files {
				b, _ := os.ReadFile(f)
				if regexp.MustCompile(`(?m)^func ` + regexp.QuoteMeta(name) + `\(`).Match(b) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: test %s not found in %s", req, ref.Test, ref.Package)
			}
		}
	}
}

func TestRegistryRefusesDuplicatesAndIncompleteRules(t *testing.T) {
	r := policy.NewRegistry()
	check := func(*workload.Workload, *policy.Env) []policy.Violation { return nil }
	project := func(*workload.Project, *policy.Env) []policy.Violation { return nil }
	create := []policy.Request{policy.RequestCreate}
	if err := r.Register(&policy.Rule{ID: "a", Severity: policy.Error, Check: check, Requests: create}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rule *policy.Rule
		want string
	}{
		{&policy.Rule{ID: "a", Severity: policy.Error, Check: check}, `duplicate rule ID "a"`},
		{&policy.Rule{Severity: policy.Error, Check: check}, "rule without ID"},
		{&policy.Rule{ID: "b", Severity: policy.Error}, "exactly one of Check and CheckProject"},
		{&policy.Rule{ID: "c", Check: check}, "invalid severity"},
		// What the guard judges is declared, and only where it can judge.
		{&policy.Rule{ID: "d", Severity: policy.Error, Check: check}, "must judge create requests"},
		{&policy.Rule{ID: "e", Severity: policy.Error, Check: check, Requests: []policy.Request{policy.RequestExec}}, "must judge create requests"},
		{&policy.Rule{ID: "f", Severity: policy.Error, CheckProject: project, Requests: create}, "a project rule judges no single request"},
		{&policy.Rule{ID: "g", Severity: policy.Error, Check: check, Kinds: []workload.Kind{workload.KindCompose}, Requests: create}, "does not apply to request workloads"},
		{&policy.Rule{ID: "h", Severity: policy.Error, Check: check, Requests: []policy.Request{"create", "delete"}}, `unknown request kind "delete"`},
		{&policy.Rule{ID: "i", Severity: policy.Error, Check: check, Requests: []policy.Request{"create", "create"}}, "declared twice"},
		{&policy.Rule{ID: "j", Severity: policy.Error, Check: check, Requests: create, Unseen: map[policy.Source]string{"pod": "no pods"}}, `unknown source "pod"`},
		{&policy.Rule{ID: "k", Severity: policy.Error, Check: check, Requests: create, Unseen: map[policy.Source]string{policy.SourceContainer: ""}}, "without saying why"},
	} {
		err := r.Register(tc.rule)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%+v) = %v, want error containing %q", tc.rule.ID, err, tc.want)
		}
	}
}

func load(t *testing.T, path string) *workload.Project {
	t.Helper()
	res, err := compose.Load(context.Background(), compose.Options{Files: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Project
}

// TestExemptions_NFR_SEC_01: an Accepted ADR that names the rule exempts the
// finding (still reported, marked exempted); --strict ignores it.
func TestExemptions_NFR_SEC_01(t *testing.T) {
	p := load(t, "testdata/adr-exemption/pass.yaml")
	resolver := adr.NewResolver("testdata/adr-exemption/docs/adr")
	for _, strict := range []bool{false, true} {
		fs := policy.Evaluate(p, &policy.Env{ADRs: resolver, Strict: strict, Only: map[string]bool{"host-namespaces": true}})
		if len(fs) != 2 {
			t.Fatalf("strict=%v: got %d host-namespaces findings, want 2 (pid and network)", strict, len(fs))
		}
		for _, f := range fs {
			if f.Exempted == strict {
				t.Errorf("strict=%v: finding %q exempted=%v", strict, f.Message, f.Exempted)
			}
			if !strict && f.ADR != "ADR-0001" {
				t.Errorf("exempted finding names ADR %q, want ADR-0001", f.ADR)
			}
		}
		if policy.Failing(fs, policy.Error) != strict {
			t.Errorf("strict=%v: Failing = %v", strict, !strict)
		}
	}
}

// TestMemoryBudget_NFR_RES_01 checks the budget arithmetic deploy/README.md's
// memory table relies on: limit × replicas, infra tier only, against 20%.
func TestMemoryBudget_NFR_RES_01(t *testing.T) {
	p := load(t, "testdata/memory-budget/fail.yaml")
	p.HostMemory = 4 << 30
	b := policy.ComputeBudget(p)
	if want := int64(2*384<<20 + 512<<20); b.Total != want {
		t.Errorf("budget total = %d, want %d", b.Total, want)
	}
	if len(b.Unlimited) != 1 || b.Unlimited[0] != "grafana" {
		t.Errorf("unlimited = %v, want [grafana]", b.Unlimited)
	}
	// 1.25 GiB is below 20% of 8 GiB (1.6 GiB): no finding.
	p.HostMemory = 8 << 30
	if fs := policy.Evaluate(p, &policy.Env{Only: map[string]bool{"memory-budget": true}}); len(fs) != 0 {
		t.Errorf("8 GiB host: got %v, want no finding", fs)
	}
	// Exactly 20% is a finding ("< 20%").
	p.HostMemory = b.Total * 5
	if fs := policy.Evaluate(p, &policy.Env{Only: map[string]bool{"memory-budget": true}}); len(fs) != 1 {
		t.Errorf("budget at exactly 20%%: got %d findings, want 1", len(fs))
	}
}

func TestIsCredentialKey(t *testing.T) {
	for key, want := range map[string]bool{
		"POSTGRES_PASSWORD": true, "DB_PASS": true, "MYSQL_ROOT_PASSWORD": true, "API_KEY": true,
		"STRIPE_API_KEY": true, "GITHUB_TOKEN": true, "JWT_SECRET": true, "AWS_SECRET_ACCESS_KEY": true,
		"SSH_PRIVATE_KEY": true, "OAUTH_CLIENT_SECRET": true, "app-token": true,
		"PASSWORD_MIN_LENGTH": false, "TOKEN_TTL": false, "SECRET_NAME": false, "POSTGRES_USER": false,
		"KEYCLOAK_HOSTNAME": false, "PASSWORD_RESET_TIMEOUT": false, "COMPASS": false, "PATH": false,
	} {
		if got := policy.IsCredentialKey(key); got != want {
			t.Errorf("IsCredentialKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestSeverity(t *testing.T) {
	for _, s := range []string{"info", "warning", "warn", "error", "ERROR"} {
		if _, err := policy.ParseSeverity(s); err != nil {
			t.Errorf("ParseSeverity(%q): %v", s, err)
		}
	}
	if _, err := policy.ParseSeverity("fatal"); err == nil {
		t.Error(`ParseSeverity("fatal") succeeded`)
	}
	if !(policy.Info < policy.Warning && policy.Warning < policy.Error) {
		t.Error("severities are not ordered")
	}
}
