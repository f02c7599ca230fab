package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// docker-socket: only the guard mounts the engine's socket, and no process
// runs in the group that owns it.
var ruleDockerSocket = &Rule{
	ID:           "docker-socket",
	Requirements: []string{"Strategy-ST-03", "NFR-SEC-01"},
	Severity:     Error,
	Description:  "Only the hyhome guard may mount the Docker socket.",
	Remediation:  "Point the service at the guard's read-only endpoint (e.g. `DOCKER_HOST=tcp://guard:2375`) instead of mounting the socket.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin, RequestVolume},
	Check:        checkDockerSocket,
}

func checkDockerSocket(w *workload.Workload, env *Env) []Violation {
	vs := socketGroup(w, env)
	for _, m := range w.Mounts {
		if (m.Type == "bind" || m.ViaVolumeDriver != "") && workload.IsDockerSocket(m.Source) {
			mode := "writable"
			if m.ReadOnly {
				mode = "read-only, which still grants the whole API"
			}
			vs = append(vs, Violation{Message: fmt.Sprintf("mounts the Docker socket (%s → %s, %s): root on the host", m.Source, m.Target, mode), Pos: w.At(m.Pos)})
		}
	}
	return vs
}

// socketGroup reports a process that belongs to the group owning the
// engine's socket: any path to the socket, read-only or not, is then root
// on the host.
func socketGroup(w *workload.Workload, env *Env) []Violation {
	if !env.Host.SocketGIDKnown {
		return nil
	}
	gid := env.Host.SocketGID
	var at workload.Position
	has := false
	if id := w.Identity; id != nil {
		has, at = id.Err == "" && id.HasGroup(gid), w.At(w.UserPos)
	} else {
		// Without the image's files only numeric IDs are known.
		user, _, _ := w.EffectiveUser()
		if _, g, ok := strings.Cut(user, ":"); ok && numericIs(strings.Split(g, ":")[0], gid) {
			has, at = true, w.At(w.UserPos)
		}
		if slices.ContainsFunc(w.GroupAdd, func(a string) bool { return numericIs(a, gid) }) {
			has, at = true, w.At(w.GroupAddPos)
		}
	}
	if !has {
		return nil
	}
	return one(fmt.Sprintf("runs with group %d, which owns the engine's socket: any path to the socket is root on the host", gid), at)
}

func numericIs(s string, id uint32) bool {
	n, err := strconv.Atoi(s)
	return err == nil && uint32(n) == id
}
