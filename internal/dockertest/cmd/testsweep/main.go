// Command testsweep keeps the shared engine free of test leftovers. `make
// test` runs it before and after the tests:
//
//	testsweep before   remove what finished test processes left
//	testsweep after    the same, then fail when the tests of this run
//	                   ($HYHOME_TEST_SESSION) left anything
//	testsweep id [PID] print the run ID (dockertest.RunID) of process PID
//	                   (default: the parent, e.g. a shell script), for
//	                   labelling objects a script creates
//
// Every kind is swept: containers, services, secrets, configs, networks,
// volumes, images (by dockertest.LabelKey), plugins (by name), and the test
// processes' temporary directories. Objects are removed only when the
// process that owns them is gone: other engineers' tests run on the same
// engine at the same time, and their objects are left alone. Objects
// labelled in another form (older test code) cannot be attributed and are
// only counted. The node's Swarm membership is reported, never changed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/testenv"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const (
	exitOK    = 0
	exitLeft  = 1 // this run's tests left objects
	exitError = 2
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testsweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: testsweep before|after|id [PID]") }
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fs.Usage()
		return exitError
	}
	switch cmd := fs.Arg(0); cmd {
	case "id":
		pid := os.Getppid()
		if fs.NArg() > 1 {
			n, err := strconv.Atoi(fs.Arg(1))
			if err != nil || n <= 0 {
				fmt.Fprintf(stderr, "testsweep id: %q is not a process ID\n", fs.Arg(1))
				return exitError
			}
			pid = n
		}
		o, err := dockertest.OwnerOf(pid)
		if err != nil {
			fmt.Fprintf(stderr, "testsweep id: %v\n", err)
			return exitError
		}
		fmt.Fprintln(stdout, o)
		return exitOK
	case "before", "after":
		session := ""
		if cmd == "after" {
			session = os.Getenv(dockertest.SessionEnv)
			if session == "" {
				fmt.Fprintf(stderr, "testsweep after: %s is not set; nothing to attribute leftovers to\n", dockertest.SessionEnv)
				return exitError
			}
		}
		return sweep(cmd, session, stdout, stderr)
	default:
		fs.Usage()
		return exitError
	}
}

// sweep removes the objects and temporary directories of finished test
// processes; with a session, it fails when any belonged to that session.
func sweep(phase, session string, stdout, stderr io.Writer) int {
	// Generous: only an engine that stopped answering trips it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, _, err := docker.Connect(ctx, "")
	if err != nil {
		if testenv.InCI() {
			fmt.Fprintf(stderr, "testsweep %s: %v\n", phase, err)
			return exitError
		}
		fmt.Fprintf(stderr, "testsweep %s: no engine, nothing swept: %v\n", phase, err)
		return exitOK
	}
	defer c.Close()

	objs, err := dockertest.ListObjects(ctx, c, "")
	if err != nil {
		fmt.Fprintf(stderr, "testsweep %s: %v\n", phase, err)
		return exitError
	}
	var dead, ours []dockertest.Object
	live, foreign := 0, 0
	for _, o := range objs {
		owner, ok := dockertest.ParseRunID(o.RunID)
		switch {
		case !ok:
			foreign++
		case session != "" && owner.Session == session:
			ours = append(ours, o) // the run is over: every owner of it should be gone
			if !owner.Alive() {
				dead = append(dead, o)
			}
		case owner.Alive():
			live++
		default:
			dead = append(dead, o)
		}
	}
	var dirs []string
	for id, dir := range dockertest.TempDirs() {
		owner, _ := dockertest.ParseRunID(id)
		if session != "" && owner.Session == session {
			ours = append(ours, dockertest.Object{Kind: "temporary directory", Name: dir, RunID: id})
		}
		if !owner.Alive() {
			dirs = append(dirs, dir)
		}
	}
	sort.Strings(dirs)

	code := exitOK
	if err := dockertest.RemoveObjects(ctx, c, dead); err != nil {
		fmt.Fprintf(stderr, "testsweep %s: %v\n", phase, err)
		code = exitError
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			fmt.Fprintf(stderr, "testsweep %s: %v\n", phase, err)
			code = exitError
		}
	}
	fmt.Fprintf(stdout, "testsweep %s: removed %d objects and %d temporary directories of finished test processes; left %d of running tests and %d not attributable to a process\n",
		phase, len(dead), len(dirs), live, foreign)
	if st, err := c.Info(ctx, client.InfoOptions{}); err == nil {
		fmt.Fprintf(stdout, "testsweep %s: node Swarm membership %q (manager: %v), left as found\n", phase, st.Info.Swarm.LocalNodeState, st.Info.Swarm.ControlAvailable)
	}
	if len(ours) > 0 {
		fmt.Fprintf(stderr, "testsweep %s: the tests of session %s left %d objects (removed now where their process is gone):\n", phase, session, len(ours))
		for _, o := range ours {
			fmt.Fprintf(stderr, "  %s\n", o)
		}
		return exitLeft
	}
	return code
}
