// Package fix rewrites compose files to the SPEC-SYS-01 baseline. It asks
// lint what needs fixing (the rule catalogue's own findings, exemptions
// applied), locates each finding's node in the file that defines the value
// (an anchor, a base file, an included file: never a copy), and applies
// the edit as a splice of the original bytes, so comments, key order,
// quoting, blank lines, anchors and line endings outside the edited nodes
// stay byte for byte. Every edited file is parsed again and compared with
// the original node by node: anything but the intended change drops the
// file's edits.
//
// It must not judge anything itself (package policy does) nor write files
// (the CLI writes what Plan returns).
package fix

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/human"
	"github.com/hy-home/hyhome/internal/lint"
	"github.com/hy-home/hyhome/internal/parallel"
	"github.com/hy-home/hyhome/internal/policy"
)

// Edit is one change fix makes, or would make: applied, or a suggestion
// with the reason it was not applied.
type Edit struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Project string `json:"project,omitempty"`
	Service string `json:"service,omitempty"`
	Rule    string `json:"rule"`
	// Safe edits cannot take away anything a service uses; the others
	// need --unsafe.
	Safe    bool   `json:"safe"`
	Applied bool   `json:"applied"`
	Before  string `json:"before,omitempty"`
	After   string `json:"after,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// File is a compose file fix changes.
type File struct {
	Path string
	Mode os.FileMode
	Old  []byte
	New  []byte
	// Redact are secret values the edits move out of the file: a diff
	// must not show them.
	Redact []string
	Edits  []*Edit
	// resolved is the path written: a symbolic link's target.
	resolved string
}

// SecretFile is a credential moved out of a compose file; written with
// mode 0600.
type SecretFile struct {
	Path string
	// Exists is true when the file already holds the value.
	Exists bool
	value  string
	edit   *Edit
}

// Value is the secret, for the writer only.
func (s *SecretFile) Value() string { return s.value }

// Result is what fix would do.
type Result struct {
	// Files that change, in path order.
	Files []*File
	// Edits are every edit, applied or suggested, by file and line.
	Edits   []*Edit
	Secrets []*SecretFile
	// Manual counts findings of rules fix has no edit for, by rule.
	Manual map[string]int
	// Findings is the number of unexempted findings before fixing.
	Findings int
	// Services judged.
	Services int
	// Errors are projects that could not be loaded.
	Errors []error
	// reload are the projects of several files that edits touch: Apply
	// loads them again after writing.
	reload []compose.Options
}

// Applied counts applied edits by rule.
func (r *Result) Applied() map[string]int {
	m := map[string]int{}
	for _, e := range r.Edits {
		if e.Applied {
			m[e.Rule]++
		}
	}
	return m
}

// Suggested counts suggestions by rule.
func (r *Result) Suggested() map[string]int {
	m := map[string]int{}
	for _, e := range r.Edits {
		if !e.Applied {
			m[e.Rule]++
		}
	}
	return m
}

// sourceCache parses each file once for all projects, so that changes
// from several projects to a shared file meet on the same nodes.
type sourceCache struct {
	mu    sync.Mutex
	files map[string]*cachedSource
	// claimed are the secret files planned so far: two variables never
	// share one.
	claimed map[string]bool
}

// claim reserves a secret file path; false when another edit has it.
func (c *sourceCache) claim(path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.claimed[path] {
		return false
	}
	c.claimed[path] = true
	return true
}

type cachedSource struct {
	once sync.Once
	src  *source
	err  error
}

// offer hands the cache a file compose parsed already.
func (c *sourceCache) offer(p compose.Parsed) {
	c.mu.Lock()
	e, ok := c.files[p.Path]
	if !ok {
		e = &cachedSource{}
		c.files[p.Path] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		if src, ok := fromParsed(p); ok {
			e.src = src
			return
		}
		e.src, e.err = readSource(p.Path)
	})
}

func (c *sourceCache) get(path string) (*source, error) {
	c.mu.Lock()
	e, ok := c.files[path]
	if !ok {
		e = &cachedSource{}
		c.files[path] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.src, e.err = readSource(path) })
	return e.src, e.err
}

// Plan computes every edit for the projects opts name, without writing.
func Plan(ctx context.Context, opts Options) (*Result, error) {
	jobs, err := lint.Projects(opts.Lint)
	if err != nil {
		return nil, err
	}
	env := opts.Lint.Policy
	if env.Registry == nil {
		env.Registry = policy.Default
	}
	cache := &sourceCache{files: map[string]*cachedSource{}, claimed: map[string]bool{}}
	type outcome struct {
		p        *planner
		findings int
		services int
		first    string
		job      compose.Options
		files    map[string]bool
		err      error
	}
	outs := make([]outcome, len(jobs))
	parallel.ForEach(ctx, len(jobs), 0, func(i int) {
		res, err := compose.Load(ctx, jobs[i])
		if err != nil {
			outs[i].err = err
			return
		}
		for _, p := range res.Parsed {
			cache.offer(p)
		}
		e := env
		findings := policy.Evaluate(res.Project, &e)
		p := &planner{opts: &opts, files: cache, res: res, manual: map[string]int{}, anchorPlanned: map[*source]bool{}}
		byService := map[string][]policy.Finding{}
		n := 0
		for _, f := range findings {
			if f.Exempted {
				continue
			}
			n++
			byService[f.Service] = append(byService[f.Service], f)
		}
		for _, w := range res.Project.Workloads {
			if fs := byService[w.Name]; len(fs) > 0 {
				p.workload(w, fs)
			}
		}
		files := map[string]bool{}
		for _, f := range res.Files {
			files[f] = true
		}
		for _, w := range res.Project.Workloads {
			for _, f := range w.Files {
				files[f] = true
			}
		}
		outs[i] = outcome{p: p, findings: n, services: len(res.Project.Workloads), first: res.Files[0], job: jobs[i], files: files}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(outs, func(a, b int) bool { return outs[a].first < outs[b].first })

	r := &Result{Manual: map[string]int{}}
	var changes []*change
	for _, o := range outs {
		if o.err != nil {
			r.Errors = append(r.Errors, o.err)
			continue
		}
		r.Findings += o.findings
		r.Services += o.services
		r.Edits = append(r.Edits, o.p.edits...)
		r.Secrets = append(r.Secrets, o.p.secrets...)
		changes = append(changes, o.p.changes...)
		for k, v := range o.p.manual {
			r.Manual[k] += v
		}
	}

	bySrc := map[*source][]*change{}
	var srcs []*source
	for _, c := range changes {
		if _, ok := bySrc[c.src]; !ok {
			srcs = append(srcs, c.src)
		}
		bySrc[c.src] = append(bySrc[c.src], c)
	}
	sort.Slice(srcs, func(a, b int) bool { return srcs[a].path < srcs[b].path })
	files := make([]*File, len(srcs))
	parallel.ForEach(ctx, len(srcs), 0, func(i int) {
		files[i] = renderFileSafe(srcs[i], bySrc[srcs[i]])
	})
	changed := map[string]bool{}
	for _, f := range files {
		if f != nil {
			r.Files = append(r.Files, f)
			changed[f.Path] = true
		}
	}
	for _, o := range outs {
		if o.err != nil || len(o.files) < 2 {
			continue
		}
		for f := range o.files {
			if changed[f] {
				r.reload = append(r.reload, o.job)
				break
			}
		}
	}
	// A secret whose edit was dropped is not written.
	kept := r.Secrets[:0]
	for _, s := range r.Secrets {
		if s.edit.Applied {
			kept = append(kept, s)
		}
	}
	r.Secrets = kept
	sort.SliceStable(r.Edits, func(a, b int) bool {
		x, y := r.Edits[a], r.Edits[b]
		if x.File != y.File {
			return x.File < y.File
		}
		return x.Line < y.Line
	})
	return r, nil
}

// redact hides secret values in text.
func redact(text string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "<redacted>")
		}
	}
	return text
}

// Summary is a one-line account of a result.
func (r *Result) Summary() string {
	applied, suggested := 0, 0
	for _, e := range r.Edits {
		if e.Applied {
			applied++
		} else {
			suggested++
		}
	}
	manual := 0
	for _, n := range r.Manual {
		manual += n
	}
	return fmt.Sprintf("%s changed, %s, %s, %s with no automatic fix", human.Plural(len(r.Files), "file"), human.Plural(applied, "edit"), human.Plural(suggested, "suggestion"), human.Plural(manual, "finding"))
}
