// Package cli wires hyhome's commands (cobra) to the packages that do the
// work. It parses flags, builds loggers and maps outcomes to exit codes; it
// must not hold policy, parsing or protocol logic of its own.
package cli

import (
	"errors"
	"fmt"
	"github.com/hy-home/hyhome/internal/version"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	ExitOK       = 0 // clean
	ExitFindings = 1 // findings at or above --fail-on, or a failed check
	ExitError    = 2 // the input could not be read, parsed or reached
)

// exitError carries an exit code through cobra; its message (if any) is
// printed as one line on stderr.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// fail returns an error that makes hyhome exit with code.
func fail(code int, err error) error { return &exitError{code: code, err: err} }

// app holds what every command shares: streams and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	logLevel       string
	logFormat      string
	cpuProfile     string
	stopProfile    func()
}

// logger builds the slog logger the command passes down; never a global.
func (a *app) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if a.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}

// Version is the release (internal/version) unless the build stamps another
// with -ldflags "-X github.com/hy-home/hyhome/internal/cli.Version=...".
var Version = version.Release

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "hyhome",
		Short: "Lint, guard, audit, ship and verify a Docker infrastructure against SPEC-SYS-01",
		Long: `hyhome enforces and proves the SPEC-SYS-01 security and observability baseline at
every stage of a service's life: lint and fix compose files, guard the Docker API,
audit running containers and Swarm services, ship Docker events and logs to Loki,
and verify the spec's acceptance checks on a live host.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&a.cpuProfile, "cpuprofile", "", "write a CPU profile to this file (for performance work)")
	_ = pf.MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if a.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(a.cpuProfile)
		if err != nil {
			return fail(ExitError, err)
		}
		a.stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return pprof.StartCPUProfile(f)
	}
	root.AddCommand(commands(a)...)
	return root
}

// Main runs hyhome with args and returns the process exit code. Errors are
// printed as one line prefixed with "hyhome: ".
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(a)
	root.SetArgs(args)
	err := root.Execute()
	if a.stopProfile != nil {
		a.stopProfile()
	}
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "hyhome: "+oneLine(ee.err.Error()))
		}
		return ee.code
	}
	// Flag and argument errors from cobra are usage errors.
	fmt.Fprintln(stderr, "hyhome: "+oneLine(err.Error()))
	return ExitError
}

// oneLine keeps multi-line library errors (e.g. compose-go's cycle reports)
// on one line so that scripts and CI logs show them whole.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, "\n")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(parts, "; ")
}
