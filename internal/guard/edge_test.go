package guard

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

// Each test here first does, directly on the engine, what a profile must
// not let through, and shows that the effect is real; then sends the same
// request through the guard and checks that it is refused with a 403 that
// names the profile (or the rule), and that nothing reached the engine.

// engineSocket is the real engine's unix socket, for raw requests that
// bypass the guard.
func engineSocket(t testing.TB) string {
	t.Helper()
	h := engineHost(t)
	p, ok := strings.CutPrefix(h, "unix://")
	if !ok {
		testenv.Missing(t, "the engine is not on a unix socket (%s)", h)
	}
	return p
}

// withProfiles adds the custom profiles of a guard configuration (YAML) and
// a listener for each, on a socket named after the profile.
func withProfiles(t testing.TB, yaml string) guardOption {
	t.Helper()
	fc, err := ParseConfig("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return func(c *Config) {
		c.Profiles = fc.Profiles
		for name := range fc.Profiles {
			c.Listeners = append(c.Listeners, Listener{Network: "unix", Address: filepath.Join(dir, name+".sock"), Profile: name})
		}
	}
}

// socket returns the socket of a profile, built in or custom.
func (tg *testGuard) socket(t testing.TB, profile string) string {
	t.Helper()
	if s, ok := tg.sockets[profile]; ok {
		return s
	}
	for _, l := range tg.g.cfg.Listeners {
		if l.Profile == profile {
			return l.Address
		}
	}
	t.Fatalf("no listener for profile %s", profile)
	return ""
}

// mustRefuse checks a 403 whose message names every want.
func mustRefuse(t testing.TB, what string, r response, wants ...string) {
	t.Helper()
	if r.status != http.StatusForbidden {
		t.Errorf("%s: %d %s, want 403", what, r.status, r.message())
		return
	}
	for _, w := range wants {
		if !strings.Contains(r.message(), w) {
			t.Errorf("%s: refusal %q does not name %q", what, r.message(), w)
		}
	}
}

func mustStatus(t testing.TB, what string, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: %d %s, want %d", what, r.status, r.message(), want)
	}
}

// procStatus waits for a process whose command line holds marker (in the
// host's PID namespace: plugins and build steps run outside any container
// the test can inspect) and returns the fields of its /proc status.
func procStatus(t testing.TB, marker string, timeout time.Duration) map[string]string {
	t.Helper()
	return procStatusUntil(t, marker, time.After(timeout), fmt.Sprintf("within %v", timeout))
}

// procStatusUntil is procStatus bounded by an event instead of a time (a
// build that ends before its RUN step was seen): stop's firing fails the
// test, saying when.
func procStatusUntil[T any](t testing.TB, marker string, stop <-chan T, when string) map[string]string {
	t.Helper()
	for {
		select {
		case <-stop:
			t.Fatalf("no process with %q in its command line %s", marker, when)
			return nil
		default:
		}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil || !bytes.Contains(cmd, []byte(marker)) {
				continue
			}
			st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
			if err != nil {
				continue
			}
			out := map[string]string{}
			for _, line := range strings.Split(string(st), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok {
					out[k] = strings.TrimSpace(v)
				}
			}
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runsAsDockerDefault checks what a process runs with: root, Docker's
// default capability set (not empty, not full), no no-new-privileges and no
// seccomp filter.
func runsAsDockerDefault(t testing.TB, what string, st map[string]string) {
	t.Helper()
	uid := strings.Fields(st["Uid"])
	if len(uid) == 0 || uid[0] != "0" {
		t.Errorf("%s runs as uid %v, want 0", what, uid)
	}
	caps, _ := strconv.ParseUint(st["CapEff"], 16, 64)
	if caps == 0 || caps&(1<<21) != 0 { // CAP_SYS_ADMIN is not in Docker's default set
		t.Errorf("%s: effective capabilities %s, want Docker's default set", what, st["CapEff"])
	}
	if st["NoNewPrivs"] != "0" {
		t.Errorf("%s: NoNewPrivs %s, want 0", what, st["NoNewPrivs"])
	}
	t.Logf("%s: Uid %s, CapEff %s, NoNewPrivs %s, Seccomp %s", what, st["Uid"], st["CapEff"], st["NoNewPrivs"], st["Seccomp"])
}

// pluginArchive is a plugin from the test's pluginprog binary, whose first
// argument is marker.
func pluginArchive(t testing.TB, marker string, mounts string, args ...string) []byte {
	t.Helper()
	bin, err := dockertest.BuildBinary("./internal/guard/testdata/pluginprog", t.TempDir(), "pluginprog")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	entry, _ := json.Marshal(append([]string{"/pluginprog", marker}, args...))
	config := `{"Description":"hyhome guard test plugin","Documentation":"https://example.invalid","Interface":{"Types":["docker.volumedriver/1.0"],"Socket":"p.sock"},` +
		`"Entrypoint":` + string(entry) + `,"WorkDir":"","Network":{"Type":"none"},"Linux":{"Capabilities":null,"AllowAllDevices":false,"Devices":null},` +
		`"Mounts":` + mounts + `,"Env":[],"Args":{"Name":"","Description":"","Settable":null,"Value":null}}`
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		hdr  tar.Header
		data []byte
	}{
		{tar.Header{Name: "config.json", Mode: 0o644}, []byte(config)},
		{tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir}, nil},
		{tar.Header{Name: "rootfs/pluginprog", Mode: 0o755}, prog},
		{tar.Header{Name: "rootfs/run/", Mode: 0o755, Typeflag: tar.TypeDir}, nil},
		{tar.Header{Name: "rootfs/run/docker/", Mode: 0o755, Typeflag: tar.TypeDir}, nil},
		{tar.Header{Name: "rootfs/run/docker/plugins/", Mode: 0o755, Typeflag: tar.TypeDir}, nil},
		{tar.Header{Name: "rootfs/mnt/", Mode: 0o755, Typeflag: tar.TypeDir}, nil},
		// The engine (20.10) refuses a second plugin whose rootfs is
		// byte-identical to one it has ("content …: already exists").
		{tar.Header{Name: "rootfs/marker", Mode: 0o644}, []byte(marker)},
	}
	for _, f := range files {
		h := f.hdr
		h.Size = int64(len(f.data))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarRequest(target string, body []byte) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", target, len(body), body)
}

func removePlugin(t testing.TB, name string) {
	t.Cleanup(func() {
		sock := engineSocket(t)
		_ = raw(t, sock, request("POST", "/v1.41/plugins/"+name+"/disable?force=1", ""))
		_ = raw(t, sock, request("DELETE", "/v1.41/plugins/"+name+"?force=1", ""))
	})
}

// Issue 11 item 6: a plugin runs as root with Docker's default capabilities,
// without no-new-privileges or seccomp, whatever its configuration says.
// Admission refuses to create, pull, upgrade or enable one that its profile
// does not name; a profile that names it still has its configuration judged
// (a writable mount is refused, a read-only one is not).
func TestPluginsOnlyWhenNamed(t *testing.T) {
	eng := engineSocket(t)
	id := dockertest.RunID
	direct := dockertest.PluginPrefix + id + "-plugin-direct:1"
	named := dockertest.PluginPrefix + id + "-plugin-named:1"
	writable := dockertest.PluginPrefix + id + "-plugin-rw:1"
	// The host directory the named plugins mount: admission allows it as a
	// bind source (admission.host_sources), as a deployment would.
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil {
		t.Fatal(err)
	}
	tg := startGuard(t, withProfiles(t, `
profiles:
  plugins:
    include: [admission]
    plugins: [`+named+`, `+writable+`]
`), func(c *Config) { c.Allow.HostSources = []string{host} })

	// Directly: created, enabled, and running as root with default
	// capabilities and no no-new-privileges.
	marker := "hyhome-plugin-marker-" + id
	removePlugin(t, direct)
	mustStatus(t, "creating the plugin directly", raw(t, eng, tarRequest("/v1.41/plugins/create?name="+direct, pluginArchive(t, marker, "[]"))), http.StatusNoContent)
	mustStatus(t, "enabling it directly", raw(t, eng, request("POST", "/v1.41/plugins/"+direct+"/enable?timeout=60", "")), http.StatusOK)
	runsAsDockerDefault(t, "a plugin enabled directly", procStatus(t, marker, testenv.Hang))

	// Through admission: refused at every step, naming the profile.
	adm := tg.sockets[ProfileAdmission]
	other := dockertest.PluginPrefix + id + "-plugin-other:1"
	removePlugin(t, other)
	mustRefuse(t, "create through admission", raw(t, adm, tarRequest("/v1.41/plugins/create?name="+other, pluginArchive(t, marker+"-x", "[]"))),
		"not named in profile admission")
	mustRefuse(t, "pull through admission", raw(t, adm, request("POST", "/v1.41/plugins/pull?remote=example.invalid/p:1", `[]`)), "not named in profile admission")
	mustRefuse(t, "upgrade through admission", raw(t, adm, request("POST", "/v1.41/plugins/"+direct+"/upgrade?remote=example.invalid/p:2", `[]`)), "not named in profile admission")
	if r := raw(t, eng, request("GET", "/v1.41/plugins/"+other+"/json", "")); r.status != http.StatusNotFound {
		t.Errorf("the refused plugin exists on the engine: %d %s", r.status, r.body)
	}
	mustStatus(t, "disabling the direct plugin", raw(t, eng, request("POST", "/v1.41/plugins/"+direct+"/disable?force=1", "")), http.StatusOK)
	mustRefuse(t, "enable through admission", raw(t, adm, request("POST", "/v1.41/plugins/"+direct+"/enable?timeout=60", "")), "not named in profile admission")

	// A profile that names the plugin: created and enabled through the
	// guard; its ro mount is read-only in effect and judged so.
	roMount := `[{"Name":"data","Description":"","Settable":null,"Source":"` + host + `","Destination":"/mnt","Type":"bind","Options":["bind","ro"]}]`
	rwMount := strings.Replace(roMount, `"bind","ro"`, `"bind"`, 1)
	sock := tg.socket(t, "plugins")
	removePlugin(t, named)
	mustStatus(t, "creating a named plugin through its profile", raw(t, sock, tarRequest("/v1.41/plugins/create?name="+named, pluginArchive(t, marker+"-ro", roMount, "write:/mnt/from-ro"))), http.StatusNoContent)
	mustStatus(t, "enabling it (a read-only mount)", raw(t, sock, request("POST", "/v1.41/plugins/"+named+"/enable?timeout=60", "")), http.StatusOK)
	procStatus(t, marker+"-ro", testenv.Hang)
	if _, err := os.Stat(filepath.Join(host, "from-ro")); err == nil {
		t.Error("a plugin wrote through its ro mount: the mount is not read-only")
	}

	// The same mount without ro: writable in effect (directly), refused by
	// bind-mount-readonly through the guard.
	removePlugin(t, writable)
	rwDirect := dockertest.PluginPrefix + id + "-plugin-rwdirect:1"
	removePlugin(t, rwDirect)
	mustStatus(t, "creating a writable-mount plugin directly", raw(t, eng, tarRequest("/v1.41/plugins/create?name="+rwDirect, pluginArchive(t, marker+"-rwd", rwMount, "write:/mnt/from-rw"))), http.StatusNoContent)
	mustStatus(t, "enabling it directly", raw(t, eng, request("POST", "/v1.41/plugins/"+rwDirect+"/enable?timeout=60", "")), http.StatusOK)
	procStatus(t, marker+"-rwd", testenv.Hang)
	dockertestWait(t, testenv.Hang, "the plugin's write through its mount", func() bool {
		_, err := os.Stat(filepath.Join(host, "from-rw"))
		return err == nil
	})
	mustStatus(t, "creating it through the profile", raw(t, sock, tarRequest("/v1.41/plugins/create?name="+writable, pluginArchive(t, marker+"-rw", rwMount))), http.StatusNoContent)
	mustRefuse(t, "enabling a plugin with a writable mount", raw(t, sock, request("POST", "/v1.41/plugins/"+writable+"/enable?timeout=60", "")), "bind-mount-readonly")
}

func dockertestWait(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("waiting for %s (%v)", what, timeout)
}

// Issue 17 item 7: a build's RUN steps run as root with default
// capabilities and without no-new-privileges; admission withholds builds,
// and a profile that allows them gets them judged as before.
func TestBuildsWithheld(t *testing.T) {
	eng := engineSocket(t)
	img := dockertest.Build(t)
	tg := startGuard(t, withProfiles(t, `
profiles:
  builder:
    include: [admission]
    allow: [POST /build]
`))
	marker := "hyhome-build-marker-" + dockertest.RunID
	dockerfile := "FROM " + img.NonRoot + "\nUSER 0\nRUN [\"/testprog\", \"log\", \"-lines\", \"1\", \"-delay\", \"20s\", \"-token\", \"" + marker + "\"]\nLABEL " + dockertest.LabelKey + "=" + dockertest.RunID + "\n"
	ctxTar := func(df string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))})
		_, _ = tw.Write([]byte(df))
		_ = tw.Close()
		return buf.Bytes()
	}
	tag := "hyhome-test/build-direct:" + dockertest.RunID
	t.Cleanup(func() { _ = raw(t, eng, request("DELETE", "/v1.41/images/"+tag+"?force=1", "")) })
	// No deadline on the build (a cold engine on a loaded machine is slow):
	// the RUN step sleeps 20 s, so it is seen unless the build ends first.
	done, built := make(chan response, 1), make(chan struct{})
	go func() {
		done <- raw(t, eng, tarRequest("/v1.41/build?rm=1&forcerm=1&t="+url.QueryEscape(tag), ctxTar(dockerfile)))
		close(built)
	}()
	runsAsDockerDefault(t, "a RUN step built directly", procStatusUntil(t, marker, built, "before the build ended"))
	mustStatus(t, "building directly", <-done, http.StatusOK)

	mustRefuse(t, "build through admission", raw(t, tg.sockets[ProfileAdmission], tarRequest("/v1.41/build?t=x", ctxTar(dockerfile))), "POST /build is not allowed in profile admission")
	mustRefuse(t, "session through admission", raw(t, tg.sockets[ProfileAdmission], request("POST", "/v1.41/session", "")), "not allowed in profile admission")
	mustRefuse(t, "build on the host network through a profile that allows builds",
		raw(t, tg.socket(t, "builder"), tarRequest("/v1.41/build?networkmode=host", ctxTar(dockerfile))), "host-namespaces")
}

// Issue 17 item 9: prunes remove what others still own; admission withholds
// them. The direct prune is narrowed to this run's label, so that nothing
// else on the shared engine is touched.
func TestPrunesWithheld(t *testing.T) {
	eng := engineSocket(t)
	tg := startGuard(t)
	vol := "hyhome-test-prune-" + dockertest.RunID
	mine := url.QueryEscape(`{"label":["` + dockertest.LabelKey + "=" + dockertest.RunID + `"]}`)
	create := func() {
		mustStatus(t, "creating a volume", raw(t, eng, request("POST", "/v1.41/volumes/create", `{"Name":"`+vol+`","Labels":{"`+dockertest.LabelKey+`":"`+dockertest.RunID+`"}}`)), http.StatusCreated)
	}
	t.Cleanup(func() { _ = raw(t, eng, request("DELETE", "/v1.41/volumes/"+vol, "")) })
	create()
	mustStatus(t, "pruning this run's volumes directly", raw(t, eng, request("POST", "/v1.41/volumes/prune?filters="+mine, "")), http.StatusOK)
	mustStatus(t, "the pruned volume", raw(t, eng, request("GET", "/v1.41/volumes/"+vol, "")), http.StatusNotFound)

	create()
	for _, p := range []string{"/containers/prune", "/images/prune", "/volumes/prune", "/networks/prune", "/build/prune"} {
		mustRefuse(t, p, raw(t, tg.sockets[ProfileAdmission], request("POST", "/v1.41"+p+"?filters="+mine, "")), "not allowed in profile admission")
	}
	mustStatus(t, "the volume after the refused prune", raw(t, eng, request("GET", "/v1.41/volumes/"+vol, "")), http.StatusOK)
}

// Issue 11 item 7 and issue 17 item 7: Swarm control. On a single-node
// Swarm (held under dockertest's lock): init made the engine a manager
// whose GET /swarm hands out the join tokens, and update and node updates
// change the cluster; through the guard every control call is refused,
// the cluster is unchanged, and GET /swarm through admission carries no
// token.
func TestSwarmControlWithheld(t *testing.T) {
	eng := engineSocket(t)
	c := dockertest.Client(t)
	dockertest.Swarm(t, c)
	tg := startGuard(t)
	adm := tg.sockets[ProfileAdmission]

	var sw struct {
		ID         string
		Version    struct{ Index uint64 }
		JoinTokens struct{ Worker, Manager string }
		Spec       json.RawMessage
	}
	readSwarm := func(sock string) {
		r := raw(t, sock, request("GET", "/v1.41/swarm", ""))
		mustStatus(t, "GET /swarm", r, http.StatusOK)
		if err := json.Unmarshal([]byte(r.body), &sw); err != nil {
			t.Fatal(err)
		}
	}
	readSwarm(eng)
	if !strings.HasPrefix(sw.JoinTokens.Worker, "SWMTKN-") || !strings.HasPrefix(sw.JoinTokens.Manager, "SWMTKN-") {
		t.Fatalf("the manager's GET /swarm holds no join tokens: %+v", sw.JoinTokens)
	}
	worker := sw.JoinTokens.Worker
	// swarm update directly: rotating the worker token changes it.
	mustStatus(t, "rotating the worker token directly",
		raw(t, eng, request("POST", fmt.Sprintf("/v1.41/swarm/update?version=%d&rotateWorkerToken=true", sw.Version.Index), string(sw.Spec))), http.StatusOK)
	readSwarm(eng)
	if sw.JoinTokens.Worker == worker {
		t.Fatal("the direct swarm update did not rotate the worker token")
	}
	worker = sw.JoinTokens.Worker

	// Through admission: tokens redacted, every control call refused.
	r := raw(t, adm, request("GET", "/v1.41/swarm", ""))
	mustStatus(t, "GET /swarm through admission", r, http.StatusOK)
	if strings.Contains(r.body, "SWMTKN-") || !strings.Contains(r.body, redactedValue) {
		t.Errorf("admission's GET /swarm hands out a join token: %s", r.body)
	}
	var nodes []struct{ ID string }
	if err := json.Unmarshal([]byte(raw(t, eng, request("GET", "/v1.41/nodes", "")).body), &nodes); err != nil || len(nodes) == 0 {
		t.Fatalf("listing nodes: %v", err)
	}
	for _, req := range []string{
		request("POST", "/v1.41/swarm/init", `{"ListenAddr":"127.0.0.1:2377"}`),
		request("POST", "/v1.41/swarm/join", `{"ListenAddr":"127.0.0.1:2377","RemoteAddrs":["127.0.0.1:1"],"JoinToken":"`+worker+`"}`),
		request("POST", "/v1.41/swarm/leave?force=1", ""),
		request("POST", fmt.Sprintf("/v1.41/swarm/update?version=%d&rotateWorkerToken=true", sw.Version.Index), string(sw.Spec)),
		request("POST", "/v1.41/swarm/unlock", `{"UnlockKey":"x"}`),
		request("GET", "/v1.41/swarm/unlockkey", ""),
		request("POST", "/v1.41/nodes/"+nodes[0].ID+"/update?version=1", `{"Availability":"drain","Role":"manager"}`),
		request("DELETE", "/v1.41/nodes/"+nodes[0].ID+"?force=1", ""),
	} {
		for _, p := range []string{ProfileAdmission, ProfileReadonly} {
			mustRefuse(t, p+" "+firstLine(req), raw(t, tg.sockets[p], req), "is not allowed in profile "+p)
		}
	}
	readSwarm(eng)
	if sw.JoinTokens.Worker != worker {
		t.Error("the worker token changed after the refused update")
	}
	info := raw(t, eng, request("GET", "/v1.41/info", ""))
	if !strings.Contains(info.body, `"LocalNodeState":"active"`) || !strings.Contains(info.body, `"ControlAvailable":true`) {
		t.Errorf("the node left its Swarm or lost its manager role: %s", info.body)
	}
}

// Issue 17 item 9: retagging an image as one an infrastructure container
// runs replaces what that container runs when it is recreated.
func TestRetagInUse(t *testing.T) {
	eng := engineSocket(t)
	img := dockertest.Build(t)
	tg := startGuard(t, withProfiles(t, `
profiles:
  retagger:
    include: [admission]
    permit: [retag-in-use]
`))
	stack := "hyhome-test/stack:" + dockertest.RunID
	mustStatus(t, "tagging the stack's image", raw(t, eng, request("POST", "/v1.41/images/"+img.NonRoot+"/tag?repo=hyhome-test/stack&tag="+dockertest.RunID, "")), http.StatusCreated)
	t.Cleanup(func() { _ = raw(t, eng, request("DELETE", "/v1.41/images/"+stack+"?force=1", "")) })
	dockertest.Run(t, dockertest.Spec{Name: "infra", Image: stack, User: "65534:65534", NoStart: true, Labels: map[string]string{"hy-home.tier": "infra"}})

	imageID := func(ref string) string {
		var im struct{ Id string }
		_ = json.Unmarshal([]byte(raw(t, eng, request("GET", "/v1.41/images/"+ref+"/json", "")).body), &im)
		return im.Id
	}
	nonRoot, root := imageID(img.NonRoot), imageID(img.Root)
	// Directly: the root image takes the name; a recreated container
	// would run as root.
	mustStatus(t, "retagging directly", raw(t, eng, request("POST", "/v1.41/images/"+img.Root+"/tag?repo=hyhome-test/stack&tag="+dockertest.RunID, "")), http.StatusCreated)
	if imageID(stack) != root {
		t.Fatal("the direct retag did not move the name")
	}
	mustStatus(t, "restoring the tag", raw(t, eng, request("POST", "/v1.41/images/"+img.NonRoot+"/tag?repo=hyhome-test/stack&tag="+dockertest.RunID, "")), http.StatusCreated)

	adm := tg.sockets[ProfileAdmission]
	for _, req := range []string{
		request("POST", "/v1.41/images/"+img.Root+"/tag?repo=hyhome-test/stack&tag="+dockertest.RunID, ""),
		request("POST", "/v1.41/images/"+img.Root+"/tag?repo=docker.io/hyhome-test/stack:"+dockertest.RunID, ""),
		request("POST", "/v1.41/images/create?fromSrc=-&repo=hyhome-test/stack&tag="+dockertest.RunID, ""),
	} {
		mustRefuse(t, firstLine(req), raw(t, adm, req), "infrastructure container", "retag-in-use")
	}
	if imageID(stack) != nonRoot {
		t.Fatal("a refused retag moved the name")
	}
	other := "hyhome-test/other:" + dockertest.RunID
	t.Cleanup(func() { _ = raw(t, eng, request("DELETE", "/v1.41/images/"+other, "")) })
	mustStatus(t, "tagging a name no infrastructure container runs", raw(t, adm, request("POST", "/v1.41/images/"+img.Root+"/tag?repo=hyhome-test/other&tag="+dockertest.RunID, "")), http.StatusCreated)
	mustStatus(t, "retagging through a profile that permits it", raw(t, tg.socket(t, "retagger"), request("POST", "/v1.41/images/"+img.NonRoot+"/tag?repo=hyhome-test/stack&tag="+dockertest.RunID, "")), http.StatusCreated)
}

// createNetwork creates a labelled network directly and removes it at the
// end.
func createNetwork(t testing.TB, body string) string {
	t.Helper()
	eng := engineSocket(t)
	r := raw(t, eng, request("POST", "/v1.41/networks/create", body))
	mustStatus(t, "creating a network", r, http.StatusCreated)
	var n struct{ Id string }
	_ = json.Unmarshal([]byte(r.body), &n)
	t.Cleanup(func() { _ = raw(t, eng, request("DELETE", "/v1.41/networks/"+n.Id, "")) })
	return n.Id
}

// Issue 17 item 9: a second container that answers an infrastructure
// service's name on its network takes that service's traffic.
func TestInfraNames(t *testing.T) {
	eng := engineSocket(t)
	img := dockertest.Build(t)
	tg := startGuard(t)
	adm := tg.sockets[ProfileAdmission]
	netName := "hyhome-test-names-" + dockertest.RunID
	createNetwork(t, `{"Name":"`+netName+`","Labels":{"`+dockertest.LabelKey+`":"`+dockertest.RunID+`"}}`)
	alias := "hyhome-test-loki-" + dockertest.RunID
	onNet := func(aliases ...string) string {
		b, _ := json.Marshal(map[string]any{"EndpointsConfig": map[string]any{netName: map[string]any{"Aliases": aliases}}})
		return string(b)
	}
	nc := func(aliases ...string) *network.NetworkingConfig {
		var n network.NetworkingConfig
		_ = json.Unmarshal([]byte(onNet(aliases...)), &n)
		return &n
	}
	// The infrastructure service answers its alias but serves nothing on
	// 9100; the impostor serves there.
	dockertest.Run(t, dockertest.Spec{Name: "loki", Image: img.NonRoot, Cmd: []string{"sleep"}, Labels: map[string]string{"hy-home.tier": "infra"}, Networking: nc(alias)})
	dockertest.Run(t, dockertest.Spec{Name: "impostor", Image: img.NonRoot, Cmd: []string{"serve", "-addr", ":9100"}, Networking: nc(alias)})
	probeID, _ := dockertest.Run(t, dockertest.Spec{Name: "client", Image: img.NonRoot, Cmd: []string{"probe", "-url", "http://" + alias + ":9100/healthz"}, Networking: nc()})
	var st struct {
		State struct {
			Running  bool
			ExitCode int
		}
	}
	dockertestWait(t, testenv.Hang, "the client's probe to exit", func() bool {
		_ = json.Unmarshal([]byte(raw(t, eng, request("GET", "/v1.41/containers/"+probeID+"/json", "")).body), &st)
		return !st.State.Running
	})
	if st.State.ExitCode != 0 {
		t.Fatalf("a client asking for %s did not reach the impostor (exit %d)", alias, st.State.ExitCode)
	}

	body := mustJSON(t, compliant(img.NonRoot, func(r *containerCreateRequest) {
		_ = json.Unmarshal([]byte(onNet(alias)), &r.NetworkingConfig)
	}))
	mustRefuse(t, "create with the alias", raw(t, adm, request("POST", "/v1.41/containers/create", body)), "network alias", alias, "infra-names")
	mustRefuse(t, "create named as the service", raw(t, adm, request("POST", "/v1.41/containers/create?name="+strings.ToUpper(alias), mustJSON(t, compliant(img.NonRoot)))), "container name")
	plainID, _ := dockertest.Run(t, dockertest.Spec{Name: "plain", Image: img.NonRoot, NoStart: true})
	mustRefuse(t, "connect with the alias", raw(t, adm, request("POST", "/v1.41/networks/"+netName+"/connect", `{"Container":"`+plainID+`","EndpointConfig":{"Aliases":["`+alias+`"]}}`)), "network alias")
	mustRefuse(t, "rename to the alias", raw(t, adm, request("POST", "/v1.41/containers/"+plainID+"/rename?name="+alias, "")), "new name")
	r := raw(t, adm, request("POST", "/v1.41/containers/"+plainID+"/rename?name=hyhome-test-renamed-"+dockertest.RunID, ""))
	mustStatus(t, "a rename to a free name", r, http.StatusNoContent)
}

// Issue 17 item 9: a macvlan network on a host interface puts a
// container's interface on that interface's link, stacked on it by the
// kernel. The parent here is the bridge of a network the test creates, and
// no traffic is sent: the kernel's own description of the container's
// interface is the evidence.
func TestHostInterfaceNetworks(t *testing.T) {
	eng := engineSocket(t)
	img := dockertest.Build(t)
	tg := startGuard(t)
	adm := tg.sockets[ProfileAdmission]
	label := `"Labels":{"` + dockertest.LabelKey + `":"` + dockertest.RunID + `"}`
	bridgeID := createNetwork(t, `{"Name":"hyhome-test-lan-`+dockertest.RunID+`",`+label+`}`)
	parent := "br-" + bridgeID[:12]
	macvlan := `{"Name":"hyhome-test-macvlan-` + dockertest.RunID + `","Driver":"macvlan","Options":{"parent":"` + parent + `"},` + label + `}`
	createNetwork(t, macvlan)
	id, _ := dockertest.Run(t, dockertest.Spec{Name: "lan-client", Image: img.NonRoot, Cmd: []string{"sleep"},
		Networking: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"hyhome-test-macvlan-" + dockertest.RunID: {}}}})
	var st struct{ State struct{ Pid int } }
	_ = json.Unmarshal([]byte(raw(t, eng, request("GET", "/v1.41/containers/"+id+"/json", "")).body), &st)
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("reading a container's interfaces through /proc/PID/root needs root")
	}
	sys := fmt.Sprintf("/proc/%d/root/sys/class/net/eth0/", st.State.Pid)
	uevent, err1 := os.ReadFile(sys + "uevent")
	iflink, err2 := os.ReadFile(sys + "iflink")
	ifindex, err3 := os.ReadFile("/sys/class/net/" + parent + "/ifindex")
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("reading the interfaces: %v %v %v", err1, err2, err3)
	}
	// A veth's iflink is its peer's index; eth0's is the host interface's
	// own: the kernel stacked it directly on that interface.
	if strings.TrimSpace(string(iflink)) != strings.TrimSpace(string(ifindex)) {
		t.Fatalf("the container's eth0 is not stacked on %s (ifindex %s): iflink %s, uevent %q", parent, bytes.TrimSpace(ifindex), bytes.TrimSpace(iflink), uevent)
	}
	t.Logf("directly: the container's eth0 is stacked on the host's %s (ifindex %s)", parent, bytes.TrimSpace(ifindex))

	for name, body := range map[string]string{
		"macvlan":            strings.Replace(macvlan, "hyhome-test-macvlan-", "hyhome-test-macvlan2-", 1),
		"ipvlan":             `{"Name":"hyhome-test-ipvlan-` + dockertest.RunID + `","Driver":"ipvlan","Options":{"parent":"` + parent + `"},` + label + `}`,
		"a host bridge":      `{"Name":"hyhome-test-br0-` + dockertest.RunID + `","Driver":"bridge","Options":{"com.docker.network.bridge.name":"br0"},` + label + `}`,
		"a config-only peer": `{"Name":"hyhome-test-cfgfrom-` + dockertest.RunID + `","Driver":"macvlan","ConfigFrom":{"Network":"x"},` + label + `}`,
	} {
		mustRefuse(t, name, raw(t, adm, request("POST", "/v1.41/networks/create", body)), "host-interface-networks")
	}
	ok := raw(t, adm, request("POST", "/v1.41/networks/create", `{"Name":"hyhome-test-plain-`+dockertest.RunID+`","CheckDuplicate":true,"Driver":"bridge",`+label+`}`))
	mustStatus(t, "a plain bridge network through admission", ok, http.StatusCreated)
	var n struct{ Id string }
	_ = json.Unmarshal([]byte(ok.body), &n)
	t.Cleanup(func() { _ = raw(t, eng, request("DELETE", "/v1.41/networks/"+n.Id, "")) })
}
