package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hy-home/hyhome/internal/testenv"
)

func TestReadFileRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "compose.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		testenv.Missing(t, "mkfifo: %v", err)
	}
	if _, err := ReadFile(fifo, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("FIFO: %v, want ErrNotRegular (and no hang)", err)
	}
	link := filepath.Join(dir, "traefik.yml")
	os.Symlink("/dev/zero", link)
	if _, err := ReadFile(link, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("symlink to /dev/zero: %v, want ErrNotRegular", err)
	}
	if _, err := ReadFile(dir, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: %v, want ErrNotRegular", err)
	}
}

func TestReadFileLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	os.WriteFile(p, make([]byte, 100), 0o600)
	if b, err := ReadFile(p, 100); err != nil || len(b) != 100 {
		t.Errorf("at the limit: %d, %v", len(b), err)
	}
	if _, err := ReadFile(p, 99); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
}

// TestReadFileInto reads whole files into a reused buffer, and a file the
// stat under-reports (one that grows, or /proc) whole too, within the limit.
func TestReadFileInto(t *testing.T) {
	dir := t.TempDir()
	var buf []byte
	for _, n := range []int{0, 1, 100, 5000, 17} {
		p := filepath.Join(dir, "f")
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(i*7 + n)
		}
		os.WriteFile(p, want, 0o600)
		b, err := ReadFileInto(p, 1<<20, buf)
		if err != nil || string(b) != string(want) {
			t.Fatalf("%d bytes: got %d, %v", n, len(b), err)
		}
		if n == 17 && &b[0] != &buf[:1][0] {
			t.Error("a file smaller than the buffer was not read into it")
		}
		buf = b
	}
	// /proc files stat as empty and are not: read past the stat's size.
	if b, err := ReadFileInto("/proc/self/status", 1<<20, nil); err == nil && len(b) == 0 {
		t.Error("/proc/self/status read as empty")
	}
	if b, err := ReadFileInto("/proc/self/status", 10, nil); err == nil {
		t.Errorf("/proc/self/status within 10 bytes: %d bytes", len(b))
	}
}
