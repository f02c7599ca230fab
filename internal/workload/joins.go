package workload

// NamedNamespace is one of a workload's namespaces with the kernel's name
// for it and the compose key that sets it.
type NamedNamespace struct {
	Name, Key string
	*Namespace
}

// All returns every namespace of a workload, the joinable ones (PID,
// network, IPC) first, in that order.
func (n *Namespaces) All() []NamedNamespace {
	return []NamedNamespace{
		{"pid", "pid", &n.PID},
		{"network", "network_mode", &n.Network},
		{"ipc", "ipc", &n.IPC},
		{"uts", "uts", &n.UTS},
		{"user", "userns_mode", &n.UserNS},
		{"cgroup", "cgroup", &n.Cgroup},
	}
}

// Joinable returns the namespaces a workload can share with another by a
// `container:x` or `service:x` mode: PID, network and IPC, in that order.
func (w *Workload) Joinable() []NamedNamespace { return w.Namespaces.All()[:3] }

// ResolveJoins follows w's joinable namespaces through the workloads their
// modes join: joining a workload that shares the host's namespace shares it
// too (Effective "host", Via naming the workload it comes through), and the
// workload joined first is recorded (Joined) for the rules to judge. lookup
// finds the workload a mode joins, and how to name it ("container web", say);
// nil when the mode joins nothing it knows. A cycle ends the walk.
//
// Every source resolves joins through here, so that lint, audit and the
// guard follow a chain alike; they differ only in how a mode names a
// workload (a compose service, a container name or ID).
func ResolveJoins(w *Workload, lookup func(mode string) (other *Workload, via string)) {
	for i, n := range w.Joinable() {
		seen := map[*Workload]bool{w: true}
		cur := n
		for {
			other, via := lookup(cur.Mode)
			if other == nil || seen[other] {
				break
			}
			seen[other] = true
			if n.Joined == nil {
				n.Joined = other
			}
			cur = other.Joinable()[i]
			if cur.Mode == "host" {
				n.Effective, n.Via = "host", via
				break
			}
		}
	}
}
