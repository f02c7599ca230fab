package policy

import (
	"testing"

	"github.com/hy-home/hyhome/internal/workload"
)

func TestSecurityProfileCustomSeccomp(t *testing.T) {
	rule := Default.Get("security-profile")
	for _, tc := range []struct {
		opt  string
		want bool
	}{
		{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`, true},
		{`seccomp={"defaultaction":"scmp_act_allow","syscalls":[{"names":["reboot"],"action":"SCMP_ACT_ERRNO"}]}`, true},
		{`seccomp={"defaultAction":"SCMP_ACT_LOG"}`, true},
		{`seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`, false},
		{`seccomp=/etc/docker/seccomp.json`, false},
		{`seccomp=unconfined`, true},
		{`no-new-privileges:true`, false},
	} {
		w := &workload.Workload{Kind: workload.KindRequest, SecurityOpt: []string{tc.opt}}
		if got := len(rule.Check(w, &Env{})) > 0; got != tc.want {
			t.Errorf("%s: finding %v, want %v", tc.opt, got, tc.want)
		}
	}
}
