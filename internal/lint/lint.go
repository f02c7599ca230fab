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
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/parallel"
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

// job is one compose project to load.
type job struct {
	load compose.Options
	// walked is true for projects a directory walk found.
	walked bool
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
	out := make([]compose.Options, len(jobs))
	for i, j := range jobs {
		out[i] = j.load
	}
	return out, nil
}

func projects(opts Options) ([]job, error) {
	base := compose.Options{
		WorkDir:     opts.WorkDir,
		ProjectName: opts.ProjectName,
		Profiles:    opts.Profiles,
		EnvFiles:    opts.EnvFiles,
		Environ:     opts.Environ,
		Validate:    opts.Validate,
		MaxFileSize: opts.MaxFileSize,
	}
	var jobs []job
	switch {
	case len(opts.Files) > 0 && len(opts.Paths) > 0:
		return nil, errors.New("give compose files either with -f (merged into one project) or as arguments, not both")
	case len(opts.Files) > 0:
		o := base
		o.Files = opts.Files
		jobs = append(jobs, job{load: o})
	case len(opts.Paths) == 0:
		jobs = append(jobs, job{load: base}) // discover in the working directory
	default:
		for _, p := range opts.Paths {
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, errors.Unwrap(err))
			}
			if !fi.IsDir() {
				o := base
				o.Files = []string{p}
				jobs = append(jobs, job{load: o})
				continue
			}
			set, err := compose.FindProjects(p, compose.WithMaxFileSize(opts.MaxFileSize))
			if err != nil {
				return nil, fmt.Errorf("searching %s for compose files: %w", p, err)
			}
			if len(set.Projects) == 0 {
				return nil, fmt.Errorf("%s: %w (no compose.yaml, docker-compose.yml or YAML file with a top-level services: key)", p, compose.ErrNoComposeFile)
			}
			for _, ps := range set.Projects {
				jobs = append(jobs, job{load: set.Options(ps, base), walked: true})
			}
		}
	}
	return jobs, nil
}

// Run lints what opts name. It returns an error only when nothing could be
// attempted (e.g. a path that does not exist); per-project load failures
// are in Result.Errors.
func Run(ctx context.Context, opts Options) (*Result, error) {
	jobs, err := projects(opts)
	if err != nil {
		return nil, err
	}

	type outcome struct {
		files    []string
		targets  []report.Target
		services int
		findings []policy.Finding
		err      error
	}
	outs := make([]outcome, len(jobs))
	env := opts.Policy
	if env.Registry == nil {
		env.Registry = policy.Default
	}
	parallel.ForEach(ctx, len(jobs), 0, func(i int) {
		res, err := compose.Load(ctx, jobs[i].load)
		if err != nil {
			outs[i].err = err
			outs[i].files = projectFiles(jobs[i].load)
			return
		}
		e := env
		o := &outs[i]
		o.findings = policy.Evaluate(res.Project, &e)
		o.services = len(res.Project.Workloads)
		o.files = append(o.files, res.Project.Files...)
		for _, w := range res.Project.Workloads {
			o.files = append(o.files, w.Files...)
			o.targets = append(o.targets, report.Target{Service: w.Name, Source: w.Pos.File, Kind: string(w.Kind)})
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Each project's findings are sorted already, and a file belongs to one
	// project only (included files are parts of the project including
	// them), so concatenating projects in file order keeps the report
	// grouped by file without sorting every finding again.
	order := make([]int, 0, len(outs))
	for i := range outs {
		order = append(order, i)
	}
	sort.SliceStable(order, func(a, b int) bool { return firstFile(outs[order[a]].files) < firstFile(outs[order[b]].files) })
	r := &Result{}
	files := map[string]bool{}
	total := 0
	for _, o := range outs {
		total += len(o.findings)
	}
	r.Findings = make([]policy.Finding, 0, total)
	for _, i := range order {
		o := &outs[i]
		if o.err != nil {
			r.Errors = append(r.Errors, LoadError{File: firstFile(o.files), Named: !jobs[i].walked, Err: o.err})
			continue
		}
		r.Findings = append(r.Findings, o.findings...)
		o.findings = nil
		r.Targets = append(r.Targets, o.targets...)
		r.Services += o.services
		for _, f := range o.files {
			files[f] = true
		}
	}
	for f := range files {
		r.Files = append(r.Files, f)
	}
	sort.Strings(r.Files)
	return r, nil
}
