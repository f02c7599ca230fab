// Command auditbench measures `hyhome audit` on a real engine: it starts N
// containers from the project's FROM-scratch test program (setup, not
// measured), audits them repeatedly in-process through a client that counts
// HTTP round trips, runs the hyhome binary against them for the whole-process
// wall time, and removes everything it created, also when interrupted.
//
// Run it through bench/audit.sh.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/audit"
	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
)

// runLabel marks everything the bench creates.
const runLabel = "hy-home.bench.audit"

func main() { os.Exit(run()) }

func run() int {
	n := flag.Int("n", 200, "containers to start")
	reps := flag.Int("reps", 7, "measured audits per concurrency setting")
	conc := flag.String("concurrency", "4,8,16,32", "inspect concurrency settings to compare")
	bin := flag.String("hyhome", "", "hyhome binary to time end to end (optional)")
	keep := flag.Bool("keep", false, "leave the containers running (for manual runs)")
	flag.Parse()

	id := make([]byte, 6)
	_, _ = rand.Read(id)
	runID := hex.EncodeToString(id)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ep, err := docker.Resolve("")
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditbench:", err)
		return 2
	}
	setup, _, err := docker.Connect(ctx, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditbench:", err)
		return 2
	}
	defer setup.Close()

	imgs, cleanupImages, err := buildImages(ctx, setup, runID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditbench: building images:", err)
		return 2
	}
	defer cleanupImages()

	var ids []string
	var idsMu sync.Mutex
	defer func() {
		if *keep {
			fmt.Printf("kept %d containers labelled %s=%s\n", len(ids), runLabel, runID)
			return
		}
		t0 := time.Now()
		removeAll(setup, ids)
		fmt.Printf("cleanup: removed %d containers in %s\n", len(ids), time.Since(t0).Round(time.Second))
	}()

	fmt.Printf("engine %s; starting %d containers (setup, not measured)...\n", ep.Host, *n)
	t0 := time.Now()
	if err := startContainers(ctx, setup, *n, imgs, runID, func(id string) {
		idsMu.Lock()
		ids = append(ids, id)
		idsMu.Unlock()
	}); err != nil {
		fmt.Fprintln(os.Stderr, "auditbench: starting containers:", err)
		return 2
	}
	fmt.Printf("setup: %d containers running after %s\n\n", len(ids), time.Since(t0).Round(time.Second))

	filter := "label=" + runLabel + "=" + runID
	var settings []int
	for _, s := range strings.Split(*conc, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "auditbench: bad -concurrency %q\n", s)
			return 2
		}
		settings = append(settings, v)
	}

	fmt.Printf("in-process audit (list, inspect, image inspect, rules) of %d containers, %d runs each:\n", *n, *reps)
	fmt.Printf("%-12s %10s %10s %10s %12s %14s %12s\n", "concurrency", "min", "median", "max", "round trips", "per container", "images")
	for _, c := range settings {
		r, err := measure(ctx, ep.Host, filter, c, *reps)
		if err != nil {
			fmt.Fprintln(os.Stderr, "auditbench:", err)
			return 2
		}
		fmt.Printf("%-12d %10s %10s %10s %12d %14.3f %12d\n", c, ms(r.min), ms(r.median), ms(r.max), r.roundTrips, float64(r.roundTrips)/float64(r.containers), r.images)
		if r.containers != *n {
			fmt.Fprintf(os.Stderr, "auditbench: audited %d containers, want %d\n", r.containers, *n)
			return 1
		}
		if budget := 2*r.containers + r.images; r.roundTrips > budget {
			fmt.Fprintf(os.Stderr, "auditbench: %d round trips exceed the budget of %d (2 per container + 1 per distinct image)\n", r.roundTrips, budget)
			return 1
		}
	}

	if *bin != "" {
		fmt.Printf("\nwhole process: %s audit --filter %s (connect, negotiate, audit, JSON report), %d runs:\n", filepath.Base(*bin), filter, *reps)
		var walls []time.Duration
		for range *reps {
			cmd := exec.CommandContext(ctx, *bin, "audit", "--filter", filter, "--format", "json", "-o", os.DevNull)
			t := time.Now()
			err := cmd.Run()
			walls = append(walls, time.Since(t))
			if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
				fmt.Fprintln(os.Stderr, "auditbench: hyhome audit:", err)
				return 2
			}
		}
		slices.Sort(walls)
		fmt.Printf("%-12s %10s %10s %10s\n", "", "min", "median", "max")
		fmt.Printf("%-12s %10s %10s %10s\n", "hyhome", ms(walls[0]), ms(walls[len(walls)/2]), ms(walls[len(walls)-1]))
	}
	return 0
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000) }

type result struct {
	min, median, max time.Duration
	roundTrips       int
	containers       int
	images           int
}

// measure audits reps times with a fresh counting client per run, so that
// every run pays for its own connections, as a CLI invocation does.
func measure(ctx context.Context, host, filter string, concurrency, reps int) (result, error) {
	var r result
	var walls []time.Duration
	for i := 0; i <= reps; i++ {
		var n atomic.Int64
		c, err := client.New(
			client.WithHost(host),
			client.WithHTTPRequestHook(func(*http.Request) error { n.Add(1); return nil }),
		)
		if err != nil {
			return r, err
		}
		src, err := source.New(source.Config{Engine: c, Host: host, Concurrency: concurrency})
		if err != nil {
			return r, err
		}
		t := time.Now()
		// The version negotiation's ping is a round trip of every run.
		if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			return r, err
		}
		res, err := audit.Run(ctx, src, source.Selection{Filters: []string{filter}}, &policy.Env{})
		wall := time.Since(t)
		c.Close()
		if err != nil {
			return r, err
		}
		if i == 0 {
			continue // warm-up: the engine's caches, the page cache
		}
		walls = append(walls, wall)
		r.roundTrips = int(n.Load())
		r.containers = len(res.Snapshot.Containers)
		r.images = res.Snapshot.Stats.Images
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	r.min, r.median, r.max = walls[0], walls[len(walls)/2], walls[len(walls)-1]
	return r, nil
}

type images struct{ root, nonRoot string }

func buildImages(ctx context.Context, c *client.Client, runID string) (images, func(), error) {
	dir, err := os.MkdirTemp("", "auditbench-")
	if err != nil {
		return images{}, func() {}, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	bin, err := dockertest.BuildBinary("./internal/dockertest/testprog", dir, "testprog")
	if err != nil {
		return images{}, cleanup, err
	}
	img := images{root: "hyhome-bench/testprog:root-" + runID, nonRoot: "hyhome-bench/testprog:nonroot-" + runID}
	if err := dockertest.BuildScratchImage(ctx, c, img.root, bin, "/testprog", "", nil); err != nil {
		return img, cleanup, err
	}
	if err := dockertest.BuildScratchImage(ctx, c, img.nonRoot, bin, "/testprog", "65534:65534", nil); err != nil {
		return img, cleanup, err
	}
	return img, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, ref := range []string{img.root, img.nonRoot} {
			_, _ = c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
		cleanup()
	}, nil
}

// startContainers creates and starts n containers, 16 at a time. Half run the
// root image with no user and half the non-root image with --user 0, so that
// every container needs its image (the worst case for round trips) and two
// distinct images are in play.
func startContainers(ctx context.Context, c *client.Client, n int, img images, runID string, created func(string)) error {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	pids := int64(32)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cfg := &container.Config{
				Image:  img.root,
				Cmd:    []string{"sleep"},
				Labels: map[string]string{runLabel: runID, "hy-home.tier": "app", "hy-home.metrics.port": "9100"},
			}
			if i%2 == 1 {
				cfg.Image, cfg.User = img.nonRoot, "0"
			}
			res, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
				Name:   fmt.Sprintf("hyhome-bench-%s-%03d", runID, i),
				Config: cfg,
				HostConfig: &container.HostConfig{
					SecurityOpt: []string{"no-new-privileges:true"},
					CapDrop:     []string{"ALL"},
					Resources:   container.Resources{Memory: 16 << 20, PidsLimit: &pids},
				},
			})
			if err == nil {
				created(res.ID)
				_, err = c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

func removeAll(c *client.Client, ids []string) {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			dockertest.RemoveContainer(c, id)
		})
	}
	wg.Wait()
}
