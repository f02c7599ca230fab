//go:build unix

package dockertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// SwarmLockPath is the lock every test binary takes before it touches the
// node's Swarm state, so that packages tested in parallel (go test ./...)
// do not init or leave the Swarm under each other.
var SwarmLockPath = filepath.Join(os.TempDir(), "hyhome-test-swarm.lock")

// Swarm makes this node a single-node Swarm manager for the test and leaves
// the Swarm again when the test ends, pass or fail, removing the
// docker_gwbridge network that init created. A node that is already a
// manager is used as it is and left in its Swarm; on a worker, or when Swarm
// cannot be initialised, the test is skipped with the engine's exact error.
// The Swarm is held exclusively (a file lock) until the test ends.
func Swarm(t testing.TB, c *client.Client) {
	t.Helper()
	unlock, err := lockSwarm()
	if err != nil {
		t.Fatalf("locking %s: %v", SwarmLockPath, err)
	}
	t.Cleanup(unlock) // registered first: runs after the leave below

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatalf("reading engine info: %v", err)
	}
	switch st := info.Info.Swarm; {
	case st.LocalNodeState == swarm.LocalNodeStateActive && st.ControlAvailable:
		t.Logf("node %s is already a Swarm manager: using it and leaving it as found", st.NodeID)
		return
	case st.LocalNodeState == swarm.LocalNodeStateActive:
		t.Skipf("node is a Swarm worker: services can be listed only on a manager (not touching the Swarm it belongs to)")
	case st.LocalNodeState != swarm.LocalNodeStateInactive:
		t.Skipf("node Swarm state is %q: not touching it", st.LocalNodeState)
	}
	hadBridge := false
	if nets, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", "docker_gwbridge")}); err == nil {
		for _, n := range nets.Items {
			hadBridge = hadBridge || n.Name == "docker_gwbridge"
		}
	}
	if _, err := c.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
		t.Skipf("Swarm cannot be initialised on this machine: %v", err)
	}
	t.Logf("initialised a single-node Swarm on 127.0.0.1")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := c.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
			t.Errorf("leaving the test Swarm (run `docker swarm leave --force`): %v", err)
		}
		if !hadBridge {
			_, _ = c.NetworkRemove(ctx, "docker_gwbridge", client.NetworkRemoveOptions{})
		}
	})
}

// lockSwarm takes the cross-process Swarm lock, waiting for other test
// binaries to finish with the Swarm.
func lockSwarm() (func(), error) {
	f, err := os.OpenFile(SwarmLockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
