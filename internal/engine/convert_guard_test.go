package engine

import (
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"

	"github.com/hy-home/hyhome/internal/workload"
)

// The docker CLI sends `--security-opt systempaths=unconfined` as empty
// MaskedPaths/ReadonlyPaths; absent (nil) lists mean the engine's defaults,
// and inspect shows the list the container got. The workload keeps the
// difference for security-profile to judge.
func TestContainerMaskedPaths(t *testing.T) {
	for _, tc := range []struct {
		name          string
		masked, ronly []string
	}{
		{"defaults", nil, nil},
		{"engine defaults on inspect", []string{"/proc/kcore"}, []string{"/proc/sys"}},
		{"cli systempaths=unconfined", []string{}, []string{}},
		{"masked only", []string{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Container(ContainerInput{
				Config:     &container.Config{},
				HostConfig: &container.HostConfig{MaskedPaths: tc.masked, ReadonlyPaths: tc.ronly},
				Kind:       workload.KindRequest,
			})
			if (w.MaskedPaths == nil) != (tc.masked == nil) || !slices.Equal(w.MaskedPaths, tc.masked) {
				t.Errorf("MaskedPaths %#v, want %#v", w.MaskedPaths, tc.masked)
			}
			if (w.ReadonlyPaths == nil) != (tc.ronly == nil) || !slices.Equal(w.ReadonlyPaths, tc.ronly) {
				t.Errorf("ReadonlyPaths %#v, want %#v", w.ReadonlyPaths, tc.ronly)
			}
		})
	}
}

// Every fact a rule reads is filled from the request: the cgroup
// namespace, extra groups, device cgroup rules, the log driver and the
// driver configuration of the volumes the engine creates.
func TestContainerFacts(t *testing.T) {
	hc := &container.HostConfig{
		CgroupnsMode: "host",
		GroupAdd:     []string{"105", "docker"},
		Resources:    container.Resources{DeviceCgroupRules: []string{"a *:* rwm"}},
		LogConfig:    container.LogConfig{Type: "syslog", Config: map[string]string{"syslog-address": "tcp://127.0.0.1:514"}},
		Binds:        []string{"named:/n"},
		VolumeDriver: "rexray/ebs",
		Mounts: []mount.Mount{
			{Type: mount.TypeVolume, Source: "v", Target: "/v", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{"type": "tmpfs", "o": "bind", "device": "/"}}}},
			{Type: mount.TypeVolume, Source: "d", Target: "/d", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Options: map[string]string{"type": "ext4", "device": "/dev/vda"}}}},
		},
	}
	w := Container(ContainerInput{Config: &container.Config{}, HostConfig: hc, Kind: workload.KindRequest})
	if !w.Namespaces.Cgroup.IsHost() {
		t.Errorf("cgroup namespace %+v is not the host's", w.Namespaces.Cgroup)
	}
	if !slices.Equal(w.GroupAdd, hc.GroupAdd) || !slices.Equal(w.DeviceCgroupRules, hc.DeviceCgroupRules) {
		t.Errorf("GroupAdd %v, DeviceCgroupRules %v", w.GroupAdd, w.DeviceCgroupRules)
	}
	if w.Logging.Driver != "syslog" || w.Logging.Options["syslog-address"] == "" {
		t.Errorf("Logging %+v", w.Logging)
	}
	byTarget := map[string]workload.Mount{}
	for _, m := range w.Mounts {
		byTarget[m.Target] = m
	}
	if m := byTarget["/n"]; m.Volume == nil || m.Volume.Driver != "rexray/ebs" {
		t.Errorf("a Binds volume takes HostConfig.VolumeDriver: %+v", m)
	}
	// type=tmpfs with o=bind is a bind of the host's / (mount(2) ignores
	// the type of a bind).
	if m := byTarget["/v"]; m.Type != "bind" || m.Source != "/" || m.ViaVolumeDriver != "v" {
		t.Errorf("inline bind volume: %+v", m)
	}
	if m := byTarget["/d"]; m.Type != "volume" || !slices.Equal(m.HostPaths(), []string{"/dev/vda"}) {
		t.Errorf("inline ext4 volume: %+v, host paths %v", m, m.HostPaths())
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
