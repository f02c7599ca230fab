package workload

import (
	"path"
	"slices"
	"strings"
)

// Host is what a source learnt about the host its workloads run on. The
// zero value means nothing is known; rules then assume the engine's usual
// defaults.
type Host struct {
	// DataRoot is the engine's data root (`docker info` DockerRootDir);
	// "" means unknown, judged as DefaultDataRoot.
	DataRoot string
	// SocketGID is the group owning the engine's socket, when
	// SocketGIDKnown: a process in that group can open it.
	SocketGID      uint32
	SocketGIDKnown bool
	// MaskedPaths and ReadonlyPaths are the engine's default lists, when
	// known; DefaultMaskedPaths and DefaultReadonlyPaths otherwise.
	MaskedPaths, ReadonlyPaths []string
	// CgroupnsDefault is the cgroup namespace mode the engine gives a
	// container that asks for none: "host" on cgroup v1 hosts, "private"
	// on cgroup v2 ("" when unknown).
	CgroupnsDefault string
	// LogDriver is the engine's default log driver ("" when unknown).
	LogDriver string
}

// DefaultDataRoot is the engine's data root unless configured otherwise.
const DefaultDataRoot = "/var/lib/docker"

// DefaultMaskedPaths and DefaultReadonlyPaths are Docker 20.10's defaults
// (oci/defaults.go), the oldest engine hyhome supports (API 1.41): later
// engines mask more, never less.
var (
	DefaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
	}
	DefaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// SensitiveHostTrees are host directories no container may mount, read-only
// or not, whatever a profile allows: the host's configuration and
// credentials (/etc, /root), its devices, kernel interfaces and boot files,
// its runtime state and sockets (/run; /var/run is a link to it on most
// distributions, but not all) and the container engines' data. Read-only
// is no protection on engines before Docker 25: binds are recursive but
// `ro` applies to the top mount only, so a read-only bind of /dev leaves
// /dev/shm writable.
var SensitiveHostTrees = []string{
	"/boot", "/dev", "/etc", "/proc", "/root", "/run", "/sys", "/var/run",
	DefaultDataRoot, "/var/lib/containerd",
}

// SensitiveHostPath says why a host path must not be exposed to a
// container whatever a profile allows ("" when nothing is known against
// it): a `..` segment (the kernel resolves it after symlinks, and /var/run
// is a link: /var/run/../etc is /etc), a path in or above a sensitive tree
// (/ and /var hold /var/run and the data root), /proc's magic links
// (/proc/<pid>/root, cwd, fd reach other processes' files, the host's
// included), or the engine's data root (volumes' contents, which
// containers write, may hold symlinks the engine follows on the host).
// Paths that are not absolute are not host paths and are not judged here.
func SensitiveHostPath(p, dataRoot string) string {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(p, "/") {
		return ""
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "has a `..` segment, which the kernel resolves after following symbolic links"
		}
	}
	clean := path.Clean(p)
	if clean == "/proc" || strings.HasPrefix(clean, "/proc/") {
		return "is under /proc, whose magic links (/proc/<pid>/root, cwd, fd) reach other processes' files, the host's included"
	}
	if dataRoot == "" {
		dataRoot = DefaultDataRoot
	}
	dataRoot = path.Clean(dataRoot)
	for _, tree := range slices.Concat([]string{dataRoot}, SensitiveHostTrees) {
		switch {
		case Within(clean, tree) && tree == dataRoot:
			return "is under the engine's data root " + dataRoot + " (volumes written by containers, layers, container configurations): a symlink planted there is followed on the host"
		case Within(clean, tree):
			return "is under " + tree + ", a host tree no container may mount"
		case Within(tree, clean):
			return "holds " + tree + ", a host tree no container may mount"
		}
	}
	return ""
}

// Within reports whether clean path p is dir or below it.
func Within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}
