package fix

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/hy-home/hyhome/internal/atomicfile"
	"github.com/hy-home/hyhome/internal/lint"
)

// Diff is the unified diff of one changed file, secrets redacted. Labels
// are the path as given (relative paths stay relative).
func (f *File) Diff(label string) string {
	label = strings.TrimPrefix(filepath.ToSlash(label), "/")
	d := udiff.Unified("a/"+label, "b/"+label, string(f.Old), string(f.New))
	return redact(d, f.Redact)
}

// Apply writes a result: each secret file first (mode 0600, in a 0700
// directory), then each compose file atomically, keeping its mode (a
// symbolic link is written through, not replaced). It then loads the
// projects again; if one that loaded before no longer does, every file is
// put back as it was, the secret files it created are removed, and the
// load error is returned. Fix must never leave a project docker compose
// cannot read.
func Apply(ctx context.Context, opts lint.Options, r *Result) error {
	var created []string
	var written []*File
	undo := func() error {
		var errs []error
		for _, f := range written {
			if err := atomicfile.WriteBytes(f.target(), f.Mode, f.Old); err != nil {
				errs = append(errs, err)
			}
		}
		for _, p := range created {
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, s := range r.Secrets {
		if s.Exists {
			continue
		}
		if err := writeSecret(s); err != nil {
			return errors.Join(err, undo())
		}
		created = append(created, s.Path)
	}
	for _, f := range r.Files {
		t, err := filepath.EvalSymlinks(f.Path)
		if err != nil {
			return errors.Join(fmt.Errorf("writing %s: %w", f.Path, err), undo())
		}
		f.resolved = t
		if err := atomicfile.WriteBytes(t, f.Mode, f.New); err != nil {
			return errors.Join(err, undo())
		}
		written = append(written, f)
	}
	if len(written) == 0 {
		return nil
	}
	after, err := lint.Run(ctx, opts)
	if err == nil && len(after.Errors) > len(r.Errors) {
		err = after.Errors[0]
	}
	if err != nil {
		return errors.Join(fmt.Errorf("the fixed files no longer load, so they were put back: %w", err), undo())
	}
	return nil
}

func (f *File) target() string {
	if f.resolved != "" {
		return f.resolved
	}
	return f.Path
}

// writeSecret creates a secret file with mode 0600; it never replaces one.
func writeSecret(s *SecretFile) error {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return fmt.Errorf("creating the secrets directory: %w", err)
	}
	f, err := os.OpenFile(s.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing secret file: %w", err)
	}
	_, err = f.WriteString(s.value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(s.Path)
		return fmt.Errorf("writing secret file %s: %w", s.Path, err)
	}
	return nil
}

// Describe renders an edit for text output.
func (e *Edit) Describe() string {
	var b strings.Builder
	if e.Before != "" {
		b.WriteString(e.Before + " → ")
	}
	b.WriteString(e.After)
	return b.String()
}
