package compose

import (
	"bytes"
	"context"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

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

// readBuffers are the walk's read buffers, reused from file to file (the
// walk reads every YAML file; its bytes are garbage at once), up to
// maxPooledBuffer bytes each.
var readBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBuffer = 1 << 20

// keepAhead is how many files FindProjects parsed ahead it keeps parsed
// for their projects' loads (a variable for the tests).
var keepAhead = 64

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
	var yamls []string
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
		if ext := strings.ToLower(filepath.Ext(p)); ext == ".yml" || ext == ".yaml" {
			yamls = append(yamls, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Each YAML file is read once, on every core: a compose file is one
	// named as such or with a top-level services: key; only one with an
	// include or extends key can pull in another file (mayReference).
	type probe struct{ candidate, referencing bool }
	probes := make([]probe, len(yamls))
	parallel.ForEach(context.Background(), len(yamls), 0, func(i int) {
		p := yamls[i]
		if !safefile.IsRegular(p) {
			return // a FIFO, device or dangling link
		}
		named := composeName.MatchString(filepath.Base(p))
		bp := readBuffers.Get().(*[]byte)
		defer readBuffers.Put(bp)
		b, err := safefile.ReadFileInto(p, set.limit(), *bp)
		if cap(b) <= maxPooledBuffer {
			*bp = b[:0]
		}
		if err != nil {
			// A compose file that cannot be read is its project's load
			// error; another YAML file is not a compose file.
			probes[i].candidate = named
			return
		}
		probes[i].candidate = named || hasServicesKey(b)
		probes[i].referencing = probes[i].candidate && mayReference(b)
	})
	var candidates, referencing []string
	for i, p := range yamls {
		if probes[i].candidate {
			candidates = append(candidates, p)
		}
		if probes[i].referencing {
			referencing = append(referencing, p)
		}
	}
	yamls, probes = nil, nil
	if len(candidates) == 0 {
		return set, nil
	}
	// Parse the files that may reference others now, to learn which files
	// are parts of others. Every other file is parsed by its project's
	// load, on a worker, and released when that load is done, so memory
	// does not grow with the number of files the walk finds. The files
	// parsed ahead stay parsed for their loads when they are few; when
	// many, each is dropped once its references are known (parsed twice
	// rather than held).
	parts := map[string]bool{}
	for _, refs := range references(set.cache, referencing, len(referencing) <= keepAhead) {
		for _, p := range refs {
			parts[p] = true
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
			for i, f := range def {
				used[f] = true
				// The walk's own string for the file: a plan holds one
				// per project for the whole run.
				for _, c := range files {
					if c == f {
						def[i] = c
						break
					}
				}
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

// mayReference reports whether a compose file may include or extend
// another file: whether it may have an include or extends key. It must
// never miss one (the file's parts would be linted as projects of their
// own), and should rarely answer yes for a file without: the walk parses
// those ahead. A byte scan, not a regular expression: the walk asks it of
// every compose file. Yes when
//   - the word is written as a key: the word, maybe a closing quote,
//     blanks, a colon (a key and its colon are on one line, in block and
//     flow style alike);
//   - a key may be spelt another way: an escape in a double-quoted
//     scalar, an alias used as a key, an explicit "? key", a UTF-16 file.
//
// A mere mention of the words in a value or a comment is not a key.
func mayReference(b []byte) bool {
	if bytes.HasPrefix(b, []byte{0xFE, 0xFF}) || bytes.HasPrefix(b, []byte{0xFF, 0xFE}) {
		return true
	}
	if bytes.IndexByte(b, '\\') >= 0 {
		return true
	}
	for _, word := range [][]byte{[]byte("include"), []byte("extends")} {
		for at := 0; ; {
			i := bytes.Index(b[at:], word)
			if i < 0 {
				break
			}
			at += i + len(word)
			if colonAfter(b, at, true) {
				return true
			}
		}
	}
	// "? key" and "*alias :" start where a key may: at a line's start
	// (after indentation and "- " or "? " indicators) or after a flow
	// indicator; not in a comment or the middle of a scalar.
	for i, c := range b {
		if c != '?' && c != '*' || !keyStart(b, i) {
			continue
		}
		if c == '?' && (i+1 == len(b) || isBlank(b[i+1])) {
			return true
		}
		if c == '*' {
			// The alias's name runs to a blank or flow indicator (the
			// YAML library takes a colon into it): a key when a colon
			// follows, or ends it.
			j := i + 1
			for j < len(b) && !isBlank(b[j]) && !isFlowIndicator(b[j]) {
				j++
			}
			if j > i+1 && (b[j-1] == ':' || colonAfter(b, j, false)) {
				return true
			}
		}
	}
	return false
}

// keyStart reports whether a key may start at b[i]: only blanks and "-"
// or "?" indicators before it on its line, or a flow indicator.
func keyStart(b []byte, i int) bool {
	for k := i - 1; k >= 0; k-- {
		switch c := b[k]; {
		case c == '\n' || c == '\r' || c == '{' || c == '[' || c == ',':
			return true
		case c != ' ' && c != '\t' && c != '-' && c != '?':
			return false
		}
	}
	return true
}

// colonAfter reports whether b[i:] is (a closing quote when quote,) blanks
// on the line, then a colon.
func colonAfter(b []byte, i int, quote bool) bool {
	if quote && i < len(b) && (b[i] == '"' || b[i] == '\'') {
		i++
	}
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i < len(b) && b[i] == ':'
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isFlowIndicator(c byte) bool { return c == '{' || c == '}' || c == '[' || c == ']' || c == ',' }

func isNodeStart(c byte) bool {
	return isBlank(c) || isFlowIndicator(c) || c == '?' || c == '-' || c == ':'
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
func hasServicesKey(b []byte) bool {
	return bytes.HasPrefix(b, []byte("services:")) || bytes.Contains(b, []byte("\nservices:"))
}

// references parses files on every core and returns the files each
// includes or extends (itself excepted), keeping them parsed in c when
// keep.
func references(c *fileCache, files []string, keep bool) [][]string {
	out := make([][]string, len(files))
	parallel.ForEach(context.Background(), len(files), 0, func(i int) {
		var f *yamlFile
		var err error
		if keep {
			f, err = c.get(files[i])
		} else {
			f, err = readFile(files[i], c.limit)
		}
		if err != nil {
			return
		}
		includes, extends := f.referenced()
		out[i] = includes
		for _, ext := range extends {
			if ext != f.path {
				out[i] = append(out[i], ext)
			}
		}
	})
	return out
}
