package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// security-profile: seccomp, AppArmor, SELinux and the masked /proc and /sys
// paths are neither disabled nor weakened.
var ruleSecurityProfile = &Rule{
	ID:           "security-profile",
	Requirements: []string{"CIS-DOCKER", "NFR-SEC-01"},
	Severity:     Error,
	Description:  "seccomp, AppArmor, SELinux and the masked /proc and /sys paths must not be disabled or weakened.",
	Remediation:  "Remove `seccomp=unconfined`, `apparmor=unconfined`, `label=disable`, `systempaths=unconfined` and `writable-cgroups=true` from `security_opt`, leave MaskedPaths and ReadonlyPaths to the engine, and give a custom seccomp profile only syscalls Docker's default allows.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin},
	Check:        checkSecurityProfile,
}

func checkSecurityProfile(w *workload.Workload, env *Env) []Violation {
	var vs []Violation
	for i, o := range w.SecurityOpt {
		so := workload.ParseSecurityOpt(o)
		k, v := strings.ToLower(so.Key), strings.ToLower(strings.TrimSpace(so.Value))
		switch {
		case (k == "seccomp" || k == "apparmor" || k == "systempaths") && v == "unconfined" || k == "label" && v == "disable":
			vs = append(vs, Violation{Message: fmt.Sprintf("security_opt %q disables confinement", o), Pos: w.SecurityOptPosition(i)})
		case k == "writable-cgroups":
			if b, err := strconv.ParseBool(so.Value); err == nil && b {
				vs = append(vs, Violation{Message: fmt.Sprintf("security_opt %q makes the cgroup file system writable", o), Pos: w.SecurityOptPosition(i)})
			}
		case k == "seccomp" && strings.HasPrefix(strings.TrimSpace(so.Value), "{"):
			for _, why := range workload.SeccompBeyondDefault(so.Value) {
				vs = append(vs, Violation{Message: "security_opt seccomp gives a custom profile that " + why, Pos: w.SecurityOptPosition(i)})
			}
		}
	}
	for _, l := range []struct {
		field        string
		list, engine []string
		floor        []string
	}{
		{"MaskedPaths", w.MaskedPaths, env.Host.MaskedPaths, workload.DefaultMaskedPaths},
		{"ReadonlyPaths", w.ReadonlyPaths, env.Host.ReadonlyPaths, workload.DefaultReadonlyPaths},
	} {
		if l.list == nil {
			continue // the engine's default
		}
		want := l.engine
		if want == nil {
			want = l.floor
		}
		var missing []string
		for _, p := range want {
			if !slices.Contains(l.list, p) {
				missing = append(missing, p)
			}
		}
		switch {
		case len(missing) == 0:
		case len(l.list) == 0:
			vs = append(vs, Violation{Message: fmt.Sprintf("%s is empty, as `--security-opt systempaths=unconfined` sends it: the engine's default list is replaced by nothing", l.field), Pos: w.At(w.SecurityOptAt)})
		default:
			vs = append(vs, Violation{Message: fmt.Sprintf("%s replaces the engine's default list and leaves out %s", l.field, strings.Join(missing, ", ")), Pos: w.At(w.SecurityOptAt)})
		}
	}
	return vs
}
