package deploy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The monitoring configuration as Debian's promtool and amtool see it: the
// same checks `make verify-config` runs, so CI fails on a broken rule or
// route before a host ever loads it.

func TestPromtoolCheckConfig(t *testing.T) {
	promtool := tool(t, "promtool check config", "promtool")
	dir := filepath.Join(deployDir(t), "prometheus")
	out, err := runTool(t, dir, time.Minute, promtool, "check", "config", "prometheus.yml")
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	// The config's rule_files glob must find the rules: a path that matches
	// nothing would pass the check and load no alerts at all.
	if !strings.Contains(out, "SUCCESS: 1 rule files found") {
		t.Errorf("rule_files does not resolve to the rules directory:\n%s", out)
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := tool(t, "promtool check rules", "promtool")
	files, err := filepath.Glob(filepath.Join(deployDir(t), "prometheus", "rules", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	out, err := runTool(t, deployDir(t), time.Minute, promtool, append([]string{"check", "rules"}, files...)...)
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestPromtoolTestRules runs the rule unit tests in prometheus/tests: down,
// vanished, returning, briefly restarted, other tiers, replicas, the 7-day
// memory and the watchdog.
func TestPromtoolTestRules(t *testing.T) {
	promtool := tool(t, "promtool test rules", "promtool")
	dir := filepath.Join(deployDir(t), "prometheus", "tests")
	files, err := filepath.Glob(filepath.Join(dir, "*.test.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule tests: %v", err)
	}
	out, err := runTool(t, dir, 2*time.Minute, promtool, append([]string{"test", "rules"}, files...)...)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

func TestAmtoolCheckConfig(t *testing.T) {
	amtool := tool(t, "amtool check-config", "amtool")
	dir := filepath.Join(deployDir(t), "alertmanager")
	out, err := runTool(t, dir, time.Minute, amtool, "check-config", "alertmanager.yml")
	if err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	// The Slack templates must be found relative to the config file.
	if !strings.Contains(out, "1 templates") {
		t.Errorf("templates glob found no template file:\n%s", out)
	}
}
