package fix

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/hy-home/hyhome/internal/lint"
	"github.com/hy-home/hyhome/internal/workload"
)

// Options say what to fix and with which values.
type Options struct {
	// Lint names the projects (same discovery, -f, profiles, env files and
	// policy environment as lint).
	Lint lint.Options
	// Unsafe applies the edits that can take away something a service
	// uses; without it they are reported as suggestions.
	Unsafe bool
	// Tier is the hy-home.tier label to add ("" leaves tier-label alone).
	Tier Values
	// Memory is the memory limit to add, by service; MemoryTable by image.
	Memory      Values
	MemoryTable []ImageSize
	// PidsLimit is the pids limit to add (0: none).
	PidsLimit int64
	// User is the non-root user to set (unsafe).
	User Values
	// Tmpfs are the paths given tmpfs mounts with read_only (unsafe).
	Tmpfs Values
	// DockerHost replaces a Docker socket mount (unsafe).
	DockerHost string
}

// DefaultPidsLimit bounds fork bombs while leaving room for thread-heavy
// services: the engine counts threads as pids.
const DefaultPidsLimit = 1024

// DefaultDockerHost is the reference stack's read-only guard listener.
const DefaultDockerHost = "tcp://docker-guard:2375"

// Values is a flag given as VALUE (every service) or SERVICE=VALUE.
type Values struct {
	Default []string
	Service map[string][]string
}

var serviceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)

// ParseValues reads repeated VALUE / SERVICE=VALUE flags; check validates
// each value.
func ParseValues(flag string, args []string, check func(string) error) (Values, error) {
	v := Values{Service: map[string][]string{}}
	for _, a := range args {
		svc, val, per := strings.Cut(a, "=")
		if !per || !serviceName.MatchString(svc) {
			svc, val = "", a
		}
		if check != nil {
			if err := check(val); err != nil {
				return v, fmt.Errorf("%s %q: %w", flag, a, err)
			}
		}
		if svc == "" {
			v.Default = append(v.Default, val)
		} else {
			v.Service[svc] = append(v.Service[svc], val)
		}
	}
	return v, nil
}

// All returns every value for a service: its own, else the defaults.
func (v Values) All(service string) []string {
	if s, ok := v.Service[service]; ok {
		return s
	}
	return v.Default
}

// For returns the last value for a service ("" when none).
func (v Values) For(service string) string {
	all := v.All(service)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// CheckMemory validates a memory size and returns it as compose writes it.
func CheckMemory(s string) error {
	if n, ok := workload.ParseMemory(s); !ok || n <= 0 {
		return fmt.Errorf("not a memory size (e.g. 256MiB, 1g)")
	}
	return nil
}

// memoryText writes a size in a unit docker compose reads (go-units'
// RAMInBytes: b, k, m, g).
func memoryText(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprintf("%db", n)
}

// ImageSize is one line of a memory table: images matching Pattern get Size.
type ImageSize struct {
	Pattern string
	Size    int64
}

// ReadMemoryTable reads "IMAGE SIZE" lines (# comments, blank lines
// ignored). IMAGE is a glob matched against the image reference and
// against the reference without its tag or digest.
func ReadMemoryTable(file string) ([]ImageSize, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ImageSize
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want IMAGE SIZE, got %q", file, n, line)
		}
		if _, err := path.Match(fields[0], ""); err != nil {
			return nil, fmt.Errorf("%s:%d: bad image pattern %q: %w", file, n, fields[0], err)
		}
		size, ok := workload.ParseMemory(fields[1])
		if !ok || size <= 0 {
			return nil, fmt.Errorf("%s:%d: %q is not a memory size (e.g. 256MiB)", file, n, fields[1])
		}
		out = append(out, ImageSize{Pattern: fields[0], Size: size})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return out, nil
}

// memoryFor picks a service's memory limit: its own --memory value, else
// the first table line matching its image, else the default --memory.
func (o *Options) memoryFor(w *workload.Workload) (int64, string) {
	if s, ok := o.Memory.Service[w.Name]; ok && len(s) > 0 {
		n, _ := workload.ParseMemory(s[len(s)-1])
		return n, "--memory " + w.Name + "=" + s[len(s)-1]
	}
	bare := w.Image
	if i := strings.IndexByte(bare, '@'); i >= 0 {
		bare = bare[:i]
	}
	if i := strings.LastIndexByte(bare, ':'); i > strings.LastIndexByte(bare, '/') {
		bare = bare[:i]
	}
	for _, e := range o.MemoryTable {
		if ok, _ := path.Match(e.Pattern, w.Image); ok {
			return e.Size, "memory table " + e.Pattern
		}
		if ok, _ := path.Match(e.Pattern, bare); ok {
			return e.Size, "memory table " + e.Pattern
		}
	}
	if d := o.Memory.Default; len(d) > 0 {
		n, _ := workload.ParseMemory(d[len(d)-1])
		return n, "--memory " + d[len(d)-1]
	}
	return 0, ""
}
