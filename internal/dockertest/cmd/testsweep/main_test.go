package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// deadOwner is the owner ID of a process that ran and is gone, in session.
func deadOwner(t *testing.T, session string) string {
	t.Helper()
	cmd := exec.Command("sleep", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o, err := dockertest.OwnerOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	o.Session = session
	if o.Alive() {
		t.Fatalf("owner %s still alive after its process exited", o)
	}
	return o.String()
}

// TestSweepRemovesOnlyFinishedOwners creates objects of every kind that can
// exist off-Swarm, owned by a finished process of this session, a finished
// process of another session and this (live) process, and checks that
// `before` removes the finished ones only, and `after` also fails naming
// what this session left.
func TestSweepRemovesOnlyFinishedOwners(t *testing.T) {
	c := dockertest.Client(t)
	img := dockertest.Build(t)
	const session = "sweeptest"
	ours, other := deadOwner(t, session), deadOwner(t, "othersession")
	live, _ := dockertest.CurrentOwner()
	live.Session = "livesession"

	type made struct{ kind, id, owner string }
	var objs []made
	ctx := context.Background()
	for _, owner := range []string{ours, other, live.String()} {
		labels := map[string]string{dockertest.LabelKey: owner}
		id, _ := dockertest.Run(t, dockertest.Spec{Name: "sweep", Image: img.NonRoot, Labels: labels, NoStart: true})
		objs = append(objs, made{"container", id, owner})
		v, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "hyhome-test-sweep-" + owner, Labels: labels})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = c.VolumeRemove(context.Background(), v.Volume.Name, client.VolumeRemoveOptions{Force: true})
		})
		objs = append(objs, made{"volume", v.Volume.Name, owner})
		n, err := c.NetworkCreate(ctx, "hyhome-test-sweep-"+owner, client.NetworkCreateOptions{Labels: labels})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = c.NetworkRemove(context.Background(), n.ID, client.NetworkRemoveOptions{}) })
		objs = append(objs, made{"network", n.ID, owner})
		dir := filepath.Join(os.TempDir(), "hyhome-test-"+owner)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		objs = append(objs, made{"dir", dir, owner})
	}
	exists := func(m made) bool {
		var err error
		switch m.kind {
		case "container":
			_, err = c.ContainerInspect(ctx, m.id, client.ContainerInspectOptions{})
		case "volume":
			_, err = c.VolumeInspect(ctx, m.id, client.VolumeInspectOptions{})
		case "network":
			_, err = c.NetworkInspect(ctx, m.id, client.NetworkInspectOptions{})
		case "dir":
			_, err = os.Stat(m.id)
		}
		return err == nil
	}

	t.Setenv(dockertest.SessionEnv, session)
	var out, errb bytes.Buffer
	if code := run([]string{"after"}, &out, &errb); code != exitLeft {
		t.Fatalf("after: exit %d, want %d (this session left objects)\nstdout: %s\nstderr: %s", code, exitLeft, out.String(), errb.String())
	}
	for _, m := range objs {
		if want := m.owner == live.String(); exists(m) != want {
			t.Errorf("%s %s of %s: exists %v after the sweep, want %v", m.kind, m.id, m.owner, !want, want)
		}
		if m.owner == ours && !strings.Contains(errb.String(), m.owner) {
			t.Errorf("after: stderr does not name the session's leftover %s of %s:\n%s", m.kind, m.owner, errb.String())
		}
		if m.owner != ours && strings.Contains(errb.String(), m.owner) {
			t.Errorf("after: stderr blames the session for %s of %s:\n%s", m.kind, m.owner, errb.String())
		}
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"before"}, &out, &errb); code != exitOK {
		t.Fatalf("before: exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, m := range objs {
		if m.owner == live.String() && !exists(m) {
			t.Errorf("before removed %s %s of the live owner %s", m.kind, m.id, m.owner)
		}
	}
	if code := run([]string{"after"}, &out, &errb); code != exitOK {
		t.Fatalf("after, with nothing of the session left: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

func TestID(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"id", strconv.Itoa(os.Getpid())}, &out, &errb); code != exitOK {
		t.Fatalf("id: exit %d: %s", code, errb.String())
	}
	o, ok := dockertest.ParseRunID(strings.TrimSpace(out.String()))
	if !ok || o.PID != os.Getpid() || !o.Alive() {
		t.Fatalf("id printed %q: %+v %v", out.String(), o, ok)
	}
	for _, args := range [][]string{nil, {"id", "x"}, {"id", "0"}, {"nope"}, {"after"}} {
		t.Setenv(dockertest.SessionEnv, "")
		if code := run(args, &out, &errb); code != exitError {
			t.Errorf("%v: exit %d, want %d", args, code, exitError)
		}
	}
}
