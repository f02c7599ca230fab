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
	return ReadFileInto(path, max, nil)
}

// ReadFileInto is ReadFile reading into buf's memory when it is large
// enough (a caller reading many files reuses one buffer): the file's
// bytes are returned, in buf or in a buffer of the file's size.
func ReadFileInto(path string, max int64, buf []byte) ([]byte, error) {
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
	// Room for what the stat says and a byte more, to see a file that
	// grew since; reading goes on (growing the buffer) to the end or
	// past the limit.
	want := int(fi.Size()) + 1
	if cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	buf = buf[:0]
	for int64(len(buf)) <= max {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > max {
		return nil, fmt.Errorf("%s: %w (the limit is %d bytes)", path, ErrTooLarge, max)
	}
	return buf, nil
}

// IsRegular reports whether path is a regular file (following symlinks).
func IsRegular(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
