package workload

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/moby/profiles/seccomp"
)

// The local driver's options, read as mount(2) reads them: any bind or
// rbind word in o makes device a host path, whatever type says, and the
// last of ro and rw decides.
func FuzzLocalVolume(f *testing.F) {
	f.Add("local", "tmpfs", "bind", "/")
	f.Add("", "nfs", "addr=1.2.3.4,rbind,ro,rw", "/etc")
	f.Add("", "overlay", "lowerdir=/etc:/run,upperdir=/u", "overlay")
	f.Add("", "ext4", "", "/dev/vda")
	f.Add("plugin", "none", "bind", "/")
	f.Fuzz(func(t *testing.T, driver, typ, o, device string) {
		opts := map[string]string{"type": typ, "o": o, "device": device}
		e := LocalVolume(driver, opts)
		if driver != "" && driver != "local" {
			if e.Plugin != driver {
				t.Fatalf("driver %q not reported as a plugin: %+v", driver, e)
			}
			return
		}
		words := strings.Split(o, ",")
		mounts := typ != "" || device != ""
		binds := slices.Contains(words, "bind") || slices.Contains(words, "rbind")
		if mounts && binds && (e.Type != "bind" || !slices.Contains(e.HostPaths, device)) {
			t.Fatalf("o=%q binds %q, but the effect is %+v", o, device, e)
		}
		if !mounts && e.Type != "" {
			t.Fatalf("no type and no device mount nothing, but the effect is %+v", e)
		}
		last := ""
		for _, w := range words {
			if w == "ro" || w == "rw" {
				last = w
			}
		}
		if mounts && e.ReadOnly != (last == "ro") {
			t.Fatalf("o=%q: read-only %v", o, e.ReadOnly)
		}
	})
}

// A path in or above a sensitive tree, or with a .. segment, is never
// passed.
func FuzzSensitiveHostPath(f *testing.F) {
	for _, s := range []string{"/etc", "/srv/app", "//proc/1/root", "/var/run/../etc", "/", "/var/lib", "relative"} {
		f.Add(s, "")
	}
	f.Add("/srv/docker/volumes", "/srv/docker")
	f.Fuzz(func(t *testing.T, p, dataRoot string) {
		got := SensitiveHostPath(p, dataRoot)
		p = strings.TrimSpace(p)
		if !strings.HasPrefix(p, "/") {
			return
		}
		if slices.Contains(strings.Split(p, "/"), "..") && got == "" {
			t.Fatalf("%q has a .. segment and passed", p)
		}
		clean := path.Clean(p)
		if dataRoot == "" {
			dataRoot = DefaultDataRoot
		}
		for _, tree := range append([]string{"/proc", path.Clean(dataRoot)}, SensitiveHostTrees...) {
			if !strings.HasPrefix(tree, "/") {
				continue
			}
			if (Within(clean, tree) || Within(tree, clean)) && got == "" {
				t.Fatalf("%q (data root %q) is in or above %s and passed", p, dataRoot, tree)
			}
		}
	})
}

// Resolving a user never panics, and a numeric user in range is that uid
// whatever the files say (the engine matches numeric users by uid).
func FuzzResolveIdentity(f *testing.F) {
	f.Add("app", "app:x:0:0::/:/x\n", "docker:x:105:app\n", "docker")
	f.Add("1000", "web:x:1000:1000::/:/x\n", "", "")
	f.Add("+0:-1", "", "", "7")
	f.Fuzz(func(t *testing.T, spec, passwd, group, add string) {
		var groupAdd []string
		if add != "" {
			groupAdd = strings.Split(add, ",")
		}
		id := ResolveIdentity(spec, groupAdd, []byte(passwd), []byte(group))
		u, _, _ := strings.Cut(spec, ":")
		if !isNumericID(u) || u == "" || id.Err != "" {
			return
		}
		n, ok := parseSmall(u)
		if ok && id.UID != uint32(n) {
			t.Fatalf("spec %q resolved to uid %d", spec, id.UID)
		}
	})
}

func parseSmall(s string) (int64, bool) {
	s = strings.TrimPrefix(s, "+")
	if s == "" || len(s) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// A profile that allows what it does not name is always reported, read as
// the engine reads it (encoding/json into the profile types).
func FuzzSeccompBeyondDefault(f *testing.F) {
	f.Add(`{"defaultAction":"SCMP_ACT_ALLOW"}`)
	f.Add(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ALLOW"}]}`)
	f.Add(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}`)
	f.Fuzz(func(t *testing.T, profile string) {
		got := SeccompBeyondDefault(profile)
		var p seccomp.Seccomp
		if json.Unmarshal([]byte(profile), &p) != nil {
			if len(got) == 0 {
				t.Fatalf("%q does not decode and was not reported", profile)
			}
			return
		}
		if allowing(p.DefaultAction) && len(got) == 0 {
			t.Fatalf("%s allows by default and was not reported", profile)
		}
	})
}
