// Package testenv decides what a test does when something it needs from the
// machine is missing: outside CI it skips, saying what is missing and how to
// get it; under CI=true it fails, because CI installs every prerequisite
// (.ci/run) and a skip there would turn missing coverage into a green run.
//
// Tests call Require (or Missing) instead of t.Skip for a missing
// prerequisite. The policy package's traceability check refuses a traced
// test that can reach a bare t.Skip, so a requirement is never "proven" by a
// test that CI may skip. It is test support: nothing outside _test.go files
// and test helpers may import it.
package testenv

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// prerequisite is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing reports a missing prerequisite: it skips the test, or fails it
// under CI. The message says what is missing and how to provide it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("missing prerequisite (required under CI=true): %s", msg)
	}
	t.Skipf("missing prerequisite: %s", msg)
}

// Require calls Missing when err is not nil.
func Require(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		Missing(t, "%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// Short skips a slow test under -short, which CI never passes; under CI=true
// -short is refused rather than honoured, so that CI cannot skip it.
func Short(t testing.TB, why string) {
	t.Helper()
	if !testing.Short() {
		return
	}
	if InCI() {
		t.Fatalf("-short under CI=true would skip %s: CI runs every test", why)
	}
	t.Skipf("-short: %s", why)
}

// ModuleRoot is the directory holding the module's go.mod.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// CorpusEnv overrides where the real compose corpus is looked for.
const CorpusEnv = "HYHOME_CORPUS"

// CorpusDir finds the real compose corpus (shared/corpus/real): $HYHOME_CORPUS
// when set, else shared/corpus/real beside the repository or beside any of
// its parent directories (a CI clone has shared/ beside it; a git worktree
// may sit deeper). Without it the test is skipped, or failed under CI.
func CorpusDir(t testing.TB) string {
	t.Helper()
	dir, err := FindCorpus()
	if err != nil {
		Missing(t, "%v", err)
	}
	return dir
}

// FindCorpus is CorpusDir without a test: the directory, or an error saying
// where it looked.
func FindCorpus() (string, error) {
	if d := os.Getenv(CorpusEnv); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%s=%s is not a directory", CorpusEnv, d)
		}
		return filepath.Abs(d)
	}
	var tried []string
	for d := filepath.Dir(ModuleRoot()); ; d = filepath.Dir(d) {
		c := filepath.Join(d, "shared", "corpus", "real")
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c, nil
		}
		tried = append(tried, c)
		if d == filepath.Dir(d) {
			break
		}
	}
	return "", fmt.Errorf("the real compose corpus is not at %v; set %s to its directory", tried, CorpusEnv)
}

// Hang bounds a wait for something that happens unless the code under test
// is broken: an event to arrive, a process to exit, a server to answer. It
// is no measurement. On this project's machines (two cores shared with
// other engineers' builds and tests) a healthy wait can take tens of
// seconds, so only a hang trips it; speed is measured by the benchmarks.
const Hang = 3 * time.Minute

// Golden compares got with the golden file at path, or, with update (a
// test's -update flag), rewrites the file with got.
func Golden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed (go test -update rewrites it after review):\n%s", path, got)
	}
}
