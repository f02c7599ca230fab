// Package adr finds and reads Architecture Decision Records, the only thing
// that can justify an exemption from a rule (NFR-SEC-01: "unless explicitly
// justified in an ADR"). An ADR is a Markdown file named NNNN-title.md whose
// front matter says, in fields a program reads, its status, the rules it
// exempts and the workloads it exempts them for (see parse.go).
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
	Date   string // YYYY-MM-DD, when given
	// Exempts are the rules the decision exempts, in the order written.
	Exempts []Rule
	// AppliesTo are the workloads the exemptions hold for.
	AppliesTo []Selector
}

// Accepted reports whether the decision is in force.
func (r *Record) Accepted() bool { return strings.EqualFold(r.Status, "accepted") }

// ExemptsRule reports whether the ADR's exempts field names the rule.
func (r *Record) ExemptsRule(id string) bool {
	for _, e := range r.Exempts {
		if e.ID == id {
			return true
		}
	}
	return false
}

// ExemptIDs returns the exempted rule IDs in the order written.
func (r *Record) ExemptIDs() []string {
	ids := make([]string, len(r.Exempts))
	for i, e := range r.Exempts {
		ids[i] = e.ID
	}
	return ids
}

// Validate checks the exempted rule IDs against a catalogue: an ID the
// catalogue does not know is an error at its line (a typo would otherwise
// exempt nothing, silently).
func (r *Record) Validate(known func(id string) bool) error {
	for _, e := range r.Exempts {
		if !known(e.ID) {
			return &Error{r.Path, e.Line, fmt.Sprintf("exempts names unknown rule %q (`hyhome rules` lists them)", e.ID)}
		}
	}
	return nil
}

// Covering returns the first applies_to entry that matches the subject.
func (r *Record) Covering(s Subject) *Selector {
	for i := range r.AppliesTo {
		if r.AppliesTo[i].Matches(s) {
			return &r.AppliesTo[i]
		}
	}
	return nil
}

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

var fileName = regexp.MustCompile(`^(?i:adr[-_]?)?([0-9]{1,6})[-_].*\.md$`)

// Parse reads an ADR from its text; its number comes from the file name.
// Every problem is an *Error naming the file and line.
func Parse(path string, text []byte) (*Record, error) {
	m := fileName.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return nil, &Error{path, 1, "ADR file names must look like NNNN-title.md"}
	}
	n, _ := strconv.Atoi(m[1])
	return parse(path, n, text)
}

// Resolver finds ADRs. With explicit directories it looks only there;
// otherwise it looks in docs/adr next to the file being judged, then in
// docs/adr at the root of the repository holding it.
type Resolver struct {
	// Dirs, when set, are the only directories searched (--adr-dir).
	Dirs []string

	mu    sync.Mutex
	cache map[string]*index   // dir → what it holds
	dirs  map[string][]string // directory of a judged file → search dirs
}

// index is one directory's ADRs by number.
type index struct {
	recs map[int]*Record
	// bad holds, by number, a file that could not be read or parsed, or
	// the clash of two files with one number: citing that number is an
	// error, citing another is not.
	bad map[int]error
	// err is set when the directory itself could not be read.
	err error
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

// Lookup finds the ADR named by ref for a workload defined in near. A file
// with that number that cannot be read or parsed is an error, not a miss:
// the first directory holding the number decides.
func (r *Resolver) Lookup(ref, near string) (*Record, error) {
	n, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	dirs := r.SearchDirs(near)
	for _, d := range dirs {
		idx := r.load(d)
		switch {
		case idx.err != nil:
			return nil, idx.err
		case idx.bad[n] != nil:
			return nil, idx.bad[n]
		case idx.recs[n] != nil:
			return idx.recs[n], nil
		}
	}
	return nil, fmt.Errorf("%w: no %s file (NNNN-*.md) in %s", ErrNotFound, FormatID(n), strings.Join(dirs, ", "))
}

func (r *Resolver) load(dir string) *index {
	r.mu.Lock()
	defer r.mu.Unlock()
	if idx, ok := r.cache[dir]; ok {
		return idx
	}
	if r.cache == nil {
		r.cache = map[string]*index{}
	}
	idx := &index{recs: map[int]*Record{}, bad: map[int]error{}}
	r.cache[dir] = idx
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		idx.err = fmt.Errorf("reading ADR directory %s: %w", dir, err)
		return idx
	}
	paths := map[int]string{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		p := filepath.Join(dir, e.Name())
		if prev, dup := paths[n]; dup {
			idx.bad[n] = fmt.Errorf("two ADR files share number %04d: %s and %s", n, prev, p)
			delete(idx.recs, n)
			continue
		}
		paths[n] = p
		b, err := safefile.ReadFile(p, maxADRSize)
		if err != nil {
			idx.bad[n] = fmt.Errorf("reading ADR %s: %w", p, err)
			continue
		}
		rec, err := parse(p, n, b)
		if err != nil {
			idx.bad[n] = err
			continue
		}
		idx.recs[n] = rec
	}
	return idx
}
