// Package spool holds bytes that must be written later, or in another
// order, than they are produced: in memory while they are few, then in a
// temporary file that no one else can see, so that a large report's parts
// take disk rather than memory.
package spool

import (
	"bufio"
	"errors"
	"io"
	"os"
)

// DefaultLimit is how many bytes a Spool keeps in memory before it moves
// them to a temporary file.
const DefaultLimit = 1 << 20

// Spool is an append-only byte store. It is not safe for concurrent
// writes; ReadAt may be called concurrently once writing is over and
// Flush has returned.
type Spool struct {
	limit int
	mem   []byte
	f     *os.File
	name  string // the file's name when it could not be unlinked at once
	w     *bufio.Writer
	n     int64
	err   error
}

// New returns an empty spool keeping up to limit bytes in memory
// (DefaultLimit when limit <= 0).
func New(limit int) *Spool {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Spool{limit: limit}
}

// Len is the number of bytes written.
func (s *Spool) Len() int64 { return s.n }

// Write appends p. An error of the temporary file is returned here and by
// every later call.
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && len(s.mem)+len(p) > s.limit {
		if err := s.toFile(); err != nil {
			s.err = err
			return 0, err
		}
	}
	if s.f == nil {
		s.mem = append(s.mem, p...)
		s.n += int64(len(p))
		return len(p), nil
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// WriteString appends str.
func (s *Spool) WriteString(str string) (int, error) {
	if s.f == nil && s.err == nil && len(s.mem)+len(str) <= s.limit {
		s.mem = append(s.mem, str...)
		s.n += int64(len(str))
		return len(str), nil
	}
	return s.Write([]byte(str))
}

func (s *Spool) toFile() error {
	f, err := os.CreateTemp("", "hyhome-spool-*")
	if err != nil {
		return err
	}
	// Unlinked at once where the system allows it: nothing is left behind
	// whatever happens to the process.
	if err := os.Remove(f.Name()); err != nil {
		s.name = f.Name()
	}
	s.f = f
	s.w = bufio.NewWriterSize(f, 64<<10)
	if _, err := s.w.Write(s.mem); err != nil {
		return err
	}
	s.mem = nil
	return nil
}

// Flush makes what was written readable with ReadAt.
func (s *Spool) Flush() error {
	if s.err != nil {
		return s.err
	}
	if s.w != nil {
		if err := s.w.Flush(); err != nil {
			s.err = err
			return err
		}
	}
	return nil
}

// ReadAt reads len(p) bytes at off; call Flush after the last write.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil {
		if off >= int64(len(s.mem)) {
			return 0, io.EOF
		}
		n := copy(p, s.mem[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	return s.f.ReadAt(p, off)
}

// WriteTo writes everything written so far to w.
func (s *Spool) WriteTo(w io.Writer) (int64, error) {
	if err := s.Flush(); err != nil {
		return 0, err
	}
	if s.f == nil {
		n, err := w.Write(s.mem)
		return int64(n), err
	}
	return io.Copy(w, io.NewSectionReader(s.f, 0, s.n))
}

// Close releases the memory and the temporary file. The spool is empty
// and usable again afterwards.
func (s *Spool) Close() error {
	var err error
	if s.f != nil {
		err = s.f.Close()
		if s.name != "" {
			err = errors.Join(err, os.Remove(s.name))
		}
	}
	*s = Spool{limit: s.limit}
	return err
}
