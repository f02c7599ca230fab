package guard

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"
)

// The docker CLI's real request bodies decode strictly.
func TestDecodeStrictAcceptsTheDockerCLI(t *testing.T) {
	for file, v := range map[string]any{
		"create-28.2.2.json": &container.CreateRequest{},
		"exec-28.2.2.json":   &execCreateRequest{},
		"update-28.2.2.json": &container.UpdateConfig{},
		"volume-28.2.2.json": &volume.CreateRequest{},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "cli", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeStrict(b, v); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	// And what the Go client sends (the API types marshalled).
	for name, v := range map[string]any{
		"create":  container.CreateRequest{Config: &container.Config{Image: "x"}, HostConfig: &container.HostConfig{Privileged: true}},
		"service": swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s"}, TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "x"}, PluginSpec: &swarm.RuntimeSpec{Name: "p"}}},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]any{}
		if err := decodeStrict(b, &out); err != nil {
			t.Errorf("%s into a map: %v", name, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		into       func() any
		wantErr    string // substring; "" means it must decode
	}{
		{"exact keys", `{"Image":"x","HostConfig":{"Privileged":false}}`, newCreate, ""},
		{"case variant of a field", `{"Image":"x","HostConfig":{"privileged":true}}`, newCreate, `key "privileged" in HostConfig must be spelled "Privileged"`},
		{"case-insensitive duplicate", `{"Image":"x","HostConfig":{"Privileged":false,"privileged":true}}`, newCreate, `must be spelled "Privileged"`},
		{"exact duplicate", `{"Image":"x","HostConfig":{"Privileged":false,"Privileged":true}}`, newCreate, `key "Privileged" appears twice in HostConfig`},
		{"duplicate HostConfig", `{"Image":"x","HostConfig":{},"HostConfig":{"Privileged":true}}`, newCreate, `key "HostConfig" appears twice`},
		{"long s folds to SecurityOpt", `{"Image":"x","HostConfig":{"ſecurityOpt":["seccomp=unconfined"]}}`, newCreate, `must be spelled "SecurityOpt"`},
		{"Kelvin sign folds to k", `{"Image":"x","HostConfig":{"Lin\u212as":["a:b"]}}`, newCreate, `must be spelled "Links"`},
		{"legacy top-level HostConfig field", `{"Image":"x","Privileged":true}`, newCreate, `unknown field "Privileged"`},
		{"legacy top-level Binds", `{"Image":"x","Binds":["/:/host"]}`, newCreate, `unknown field "Binds"`},
		{"trailing second object", `{"Image":"x"}{"HostConfig":{"Privileged":true}}`, newCreate, "unexpected data after the JSON value"},
		{"trailing garbage", `{"Image":"x"} x`, newCreate, "unexpected data after the JSON value"},
		{"trailing white space", "{\"Image\":\"x\"}\n \t", newCreate, ""},
		{"null body", `null`, newCreate, "must be a JSON object"},
		{"array body", `[]`, newCreate, "must be a JSON object"},
		{"not JSON", `Image=x`, newCreate, "invalid character"},
		{"truncated", `{"Image":"x"`, newCreate, "EOF"},
		{"label keys are data", `{"Image":"x","Labels":{"a":"1","A":"2"}}`, newCreate, ""},
		{"duplicate label", `{"Image":"x","Labels":{"a":"1","a":"2"}}`, newCreate, `key "a" appears twice in Labels`},
		{"unknown nested field", `{"Image":"x","HostConfig":{"Capabilities":["CAP_SYS_ADMIN"]}}`, newCreate, `unknown field "Capabilities" in HostConfig`},
		{"embedded Resources field", `{"Image":"x","HostConfig":{"Memory":1}}`, newCreate, ""},
		{"port binding keys are data", `{"Image":"x","HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]}}}`, newCreate, ""},
		{"service legacy Networks", `{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Networks":[{"Target":"host"}]}`, newService, `unknown field "Networks"`},
		{"service lower-case runtime tags", `{"Name":"s","TaskTemplate":{"PluginSpec":{"name":"p","privileges":[{"name":"network","value":["host"]}]}}}`, newService, ""},
		{"service runtime tag case", `{"Name":"s","TaskTemplate":{"PluginSpec":{"Privileges":[]}}}`, newService, `must be spelled "privileges"`},
		{"plugin privileges", `[{"Name":"network","Description":"","Value":["host"]}]`, newPrivileges, ""},
		{"plugin privileges case", `[{"name":"network","Value":["host"]}]`, newPrivileges, `key "name" in [0] must be spelled "Name"`},
		{"deep nesting", strings.Repeat(`{"Labels":`, 70) + `{}` + strings.Repeat(`}`, 70), newCreate, "deeper than"},
		{"exec detach accepted", `{"Cmd":["id"],"Detach":true}`, newExec, ""},
		{"exec lower-case privileged", `{"Cmd":["id"],"privileged":true}`, newExec, `must be spelled "Privileged"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeStrict([]byte(tc.body), tc.into())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("decodeStrict: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("decodeStrict accepted %s", tc.body)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func newCreate() any     { return &container.CreateRequest{} }
func newService() any    { return &swarm.ServiceSpec{} }
func newPrivileges() any { return &[]plugin.Privilege{} }
func newExec() any       { return &execCreateRequest{} }

// What decodeStrict accepts has one reading: decoding it leniently, as any
// encoding/json does, gives the same value.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{"Image":"x","User":"1","HostConfig":{"Privileged":false,"CapDrop":["ALL"],"Binds":["/a:/b:ro"]}}`,
		`{"Image":"x","HostConfig":{"Privileged":false,"privileged":true}}`,
		`{"Image":"x","Labels":{"hy-home.tier":"app"},"NetworkingConfig":{"EndpointsConfig":{"n":{}}}}`,
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "cli", "create-28.2.2.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var strict container.CreateRequest
		if err := decodeStrict(body, &strict); err != nil {
			return
		}
		var lenient container.CreateRequest
		if err := json.Unmarshal(body, &lenient); err != nil {
			t.Fatalf("strict decoding accepted what encoding/json refuses: %v", err)
		}
		a, _ := json.Marshal(strict)
		b, _ := json.Marshal(lenient)
		if string(a) != string(b) {
			t.Fatalf("two readings of %q:\nstrict  %s\nlenient %s", body, a, b)
		}
	})
}
