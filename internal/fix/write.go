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
	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/parallel"
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
// symbolic link is written through, not replaced). A project made of
// several files (-f files, include, extends across files) is then loaded
// again, because an edit verified in one file can meet a value of another
// file only there; if one no longer loads, every file is put back as it
// was, the secret files fix created are removed, and the load error is
// returned. A one-file project needs no reload: its edited file was parsed
// back and compared node by node already (and the fuzz test holds that
// such a file loads).
func Apply(ctx context.Context, r *Result) error {
	var created []string
	written := make([]bool, len(r.Files))
	undo := func() error {
		var errs []error
		for i, f := range r.Files {
			if written[i] {
				if err := atomicfile.WriteBytes(f.target(), f.Mode, f.Old); err != nil {
					errs = append(errs, err)
				}
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
	// Each write syncs its file: they run side by side so that the syncs
	// overlap.
	errs := make([]error, len(r.Files))
	parallel.ForEach(ctx, len(r.Files), 8, func(i int) {
		f := r.Files[i]
		t, err := filepath.EvalSymlinks(f.Path)
		if err != nil {
			errs[i] = fmt.Errorf("writing %s: %w", f.Path, err)
			return
		}
		f.resolved = t
		if errs[i] = atomicfile.WriteBytes(t, f.Mode, f.New); errs[i] == nil {
			written[i] = true
		}
	})
	if err := errors.Join(errs...); err != nil {
		return errors.Join(err, undo())
	}
	loadErrs := make([]error, len(r.reload))
	parallel.ForEach(ctx, len(r.reload), 0, func(i int) {
		_, loadErrs[i] = compose.Load(ctx, r.reload[i])
	})
	if err := errors.Join(loadErrs...); err != nil {
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
