package workload

import (
	"sort"
	"strings"
)

// VolumeEffect is what a volume's driver will mount, read the way the
// engine's local driver (volume/local/local_unix.go) hands its options to
// mount(2): mount(device, <volume dir>, type, o), with `o` split into
// mount flags and file-system data by moby/sys/mount.
type VolumeEffect struct {
	// Plugin is the driver's name when it is not the engine's built-in
	// local driver; nothing else is known about what it mounts.
	Plugin string
	// Type is what is mounted: "" for a plain directory under the engine's
	// data root (no device and no type), "bind" when `o` has bind or rbind
	// (mount(2) then ignores the type: device is a host path), otherwise
	// the file system type as given ("tmpfs", "nfs", "ext4", "overlay",
	// "proc", ...), or NoType when a device is given without one.
	Type   string
	Device string
	// HostPaths are host paths the mount exposes: a bind's device, a
	// block device, overlay's lowerdir, upperdir and workdir.
	HostPaths []string
	// ReadOnly is the MS_RDONLY flag after every ro and rw in `o`, in order.
	ReadOnly bool
	// Unknown are option keys the local driver does not know.
	Unknown []string
}

// NoType is the Type of a local volume with a device and no type: mount(2)
// refuses it unless `o` makes it a bind.
const NoType = "(none)"

// localVolumeOptions are the options the local driver knows: Docker
// 20.10's type, o and device, size (a quota on xfs data roots) and, since
// Docker 25, helper (an external mount helper for the type).
var localVolumeOptions = map[string]bool{"type": true, "o": true, "device": true, "size": true, "helper": true}

// mountFlags are moby/sys/mount's flag words (flags_unix.go); anything
// else in `o` is file-system data.
var mountFlags = map[string]bool{
	"defaults": true, "ro": true, "rw": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
	"exec": true, "noexec": true, "sync": true, "async": true, "dirsync": true, "remount": true, "mand": true,
	"nomand": true, "atime": true, "noatime": true, "diratime": true, "nodiratime": true, "bind": true,
	"rbind": true, "unbindable": true, "runbindable": true, "private": true, "rprivate": true, "shared": true,
	"rshared": true, "slave": true, "rslave": true, "relatime": true, "norelatime": true, "strictatime": true,
	"nostrictatime": true,
}

// LocalVolume judges a volume's driver and options by what the driver will
// mount. It does not decide whether that is allowed.
func LocalVolume(driver string, opts map[string]string) VolumeEffect {
	if driver != "" && driver != "local" {
		return VolumeEffect{Plugin: driver}
	}
	var e VolumeEffect
	for k := range opts {
		if !localVolumeOptions[k] {
			e.Unknown = append(e.Unknown, k)
		}
	}
	sort.Strings(e.Unknown)
	typ, device := opts["type"], opts["device"]
	e.Device = device
	// The driver mounts only when a device or a type is given
	// (needsMount); `o` alone is ignored.
	if typ == "" && device == "" {
		return e
	}
	bind := false
	var data []string
	// Split exactly as moby/sys/mount's parseOptions does: on commas, no
	// trimming, case-sensitive.
	for _, o := range strings.Split(opts["o"], ",") {
		switch {
		case !mountFlags[o]:
			data = append(data, o)
		case o == "bind" || o == "rbind":
			bind = true
		case o == "ro" || o == "rw":
			e.ReadOnly = o == "ro"
		}
	}
	switch {
	case bind:
		e.Type = "bind"
		e.HostPaths = append(e.HostPaths, device)
		return e
	case typ == "":
		e.Type = NoType
	default:
		e.Type = typ
	}
	if strings.HasPrefix(device, "/") {
		// A block device or an image file for a disk file system; for
		// virtual file systems the kernel ignores it, and judging it
		// anyway never judges less.
		e.HostPaths = append(e.HostPaths, device)
	}
	if strings.TrimPrefix(strings.ToLower(typ), "^") == "overlay" {
		for _, d := range data {
			k, v, _ := strings.Cut(d, "=")
			switch strings.TrimSuffix(k, "+") {
			case "lowerdir", "upperdir", "workdir", "datadir":
				for _, dir := range strings.Split(v, ":") {
					if dir != "" && !strings.HasSuffix(dir, `\`) {
						e.HostPaths = append(e.HostPaths, dir)
					}
				}
			}
		}
	}
	return e
}

// VolumeTypeEffects says what mounting a file system type of the host's
// kernel from the engine's own namespaces gives a container, for the ones
// whose name does not say it.
var VolumeTypeEffects = map[string]string{
	"proc":        "the host's processes (procfs of the engine's pid namespace) and their /proc/<pid>/root",
	"sysfs":       "the host's sysfs",
	"devtmpfs":    "every host device node",
	"devpts":      "the host's pseudo-terminals",
	"cgroup":      "the host's cgroup hierarchy, writable (release_agent)",
	"cgroup2":     "the host's cgroup hierarchy, writable",
	"binfmt_misc": "the host's binary format handlers (an interpreter run as root for any program)",
	"debugfs":     "kernel internals",
	"tracefs":     "kernel tracing",
	"securityfs":  "the host's LSM policies",
	"bpf":         "the host's pinned BPF objects",
	"configfs":    "kernel object configuration",
	"mqueue":      "the host's POSIX message queues",
	"nfs":         "a network file system mounted from the host's network namespace",
	"nfs4":        "a network file system mounted from the host's network namespace",
	"cifs":        "a network file system mounted from the host's network namespace",
	"smb3":        "a network file system mounted from the host's network namespace",
	"overlay":     "host directories as layers",
}
