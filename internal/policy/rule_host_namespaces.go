package policy

import (
	"fmt"

	"github.com/hy-home/hyhome/internal/workload"
)

// host-namespaces: no namespace shared with the host, directly or through a
// joined workload.
var ruleHostNamespaces = &Rule{
	ID:           "host-namespaces",
	Requirements: []string{"NFR-SEC-01"},
	Severity:     Error,
	Description:  "Containers must not share the host's pid, network, ipc, uts, user or cgroup namespace.",
	Remediation:  "Remove `pid: host`, `network_mode: host`, `ipc: host`, `uts: host`, `userns_mode: host` and `cgroup: host` (or the service/container they join that uses them), or justify the exception in an ADR.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin, RequestBuild},
	Check:        checkHostNamespaces,
}

func checkHostNamespaces(w *workload.Workload, env *Env) []Violation {
	var vs []Violation
	for _, ns := range w.Namespaces.All() {
		if !ns.IsHost() {
			continue
		}
		msg := fmt.Sprintf("shares the host's %s namespace (%s: %s)", ns.Name, ns.Key, ns.Mode)
		if ns.Via != "" {
			msg = fmt.Sprintf("shares the host's %s namespace, inherited from %s (%s: %s)", ns.Name, ns.Via, ns.Key, ns.Mode)
		}
		if ns.Name == "cgroup" && w.Kind == workload.KindContainer && env.Host.CgroupnsDefault != "private" {
			// Inspect shows the mode the engine gave the container, and on
			// cgroup v1 hosts its default is host: a container that asked
			// for nothing cannot be told from one that asked for host.
			continue
		}
		vs = append(vs, Violation{Message: msg, Pos: w.At(ns.Pos)})
	}
	return vs
}
