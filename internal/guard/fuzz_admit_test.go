package guard

import (
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// FuzzCreateBodyHostPaths decodes container create bodies as the guard
// does and checks the request → workload mapping against an independent
// reading of the body: every host path the engine would mount (a bind's
// source, the device of a volume the local driver binds) is among the
// workload's host paths, and under the admission profile's defaults (no
// host directory allowed) host-path refuses each. The field table and the
// conversion never panic on what decodes.
func FuzzCreateBodyHostPaths(f *testing.F) {
	for _, s := range []string{
		`{"Image":"a","HostConfig":{"Binds":["/:/host:ro","/proc/self/root/run:/h"]}}`,
		`{"Image":"a","HostConfig":{"Mounts":[{"Type":"volume","Target":"/h","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"tmpfs","o":"bind","device":"/"}}}}]}}`,
		`{"Image":"a","HostConfig":{"Mounts":[{"Type":"bind","Source":"/srv/x","Target":"/x","BindOptions":{"Propagation":"rshared"}}]}}`,
		`{"Image":"a","Volumes":{"/d":{}},"HostConfig":{"VolumeDriver":"x","Binds":["v:/v"],"Devices":[{"PathOnHost":"/dev/./vda"}]}}`,
		`{"Image":"a","User":"app","HostConfig":{"GroupAdd":["docker"],"MaskedPaths":[],"LogConfig":{"Type":"syslog"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req container.CreateRequest
		if decodeStrict(body, &req) != nil {
			return
		}
		_ = judgeFields(&req)
		cfg, hc := req.Config, req.HostConfig
		if cfg == nil {
			cfg = &container.Config{}
		}
		if hc == nil {
			hc = &container.HostConfig{}
		}
		w := engine.Container(engine.ContainerInput{Config: cfg, HostConfig: hc, Kind: workload.KindRequest})

		var want []string
		for _, b := range hc.Binds {
			// One part is an anonymous volume at that path, not a bind.
			if src, _, two := strings.Cut(b, ":"); two && strings.HasPrefix(src, "/") {
				want = append(want, src)
			}
		}
		for _, m := range hc.Mounts {
			switch {
			case m.Type == mount.TypeBind && m.Source != "":
				want = append(want, m.Source)
			case m.Type == mount.TypeVolume && m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil:
				d := m.VolumeOptions.DriverConfig
				o := d.Options
				words := strings.Split(o["o"], ",")
				if (d.Name == "" || d.Name == "local") && (o["type"] != "" || o["device"] != "") &&
					(slices.Contains(words, "bind") || slices.Contains(words, "rbind")) {
					want = append(want, o["device"])
				}
			}
		}
		var have []string
		for _, m := range w.Mounts {
			have = append(have, m.HostPaths()...)
		}
		for _, p := range want {
			if !slices.Contains(have, p) {
				t.Fatalf("the engine would mount host path %q, the workload's mounts expose %q", p, have)
			}
		}
		if len(want) == 0 {
			return
		}
		env := &policy.Env{Strict: true, Only: map[string]bool{"host-path": true}, Allow: AdmissionAllow(policy.Allowlists{})}
		var found int
		for _, f := range policy.Evaluate(&workload.Project{Workloads: []*workload.Workload{w}}, env) {
			if f.Rule == "host-path" {
				found++
			}
		}
		if found < len(want) {
			t.Fatalf("host paths %q, %d host-path findings", want, found)
		}
	})
}
