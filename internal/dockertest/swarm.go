//go:build unix

package dockertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/testenv"
)

// SwarmLockPath is the lock on the node's Swarm membership, shared by every
// test binary and script on the machine (shell scripts use flock(1) on the
// same file):
//
//   - held shared by whoever needs the membership to stay as it is while it
//     works: a test whose verdict depends on whether the node is a manager
//     (SwarmState, NoSwarm), or a test that uses a Swarm it found (Swarm);
//   - held exclusively by whoever changes it (Swarm's init and leave, a
//     script that inits or leaves).
//
// So a test never sees the membership change under it, and tests that only
// read it run at the same time. A script that sets up a Swarm for a whole
// run takes the lock exclusively for `docker swarm init`, then holds it
// shared while the tests run (`flock -s`), then exclusively again to leave:
// the tests share it, and nobody can leave the Swarm under them.
var SwarmLockPath = filepath.Join(os.TempDir(), "hyhome-test-swarm.lock")

// SwarmInfo is the node's Swarm membership as the engine reports it.
type SwarmInfo = swarm.Info

// SwarmState holds the Swarm lock shared until the test ends and returns the
// node's membership, which therefore cannot change before the test ends. A
// test whose verdict depends on the membership computes its expectation from
// this value.
func SwarmState(t testing.TB, c *client.Client) SwarmInfo {
	t.Helper()
	unlock, err := lockSwarm(syscall.LOCK_SH)
	if err != nil {
		t.Fatalf("locking %s: %v", SwarmLockPath, err)
	}
	t.Cleanup(unlock)
	st, err := swarmInfo(c)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// NoSwarm holds the Swarm lock shared until the test ends and requires the
// node to be outside any Swarm. On a Swarm member (someone else's Swarm: a
// test never leaves a Swarm it did not make) the test is skipped, or failed
// under CI, whose machines are not Swarm members.
//
// Shared rather than exclusive: tests that need the node outside a Swarm do
// not change it, so they may run together; what they exclude is Swarm's
// init, which takes the lock exclusively.
func NoSwarm(t testing.TB, c *client.Client) {
	t.Helper()
	if problem := notOutsideSwarm(SwarmState(t, c)); problem != "" {
		testenv.Missing(t, "%s", problem)
	}
}

// notOutsideSwarm says why a node with this membership is not outside any
// Swarm, or "" when it is.
func notOutsideSwarm(st SwarmInfo) string {
	if st.LocalNodeState == swarm.LocalNodeStateInactive {
		return ""
	}
	return fmt.Sprintf("this test needs the node outside any Swarm; it is %q (node %s): run it where no Swarm is active", st.LocalNodeState, st.NodeID)
}

// Swarm makes this node a single-node Swarm manager for the test and leaves
// the Swarm again when the test ends, pass or fail, removing the
// docker_gwbridge network that init created. A node that is already a
// manager is used as it is and left in its Swarm, holding the lock shared.
// On a worker, or when Swarm cannot be initialised, the test is skipped with
// the engine's exact error (failed under CI).
func Swarm(t testing.TB, c *client.Client) {
	t.Helper()
	unlockShared, err := lockSwarm(syscall.LOCK_SH)
	if err != nil {
		t.Fatalf("locking %s: %v", SwarmLockPath, err)
	}
	if st, err := swarmInfo(c); err != nil {
		unlockShared()
		t.Fatal(err)
	} else if st.LocalNodeState == swarm.LocalNodeStateActive && st.ControlAvailable {
		t.Cleanup(unlockShared)
		t.Logf("node %s is already a Swarm manager: using it and leaving it as found", st.NodeID)
		return
	}
	// Init needs the lock exclusively. flock cannot upgrade atomically:
	// release the shared lock, wait for the exclusive one, and read the
	// membership again, since another process may have changed it between.
	// (A test must not call Swarm while it holds SwarmState: its own shared
	// lock would block the exclusive one.)
	unlockShared()
	unlock, err := lockSwarm(syscall.LOCK_EX)
	if err != nil {
		t.Fatalf("locking %s exclusively: %v", SwarmLockPath, err)
	}
	t.Cleanup(unlock) // registered first: runs after the leave below
	st, err := swarmInfo(c)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case st.LocalNodeState == swarm.LocalNodeStateActive && st.ControlAvailable:
		t.Logf("node %s became a Swarm manager while this test waited: using it and leaving it as found", st.NodeID)
		return
	case st.LocalNodeState == swarm.LocalNodeStateActive:
		testenv.Missing(t, "node is a Swarm worker: services can be listed only on a manager (not touching the Swarm it belongs to)")
	case st.LocalNodeState != swarm.LocalNodeStateInactive:
		testenv.Missing(t, "node Swarm state is %q: not touching it", st.LocalNodeState)
	}
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	hadBridge := false
	if nets, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", "docker_gwbridge")}); err == nil {
		for _, n := range nets.Items {
			hadBridge = hadBridge || n.Name == "docker_gwbridge"
		}
	}
	if _, err := c.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
		testenv.Missing(t, "Swarm cannot be initialised on this machine: %v", err)
	}
	t.Logf("initialised a single-node Swarm on 127.0.0.1")
	t.Cleanup(func() {
		// The engine sets up the ingress sandbox asynchronously after
		// init; leaving before it exists leaves a stale ingress network
		// (and docker_gwbridge in use) until dockerd restarts, as the
		// stack's e2e found. Wait for it (only a hang bound), leave, then
		// wait for ingress to go and remove the bridge init created.
		ctx := context.Background()
		waitFor(ctx, func() bool {
			ni, err := c.NetworkInspect(ctx, "docker_gwbridge", client.NetworkInspectOptions{})
			if err != nil {
				return true // no bridge: nothing to wait for
			}
			for _, ep := range ni.Network.Containers {
				if strings.HasSuffix(ep.Name, "ingress-sbox") { // "gateway_ingress-sbox"
					return true
				}
			}
			return false
		})
		lctx, lcancel := context.WithTimeout(ctx, CallTimeout)
		defer lcancel()
		if _, err := c.SwarmLeave(lctx, client.SwarmLeaveOptions{Force: true}); err != nil {
			t.Errorf("leaving the test Swarm (run `flock %s docker swarm leave --force`): %v", SwarmLockPath, err)
		}
		waitFor(ctx, func() bool {
			_, err := c.NetworkInspect(ctx, "ingress", client.NetworkInspectOptions{})
			return err != nil
		})
		if !hadBridge {
			var err error
			if !waitFor(ctx, func() bool {
				_, err = c.NetworkRemove(ctx, "docker_gwbridge", client.NetworkRemoveOptions{})
				return err == nil || cerrdefs.IsNotFound(err)
			}) {
				t.Errorf("removing docker_gwbridge, which the test Swarm's init created: %v", err)
			}
		}
	})
}

// waitFor polls ok every half second until it holds or testenv.Hang has
// passed (a hang bound, never a measure of speed); it reports whether ok
// held.
func waitFor(ctx context.Context, ok func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, testenv.Hang)
	defer cancel()
	for {
		if ok() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func swarmInfo(c *client.Client) (SwarmInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		return SwarmInfo{}, fmt.Errorf("reading engine info: %w", err)
	}
	return info.Info.Swarm, nil
}

// lockSwarm takes the cross-process Swarm lock (syscall.LOCK_SH or LOCK_EX),
// waiting for holders of the other kind.
func lockSwarm(how int) (func(), error) {
	f, err := os.OpenFile(SwarmLockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := flock(f, how); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("flock: %w", err)
		}
		return nil
	}
}
