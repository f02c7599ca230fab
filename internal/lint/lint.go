// Package lint runs the rule catalogue over compose projects: it finds the
// projects named by paths, loads them in parallel and evaluates the rules.
// It is what `hyhome lint` and the benchmarks call; the CLI only adds flags
// and output.
package lint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/report"
)

// Options select what to lint.
type Options struct {
	// Paths are compose files (each its own project) or directories (walked
	// for projects). Empty with no Files means the default files in WorkDir.
	Paths []string
	// Files are -f files merged into one project, as docker compose merges them.
	Files []string
	// WorkDir is --project-directory.
	WorkDir     string
	ProjectName string
	Profiles    []string
	EnvFiles    []string
	Environ     []string
	// Validate sends every project through compose-go's full validation.
	Validate bool
	// MaxFileSize bounds each compose file (0: compose.DefaultMaxFileSize).
	MaxFileSize int64
	// Policy is the evaluation environment (ADRs, strictness, host memory).
	Policy policy.Env
}

// Result is what a lint run found.
type Result struct {
	Findings []policy.Finding
	Targets  []report.Target
	// Services counts the workloads judged. Projects themselves are not
	// kept, so that a large run holds only its findings in memory.
	Services int
	// Files are the distinct compose files that were read.
	Files []string
	// Errors are projects that could not be loaded, one each, in file order.
	Errors []LoadError
}

// LoadError is a project that could not be loaded.
type LoadError struct {
	// File is the project's first file (the directory when discovery
	// found none).
	File string
	// Named is true when the user named the project (a file argument, -f,
	// or the working directory's default files) rather than a directory
	// walk finding it: `hyhome lint` then keeps today's behaviour of
	// stopping at the error, while a walk lints every project that loads.
	Named bool
	Err   error
}

func (e LoadError) Error() string { return e.Err.Error() }
func (e LoadError) Unwrap() error { return e.Err }

// Input is the error as a report entry: the file and line it names, and
// the message without them.
func (e LoadError) Input() report.InputError {
	var pe *compose.ParseError
	if errors.As(e.Err, &pe) {
		return report.InputError{File: pe.File, Line: pe.Line, Column: pe.Column, Message: pe.Msg}
	}
	msg := e.Err.Error()
	file := e.File
	if rest, ok := strings.CutPrefix(msg, file+": "); ok {
		msg = rest
	}
	return report.InputError{File: file, Message: msg}
}

// projectFiles names a project that did not load: its files, absolute as
// a loaded project's are, or its directory when discovery found none.
func projectFiles(o compose.Options) []string {
	var out []string
	for _, f := range o.Files {
		if abs, err := filepath.Abs(f); err == nil {
			f = abs
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		dir := o.WorkDir
		if dir == "" {
			dir, _ = os.Getwd()
		}
		out = append(out, dir)
	}
	return out
}

func firstFile(fs []string) string {
	if len(fs) == 0 {
		return ""
	}
	return fs[0]
}

// Summary counts the result for reports.
func (r *Result) Summary() policy.Summary {
	s := policy.Summarize(r.Findings)
	s.Files = len(r.Files)
	s.Services = r.Services
	return s
}

// job is one compose project to load, kept small: a plan holds one per
// project for the whole run.
type job struct {
	// set and spec are a project a directory walk found:
	// set.Projects[spec].
	set  *compose.Set
	spec int
	// files are otherwise the -f files or the FILE argument (none:
	// discover in the working directory).
	files []string
}

func (j job) walked() bool { return j.set != nil }

// options are the job's load options on base (baseOptions).
func (j job) options(base compose.Options) compose.Options {
	if j.set != nil {
		return j.set.Options(j.set.Projects[j.spec], base)
	}
	base.Files = j.files
	return base
}

// Projects turns what opts name into one load option set per compose
// project, with lint's discovery: -f files merged into one project, each
// FILE argument a project of its own, each DIR walked for projects, and no
// argument the default files of the working directory. `hyhome fix` finds
// its projects through it too.
func Projects(opts Options) ([]compose.Options, error) {
	jobs, err := projects(opts)
	if err != nil {
		return nil, err
	}
	base := baseOptions(opts)
	out := make([]compose.Options, len(jobs))
	for i, j := range jobs {
		out[i] = j.options(base)
	}
	return out, nil
}

// baseOptions are the load options every project of opts shares.
func baseOptions(opts Options) compose.Options {
	return compose.Options{
		WorkDir:     opts.WorkDir,
		ProjectName: opts.ProjectName,
		Profiles:    opts.Profiles,
		EnvFiles:    opts.EnvFiles,
		Environ:     opts.Environ,
		Validate:    opts.Validate,
		MaxFileSize: opts.MaxFileSize,
	}
}

func projects(opts Options) ([]job, error) {
	var jobs []job
	switch {
	case len(opts.Files) > 0 && len(opts.Paths) > 0:
		return nil, errors.New("give compose files either with -f (merged into one project) or as arguments, not both")
	case len(opts.Files) > 0:
		jobs = append(jobs, job{files: opts.Files})
	case len(opts.Paths) == 0:
		jobs = append(jobs, job{}) // discover in the working directory
	default:
		for _, p := range opts.Paths {
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, errors.Unwrap(err))
			}
			if !fi.IsDir() {
				jobs = append(jobs, job{files: []string{p}})
				continue
			}
			set, err := compose.FindProjects(p, compose.WithMaxFileSize(opts.MaxFileSize))
			if err != nil {
				return nil, fmt.Errorf("searching %s for compose files: %w", p, err)
			}
			if len(set.Projects) == 0 {
				return nil, fmt.Errorf("%s: %w (no compose.yaml, docker-compose.yml or YAML file with a top-level services: key)", p, compose.ErrNoComposeFile)
			}
			for i := range set.Projects {
				jobs = append(jobs, job{set: set, spec: i})
			}
		}
	}
	return jobs, nil
}

// Project is one project's outcome, as Stream hands it over.
type Project struct {
	// Files are the compose files the project read: its own, then those
	// each service comes from (absolute; a file may repeat). A project
	// that did not load has its own files, or its directory when
	// discovery found none.
	Files []string
	// Targets are the judged workloads, Services their number.
	Targets  []report.Target
	Services int
	// Findings are sorted as policy.Evaluate sorts them.
	Findings []policy.Finding
	// Err is set when the project did not load; then nothing else is.
	Err *LoadError
	// Data is the caller's: what its prepare function left there.
	Data any
}

// Window is how many projects Stream holds at most, per worker: the ones
// being judged and the ones judged ahead of the project emit waits for.
const Window = 4

// Plan is a lint run's projects, found and put in report order, before
// any is loaded.
type Plan struct {
	opts Options
	jobs []job
}

// NewPlan finds the projects opts name (Projects' discovery) and orders
// them as the report lists them: by first file. A walk finds projects
// directory by directory, which is not quite the order of their paths
// ("a/b/x" comes before "a-c/y"), and arguments come in the user's order.
// It returns an error when nothing can be attempted (a path that does not
// exist).
func NewPlan(opts Options) (*Plan, error) {
	jobs, err := projects(opts)
	if err != nil {
		return nil, err
	}
	base := baseOptions(opts)
	keys := make([]string, len(jobs))
	for i := range jobs {
		keys[i] = firstFile(projectFiles(jobs[i].options(base)))
	}
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
	sorted := make([]job, len(jobs))
	for i, k := range order {
		sorted[i] = jobs[k]
	}
	return &Plan{opts: opts, jobs: sorted}, nil
}

// Len is the number of projects.
func (pl *Plan) Len() int { return len(pl.jobs) }

// Named reports whether the user named a project (a FILE argument, -f
// files, the working directory's default files) rather than a directory
// walk finding it: one that fails to load stops `hyhome lint` unless
// --keep-going (LoadError.Named).
func (pl *Plan) Named() bool {
	for _, j := range pl.jobs {
		if !j.walked() {
			return true
		}
	}
	return false
}

// Stream is Plan.Stream on a new plan for opts.
func Stream(ctx context.Context, opts Options, prepare func(*Project), emit func(*Project) error) error {
	pl, err := NewPlan(opts)
	if err != nil {
		return err
	}
	return pl.Stream(ctx, prepare, emit)
}

// Stream lints the plan's projects and hands each to emit, one at a time
// and in report order, as soon as it and every project before it are
// judged. Projects are loaded and judged on GOMAXPROCS workers, handed out
// in report order, and at most Window per worker are held at once, so
// memory does not grow with the number of projects: a project is released
// once emit returns. prepare, when not nil, runs on the worker right after
// a project is judged (concurrently with other projects): the place for
// per-project work such as rendering, so that emit only writes.
//
// Stream returns when every project has been emitted, ctx ends, or emit
// returns an error (it then stops handing out projects), with that error;
// per-project load failures are Project.Err.
func (pl *Plan) Stream(ctx context.Context, prepare func(*Project), emit func(*Project) error) error {
	opts, jobs := pl.opts, pl.jobs
	env := opts.Policy
	if env.Registry == nil {
		env.Registry = policy.Default
	}
	base := baseOptions(opts)
	judge := func(j job) *Project {
		load := j.options(base)
		res, err := compose.Load(ctx, load)
		if err != nil {
			files := projectFiles(load)
			return &Project{Files: files, Err: &LoadError{File: firstFile(files), Named: !j.walked(), Err: err}}
		}
		e := env
		p := &Project{Findings: policy.Evaluate(res.Project, &e), Services: len(res.Project.Workloads)}
		p.Files = append(p.Files, res.Project.Files...)
		p.Targets = make([]report.Target, 0, len(res.Project.Workloads))
		for _, w := range res.Project.Workloads {
			p.Files = append(p.Files, w.Files...)
			p.Targets = append(p.Targets, report.Target{Service: w.Name, Source: w.Pos.File, Kind: string(w.Kind)})
		}
		return p
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Cancelled first: a worker waiting for a token then gives up.
	defer func() { cancel(); wg.Wait() }()
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	window := Window * workers
	// A worker takes a token before it takes the next project and emit
	// gives it back once that project is written: at most window projects
	// are between the two, so project i goes to slot i%window, which the
	// project window places before it has left.
	tokens := make(chan struct{}, window)
	slots := make([]chan *Project, window)
	for i := range slots {
		slots[i] = make(chan *Project, 1)
	}
	var next atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case tokens <- struct{}{}:
				case <-ctx.Done():
					return
				}
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				p := judge(jobs[i])
				if prepare != nil && ctx.Err() == nil {
					prepare(p)
				}
				slots[i%window] <- p
			}
		}()
	}
	for i := range jobs {
		var p *Project
		select {
		case p = <-slots[i%window]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(p); err != nil {
			return err
		}
		<-tokens
	}
	return nil
}

// Run lints what opts name and returns everything it found at once: Stream
// with every project kept. It returns an error only when nothing could be
// attempted (e.g. a path that does not exist); per-project load failures
// are in Result.Errors.
func Run(ctx context.Context, opts Options) (*Result, error) {
	r := &Result{}
	files := map[string]bool{}
	err := Stream(ctx, opts, nil, func(p *Project) error {
		if p.Err != nil {
			r.Errors = append(r.Errors, *p.Err)
			return nil
		}
		r.Findings = append(r.Findings, p.Findings...)
		r.Targets = append(r.Targets, p.Targets...)
		r.Services += p.Services
		for _, f := range p.Files {
			files[f] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for f := range files {
		r.Files = append(r.Files, f)
	}
	sort.Strings(r.Files)
	return r, nil
}
