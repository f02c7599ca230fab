package cli

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/atomicfile"
	"github.com/hy-home/hyhome/internal/lint"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/spool"
	"github.com/hy-home/hyhome/internal/sysinfo"
	"github.com/hy-home/hyhome/internal/workload"
)

// reportFlags are the output and policy flags lint and audit share.
type reportFlags struct {
	format     string
	output     string
	failOn     string
	strict     bool
	adrDirs    []string
	only       []string
	disable    []string
	hostMemory string
}

func (f *reportFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "text", "output format: "+strings.Join(report.FormatNames(), ", "))
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	fl.StringVar(&f.failOn, "fail-on", "error", "exit 1 when a finding at or above this severity remains: info, warning, error")
	fl.BoolVar(&f.strict, "strict", false, "ignore every exemption (hy-home.adr / hy-home.exempt labels)")
	fl.StringArrayVar(&f.adrDirs, "adr-dir", nil, "directory of ADRs that exemptions cite (default: docs/adr next to the compose file, then at the repository root)")
	fl.StringSliceVar(&f.only, "rule", nil, "evaluate only these rule IDs (repeatable or comma-separated)")
	fl.StringSliceVar(&f.disable, "disable", nil, "do not evaluate these rule IDs")
}

// policyEnv turns the flags into the evaluation environment.
func (f *reportFlags) policyEnv() (policy.Env, policy.Severity, error) {
	env := policy.Env{Registry: policy.Default, Strict: f.strict, ADRs: adr.NewResolver(f.adrDirs...)}
	sev, err := policy.ParseSeverity(f.failOn)
	if err != nil {
		return env, 0, fmt.Errorf("--fail-on: %w", err)
	}
	if _, ok := report.Formats[f.format]; !ok {
		return env, 0, fmt.Errorf("--format: unknown format %q (want one of %s)", f.format, strings.Join(report.FormatNames(), ", "))
	}
	toSet := func(flag string, ids []string) (map[string]bool, error) {
		if len(ids) == 0 {
			return nil, nil
		}
		m := map[string]bool{}
		for _, id := range ids {
			if policy.Default.Get(id) == nil {
				return nil, fmt.Errorf("%s: unknown rule %q (see `hyhome rules`)", flag, id)
			}
			m[id] = true
		}
		return m, nil
	}
	if env.Only, err = toSet("--rule", f.only); err != nil {
		return env, 0, err
	}
	if env.Disabled, err = toSet("--disable", f.disable); err != nil {
		return env, 0, err
	}
	return env, sev, nil
}

// write renders the report to -o or stdout. A report for -o goes to a
// temporary file renamed into place, so a failure never leaves a partial
// report behind; stdout is written only once every input has loaded.
func (f *reportFlags) write(a *app, r *report.Report) error {
	opts := report.Options{}
	if wd, err := os.Getwd(); err == nil {
		opts.BaseDir = wd
	}
	if f.output == "" {
		opts.Color = isTerminal(a.stdout) && os.Getenv("NO_COLOR") == ""
		if err := report.Write(a.stdout, f.format, r, opts); err != nil {
			return fail(ExitError, fmt.Errorf("writing %s report: %w", f.format, err))
		}
		return nil
	}
	if err := atomicfile.Write(f.output, 0o644, func(w io.Writer) error { return report.Write(w, f.format, r, opts) }); err != nil {
		return fail(ExitError, fmt.Errorf("%s report: %w", f.format, err))
	}
	return nil
}

// tuneGC trades memory a run has for time: a large corpus allocates
// short-lived YAML trees quickly, and the default collector spends a third
// of the run on them. The heap is let grow to five times what is live
// (GOGC 400) before a collection. A soft memory limit (192 MiB) bounds
// the peak: past it the collector works harder rather than the heap
// growing. GOGC and GOMEMLIMIT in the environment still win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(192 << 20)
	}
}

// largePlan is the number of projects from which a lint run collects at
// three times what is live (GOGC 200) rather than five: a streamed run
// holds the projects in flight and, per project, its place in the plan and
// the names of its files (a few hundred bytes), so its heap grows slowly
// with the number of projects, and five times that passes 130 MiB of RSS
// at 50,000 files (SARIF more: its artifacts), against 90 MiB
// (bench/lint-scale.sh). Below, the collector's work per cycle is small
// either way and GOGC 400 keeps it off a short run's start-up.
const largePlan = 10000

// tuneGCForPlan applies largePlan once the plan is known.
func tuneGCForPlan(projects int) {
	if projects > largePlan && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// relPath shows a path under the working directory relative to it.
func relPath(p string) string {
	wd, err := os.Getwd()
	if err != nil || p == "" {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// relativize shows paths under wd (the working directory) relative to it,
// as relPath does.
func relativize(wd string, fs []policy.Finding, targets []report.Target) {
	rel := func(p string) string {
		if p == "" {
			return p
		}
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	prefix := wd + string(filepath.Separator)
	for i := range fs {
		fs[i].File = rel(fs[i].File)
		fs[i].ServicePos.File = rel(fs[i].ServicePos.File)
		fs[i].Source = strings.TrimPrefix(fs[i].Source, prefix) // "file:line" of a compose service
	}
	for i := range targets {
		targets[i].Source = rel(targets[i].Source)
	}
}

// errNamedFailed stops writing a report: a project the user named did not
// load, and the run ends with the errors alone.
var errNamedFailed = errors.New("a named project did not load")

// lintRun is what a streamed lint run has seen so far: counts, and per
// file only a fingerprint, and per project that did not load its report
// entry.
type lintRun struct {
	summary policy.Summary
	files   fileSet
	errs    []loadError
	failing bool
	named   bool // a project the user named did not load
}

// loadError is a project that did not load, as the report and stderr
// show it.
type loadError struct {
	input report.InputError
	// named is the stderr line of a run that a named project stops
	// (kept only when one may).
	named string
}

// fileSet counts distinct file names without keeping them: a 128-bit
// fingerprint each (two 64-bit hashes with random seeds; two names
// sharing one is a chance of about n²/2¹²⁹, nil for any real run).
type fileSet struct {
	seeds [2]maphash.Seed
	seen  map[[2]uint64]struct{}
}

func newFileSet() fileSet {
	return fileSet{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, seen: map[[2]uint64]struct{}{}}
}

func (s fileSet) add(name string) {
	s.seen[[2]uint64{maphash.String(s.seeds[0], name), maphash.String(s.seeds[1], name)}] = struct{}{}
}

func (s fileSet) len() int { return len(s.seen) }

// streamLint lints the plan's projects and writes the report as they are
// judged, in report order: each project's findings are rendered on the
// worker that judged it (relative paths, the format's encoding) and
// written once every project before it is, then released, so memory does
// not grow with the number of files. The report is the one the whole
// run would make at once, byte for byte.
//
// A project the user named that fails to load stops the run as it always
// has: one error line per error on stderr and nothing on stdout (nor in
// -o). Such a run (named projects, no --keep-going) writes its report to
// a spool first and copies it out at the end; a directory walk writes
// straight through.
func (f *reportFlags) streamLint(a *app, plan *lint.Plan, keepGoing bool, failOn policy.Severity) error {
	opts := report.Options{}
	wd, wdErr := os.Getwd()
	if wdErr == nil {
		opts.BaseDir = wd
	}
	if f.output == "" {
		opts.Color = isTerminal(a.stdout) && os.Getenv("NO_COLOR") == ""
	}
	hold := plan.Named() && !keepGoing
	run := &lintRun{files: newFileSet()}

	render := func(w io.Writer) error {
		head := &report.Report{Version: Version, Command: "lint"}
		st, err := report.NewStream(w, f.format, head, opts)
		if err != nil {
			return err
		}
		defer st.Close()
		prepare := func(p *lint.Project) {
			if p.Err != nil {
				return
			}
			if wdErr == nil {
				relativize(wd, p.Findings, p.Targets)
			}
			part := &report.Part{Findings: p.Findings, Targets: p.Targets}
			st.Prepare(part)
			p.Data = part
		}
		emit := func(p *lint.Project) error {
			if p.Err != nil {
				e := loadError{input: p.Err.Input()}
				e.input.File = relPath(e.input.File)
				if hold {
					e.named = "hyhome: " + oneLine(p.Err.Error())
				}
				run.errs = append(run.errs, e)
				run.named = run.named || p.Err.Named
				return nil
			}
			s := policy.Summarize(p.Findings)
			run.summary.Errors += s.Errors
			run.summary.Warnings += s.Warnings
			run.summary.Infos += s.Infos
			run.summary.Exempted += s.Exempted
			run.summary.Services += p.Services
			for _, file := range p.Files {
				run.files.add(file)
			}
			run.failing = run.failing || policy.Failing(p.Findings, failOn)
			if hold && run.named {
				return nil // the report will not be shown
			}
			return st.Add(p.Data.(*report.Part))
		}
		if err := plan.Stream(context.Background(), prepare, emit); err != nil {
			return err
		}
		if hold && run.named {
			return errNamedFailed
		}
		run.summary.Files = run.files.len()
		inputs := make([]report.InputError, 0, len(run.errs))
		for _, e := range run.errs {
			inputs = append(inputs, e.input)
		}
		return st.End(inputs, run.summary, nil)
	}

	var err error
	switch {
	case hold:
		sp := spool.New(0)
		defer sp.Close()
		if err = render(sp); err == nil {
			err = f.deliver(a, func(w io.Writer) error {
				_, err := sp.WriteTo(w)
				return err
			})
		}
	default:
		err = f.deliver(a, render)
	}
	if errors.Is(err, errNamedFailed) {
		// A project the user named failed: one error line, nothing on
		// stdout, as it always has been.
		for _, e := range run.errs {
			fmt.Fprintln(a.stderr, e.named)
		}
		return fail(ExitError, nil)
	}
	if err != nil {
		return err
	}
	// The text report on a terminal shows the errors; anything else (a
	// file, another format) also gets them on stderr, for CI logs.
	if len(run.errs) > 0 && (f.output != "" || f.format != "text" || !isTerminal(a.stdout)) {
		for _, e := range run.errs {
			fmt.Fprintln(a.stderr, "hyhome: "+oneLine(e.input.Location()+": "+e.input.Message))
		}
	}
	if len(run.errs) > 0 {
		return fail(ExitError, nil)
	}
	if run.failing {
		return fail(ExitFindings, nil)
	}
	return nil
}

// deliver runs fill on -o (a temporary file renamed into place, so a
// failure never leaves a partial report behind) or stdout.
func (f *reportFlags) deliver(a *app, fill func(io.Writer) error) error {
	if f.output == "" {
		if err := fill(a.stdout); err != nil {
			if errors.Is(err, errNamedFailed) {
				return err
			}
			return fail(ExitError, fmt.Errorf("writing %s report: %w", f.format, err))
		}
		return nil
	}
	if err := atomicfile.Write(f.output, 0o644, fill); err != nil {
		if errors.Is(err, errNamedFailed) {
			return errNamedFailed
		}
		return fail(ExitError, fmt.Errorf("%s report: %w", f.format, err))
	}
	return nil
}

func newLintCmd(a *app) *cobra.Command {
	var (
		rf          reportFlags
		opts        lint.Options
		keepGoing   bool
		maxFileSize string
	)
	cmd := &cobra.Command{
		Use:   "lint [FILE|DIR]...",
		Short: "Check compose files against the SPEC-SYS-01 rule catalogue",
		Long: `Lint compose files with the full semantics of docker compose (anchors, merge keys,
extends, include, several -f files, profiles, .env interpolation) and report every
rule violation at the file and line where the offending value is written.

With no argument, lint finds compose.yaml / docker-compose.yml and its override in
the working directory the way docker compose does. A FILE argument is a project of
its own; a DIR argument is walked for every compose project in it.

A DIR argument lints every project in it that loads; each file that does not load
is an error entry of the report (every format) and makes the exit status 2. A FILE
argument or -f file that does not load stops the run with one error line on stderr
and nothing on stdout, unless --keep-going.

A compose file larger than --max-file-size (16MiB by default) is refused, not
parsed: an error entry naming the file.

Exit status: 0 clean, 1 a finding at or above --fail-on, 2 input that could not be
read or parsed.`,
		Example: `  hyhome lint examples/insecure
  hyhome lint -f compose.yaml -f compose.prod.yaml --profile monitoring
  hyhome lint --format sarif -o hyhome.sarif .
  hyhome lint --strict --host-memory 8GiB deploy/`,
		RunE: func(cmd *cobra.Command, args []string) error {
			tuneGC()
			env, failOn, err := rf.policyEnv()
			if err != nil {
				return fail(ExitError, err)
			}
			if rf.hostMemory != "" {
				n, ok := workload.ParseMemory(rf.hostMemory)
				if !ok || n <= 0 {
					return fail(ExitError, fmt.Errorf("--host-memory: %q is not a memory size (e.g. 8GiB)", rf.hostMemory))
				}
				env.HostMemory = n
			} else if n, err := sysinfo.MemTotal(); err == nil {
				env.HostMemory = n
			} else {
				a.logger().Warn("memory-budget needs the host's memory; pass --host-memory", "err", err)
			}
			n, ok := workload.ParseMemory(maxFileSize)
			if !ok || n <= 0 {
				return fail(ExitError, fmt.Errorf("--max-file-size: %q is not a size (e.g. 16MiB)", maxFileSize))
			}
			opts.MaxFileSize = n
			opts.Paths = args
			opts.Environ = os.Environ()
			opts.Policy = env
			plan, err := lint.NewPlan(opts)
			if err != nil {
				return fail(ExitError, err)
			}
			tuneGCForPlan(plan.Len())
			return rf.streamLint(a, plan, keepGoing, failOn)
		},
	}
	rf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&rf.hostMemory, "host-memory", "", "host memory for the memory budget, e.g. 8GiB (default: this machine's)")
	fl.StringArrayVarP(&opts.Files, "file", "f", nil, "compose file; several are merged as docker compose merges them")
	fl.StringVar(&opts.WorkDir, "project-directory", "", "project directory (default: the first file's directory)")
	fl.StringVarP(&opts.ProjectName, "project-name", "p", "", "project name")
	fl.StringArrayVar(&opts.Profiles, "profile", nil, "activate a profile (repeatable; '*' activates all)")
	fl.StringArrayVar(&opts.EnvFiles, "env-file", nil, "interpolation variables from this file instead of .env (repeatable)")
	fl.BoolVar(&keepGoing, "keep-going", false, "also report the projects that loaded when a FILE or -f project fails (directories always do; still exits 2)")
	fl.StringVar(&maxFileSize, "max-file-size", "16MiB", "refuse compose files larger than this (e.g. 64MiB)")
	fl.BoolVar(&opts.Validate, "validate", false, "validate every field against the compose specification (compose-go's full pipeline; slower)")
	return cmd
}
