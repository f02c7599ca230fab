package sysinfo

import (
	"strings"
	"syscall"
	"testing"
)

// TestMemTotalMatchesKernel: the figure read from /proc/meminfo is the
// kernel's own total, as sysinfo(2) reports it (to the kB /proc rounds to).
func TestMemTotalMatchesKernel(t *testing.T) {
	got, err := MemTotal()
	if err != nil {
		t.Fatal(err)
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	want := int64(si.Totalram) * int64(si.Unit)
	if d := got - want; d < -1024 || d > 1024 {
		t.Errorf("MemTotal = %d bytes, sysinfo(2) says %d", got, want)
	}
}

func TestMemTotalParsing(t *testing.T) {
	got, err := memTotal(strings.NewReader("MemFree:  10 kB\nMemTotal:       24576000 kB\n"))
	if err != nil || got != 24576000*1024 {
		t.Errorf("memTotal = %d, %v", got, err)
	}
	for text, want := range map[string]string{
		"MemFree: 1 kB\n":         "no MemTotal in /proc/meminfo",
		"MemTotal: lots kB\n":     `MemTotal "lots"`,
		"MemTotal: -5 kB\nx\n":    "", // parses; the kernel never writes it
		"":                        "no MemTotal",
		"MemTotal:\nMemTotal 1\n": "no MemTotal",
	} {
		_, err := memTotal(strings.NewReader(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("memTotal(%q) = %v, want an error containing %q", text, err, want)
		}
	}
}
