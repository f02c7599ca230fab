// Package dockertest gives tests the real Docker Engine of the machine they
// run on: a client, the project's FROM-scratch test images built from
// ./testprog, and containers that are removed when the test ends, pass or
// fail. Everything it creates carries the label LabelKey=<run ID> so that a
// crashed run's leftovers can be found and removed (see Sweep).
//
// No image can be pulled on this project's machines, so nothing here asks for
// one; the images are built from the project's own static binary.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/docker"
)

// LabelKey marks every object this package creates; its value is the run ID.
const LabelKey = "hy-home.test.run"

// RunID identifies this test process's objects.
var RunID = randomID()

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

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
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cli, _, cliErr = docker.Connect(ctx, "")
	})
	if cliErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a Docker Engine is required under CI: %v", cliErr)
		}
		t.Skipf("no Docker Engine reachable: %v", cliErr)
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

// moduleRoot finds the directory holding go.mod, from this source file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildBinary compiles a static linux binary of the main package at pkg
// (relative to the module root) into dir and returns its path.
func BuildBinary(pkg, dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = moduleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

func build(c *client.Client) (Images, error) {
	dir, err := os.MkdirTemp("", "hyhome-testprog-")
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := BuildScratchImage(ctx, c, img.Root, bin, "/testprog", "", nil); err != nil {
		return Images{}, err
	}
	if err := BuildScratchImage(ctx, c, img.NonRoot, bin, "/testprog", "65534:65534", nil); err != nil {
		return Images{}, err
	}
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
		Tags:        []string{tag},
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
	labels := map[string]string{LabelKey: RunID}
	for k, v := range s.Labels {
		labels[k] = v
	}
	name = "hyhome-test-" + s.Name + "-" + randomID()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
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
		HostConfig:       &s.Host,
		NetworkingConfig: s.Networking,
	})
	if err != nil {
		t.Fatalf("creating container %s: %v", name, err)
	}
	t.Cleanup(func() { RemoveContainer(c, res.ID) })
	if !s.NoStart {
		if _, err := c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatalf("starting container %s: %v", name, err)
		}
	}
	return res.ID, name
}

// RemoveContainer force-removes a container and its anonymous volumes,
// ignoring "not found".
func RemoveContainer(c *client.Client, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
}

// Sweep removes every container and image labelled with this run's ID, and
// with -all any run's. Call it from TestMain after m.Run so that nothing is
// left behind when a test failed half-way.
func Sweep(all bool) {
	if cli == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := client.Filters{}
	if all {
		f = f.Add("label", LabelKey)
	} else {
		f = f.Add("label", LabelKey+"="+RunID)
	}
	if res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, ct := range res.Items {
			RemoveContainer(cli, ct.ID)
		}
	}
	if res, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range res.Items {
			_, _ = cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
	if res, err := cli.ImageList(ctx, client.ImageListOptions{Filters: f}); err == nil {
		for _, im := range res.Items {
			_, _ = cli.ImageRemove(ctx, im.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	}
	if images.Binary != "" {
		os.RemoveAll(filepath.Dir(images.Binary))
	}
}

// Main is a TestMain body: run the tests, then sweep this run's objects.
func Main(m *testing.M) int {
	code := m.Run()
	Sweep(false)
	return code
}
