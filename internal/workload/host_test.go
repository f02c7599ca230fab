package workload

import (
	"slices"
	"strings"
	"testing"
)

func TestSensitiveHostPath(t *testing.T) {
	for _, tc := range []struct {
		path, dataRoot, want string
	}{
		{"/srv/app/config", "", ""},
		{"/home/me/stack/traefik", "", ""},
		{"relative/path", "", ""},
		{"/etc", "", "under /etc"},
		{"/etc/./ssl", "", "under /etc"},
		{"//etc", "", "under /etc"},
		{"/dev/shm", "", "under /dev"},
		{"/proc/self/root/run", "", "magic links"},
		{"/proc", "", "under /proc"},
		{"/sys/firmware", "", "under /sys"},
		{"/boot", "", "under /boot"},
		{"/run", "", "under /run"},
		{"/var/run/docker.sock", "", "under /var/run"},
		{"/root/.ssh", "", "under /root"},
		{"/", "", "holds /var/lib/docker"},
		{"/var", "", "holds /var/lib/docker"},
		{"/var/lib", "", "holds /var/lib/docker"},
		{"/var/lib/docker/volumes/v/_data/link", "", "engine's data root /var/lib/docker"},
		{"/srv/docker/volumes/v/_data", "/srv/docker", "engine's data root /srv/docker"},
		{"/srv", "/srv/docker/", "holds /srv/docker"},
		{"/var/lib/docker/x", "/srv/docker", "under /var/lib/docker"},
		{"/srv/../etc", "", "`..` segment"},
		{"/var/run/../etc", "", "`..` segment"},
		{"/var/lib/containerd/io", "", "under /var/lib/containerd"},
	} {
		got := SensitiveHostPath(tc.path, tc.dataRoot)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("SensitiveHostPath(%q, %q) = %q, want %q", tc.path, tc.dataRoot, got, tc.want)
		}
	}
}

func TestLocalVolumeFollowsMount(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver string
		opts   map[string]string
		want   VolumeEffect
	}{
		{"plain", "", nil, VolumeEffect{}},
		{"o alone mounts nothing", "local", map[string]string{"o": "bind"}, VolumeEffect{}},
		{"bind", "local", map[string]string{"type": "none", "o": "bind", "device": "/srv"}, VolumeEffect{Type: "bind", Device: "/srv", HostPaths: []string{"/srv"}}},
		// mount(2) ignores the type of a bind: tmpfs, nfs, ramfs are labels.
		{"tmpfs that binds", "", map[string]string{"type": "tmpfs", "o": "bind", "device": "/"}, VolumeEffect{Type: "bind", Device: "/", HostPaths: []string{"/"}}},
		{"nfs that rbinds", "", map[string]string{"type": "nfs", "o": "addr=1.2.3.4,rbind", "device": "/etc"}, VolumeEffect{Type: "bind", Device: "/etc", HostPaths: []string{"/etc"}}},
		{"ro then rw: the last wins", "", map[string]string{"type": "none", "o": "bind,ro,rw", "device": "/srv"}, VolumeEffect{Type: "bind", Device: "/srv", HostPaths: []string{"/srv"}}},
		{"rw then ro", "", map[string]string{"type": "none", "o": "rw,bind,ro", "device": "/srv"}, VolumeEffect{Type: "bind", Device: "/srv", HostPaths: []string{"/srv"}, ReadOnly: true}},
		// moby/sys/mount does not trim: " bind" is file-system data.
		{"spaced bind is data", "", map[string]string{"type": "tmpfs", "o": " bind", "device": "tmpfs"}, VolumeEffect{Type: "tmpfs", Device: "tmpfs"}},
		{"ext4 disk", "", map[string]string{"type": "ext4", "device": "/dev/vda"}, VolumeEffect{Type: "ext4", Device: "/dev/vda", HostPaths: []string{"/dev/vda"}}},
		{"overlay layers", "", map[string]string{"type": "overlay", "device": "overlay", "o": "lowerdir=/etc:/run,upperdir=/srv/u,workdir=/srv/w"},
			VolumeEffect{Type: "overlay", Device: "overlay", HostPaths: []string{"/etc", "/run", "/srv/u", "/srv/w"}}},
		{"proc", "", map[string]string{"type": "proc", "device": "proc"}, VolumeEffect{Type: "proc", Device: "proc"}},
		{"device without type", "", map[string]string{"device": "/dev/sdb"}, VolumeEffect{Type: NoType, Device: "/dev/sdb", HostPaths: []string{"/dev/sdb"}}},
		{"unknown option", "", map[string]string{"mountpoint": "/x"}, VolumeEffect{Unknown: []string{"mountpoint"}}},
		{"plugin", "rexray/ebs", map[string]string{"type": "none", "o": "bind", "device": "/"}, VolumeEffect{Plugin: "rexray/ebs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LocalVolume(tc.driver, tc.opts)
			if got.Plugin != tc.want.Plugin || got.Type != tc.want.Type || got.Device != tc.want.Device || got.ReadOnly != tc.want.ReadOnly ||
				!slices.Equal(got.HostPaths, tc.want.HostPaths) || !slices.Equal(got.Unknown, tc.want.Unknown) {
				t.Errorf("LocalVolume = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDeviceDanger(t *testing.T) {
	for path, dangerous := range map[string]string{
		"/dev/dri/renderD128":       "",
		"/dev/ttyUSB0":              "",
		"/dev/serial/by-id/usb-zb":  "",
		"/dev/net/tun":              "",
		"/dev/mem":                  "memory",
		"/dev/./mem":                "memory",
		"/dev//kmem":                "memory",
		"/dev/vda":                  "host disk",
		"/dev/sda1":                 "host disk",
		"/dev/nvme0n1p2":            "host disk",
		"/dev/disk/by-id/x":         "host disk",
		"/dev/mapper/root":          "host disk",
		"/dev/cpu/0/msr":            "CPU registers",
		"/dev":                      "whole /dev",
		"/dev/":                     "whole /dev",
		"/srv/link":                 "outside /dev",
		"/dev/../etc/x":             "`..`",
		"/dev/input/event0":         "not a known peripheral",
		"/dev/kmsg":                 "not a known peripheral",
		"dev/null":                  "not an absolute path",
		"/dev/serial/by-id/../../x": "`..`",
	} {
		got := DeviceDanger(path)
		if dangerous == "" && got != "" || dangerous != "" && !strings.Contains(got, dangerous) {
			t.Errorf("DeviceDanger(%q) = %q, want %q", path, got, dangerous)
		}
	}
}

func TestResolveIdentityFollowsTheEngine(t *testing.T) {
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\napp:x:0:0::/app:/bin/sh\nweb:x:1000:1000::/w:/bin/sh\nwrap:x:4294967296:1000::/:/bin/sh\n")
	group := []byte("root:x:0:\nweb:x:1000:\ndocker:x:105:web\nstaff:x:50:\n")
	for _, tc := range []struct {
		spec     string
		groupAdd []string
		files    bool
		uid, gid uint32
		groups   []uint32
		err      string
	}{
		{spec: "app", files: true, uid: 0, gid: 0},
		{spec: "web", files: true, uid: 1000, gid: 1000, groups: []uint32{105}},
		{spec: "1000", files: true, uid: 1000, gid: 1000, groups: []uint32{105}},
		{spec: "web:staff", files: true, uid: 1000, gid: 50},
		// 4294967296 wraps to 0 as the engine converts it (uint32).
		{spec: "wrap", files: true, uid: 0, gid: 1000},
		{spec: "1000:1000", groupAdd: []string{"docker"}, files: true, uid: 1000, gid: 1000, groups: []uint32{105}},
		{spec: "1000:1000", groupAdd: []string{"7"}, uid: 1000, gid: 1000, groups: []uint32{7}},
		{spec: "", files: true, uid: 0, gid: 0},
		{spec: "ghost", files: true, err: "unable to find user ghost"},
		{spec: "app", err: "unable to find user app"},
		{spec: "1000:nogroup", files: true, err: "unable to find group nogroup"},
		{spec: "99999999999", err: "must be in range"},
		{spec: "+0", uid: 0},
	} {
		var p, g []byte
		if tc.files {
			p, g = passwd, group
		}
		id := ResolveIdentity(tc.spec, tc.groupAdd, p, g)
		switch {
		case tc.err != "":
			if !strings.Contains(id.Err, tc.err) {
				t.Errorf("%q: Err %q, want %q", tc.spec, id.Err, tc.err)
			}
		case id.Err != "" || id.UID != tc.uid || id.GID != tc.gid || !slices.Equal(id.Groups, tc.groups):
			t.Errorf("%q %v: %+v, want uid %d gid %d groups %v", tc.spec, tc.groupAdd, id, tc.uid, tc.gid, tc.groups)
		}
	}
	if NeedsFiles("1000:1000", []string{"7"}) || !NeedsFiles("1000", nil) || !NeedsFiles("app:1", nil) || !NeedsFiles("1:1", []string{"docker"}) {
		t.Error("NeedsFiles: only numeric user, group and extra groups need no file")
	}
	spec, add := Identity{UID: 1000, GID: 1000, Groups: []uint32{105, 105, 7}}.Pinned()
	if spec != "1000:1000" || !slices.Equal(add, []string{"105", "7"}) {
		t.Errorf("Pinned = %q %v", spec, add)
	}
}

func TestSeccompBeyondDefault(t *testing.T) {
	for _, tc := range []struct {
		name, profile, want string
	}{
		{"allow by default", `{"defaultAction":"SCMP_ACT_ALLOW"}`, "allows every syscall no rule names"},
		{"log by default", `{"defaultAction":"SCMP_ACT_LOG"}`, "allows every syscall"},
		{"errno plus allow-everything rule", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["unshare","setns","mount","read"],"action":"SCMP_ACT_ALLOW"}]}`, "allows mount, setns, unshare beyond"},
		{"case-insensitive keys, deprecated name", `{"DEFAULTACTION":"SCMP_ACT_ERRNO","Syscalls":[{"name":"kexec_load","action":"SCMP_ACT_ALLOW"}]}`, "allows kexec_load"},
		{"trace lets a tracer decide", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_TRACE"}]}`, "allows ptrace"},
		{"clone with no flag condition", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW"}]}`, "allows clone"},
		{"a cap the default needs, on an arch it does not", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["bpf"],"action":"SCMP_ACT_ALLOW"}]}`, "allows bpf"},
		{"listener", `{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/agent.sock"}`, "listenerPath"},
		{"spec allow flag", `{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}`, "speculative store bypass"},
		{"does not decode", `{"defaultAction":`, "does not decode"},
		{"strict", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}]}`, ""},
		{"denying rules are fine", `{"defaultAction":"SCMP_ACT_KILL","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO"}]}`, ""},
		{"the default's own conditional rule", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}`, ""},
		{"stricter than a conditional default rule", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["umount2"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN","CAP_SYS_BOOT"]}}]}`, ""},
		// Two conditions on one argument are alternatives for runc: each
		// must be one the default allows.
		{"alternatives on one argument", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"},{"index":0,"value":4,"op":"SCMP_CMP_EQ"}]}]}`, "allows personality"},
	} {
		got := strings.Join(SeccompBeyondDefault(tc.profile), "; ")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
