package guard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
)

// fixture holds objects created directly on the engine (not through the
// guard), as an attacker would find them: containers that are privileged,
// share the host's network or mount the Docker socket, a root container,
// a compliant one, a volume that binds a host directory and an exec
// instance created privileged.
type fixture struct {
	img                                  dockertest.Images
	privileged, hostNet, socket, rootRun string
	running                              string // compliant, running
	bindVolume                           string
	hostNetID                            string
	privExec                             string // privileged exec in running
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	img := dockertest.Build(t)
	c := dockertest.Client(t)
	ctx := ctxT(t, dockertest.CallTimeout)
	f := &fixture{img: img}
	f.privileged, _ = dockertest.Run(t, dockertest.Spec{Name: "priv", Image: img.NonRoot, Host: container.HostConfig{Privileged: true}, NoStart: true})
	f.hostNet, _ = dockertest.Run(t, dockertest.Spec{Name: "hostnet", Image: img.NonRoot, Host: container.HostConfig{NetworkMode: "host"}, NoStart: true})
	f.socket, _ = dockertest.Run(t, dockertest.Spec{Name: "sock", Image: img.NonRoot, Host: container.HostConfig{Binds: []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}}, NoStart: true})
	f.rootRun, _ = dockertest.Run(t, dockertest.Spec{Name: "root", Image: img.Root, Cmd: []string{"sleep"}})
	ok := compliant(img.NonRoot)
	f.running, _ = dockertest.Run(t, dockertest.Spec{Name: "ok", Image: img.NonRoot, Cmd: []string{"sleep"}, User: ok.Config.User, Labels: ok.Config.Labels, Host: *ok.HostConfig})

	f.bindVolume = "hyhome-test-bindvol-" + dockertest.RunID
	if _, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{
		Name: f.bindVolume, Driver: "local",
		DriverOpts: map[string]string{"type": "none", "o": "bind", "device": "/var/run"},
		Labels:     map[string]string{dockertest.LabelKey: dockertest.RunID},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeVolume(t, f.bindVolume) })

	n, err := c.NetworkInspect(ctx, "host", client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.hostNetID = n.Network.ID

	e, err := c.ExecCreate(ctx, f.running, client.ExecCreateOptions{User: "0", Privileged: true, Cmd: []string{"/testprog", "probe"}})
	if err != nil {
		t.Fatal(err)
	}
	f.privExec = e.ID
	return f
}

// compliantService is the row for a service spec with every hardening
// field set: on an engine whose API is 1.46 or later it reaches the engine
// (see serviceReachesEngine); before that Swarm drops
// Privileges.NoNewPrivileges and the guard refuses it.
func compliantService(t *testing.T, sw dockertest.SwarmInfo, spec func(func(*swarm.ServiceSpec)) string) attack {
	row := attack{name: "compliant service", profile: "admission", request: request("POST", "/v1.41/services/create", spec(func(*swarm.ServiceSpec) {}))}
	v, err := dockertest.Client(t).ServerVersion(ctxT(t, dockertest.CallTimeout), client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if compareVersions(v.APIVersion, "1.46") < 0 {
		row.status, row.want = 403, []string{"no-new-privileges", "Swarm ignores Privileges.NoNewPrivileges"}
		return row
	}
	return serviceReachesEngine(sw, row)
}

// serviceReachesEngine sets what the engine answers a service create the
// guard admitted, which depends on the node's Swarm membership: the test
// holds the Swarm lock (dockertest.SwarmState), so it cannot change while
// the test runs. A manager creates the service (201; the row removes it), a
// node outside a Swarm or a worker answers 503 "not a swarm manager". Either
// way the request reached the engine, which is what the row proves.
func serviceReachesEngine(sw dockertest.SwarmInfo, row attack) attack {
	if sw.ControlAvailable {
		row.status, row.want, row.cleanup = 201, nil, removeCreatedService
	} else {
		row.status, row.want, row.cleanup = 503, []string{"swarm"}, nil
	}
	return row
}

// removeCreatedService removes a service a test created through the guard.
func removeCreatedService(t testing.TB, resp response) {
	t.Helper()
	var cr struct{ ID string }
	if resp.status == http.StatusCreated && json.Unmarshal([]byte(resp.body), &cr) == nil && cr.ID != "" {
		t.Cleanup(func() {
			if err := dockertest.RemoveService(ctxT(t, dockertest.CallTimeout), dockertest.Client(t), cr.ID); err != nil {
				t.Errorf("removing service %s: %v", cr.ID, err)
			}
		})
	}
}

func removeVolume(t testing.TB, name string) {
	ctx := ctxT(t, dockertest.CallTimeout)
	_, _ = dockertest.Client(t).VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: true})
}

// attack is one row of the adversarial table: a raw request to a profile's
// socket and the answer the guard must give.
type attack struct {
	name    string
	profile string
	request string
	status  int      // the status the client must see
	want    []string // substrings of the message
	cleanup func(t testing.TB, r response)
}

// TestAdversarial sends one raw request per known way around a Docker API
// AuthZ plugin or socket proxy, against the real engine.
//
// Rows that create a Swarm service get the engine's answer, which depends on
// the node's Swarm membership: the test holds the Swarm lock shared, so no
// other test can init or leave a Swarm until it ends.
func TestAdversarial(t *testing.T) {
	// trusted allows what admission withholds or does not name (builds, a
	// plugin), so that their judges are tried too; exempting honours ADR
	// exemptions.
	tg := startGuard(t, withProfiles(t, "profiles:\n  trusted:\n    include: [admission]\n    allow: [POST /build]\n    plugins: [example.invalid/p:1]\n  "+profileExempting+":\n    include: [admission]\n    exemptions: true\n"))
	f := newFixture(t)
	sw := dockertest.SwarmState(t, dockertest.Client(t))
	c := func(edit ...func(*container.CreateRequest)) string {
		return mustJSON(t, compliant(f.img.NonRoot, edit...))
	}
	create := func(body string, headers ...string) string {
		return request("POST", "/v1.41/containers/create", body, headers...)
	}
	bigBody := `{"Image":"` + strings.Repeat("a", 5<<20) + `"}`
	serviceSpec := func(edit func(*swarm.ServiceSpec)) string {
		pids := int64(64)
		s := swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: "hyhome-test-svc-" + dockertest.RunID, Labels: map[string]string{"hy-home.tier": "app", "hy-home.metrics.port": "9100", dockertest.LabelKey: dockertest.RunID}},
			TaskTemplate: swarm.TaskSpec{
				ContainerSpec: &swarm.ContainerSpec{
					Image: f.img.NonRoot, User: "65534:65534", ReadOnly: true,
					CapabilityDrop: []string{"ALL"},
					Privileges:     &swarm.Privileges{NoNewPrivileges: true},
					Healthcheck:    &container.HealthConfig{Test: []string{"CMD", "/testprog", "probe"}},
				},
				Resources: &swarm.ResourceRequirements{Limits: &swarm.Limit{MemoryBytes: 64 << 20, Pids: pids}},
			},
		}
		edit(&s)
		return mustJSON(t, s)
	}
	chunked := func(target, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", target, len(body), body)
	}
	privileged := c(func(r *container.CreateRequest) { r.HostConfig.Privileged = true })

	rows := []attack{
		// --- the body the engine decodes is the body the guard judged ---
		{"compliant create is admitted", "admission", create(c()), 201, nil, removeCreated},
		{"content type with parameters", "admission", create(c(), "Content-Type: application/json; charset=utf-8"), 201, nil, removeCreated},
		{"Expect: 100-continue", "admission", create(c(), "Expect: 100-continue"), 201, nil, removeCreated},
		{"chunked compliant body", "admission", chunked("/v1.41/containers/create", c()), 201, nil, removeCreated},
		{"privileged", "admission", create(privileged), 403, []string{"hyhome guard: denied by privileged [NFR-SEC-01, SEC-IDENTITY]: runs privileged"}, nil},
		{"privileged in a chunked body", "admission", chunked("/v1.41/containers/create", privileged), 403, []string{"denied by privileged"}, nil},
		{"CVE-2024-41110: Content-Length 0 with the body after it", "admission",
			"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" + privileged,
			403, []string{"the request body is empty"}, nil},
		{"CVE-2024-41110: chunked with Content-Length 0", "admission",
			fmt.Sprintf("POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(privileged), privileged),
			403, []string{"denied by privileged"}, nil},
		{"empty body", "admission", create(""), 403, []string{"the request body is empty"}, nil},
		{"body over the cap", "admission", create(bigBody), 413, []string{"over the guard's limit"}, nil},
		{"body over the cap, Expect: 100-continue, never sent", "admission",
			fmt.Sprintf("POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", 5<<20),
			413, []string{"over the guard's limit"}, nil},
		{"body not declared JSON", "admission", create(privileged, "Content-Type: text/plain"), 403, []string{"must be declared application/json"}, nil},
		{"case-variant duplicate key", "admission", create(strings.Replace(c(), `"Privileged":false`, `"Privileged":false,"privileged":true`, 1)), 403, []string{`must be spelled "Privileged"`}, nil},
		{"exact duplicate key", "admission", create(strings.Replace(c(), `"Privileged":false`, `"Privileged":false,"Privileged":true`, 1)), 403, []string{`"Privileged" appears twice`}, nil},
		{"Unicode-folded key", "admission", create(strings.Replace(c(), `"SecurityOpt":[`, `"ſecurityOpt":["seccomp=unconfined"],"SecurityOpt":[`, 1)), 403, []string{`must be spelled "SecurityOpt"`}, nil},
		{"legacy top-level HostConfig fields", "admission", create(`{"Image":"` + f.img.NonRoot + `","User":"65534:65534","Privileged":true}`), 403, []string{`unknown field "Privileged"`}, nil},
		{"second JSON value after the judged one", "admission", create(c() + `{"HostConfig":{"Privileged":true}}`), 403, []string{"unexpected data after the JSON value"}, nil},
		{"null body", "admission", create("null"), 403, []string{"must be a JSON object"}, nil},

		// --- what the request asks for ---
		{"host network", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.NetworkMode = "host" })), 403, []string{"host-namespaces [NFR-SEC-01]", "network namespace"}, nil},
		{"host network by ID", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.NetworkMode = container.NetworkMode(f.hostNetID) })), 403, []string{"host-namespaces", "network host"}, nil},
		{"host network by ID prefix", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.NetworkMode = container.NetworkMode(f.hostNetID[:12]) })), 403, []string{"host-namespaces"}, nil},
		{"host network as an endpoint", "admission", create(c(func(r *container.CreateRequest) {
			r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"host": {}}}
		})), 403, []string{"host-namespaces"}, nil},
		{"host pid", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.PidMode = "host" })), 403, []string{"host-namespaces", "pid namespace"}, nil},
		{"joins a container on the host network", "admission", create(c(func(r *container.CreateRequest) {
			r.HostConfig.NetworkMode = container.NetworkMode("container:" + f.hostNet)
		})), 403, []string{"host-namespaces", "inherited from container"}, nil},
		{"joins a container that does not exist", "admission", create(c(func(r *container.CreateRequest) {
			r.HostConfig.PidMode = container.PidMode("container:hyhome-test-nothing-" + dockertest.RunID)
		})), 404, []string{"No such container"}, nil},
		{"volumes-from a container with the Docker socket", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.VolumesFrom = []string{f.socket} })), 403, []string{"docker-socket"}, nil},
		{"bind mount of /", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/:/host"} })), 403, []string{"bind-mount-readonly", "docker-socket"}, nil},
		{"read-only bind of / still exposes the socket", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{"/:/host:ro"} })), 403, []string{"docker-socket"}, nil},
		{"mount of a new local volume binding /", "admission", create(c(func(r *container.CreateRequest) {
			r.HostConfig.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: "hyhome-test-newvol-" + dockertest.RunID, Target: "/h", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{"type": "none", "o": "bind", "device": "/"}}}}}
		})), 403, []string{"bind-mount-readonly", "docker-socket"}, nil},
		{"anonymous local volume binding a host path", "admission", create(c(func(r *container.CreateRequest) {
			r.HostConfig.Mounts = []mount.Mount{{Type: mount.TypeVolume, Target: "/h", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{"type": "none", "o": "bind", "device": "/tmp"}}}}}
		})), 403, []string{"bind-mount-readonly", "bind mount /tmp (volume (anonymous)) → /h is writable"}, nil},
		{"existing volume that binds /var/run", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.Binds = []string{f.bindVolume + ":/x"} })), 403, []string{"docker-socket", "volume " + f.bindVolume}, nil},
		{"systempaths=unconfined as the CLI sends it", "admission", create(c(func(r *container.CreateRequest) {
			r.HostConfig.MaskedPaths, r.HostConfig.ReadonlyPaths = []string{}, []string{}
		})), 403, []string{"security-profile", "systempaths=unconfined"}, nil},
		{"custom seccomp profile that allows everything", "admission", create(c(func(r *container.CreateRequest) {
			r.HostConfig.SecurityOpt = append(r.HostConfig.SecurityOpt, `seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`)
		})), 403, []string{"security-profile", "SCMP_ACT_ALLOW allows every syscall no rule names"}, nil},
		{"dangerous capability", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.CapAdd = []string{"SYS_ADMIN"} })), 403, []string{"cap-add", "SYS_ADMIN"}, nil},
		{"root user", "admission", create(c(func(r *container.CreateRequest) { r.Config.User = "0:0" })), 403, []string{"non-root [SEC-IDENTITY]"}, nil},
		// runc reads a uid with strconv.Atoi: "+0" and "-0" are root too.
		{"root user spelled +0", "admission", create(c(func(r *container.CreateRequest) { r.Config.User = "+0" })), 403, []string{"non-root [SEC-IDENTITY]"}, nil},
		{"root user spelled -0:+0", "admission", create(c(func(r *container.CreateRequest) { r.Config.User = "-0:+0" })), 403, []string{"non-root [SEC-IDENTITY]"}, nil},
		{"no user and the image runs as root", "admission", create(mustJSON(t, compliant(f.img.Root, func(r *container.CreateRequest) { r.Config.User = "" }))), 403, []string{"non-root", "runs as root"}, nil},
		{"no user and the image's USER is non-root", "admission", create(c(func(r *container.CreateRequest) { r.Config.User = "" })), 201, nil, removeCreated},
		{"no user and the image is missing", "admission", create(mustJSON(t, compliant("hyhome-test/absent:"+dockertest.RunID, func(r *container.CreateRequest) { r.Config.User = "" }))), 404, []string{"No such image"}, nil},
		{"no memory limit", "admission", create(c(func(r *container.CreateRequest) { r.HostConfig.Memory = 0 })), 403, []string{"memory-limit [NFR-RES-01, AC-SPEC-03]"}, nil},
		// Exemption labels are the requester's own claim: on a profile that
		// does not honour exemptions they grant nothing; where a profile
		// does, the ADR must exempt the rule for the request's project and
		// image (exemption_test.go has the repository's own ADRs).
		{"exemption labels where exemptions are not honoured", "admission", create(c(func(r *container.CreateRequest) {
			r.HostConfig.Privileged = true
			r.Config.Labels["com.docker.compose.project"] = testProject
			r.Config.Labels["hy-home.adr"], r.Config.Labels["hy-home.exempt"] = "ADR-0001", "privileged"
		})), 403, []string{"denied by privileged"}, nil},
		{"exempted by an Accepted ADR that covers the request", profileExempting, create(c(func(r *container.CreateRequest) {
			r.HostConfig.Privileged = true
			r.Config.Labels["com.docker.compose.project"] = testProject
			r.Config.Labels["hy-home.adr"], r.Config.Labels["hy-home.exempt"] = "ADR-0001", "privileged"
		})), 201, nil, removeCreated},
		{"exemption citing an ADR written for another project", profileExempting, create(c(func(r *container.CreateRequest) {
			r.HostConfig.Privileged = true
			r.Config.Labels["com.docker.compose.project"] = "shop"
			r.Config.Labels["hy-home.adr"], r.Config.Labels["hy-home.exempt"] = "ADR-0001", "privileged"
		})), 403, []string{"privileged", "adr-exemption", `not to this request (project "shop"`}, nil},
		{"exemption citing a Proposed ADR", profileExempting, create(c(func(r *container.CreateRequest) {
			r.HostConfig.Privileged = true
			r.Config.Labels["com.docker.compose.project"] = testProject
			r.Config.Labels["hy-home.adr"], r.Config.Labels["hy-home.exempt"] = "ADR-0002", "privileged"
		})), 403, []string{"privileged", "adr-exemption", "not Accepted"}, nil},

		// --- path, method and version tricks on the real engine ---
		{"double slash", "admission", strings.Replace(create(privileged), "/containers/create", "/containers//create", 1), 403, []string{"not canonical"}, nil},
		{"encoded slash reaches create and is judged", "admission", strings.Replace(create(privileged), "/containers/create", "/containers%2Fcreate", 1), 403, []string{"denied by privileged"}, nil},
		{"any version spelling is judged", "admission", strings.Replace(create(privileged), "/v1.41/", "/v01.041/", 1), 403, []string{"denied by privileged"}, nil},
		{"unversioned is judged", "admission", strings.Replace(create(privileged), "/v1.41/", "/", 1), 403, []string{"denied by privileged"}, nil},
		{"absolute-form is judged", "admission", strings.Replace(create(privileged), "/v1.41/", "http://localhost/v1.41/", 1), 403, []string{"denied by privileged"}, nil},
		{"lower-case method", "admission", "post" + create(privileged)[4:], 403, []string{"not an Engine API method"}, nil},
		{"method override header", "readonly", create(c(), "X-HTTP-Method-Override: GET"), 403, []string{"not allowed in profile readonly"}, nil},
		{"read through an override header", "readonly", request("GET", "/v1.41/containers/json", "", "X-HTTP-Method-Override: DELETE"), 200, nil, nil},
		{"HEAD ping", "readonly", request("HEAD", "/_ping", ""), 200, nil, nil},
		{"HEAD archive (file stat)", "readonly", request("HEAD", "/v1.41/containers/"+f.running+"/archive?path=/etc", ""), 403, []string{"not allowed in profile readonly"}, nil},

		// --- start and exec on containers the guard did not create ---
		{"start with a HostConfig body (API < 1.24)", "admission", request("POST", "/v1.23/containers/"+f.running+"/start", `{"Privileged":true}`), 403, []string{"older than 1.24"}, nil},
		{"start with a HostConfig body", "admission", request("POST", "/v1.41/containers/"+f.running+"/start", `{"Privileged":true,"Binds":["/:/host"]}`), 403, []string{"takes no request body"}, nil},
		{"start a privileged container", "admission", request("POST", "/v1.41/containers/"+f.privileged+"/start", ""), 403, []string{"denied by privileged"}, nil},
		{"attach to a container with the Docker socket", "admission", request("POST", "/v1.41/containers/"+f.socket+"/attach?stream=1&stdout=1", ""), 403, []string{"docker-socket"}, nil},
		{"exec privileged", "admission", request("POST", "/v1.41/containers/"+f.running+"/exec", `{"Cmd":["/testprog","probe"],"Privileged":true}`), 403, []string{"denied by privileged"}, nil},
		{"exec as root", "admission", request("POST", "/v1.41/containers/"+f.running+"/exec", `{"Cmd":["/testprog","probe"],"User":"root"}`), 403, []string{"non-root", `user "root" does not resolve`}, nil},
		{"exec as root spelled +0", "admission", request("POST", "/v1.41/containers/"+f.running+"/exec", `{"Cmd":["/testprog","probe"],"User":"+0"}`), 403, []string{"non-root"}, nil},
		{"exec in a root container", "admission", request("POST", "/v1.41/containers/"+f.rootRun+"/exec", `{"Cmd":["/testprog","probe"]}`), 403, []string{"non-root"}, nil},
		{"exec lower-case privileged key", "admission", request("POST", "/v1.41/containers/"+f.running+"/exec", `{"Cmd":["/testprog","probe"],"Privileged":false,"privileged":true}`), 403, []string{`must be spelled "Privileged"`}, nil},
		{"exec as the container's user", "admission", request("POST", "/v1.41/containers/"+f.running+"/exec", `{"Cmd":["/testprog","probe"]}`), 201, nil, nil},
		{"start an exec created outside the guard", "admission", request("POST", "/v1.41/exec/"+f.privExec+"/start", `{"Detach":true}`), 403, []string{"privileged [NFR-SEC-01, SEC-IDENTITY]", "non-root"}, nil},
		{"docker cp into a container (readonly)", "readonly", "PUT /v1.41/containers/" + f.running + "/archive?path=/ HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 403, []string{"not allowed in profile readonly"}, nil},
		{"docker cp out of a privileged container", "admission", request("GET", "/v1.41/containers/"+f.privileged+"/archive?path=/", ""), 403, []string{"denied by privileged"}, nil},
		{"export (readonly)", "readonly", request("GET", "/v1.41/containers/"+f.running+"/export", ""), 403, []string{"not allowed in profile readonly"}, nil},
		{"update removes the memory limit", "admission", request("POST", "/v1.41/containers/"+f.running+"/update", `{"Memory":-1}`), 403, []string{"memory-limit"}, nil},
		{"update through a lower-case key", "admission", request("POST", "/v1.41/containers/"+f.running+"/update", `{"memory":-1}`), 403, []string{`must be spelled "Memory"`}, nil},
		{"update CPU only", "admission", request("POST", "/v1.41/containers/"+f.running+"/update", `{"CpuShares":512}`), 200, nil, nil},

		// --- build, session, plugins, volumes, services ---
		{"build with networkmode=host", "trusted", "POST /v1.41/build?networkmode=host HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 403, []string{"host-namespaces"}, nil},
		{"build with a duplicate networkmode", "trusted", "POST /v1.41/build?networkmode=default&networkmode=host HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 403, []string{"host-namespaces"}, nil},
		{"build with networkmode from an urlencoded body", "admission", "POST /v1.41/build HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 16\r\nConnection: close\r\n\r\nnetworkmode=host", 403, []string{"form content type"}, nil},
		{"build with a semicolon query", "admission", "POST /v1.41/build?t=x;networkmode=host HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 403, []string{"does not parse"}, nil},
		{"BuildKit gRPC", "admission", "POST /grpc HTTP/1.1\r\nHost: docker\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 403, []string{"cannot judge"}, nil},
		{"plugin pull with host privileges", "trusted", request("POST", "/v1.41/plugins/pull?remote=example.invalid/p:1", `[{"Name":"network","Description":"","Value":["host"]},{"Name":"mount","Description":"","Value":["/"]},{"Name":"capabilities","Description":"","Value":["CAP_SYS_ADMIN"]}]`),
			// A pull installs without running: the mount's mode is in the
			// plugin's config, judged at enable; its source is judged here.
			403, []string{"host-namespaces", "cap-add", "docker-socket"}, nil},
		{"plugin privilege the guard does not know", "trusted", request("POST", "/v1.41/plugins/pull?remote=example.invalid/p:1", `[{"Name":"everything","Description":"","Value":["true"]}]`), 403, []string{"unknown plugin privilege"}, nil},
		{"volume binding /", "admission", request("POST", "/v1.41/volumes/create", `{"Name":"hyhome-test-v-`+dockertest.RunID+`","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/"}}`), 403, []string{"bind-mount-readonly", "docker-socket"}, nil},
		{"read-only bind volume of /etc", "admission", request("POST", "/v1.41/volumes/create", `{"Name":"hyhome-test-rov-`+dockertest.RunID+`","Driver":"local","DriverOpts":{"type":"none","o":"bind,ro","device":"/etc"},"Labels":{"`+dockertest.LabelKey+`":"`+dockertest.RunID+`"}}`), 403, []string{"host-path", "/etc"},
			func(t testing.TB, r response) {
				t.Cleanup(func() { removeVolume(t, "hyhome-test-rov-"+dockertest.RunID) })
			}},
		{"plain local volume", "admission", request("POST", "/v1.41/volumes/create", `{"Name":"hyhome-test-plain-`+dockertest.RunID+`","Labels":{"`+dockertest.LabelKey+`":"`+dockertest.RunID+`"}}`), 201, nil,
			func(t testing.TB, r response) {
				t.Cleanup(func() { removeVolume(t, "hyhome-test-plain-"+dockertest.RunID) })
			}},
		{"service on the host network", "admission", request("POST", "/v1.41/services/create", serviceSpec(func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "host"}}
		})), 403, []string{"host-namespaces"}, nil},
		{"service bind-mounting /", "admission", request("POST", "/v1.41/services/create", serviceSpec(func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/", Target: "/host", ReadOnly: true}}
		})), 403, []string{"docker-socket"}, nil},
		{"service with the deprecated top-level Networks", "admission", request("POST", "/v1.41/services/create", strings.TrimSuffix(serviceSpec(func(*swarm.ServiceSpec) {}), "}")+`,"Networks":[{"Target":"host"}]}`), 403, []string{`unknown field "Networks"`}, nil},
		{"service running a plugin with host privileges", "admission", request("POST", "/v1.41/services/create", serviceSpec(func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec = nil
			s.TaskTemplate.Runtime = swarm.RuntimePlugin
			s.TaskTemplate.PluginSpec = &swarm.RuntimeSpec{Name: "p", Remote: "example.invalid/p:1", Privileges: []*swarm.RuntimePrivilege{{Name: "network", Value: []string{"host"}}}}
		})), 403, []string{"host-namespaces"}, nil},
		// Swarm before API 1.46 ignores Privileges.NoNewPrivileges: the
		// guard judges what the engine will run, and says why.
		compliantService(t, sw, serviceSpec),
		serviceReachesEngine(sw, attack{name: "service whose no-new-privileges gap is exempted reaches the engine", profile: profileExempting, request: request("POST", "/v1.41/services/create", serviceSpec(func(s *swarm.ServiceSpec) {
			s.Labels["com.docker.stack.namespace"] = testProject
			s.Labels["hy-home.adr"], s.Labels["hy-home.exempt"] = "ADR-0003", "no-new-privileges"
		}))}),
		{"service spec at API 1.40 loses its cap_drop", profileExempting, request("POST", "/v1.40/services/create", serviceSpec(func(s *swarm.ServiceSpec) {
			s.Labels["com.docker.stack.namespace"] = testProject
			s.Labels["hy-home.adr"], s.Labels["hy-home.exempt"] = "ADR-0003", "no-new-privileges"
		})), 403, []string{"cap-drop-all", "ignores CapabilityAdd and CapabilityDrop"}, nil},

		// --- read-only profiles ---
		{"readonly list", "readonly", request("GET", "/v1.41/containers/json", ""), 200, nil, nil},
		{"readonly run", "readonly", create(c()), 403, []string{"POST /containers/create is not allowed in profile readonly"}, nil},
		{"readonly swarm join tokens", "readonly", request("GET", "/v1.41/swarm", ""), 403, []string{"not allowed"}, nil},
		{"shipper logs", "shipper", request("GET", "/v1.41/containers/"+f.running+"/logs?stdout=1", ""), 200, nil, nil},
		{"shipper exec", "shipper", request("POST", "/v1.41/containers/"+f.running+"/exec", `{"Cmd":["id"]}`), 403, []string{"not allowed in profile shipper"}, nil},
		{"unknown route", "admission", request("GET", "/v1.41/debug/pprof/", ""), 403, []string{"not an Engine API route"}, nil},
	}
	for _, a := range rows {
		t.Run(a.name, func(t *testing.T) {
			r := raw(t, tg.socket(t, a.profile), a.request)
			if a.cleanup != nil {
				a.cleanup(t, r)
			}
			if r.status != a.status {
				t.Fatalf("status %d, want %d: %s", r.status, a.status, r.message())
			}
			if strings.HasPrefix(a.request, "HEAD ") {
				return // no body to read a message from
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
}
