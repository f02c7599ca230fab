package dockertest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hy-home/hyhome/internal/testenv"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestImagesRunAndCleanUp(t *testing.T) {
	img := Build(t)
	c := Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()

	for _, tc := range []struct {
		image, wantUser string
	}{{img.Root, ""}, {img.NonRoot, "65534:65534"}} {
		ins, err := c.ImageInspect(ctx, tc.image)
		if err != nil {
			t.Fatalf("inspecting %s: %v", tc.image, err)
		}
		if ins.Config.User != tc.wantUser {
			t.Errorf("%s: default user %q, want %q", tc.image, ins.Config.User, tc.wantUser)
		}
	}

	id, _ := Run(t, Spec{Name: "exit", Image: img.NonRoot, Cmd: []string{"log", "-lines", "3", "-exit", "7"}})
	wait := c.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-wait.Result:
		if r.StatusCode != 7 {
			t.Fatalf("exit status %d, want 7", r.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatalf("waiting: %v", err)
	}
}

// tryLock attempts the Swarm lock without waiting.
func tryLock(t *testing.T, how int) bool {
	t.Helper()
	f, err := os.OpenFile(SwarmLockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return true
	}
	if err != syscall.EWOULDBLOCK {
		t.Fatalf("flock: %v", err)
	}
	return false
}

// TestSwarmStateHoldsTheLockShared: while a test holds the membership it
// read, nobody can take the lock to change it (init or leave take it
// exclusively), and other readers still can; when the test ends the lock
// is released.
func TestSwarmStateHoldsTheLockShared(t *testing.T) {
	c := Client(t)
	var st SwarmInfo
	t.Run("holder", func(t *testing.T) {
		st = SwarmState(t, c)
		if held := locksHeldBy(t, os.Getpid()); held != 1 {
			t.Errorf("this process holds %d locks on %s, want 1", held, SwarmLockPath)
		}
		if tryLock(t, syscall.LOCK_EX) {
			t.Error("the Swarm lock could be taken exclusively while SwarmState holds it")
		}
		if !tryLock(t, syscall.LOCK_SH) {
			t.Error("another reader could not share the Swarm lock")
		}
	})
	t.Logf("node Swarm membership: %q", st.LocalNodeState)
	// Released when the holder ended: this process holds no lock on the
	// file any more. (Taking it exclusively here would wait for every other
	// holder on the machine, such as a script that holds it shared for a
	// whole run with a Swarm of its own.)
	if held := locksHeldBy(t, os.Getpid()); held != 0 {
		t.Errorf("%d lock(s) on %s still held by this process after the test that took it ended", held, SwarmLockPath)
	}
}

// locksHeldBy counts the flock locks pid holds on SwarmLockPath, from
// /proc/locks ("1: FLOCK ADVISORY READ 1234 08:01:5678 0 EOF").
func locksHeldBy(t *testing.T, pid int) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(SwarmLockPath, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" || f[4] != strconv.Itoa(pid) {
			continue
		}
		dev := strings.Split(f[5], ":")
		if len(dev) == 3 && dev[2] == strconv.FormatUint(st.Ino, 10) {
			n++
		}
	}
	return n
}

// TestNoSwarm: on a node outside any Swarm a test goes on, holding the lock
// shared; a member (active, pending, locked, in error) is refused. The
// verdict is checked on each membership state, so the test does not depend
// on the engine's; the live call runs where the node is outside a Swarm.
func TestNoSwarm(t *testing.T) {
	for _, st := range []swarm.LocalNodeState{swarm.LocalNodeStateActive, swarm.LocalNodeStatePending, swarm.LocalNodeStateLocked, swarm.LocalNodeStateError} {
		if p := notOutsideSwarm(SwarmInfo{LocalNodeState: st, NodeID: "n1"}); !strings.Contains(p, string(st)) {
			t.Errorf("membership %q: %q, want a refusal naming it", st, p)
		}
	}
	if p := notOutsideSwarm(SwarmInfo{LocalNodeState: swarm.LocalNodeStateInactive}); p != "" {
		t.Errorf("inactive node refused: %s", p)
	}
	c := Client(t)
	if st := SwarmState(t, c); st.LocalNodeState != swarm.LocalNodeStateInactive {
		testenv.Missing(t, "node is %q: NoSwarm's live call needs a node outside any Swarm (as CI's are)", st.LocalNodeState)
	}
	t.Run("live", func(t *testing.T) {
		NoSwarm(t, c)
		if locksHeldBy(t, os.Getpid()) != 2 { // this test's SwarmState and NoSwarm's
			t.Error("NoSwarm does not hold the Swarm lock")
		}
	})
}

// TestSweepSwarmKinds: services, secrets and configs labelled with a run ID
// are found and removed by the sweep, in an order that lets a secret go
// once its service is gone.
func TestSweepSwarmKinds(t *testing.T) {
	c := Client(t)
	img := Build(t)
	Swarm(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	owner, _ := CurrentOwner()
	owner.Session = "sweepswarm"
	id := owner.String()
	labels := map[string]string{LabelKey: id}
	sec, err := c.SecretCreate(ctx, client.SecretCreateOptions{Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "hyhome-test-s-" + id, Labels: labels}, Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "hyhome-test-c-" + id, Labels: labels}, Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	zero := uint64(0)
	svc, err := c.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "hyhome-test-svc-" + id, Labels: labels},
		Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
			Image:   img.NonRoot,
			Secrets: []*swarm.SecretReference{{SecretID: sec.ID, SecretName: "hyhome-test-s-" + id, File: &swarm.SecretReferenceFileTarget{Name: "s", UID: "0", GID: "0", Mode: 0o400}}},
			Configs: []*swarm.ConfigReference{{ConfigID: cfg.ID, ConfigName: "hyhome-test-c-" + id, File: &swarm.ConfigReferenceFileTarget{Name: "/c", UID: "0", GID: "0", Mode: 0o400}}},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := ListObjects(ctx, c, id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Kind+" "+o.ID)
	}
	want := []string{"service " + svc.ID, "secret " + sec.ID, "config " + cfg.ID}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if err := RemoveObjects(ctx, c, objs); err != nil {
		t.Fatal(err)
	}
	if left, err := ListObjects(ctx, c, id); err != nil || len(left) != 0 {
		t.Fatalf("left after the sweep: %v (%v)", left, err)
	}
}

// TestLeftByTests: what a test leaves labelled with the run ID is what Main
// reports and fails the package for, unless it was marked ProcessScoped.
func TestLeftByTests(t *testing.T) {
	c := Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	name := "hyhome-test-left-" + RunID
	if _, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: map[string]string{LabelKey: RunID}}); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = c.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: true}) }()
	reported := func() bool {
		left, err := leftByTests()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range left {
			if o.Kind == "volume" && o.Name == name {
				return true
			}
		}
		return false
	}
	if !reported() {
		t.Errorf("a labelled volume left by a test is not reported")
	}
	ProcessScoped("volume", name)
	defer func() {
		processMu.Lock()
		delete(processScoped, "volume "+name)
		processMu.Unlock()
	}()
	if reported() {
		t.Errorf("a volume marked ProcessScoped is reported as left behind")
	}
}
