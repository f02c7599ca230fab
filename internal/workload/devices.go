package workload

import (
	"path"
	"regexp"
	"strings"
)

// peripheralDevices are host devices that give a container a peripheral
// and nothing of the host's memory, storage or kernel: GPUs for
// transcoding, sound, cameras, serial adapters (Zigbee and Z-Wave sticks),
// TUN/TAP, FUSE, the kernel's hardware RNG and GPIO buses. Exposing one is
// still worth a look (a finding of the rule's default severity); anything
// else is treated as dangerous.
var peripheralDevices = regexp.MustCompile(`^/dev/(` +
	`null|zero|full|random|urandom|tty|net/tun|fuse|hwrng|` +
	`dri(/(card|renderD)[0-9]+)?|snd(/.*)?|video[0-9]+|media[0-9]+|` +
	`tty(USB|ACM|AMA|S)[0-9]+|serial/by-(id|path)/[^/]+|` +
	`gpiomem|gpiochip[0-9]+|i2c-[0-9]+|spidev[0-9]+\.[0-9]+` +
	`)$`)

// diskDevices are block device names below /dev.
var diskDevices = regexp.MustCompile(`^(sd|vd|xvd|hd)[a-z]+[0-9]*$|^(nvme|mmcblk|loop|nbd|md|dm-|sr|zram|ram)[0-9]`)

// DeviceDanger says why exposing a host device path to a container gives
// it more than a peripheral ("" for a known peripheral). The engine
// resolves the path on the host, following symbolic links, and adds every
// device below a directory, so the path is judged after cleaning, and a
// directory, a path outside /dev or a device this package does not know is
// dangerous: disks (/dev/sda, /dev/vda, /dev/nvme0n1, /dev/disk/by-id/...),
// memory (/dev/mem, /dev/kmem, /dev/port), CPU registers (/dev/cpu/*/msr),
// raw USB and input devices, the kernel log.
func DeviceDanger(hostPath string) string {
	p := strings.TrimSpace(hostPath)
	if !strings.HasPrefix(p, "/") {
		return "is not an absolute path"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "has a `..` segment, which the engine resolves after following symbolic links"
		}
	}
	clean := path.Clean(p)
	switch {
	case clean == "/dev":
		return "is the host's whole /dev: every device node below it"
	case !strings.HasPrefix(clean, "/dev/"):
		return "is outside /dev: the engine follows symbolic links there to whatever device they name"
	case peripheralDevices.MatchString(clean):
		return ""
	}
	what := "a host device that is not a known peripheral"
	base := strings.TrimPrefix(clean, "/dev/")
	switch {
	case base == "mem" || base == "kmem" || base == "port":
		what = "the host's memory or I/O ports"
	case diskDevices.MatchString(base),
		strings.HasPrefix(base, "disk/"), strings.HasPrefix(base, "mapper/"), strings.HasPrefix(base, "block/"):
		what = "a host disk"
	case strings.HasPrefix(base, "cpu/"):
		what = "CPU registers (msr, cpuid)"
	}
	return "is " + what
}
