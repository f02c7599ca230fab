// Package adr finds and reads Architecture Decision Records, the only thing
// that can justify an exemption from a rule (NFR-SEC-01: "unless explicitly
// justified in an ADR"). An ADR is a Markdown file named NNNN-title.md; it
// counts when its status is Accepted and it names the rule it exempts.
//
// It reads files and answers questions about them; it must not decide which
// findings are exempted (package policy does).
package adr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/hy-home/hyhome/internal/safefile"
)

// Record is one ADR file.
type Record struct {
	ID     string // canonical, e.g. ADR-0003
	Number int
	Path   string
	Title  string
	Status string // as written, e.g. "Accepted", "Proposed", "Superseded by ADR-0007"
	text   string
	lower  string

	mu    sync.Mutex
	names map[string]bool // rule ID → named, for every ID asked so far
}

// Accepted reports whether the decision is in force.
func (r *Record) Accepted() bool {
	s := strings.ToLower(strings.TrimSpace(r.Status))
	return s == "accepted" || strings.HasPrefix(s, "accepted ") || strings.HasPrefix(s, "accepted,") || strings.HasPrefix(s, "accepted (")
}

// Names reports whether the ADR mentions the rule ID as a whole word, so
// that "cap-add" is not found inside "cap-add-extra".
func (r *Record) Names(ruleID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if named, ok := r.names[ruleID]; ok {
		return named
	}
	id := strings.ToLower(ruleID)
	named := false
	for i := 0; !named && id != ""; {
		j := strings.Index(r.lower[i:], id)
		if j < 0 {
			break
		}
		start, end := i+j, i+j+len(id)
		named = (start == 0 || !wordByte(r.lower[start-1])) && (end == len(r.lower) || !wordByte(r.lower[end]))
		i = start + 1
	}
	if r.names == nil {
		r.names = map[string]bool{}
	}
	r.names[ruleID] = named
	return named
}

// wordByte reports whether c can be part of a rule ID.
func wordByte(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' }

// maxADRSize bounds an ADR file; decision records are prose, not data.
const maxADRSize = 1 << 20

// ErrNotFound is returned when no ADR file matches a reference.
var ErrNotFound = errors.New("ADR not found")

var refPattern = regexp.MustCompile(`(?i)^(?:adr[-_ ]?)?0*([0-9]{1,6})$`)

// ParseRef turns "ADR-0003", "adr-3", "0003" or "3" into its number.
func ParseRef(ref string) (int, error) {
	m := refPattern.FindStringSubmatch(strings.TrimSpace(ref))
	if m == nil {
		return 0, fmt.Errorf("invalid ADR reference %q (want ADR-NNNN)", ref)
	}
	n, _ := strconv.Atoi(m[1])
	return n, nil
}

// FormatID renders an ADR number as ADR-NNNN.
func FormatID(n int) string { return fmt.Sprintf("ADR-%04d", n) }

var (
	fileName  = regexp.MustCompile(`^(?i:adr[-_]?)?([0-9]{1,6})[-_].*\.md$`)
	statusKV  = regexp.MustCompile(`(?im)^[\s>*_-]*status[\s*_]*:[\s*_]*(.+?)[\s*_]*$`)
	statusHdr = regexp.MustCompile(`(?im)^#{1,6}\s*status\s*$`)
	titleLine = regexp.MustCompile(`(?m)^#\s+(.+)$`)
)

// Parse reads an ADR from its text.
func Parse(path string, text []byte) (*Record, error) {
	base := filepath.Base(path)
	m := fileName.FindStringSubmatch(base)
	if m == nil {
		return nil, fmt.Errorf("%s: ADR file names must look like NNNN-title.md", path)
	}
	n, _ := strconv.Atoi(m[1])
	r := &Record{ID: FormatID(n), Number: n, Path: path, text: string(text), lower: strings.ToLower(string(text))}
	if t := titleLine.FindStringSubmatch(r.text); t != nil {
		r.Title = strings.TrimSpace(t[1])
	}
	if s := statusKV.FindStringSubmatch(r.text); s != nil {
		r.Status = strings.TrimSpace(s[1])
	} else if loc := statusHdr.FindStringIndex(r.text); loc != nil {
		// "## Status" followed by the status on the next non-empty line.
		for _, line := range strings.Split(r.text[loc[1]:], "\n") {
			if line = strings.Trim(strings.TrimSpace(line), "*_"); line != "" {
				r.Status = line
				break
			}
		}
	}
	return r, nil
}

// Resolver finds ADRs. With explicit directories it looks only there;
// otherwise it looks in docs/adr next to the file being judged, then in
// docs/adr at the root of the repository holding it.
type Resolver struct {
	// Dirs, when set, are the only directories searched (--adr-dir).
	Dirs []string

	mu    sync.Mutex
	cache map[string]map[int]*Record // dir → number → record
	errs  map[string]error
	dirs  map[string][]string // directory of a judged file → search dirs
}

// NewResolver returns a resolver searching dirs, or the default locations
// when dirs is empty.
func NewResolver(dirs ...string) *Resolver {
	var clean []string
	for _, d := range dirs {
		if d != "" {
			clean = append(clean, d)
		}
	}
	return &Resolver{Dirs: clean}
}

// SearchDirs returns the directories consulted for a file at near (a compose
// file, or "" for runtime sources, which use the working directory).
func (r *Resolver) SearchDirs(near string) []string {
	if len(r.Dirs) > 0 {
		return r.Dirs
	}
	base := "."
	if near != "" {
		base = filepath.Dir(near)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.dirs[base]; ok {
		return d
	}
	abs, err := filepath.Abs(base)
	if err != nil {
		abs = base
	}
	dirs := []string{filepath.Join(abs, "docs", "adr")}
	if root := repoRoot(abs); root != "" && root != abs {
		dirs = append(dirs, filepath.Join(root, "docs", "adr"))
	}
	if r.dirs == nil {
		r.dirs = map[string][]string{}
	}
	r.dirs[base] = dirs
	return dirs
}

// repoRoot walks up from dir to the nearest directory holding .git.
func repoRoot(dir string) string {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

// Lookup finds the ADR named by ref for a workload defined in near.
func (r *Resolver) Lookup(ref, near string) (*Record, error) {
	n, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	dirs := r.SearchDirs(near)
	for _, d := range dirs {
		recs, err := r.load(d)
		if err != nil {
			return nil, err
		}
		if rec, ok := recs[n]; ok {
			return rec, nil
		}
	}
	return nil, fmt.Errorf("%w: no %s file (NNNN-*.md) in %s", ErrNotFound, FormatID(n), strings.Join(dirs, ", "))
}

func (r *Resolver) load(dir string) (map[int]*Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if recs, ok := r.cache[dir]; ok {
		return recs, r.errs[dir]
	}
	if r.cache == nil {
		r.cache, r.errs = map[string]map[int]*Record{}, map[string]error{}
	}
	recs := map[int]*Record{}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		err = fmt.Errorf("reading ADR directory %s: %w", dir, err)
		r.cache[dir], r.errs[dir] = recs, err
		return recs, err
	}
	for _, e := range entries {
		if e.IsDir() || !fileName.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := safefile.ReadFile(p, maxADRSize)
		if err != nil {
			r.errs[dir] = fmt.Errorf("reading ADR %s: %w", p, err)
			continue
		}
		rec, err := Parse(p, b)
		if err != nil {
			continue
		}
		if prev, dup := recs[rec.Number]; dup {
			r.errs[dir] = fmt.Errorf("two ADR files share number %04d: %s and %s", rec.Number, prev.Path, p)
			continue
		}
		recs[rec.Number] = rec
	}
	r.cache[dir] = recs
	return recs, r.errs[dir]
}
