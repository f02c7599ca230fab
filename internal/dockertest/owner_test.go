package dockertest

import (
	"os"
	"os/exec"
	"testing"
)

func TestParseRunID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Owner
		ok   bool
	}{
		{"123-456-local", Owner{123, 456, "local"}, true},
		{"1-0-a1b2c3d4e5f6", Owner{1, 0, "a1b2c3d4e5f6"}, true},
		{"3f2a9c01b2de", Owner{}, false}, // a random ID of older test code
		{"0-1-x", Owner{}, false},
		{"-1-1-x", Owner{}, false},
		{"01-1-x", Owner{}, false},
		{"1-+1-x", Owner{}, false},
		{"1-1-", Owner{}, false},
		{"1-1-UPPER", Owner{}, false},
		{"1-1-x-y", Owner{}, false},
		{"1-1-x.y", Owner{}, false},
	} {
		got, ok := ParseRunID(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseRunID(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok && got.String() != tc.in {
			t.Errorf("%q round-trips to %q", tc.in, got.String())
		}
	}
}

func TestParseStatStart(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 99 0 0 0 1 2 0 0 20 0 1 0 987654 12345 67 18446744073709551615\n"
	if got, err := parseStatStart(line); err != nil || got != 987654 {
		t.Fatalf("parseStatStart = %d, %v; want 987654", got, err)
	}
	for _, bad := range []string{"", "4242 comm S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 99 0 0 0 1 2 0 0 20 0 1 0 notanumber"} {
		if _, err := parseStatStart(bad); err == nil {
			t.Errorf("parseStatStart(%q) accepted", bad)
		}
	}
}

// TestOwnerAlive: this process is alive; a process that exited is not, and
// neither is a live PID with another start time (a reused PID).
func TestOwnerAlive(t *testing.T) {
	me, err := CurrentOwner()
	if err != nil {
		t.Fatal(err)
	}
	if !me.Alive() || RunID != me.String() {
		t.Fatalf("this process %s: alive %v, RunID %s", me, me.Alive(), RunID)
	}
	reused := me
	reused.Start++
	if reused.Alive() {
		t.Errorf("PID %d with another start time counted as alive", me.PID)
	}
	cmd := exec.Command("sleep", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child, err := OwnerOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if child.Alive() {
		t.Errorf("exited child %s counted as alive", child)
	}
	t.Setenv(SessionEnv, "Not-Valid")
	if o, _ := OwnerOf(os.Getpid()); o.Session != "local" {
		t.Errorf("invalid session accepted: %q", o.Session)
	}
	t.Setenv(SessionEnv, "abc123")
	if o, _ := OwnerOf(os.Getpid()); o.Session != "abc123" {
		t.Errorf("session %q, want abc123", o.Session)
	}
}

func TestPluginRunID(t *testing.T) {
	for name, want := range map[string]string{
		"hyhome-test-12-34-local-authz:latest": "12-34-local",
		"hyhome-test-12-34-local":              "12-34-local",
		"hyhome-test-12-34-local:1":            "12-34-local",
		"hyhome-test-random-authz":             "",
		"hyhome-test-12-34":                    "",
		"vieux/sshfs:latest":                   "",
	} {
		got, ok := pluginRunID(name)
		if got != want || ok != (want != "") {
			t.Errorf("pluginRunID(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}
