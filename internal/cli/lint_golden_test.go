package cli

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/testenv"
)

// goldenFrom regenerates testdata/lint-golden by running another hyhome
// binary through the same cases: the release before a change to lint's
// output path, so that the test proves the change kept every byte.
//
//	go build -o /tmp/hyhome-before ./cmd/hyhome   # on the commit before
//	go test ./internal/cli -run TestLintGolden -golden-from /tmp/hyhome-before
var goldenFrom = flag.String("golden-from", "", "write testdata/lint-golden by running this hyhome binary")

// mainEnv makes the test binary run hyhome's Main instead of the tests, so
// that the golden cases run as whole processes (real stdout and stderr,
// exit status, a controlled environment) without building the binary.
const mainEnv = "HYHOME_CLI_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type goldenCase struct {
	name string
	args []string
	// output makes the case write its report with -o (the word OUTPUT in
	// args); the file's bytes stand for stdout.
	output bool
	// golden names the golden files when another case's are the same
	// (a report written with -o is the one written to stdout).
	golden string
}

// lintGoldenCases run from the corpus's parent directory, so that paths in
// the output are the same wherever the corpus is.
func lintGoldenCases(t *testing.T, corpus string) []goldenCase {
	var cases []goldenCase
	// Some of the awesome-compose projects as FILE arguments, in reverse
	// order (the report is in file order whatever the argument order), one
	// of which does not load.
	var named []string
	err := filepath.WalkDir(filepath.Join(corpus, "awesome-compose"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (d.Name() == "compose.yaml" || d.Name() == "docker-compose.yml") {
			rel, _ := filepath.Rel(filepath.Dir(corpus), p)
			named = append(named, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(named)))
	if len(named) < 10 {
		t.Fatalf("only %d compose files under %s/awesome-compose", len(named), corpus)
	}
	base := []string{"lint", "--host-memory", "8GiB"}
	for _, f := range report.FormatNames() {
		with := func(more ...string) []string {
			return append(append(append([]string{}, base...), "--format", f), more...)
		}
		cases = append(cases,
			// The whole corpus: a directory walk, 18 files that do not load.
			goldenCase{name: "dir-" + f, args: with("real")},
			// Directories and a file, not in file order.
			goldenCase{name: "args-" + f, args: with("real/compose-go", "real/awesome-compose", "real/CasaOS-AppStore/Apps/2FAuth/docker-compose.yml", "real/boilerplates")},
			// Named files, one of which does not load, with --keep-going.
			goldenCase{name: "named-keep-going-" + f, args: with(append([]string{"--keep-going"}, named...)...)},
			// Named files stop at the one that does not load: nothing on
			// stdout, every error on stderr.
			goldenCase{name: "named-stop-" + f, args: with(named...)},
			// Named files that all load: the report is held until the
			// last has, then written, to stdout or -o.
			goldenCase{name: "named-ok-" + f, args: with("real/awesome-compose/nginx-golang/compose.yaml", "real/CasaOS-AppStore/Apps/2FAuth/docker-compose.yml")},
			goldenCase{name: "named-ok-output-" + f, args: with("-o", "OUTPUT", "real/awesome-compose/nginx-golang/compose.yaml", "real/CasaOS-AppStore/Apps/2FAuth/docker-compose.yml"), output: true, golden: "named-ok-" + f},
			// The report to a file.
			goldenCase{name: "output-" + f, args: with("-o", "OUTPUT", "real"), output: true, golden: "dir-" + f},
			// Findings and no load errors: exit 1; --fail-on and --rule.
			goldenCase{name: "clean-" + f, args: with("real/CasaOS-AppStore")},
			goldenCase{name: "rule-" + f, args: with("--rule", "image-pinned", "--fail-on", "warning", "real/awesome-compose/nginx-golang")},
		)
	}
	return cases
}

// corpusDigest identifies the corpus the golden files were made from.
func corpusDigest(t *testing.T, corpus string) string {
	h := sha256.New()
	err := filepath.WalkDir(corpus, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(corpus, p)
		fmt.Fprintf(h, "%s %d %x\n", filepath.ToSlash(rel), len(b), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// runGolden runs one case with bin (the test binary itself when bin is
// empty) and returns stdout (or the -o file), stderr and the exit status.
func runGolden(t *testing.T, bin, dir string, c goldenCase) (stdout, stderr []byte, code int) {
	scratch := t.TempDir()
	args := append([]string{}, c.args...)
	out := filepath.Join(scratch, "report")
	for i := range args {
		if args[i] == "OUTPUT" {
			args[i] = out
		}
	}
	env := []string{"HOME=/nonexistent-hyhome-golden", "PATH=/usr/bin:/bin", "LANG=C", "TZ=UTC", "TMPDIR=" + scratch}
	if d := os.Getenv("GOCOVERDIR"); d != "" {
		env = append(env, "GOCOVERDIR="+d)
	}
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		bin = exe
		env = append(env, mainEnv+"=1")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", c.name, err)
	}
	stdout = o.Bytes()
	if c.output {
		if len(stdout) > 0 {
			t.Errorf("%s: %d bytes on stdout with -o", c.name, len(stdout))
		}
		b, err := os.ReadFile(out)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		stdout = b
	}
	// Nothing the run made is left behind in TMPDIR (spools are removed),
	// bar the report itself.
	if ents, err := os.ReadDir(scratch); err == nil {
		for _, ent := range ents {
			if ent.Name() != "report" {
				t.Errorf("%s: left %s in TMPDIR", c.name, ent.Name())
			}
		}
	}
	// Errors name a file the user named by its absolute path: the
	// corpus's directory stands for wherever the corpus is.
	at := []byte(dir + string(filepath.Separator))
	stdout = bytes.ReplaceAll(stdout, at, []byte("$CORPUS_PARENT/"))
	return stdout, bytes.ReplaceAll(e.Bytes(), at, []byte("$CORPUS_PARENT/")), code
}

// TestLintGolden proves lint's output byte for byte against the files the
// release before the streaming lint wrote (testdata/lint-golden, made with
// -golden-from): every format, directory walks, named files with and
// without --keep-going, -o, exit statuses and stderr.
func TestLintGolden(t *testing.T) {
	corpus := testenv.CorpusDir(t)
	if filepath.Base(corpus) != "real" {
		testenv.Missing(t, "the golden files name the corpus directory real/, not %s", filepath.Base(corpus))
	}
	dir := filepath.Dir(corpus)
	golden := filepath.Join("testdata", "lint-golden")
	digest := corpusDigest(t, corpus)
	cases := lintGoldenCases(t, corpus)

	if *goldenFrom != "" {
		bin, err := filepath.Abs(*goldenFrom)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(golden); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(golden, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(golden, "corpus.sha256"), []byte(digest+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if c.golden != "" {
				continue
			}
			stdout, stderr, code := runGolden(t, bin, dir, c)
			var z bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
			zw.Write(stdout)
			zw.Close()
			if err := os.WriteFile(filepath.Join(golden, c.name+".out.gz"), z.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			meta := fmt.Sprintf("exit %d\n%s", code, stderr)
			if err := os.WriteFile(filepath.Join(golden, c.name+".err"), []byte(meta), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %d cases with %s", len(cases), bin)
		return
	}

	want, err := os.ReadFile(filepath.Join(golden, "corpus.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(want)) != digest {
		t.Fatalf("the corpus at %s is not the one the golden files were made from: regenerate them with -golden-from a binary of the commit before your change (see goldenFrom)", corpus)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := runGolden(t, "", dir, c)
			name := c.name
			if c.golden != "" {
				name = c.golden
			}
			zb, err := os.ReadFile(filepath.Join(golden, name+".out.gz"))
			if err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(zb))
			if err != nil {
				t.Fatal(err)
			}
			wantOut, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			wantErr, err := os.ReadFile(filepath.Join(golden, name+".err"))
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("exit %d\n%s", code, stderr); got != string(wantErr) {
				t.Errorf("exit status and stderr differ:\n got: %.2000s\nwant: %.2000s", got, wantErr)
			}
			if !bytes.Equal(stdout, wantOut) {
				t.Errorf("output differs (%d bytes, want %d): %s", len(stdout), len(wantOut), firstDiff(stdout, wantOut))
			}
		})
	}
}

// firstDiff shows where two outputs part.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	line := bytes.Count(want[:i], []byte("\n")) + 1
	lo := max(0, i-200)
	return fmt.Sprintf("first difference at byte %d (line %d):\n got: %q\nwant: %q", i, line, got[lo:min(len(got), i+200)], want[lo:min(len(want), i+200)])
}
