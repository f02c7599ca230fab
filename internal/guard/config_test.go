package guard

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
)

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "config", "valid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBody != 1<<20 || cfg.FailOn != policy.Warning || !cfg.Strict {
		t.Errorf("max_body %d, fail_on %v, strict %v", cfg.MaxBody, cfg.FailOn, cfg.Strict)
	}
	backup := cfg.Profiles["backup"]
	if backup == nil {
		t.Fatal("profile backup missing")
	}
	got := backup.Routes()
	for _, want := range []string{"GET /_ping", "GET /containers/{name}/logs", "GET /containers/{name}/archive", "HEAD /containers/{name}/archive"} {
		if !slices.Contains(got, want) {
			t.Errorf("backup lacks %s (includes should carry readonly and traefik)", want)
		}
	}
	if slices.Contains(got, "POST /containers/create") {
		t.Error("backup allows container create")
	}
}

// Each invalid file has its exact message, naming file and line.
func TestLoadConfigErrors(t *testing.T) {
	for file, want := range map[string]string{
		"invalid-unknown-key.yaml":         "invalid-unknown-key.yaml:2: field profile not found in type guard.fileDoc",
		"invalid-unknown-profile-key.yaml": "invalid-unknown-profile-key.yaml:5: field deny not found in type guard.fileProfile",
		"invalid-route.yaml":               "invalid-route.yaml:5: profile \"traefik\": unknown route \"GET /containers/{id}/json\" (`hyhome guard routes` lists them)",
		"invalid-route-pattern.yaml":       "invalid-route-pattern.yaml:4: profile \"traefik\": unknown route \"GET /containers/{name:.*}/json\": write it without the variable pattern (GET /containers/{name}/json)",
		"invalid-method-case.yaml":         "invalid-method-case.yaml:4: profile \"traefik\": unknown route \"get /containers/json\": methods are upper-case (GET /containers/json)",
		"invalid-builtin.yaml":             "invalid-builtin.yaml:2: profile \"readonly\" is built in and cannot be redefined",
		"invalid-include.yaml":             "invalid-include.yaml:3: unknown profile \"read-only\" (built in: admission, readonly, shipper)",
		"invalid-cycle.yaml":               "invalid-cycle.yaml:5: profile \"a\" includes itself",
		"invalid-empty-profile.yaml":       "invalid-empty-profile.yaml:2: profile \"nothing\" allows nothing",
		"invalid-max-body.yaml":            "invalid-max-body.yaml: max_body \"lots\" is not a size (e.g. 4MiB)",
		"invalid-fail-on.yaml":             "invalid-fail-on.yaml: admission.fail_on \"info\": want error or warning",
		"invalid-profile-name.yaml":        "invalid-profile-name.yaml:2: profile name \"Traefik\": use lower-case letters, digits, - and _",
		"invalid-type.yaml":                "invalid-type.yaml:2: cannot construct !!str `sometimes` into bool",
	} {
		t.Run(file, func(t *testing.T) {
			_, err := LoadConfig(filepath.Join("testdata", "config", file))
			if err == nil {
				t.Fatal("loaded")
			}
			if got := err.Error(); got != filepath.Join("testdata", "config", want) && got != "testdata/config/"+want {
				t.Errorf("error\n  %s\nwant\n  testdata/config/%s", got, want)
			}
		})
	}
}

func TestParseListen(t *testing.T) {
	for in, want := range map[string]Listener{
		"unix:///run/hyhome/admission.sock=admission": {"unix", "/run/hyhome/admission.sock", "admission"},
		"tcp://0.0.0.0:2375=readonly":                 {"tcp", "0.0.0.0:2375", "readonly"},
		"tcp://:2376=shipper":                         {"tcp", "127.0.0.1:2376", "shipper"},
		"tcp://[::1]:2375=readonly":                   {"tcp", "[::1]:2375", "readonly"},
	} {
		got, err := ParseListen(in)
		if err != nil || got != want {
			t.Errorf("ParseListen(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"tcp://:2375", "unix://relative.sock=readonly", "2375=readonly", "tcp://host=readonly", "unix:///x.sock="} {
		if _, err := ParseListen(bad); err == nil {
			t.Errorf("ParseListen(%q) accepted", bad)
		}
	}
	if loopback("0.0.0.0:2375") || !loopback("127.0.0.1:2375") || !loopback("[::1]:1") || !loopback("localhost:1") {
		t.Error("loopback misjudges")
	}
}
