// Package safefile reads files named by untrusted input (a compose file, a
// path it bind-mounts, an ADR directory) without being led astray: only
// regular files are read, and never more than a limit. A FIFO would block
// a read for ever and /dev/zero would fill memory; both look like size 0 to
// a stat.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNotRegular is returned for anything but a regular file (after symlinks).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned when a file exceeds the limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads path when it is a regular file of at most max bytes.
func ReadFile(path string, max int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, fi.Mode().Type())
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %w (%d bytes, the limit is %d)", path, ErrTooLarge, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w (the limit is %d bytes)", path, ErrTooLarge, max)
	}
	return b, nil
}

// IsRegular reports whether path is a regular file (following symlinks).
func IsRegular(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
