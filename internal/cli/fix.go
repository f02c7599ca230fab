package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/fix"
	"github.com/hy-home/hyhome/internal/policy"
)

func newFixCmd(a *app) *cobra.Command {
	var (
		opts        fix.Options
		diff, check bool
		format      string
		strict      bool
		adrDirs     []string
		keepGoing   bool
		tier, mem   []string
		user, tmpfs []string
		memTable    string
		only, off   []string
	)
	cmd := &cobra.Command{
		Use:   "fix [FILE|DIR]...",
		Short: "Rewrite compose files to the SPEC-SYS-01 baseline, keeping comments and layout",
		Long: `Fix what lint finds, in place: each edit goes to the node that defines the value
(the service, the anchor it merges, the file it extends or includes) as a splice of the
original bytes, so comments, key order, quoting, blank lines, anchors and line endings
outside the edited nodes stay byte for byte. Every edited file is parsed back and
compared with the original node by node, and the projects are loaded again after
writing: a file that would no longer load is put back.

Safe edits (by default): no-new-privileges:true where it is missing, the
x-security-baseline anchor defined once per file, a pids limit, and, when their values
are given, the hy-home.tier label (--tier) and a memory limit (--memory, --memory-table).

Unsafe edits (only with --unsafe; otherwise printed as suggestions): merging
<<: *security-baseline (it brings cap_drop: [ALL]), cap_drop ALL, read_only with
--tmpfs paths, :ro on bind mounts, a non-root --user, DOCKER_HOST at the guard instead
of a Docker socket mount, and a literal credential moved into a Docker secret file
(mode 0600) read through KEY_FILE.

Nothing is edited for a rule an Accepted ADR exempts the service from (--strict ignores
exemptions). Discovery, -f, --profile and --env-file work as in lint.

Exit status: 0 done (or nothing to do), 1 with --check when an edit would apply,
2 input that could not be read or parsed, or a write that failed.`,
		Example: `  hyhome fix --diff examples/insecure
  hyhome fix --tier app --tier traefik=gateway --memory 256MiB examples/insecure
  hyhome fix --check .          # in CI: exit 1 when fix would change something
  hyhome fix --unsafe --user 65534:65534 --tmpfs /tmp -f compose.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			tuneGC()
			if os.Getenv("GOMEMLIMIT") == "" {
				// Fix holds every file's tree until all projects are
				// planned (edits of one file come from several projects):
				// more room than lint's soft limit, or the collector
				// runs all the time.
				debug.SetMemoryLimit(512 << 20)
			}
			if diff && check {
				return fail(ExitError, errors.New("--diff and --check: choose one"))
			}
			if format != "text" && format != "json" {
				return fail(ExitError, fmt.Errorf("--format: unknown format %q (want text or json)", format))
			}
			if diff && format == "json" {
				return fail(ExitError, errors.New("--diff prints a unified diff; --format json lists the edits: choose one"))
			}
			var err error
			if opts.Tier, err = fix.ParseValues("--tier", tier, nil); err != nil {
				return fail(ExitError, err)
			}
			if opts.Memory, err = fix.ParseValues("--memory", mem, fix.CheckMemory); err != nil {
				return fail(ExitError, err)
			}
			if opts.User, err = fix.ParseValues("--user", user, nil); err != nil {
				return fail(ExitError, err)
			}
			if opts.Tmpfs, err = fix.ParseValues("--tmpfs", tmpfs, func(p string) error {
				if !strings.HasPrefix(p, "/") {
					return errors.New("not an absolute path")
				}
				return nil
			}); err != nil {
				return fail(ExitError, err)
			}
			if memTable != "" {
				if opts.MemoryTable, err = fix.ReadMemoryTable(memTable); err != nil {
					return fail(ExitError, fmt.Errorf("--memory-table: %w", err))
				}
			}
			if opts.PidsLimit < 0 {
				return fail(ExitError, errors.New("--pids-limit: must be 0 (no edit) or positive"))
			}
			opts.Lint.Paths = args
			opts.Lint.Environ = os.Environ()
			opts.Lint.Policy = policy.Env{Registry: policy.Default, Strict: strict, ADRs: adr.NewResolver(adrDirs...)}
			rf := reportFlags{only: only, disable: off, failOn: "error", format: "text"}
			env, _, err := rf.policyEnv()
			if err != nil {
				return fail(ExitError, err)
			}
			opts.Lint.Policy.Only, opts.Lint.Policy.Disabled = env.Only, env.Disabled
			ctx := context.Background()
			res, err := fix.Plan(ctx, opts)
			if err != nil {
				return fail(ExitError, err)
			}
			if len(res.Errors) > 0 {
				for _, e := range res.Errors {
					fmt.Fprintln(a.stderr, "hyhome: "+oneLine(e.Error()))
				}
				if !keepGoing {
					return fail(ExitError, nil)
				}
			}
			out := &fixOutput{a: a, res: res, wd: workDir()}
			switch {
			case format == "json":
				err = out.json(!diff && !check)
			case diff:
				err = out.diff()
			default:
				err = out.text(!check)
			}
			if err != nil {
				return fail(ExitError, err)
			}
			if !diff && !check {
				if err := fix.Apply(ctx, res); err != nil {
					return fail(ExitError, err)
				}
			}
			switch {
			case len(res.Errors) > 0:
				return fail(ExitError, nil)
			case check && len(res.Files) > 0:
				return fail(ExitFindings, nil)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&diff, "diff", false, "print a unified diff and change nothing")
	fl.BoolVar(&check, "check", false, "change nothing; exit 1 when an edit would apply")
	fl.StringVar(&format, "format", "text", "output format: text or json (every edit: file, line, service, rule, before, after, safe)")
	fl.BoolVar(&opts.Unsafe, "unsafe", false, "also apply the edits that can take away something a service uses")
	fl.StringArrayVar(&tier, "tier", nil, "hy-home.tier label to add: TIER for every service or SERVICE=TIER (repeatable)")
	fl.StringArrayVar(&mem, "memory", nil, "memory limit to add: SIZE for every service or SERVICE=SIZE (repeatable)")
	fl.StringVar(&memTable, "memory-table", "", "file of IMAGE SIZE lines (IMAGE a glob on the image reference): memory limits by image")
	fl.Int64Var(&opts.PidsLimit, "pids-limit", fix.DefaultPidsLimit, "pids limit to add where none is set (0: none); threads count as pids")
	fl.StringArrayVar(&user, "user", nil, "non-root user to set (unsafe): UID:GID for every service or SERVICE=UID:GID")
	fl.StringArrayVar(&tmpfs, "tmpfs", nil, "tmpfs path to add with read_only (unsafe): PATH or SERVICE=PATH (repeatable)")
	fl.StringVar(&opts.DockerHost, "docker-host", fix.DefaultDockerHost, "DOCKER_HOST that replaces a Docker socket mount (unsafe): the guard's endpoint")
	fl.StringSliceVar(&only, "rule", nil, "fix only these rule IDs (repeatable or comma-separated)")
	fl.StringSliceVar(&off, "disable", nil, "do not fix these rule IDs")
	fl.BoolVar(&strict, "strict", false, "ignore every exemption (hy-home.adr / hy-home.exempt labels)")
	fl.StringArrayVar(&adrDirs, "adr-dir", nil, "directory of ADRs that exemptions cite (default: docs/adr next to the compose file, then at the repository root)")
	fl.StringArrayVarP(&opts.Lint.Files, "file", "f", nil, "compose file; several are merged as docker compose merges them")
	fl.StringVar(&opts.Lint.WorkDir, "project-directory", "", "project directory (default: the first file's directory)")
	fl.StringVarP(&opts.Lint.ProjectName, "project-name", "p", "", "project name")
	fl.StringArrayVar(&opts.Lint.Profiles, "profile", nil, "activate a profile (repeatable; '*' activates all)")
	fl.StringArrayVar(&opts.Lint.EnvFiles, "env-file", nil, "interpolation variables from this file instead of .env (repeatable)")
	fl.BoolVar(&keepGoing, "keep-going", false, "fix the projects that loaded even when others failed (still exits 2)")
	return cmd
}

func workDir() string {
	wd, _ := os.Getwd()
	return wd
}

// fixOutput renders a fix result.
type fixOutput struct {
	a   *app
	res *fix.Result
	wd  string
}

func (o *fixOutput) rel(p string) string {
	if o.wd == "" {
		return p
	}
	if r, err := filepath.Rel(o.wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// text lists the applied edits by file, then the suggestions, then a
// summary. applying says whether the edits are being written.
func (o *fixOutput) text(applying bool) error {
	w := o.a.stdout
	verb := "would fix"
	if applying {
		verb = "fixed"
	}
	for _, f := range o.res.Files {
		fmt.Fprintf(w, "%s %s (%d edits)\n", verb, o.rel(f.Path), len(f.Edits))
		for _, e := range f.Edits {
			fmt.Fprintf(w, "  %5d  %-20s %-16s %s\n", e.Line, e.Rule, e.Service, e.Describe())
		}
	}
	for _, s := range o.res.Secrets {
		if !s.Exists {
			fmt.Fprintf(w, "%s %s (secret, mode 0600; keep it out of version control)\n", map[bool]string{true: "wrote", false: "would write"}[applying], o.rel(s.Path))
		}
	}
	o.suggestions(w)
	fmt.Fprintln(w, "fix: "+o.summary())
	return nil
}

func (o *fixOutput) suggestions(w io.Writer) {
	var sug []*fix.Edit
	for _, e := range o.res.Edits {
		if !e.Applied {
			sug = append(sug, e)
		}
	}
	if len(sug) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSuggestions (not applied):")
	last := ""
	for _, e := range sug {
		if f := o.rel(e.File); f != last {
			fmt.Fprintln(w, f)
			last = f
		}
		what := e.Describe()
		if what != "" {
			what += ": "
		}
		fmt.Fprintf(w, "  %5d  %-20s %-16s %s%s\n", e.Line, e.Rule, e.Service, what, e.Reason)
	}
}

func (o *fixOutput) summary() string {
	s := o.res.Summary()
	if len(o.res.Manual) > 0 {
		ids := make([]string, 0, len(o.res.Manual))
		for id := range o.res.Manual {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = id + " " + strconv.Itoa(o.res.Manual[id])
		}
		s += " (" + strings.Join(parts, ", ") + "; see hyhome lint)"
	}
	return s
}

// diff prints each changed file's unified diff on stdout; the suggestions
// and the summary go to stderr, so that stdout is a patch.
func (o *fixOutput) diff() error {
	for _, f := range o.res.Files {
		if _, err := io.WriteString(o.a.stdout, f.Diff(o.rel(f.Path))); err != nil {
			return err
		}
	}
	o.suggestions(o.a.stderr)
	fmt.Fprintln(o.a.stderr, "fix: "+o.summary())
	return nil
}

func (o *fixOutput) json(applying bool) error {
	type file struct {
		Path  string `json:"path"`
		Edits int    `json:"edits"`
	}
	doc := struct {
		Applying bool           `json:"applying"`
		Files    []file         `json:"files"`
		Edits    []fix.Edit     `json:"edits"`
		Secrets  []string       `json:"secret_files"`
		Manual   map[string]int `json:"findings_without_fix"`
		Summary  struct {
			Findings    int            `json:"findings"`
			Services    int            `json:"services"`
			Applied     map[string]int `json:"applied"`
			Suggestions map[string]int `json:"suggestions"`
		} `json:"summary"`
	}{Applying: applying, Files: []file{}, Edits: []fix.Edit{}, Secrets: []string{}, Manual: o.res.Manual}
	for _, f := range o.res.Files {
		doc.Files = append(doc.Files, file{o.rel(f.Path), len(f.Edits)})
	}
	for _, e := range o.res.Edits {
		c := *e
		c.File = o.rel(c.File)
		doc.Edits = append(doc.Edits, c)
	}
	for _, s := range o.res.Secrets {
		doc.Secrets = append(doc.Secrets, o.rel(s.Path))
	}
	doc.Summary.Findings, doc.Summary.Services = o.res.Findings, o.res.Services
	doc.Summary.Applied, doc.Summary.Suggestions = o.res.Applied(), o.res.Suggested()
	enc := json.NewEncoder(o.a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
