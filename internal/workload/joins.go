package workload

// Joinable returns the namespaces a workload can share with another by a
// `container:x` or `service:x` mode: PID, network and IPC, in that order.
func (w *Workload) Joinable() []*Namespace {
	return []*Namespace{&w.Namespaces.PID, &w.Namespaces.Network, &w.Namespaces.IPC}
}

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
