// Package policytest reads the rule fixtures of internal/policy/testdata:
// the directives a fixture's leading comments give (what the host is, what
// a guard profile allows, how the compose file is loaded) and the
// cross-source files beside it. The rule fixture test (internal/policy) and
// the cross-source meta-test (internal/guard) read fixtures through it, so
// that both judge a fixture under the same conditions.
//
// It is test support: nothing outside _test.go files may import it.
package policytest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// Dir is internal/policy/testdata, the fixtures' root, wherever the test
// that asks runs.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "policy", "testdata")
}

// Directives are what a fixture's leading comments say:
//
//	# host-memory: 8GiB          the host's memory (default 64GiB)
//	# strict: true               ignore every exemption
//	# profile: name              a compose profile to enable
//	# env: KEY=VALUE             the environment compose interpolates from
//	# socket-gid: 999            the group owning the engine's socket
//	# data-root: /srv/docker     the engine's data root
//	# log-driver: json-file      the engine's default log driver
//	# host-sources: /srv/a, /b   the host directories a profile allows (empty: none)
//	# volume-types: tmpfs        the volume types a profile allows
type Directives struct {
	HostMemory int64
	Strict     bool
	Profiles   []string
	Environ    []string
	Host       workload.Host
	Allow      policy.Allowlists
	// GuardOnly names the directives only the guard can know: its
	// profile's allowlists and the group of the socket it reaches the
	// engine through. lint and audit judge without them.
	GuardOnly []string
}

func list(v string) []string {
	out := []string{}
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// ReadDirectives reads the directives of a fixture.
func ReadDirectives(path string) (Directives, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Directives{}, err
	}
	d := Directives{HostMemory: 64 << 30}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "#") {
			break
		}
		k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "#")), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "host-memory":
			n, ok := workload.ParseMemory(v)
			if !ok {
				return d, fmt.Errorf("%s: bad host-memory %q", path, v)
			}
			d.HostMemory = n
		case "strict":
			d.Strict = v == "true"
		case "profile":
			d.Profiles = append(d.Profiles, v)
		case "env":
			d.Environ = append(d.Environ, v)
		case "socket-gid":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return d, fmt.Errorf("%s: bad socket-gid %q", path, v)
			}
			d.Host.SocketGID, d.Host.SocketGIDKnown = uint32(n), true
			d.GuardOnly = append(d.GuardOnly, k)
		case "data-root":
			d.Host.DataRoot = v
		case "log-driver":
			d.Host.LogDriver = v
		case "host-sources":
			d.Allow.HostSources = list(v)
			d.GuardOnly = append(d.GuardOnly, k)
		case "volume-types":
			d.Allow.VolumeTypes = list(v)
			d.GuardOnly = append(d.GuardOnly, k)
		}
	}
	return d, nil
}
