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

// CrossSourceTest runs every rule's cross-source fixtures (a compose
// fixture with <fixture>.inspect.json and <fixture>.create.json beside it)
// through lint, audit and the guard, and requires the same rule IDs from
// each but where a rule declares a source unseen.
var CrossSourceTest = TestRef{Package: "internal/guard", Test: "TestRuleFixturesAcrossSources"}

// RequirementTests are the tests beyond the rule fixtures that prove a
// requirement end to end (real engine, real Prometheus/Alertmanager).
var RequirementTests = map[string][]TestRef{
	"SEC-ANCHORS": {{"internal/compose", "TestLoadLocatesAnchorsAndMergeKeys"}, {"deploy", "TestBaselineAnchor"}},
	"NFR-RES-01": {
		{"internal/policy", "TestMemoryBudget_NFR_RES_01"}, {"internal/audit", "TestAuditMemoryBudgetUsesEngineMemory"},
		{"deploy", "TestMemoryBudget"}, {"internal/verify", "TestMemoryEngineStatsPass"},
		{"internal/guard", "TestIdleRelease"},
	},
	// Running containers, Swarm services and API requests on the real engine
	// (hyhome audit, hyhome guard).
	"NFR-SEC-01": {
		{"internal/audit", "TestAuditRuntimeViolations"}, {"internal/audit", "TestAuditExemptions"},
		{"internal/guard", "TestAdversarial"}, {"internal/guard", "TestDockerCLIAdmission"}, {"internal/guard", "TestRouteMatchEqualsMuxRegexp"},
		{"internal/guard", "TestDifferential"}, {"internal/guard", "TestAdversarialAdmission"}, {"internal/guard", "TestFieldTableCoversTheAPITypes"},
		{"deploy", "TestExemptionsBackedByADRs"},
		// Exemptions hold only for the workloads their ADR names (issue 17).
		{"internal/policy", "TestExemptionMatchesTheWorkload_NFR_SEC_01"}, {"internal/lint", "TestStackExemptions_NFR_SEC_01"},
		{"internal/audit", "TestAuditStackExemptions"}, {"internal/guard", "TestExemptionClaims_NFR_SEC_01"},
	},
	"SEC-IDENTITY":   {{"internal/audit", "TestAuditRuntimeViolations"}, {"internal/guard", "TestDockerCLIAdmission"}, {"internal/guard", "TestIdentityPinned"}},
	"Strategy-ST-01": {{"internal/audit", "TestAuditSwarmServices"}, {"deploy", "TestBaseline"}},
	"Strategy-ST-03": {{"internal/audit", "TestAuditRuntimeViolations"}, {"internal/guard", "TestDockerCLIReadonly"}, {"internal/ship", "TestAgentThroughTheGuardShipperProfile"}, {"internal/guard", "TestDifferential"}},
	"AC-SPEC-01":     {{"internal/acceptance", "TestACSpec01"}, {"internal/verify", "TestACSpec01Delegates"}, {"internal/acceptance", "TestACSpec01SwarmTaskReason"}},
	// Logs and events to Loki (hyhome ship), measured by hyhome verify.
	"NFR-OBS-01": {
		{"internal/ship", "TestCrashingContainerLinesAndDieEventAreQueryable"}, {"internal/ship", "TestSIGKILLMidStreamLosesNothing"},
		{"internal/ship", "TestLokiDownThenUpLosesNothing"}, {"internal/ship", "TestEncodeProtobufMatchesLokiTypes"},
		{"internal/ship", "TestEventsBetweenStartAndSubscriptionAreShipped"}, {"internal/ship", "TestFirstEventsPositionIsOnTheEnginesClock"},
		{"internal/ship", "TestEventsResumeAfterMoreEventsThanTheEngineReplays"},
		{"internal/verify", "TestObservabilityTrialsPass"},
		{"internal/verify", "TestObservabilitySlowLokiFailsNFR"},
		{"internal/verify", "TestObservabilityGatewayAccessLog"},
	},
	"AC-SPEC-02":    {{"internal/ship", "TestCrashingContainerLinesAndDieEventAreQueryable"}, {"internal/verify", "TestObservabilityTrialsPass"}, {"internal/verify", "TestObservabilityVerySlowLokiFailsACSpec02"}, {"internal/verify", "TestObservabilityGatewayAccessLog"}},
	"AC-SPEC-03":    {{"internal/verify", "TestMemoryEngineStatsFailures"}, {"internal/verify", "TestMemoryPrometheus"}},
	"OPS-ALERTING":  {{"deploy", "TestAlertPath"}, {"deploy", "TestPromtoolTestRules"}, {"internal/verify", "TestAlertingEndToEnd"}, {"internal/verify", "TestAlertingStackService"}},
	"OPS-TELEMETRY": {{"deploy", "TestComposeConfig"}, {"internal/ship", "TestCrashingContainerLinesAndDieEventAreQueryable"}},
	"IF-EXTERNAL":   {{"deploy", "TestHyhomeLint"}},
}
