package policy

import "github.com/hy-home/hyhome/internal/workload"

// The catalogue: one file per rule (rule_<id>.go, beside its fixtures in
// testdata/<id>/), each holding the rule's metadata, the request kinds the
// guard judges with it, and its check. A rule reads only the workload and
// what Env says about the host; the sources fill the workload.

// Default is the catalogue every command uses.
var Default = func() *Registry {
	r := NewRegistry()
	r.MustRegister(catalogue()...)
	return r
}()

// catalogue lists every rule; the registry orders them by ID.
func catalogue() []*Rule {
	return []*Rule{
		ruleADRExemption,
		ruleBaselineAnchor,
		ruleBindMountReadonly,
		ruleCapAdd,
		ruleCapDropAll,
		ruleDockerSocket,
		ruleHealthcheck,
		ruleHostDevices,
		ruleHostNamespaces,
		ruleHostPath,
		ruleImagePinned,
		ruleInfraNet,
		ruleLogDriver,
		ruleMemoryBudget,
		ruleMemoryLimit,
		ruleMetricsEndpoint,
		ruleNamespaceJoin,
		ruleNoNewPrivileges,
		ruleNonRoot,
		rulePidsLimit,
		rulePrivileged,
		rulePublishedPorts,
		ruleReadOnlyRootfs,
		ruleSecretTarget,
		ruleSecretsInEnv,
		ruleSecurityProfile,
		ruleTierLabel,
		ruleTraefikTLS,
		ruleVolumeType,
	}
}

func one(msg string, pos workload.Position) []Violation {
	return []Violation{{Message: msg, Pos: pos}}
}
