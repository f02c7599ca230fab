// Package deploy holds the SPEC-SYS-01 reference stack (compose.yaml, the
// overlays and the configuration of every service under this directory) and
// the tests that prove it: the compose files load and validate the way
// `docker compose` and `docker stack deploy` load them, every service keeps
// the baseline, every exemption is backed by an Accepted ADR, the memory
// budget matches the documented table, promtool and amtool accept the
// monitoring configuration, and the alert path works end to end with the
// stack's own rules and Alertmanager configuration (alertpath_test.go).
//
// The package has no code of its own: it must not grow helpers that other
// packages import. Policy logic belongs to internal/policy; these tests
// check this stack's files, not arbitrary compose projects.
package deploy
