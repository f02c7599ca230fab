package workload

import "testing"

func TestResolveJoins(t *testing.T) {
	host := &Workload{Name: "host-pid"}
	host.Namespaces.PID.Mode = "host"
	mid := &Workload{Name: "mid"}
	mid.Namespaces.PID.Mode = "container:host-pid"
	mid.Namespaces.Network.Mode = "container:loop"
	w := &Workload{Name: "w"}
	w.Namespaces.PID.Mode = "container:mid"
	w.Namespaces.Network.Mode = "container:mid"
	loop := &Workload{Name: "loop"}
	loop.Namespaces.Network.Mode = "container:w"
	byName := map[string]*Workload{"host-pid": host, "mid": mid, "w": w, "loop": loop}
	lookup := func(mode string) (*Workload, string) {
		if len(mode) > len("container:") && mode[:len("container:")] == "container:" {
			if o := byName[mode[len("container:"):]]; o != nil {
				return o, "container " + o.Name
			}
		}
		return nil, ""
	}
	ResolveJoins(w, lookup)
	if pid := w.Namespaces.PID; !pid.IsHost() || pid.Via != "container host-pid" || pid.Joined != mid {
		t.Errorf("pid through two hops: %+v", pid)
	}
	// mid → loop → w is a cycle back to w: not the host's, and no hang.
	if net := w.Namespaces.Network; net.IsHost() || net.Joined != mid {
		t.Errorf("network through a cycle: %+v", net)
	}
	if ipc := w.Namespaces.IPC; ipc.Joined != nil || ipc.IsHost() {
		t.Errorf("ipc joins nothing: %+v", ipc)
	}
}
