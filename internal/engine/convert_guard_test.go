package engine

import (
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"

	"github.com/hy-home/hyhome/internal/workload"
)

// The docker CLI sends `--security-opt systempaths=unconfined` as empty
// MaskedPaths/ReadonlyPaths; absent (nil) lists mean the engine's defaults.
func TestContainerSystemPathsUnconfined(t *testing.T) {
	for _, tc := range []struct {
		name           string
		masked, ronly  []string
		wantUnconfined bool
	}{
		{"defaults", nil, nil, false},
		{"engine defaults on inspect", []string{"/proc/kcore"}, []string{"/proc/sys"}, false},
		{"cli systempaths=unconfined", []string{}, []string{}, true},
		{"masked only", []string{}, nil, true},
		{"readonly only", nil, []string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Container(ContainerInput{
				Config:     &container.Config{},
				HostConfig: &container.HostConfig{MaskedPaths: tc.masked, ReadonlyPaths: tc.ronly},
				Kind:       workload.KindRequest,
			})
			if got := slices.Contains(w.SecurityOpt, "systempaths=unconfined"); got != tc.wantUnconfined {
				t.Fatalf("SecurityOpt %q: systempaths=unconfined present = %v, want %v", w.SecurityOpt, got, tc.wantUnconfined)
			}
		})
	}
}

func TestServiceCustomSeccompProfile(t *testing.T) {
	w := Service(ServiceInput{Spec: swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
		Privileges: &swarm.Privileges{Seccomp: &swarm.SeccompOpts{Mode: swarm.SeccompModeCustom, Profile: []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`)}},
	}}}})
	if !slices.Contains(w.SecurityOpt, `seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`) {
		t.Fatalf("SecurityOpt %q lacks the custom profile", w.SecurityOpt)
	}
}
