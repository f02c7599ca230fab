// Package dockertest gives tests the real Docker Engine of the machine they
// run on: a client, the project's FROM-scratch test images built from
// ./testprog, and containers that are removed when the test ends, pass or
// fail. Everything it creates carries the label LabelKey=<run ID>, and every
// object a test creates by other means must carry it too.
//
// The run ID names the owning test process (its PID and start time, see
// Owner), so that a sweep can tell a live test's objects from a dead one's:
// Main removes this process's objects when its tests end, and
// cmd/testsweep, run by `make test` before and after the tests, removes the
// objects of processes that are gone (killed, timed out) and fails the run
// when the run's own tests left any. Other engineers' tests share the engine
// at the same time; nothing here removes an object whose owner still runs.
//
// No image can be pulled on this project's machines, so nothing here asks for
// one; the images are built from the project's own static binary.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/testenv"
)

// LabelKey marks every object this package creates; its value is the run ID.
const LabelKey = "hy-home.test.run"

// RunID identifies this test process's objects: Owner.String() of this
// process.
var RunID = currentRunID()

// Deadlines for engine calls. They are not measurements: only a hang (an
// engine that stopped answering) trips them, on a loaded two-core machine
// where one call can wait tens of seconds behind other engineers' builds.
// Builds (go build, docker build) get no deadline of their own: the test
// binary's -timeout bounds them.
const (
	ConnectTimeout = 2 * time.Minute // first ping of the engine
	CallTimeout    = 5 * time.Minute // one create, start, remove or inspect
)

// Images are the test image references built for this process.
type Images struct {
	// Root has no USER: its default user is root, as most images' is.
	Root string
	// NonRoot has USER 65534:65534.
	NonRoot string
	// Binary is the static testprog binary on the host.
	Binary string
}

var (
	clientOnce sync.Once
	cli        *client.Client
	cliErr     error

	imagesOnce sync.Once
	images     Images
	imagesErr  error
)

// Client returns an engine client shared by the test process. Without a
// reachable engine the test is skipped, except under CI=true where that is a
// failure: CI must exercise the real engine.
func Client(t testing.TB) *client.Client {
	t.Helper()
	clientOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
		defer cancel()
		cli, _, cliErr = docker.Connect(ctx, "")
	})
	if cliErr != nil {
		testenv.Missing(t, "no Docker Engine reachable: %v", cliErr)
	}
	return cli
}

// Build returns the test images, building them once per process.
func Build(t testing.TB) Images {
	t.Helper()
	c := Client(t)
	imagesOnce.Do(func() { images, imagesErr = build(c) })
	if imagesErr != nil {
		t.Fatalf("building test images: %v", imagesErr)
	}
	return images
}

// tempPrefix starts the name of a test process's temporary directory; the
// run ID follows, so that a sweep can remove a dead process's.
const tempPrefix = "hyhome-test-"

var (
	tempOnce sync.Once
	tempDir  string
	tempErr  error
)

// TempDir is this process's temporary directory (os.TempDir()/hyhome-test-
// <RunID>), for what outlives one test, such as built binaries. Main
// removes it; cmd/testsweep removes a killed process's.
func TempDir() (string, error) {
	tempOnce.Do(func() {
		tempDir = filepath.Join(os.TempDir(), tempPrefix+RunID)
		tempErr = os.MkdirAll(tempDir, 0o755)
	})
	return tempDir, tempErr
}

// BuildBinary compiles a static linux binary of the main package at pkg
// (relative to the module root) into dir and returns its path. It has no
// deadline of its own: a cold build on a loaded machine takes minutes.
func BuildBinary(pkg, dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = testenv.ModuleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// ProcessBinary builds the main package at pkg once per process into
// TempDir and returns its path.
func ProcessBinary(t testing.TB, pkg, name string) string {
	t.Helper()
	binMu.Lock()
	b, ok := bins[pkg]
	if !ok {
		b = &builtBinary{}
		bins[pkg] = b
	}
	binMu.Unlock()
	b.once.Do(func() {
		dir, err := TempDir()
		if err != nil {
			b.err = err
			return
		}
		b.path, b.err = BuildBinary(pkg, dir, name)
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", pkg, b.err)
	}
	return b.path
}

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

var (
	binMu sync.Mutex
	bins  = map[string]*builtBinary{}
)

func build(c *client.Client) (Images, error) {
	dir, err := TempDir()
	if err != nil {
		return Images{}, err
	}
	bin, err := BuildBinary("./internal/dockertest/testprog", dir, "testprog")
	if err != nil {
		return Images{}, err
	}
	img := Images{
		Root:    "hyhome-test/testprog:root-" + RunID,
		NonRoot: "hyhome-test/testprog:nonroot-" + RunID,
		Binary:  bin,
	}
	// No deadline of its own: the engine builds while other engineers' tests
	// and builds load the machine; the test binary's -timeout bounds it.
	ctx := context.Background()
	if err := BuildScratchImage(ctx, c, img.Root, bin, "/testprog", "", nil); err != nil {
		return Images{}, err
	}
	if err := BuildScratchImage(ctx, c, img.NonRoot, bin, "/testprog", "65534:65534", nil); err != nil {
		return Images{}, err
	}
	ProcessScoped("image", img.Root)
	ProcessScoped("image", img.NonRoot)
	return img, nil
}

// BuildScratchImage builds tag FROM scratch with the file bin at dest as its
// entrypoint, the given USER (empty: none) and extra Dockerfile lines. It uses
// the classic builder through the API, which every engine version offers.
func BuildScratchImage(ctx context.Context, c *client.Client, tag, bin, dest, user string, extra []string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var df strings.Builder
	fmt.Fprintf(&df, "FROM scratch\nCOPY bin %s\n", dest)
	if user != "" {
		fmt.Fprintf(&df, "USER %s\n", user)
	}
	for _, l := range extra {
		df.WriteString(l + "\n")
	}
	fmt.Fprintf(&df, "ENTRYPOINT [%q]\n", dest)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{{"Dockerfile", 0o644, []byte(df.String())}, {"bin", 0o755, data}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{tag},
		// Test processes on the machine build identical contexts at the
		// same time and remove their images when they end: a cache hit
		// could hand this build a layer another process is removing.
		NoCache:     true,
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{LabelKey: RunID},
	})
	if err != nil {
		return fmt.Errorf("building image %s: %w", tag, err)
	}
	defer res.Body.Close()
	// The classic builder reports failures inside the JSON message stream.
	dec := json.NewDecoder(res.Body)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("building image %s: reading build output: %w", tag, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("building image %s: %s", tag, msg.Error)
		}
	}
}

// Spec describes a test container.
type Spec struct {
	Name        string // a unique suffix is added
	Image       string
	Cmd         []string
	User        string
	Labels      map[string]string
	Env         []string
	Host        container.HostConfig
	Networking  *network.NetworkingConfig
	Healthcheck *container.HealthConfig
	NoStart     bool
	// Tty allocates a pseudo-terminal: the engine then logs one unframed
	// stream with \r\n line ends instead of multiplexed stdout/stderr.
	Tty bool
}

// Run creates (and unless NoStart, starts) a container and removes it, with
// its anonymous volumes, when the test ends. It returns the container ID and
// the name it was given.
func Run(t testing.TB, s Spec) (id, name string) {
	t.Helper()
	c := Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	id, name, err := start(ctx, c, s)
	if id != "" {
		t.Cleanup(func() { RemoveContainer(c, id) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return id, name
}

// Started is a container RunMany created.
type Started struct{ ID, Name string }

// RunMany is Run for many containers at once, eight at a time: the engine
// on fuse-overlayfs takes seconds per start, and one after another would
// dominate a test's time. The result is in the order of specs.
func RunMany(t testing.TB, specs []Spec) []Started {
	t.Helper()
	c := Client(t)
	out := make([]Started, len(specs))
	var g errgroup.Group
	g.SetLimit(8)
	for i, s := range specs {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
			defer cancel()
			var err error
			out[i].ID, out[i].Name, err = start(ctx, c, s)
			return err
		})
	}
	err := g.Wait()
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, s := range out {
			if s.ID != "" {
				wg.Go(func() { RemoveContainer(c, s.ID) })
			}
		}
		wg.Wait()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// start creates (and unless NoStart, starts) the container of s, named
// with a unique suffix and labelled with the run ID that Sweep looks for.
// id is set once the container exists, also when starting it failed.
func start(ctx context.Context, c *client.Client, s Spec) (id, name string, err error) {
	labels := map[string]string{LabelKey: RunID}
	for k, v := range s.Labels {
		labels[k] = v
	}
	name = "hyhome-test-" + s.Name + "-" + randomID()
	hc := s.Host
	res, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:       s.Image,
			Cmd:         s.Cmd,
			User:        s.User,
			Labels:      labels,
			Env:         s.Env,
			Healthcheck: s.Healthcheck,
			Tty:         s.Tty,
		},
		HostConfig:       &hc,
		NetworkingConfig: s.Networking,
	})
	if err != nil {
		return "", name, fmt.Errorf("creating container %s: %w", name, err)
	}
	if !s.NoStart {
		if _, err := c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			return res.ID, name, fmt.Errorf("starting container %s: %w", name, err)
		}
	}
	return res.ID, name, nil
}

// RemoveContainer force-removes a container and its anonymous volumes,
// ignoring "not found".
func RemoveContainer(c *client.Client, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	_, _ = c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
}

// Sweep removes every object of every kind labelled with this process's
// run ID, and this process's TempDir. It returns what it could not remove.
func Sweep() error {
	var errs []error
	if cli != nil {
		ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
		defer cancel()
		objs, err := ListObjects(ctx, cli, RunID)
		if err != nil {
			errs = append(errs, err)
		}
		if err := RemoveObjects(ctx, cli, objs); err != nil {
			errs = append(errs, err)
		}
		if left, err := ListObjects(ctx, cli, RunID); err == nil && len(left) > 0 {
			for _, o := range left {
				errs = append(errs, fmt.Errorf("%s is still there after the sweep", o))
			}
		}
	}
	if tempDir != "" {
		if err := os.RemoveAll(tempDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var (
	processMu     sync.Mutex
	processScoped = map[string]bool{} // kind + " " + ID or name
)

// ProcessScoped marks an object that lives for the whole test process on
// purpose, such as an image that several tests share: Main removes it with
// the rest, without counting it as left behind. ref is the object's ID or
// name (an image's tag).
func ProcessScoped(kind, ref string) {
	processMu.Lock()
	defer processMu.Unlock()
	processScoped[kind+" "+ref] = true
}

// leftByTests lists what this process's tests left on the engine: every
// object labelled with its run ID, except those marked ProcessScoped and
// untagged images (a build's intermediate layers, which go with the tagged
// image they lead to).
func leftByTests() ([]Object, error) {
	if cli == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	objs, err := ListObjects(ctx, cli, RunID)
	processMu.Lock()
	defer processMu.Unlock()
	var left []Object
	for _, o := range objs {
		if processScoped[o.Kind+" "+o.ID] || processScoped[o.Kind+" "+o.Name] || (o.Kind == "image" && o.Name == o.ID) {
			continue
		}
		left = append(left, o)
	}
	return left, err
}

// Main is a TestMain body: run the tests, then sweep this process's
// objects. Anything a test left behind (not ProcessScoped) fails the
// package, named, and is removed all the same; so does a sweep that cannot
// remove something.
func Main(m *testing.M) int {
	code := m.Run()
	left, err := leftByTests()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: listing what run %s's tests left: %v\n", RunID, err)
		code = max(code, 1)
	}
	for _, o := range left {
		fmt.Fprintf(os.Stderr, "dockertest: a test left %s on the engine (no cleanup removed it)\n", o)
		code = max(code, 1)
	}
	if err := Sweep(); err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: objects of run %s left on the engine:\n%v\n", RunID, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
