//go:build linux

package guard

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// dropBinaryPages removes the executable's read-only pages (code, constant
// data, the function tables) from the process's page tables with
// madvise(MADV_DONTNEED). They stay in the page cache, shared with every
// process of the same binary, and fault back in (a minor fault, no I/O) when
// next used. The hyhome binary carries every subcommand: package
// initialisation touches code and data of all of them once, and the kernel
// maps up to 64 KiB around each touch, so most of an idle guard's resident
// set is pages it does not use again.
//
// Only mappings that hold no private copy of a page are dropped:
// MADV_DONTNEED would discard such a copy, and a read-only mapping can hold
// one when the dynamic loader relocated it (a PIE's RELRO data). Writable
// mappings are never touched.
func dropBinaryPages() (dropped int64, err error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	type mapping struct {
		start, end uint64
		candidate  bool
		anonymous  bool
	}
	var maps []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(fields[0], "-") {
			// A field of the current mapping, "Anonymous:   12 kB".
			if k == "Anonymous" && len(maps) > 0 && strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")) != "0" {
				maps[len(maps)-1].anonymous = true
			}
			continue
		}
		// A mapping's header: address perms offset dev inode pathname.
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return 0, fmt.Errorf("reading /proc/self/smaps: %q", line)
		}
		candidate := len(fields) >= 6 && fields[5] == exe && (fields[1] == "r-xp" || fields[1] == "r--p")
		maps = append(maps, mapping{start: start, end: end, candidate: candidate})
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	for _, m := range maps {
		if !m.candidate || m.anonymous {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return dropped, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, errno)
		}
		dropped += int64(m.end - m.start)
	}
	return dropped, nil
}
