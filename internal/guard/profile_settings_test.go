package guard

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/plugin"
)

// Profiles' plugins, permits and revealed secrets are read strictly,
// normalised as the engine names plugins, and inherited through include.
func TestProfileSettings(t *testing.T) {
	cfg, err := ParseConfig("guard.yaml", []byte(`
limits:
  max_buffered: 16MiB
  max_connections: 64
  body_timeout: 3s
profiles:
  base:
    include: [admission]
    plugins: [vieux/sshfs, docker.io/acme/p:2]
    permit: [infra-names]
  ops:
    include: [base]
    allow: [POST /build]
    permit: [retag-in-use]
    reveal: [join-tokens]
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBuffered != 16<<20 || cfg.MaxConnections != 64 || cfg.BodyTimeout != 3*time.Second {
		t.Errorf("limits: %d %d %v", cfg.MaxBuffered, cfg.MaxConnections, cfg.BodyTimeout)
	}
	ops := cfg.Profiles["ops"]
	if got := ops.Plugins(); !slices.Equal(got, []string{"acme/p:2", "vieux/sshfs:latest"}) {
		t.Errorf("plugins %v", got)
	}
	if got := ops.PermitList(); !slices.Equal(got, []string{"infra-names", "retag-in-use"}) {
		t.Errorf("permits %v", got)
	}
	if !ops.Reveals(SecretJoinTokens) || !ops.Reveals(SecretEnvironment) {
		t.Errorf("reveals %v (join-tokens listed, environment from admission)", ops.RevealList())
	}
	if !ops.Allows(routes.byName["POST /build"]) || cfg.Profiles["base"].Allows(routes.byName["POST /build"]) {
		t.Error("POST /build: ops only")
	}
	adm := builtinProfiles()[ProfileAdmission]
	if adm.Reveals(SecretJoinTokens) || len(adm.Plugins()) != 0 || len(adm.PermitList()) != 0 {
		t.Error("admission reveals join tokens, names a plugin or permits something")
	}
	for _, p := range []string{ProfileReadonly, ProfileShipper} {
		if got := builtinProfiles()[p].RevealList(); len(got) != 0 {
			t.Errorf("%s reveals %v", p, got)
		}
	}
	for _, w := range admissionWithheld {
		if adm.Allows(routes.byName[w]) {
			t.Errorf("admission allows %s", w)
		}
	}

	for text, want := range map[string]string{
		"profiles:\n  x:\n    include: [admission]\n    permit: [everything]\n":    `guard.yaml:4: profile "x": unknown permit "everything" (want one of retag-in-use, infra-names, host-interface-networks)`,
		"profiles:\n  x:\n    include: [readonly]\n    reveal: [passwords]\n":      `guard.yaml:4: profile "x": unknown reveal "passwords" (want one of environment, log-options, volume-options, exec-commands, join-tokens)`,
		"profiles:\n  x:\n    include: [admission]\n    plugins: [\"Bad Name\"]\n": `guard.yaml:4: profile "x": plugin "Bad Name": invalid reference format: repository name (library/Bad Name) must be lowercase`,
		"limits:\n  max_connections: 0\n":                                          `guard.yaml: limits.max_connections 0: want a positive number`,
		"limits:\n  body_timeout: soon\n":                                          `guard.yaml: limits.body_timeout "soon" is not a positive duration (e.g. 10s)`,
		"limits:\n  max_buffered: lots\n":                                          `guard.yaml: limits.max_buffered "lots" is not a size (e.g. 8MiB)`,
	} {
		_, err := ParseConfig("guard.yaml", []byte(text))
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", text, err, want)
		}
	}
}

// A plugin mount with "ro" is read-only, unless it is a recursive bind
// without "rro" (runc remounts only its top read-only).
func TestPluginMountModes(t *testing.T) {
	src := func(s string) *string { return &s }
	p := &plugin.Plugin{Name: "p:latest", Config: plugin.Config{Mounts: []plugin.Mount{
		{Source: src("/srv/ro"), Destination: "/a", Type: "bind", Options: []string{"bind", "ro"}},
		{Source: src("/srv/rw"), Destination: "/b", Type: "bind", Options: []string{"rbind"}},
		{Source: src("/srv/rbind-ro"), Destination: "/c", Type: "bind", Options: []string{"rbind", "ro"}},
		{Source: src("/srv/rro"), Destination: "/d", Type: "bind", Options: []string{"rbind", "rro", "ro"}},
		{Source: src("/srv/ro-then-rw"), Destination: "/e", Type: "bind", Options: []string{"ro", "rw"}},
	}}}
	privs, ro := runtimePrivileges(p)
	w, d := pluginWorkload("plugin p", privs, ro)
	if d != nil {
		t.Fatal(d)
	}
	got := map[string]bool{}
	for _, m := range w.Mounts {
		got[m.Source] = m.ReadOnly
	}
	want := map[string]bool{"/srv/ro": true, "/srv/rw": false, "/srv/rbind-ro": false, "/srv/rro": true, "/srv/ro-then-rw": false}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s read-only %v, want %v", k, got[k], v)
		}
	}
}

// Networks on a host interface's link need the permit; plain bridges and
// overlays do not.
func TestNetworkCreateDecisions(t *testing.T) {
	a := &admission{}
	prof := builtinProfiles()[ProfileAdmission]
	permitted := emptyProfile("lan")
	permitted.permit[PermitHostInterfaceNetworks] = true
	tgt := &target{route: routes.byName["POST /networks/create"]}
	r, _ := http.NewRequest("POST", "/networks/create", nil)
	r.Header.Set("Content-Type", "application/json")
	for body, refused := range map[string]bool{
		`{"Name":"n"}`: false,
		`{"Name":"n","Driver":"bridge","CheckDuplicate":true}`:                                              false,
		`{"Name":"n","Driver":"overlay","Attachable":true}`:                                                 false,
		`{"Name":"n","Driver":"bridge","Options":{"com.docker.network.bridge.gateway_mode_ipv4":"nat"}}`:    false,
		`{"Name":"n","Driver":"macvlan","Options":{"parent":"eth0"}}`:                                       true,
		`{"Name":"n","Driver":"ipvlan"}`:                                                                    true,
		`{"Name":"n","Options":{"com.docker.network.bridge.name":"br0"}}`:                                   true,
		`{"Name":"n","Options":{"COM.DOCKER.NETWORK.BRIDGE.NAME":"br0"}}`:                                   true,
		`{"Name":"n","Driver":"bridge","Options":{"com.docker.network.bridge.gateway_mode_ipv4":"routed"}}`: true,
		`{"Name":"n","Driver":"bridge","ConfigFrom":{"Network":"cfg"}}`:                                     true,
	} {
		v := a.networkCreate(prof, tgt, r, []byte(body))
		if (v.deny != nil) != refused {
			t.Errorf("%s: refused %v, want %v (%v)", body, v.deny != nil, refused, v.deny)
		}
		if v.deny != nil && (v.deny.status != http.StatusForbidden || !strings.Contains(v.deny.message, "host-interface-networks")) {
			t.Errorf("%s: %d %s", body, v.deny.status, v.deny.message)
		}
		if v := a.networkCreate(permitted, tgt, r, []byte(body)); v.deny != nil {
			t.Errorf("%s through a profile that permits it: %s", body, v.deny.message)
		}
	}
	// Whatever a profile permits: plugin drivers are unknown (the guard can't
	// tell what they attach to), and options outside the bridge, overlay,
	// macvlan and ipvlan drivers' known ones are refused.
	for _, body := range []string{
		`{"Name":"n","Driver":"weave"}`,
		`{"Name":"n","Driver":"host"}`,
		`{"Name":"n","Driver":"bridge","Options":{"com.example.unknown":"x"}}`,
	} {
		for _, p := range []*Profile{prof, permitted} {
			v := a.networkCreate(p, tgt, r, []byte(body))
			if v.deny == nil || v.deny.status != http.StatusForbidden || v.deny.reason != reasonField {
				t.Errorf("%s through %s: %+v, want 403 field", body, p.Name, v.deny)
			}
		}
	}
}

// Tag targets are read as the engine reads them, in every spelling.
func TestTagTargets(t *testing.T) {
	for q, want := range map[string][]string{
		"repo=hyhome&tag=local":       {"docker.io/library/hyhome:local"},
		"repo=hyhome":                 {"docker.io/library/hyhome:latest"},
		"repo=hyhome:local":           {"docker.io/library/hyhome:local"},
		"repo=reg:5000/a/b:1&tag=2":   {"reg:5000/a/b:2"},
		"Repo=hyhome&TAG=local":       {"docker.io/library/hyhome:local"},
		"repo=a&repo=b&tag=1":         {"docker.io/library/a:1", "docker.io/library/b:1"},
		"container=x&comment=no+repo": nil,
	} {
		v, _ := url.ParseQuery(q)
		got, err := tagTargets(v)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", q, got, err, want)
		}
	}
	v, _ := url.ParseQuery("repo=BAD&tag=x")
	if _, err := tagTargets(v); err == nil {
		t.Error("an invalid repository was not an error")
	}
	for q, imp := range map[string]bool{"fromSrc=-&repo=x": true, "fromImage=x": false, "fromImage=&fromSrc=-": true, "fromimage=x&fromSrc=-": true} {
		v, _ := url.ParseQuery(q)
		if importRequest(v) != imp {
			t.Errorf("%s: import %v", q, !imp)
		}
	}
}
