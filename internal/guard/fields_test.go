package guard

import (
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"
)

// Every field of every body the guard decodes has a row, every row names a
// field that exists and says why; a moby/moby/api upgrade that brings a
// field fails here until someone judges it.
func TestFieldTableCoversTheAPITypes(t *testing.T) {
	seen := map[reflect.Type]bool{}
	reachable := map[string]bool{}
	for _, root := range fieldRoots {
		for _, k := range fieldKeys(reflect.TypeOf(root.body), seen) {
			reachable[k] = true
			row, ok := fieldTable[k]
			switch {
			case !ok:
				t.Errorf("%s (in %s) has no row in fieldTable: judge it, mark it harmless with the reason, or deny it", k, root.route)
			case row.why == "" || row.kind == 0:
				t.Errorf("%s: a row needs a verdict and a reason", k)
			}
		}
	}
	for k := range fieldTable {
		if !reachable[k] {
			t.Errorf("fieldTable row %s names no field of the request bodies", k)
		}
	}
	if len(reachable) < 400 {
		t.Errorf("only %d fields reachable: the walk lost a body", len(reachable))
	}
}

func TestJudgeFields(t *testing.T) {
	yes, pids := true, int64(-1)
	for _, tc := range []struct {
		name string
		body any
		want string // "" admitted
	}{
		{"zero values are the engine's defaults", &container.CreateRequest{Config: &container.Config{}, HostConfig: &container.HostConfig{}}, ""},
		{"judged and harmless fields", &container.CreateRequest{Config: &container.Config{User: "1", Env: []string{"A=1"}}, HostConfig: &container.HostConfig{Binds: []string{"/x:/y"}, Resources: container.Resources{PidsLimit: &pids}}}, ""},
		{"denied field", &container.CreateRequest{HostConfig: &container.HostConfig{Links: []string{"db:db"}}}, "HostConfig.Links is refused: legacy links"},
		{"denied field in an embedded struct", &container.CreateRequest{HostConfig: &container.HostConfig{Resources: container.Resources{CgroupParent: "/"}}}, "HostConfig.CgroupParent is refused"},
		{"denied nested field", &container.CreateRequest{HostConfig: &container.HostConfig{Mounts: []mount.Mount{{Type: "bind", Source: "/srv", Target: "/s", BindOptions: &mount.BindOptions{CreateMountpoint: true}}}}}, "HostConfig.Mounts[0].BindOptions.CreateMountpoint is refused: creates the source path on the host"},
		{"check: shared propagation", &container.CreateRequest{HostConfig: &container.HostConfig{Mounts: []mount.Mount{{BindOptions: &mount.BindOptions{Propagation: mount.PropagationRShared}}}}}, "sends mounts made inside the container back to the host"},
		{"check: private propagation", &container.CreateRequest{HostConfig: &container.HostConfig{Mounts: []mount.Mount{{BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate}}}}}, ""},
		{"check: negative OOM score", &container.CreateRequest{HostConfig: &container.HostConfig{OomScoreAdj: -1000}}, "OomScoreAdj"},
		{"check: OOM kill disabled", &container.UpdateConfig{Resources: container.Resources{OomKillDisable: &yes}}, "OomKillDisable"},
		{"map values are walked", &container.CreateRequest{NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"n": {DriverOpts: map[string]string{"a": "b"}}}}}, "NetworkingConfig.EndpointsConfig[n].DriverOpts is refused"},
		// Network drivers, options and ConfigFrom are judged by networkCreate,
		// with the profile's host-interface-networks permit
		// (TestNetworkCreateDecisions); the table still walks the rest.
		{"network IPAM plugin", &network.CreateRequest{Driver: "bridge", IPAM: &network.IPAM{Driver: "weave"}}, "IPAM driver \"weave\""},
		{"cluster volume", &volume.CreateRequest{ClusterVolumeSpec: &volume.ClusterVolumeSpec{Group: "g"}}, "ClusterVolumeSpec is refused"},
		{"service SELinux type", &swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Privileges: &swarm.Privileges{SELinuxContext: &swarm.SELinuxContext{Type: "spc_t"}}}}}, "SELinuxContext.Type is refused"},
		{"swarm join", &swarm.JoinRequest{RemoteAddrs: []string{"10.0.0.1:2377"}}, "RemoteAddrs is refused: Swarm membership"},
		{"a field no row names", &struct{ NewEngineField string }{"x"}, "the guard has not judged that field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := judgeFields(tc.body)
			switch {
			case tc.want == "" && d != nil:
				t.Fatalf("refused: %s", d.message)
			case tc.want != "" && d == nil:
				t.Fatalf("admitted, want %q", tc.want)
			case d != nil && (!strings.Contains(d.message, tc.want) || d.status != 403 || d.reason != reasonField):
				t.Fatalf("denial %d %s %q, want 403 field %q", d.status, d.reason, d.message, tc.want)
			}
		})
	}
}
