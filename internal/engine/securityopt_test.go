package engine

import (
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/hy-home/hyhome/internal/workload"
)

// The daemon appends label=disable to privileged and host pid/ipc containers;
// an inspected container must be judged as its create request was.
func TestContainerDropsDaemonAddedLabelDisable(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind workload.Kind
		hc   container.HostConfig
		want []string
	}{
		{"privileged", workload.KindContainer, container.HostConfig{Privileged: true, SecurityOpt: []string{"no-new-privileges:true", "label=disable"}}, []string{"no-new-privileges:true"}},
		{"pid host", workload.KindContainer, container.HostConfig{PidMode: "host", SecurityOpt: []string{"label=disable"}}, []string{}},
		{"ipc host", workload.KindContainer, container.HostConfig{IpcMode: "host", SecurityOpt: []string{"label=disable"}}, []string{}},
		{"not host: the user wrote it", workload.KindContainer, container.HostConfig{SecurityOpt: []string{"label=disable"}}, []string{"label=disable"}},
		{"own label option: daemon added nothing", workload.KindContainer, container.HostConfig{Privileged: true, SecurityOpt: []string{"label=level:s0", "label=disable"}}, []string{"label=level:s0", "label=disable"}},
		{"request: as written", workload.KindRequest, container.HostConfig{Privileged: true, SecurityOpt: []string{"label=disable"}}, []string{"label=disable"}},
	} {
		w := Container(ContainerInput{Kind: tc.kind, HostConfig: &tc.hc, MountPoints: []container.MountPoint{}})
		got := w.SecurityOpt
		if got == nil {
			got = []string{}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: SecurityOpt %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestHostNetworkByAttachment(t *testing.T) {
	id := "4f0c1d2e3b4a"
	w := Container(ContainerInput{Name: "x", Config: &container.Config{}, HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(id)}, Networks: []string{"host"}})
	if !w.Namespaces.Network.IsHost() {
		t.Errorf("a container on the host network (NetworkMode %s) is not seen as sharing the host's network namespace: %+v", id, w.Namespaces.Network)
	}
	for _, n := range w.Networks {
		if n == id {
			t.Errorf("the network ID is listed as a network name: %v", w.Networks)
		}
	}
}
