package fix_test

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the want/ trees of testdata/cases from what fix produces")

// TestCases runs `hyhome fix` on each testdata/cases/NAME/in tree with the
// arguments in NAME/args (one a line, $DIR the copy's root) and requires
// the result to be NAME/want byte for byte: the compose-semantics traps
// (merge keys that do not merge lists, shared anchors, extends, include,
// several -f files, interpolated values) and layout (indentation, quoting,
// comments, CRLF, no final newline) each have a case. A second `fix
// --check` with the same arguments must find nothing to do.
func TestCases(t *testing.T) {
	cases, err := filepath.Glob("testdata/cases/*")
	if err != nil || len(cases) == 0 {
		t.Fatal("no cases", err)
	}
	for _, c := range cases {
		name := filepath.Base(c)
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, filepath.Join(c, "in"), dir)
			raw, err := os.ReadFile(filepath.Join(c, "args"))
			if err != nil {
				t.Fatal(err)
			}
			var args []string
			for _, a := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
				if a = strings.TrimSpace(a); a != "" && !strings.HasPrefix(a, "#") {
					args = append(args, strings.ReplaceAll(a, "$DIR", dir))
				}
			}
			var stdout, stderr bytes.Buffer
			code := cli.Main(append([]string{"fix"}, args...), nil, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("fix exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			t.Logf("fix output:\n%s", stdout.String())
			want := filepath.Join(c, "want")
			if *update {
				os.RemoveAll(want)
				copyDir(t, dir, want)
				return
			}
			compareTrees(t, want, dir)

			stdout.Reset()
			stderr.Reset()
			if code := cli.Main(append([]string{"fix", "--check"}, args...), nil, &stdout, &stderr); code != 0 {
				t.Errorf("a second fix --check exited %d: the first run left work\n%s%s", code, stdout.String(), stderr.String())
			}
		})
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// compareTrees requires got to hold exactly want's files, byte for byte.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		w, _ := os.ReadFile(p)
		g, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if !bytes.Equal(w, g) {
			t.Errorf("%s differs from want:\n--- want\n%s\n--- got\n%s", rel, w, g)
		}
		return nil
	})
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			t.Errorf("%s was created but is not in want/", rel)
		}
		return nil
	})
}
