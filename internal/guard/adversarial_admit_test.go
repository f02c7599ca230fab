package guard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// TestAdversarialAdmission is TestAdversarial for the holes of issues 11
// and 17 in admission: every way a create, update, exec, start, volume,
// network or service request reached the host by what the engine does
// rather than by how the request spells it. Each row is one raw request
// and the answer the guard must give; TestDifferential shows the effects
// are real.
func TestAdversarialAdmission(t *testing.T) {
	tg := startGuard(t)
	img := dockertest.Build(t)
	host := engineHost(t)
	gid, _ := socketGID(strings.TrimPrefix(host, "unix://"))
	sgid := fmt.Sprint(gid)
	appRoot := userImage(t, "app-is-root", "root:x:0:0:root:/:/testprog\napp:x:0:0:app:/:/testprog\n", "", "")
	appRootUser := userImage(t, "app-is-root-user", "root:x:0:0:root:/:/testprog\napp:x:0:0:app:/:/testprog\n", "", "app")
	web := userImage(t, "web", "root:x:0:0::/:/x\nweb:x:1000:1000::/:/x\n", "root:x:0:\nweb:x:1000:\nstaff:x:50:web\n", "")

	c := func(image string, edit ...func(*container.CreateRequest)) string {
		return request("POST", "/v1.41/containers/create", mustJSON(t, compliant(image, edit...)))
	}
	create := func(edit ...func(*container.CreateRequest)) string { return c(img.NonRoot, edit...) }
	volume := func(opts map[string]string, driver string) string {
		b, _ := json.Marshal(map[string]any{"Name": "hyhome-test-adv-" + dockertest.RunID, "Driver": driver, "DriverOpts": opts, "Labels": map[string]string{dockertest.LabelKey: dockertest.RunID}})
		return request("POST", "/v1.41/volumes/create", string(b))
	}
	service := func(edit func(*swarm.ServiceSpec)) string {
		pids := int64(64)
		s := swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: "hyhome-test-svc-" + dockertest.RunID, Labels: map[string]string{"hy-home.tier": "app", "hy-home.metrics.port": "9100"}},
			TaskTemplate: swarm.TaskSpec{
				ContainerSpec: &swarm.ContainerSpec{
					Image: img.NonRoot, User: "65534:65534", ReadOnly: true, CapabilityDrop: []string{"ALL"},
					Privileges:  &swarm.Privileges{NoNewPrivileges: true},
					Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/testprog", "probe"}},
				},
				Resources: &swarm.ResourceRequirements{Limits: &swarm.Limit{MemoryBytes: 64 << 20, Pids: pids}},
			},
		}
		edit(&s)
		return request("POST", "/v1.41/services/create", mustJSON(t, s))
	}
	allowUnshare := `seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","exit_group","unshare"],"action":"SCMP_ACT_ALLOW"}]}`

	// Containers created directly on the engine, as an attacker finds them.
	ro := func(r *container.HostConfig) container.HostConfig { r.ReadonlyRootfs = true; return *r }
	running, _ := dockertest.Run(t, dockertest.Spec{Name: "adm-ro", Image: appRoot, Cmd: []string{"sleep"}, User: "65534:65534",
		Host: ro(&container.HostConfig{CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"}, Resources: container.Resources{Memory: 64 << 20}})})
	namedWritable, _ := dockertest.Run(t, dockertest.Spec{Name: "adm-named-rw", Image: web, Cmd: []string{"sleep"}, User: "web", NoStart: true})
	namedRootRO, _ := dockertest.Run(t, dockertest.Spec{Name: "adm-named-ro", Image: appRoot, Cmd: []string{"sleep"}, User: "app", NoStart: true,
		Host: ro(&container.HostConfig{})})
	holder, _ := dockertest.Run(t, dockertest.Spec{Name: "adm-holder", Image: img.NonRoot, Cmd: []string{"sleep"}, User: "65534:65534",
		Host: container.HostConfig{Binds: []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}}, NoStart: true})

	rows := []attack{
		// --- issue 11 item 1, issue 17 item 3: volumes by what mount(2) does ---
		{"volume typed tmpfs that binds /", "admission", volume(map[string]string{"type": "tmpfs", "o": "bind", "device": "/"}, "local"), 403, []string{"host-path", "docker-socket", "bind-mount-readonly"}, nil},
		{"volume typed nfs that rbinds /", "admission", volume(map[string]string{"type": "nfs", "o": "addr=1.2.3.4,rbind", "device": "/"}, "local"), 403, []string{"host-path"}, nil},
		{"volume typed ramfs that binds /run", "admission", volume(map[string]string{"type": "ramfs", "o": "bind", "device": "/run"}, ""), 403, []string{"docker-socket", "host-path"}, nil},
		{"volume whose last ro/rw is rw", "admission", volume(map[string]string{"type": "none", "o": "bind,ro,rw", "device": "/srv"}, "local"), 403, []string{"bind-mount-readonly"}, nil},
		{"volume of the host's disk", "admission", volume(map[string]string{"type": "ext4", "device": "/dev/vda"}, "local"), 403, []string{"host-path", "volume-type", `"ext4"`}, nil},
		{"overlay volume of host directories", "admission", volume(map[string]string{"type": "overlay", "device": "overlay", "o": "lowerdir=/etc:/run"}, "local"), 403, []string{"host-path", "volume-type"}, nil},
		{"volume of type proc", "admission", volume(map[string]string{"type": "proc", "device": "proc"}, "local"), 403, []string{"volume-type", "the host's processes"}, nil},
		{"volume of a driver plugin", "admission", volume(nil, "rexray/ebs"), 403, []string{"volume-type", "rexray/ebs"}, nil},
		{"volume option the local driver does not know", "admission", volume(map[string]string{"mountpoint": "/"}, "local"), 403, []string{"volume-type", "mountpoint"}, nil},
		{"inline DriverConfig typed tmpfs that binds /", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: "hyhome-test-inline-" + dockertest.RunID, Target: "/h", ReadOnly: true,
				VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{"type": "tmpfs", "o": "bind", "device": "/"}}}}}
		}), 403, []string{"host-path", "docker-socket"}, nil},
		{"anonymous volumes of Config.Volumes take VolumeDriver", "admission", create(func(r *container.CreateRequest) {
			r.Config.Volumes = map[string]struct{}{"/data": {}}
			r.HostConfig.VolumeDriver = "rexray/ebs"
		}), 403, []string{"volume-type", "rexray/ebs"}, nil},

		// --- issue 11 item 2, issue 17 item 2: host paths by effect ---
		{"bind through /proc/self/root with the socket's group", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.Binds, r.HostConfig.GroupAdd = []string{"/proc/self/root/run:/h:ro"}, []string{sgid}
		}), 403, []string{"host-path", "magic links", "docker-socket", "runs with group " + sgid}, nil},
		{"bind of /proc/1/root", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/proc/1/root:/host:ro"} }), 403, []string{"host-path"}, nil},
		{"bind of /proc/1/cwd", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/proc/1/cwd:/host:ro"} }), 403, []string{"host-path"}, nil},
		{"bind spelled /srv/../etc", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/srv/../etc:/e:ro"} }), 403, []string{"host-path", "`..`"}, nil},
		{"read-only bind of /etc", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/etc:/e:ro"} }), 403, []string{"host-path", "under /etc"}, nil},
		{"read-only bind of /dev", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/dev:/d:ro"} }), 403, []string{"host-path", "not recursive"}, nil},
		{"read-only bind of /boot", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/boot:/b:ro"} }), 403, []string{"host-path"}, nil},
		{"read-only bind of /sys", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/sys:/s:ro"} }), 403, []string{"host-path"}, nil},
		{"bind of a volume's data under the data root", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.Binds = []string{"/var/lib/docker/volumes/x/_data/link:/l:ro"}
		}), 403, []string{"host-path", "data root"}, nil},
		{"read-only bind of a directory no profile allows", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/srv/app:/app:ro"} }), 403, []string{"host-path", "allows none"}, nil},
		{"the socket's group alone", "admission", create(func(r *container.CreateRequest) { r.HostConfig.GroupAdd = []string{sgid} }), 403, []string{"docker-socket", "runs with group " + sgid}, nil},
		{"the socket's group as the primary group", "admission", create(func(r *container.CreateRequest) { r.Config.User = "65534:" + sgid }), 403, []string{"docker-socket"}, nil},

		// --- issue 11 item 3 ---
		{"custom MaskedPaths and ReadonlyPaths", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.MaskedPaths, r.HostConfig.ReadonlyPaths = []string{"/proc/x"}, []string{"/proc/x"}
		}), 403, []string{"security-profile", "/sys/firmware", "ReadonlyPaths"}, nil},
		{"MaskedPaths that masks more than the default", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.MaskedPaths = append([]string{"/proc/interrupts"}, "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
		}), 201, nil, removeCreated},

		// --- issue 11 item 4 ---
		{"device: the host's disk", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/vda", PathInContainer: "/dev/vda", CgroupPermissions: "r"}}
		}), 403, []string{"host-devices", "host disk"}, nil},
		{"device spelled /dev/./mem", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/./mem", PathInContainer: "/dev/mem", CgroupPermissions: "r"}}
		}), 403, []string{"host-devices", "memory"}, nil},
		{"device: all of /dev", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev", PathInContainer: "/hostdev", CgroupPermissions: "r"}}
		}), 403, []string{"host-devices", "whole /dev"}, nil},
		{"device cgroup rule a *:* rwm", "admission", create(func(r *container.CreateRequest) { r.HostConfig.DeviceCgroupRules = []string{"a *:* rwm"} }), 403, []string{"host-devices"}, nil},

		// --- issue 11 item 5 ---
		{"a memory limit of 64 TiB", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Memory = 64 << 40 }), 403, []string{"memory-limit", "at or above the host's memory"}, nil},
		{"update to a memory limit of 64 TiB", "admission", request("POST", "/v1.41/containers/"+running+"/update", `{"Memory":70368744177664}`), 403, []string{"memory-limit", "at or above"}, nil},

		// --- issue 11 item 8: names that are root ---
		{"user app that the image's passwd makes uid 0", "admission", c(appRoot, func(r *container.CreateRequest) { r.Config.User = "app" }), 403, []string{"non-root", `user "app" is uid 0 in image`}, nil},
		{"image USER app that its passwd makes uid 0", "admission", c(appRootUser, func(r *container.CreateRequest) { r.Config.User = "" }), 403, []string{"non-root", "uid 0"}, nil},
		{"a name the image does not have", "admission", create(func(r *container.CreateRequest) { r.Config.User = "ghost" }), 403, []string{"non-root", "does not resolve"}, nil},
		{"a group name the image does not have", "admission", create(func(r *container.CreateRequest) { r.HostConfig.GroupAdd = []string{"docker"} }), 403, []string{"non-root", "unable to find group docker"}, nil},
		{"a user id out of range", "admission", create(func(r *container.CreateRequest) { r.Config.User = "4294967296:0" }), 403, []string{"non-root"}, nil},
		{"exec as a name that is uid 0", "admission", request("POST", "/v1.41/containers/"+running+"/exec", `{"Cmd":["/testprog","check","id"],"User":"app"}`), 403, []string{"non-root", "uid 0"}, nil},
		{"start a container whose user name is uid 0", "admission", request("POST", "/v1.41/containers/"+namedRootRO+"/start", ""), 403, []string{"non-root", "uid 0"}, nil},
		{"start a container whose user is a name, root filesystem writable", "admission", request("POST", "/v1.41/containers/"+namedWritable+"/start", ""), 403, []string{"non-root", "root filesystem is writable"}, nil},

		// --- issue 11 item 9 ---
		{"writable-cgroups=true", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.SecurityOpt = append(r.HostConfig.SecurityOpt, "writable-cgroups=true")
		}), 403, []string{"security-profile", "writable"}, nil},
		{"CgroupnsMode host", "admission", create(func(r *container.CreateRequest) { r.HostConfig.CgroupnsMode = "host" }), 403, []string{"host-namespaces", "cgroup namespace"}, nil},

		// --- issue 17 item 4: joins ---
		{"pid join of a container that holds the socket", "admission", create(func(r *container.CreateRequest) { r.HostConfig.PidMode = container.PidMode("container:" + holder) }), 403, []string{"namespace-join", "fails docker-socket"}, nil},
		{"network join of a container that runs as root", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.NetworkMode = container.NetworkMode("container:" + namedRootRO)
		}), 403, []string{"namespace-join", "fails non-root"}, nil},
		{"network join of a compliant container", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.NetworkMode = container.NetworkMode("container:" + running)
		}), 201, nil, removeCreated},

		// --- issue 17 item 5 ---
		{"seccomp profile that allows unshare", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.SecurityOpt = append(r.HostConfig.SecurityOpt, allowUnshare)
		}), 403, []string{"security-profile", "allows unshare beyond"}, nil},

		// --- issue 17 item 6 ---
		{"syslog over TCP to a loopback port", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.LogConfig = container.LogConfig{Type: "syslog", Config: map[string]string{"syslog-address": "tcp://127.0.0.1:514"}}
		}), 403, []string{"log-driver", `"syslog"`}, nil},
		{"fluentd to a host unix socket", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.LogConfig = container.LogConfig{Type: "fluentd", Config: map[string]string{"fluentd-address": "unix:///var/run/fluent.sock"}}
		}), 403, []string{"log-driver"}, nil},
		{"json-file with rotation", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.LogConfig = container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "2"}}
		}), 201, nil, removeCreated},

		// --- fail closed on fields ---
		{"legacy links", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Links = []string{holder + ":db"} }), 403, []string{"HostConfig.Links is refused"}, nil},
		{"cgroup parent", "admission", create(func(r *container.CreateRequest) { r.HostConfig.CgroupParent = "/" }), 403, []string{"CgroupParent is refused"}, nil},
		{"another runtime", "admission", create(func(r *container.CreateRequest) { r.HostConfig.Runtime = "runsc" }), 403, []string{"Runtime is refused"}, nil},
		{"negative OOM score", "admission", create(func(r *container.CreateRequest) { r.HostConfig.OomScoreAdj = -1000 }), 403, []string{"OomScoreAdj"}, nil},
		{"rshared bind propagation", "admission", create(func(r *container.CreateRequest) {
			r.HostConfig.Mounts = []mount.Mount{{Type: mount.TypeTmpfs, Target: "/t", BindOptions: &mount.BindOptions{Propagation: mount.PropagationRShared}}}
		}), 403, []string{"propagation"}, nil},
		{"network on a host interface (macvlan)", "admission", request("POST", "/v1.41/networks/create", `{"Name":"hyhome-test-mv","Driver":"macvlan","Options":{"parent":"eth0"}}`), 403, []string{"driver macvlan", "host-interface-networks"}, nil},
		{"bridge network taking over a host bridge", "admission", request("POST", "/v1.41/networks/create", `{"Name":"hyhome-test-br","Driver":"bridge","Options":{"com.docker.network.bridge.name":"docker0"}}`), 403, []string{"com.docker.network.bridge.name"}, nil},
		{"network connect with legacy links", "admission", request("POST", "/v1.41/networks/bridge/connect", `{"Container":"`+running+`","EndpointConfig":{"Links":["x:y"]}}`), 403, []string{"Links is refused"}, nil},

		// --- services ---
		{"service mounting a volume typed tmpfs that binds /", "admission", service(func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: "v", Target: "/h", ReadOnly: true,
				VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Options: map[string]string{"type": "tmpfs", "o": "bind", "device": "/"}}}}}
		}), 403, []string{"host-path"}, nil},
		{"service logging to syslog", "admission", service(func(s *swarm.ServiceSpec) {
			s.TaskTemplate.LogDriver = &swarm.Driver{Name: "syslog", Options: map[string]string{"syslog-address": "udp://10.0.0.1:514"}}
		}), 403, []string{"log-driver"}, nil},
		{"service whose user is a name", "admission", service(func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.User = "app" }), 403, []string{"non-root", "is a name"}, nil},
		{"service with an SELinux type", "admission", service(func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges.SELinuxContext = &swarm.SELinuxContext{Type: "spc_t"}
		}), 403, []string{"SELinuxContext.Type is refused"}, nil},
	}
	for _, a := range rows {
		t.Run(a.name, func(t *testing.T) {
			r := raw(t, tg.sockets[a.profile], a.request)
			if a.cleanup != nil {
				a.cleanup(t, r)
			}
			if r.status != a.status {
				t.Fatalf("status %d, want %d: %s", r.status, a.status, r.message())
			}
			for _, w := range a.want {
				if !strings.Contains(r.message(), w) {
					t.Errorf("message %q lacks %q", r.message(), w)
				}
			}
			if r.status == http.StatusForbidden && !strings.HasPrefix(r.message(), "hyhome guard: ") {
				t.Errorf("a denial must say it is the guard's: %q", r.message())
			}
		})
	}
	t.Cleanup(func() { removeVolume(t, "hyhome-test-adv-"+dockertest.RunID) })
}

// A user name is resolved as the engine would resolve it and pinned into
// the forwarded body numerically, supplementary groups from /etc/group
// included: files written into the container afterwards (PUT /archive)
// cannot change who runs. An exec's name is pinned the same way.
func TestIdentityPinned(t *testing.T) {
	tg := startGuard(t)
	web := userImage(t, "web", "root:x:0:0::/:/x\nweb:x:1000:1000::/:/x\n", "root:x:0:\nweb:x:1000:\nstaff:x:50:web\n", "")
	r := raw(t, tg.sockets[ProfileAdmission], request("POST", "/v1.41/containers/create", mustJSON(t, compliant(web, func(r *container.CreateRequest) { r.Config.User = "web" }))))
	removeCreated(t, r)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.message())
	}
	var created struct{ Id string }
	_ = json.Unmarshal([]byte(r.body), &created)
	ctx := ctxT(t, testenv.Hang)
	c := dockertest.Client(t)
	ins, err := c.ContainerInspect(ctx, created.Id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ins.Container.Config.User != "1000:1000" || strings.Join(ins.Container.HostConfig.GroupAdd, ",") != "50" {
		t.Fatalf("created with user %q and groups %v, want the resolved 1000:1000 and 50", ins.Container.Config.User, ins.Container.HostConfig.GroupAdd)
	}
	if _, err := c.ContainerStart(ctx, created.Id, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	e := raw(t, tg.sockets[ProfileAdmission], request("POST", "/v1.41/containers/"+created.Id+"/exec", `{"Cmd":["/testprog","check","id"],"User":"web"}`))
	var ex struct{ Id string }
	if e.status != http.StatusCreated || json.Unmarshal([]byte(e.body), &ex) != nil {
		t.Fatalf("exec: %d %s", e.status, e.message())
	}
	var ei container.ExecInspectResponse
	got := raw(t, strings.TrimPrefix(engineHost(t), "unix://"), request("GET", "/v1.41/exec/"+ex.Id+"/json", ""))
	if err := json.Unmarshal([]byte(got.body), &ei); err != nil {
		t.Fatalf("exec inspect: %v: %s", err, got.body)
	}
	if ei.ProcessConfig == nil || ei.ProcessConfig.User != "1000:1000" {
		t.Fatalf("exec recorded with %+v, want user 1000:1000", ei.ProcessConfig)
	}
}

// What the docker CLI sends for networks and volumes at the API version it
// negotiates (1.41 here: CheckDuplicate included) passes the field table,
// and what it sends for a macvlan network or a bind volume is refused.
func TestDockerCLINetworksAndVolumes(t *testing.T) {
	tg := startGuard(t)
	sock := tg.sockets[ProfileAdmission]
	label := dockertest.LabelKey + "=" + dockertest.RunID
	net, vol := "hyhome-test-net-"+dockertest.RunID, "hyhome-test-vol-"+dockertest.RunID
	ctx := ctxT(t, testenv.Hang)
	c := dockertest.Client(t)
	t.Cleanup(func() {
		_, _ = c.NetworkRemove(ctx, net, client.NetworkRemoveOptions{})
		removeVolume(t, vol)
	})
	if _, stderr, err := dockerCLI(t, sock, "", "network", "create", "--label", label, net); err != nil {
		t.Fatalf("docker network create: %v\n%s", err, stderr)
	}
	if _, stderr, err := dockerCLI(t, sock, "", "volume", "create", "--label", label, vol); err != nil {
		t.Fatalf("docker volume create: %v\n%s", err, stderr)
	}
	for _, args := range [][]string{
		{"network", "create", "--label", label, "-d", "macvlan", "-o", "parent=eth0", net + "-mv"},
		{"volume", "create", "--label", label, "-o", "type=tmpfs", "-o", "o=bind", "-o", "device=/", vol + "-bind"},
	} {
		_, stderr, err := dockerCLI(t, sock, "", args...)
		if err == nil || !strings.Contains(stderr, "hyhome guard: ") {
			t.Errorf("docker %s: %v, want the guard's refusal:\n%s", strings.Join(args, " "), err, stderr)
		}
	}
}
