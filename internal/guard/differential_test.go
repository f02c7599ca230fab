package guard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// The differential proof: each admission rule guards something that
// exists. Every row first sends its request straight to the engine (not
// through the guard), in a sandbox: a container of the FROM-scratch probe
// image that reports one fact (testprog check) and is removed; the fact
// shows the effect is real (the bind is writable, the device is there, the
// uid is 0, /sys/firmware is readable). Then the same request goes to the
// guard, which must answer 403 naming the rule.
//
// Rules without a row judge metadata rather than what a container can
// reach (tier-label, metrics-endpoint, image-pinned, healthcheck,
// read-only-rootfs, pids-limit, infra-net, memory-budget, traefik-tls,
// baseline-anchor, adr-exemption), or would expose this shared machine
// beyond loopback (published-ports: publishing on every interface).

// diffEnv is what the rows share.
type diffEnv struct {
	img dockertest.Images
	// rootName is an image whose /etc/passwd maps the name "app" to uid 0.
	rootName string
	// dir is a world-writable host directory probes write into.
	dir string
	// engineSocket is the engine's unix socket, the requests' direct way.
	engineSocket string
	socketGID    uint32
}

// diffCase is one row.
type diffCase struct {
	name string
	// rule is the rule the guard's 403 must name, with more substrings of
	// its message in want.
	rule string
	want []string
	// setup creates what the row needs directly on the engine.
	setup func(t *testing.T)
	// req is the container run directly; its Cmd is the probe.
	req container.CreateRequest
	// effect is a substring of the probe's output that proves the effect,
	// or check inspects the output (and the host) itself.
	effect string
	check  func(t *testing.T, out string)
	// baseline, when set, runs the compliant container with the same
	// probe and requires the effect to be absent there.
	baseline bool
	// refusedBefore names the engine version before which the engine
	// itself refuses the request, with the message it gives: there the
	// row shows the refusal instead of the effect.
	refusedBefore, refusal string
	// guard are the raw requests the guard must refuse (the same create
	// when empty).
	guard []string
}

func TestDifferential(t *testing.T) {
	tg := startGuard(t)
	env := newDiffEnv(t)
	for _, c := range diffCases(t, env) {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup(t)
			}
			out, refused := env.run(t, c.req, c.refusal)
			switch {
			case refused:
				t.Logf("this engine refuses the request itself (engines before %s do): %s", c.refusedBefore, out)
			case c.check != nil:
				c.check(t, out)
			case !strings.Contains(out, c.effect):
				t.Fatalf("sent directly to the engine, the request did not show its effect: probe said %q, want %q", out, c.effect)
			}
			if c.baseline && !refused {
				base := compliant(env.img.NonRoot, func(r *container.CreateRequest) { r.Config.Cmd, r.Config.Tty = c.req.Config.Cmd, true })
				if bo, _ := env.run(t, base, ""); c.effect != "" && strings.Contains(bo, c.effect) {
					t.Fatalf("the compliant container shows the same effect (%q): the row proves nothing", bo)
				}
			}
			guard := c.guard
			if len(guard) == 0 {
				guard = []string{request("POST", "/v1.41/containers/create", mustJSON(t, c.req))}
			}
			for _, g := range guard {
				r := raw(t, tg.sockets[ProfileAdmission], g)
				removeCreated(t, r)
				if r.status != http.StatusForbidden || !strings.Contains(r.message(), "hyhome guard: denied by ") || !strings.Contains(r.message(), c.rule+" [") {
					t.Fatalf("through the guard: %d %q, want 403 naming %s", r.status, r.message(), c.rule)
				}
				for _, w := range c.want {
					if !strings.Contains(r.message(), w) {
						t.Errorf("the guard's message %q lacks %q", r.message(), w)
					}
				}
			}
		})
	}
}

func newDiffEnv(t *testing.T) *diffEnv {
	t.Helper()
	host := engineHost(t)
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Fatalf("the differential tests talk to the engine's unix socket; DOCKER_HOST is %s", host)
	}
	gid, ok := socketGID(sock)
	if !ok {
		t.Fatalf("cannot stat the engine's socket %s", sock)
	}
	img := dockertest.Build(t)
	env := &diffEnv{img: img, engineSocket: sock, socketGID: gid, dir: t.TempDir()}
	if err := os.Chmod(env.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	env.rootName = userImage(t, "app-is-root", "root:x:0:0:root:/:/testprog\napp:x:0:0:app:/:/testprog\n", "", "")
	return env
}

// userImage builds the probe image with its own /etc/passwd and /etc/group
// (empty: none) and USER, once per tag in this process.
func userImage(t *testing.T, tag, passwd, group, user string) string {
	t.Helper()
	img := dockertest.Build(t)
	ref := "hyhome-test/testprog:" + tag + "-" + dockertest.RunID
	userImagesMu.Lock()
	defer userImagesMu.Unlock()
	if userImages[ref] {
		return ref
	}
	// FROM scratch has no shell: the probe binary writes the files at
	// build time.
	var lines []string
	for _, f := range []struct{ path, content string }{{"/etc/passwd", passwd}, {"/etc/group", group}} {
		if f.content != "" {
			b, _ := json.Marshal([]string{"/testprog", "check", "mkfile", f.path, f.content})
			lines = append(lines, "RUN "+string(b))
		}
	}
	if user != "" {
		lines = append(lines, "USER "+user)
	}
	if err := dockertest.BuildScratchImage(context.Background(), dockertest.Client(t), ref, img.Binary, "/testprog", "", lines); err != nil {
		t.Fatal(err)
	}
	userImages[ref] = true
	dockertest.ProcessScoped("image", ref) // shared by the differential tests
	return ref
}

var (
	userImagesMu sync.Mutex
	userImages   = map[string]bool{}
)

// run creates the container by sending its body straight to the engine,
// starts it, waits for the probe to exit and returns what it printed. When
// the engine refuses the create with refusal in its message, it returns the
// message and true.
func (e *diffEnv) run(t *testing.T, req container.CreateRequest, refusal string) (string, bool) {
	t.Helper()
	r := raw(t, e.engineSocket, request("POST", "/v1.41/containers/create", mustJSON(t, req)))
	var created struct{ Id string }
	if r.status != http.StatusCreated || json.Unmarshal([]byte(r.body), &created) != nil {
		if refusal != "" && strings.Contains(r.message(), refusal) {
			return r.message(), true
		}
		t.Fatalf("the engine itself refused the request: %d %s", r.status, r.message())
	}
	c := dockertest.Client(t)
	t.Cleanup(func() { dockertest.RemoveContainer(c, created.Id) })
	ctx := ctxT(t, testenv.Hang)
	if _, err := c.ContainerStart(ctx, created.Id, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("the engine created the container but could not start it: %v", err)
	}
	wait := c.ContainerWait(ctx, created.Id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-wait.Result:
	case err := <-wait.Error:
		t.Fatalf("waiting for the probe: %v", err)
	}
	logs, err := c.ContainerLogs(ctx, created.Id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", false // a log driver the engine cannot read back (syslog)
	}
	defer logs.Close()
	var out bytes.Buffer
	if req.Config.Tty {
		_, _ = io.Copy(&out, io.LimitReader(logs, 1<<20))
	} else {
		_, _ = stdcopy.StdCopy(&out, &out, io.LimitReader(logs, 1<<20))
	}
	return strings.TrimSpace(out.String()), false
}

// probe is the compliant create request running one testprog check.
func (e *diffEnv) probe(check []string, edit ...func(*container.CreateRequest)) container.CreateRequest {
	return compliant(e.img.NonRoot, append([]func(*container.CreateRequest){func(r *container.CreateRequest) {
		r.Config.Cmd, r.Config.Tty = append([]string{"check"}, check...), true
		r.Config.Healthcheck = nil
	}}, edit...)...)
}

// volume creates a volume directly on the engine, removed when the test
// ends.
func (e *diffEnv) volume(t *testing.T, name string, opts map[string]string) {
	t.Helper()
	ctx := ctxT(t, testenv.Hang)
	if _, err := dockertest.Client(t).VolumeCreate(ctx, client.VolumeCreateOptions{
		Name: name, Driver: "local", DriverOpts: opts, Labels: map[string]string{dockertest.LabelKey: dockertest.RunID},
	}); err != nil {
		t.Fatalf("creating volume %s directly: %v", name, err)
	}
	t.Cleanup(func() { removeVolume(t, name) })
}

// hostFile requires the probe's write to have landed on the host.
func hostFile(p string) func(t *testing.T, out string) {
	return func(t *testing.T, out string) {
		t.Helper()
		if !strings.Contains(out, "ok: wrote") {
			t.Fatalf("the probe could not write: %q", out)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the probe wrote, but not on the host: %v", err)
		}
		os.Remove(p)
	}
}

func volumeCreate(name string, opts map[string]string) string {
	b, _ := json.Marshal(map[string]any{"Name": name, "Driver": "local", "DriverOpts": opts, "Labels": map[string]string{dockertest.LabelKey: dockertest.RunID}})
	return request("POST", "/v1.41/volumes/create", string(b))
}

func diffCases(t *testing.T, e *diffEnv) []diffCase {
	run := dockertest.RunID
	sgid := fmt.Sprint(e.socketGID)
	tmpfsBind := map[string]string{"type": "tmpfs", "o": "bind", "device": e.dir}
	nfsBind := map[string]string{"type": "nfs", "o": "addr=127.0.0.1,bind", "device": e.dir}
	procVol := map[string]string{"type": "proc", "device": "proc"}
	// Two lower layers and no upper one: a read-only overlay of host
	// directories (issue 17's example).
	overlayVol := map[string]string{"type": "overlay", "device": "overlay", "o": "lowerdir=/etc:/run"}
	vol := func(s string) string { return "hyhome-test-" + s + "-" + run }

	// Docker's default seccomp profile plus one rule: clone and unshare
	// for anyone, with any flags (the default allows namespace flags only
	// with CAP_SYS_ADMIN).
	def := seccomp.DefaultProfile()
	def.Syscalls = append(def.Syscalls, &seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{Names: []string{"clone", "unshare"}, Action: specs.ActAllow}})
	profile, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}

	// Host facts the probes compare with.
	hostname, _ := os.ReadFile("/etc/hostname")
	hostIface := ""
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if i.Name != "lo" && i.Name != "eth0" {
				hostIface = i.Name
				break
			}
		}
	}
	shm := "/dev/shm/hyhome-test-" + run

	// The joined container holds the socket, as the deployed guard does.
	holder, _ := dockertest.Run(t, dockertest.Spec{Name: "holder", Image: e.img.NonRoot, Cmd: []string{"sleep"}, User: "65534:65534",
		Host: container.HostConfig{Binds: []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}, CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"}}})

	// A syslog server on loopback: the engine, in the host's network
	// namespace, connects to it for the container.
	syslog, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syslog.Close() })
	syslogLines := make(chan string, 16)
	go func() {
		for {
			c, err := syslog.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					syslogLines <- s.Text()
				}
			}()
		}
	}()

	return []diffCase{
		// --- issue 11 item 1, issue 17 item 3: local volumes by what mount(2) does ---
		{
			name:  "volume typed tmpfs with o=bind binds a host directory",
			rule:  "host-path",
			want:  []string{"bind-mount-readonly", e.dir},
			setup: func(t *testing.T) { e.volume(t, vol("tmpfsbind"), tmpfsBind) },
			req:   e.probe([]string{"write-keep", "/h/tmpfs-bind"}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{vol("tmpfsbind") + ":/h"} }),
			check: hostFile(filepath.Join(e.dir, "tmpfs-bind")),
			guard: []string{
				volumeCreate(vol("tmpfsbind2"), tmpfsBind),
				request("POST", "/v1.41/containers/create", mustJSON(t, e.probe([]string{"id"}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{vol("tmpfsbind") + ":/h"} }))),
			},
		},
		{
			name:  "volume typed nfs with o=bind binds a host directory",
			rule:  "host-path",
			setup: func(t *testing.T) { e.volume(t, vol("nfsbind"), nfsBind) },
			req:   e.probe([]string{"write-keep", "/h/nfs-bind"}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{vol("nfsbind") + ":/h"} }),
			check: hostFile(filepath.Join(e.dir, "nfs-bind")),
			guard: []string{volumeCreate(vol("nfsbind2"), nfsBind)},
		},
		{
			name: "inline Mounts[].VolumeOptions.DriverConfig that binds a host directory",
			rule: "host-path",
			req: e.probe([]string{"write-keep", "/h/inline-bind"}, func(r *container.CreateRequest) {
				r.HostConfig.Mounts = []mount.Mount{{Type: mount.TypeVolume, Target: "/h", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "local", Options: tmpfsBind}}}}
			}),
			check: hostFile(filepath.Join(e.dir, "inline-bind")),
		},
		{
			name:  "volume of type proc shows the host's processes",
			rule:  "volume-type",
			want:  []string{`"proc"`, "the host's processes"},
			setup: func(t *testing.T) { e.volume(t, vol("procfs"), procVol) },
			req:   e.probe([]string{"read", "/h/1/comm"}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{vol("procfs") + ":/h:ro"} }),
			check: func(t *testing.T, out string) {
				if !strings.HasPrefix(out, "ok:") || strings.Contains(out, "testprog") {
					t.Fatalf("pid 1 of the volume's procfs is %q, not the host's init", out)
				}
			},
			guard: []string{volumeCreate(vol("procfs2"), procVol)},
		},

		{
			name:  "volume of type overlay with host directories as layers",
			rule:  "host-path",
			want:  []string{"volume-type", `"overlay"`, "host path /etc"},
			setup: func(t *testing.T) { e.volume(t, vol("overlay"), overlayVol) },
			req:   e.probe([]string{"read", "/h/hostname"}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{vol("overlay") + ":/h:ro"} }),
			// /etc is the upper layer: the host's /etc/hostname shows.
			effect: strings.TrimSpace(string(hostname)),
			guard:  []string{volumeCreate(vol("overlay2"), overlayVol)},
		},

		// --- issue 11 item 2, issue 17 item 2: host paths by effect ---
		{
			name:  "bind through /proc/self/root reaches the host's files",
			rule:  "host-path",
			want:  []string{"magic links"},
			req:   e.probe([]string{"write-keep", "/h/magic"}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/proc/self/root" + e.dir + ":/h"} }),
			check: hostFile(filepath.Join(e.dir, "magic")),
		},
		{
			name: "read-only bind of /proc/self/root/run with the socket's group reaches the Docker API",
			rule: "host-path",
			want: []string{"docker-socket", "runs with group " + sgid},
			req: e.probe([]string{"unix-get", "/h/docker.sock", "/_ping"}, func(r *container.CreateRequest) {
				r.HostConfig.Binds = []string{"/proc/self/root/run:/h:ro"}
				r.HostConfig.GroupAdd = []string{sgid}
			}),
			effect: "ok: status 200",
		},
		{
			name:   "read-only bind of /etc reads the host's configuration",
			rule:   "host-path",
			want:   []string{"under /etc"},
			req:    e.probe([]string{"read", "/h/hostname"}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/etc:/h:ro"} }),
			effect: strings.TrimSpace(string(hostname)),
		},
		{
			name:  "read-only bind of /dev leaves /dev/shm writable: ro is not recursive",
			rule:  "host-path",
			want:  []string{"not recursive"},
			req:   e.probe([]string{"write-keep", "/h" + strings.TrimPrefix(shm, "/dev")}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/dev:/h:ro"} }),
			check: hostFile(shm),
		},
		{
			name:  "writable bind of a host directory",
			rule:  "bind-mount-readonly",
			want:  []string{"host-path", "not in a host directory the profile allows"},
			req:   e.probe([]string{"write-keep", "/h/rw-bind"}, func(r *container.CreateRequest) { r.HostConfig.Binds = []string{e.dir + ":/h"} }),
			check: hostFile(filepath.Join(e.dir, "rw-bind")),
		},
		{
			name: "read-only bind of the Docker socket with its group",
			rule: "docker-socket",
			req: e.probe([]string{"unix-get", "/s.sock", "/_ping"}, func(r *container.CreateRequest) {
				r.HostConfig.Binds = []string{"/var/run/docker.sock:/s.sock:ro"}
				r.HostConfig.GroupAdd = []string{sgid}
			}),
			effect: "ok: status 200",
		},

		// --- issue 11 item 3: masked and read-only paths ---
		{
			name: "custom MaskedPaths and ReadonlyPaths unmask /sys/firmware",
			rule: "security-profile",
			want: []string{"MaskedPaths replaces the engine's default list and leaves out", "/sys/firmware"},
			req: e.probe([]string{"ls", "/sys/firmware"}, func(r *container.CreateRequest) {
				r.HostConfig.MaskedPaths, r.HostConfig.ReadonlyPaths = []string{"/proc/x"}, []string{"/proc/x"}
			}),
			effect:   "ok:",
			baseline: true,
		},

		// --- issue 11 item 4: devices ---
		{
			name: "Devices: the host's disk",
			rule: "host-devices",
			want: []string{"/dev/vda, which is a host disk"},
			req: e.probe([]string{"stat", "/dev/xvda"}, func(r *container.CreateRequest) {
				r.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/vda", PathInContainer: "/dev/xvda", CgroupPermissions: "r"}}
			}),
			effect: "ok: block",
		},
		{
			name: "Devices: the host's disk spelled /dev/./vda",
			rule: "host-devices",
			want: []string{"/dev/./vda, which is a host disk"},
			req: e.probe([]string{"stat", "/dev/xvda"}, func(r *container.CreateRequest) {
				r.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/./vda", PathInContainer: "/dev/xvda", CgroupPermissions: "r"}}
			}),
			effect: "ok: block",
		},
		{
			name:   "DeviceCgroupRules a *:* rwm",
			rule:   "host-devices",
			want:   []string{"lets the container use device nodes by number"},
			req:    e.probe([]string{"read", "/sys/fs/cgroup/devices/devices.list"}, func(r *container.CreateRequest) { r.HostConfig.DeviceCgroupRules = []string{"a *:* rwm"} }),
			effect: "a *:* rwm",
		},

		// --- issue 11 item 5: a memory limit that limits nothing ---
		{
			name:   "memory limit of 64 TiB",
			rule:   "memory-limit",
			want:   []string{"at or above the host's memory"},
			req:    e.probe([]string{"read", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}, func(r *container.CreateRequest) { r.HostConfig.Memory = 64 << 40 }),
			effect: "70368744177664",
		},
		{
			name:   "no memory limit",
			rule:   "memory-limit",
			req:    e.probe([]string{"read", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}, func(r *container.CreateRequest) { r.HostConfig.Memory = 0 }),
			effect: "9223372036854771712",
		},

		// --- issue 11 item 8: names that are root ---
		{
			name: "user app is uid 0 in the image's /etc/passwd",
			rule: "non-root",
			want: []string{`user "app" is uid 0 in image`},
			req: compliant(e.rootName, func(r *container.CreateRequest) {
				r.Config.User, r.Config.Cmd, r.Config.Tty, r.Config.Healthcheck = "app", []string{"check", "id"}, true, nil
			}),
			effect: "uid=0",
		},
		{
			name:   "root by number",
			rule:   "non-root",
			req:    e.probe([]string{"id"}, func(r *container.CreateRequest) { r.Config.User = "0:0" }),
			effect: "uid=0",
		},

		// --- issue 11 item 9: cgroups ---
		{
			name: "writable-cgroups=true",
			rule: "security-profile",
			want: []string{"makes the cgroup file system writable"},
			req: e.probe([]string{"mountopt", "/sys/fs/cgroup/memory"}, func(r *container.CreateRequest) {
				r.HostConfig.SecurityOpt = append(r.HostConfig.SecurityOpt, "writable-cgroups=true")
			}),
			effect:   "ok: rw",
			baseline: true,
			// Docker 20.10 does not know the option yet (API 1.42 does).
			refusedBefore: "Docker 23", refusal: `invalid --security-opt 2: "writable-cgroups=true"`,
		},
		{
			name:   "CgroupnsMode host",
			rule:   "host-namespaces",
			want:   []string{"cgroup namespace"},
			req:    e.probe([]string{"read", "/proc/self/cgroup"}, func(r *container.CreateRequest) { r.HostConfig.CgroupnsMode = "host" }),
			effect: "/docker/",
		},

		// --- issue 17 item 4: joins judged by the joined container ---
		{
			name: "pid namespace of a container that holds the socket",
			rule: "namespace-join",
			want: []string{"fails docker-socket"},
			req:  e.probe([]string{"stat", "/proc/1/root/var/run/docker.sock"}, func(r *container.CreateRequest) { r.HostConfig.PidMode = container.PidMode("container:" + holder) }),
			check: func(t *testing.T, out string) {
				if !strings.Contains(out, "ok: socket") {
					t.Fatalf("the joiner does not see the holder's socket: %q", out)
				}
			},
		},

		// --- issue 17 item 5: a custom seccomp profile beyond the default ---
		{
			name: "seccomp: Docker's default plus unshare lets a process create a user namespace",
			rule: "security-profile",
			want: []string{"allows clone, unshare beyond what Docker's default profile allows"},
			req: e.probe([]string{"userns"}, func(r *container.CreateRequest) {
				r.HostConfig.SecurityOpt = append(r.HostConfig.SecurityOpt, "seccomp="+string(profile))
			}),
			effect:   "ok: a child in a new user namespace",
			baseline: true,
		},
		{
			name: "seccomp=unconfined",
			rule: "security-profile",
			req: e.probe([]string{"status"}, func(r *container.CreateRequest) {
				r.HostConfig.SecurityOpt = append(r.HostConfig.SecurityOpt, "seccomp=unconfined")
			}),
			effect: "Seccomp=0",
		},

		// --- issue 17 item 6: log drivers as a network path ---
		{
			name: "syslog log driver delivers output from the host's network namespace",
			rule: "log-driver",
			want: []string{`log driver "syslog" is not allowed`},
			req: e.probe([]string{"id"}, func(r *container.CreateRequest) {
				r.HostConfig.LogConfig = container.LogConfig{Type: "syslog", Config: map[string]string{"syslog-address": "tcp://" + syslog.Addr().String()}}
			}),
			check: func(t *testing.T, _ string) {
				select {
				case l := <-syslogLines:
					if !strings.Contains(l, "uid=") {
						t.Fatalf("the listener got %q", l)
					}
				case <-time.After(testenv.Hang):
					t.Fatal("no line reached the listener")
				}
			},
		},

		// --- the rules that were there ---
		{
			name:   "privileged",
			rule:   "privileged",
			req:    e.probe([]string{"stat", "/dev/vda"}, func(r *container.CreateRequest) { r.HostConfig.Privileged = true }),
			effect: "ok: block",
		},
		{
			name:   "host pid namespace",
			rule:   "host-namespaces",
			req:    e.probe([]string{"read", "/proc/1/comm"}, func(r *container.CreateRequest) { r.HostConfig.PidMode = "host" }),
			check:  func(t *testing.T, out string) { notProbe(t, out) },
			want:   []string{"pid namespace"},
			effect: "",
		},
		{
			name:   "host network namespace",
			rule:   "host-namespaces",
			want:   []string{"network namespace"},
			req:    e.probe([]string{"ls", "/sys/class/net"}, func(r *container.CreateRequest) { r.HostConfig.NetworkMode = "host" }),
			effect: hostIface,
		},
		{
			name:   "host uts namespace",
			rule:   "host-namespaces",
			want:   []string{"uts namespace"},
			req:    e.probe([]string{"read", "/proc/sys/kernel/hostname"}, func(r *container.CreateRequest) { r.HostConfig.UTSMode = "host" }),
			effect: strings.TrimSpace(string(hostname)),
		},
		{
			name:   "cap_add SYS_ADMIN",
			rule:   "cap-add",
			req:    e.probe([]string{"status"}, func(r *container.CreateRequest) { r.HostConfig.CapAdd = []string{"SYS_ADMIN"} }),
			effect: "CapBnd=0000000000200000",
		},
		{
			name:   "no cap_drop ALL",
			rule:   "cap-drop-all",
			req:    e.probe([]string{"status"}, func(r *container.CreateRequest) { r.HostConfig.CapDrop = nil }),
			check:  func(t *testing.T, out string) { notIn(t, out, "CapBnd=0000000000000000") },
			effect: "",
		},
		{
			name:   "no no-new-privileges",
			rule:   "no-new-privileges",
			req:    e.probe([]string{"status"}, func(r *container.CreateRequest) { r.HostConfig.SecurityOpt = nil }),
			effect: "NoNewPrivs=0",
		},
		{
			name: "a credential in the environment",
			rule: "secrets-in-env",
			req:  e.probe([]string{"id"}, func(r *container.CreateRequest) { r.Config.Env = []string{"DB_PASSWORD=hunter2-" + run} }),
			check: func(t *testing.T, _ string) {
				// Anyone who may inspect the container reads it.
				res, err := dockertest.Client(t).ContainerList(ctxT(t, testenv.Hang), client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", dockertest.LabelKey+"="+run)})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range res.Items {
					ins, err := dockertest.Client(t).ContainerInspect(ctxT(t, testenv.Hang), c.ID, client.ContainerInspectOptions{})
					if err == nil && strings.Contains(strings.Join(ins.Container.Config.Env, " "), "hunter2-"+run) {
						return
					}
				}
				t.Fatal("no container's inspect shows the credential")
			},
		},
	}
}

func notProbe(t *testing.T, out string) {
	t.Helper()
	if !strings.HasPrefix(out, "ok:") || strings.Contains(out, "testprog") {
		t.Fatalf("pid 1 is %q, the container's own", out)
	}
}

func notIn(t *testing.T, out, s string) {
	t.Helper()
	if !strings.Contains(out, "CapBnd=") || strings.Contains(out, s) {
		t.Fatalf("%q shows no capability", out)
	}
}
