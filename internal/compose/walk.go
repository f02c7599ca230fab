package compose

import (
	"bytes"
	"context"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/parallel"
	"github.com/hy-home/hyhome/internal/safefile"
)

// ProjectSpec is one compose project found in a directory walk.
type ProjectSpec struct {
	Files   []string
	WorkDir string
}

// Set is a group of projects that share parsed files.
type Set struct {
	Projects []ProjectSpec
	cache    *fileCache
}

// FindOption tunes FindProjects.
type FindOption func(*Set)

// WithMaxFileSize bounds the size of each file read (0: the default).
func WithMaxFileSize(n int64) FindOption {
	return func(s *Set) { s.cache.limit = n }
}

func (s *Set) limit() int64 {
	if s.cache.limit > 0 {
		return s.cache.limit
	}
	return DefaultMaxFileSize
}

// Options returns load options for a project of the set.
func (s *Set) Options(p ProjectSpec, base Options) Options {
	base.Files, base.WorkDir, base.cache = p.Files, p.WorkDir, s.cache
	return base
}

var composeName = regexp.MustCompile(`(?i)^(docker-)?compose([._-].*)?\.ya?ml$`)

// skipDirs are never compose projects.
var skipDirs = map[string]bool{".git": true, "node_modules": true, "vendor": true, ".hg": true, ".svn": true}

// FindProjects walks dir for compose files and groups them as docker compose
// would: a default file with its override is one project; any other compose
// file is a project of its own. Files another file includes or extends are
// parts of that project, not projects themselves.
func FindProjects(dir string, opts ...FindOption) (*Set, error) {
	set := &Set{cache: newFileCache()}
	for _, o := range opts {
		o(set)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var candidates []string
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != abs && (skipDirs[d.Name()] || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(p))
		if ext != ".yml" && ext != ".yaml" || !safefile.IsRegular(p) {
			return nil // not YAML, or a FIFO, device or dangling link
		}
		if composeName.MatchString(d.Name()) || hasServicesKey(p, set.limit()) {
			candidates = append(candidates, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(candidates) == 0 {
		return set, nil
	}
	// Only a file with an include or extends key can pull in another
	// file; parse just those now to learn which files are parts of others,
	// and forget them again. Every file is parsed by its project's load,
	// on a worker, and released when that load is done, so memory does
	// not grow with the number of files the walk finds.
	parts := map[string]bool{}
	var referencing []string
	for _, c := range candidates {
		if b, err := safefile.ReadFile(c, set.limit()); err == nil && mayReference(b) {
			referencing = append(referencing, c)
		}
	}
	defer set.cache.release(referencing...)
	for _, f := range parallelParse(set.cache, referencing) {
		if f == nil {
			continue
		}
		includes, extends := f.referenced()
		for _, inc := range includes {
			parts[inc] = true
		}
		for _, ext := range extends {
			if ext != f.path {
				parts[ext] = true
			}
		}
	}
	byDir := map[string][]string{}
	for _, c := range candidates {
		byDir[filepath.Dir(c)] = append(byDir[filepath.Dir(c)], c)
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		files := byDir[d]
		used := map[string]bool{}
		if def, err := Discover(d); err == nil {
			for _, f := range def {
				used[f] = true
			}
			if !parts[def[0]] {
				set.Projects = append(set.Projects, ProjectSpec{Files: def, WorkDir: d})
			}
		}
		for _, f := range files {
			if used[f] || parts[f] || isOverrideName(filepath.Base(f)) {
				continue
			}
			set.Projects = append(set.Projects, ProjectSpec{Files: []string{f}, WorkDir: d})
		}
	}
	return set, nil
}

// referenceKey is how an include or extends key can be written: plain,
// quoted, in a flow mapping, or as an explicit "? key" (its colon on a
// later line).
var referenceKey = regexp.MustCompile(`(?:include|extends)["']?[ \t]*:|\?[ \t]*["']?(?:include|extends)`)

// mayReference reports whether a compose file may include or extend
// another: whether it has an include or extends key (or text that looks
// like one; a mere mention in a value or comment does not count).
func mayReference(b []byte) bool {
	return (bytes.Contains(b, []byte("include")) || bytes.Contains(b, []byte("extends"))) && referenceKey.Match(b)
}

func isOverrideName(name string) bool {
	for _, n := range DefaultOverrideFileNames {
		if name == n {
			return true
		}
	}
	return false
}

// hasServicesKey reports whether a YAML file has a top-level services: key.
func hasServicesKey(p string, limit int64) bool {
	b, err := safefile.ReadFile(p, limit)
	if err != nil {
		return false
	}
	return bytes.HasPrefix(b, []byte("services:")) || bytes.Contains(b, []byte("\nservices:"))
}

func parallelParse(c *fileCache, files []string) []*yamlFile {
	out := make([]*yamlFile, len(files))
	parallel.ForEach(context.Background(), len(files), 0, func(i int) {
		if f, err := c.get(files[i]); err == nil {
			out[i] = f
		}
	})
	return out
}
