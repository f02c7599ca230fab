package dockertest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// SessionEnv names one `make test` run: the Makefile sets it for every test
// binary it starts, and the sweep after the run fails when objects of that
// session are left (see cmd/testsweep).
const SessionEnv = "HYHOME_TEST_SESSION"

// Owner is the process that owns labelled objects: its PID and start time
// (field 22 of /proc/<pid>/stat, clock ticks since boot) identify it even
// after the PID is reused, and Session names the `make test` run it belongs
// to ("local" outside one).
type Owner struct {
	PID     int
	Start   uint64
	Session string
}

// String is the owner as a run ID: "<pid>-<start>-<session>". It is valid
// in a label value, an image tag and a container, volume, network, secret
// or service name (Swarm wants a DNS name component there: no dots), and it
// has exactly three '-'-separated fields, so that it can be cut out of a
// name that goes on after it.
func (o Owner) String() string { return fmt.Sprintf("%d-%d-%s", o.PID, o.Start, o.Session) }

var sessionRE = regexp.MustCompile(`^[0-9a-z]{1,16}$`)

// ParseRunID reads an owner from a run ID. Run IDs of another form (older
// test code labelled with a random ID) do not parse: their owner cannot be
// told, so the sweep leaves them.
func ParseRunID(s string) (Owner, bool) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 || !sessionRE.MatchString(parts[2]) {
		return Owner{}, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 || strconv.Itoa(pid) != parts[0] {
		return Owner{}, false
	}
	start, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil || strconv.FormatUint(start, 10) != parts[1] {
		return Owner{}, false
	}
	return Owner{PID: pid, Start: start, Session: parts[2]}, true
}

// Alive reports whether the owning process still runs: a process with that
// PID exists and started at the same time. A process that cannot be read is
// treated as alive unless /proc says it does not exist, so that the sweep
// never removes what a running test still uses.
func (o Owner) Alive() bool {
	start, err := processStart(o.PID)
	if err != nil {
		return !os.IsNotExist(err)
	}
	return start == o.Start
}

// processStart reads a process's start time from /proc/<pid>/stat.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatStart(string(b))
}

// parseStatStart reads field 22 (starttime) of a /proc/<pid>/stat line. The
// second field is the command name in parentheses and may itself hold spaces
// and parentheses, so the fields are counted from the last ')'.
func parseStatStart(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat line without a command name: %.60q", stat)
	}
	f := strings.Fields(stat[i+1:])
	const startField = 22 - 3 // fields after ')' begin with field 3, the state
	if len(f) <= startField {
		return 0, fmt.Errorf("stat line with %d fields after the command name, want more than %d", len(f), startField)
	}
	return strconv.ParseUint(f[startField], 10, 64)
}

// CurrentOwner is this process as an owner, in the session named by
// $HYHOME_TEST_SESSION ("local" when unset or not 1-16 of [0-9a-z]).
func CurrentOwner() (Owner, error) { return OwnerOf(os.Getpid()) }

// OwnerOf is the process pid as an owner, in the current session.
func OwnerOf(pid int) (Owner, error) {
	start, err := processStart(pid)
	if err != nil {
		return Owner{}, fmt.Errorf("reading the start time of process %d: %w", pid, err)
	}
	return Owner{PID: pid, Start: start, Session: session()}, nil
}

func session() string {
	if s := os.Getenv(SessionEnv); sessionRE.MatchString(s) {
		return s
	}
	return "local"
}

// currentRunID is RunID's value. Without /proc (not Linux) the owner cannot
// be read; a random ID then labels the objects, which Main still removes
// but a later sweep leaves alone.
func currentRunID() string {
	if o, err := CurrentOwner(); err == nil {
		return o.String()
	}
	return randomID()
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
