package guard

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/policy"
)

// admission.host_sources, volume_types and log_drivers: what admission
// allows beyond the baseline, with ${VAR} from the guard's environment.
func TestLoadConfigAdmissionAllow(t *testing.T) {
	t.Setenv("HYHOME_TEST_DEPLOY", "/opt/hyhome/deploy")
	cfg, err := LoadConfig(filepath.Join("testdata", "config", "admission-allow.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Allow
	if !slices.Equal(a.HostSources, []string{"/opt/hyhome/deploy/traefik/dynamic", "/srv/hyhome/config"}) {
		t.Errorf("host_sources %q", a.HostSources)
	}
	if !slices.Equal(a.VolumeTypes, []string{"tmpfs"}) || !slices.Equal(a.LogDrivers["json-file"], []string{"max-size", "max-file"}) || len(a.LogDrivers) != 1 {
		t.Errorf("volume_types %q, log_drivers %v", a.VolumeTypes, a.LogDrivers)
	}
	// Without a configuration admission allows no host directory.
	if d := AdmissionAllow(policy.Allowlists{}); d.HostSources == nil || len(d.HostSources) != 0 || d.LogDrivers != nil {
		t.Errorf("defaults %+v: want no host directory and the default log drivers", d)
	}
}

func TestLoadConfigAdmissionAllowErrors(t *testing.T) {
	for file, want := range map[string]string{
		"invalid-host-source-relative.yaml":  `invalid-host-source-relative.yaml:3: admission.host_sources: "traefik/dynamic" is not an absolute path`,
		"invalid-host-source-sensitive.yaml": `invalid-host-source-sensitive.yaml:4: admission.host_sources: "/var/run" is under /var/run, a host tree no container may mount`,
		"invalid-host-source-unset.yaml":     `invalid-host-source-unset.yaml:3: admission.host_sources: "${HYHOME_TEST_UNSET_DIR}/config": HYHOME_TEST_UNSET_DIR is not set`,
		"invalid-log-drivers.yaml":           "invalid-log-drivers.yaml:2:",
	} {
		t.Run(file, func(t *testing.T) {
			_, err := LoadConfig(filepath.Join("testdata", "config", file))
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.HasPrefix(err.Error(), filepath.Join("testdata", "config", want)) {
				t.Errorf("error\n  %s\nwant\n  testdata/config/%s", err, want)
			}
		})
	}
}

// The stack's own guard profile names the stack's host directories: every
// host path the reference stack mounts is allowed by it or exempted by the
// service's ADR, and nothing else is allowed.
func TestStackProfileAllowsTheStack(t *testing.T) {
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HYHOME_REPO_DIR", repo)
	cfg, err := LoadConfig(filepath.Join(repo, "deploy", "guard", "guard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := compose.Load(context.Background(), compose.Options{Files: []string{filepath.Join(repo, "deploy", "compose.yaml")}, ProjectName: "hyhome"})
	if err != nil {
		t.Fatal(err)
	}
	env := &policy.Env{ADRs: adr.NewResolver(filepath.Join(repo, "docs", "adr")), Allow: cfg.Allow,
		Only: map[string]bool{"host-path": true, "volume-type": true, "log-driver": true}}
	var exempted int
	for _, f := range policy.Evaluate(res.Project, env) {
		if !f.Exempted {
			t.Errorf("%s: %s: %s", f.Service, f.Rule, f.Message)
			continue
		}
		exempted++
	}
	if exempted == 0 {
		t.Error("no exempted host path: the stack's ADR mounts were not judged")
	}
	if got := policy.Evaluate(res.Project, &policy.Env{ADRs: env.ADRs, Allow: AdmissionAllow(policy.Allowlists{}), Only: env.Only}); len(got) <= exempted {
		t.Error("the default profile allows the stack's configuration directories: the test proves nothing")
	}
}
