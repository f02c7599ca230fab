// Package sysinfo reads facts about the machine hyhome runs on.
package sysinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// MemTotal returns the machine's memory in bytes, from /proc/meminfo.
func MemTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("reading host memory: %w", err)
	}
	defer f.Close()
	return memTotal(f)
}

// memTotal reads MemTotal (in kB, as the kernel reports it) from
// meminfo-formatted text.
func memTotal(r io.Reader) (int64, error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil && kb <= 0 {
				err = fmt.Errorf("not a positive size")
			}
			if err != nil {
				return 0, fmt.Errorf("reading host memory: MemTotal %q: %w", fields[1], err)
			}
			return kb * 1024, nil
		}
	}
	if err := s.Err(); err != nil {
		return 0, fmt.Errorf("reading host memory: %w", err)
	}
	return 0, fmt.Errorf("reading host memory: no MemTotal in /proc/meminfo")
}
