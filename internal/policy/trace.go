package policy

// TestRef names a test that proves a requirement, for the traceability
// table in docs/rules.md. A meta-test checks every reference exists.
type TestRef struct {
	Package string // directory, e.g. internal/audit
	Test    string // top-level test function, optionally with /subtest
}

// FixtureTest is the table test that runs every rule's pass/fail fixtures
// (internal/policy/testdata/<rule>/{pass,fail}*.yaml).
var FixtureTest = TestRef{Package: "internal/policy", Test: "TestRuleFixtures"}

// RequirementTests are the tests beyond the rule fixtures that prove a
// requirement end to end (real engine, real Prometheus/Alertmanager).
var RequirementTests = map[string][]TestRef{
	"SEC-ANCHORS": {{"internal/compose", "TestLoadLocatesAnchorsAndMergeKeys"}},
	"NFR-RES-01":  {{"internal/policy", "TestMemoryBudget_NFR_RES_01"}, {"internal/audit", "TestAuditMemoryBudgetUsesEngineMemory"}},
	// Running containers and Swarm services on the real engine (hyhome audit).
	"NFR-SEC-01":     {{"internal/audit", "TestAuditRuntimeViolations"}, {"internal/audit", "TestAuditExemptions"}},
	"SEC-IDENTITY":   {{"internal/audit", "TestAuditRuntimeViolations"}},
	"Strategy-ST-01": {{"internal/audit", "TestAuditSwarmServices"}},
	"Strategy-ST-03": {{"internal/audit", "TestAuditRuntimeViolations"}},
	"AC-SPEC-01":     {{"internal/audit", "TestACSpec01"}},
}
