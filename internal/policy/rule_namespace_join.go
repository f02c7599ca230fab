package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// namespace-join: a workload that joins another's pid, network or ipc
// namespace gets what that workload can see and reach, so it is judged by
// the joined workload's isolation.
var ruleNamespaceJoin = &Rule{
	ID:           RuleNamespaceJoin,
	Requirements: []string{"NFR-SEC-01"},
	Severity:     Error,
	Description:  "A container must not join the pid, network or ipc namespace of one that fails the isolation rules.",
	Remediation:  "Do not use `pid`, `network_mode` or `ipc` of `container:`/`service:` with a container that holds host mounts, capabilities, root or the host's namespaces; give the service its own namespaces.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin},
	Check:        checkNamespaceJoin,
}

// RuleNamespaceJoin is the rule that judges namespace joins by the joined
// workload.
const RuleNamespaceJoin = "namespace-join"

// isolationRequirements are the requirements whose rules decide whether a
// process can reach the host or run as root: what a namespace join
// inherits from the workload it joins.
var isolationRequirements = []string{"NFR-SEC-01", "SEC-IDENTITY", "Strategy-ST-03"}

// checkNamespaceJoin judges a workload that joins another's pid, network
// or ipc namespace by the joined workload's own configuration: a pid join
// reaches its processes' /proc/<pid>/root (its mounts, the Docker socket
// included), a network join its interfaces and listeners, an ipc join its
// shared memory. The joined workload is judged strictly: an exemption
// covers the workload its ADR names, not whoever joins it.
func checkNamespaceJoin(w *workload.Workload, env *Env) []Violation {
	var vs []Violation
	for _, ns := range w.Joinable() {
		j := ns.Joined
		if j == nil || j == w || ns.IsHost() {
			continue // a host namespace is host-namespaces' to report
		}
		fails := joinedFailures(j, env)
		if len(fails) == 0 {
			continue
		}
		name := j.Name
		if name == "" {
			name = j.Display
		}
		vs = append(vs, Violation{
			Message: fmt.Sprintf("joins the %s namespace of %s (%s: %s), which %s", ns.Name, name, ns.Key, ns.Mode, strings.Join(fails, "; ")),
			Pos:     w.At(ns.Pos),
		})
	}
	return vs
}

// joinedFailures evaluates the isolation rules on a joined workload,
// strictly, and describes the errors.
func joinedFailures(j *workload.Workload, env *Env) []string {
	only := map[string]bool{}
	for _, r := range env.Registry.rules {
		if r.Check == nil || r.ID == RuleNamespaceJoin || r.ID == RuleADRExemption {
			continue
		}
		for _, req := range r.Requirements {
			if slices.Contains(isolationRequirements, req) {
				only[r.ID] = true
			}
		}
	}
	sub := *env
	sub.Strict, sub.Only, sub.Disabled = true, only, nil
	var out []string
	for _, f := range evaluate(&workload.Project{Name: j.Name, Workloads: []*workload.Workload{j}}, &sub) {
		if f.Severity >= Error {
			out = append(out, fmt.Sprintf("fails %s: %s", f.Rule, f.Message))
		}
	}
	return out
}
