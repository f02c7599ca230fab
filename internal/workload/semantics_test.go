package workload

import "testing"

func TestParseSecurityOptFollowsTheDaemon(t *testing.T) {
	for opt, want := range map[string]SecurityOption{
		"no-new-privileges":       {Key: "no-new-privileges", Value: "true", Valid: true},
		"no-new-privileges=true":  {Key: "no-new-privileges", Value: "true", Valid: true},
		"no-new-privileges:false": {Key: "no-new-privileges", Value: "false", Valid: true},
		"seccomp=unconfined":      {Key: "seccomp", Value: "unconfined", Valid: true},
		"label=type:svirt_t":      {Key: "label", Value: "type:svirt_t", Valid: true},
		"label:disable":           {Key: "label", Value: "disable", Valid: true},
		"disable":                 {Key: "label", Value: "disable", Valid: true},
		"bogus":                   {Key: "bogus", Valid: false},
	} {
		if got := ParseSecurityOpt(opt); got != want {
			t.Errorf("ParseSecurityOpt(%q) = %+v, want %+v", opt, got, want)
		}
	}
}

func TestNoNewPrivilegesLastEntryWins(t *testing.T) {
	for _, tc := range []struct {
		opts         []string
		set, invalid bool
		idx          int
	}{
		{nil, false, false, -1},
		{[]string{"no-new-privileges"}, true, false, 0},
		{[]string{"no-new-privileges:true", "no-new-privileges:false"}, false, false, 1},
		{[]string{"no-new-privileges:false", "apparmor=x", "no-new-privileges=1"}, true, false, 2},
		{[]string{"no-new-privileges:maybe"}, false, true, 0},
	} {
		w := &Workload{SecurityOpt: tc.opts}
		set, idx, invalid := w.NoNewPrivileges()
		if set != tc.set || idx != tc.idx || invalid != tc.invalid {
			t.Errorf("%v: set=%v idx=%d invalid=%v", tc.opts, set, idx, invalid)
		}
	}
}

func TestCapabilitiesAndRoot(t *testing.T) {
	for in, want := range map[string]string{"cap_net_admin": "NET_ADMIN", "CAP_SYS_ADMIN": "SYS_ADMIN", " all ": "ALL", "Chown": "CHOWN"} {
		if got := NormalizeCap(in); got != want {
			t.Errorf("NormalizeCap(%q) = %q", in, got)
		}
	}
	if !(&Workload{CapDrop: []string{"net_raw", "all"}}).DropsAll() || (&Workload{CapDrop: []string{"NET_RAW"}}).DropsAll() {
		t.Error("DropsAll")
	}
	for spec, root := range map[string]bool{"root": true, "0": true, "0:1000": true, "root:staff": true, "00": true,
		"+0": true, "-0": true, "+0:+0": true, "-00": true, "+1000": false,
		"1000": false, "1000:0": false, "nobody": false, "": false, "rooted": false} {
		if got := RootUser(spec); got != root {
			t.Errorf("RootUser(%q) = %v", spec, got)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "1k": 1 << 10, "256M": 256 << 20, "256m": 256 << 20, "1.5g": 3 << 29,
		"2GiB": 2 << 30, "8GB": 8 << 30, "64Mi": 64 << 20, "1t": 1 << 40} {
		if got, ok := ParseMemory(in); !ok || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1g", "1x", "g"} {
		if _, ok := ParseMemory(bad); ok {
			t.Errorf("ParseMemory(%q) succeeded", bad)
		}
	}
	if s := FormatBytes(1536 << 20); s != "1.5 GiB" {
		t.Errorf("FormatBytes = %q", s)
	}
}

func TestDockerSocketPaths(t *testing.T) {
	for p, want := range map[string]bool{"/var/run/docker.sock": true, "/run/docker.sock": true, "/var/run/": true,
		"/home/me/.docker/run/docker.sock": true, "/run/containerd/containerd.sock": true, "/run/containerd": true,
		"/var/lib/docker": false, "/srv/data": false} {
		if got := IsDockerSocket(p); got != want {
			t.Errorf("IsDockerSocket(%q) = %v", p, got)
		}
	}
}
