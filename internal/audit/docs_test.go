package audit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/testenv"
)

// TestDocsAlertRules checks the alert rules docs/audit.md offers with the
// real promtool: they parse, and HyhomeRuntimeDrift fires on a finding the
// exporter would serve while HyhomeACSpec01Failing stays silent on a pass.
func TestDocsAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	testenv.Require(t, err, "promtool (Debian package prometheus)")
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "audit.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\ngroups:")
	if !ok {
		t.Fatal("docs/audit.md has no ```yaml groups: block")
	}
	rules, _, _ := strings.Cut(rest, "```")
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "hyhome-audit.rules.yml")
	if err := os.WriteFile(rulesFile, []byte("groups:"+rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	unit := `rule_files: [hyhome-audit.rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'hyhome_findings{rule="privileged",severity="error",tier="app",service="web",container="shop-web-1"}'
        values: '1x10'
      - series: 'hyhome_acceptance_check_passed{check="AC-SPEC-01"}'
        values: '1x10'
    alert_rule_test:
      - eval_time: 6m
        alertname: HyhomeRuntimeDrift
        exp_alerts:
          - exp_labels: {severity: warning, container: shop-web-1, service: web, rule: privileged}
            exp_annotations:
              summary: "container shop-web-1 violates privileged (SPEC-SYS-01)"
      - eval_time: 6m
        alertname: HyhomeACSpec01Failing
        exp_alerts: []
`
	unitFile := filepath.Join(dir, "test.yml")
	if err := os.WriteFile(unitFile, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", unitFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
