package guard

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
	"github.com/moby/moby/client"
)

// dockerCLI runs the docker CLI against a guard socket, with a config
// directory of its own so that no user context or credential applies.
func dockerCLI(t *testing.T, socket, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if _, lerr := exec.LookPath("docker"); lerr != nil {
		testenv.Missing(t, "the docker CLI is not installed (Debian package docker.io)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Hang)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + socket}, args...)...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "DOCKER_CONFIG=" + t.TempDir(), "PATH=/usr/local/bin:/usr/bin:/bin"}, extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// compliantRunFlags are `docker run` flags that satisfy every error rule.
func compliantRunFlags() []string {
	return []string{
		"--user", "65534:65534", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--memory", "64m", "--pids-limit", "64", "--read-only",
		"--label", "hy-home.tier=app", "--label", "hy-home.metrics.port=9100",
		"--label", dockertest.LabelKey + "=" + dockertest.RunID,
		"--health-cmd", "/testprog probe",
	}
}

// The docker CLI works unchanged through the admission profile: it runs a
// compliant container (detached and attached, stdin both ways), execs into
// it, and is refused a privileged one with a message that names the rule.
func TestDockerCLIAdmission(t *testing.T) {
	tg := startGuard(t)
	img := dockertest.Build(t)
	sock := tg.sockets[ProfileAdmission]
	name := "hyhome-test-cli-" + dockertest.RunID
	t.Cleanup(func() { dockertest.RemoveContainer(dockertest.Client(t), name) })

	args := append([]string{"run", "-d", "--name", name}, compliantRunFlags()...)
	out, stderr, err := dockerCLI(t, sock, "", append(args, img.NonRoot, "sleep")...)
	if err != nil {
		t.Fatalf("docker run (compliant): %v\n%s", err, stderr)
	}
	id := strings.TrimSpace(out)

	out, stderr, err = dockerCLI(t, sock, "", "inspect", "--format", "{{.HostConfig.SecurityOpt}} {{.Config.User}}", name)
	if err != nil || !strings.Contains(out, "no-new-privileges") || !strings.Contains(out, "65534:65534") {
		t.Fatalf("docker inspect: %q %v %s", out, err, stderr)
	}

	// Attached run with stdin: create, attach (hijacked), start, wait.
	args = append([]string{"run", "--rm", "-i"}, compliantRunFlags()...)
	out, stderr, err = dockerCLI(t, sock, "hello through the guard\n", append(args, img.NonRoot, "cat")...)
	if err != nil || out != "hello through the guard\n" {
		t.Fatalf("docker run -i cat: out %q, err %v, stderr %s", out, err, stderr)
	}

	// exec start is hijacked too, both ways.
	out, stderr, err = dockerCLI(t, sock, "exec stdin\n", "exec", "-i", id, "/testprog", "cat")
	if err != nil || out != "exec stdin\n" {
		t.Fatalf("docker exec -i: out %q, err %v, stderr %s", out, err, stderr)
	}

	_, stderr, err = dockerCLI(t, sock, "", "exec", "--privileged", id, "/testprog", "probe")
	if err == nil || !strings.Contains(stderr, "hyhome guard: denied by privileged [NFR-SEC-01, SEC-IDENTITY]") {
		t.Fatalf("docker exec --privileged: err %v, stderr %s", err, stderr)
	}

	args = append([]string{"run", "--rm", "--privileged"}, compliantRunFlags()...)
	_, stderr, err = dockerCLI(t, sock, "", append(args, img.NonRoot, "sleep")...)
	if err == nil {
		t.Fatal("docker run --privileged succeeded")
	}
	if !strings.Contains(stderr, "hyhome guard: denied by privileged [NFR-SEC-01, SEC-IDENTITY]: runs privileged") {
		t.Fatalf("docker run --privileged: the message does not say why:\n%s", stderr)
	}

	// A run that breaks several rules names each of them.
	_, stderr, _ = dockerCLI(t, sock, "", "run", "--rm", "--network", "host", "--user", "0", img.NonRoot, "sleep")
	for _, rule := range []string{"host-namespaces [NFR-SEC-01]", "non-root [SEC-IDENTITY]", "memory-limit [NFR-RES-01, AC-SPEC-03]", "tier-label [OPS-ALERTING]"} {
		if !strings.Contains(stderr, rule) {
			t.Errorf("docker run --network host --user 0: message lacks %s:\n%s", rule, stderr)
		}
	}
}

// Read-only consumers see containers and events; everything that writes or
// reaches into a container is refused.
func TestDockerCLIReadonly(t *testing.T) {
	tg := startGuard(t)
	img := dockertest.Build(t)
	sock := tg.sockets[ProfileReadonly]
	since := time.Now().Add(-time.Second).Unix()
	id, name := dockertest.Run(t, dockertest.Spec{Name: "ro", Image: img.NonRoot, Cmd: []string{"sleep"}})

	out, stderr, err := dockerCLI(t, sock, "", "ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}")
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("docker ps: %v %s\n%s", err, stderr, out)
	}
	out, stderr, err = dockerCLI(t, sock, "", "inspect", "--format", "{{.Name}}", id)
	if err != nil || strings.TrimSpace(out) != "/"+name {
		t.Fatalf("docker inspect: %q %v %s", out, err, stderr)
	}
	out, stderr, err = dockerCLI(t, sock, "", "events", "--since", itoa(since), "--until", itoa(time.Now().Unix()+1),
		"--filter", "container="+id, "--format", "{{.Action}}")
	if err != nil || !strings.Contains(out, "start") {
		t.Fatalf("docker events: %q %v %s", out, err, stderr)
	}
	for _, args := range [][]string{
		{"run", "--rm", img.NonRoot, "sleep"},
		{"exec", id, "/testprog", "probe"},
		{"cp", id + ":/testprog", t.TempDir()},
		{"cp", "/etc/hostname", id + ":/tmp/x"},
		{"export", "-o", t.TempDir() + "/x.tar", id},
		{"stop", id},
		{"logs", id},
	} {
		_, stderr, err := dockerCLI(t, sock, "", args...)
		if err == nil || !strings.Contains(stderr, "is not allowed in profile readonly") {
			t.Errorf("docker %s: err %v, stderr %s", strings.Join(args, " "), err, stderr)
		}
	}
	// The shipper profile reads logs.
	if _, stderr, err := dockerCLI(t, tg.sockets[ProfileShipper], "", "logs", id); err != nil {
		t.Errorf("docker logs through shipper: %v %s", err, stderr)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Streamed request bodies through admission: a build context (through a
// profile that allows builds, which admission withholds), docker cp in and
// out, and an image import whose progress comes back while the archive is
// still being sent.
func TestDockerCLIStreams(t *testing.T) {
	tg := startGuard(t, withProfiles(t, "profiles:\n  builder:\n    include: [admission]\n    allow: [POST /build]\n"))
	img := dockertest.Build(t)
	sock := tg.sockets[ProfileAdmission]
	builder := tg.socket(t, "builder")

	ctxDir := t.TempDir()
	payload := strings.Repeat("guard streams\n", 200_000) // ~2.8 MB: several reads and writes
	if err := os.WriteFile(filepath.Join(ctxDir, "payload.txt"), []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY payload.txt /payload.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "hyhome-test/built:" + dockertest.RunID
	label := dockertest.LabelKey + "=" + dockertest.RunID
	removeImage := func(ref string) {
		ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
		defer cancel()
		_, _ = dockertest.Client(t).ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true}) // and its build's untagged parents
	}
	t.Cleanup(func() { removeImage(tag) })
	// --no-cache: another test process building the same context at the same
	// time must not hand this build a cached layer it is removing.
	if _, stderr, err := dockerCLIEnv(t, builder, "", []string{"DOCKER_BUILDKIT=0"}, "build", "-q", "--no-cache", "--label", label, "-t", tag, ctxDir); err != nil {
		t.Fatalf("docker build through a profile that allows builds: %v\n%s", err, stderr)
	}
	if _, stderr, err := dockerCLIEnv(t, sock, "", []string{"DOCKER_BUILDKIT=0"}, "build", "-q", "--no-cache", "--label", label, "-t", tag, ctxDir); err == nil || !strings.Contains(stderr, "POST /build is not allowed in profile admission") {
		t.Fatalf("docker build through admission: %v\n%s", err, stderr)
	}
	if _, stderr, err := dockerCLIEnv(t, builder, "", []string{"DOCKER_BUILDKIT=0"}, "build", "-q", "--network", "host", "--label", label, "-t", tag, ctxDir); err == nil || !strings.Contains(stderr, "host-namespaces") {
		t.Fatalf("docker build --network host: %v\n%s", err, stderr)
	}

	// docker cp needs a writable root: read-only-rootfs is only a warning.
	name := "hyhome-test-cp-" + dockertest.RunID
	t.Cleanup(func() { dockertest.RemoveContainer(dockertest.Client(t), name) })
	var flags []string
	for _, f := range compliantRunFlags() {
		if f != "--read-only" {
			flags = append(flags, f)
		}
	}
	if _, stderr, err := dockerCLI(t, sock, "", append(append([]string{"run", "-d", "--name", name}, flags...), img.NonRoot, "sleep")...); err != nil {
		t.Fatalf("docker run: %v\n%s", err, stderr)
	}
	if _, stderr, err := dockerCLI(t, sock, "", "cp", filepath.Join(ctxDir, "payload.txt"), name+":/payload.txt"); err != nil {
		t.Fatalf("docker cp in: %v\n%s", err, stderr)
	}
	out := t.TempDir()
	if _, stderr, err := dockerCLI(t, sock, "", "cp", name+":/payload.txt", out); err != nil {
		t.Fatalf("docker cp out: %v\n%s", err, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(out, "payload.txt")); err != nil || string(b) != payload {
		t.Fatalf("docker cp round trip: %d bytes, %v", len(b), err)
	}

	// docker import of a tar on stdin.
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	_ = tw.WriteHeader(&tar.Header{Name: "payload.txt", Mode: 0o644, Size: int64(len(payload))})
	_, _ = io.WriteString(tw, payload)
	tw.Close()
	itag := "hyhome-test/imported:" + dockertest.RunID
	t.Cleanup(func() { removeImage(itag) })
	if _, stderr, err := dockerCLI(t, sock, tarball.String(), "import", "--change", "LABEL "+label, "-", itag); err != nil {
		t.Fatalf("docker import through admission: %v\n%s", err, stderr)
	}
	if out, _, err := dockerCLI(t, sock, "", "image", "inspect", "--format", "{{.Size}}", itag); err != nil || strings.TrimSpace(out) == "0" {
		t.Fatalf("imported image: %q %v", out, err)
	}
}

// dockerCLIEnv is dockerCLI with extra environment variables.
func dockerCLIEnv(t *testing.T, socket, stdin string, env []string, args ...string) (string, string, error) {
	t.Helper()
	extraEnv = env
	defer func() { extraEnv = nil }()
	return dockerCLI(t, socket, stdin, args...)
}

var extraEnv []string
